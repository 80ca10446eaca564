"""Benchmark BLEU scoring: ours (captioning.metrics.corpus_bleu) vs nltk's corpus_bleu.

    python benchmarks/bleu_speed.py                      # 10,000 captions x 5 references
    python benchmarks/bleu_speed.py --n 500 --repeats 1  # seconds, checks the script only

The corpus is the project's own kind of caption: references rendered from the findings
template set (one per template) for random classes and findings, hypotheses rendered from a
random template (some beyond the set, so from the same phrase lists) with ~10% wrong classes
and ~20% wrong fields. Captions are tokenised once, outside the timings, so every scorer gets
the same tokens. Timed in the same run: ours, nltk's ``corpus_bleu`` (BLEU-4, no smoothing) and,
when installed, pycocoevalcap's ``Bleu`` (the definition ours reproduces; it takes
whitespace-joined strings). Each timing is the best of ``--repeats`` runs. The scores are
compared too (ours vs pycocoevalcap: max |difference| of BLEU-1..4).

Results: experiments/benchmarks/bleu_speed.json (machine, versions, command, date). Nothing
here asserts a time: it records what this machine did.
"""

from __future__ import annotations

import argparse
import random
import time
import warnings
from importlib import metadata

from common import ROOT, record


def make_corpus(n: int, n_refs: int, seed: int):
    """Token lists: ``n`` hypotheses and, per hypothesis, ``n_refs`` references."""
    from captioning.captions import FIELDS, load_template_set, render, tokenize

    tset = load_template_set("findings")
    rng = random.Random(seed)
    classes = sorted(tset.classes)
    hyps, refs = [], []
    for _ in range(n):
        cls = rng.choice(classes)
        fields = {f: rng.choice(FIELDS[f]) for f in tset.fields}
        refs.append([tokenize(render(cls, fields, tset, j)) for j in range(n_refs)])
        said = cls if rng.random() < 0.9 else rng.choice(classes)
        guess = {f: (v if rng.random() < 0.8 else rng.choice(FIELDS[f])) for f, v in fields.items()}
        hyps.append(tokenize(render(said, guess, tset, rng.randrange(n_refs + 2))))
    return hyps, refs


def best_time(fn, repeats: int):
    """(best wall seconds over ``repeats`` calls, the last result)."""
    best, result = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=10_000, help="captions (default 10000)")
    parser.add_argument("--refs", type=int, default=5, help="references per caption")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per scorer (best)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(ROOT / "experiments/benchmarks/bleu_speed.json"))
    args = parser.parse_args(argv)

    from nltk.translate.bleu_score import corpus_bleu as nltk_corpus_bleu

    from captioning.metrics import corpus_bleu
    from captioning.utils.runs import package_versions

    hyps, refs = make_corpus(args.n, args.refs, args.seed)
    timings, scores = {}, {}
    timings["ours"], ours = best_time(lambda: corpus_bleu(hyps, refs), args.repeats)
    scores["ours_bleu1_4"] = ours
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        timings["nltk"], nltk_bleu4 = best_time(
            lambda: float(nltk_corpus_bleu(refs, hyps)), args.repeats
        )
    scores["nltk_bleu4"] = nltk_bleu4
    try:
        from pycocoevalcap.bleu.bleu import Bleu
    except ImportError:
        Bleu = None
    if Bleu is not None:
        gts = {i: [" ".join(r) for r in rs] for i, rs in enumerate(refs)}
        res = {i: [" ".join(h)] for i, h in enumerate(hyps)}
        timings["pycocoevalcap"], (coco, _) = best_time(
            lambda: Bleu(4).compute_score(gts, res, verbose=0), args.repeats
        )
        scores["pycocoevalcap_bleu1_4"] = coco
        scores["max_abs_difference_ours_vs_pycocoevalcap"] = max(
            abs(a - b) for a, b in zip(ours, coco, strict=True)
        )

    result = {
        "benchmark": "BLEU scoring time, ours vs nltk's corpus_bleu (and pycocoevalcap's Bleu)",
        "versions": {**package_versions(), "pycocoevalcap": version("pycocoevalcap")},
        "corpus": {
            "captions": len(hyps),
            "references_per_caption": args.refs,
            "mean_hypothesis_tokens": sum(map(len, hyps)) / len(hyps),
            "mean_reference_tokens": sum(len(r) for rs in refs for r in rs)
            / (len(hyps) * args.refs),
            "source": f"findings template set, seed {args.seed}",
        },
        "repeats": args.repeats,
        "seconds_best": timings,
        "captions_per_second": {k: len(hyps) / v for k, v in timings.items()},
        "speedup_vs_nltk": timings["nltk"] / timings["ours"],
        "speedup_vs_pycocoevalcap": (
            timings["pycocoevalcap"] / timings["ours"] if "pycocoevalcap" in timings else None
        ),
        "scores": scores,
        "note": "Same tokens for every scorer; tokenisation not timed. nltk's BLEU-4 equals ours "
        "here because every hypothesis has >= 4 tokens (see docs/metrics.md).",
    }
    record("bleu_speed", result, args.out)
    for name, seconds in timings.items():
        print(f"{name:>14}: {seconds:8.3f} s  ({len(hyps) / seconds:10.0f} captions/s)")
    print(f"ours vs nltk: {result['speedup_vs_nltk']:.1f}x faster")
    if result["speedup_vs_pycocoevalcap"] is not None:
        print(f"ours vs pycocoevalcap: {result['speedup_vs_pycocoevalcap']:.1f}x faster")
        diff = scores["max_abs_difference_ours_vs_pycocoevalcap"]
        print(f"max |ours - pycocoevalcap| BLEU-1..4: {diff:.1e}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
