"""Benchmark the metric work of ``captioning evaluate`` on real MedNIST references: the code
before the reuse of reference statistics (commit ``--base``, read with ``git show``) against
the code of this checkout, interleaved in one process (old, new, old, new, ...), on the same
inputs, with the results compared.

    python benchmarks/evaluate_metrics.py --data DIR             # a prepared MedNIST with
    python benchmarks/evaluate_metrics.py --data DIR --repeats 1  #   'captioning data captions'

What ``evaluate`` does with the metrics, for one captioner run (METEOR left out: Java):

- ``metric_blocks``: the corpus metrics (BLEU-1..4, nltk BLEU-4, CIDEr-D, ROUGE-L) of four
  candidate sets on the test split: the model's captions, the constant caption and the two
  retrieval baselines. Stand-ins: shuffled references (each image gets a reference of another
  image, seeded), twice, a constant (the first train reference) and the retrieval of the pixel
  neighbours below;
- ``k_grid``: the retrieval baselines' choice of k on the validation sample (2,000 images):
  for each of the two spaces, consensus re-ranking and CIDEr-D for k = 1, 5, 15, 30, then the
  retrieval of the test split with the chosen k. Both spaces use the pixel neighbours here
  (no trained encoder): the same work twice, as evaluate does it twice;
- ``per_class_bleu4``: BLEU-4 of each class's images;
- ``nearest``: the pixel nearest-neighbour search (``--queries`` test images against the
  10,000-image seeded pixel pool).

Old: ``corpus_cider_d``, nltk's ``corpus_bleu`` and ``retrieve``/``nearest`` of ``--base``, every
metric block tokenising the references again. New: this checkout's ``CiderD`` (one per
reference set), ``bleu4_nltk``, ``consensus_picks`` and ``nearest``, the references tokenised
once. Timings are the best of ``--repeats`` rounds; the results must be identical (the
``identical`` entries). Writes experiments/benchmarks/evaluate_metrics.json.
"""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
import time
import warnings

import numpy as np
from common import ROOT, record

BASE = "bbd1064"  # the last commit before the reuse of reference statistics


def load_previous(path: str, base: str, name: str):
    """The module at ``path`` as it was in commit ``base`` (imported under ``name``)."""
    source = subprocess.run(
        ["git", "show", f"{base}:{path}"], cwd=ROOT, check=True, capture_output=True, text=True
    ).stdout
    spec = importlib.util.spec_from_loader(name, loader=None)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    exec(compile(source, f"{base}:{path}", "exec"), module.__dict__)
    return module


def inputs(root, queries: int, seed: int = 0) -> dict:
    """References of the test split and of the validation sample, the train pool, the
    candidate sets and the pixel neighbours (val: 30 each; test: 30 each), from ``root``."""
    from captioning.data.dataset import PreparedData
    from captioning.data.template_captions import read_captions
    from captioning.evaluation.retrieval import PIXEL_POOL, VAL_SAMPLE, nearest

    data = PreparedData(root)
    frame = read_captions(root, "findings")
    columns = [c for c in frame if c.startswith("reference_")]
    split = {s: data.split(s) for s in ("train", "val", "test")}
    refs = {s: [list(r) for r in frame.iloc[split[s].rows][columns].values] for s in split}
    rng = np.random.default_rng(seed)
    val_rows = np.sort(rng.permutation(len(refs["val"]))[:VAL_SAMPLE])
    pixel_rows = np.sort(rng.permutation(len(refs["train"]))[:PIXEL_POOL])
    pool_images = split["train"].images[pixel_rows]
    test = refs["test"]
    shuffled = [
        [test[j][rng.integers(len(test[j]))] for j in rng.permutation(len(test))] for _ in "ab"
    ]
    return {
        "data": data,
        "test_refs": test,
        "test_class": frame.iloc[split["test"].rows]["class"].to_numpy(),
        "val_refs": [refs["val"][i] for i in val_rows],
        "pool_refs": [refs["train"][i] for i in pixel_rows],
        "candidates": [*shuffled, [refs["train"][0][0]] * len(test)],
        "val_neighbours": nearest(split["val"].images[val_rows], pool_images, 30),
        "test_neighbours": nearest(split["test"].images, pool_images, 30),
        "pool_images": pool_images,
        "queries": split["test"].images[:queries],
    }


def old_scores(hyps, refs, old_cider, tokenize) -> dict:
    """``score_captions`` as it was: references tokenised again, nltk's own loop, CIDEr-D
    rebuilt from the references."""
    from nltk.translate.bleu_score import corpus_bleu as nltk_bleu

    from captioning.metrics import corpus_bleu, corpus_rouge_l

    h = [tokenize(x) for x in hyps]
    r = [[tokenize(x) for x in row] for row in refs]
    out = {f"bleu{k + 1}": b for k, b in enumerate(corpus_bleu(h, r))}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out["bleu4_nltk"] = float(nltk_bleu(r, h))
    out["cider"] = old_cider.corpus_cider_d(h, r)
    out["rouge_l"] = corpus_rouge_l(h, r)
    return out


def paths(old_cider, old_retrieval, x: dict) -> dict:
    """component -> (old function, new function), each returning what it computed."""
    from captioning.captions.tokenize import tokenize
    from captioning.evaluation import retrieval
    from captioning.metrics import corpus_bleu, score_captions, score_tokens

    old_pool = old_retrieval.build_pool(x["pool_refs"], tokenize)
    new_pool = retrieval.build_pool(x["pool_refs"], tokenize)
    test, val = x["test_refs"], x["val_refs"]

    def blocks_old():
        sets = [*x["candidates"], old_retrieval.retrieve(old_pool, x["test_neighbours"], 5)]
        return [old_scores(c, test, old_cider, tokenize) for c in sets]

    def blocks_new():
        sets = [*x["candidates"], retrieval.retrieve(new_pool, x["test_neighbours"], 5)]
        first = score_captions(sets[0], test)  # the model's block: its own tokenisation
        ref_tokens = [[tokenize(r) for r in row] for row in test]
        return [first] + [score_tokens([tokenize(c) for c in s], ref_tokens) for s in sets[1:]]

    def grid(module, pool, refs_for_k):
        out = []
        for _space in ("features", "pixels"):
            k, by_k = module.choose_k(pool, x["val_neighbours"], refs_for_k(), tokenize)
            out.append((k, by_k, module.retrieve(pool, x["test_neighbours"], k)))
        return out

    def grid_new():
        cider = retrieval.CiderD([[tokenize(r) for r in row] for row in val])
        return grid(retrieval, new_pool, lambda: cider)

    def per_class(score):
        classes = x["test_class"]
        return [score(np.flatnonzero(classes == c)) for c in sorted(set(classes))]

    def bleu_old(idx):
        hyps = [x["candidates"][0][i] for i in idx]
        return old_scores(hyps, [test[i] for i in idx], old_cider, tokenize)["bleu4"]

    def bleu_new(idx):
        hyps = [tokenize(x["candidates"][0][i]) for i in idx]
        return corpus_bleu(hyps, [[tokenize(r) for r in test[i]] for i in idx])[3]

    return {
        "metric_blocks": (blocks_old, blocks_new),
        "k_grid": (lambda: grid(old_retrieval, old_pool, lambda: val), grid_new),
        "per_class_bleu4": (lambda: per_class(bleu_old), lambda: per_class(bleu_new)),
        "nearest": tuple(
            (lambda m=m: m.nearest(x["queries"], x["pool_images"], 30))
            for m in (old_retrieval, retrieval)
        ),
    }


def same(a, b) -> bool:
    """Equal results: numbers to 1e-12, arrays and everything else exactly."""
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple):
        return len(a) == len(b) and all(same(p, q) for p, q in zip(a, b, strict=True))
    if isinstance(a, np.ndarray):
        return np.array_equal(a, b)
    if isinstance(a, float):
        return abs(a - b) <= 1e-12
    return a == b


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", required=True, help="prepared MedNIST with its captions")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved rounds (best)")
    parser.add_argument("--queries", type=int, default=1024, help="test images for nearest")
    parser.add_argument("--base", default=BASE, help="commit of the old code")
    parser.add_argument("--out", default=str(ROOT / "experiments/benchmarks/evaluate_metrics.json"))
    args = parser.parse_args(argv)

    old_cider = load_previous("captioning/metrics/cider.py", args.base, "previous_cider")
    old_retrieval = load_previous("captioning/evaluation/retrieval.py", args.base, "previous_r")
    old_retrieval.corpus_cider_d = old_cider.corpus_cider_d  # its k grid as it ran then
    x = inputs(args.data, args.queries)
    timings = {}
    identical = {}
    for name, (old, new) in paths(old_cider, old_retrieval, x).items():
        best = {"old": float("inf"), "new": float("inf")}
        for _ in range(args.repeats):
            results = {}
            for side, fn in (("old", old), ("new", new)):
                tic = time.perf_counter()
                results[side] = fn()
                best[side] = min(best[side], time.perf_counter() - tic)
            identical[name] = same(results["old"], results["new"])
        timings[name] = {**best, "speedup": best["old"] / best["new"]}
        line = f"old {best['old']:7.2f} s  new {best['new']:7.2f} s"
        print(f"{name:>16}: {line} ({timings[name]['speedup']:.1f}x, same: {identical[name]})")
    total = {side: sum(t[side] for t in timings.values()) for side in ("old", "new")}
    result = {
        "benchmark": "evaluate's metric work on MedNIST: the code of --base against this one",
        "base_commit": args.base,
        "inputs": {
            "test_images": len(x["test_refs"]),
            "references_per_image": len(x["test_refs"][0]),
            "distinct_test_reference_lists": len({tuple(r) for r in x["test_refs"]}),
            "val_sample": len(x["val_refs"]),
            "pixel_pool": len(x["pool_refs"]),
            "nearest_queries": len(x["queries"]),
        },
        "repeats": args.repeats,
        "seconds_best": timings,
        "total": {**total, "speedup": total["old"] / total["new"]},
        "identical": identical,
        "note": "best of --repeats interleaved rounds on a machine shared with other work "
        "(load_average); candidates are stand-ins (shuffled references, a constant, pixel "
        "retrieval): no trained model is involved. METEOR (Java) is not timed.",
    }
    record("evaluate_metrics", result, args.out, data_card=x["data"].card)
    return 0 if all(identical.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
