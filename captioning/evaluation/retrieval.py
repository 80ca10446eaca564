"""Caption baselines without a decoder: what a captioner must beat on the same split, scored
with the same metrics (``captioning evaluate`` reports them under ``baselines``).

- ``constant`` and ``constant_best_val``: one training caption for every image, the one
  closest to the others, and the one of the most central that scores best on validation
  (``captioning.evaluation.constants``).
- ``retrieval_features`` / ``retrieval_pixels``: k-nearest-neighbour retrieval with consensus
  re-ranking (Devlin et al. 2015, "Exploring Nearest Neighbor Approaches for Image
  Captioning"): the k train images nearest by cosine (on the run's encoder pooled vectors, or on
  the raw grey pixels at the model's input size), and among their references the one with the
  highest mean similarity to the others. k is chosen from ``K_GRID`` by CIDEr-D on the
  validation split (a seeded sample of ``VAL_SAMPLE`` images), never on the evaluated split.
  The pool: the train split, whole for the features, a seeded sample of ``PIXEL_POOL`` images
  for the pixels (42k x 4096 pixels against every image of a split is minutes on two cores).
- ``classify_then_template``: each label column predicted by the heads of the classifier the
  run's encoder came from, then the consensus caption of the train images with those labels
  (``captioning.evaluation.label_baseline``); ``{"not_computed": why}`` for a run without
  label heads.

Consensus similarity of two captions: the mean over n = 1..4 of the cosine of their n-gram
TF-IDF vectors (IDF from the train pool's images), i.e. CIDEr's vector similarity without
CIDEr-D's length penalty and clipping, so that it is one sparse product per image.
"""

from __future__ import annotations

import numpy as np

from captioning.evaluation.consensus import Pool, build_pool, consensus_picks
from captioning.evaluation.constants import constant_baselines, constant_caption
from captioning.evaluation.label_baseline import NAME as LABEL_BASELINE
from captioning.evaluation.label_baseline import classify_then_template
from captioning.metrics.bootstrap import LEFT_OUT, PairedBootstrap
from captioning.metrics.cider import CiderD

K_GRID = (1, 5, 15, 30)
VAL_SAMPLE = 2000  # validation images k is chosen on (a seeded sample)
PIXEL_POOL = 10000  # train images the pixel retrieval searches (a seeded sample)
CONSENSUS = (
    "mean over n=1..4 of the cosine of n-gram TF-IDF vectors (IDF from the train pool): CIDEr's "
    "similarity without CIDEr-D's length penalty and clipping"
)


def retrieve(pool: Pool, neighbours: np.ndarray, k: int) -> list[str]:
    """Per query, the consensus caption among the references of its ``k`` nearest pool images
    (``neighbours`` (Q, >= k) pool indices, nearest first)."""
    ids = pool.refs[neighbours[:, :k]].reshape(len(neighbours), -1)  # nearest image's first
    query = np.repeat(np.arange(len(ids)), ids.shape[1])
    keep = ids.ravel() >= 0
    ids, query = ids.ravel()[keep], query[keep]
    return [pool.texts[t] for t in ids[consensus_picks(pool.vectors, ids, query)]]


def _flat(x: np.ndarray) -> np.ndarray:
    return np.asarray(x, np.float32).reshape(len(x), -1)


def _scale(x: np.ndarray) -> np.ndarray:
    """What ``_unit`` divides the rows of ``x`` by: their length (at least 1e-12)."""
    return np.maximum(np.linalg.norm(_flat(x), axis=1, keepdims=True), 1e-12)


def _unit(x: np.ndarray) -> np.ndarray:
    return _flat(x) / _scale(x)


def nearest(
    queries: np.ndarray, pool: np.ndarray, k: int, chunk: int = 2048, query_chunk: int = 512
) -> np.ndarray:
    """(Q, k) indices of the ``k`` pool rows nearest to each query by cosine, nearest first
    (equal similarities: the lower index first). Rows are flattened; queries and pool are read
    in chunks, in float32: neither a 42k x 4096 pixel pool nor a test split's (Q, chunk)
    similarities and their int64 indices are ever held whole (they cost ~500 MB on MedNIST).
    Each pool chunk is made unit length once, then meets every query chunk (made unit length
    again each time from its stored lengths: cheaper than the pool's norms once per query
    chunk, which were a quarter of the time on MedNIST's pixels)."""
    k = min(k, len(pool))
    starts = range(0, len(queries), query_chunk)
    scales = [_scale(queries[s : s + query_chunk]) for s in starts]
    found = [
        (np.full((len(sc), 0), -np.inf, np.float32), np.zeros((len(sc), 0), np.int64))
        for sc in scales
    ]
    for start in range(0, len(pool), chunk):
        block = _unit(pool[start : start + chunk])  # (c, D)
        for i, s in enumerate(starts):
            q = _flat(queries[s : s + query_chunk]) / scales[i]  # as _unit, norms kept
            found[i] = _merge(*found[i], q @ block.T, start, k)
    parts = [
        np.take_along_axis(index, np.lexsort((index, -best), axis=1), 1)  # by similarity, index
        for best, index in found
    ]
    return np.concatenate(parts) if parts else np.zeros((0, k), np.int64)


def _merge(best, index, sims, start: int, k: int):
    """The ``k`` best of the kept ``best`` (Q, <= k) similarities (pool rows ``index``) and
    a new chunk's ``sims`` (Q, c), whose rows start at pool row ``start``."""
    new = np.broadcast_to(np.arange(start, start + sims.shape[1]), sims.shape)
    sims = np.concatenate([best, sims], axis=1)  # (Q, k + c)
    ids = np.concatenate([index, new], axis=1)
    if sims.shape[1] > k:
        keep = np.argpartition(-sims, k - 1, axis=1)[:, :k]
        sims, ids = np.take_along_axis(sims, keep, 1), np.take_along_axis(ids, keep, 1)
    return sims, ids


def choose_k(pool: Pool, neighbours: np.ndarray, references, tokenize, grid=K_GRID):
    """The k of ``grid`` whose retrieval scores the highest CIDEr-D against ``references``
    (the validation split's texts, or their ``CiderD`` when it serves more than one choice;
    ``neighbours`` its nearest pool images), and every k's score; ties: the smaller k."""
    if not isinstance(references, CiderD):
        references = CiderD([[tokenize(r) for r in row] for row in references])
    scores = {}
    for k in grid:
        if k > neighbours.shape[1] and k > min(grid):
            continue
        hyps = [tokenize(t) for t in retrieve(pool, neighbours, k)]
        scores[k] = round(float(references.score(hyps)), 6)
    return max(scores, key=lambda k: (scores[k], -k)), scores


def _metric_block(captions, evalset, meteor: bool, ref_tokens) -> dict:
    """``score_captions`` of ``captions`` against ``evalset``'s references, already tokenised
    (``ref_tokens``: once for every baseline, not once per block)."""
    from captioning.metrics import check_corpus, score_tokens

    hyp_tokens = [evalset.tokenize(c) for c in captions]
    check_corpus(hyp_tokens, ref_tokens)
    scores = score_tokens(hyp_tokens, ref_tokens, meteor=meteor)
    return {
        k: v if v is None or isinstance(v, str) else round(float(v), 6) for k, v in scores.items()
    }


def caption_baselines(
    captioner, evalset, pool_set, val_set, meteor: bool = True, generated: list[str] | None = None
) -> dict:
    """The ``baselines`` of a captioner report on ``evalset``: each the metric block of the
    model's corpus metrics (same references, tokenisation and scorer) plus its settings.
    ``pool_set``: the run's train split (the captions retrieved); ``val_set``: its validation
    split (where k is chosen); ``captioner``: gives the encoder's pooled vectors; with
    ``generated`` (the model's caption of each image), each block's ``paired_bootstrap``:
    the model minus the baseline, with 95% intervals over resampled test images.
    ``per_image``: each baseline's caption of each image (the constant's is in its block)."""
    pool = build_pool(pool_set.references, evalset.tokenize)
    where = f"train split ({len(pool)} images)"
    refs = [[evalset.tokenize(r) for r in row] for row in evalset.references]
    rng = np.random.default_rng(0)
    val_rows = np.sort(rng.permutation(len(val_set))[:VAL_SAMPLE])
    val_images = val_set.images[val_rows]
    val_refs = CiderD([[evalset.tokenize(r) for r in val_set.references[i]] for i in val_rows])
    per_image, out = {}, {}  # each baseline's caption of each image; its report block
    constants = constant_baselines(pool, val_refs, evalset.tokenize, CONSENSUS)
    for name, (caption, info) in constants.items():
        per_image[name] = [caption] * len(evalset)
        block = _metric_block(per_image[name], evalset, meteor, refs)
        out[name] = {**block, "caption": caption, **info, "pool": where}
    pixel_rows = np.sort(rng.permutation(len(pool))[:PIXEL_POOL])
    spaces = {
        "retrieval_features": (captioner.pooled_features, "the run's encoder pooled vector", None),
        "retrieval_pixels": (np.asarray, "raw grey pixels at the model's input size", pixel_rows),
    }
    for name, (embed, described, rows) in spaces.items():
        part = pool if rows is None else Pool(pool.texts, pool.refs[rows], pool.vectors)
        train = embed(pool_set.images if rows is None else pool_set.images[rows])
        neighbours = nearest(embed(val_images), train, max(K_GRID))
        k, by_k = choose_k(part, neighbours, val_refs, evalset.tokenize)
        captions = per_image[name] = retrieve(part, nearest(embed(evalset.images), train, k), k)
        out[name] = {
            **_metric_block(captions, evalset, meteor, refs),
            "k": k,
            "k_grid_val_cider": {str(key): value for key, value in by_k.items()},
            "k_chosen_on": f"val ({len(val_rows)} images, seeded sample)",
            "space": f"{described}, {int(np.prod(train.shape[1:]))}-d, cosine",
            "consensus": CONSENSUS,
            "pool": where
            if rows is None
            else f"train split, {len(rows)} of {len(pool)} images (seeded sample)",
        }
    add_label_baseline(out, per_image, captioner, evalset, pool_set, pool, meteor, refs)
    if generated is not None:
        paired_bootstrap(out, per_image, generated, refs, evalset.tokenize)
    out["per_image"] = {k: v for k, v in per_image.items() if k not in constants}
    split = evalset.evaluated.get("split")
    if split in ("train", "val"):
        used = "retrieve from" if split == "train" else "choose k on"
        out["note"] = f"the evaluated split is '{split}', which the baselines {used}"
    return out


def add_label_baseline(out, per_image, captioner, evalset, pool_set, pool, meteor, refs) -> None:
    """Add ``classify_then_template`` (``captioning.evaluation.label_baseline``) to the
    baselines' ``out`` blocks and ``per_image`` captions; ``{"not_computed": why}`` where
    the run has no label heads."""
    found = classify_then_template(captioner, evalset, pool_set, pool, constant_caption)
    if isinstance(found, str):
        out[LABEL_BASELINE] = {"not_computed": found}
        return
    per_image[LABEL_BASELINE], info = found
    captions = per_image[LABEL_BASELINE]
    out[LABEL_BASELINE] = {**_metric_block(captions, evalset, meteor, refs), **info}


def paired_bootstrap(blocks: dict, per_image: dict, generated, ref_tokens, tokenize) -> None:
    """Add to each baseline's block of ``blocks`` its ``paired_bootstrap``: the model's
    ``generated`` captions minus the baseline's (``per_image[name]``), per metric, with
    the 95% interval and the model's share of wins over the same resampled test images
    (``captioning.metrics.bootstrap``; seed and resamples recorded in the block)."""
    bootstrap = PairedBootstrap(ref_tokens)  # one set of draws for every baseline
    model = bootstrap.statistics([tokenize(c) for c in generated])
    for name, captions in per_image.items():
        baseline = bootstrap.statistics([tokenize(c) for c in captions])
        blocks[name]["paired_bootstrap"] = {
            **bootstrap.compare(model, baseline),
            "not_compared": dict(LEFT_OUT),
        }


def validation_check(run_dir, sample: int = 1000, seed: int = 0) -> dict:
    """The end-of-training check: the saved model's CIDEr-D (its own beam) and that of the
    retrieval baseline on encoder features (train pool, k chosen on the same images) on a
    seeded sample of at most ``sample`` validation images. k is chosen on the images scored,
    which favours the baseline: a warning, not a result (``evaluate`` reports the clean one)."""
    import tempfile
    from dataclasses import replace
    from pathlib import Path

    from captioning.evaluation.inputs import evaluation_set
    from captioning.inference import Captioner

    captioner = Captioner(run_dir)
    workdir = Path(tempfile.gettempdir())
    pool_set = evaluation_set(captioner, None, "train", workdir)
    val = evaluation_set(captioner, None, "val", workdir)
    rows = np.sort(np.random.default_rng(seed).permutation(len(val))[:sample])
    val = replace(
        val,
        images=val.images[rows],
        labels=val.labels[rows],
        frame=val.frame.iloc[rows].reset_index(drop=True),
        references=[val.references[i] for i in rows],
    )
    result = captioner.caption(val.images)
    generated = [" ".join(w) for w in result.words] if val.free_text else result.texts
    cider = CiderD([[val.tokenize(r) for r in row] for row in val.references])  # built once
    model = cider.score([val.tokenize(t) for t in generated])
    pool = build_pool(pool_set.references, val.tokenize)
    train = captioner.pooled_features(pool_set.images)
    neighbours = nearest(captioner.pooled_features(val.images), train, max(K_GRID))
    k, by_k = choose_k(pool, neighbours, cider, val.tokenize)
    return {"n": len(val), "model_cider": round(float(model), 6), "baseline_cider": by_k[k], "k": k}
