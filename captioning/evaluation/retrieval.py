"""Caption baselines without a decoder: what a captioner must beat on the same split, scored
with the same metrics (``captioning evaluate`` reports them under ``baselines``).

- ``constant``: one training caption for every image, the one closest to the others: the train
  caption with the highest mean consensus similarity (below) to a seeded sample of
  ``CONSTANT_SAMPLE`` training images' references. Chosen from the train split alone.
- ``retrieval_features`` / ``retrieval_pixels``: k-nearest-neighbour retrieval with consensus
  re-ranking (Devlin et al. 2015, "Exploring Nearest Neighbor Approaches for Image
  Captioning"): the k train images nearest by cosine (on the run's encoder pooled vectors, or on
  the raw grey pixels at the model's input size), and among their references the one with the
  highest mean similarity to the others. k is chosen from ``K_GRID`` by CIDEr-D on the
  validation split (a seeded sample of ``VAL_SAMPLE`` images), never on the evaluated split.
  The pool: the train split, whole for the features, a seeded sample of ``PIXEL_POOL`` images
  for the pixels (42k x 4096 pixels against every image of a split is minutes on two cores).

Consensus similarity of two captions: the mean over n = 1..4 of the cosine of their n-gram
TF-IDF vectors (IDF from the train pool's images), i.e. CIDEr's vector similarity without
CIDEr-D's length penalty and clipping, so that it is one sparse product per image.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import sparse

from captioning.metrics import corpus_cider_d

K_GRID = (1, 5, 15, 30)
CONSTANT_SAMPLE = 2000
VAL_SAMPLE = 2000  # validation images k is chosen on (a seeded sample)
PIXEL_POOL = 10000  # train images the pixel retrieval searches (a seeded sample)
MAX_N = 4
CONSENSUS = (
    "mean over n=1..4 of the cosine of n-gram TF-IDF vectors (IDF from the train pool): CIDEr's "
    "similarity without CIDEr-D's length penalty and clipping"
)


@dataclass
class Pool:
    """The retrieval pool (a train split): ``texts``, its distinct reference texts;
    ``refs`` (N, R) int, each image's references as indices into ``texts`` (-1: none);
    ``vectors`` (len(texts), G) sparse, each text's consensus vector (unit norm per order,
    scaled so a dot product is the mean cosine over the orders)."""

    texts: list[str]
    refs: np.ndarray
    vectors: sparse.csr_matrix

    def __len__(self) -> int:
        return len(self.refs)


def _grams(tokens: list[str]) -> dict[tuple[str, ...], int]:
    counts: dict[tuple[str, ...], int] = {}
    for n in range(1, MAX_N + 1):
        for i in range(len(tokens) - n + 1):
            gram = tuple(tokens[i : i + n])
            counts[gram] = counts.get(gram, 0) + 1
    return counts


def build_pool(references: list[list[str]], tokenize) -> Pool:
    """The pool of ``references`` (per image, its reference texts), split by ``tokenize``."""
    texts, index = [], {}
    width = max((len(r) for r in references), default=1)
    refs = np.full((len(references), max(width, 1)), -1, np.int64)
    for i, row in enumerate(references):
        for j, text in enumerate(row):
            refs[i, j] = index.setdefault(text, len(texts))
            if refs[i, j] == len(texts):
                texts.append(text)
    counts = [_grams(tokenize(t)) for t in texts]
    df: dict[tuple[str, ...], int] = {}
    for row in refs:  # document frequency: images whose references hold the n-gram
        for gram in set().union(*(counts[t] for t in row if t >= 0)):
            df[gram] = df.get(gram, 0) + 1
    log_n = math.log(max(len(references), 1))
    columns = {gram: c for c, gram in enumerate(df)}
    rows, cols, vals = [], [], []
    for r, grams in enumerate(counts):
        weights = np.zeros(MAX_N)  # squared norm per order
        entries = [(g, tf * (log_n - math.log(df[g]))) for g, tf in grams.items()]
        for g, w in entries:
            weights[len(g) - 1] += w * w
        for g, w in entries:
            norm = math.sqrt(weights[len(g) - 1])
            if norm > 0:
                rows.append(r)
                cols.append(columns[g])
                vals.append(w / norm / math.sqrt(MAX_N))
    shape = (len(texts), len(columns))
    vectors = sparse.csr_matrix((vals, (rows, cols)), shape=shape, dtype=np.float64)
    return Pool(texts, refs, vectors)


def consensus_pick(vectors: sparse.csr_matrix, candidates: np.ndarray) -> int:
    """The index (into ``candidates``, text ids, repeats allowed) of the candidate with the
    highest mean similarity to the other candidates; the first on ties."""
    if len(candidates) == 1:
        return 0
    v = vectors[candidates]  # (m, G)
    total = np.asarray(v.sum(axis=0)).ravel()  # (G,)
    own = np.asarray(v.multiply(v).sum(axis=1)).ravel()  # (m,) each one's self-similarity
    score = (v @ total - own) / (len(candidates) - 1)  # (m,)
    return int(np.argmax(score))


def retrieve(pool: Pool, neighbours: np.ndarray, k: int) -> list[str]:
    """Per query, the consensus caption among the references of its ``k`` nearest pool images
    (``neighbours`` (Q, >= k) pool indices, nearest first)."""
    out = []
    for row in neighbours[:, :k]:
        ids = pool.refs[row].ravel()  # (k * R,) nearest image's references first
        ids = ids[ids >= 0]
        out.append(pool.texts[ids[consensus_pick(pool.vectors, ids)]])
    return out


def _unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float32).reshape(len(x), -1)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def nearest(
    queries: np.ndarray, pool: np.ndarray, k: int, chunk: int = 2048, query_chunk: int = 512
) -> np.ndarray:
    """(Q, k) indices of the ``k`` pool rows nearest to each query by cosine, nearest first
    (equal similarities: the lower index first). Rows are flattened; queries and pool are read
    in chunks, in float32: neither a 42k x 4096 pixel pool nor a test split's (Q, chunk)
    similarities and their int64 indices are ever held whole (they cost ~500 MB on MedNIST)."""
    parts = [
        _nearest_block(queries[start : start + query_chunk], pool, k, chunk)
        for start in range(0, len(queries), query_chunk)
    ]
    return np.concatenate(parts) if parts else np.zeros((0, min(k, len(pool))), np.int64)


def _nearest_block(queries: np.ndarray, pool: np.ndarray, k: int, chunk: int) -> np.ndarray:
    """``nearest`` for one chunk of queries."""
    q = _unit(queries)  # (Q, D)
    k = min(k, len(pool))
    best = np.full((len(q), 0), -np.inf, np.float32)
    index = np.zeros((len(q), 0), np.int64)
    for start in range(0, len(pool), chunk):
        block = _unit(pool[start : start + chunk])  # (c, D)
        sims = np.concatenate([best, q @ block.T], axis=1)  # (Q, k + c)
        new = np.broadcast_to(np.arange(start, start + len(block)), (len(q), len(block)))
        ids = np.concatenate([index, new], axis=1)
        if sims.shape[1] > k:
            keep = np.argpartition(-sims, k - 1, axis=1)[:, :k]
            sims, ids = np.take_along_axis(sims, keep, 1), np.take_along_axis(ids, keep, 1)
        best, index = sims, ids
    order = np.lexsort((index, -best), axis=1)  # by similarity, then by index
    return np.take_along_axis(index, order, 1)


def choose_k(pool: Pool, neighbours: np.ndarray, references, tokenize, grid=K_GRID):
    """The k of ``grid`` whose retrieval scores the highest CIDEr-D against ``references``
    (the validation split's; ``neighbours`` its nearest pool images), and every k's score;
    ties: the smaller k."""
    refs = [[tokenize(r) for r in row] for row in references]
    scores = {}
    for k in grid:
        if k > neighbours.shape[1] and k > min(grid):
            continue
        hyps = [tokenize(t) for t in retrieve(pool, neighbours, k)]
        scores[k] = round(float(corpus_cider_d(hyps, refs)), 6)
    return max(scores, key=lambda k: (scores[k], -k)), scores


def constant_caption(pool: Pool, sample: int = CONSTANT_SAMPLE, seed: int = 0) -> str:
    """The train caption closest to the others: the highest mean consensus similarity to the
    references of a seeded sample of ``sample`` pool images."""
    rng = np.random.default_rng(seed)
    rows = rng.permutation(len(pool))[:sample]
    ids = pool.refs[rows].ravel()
    ids = ids[ids >= 0]
    return pool.texts[ids[consensus_pick(pool.vectors, ids)]]


def _metric_block(captions, evalset, meteor: bool) -> dict:
    from captioning.metrics import score_captions

    scores = score_captions(captions, evalset.references, split=evalset.tokenize, meteor=meteor)
    return {
        k: v if v is None or isinstance(v, str) else round(float(v), 6) for k, v in scores.items()
    }


def caption_baselines(captioner, evalset, pool_set, val_set, meteor: bool = True) -> dict:
    """The ``baselines`` of a captioner report on ``evalset``: each the metric block of the
    model's corpus metrics (same references, tokenisation and scorer) plus its settings.
    ``pool_set``: the run's train split (the captions retrieved); ``val_set``: its validation
    split (where k is chosen); ``captioner``: gives the encoder's pooled vectors."""
    pool = build_pool(pool_set.references, evalset.tokenize)
    where = f"train split ({len(pool)} images)"
    constant = constant_caption(pool)
    out = {
        "constant": {
            **_metric_block([constant] * len(evalset), evalset, meteor),
            "caption": constant,
            "how": f"the train caption with the highest mean consensus similarity ({CONSENSUS}) "
            f"to the references of {min(CONSTANT_SAMPLE, len(pool))} train images "
            "(seeded sample, seed 0)",
            "pool": where,
        }
    }
    rng = np.random.default_rng(0)
    val_rows = np.sort(rng.permutation(len(val_set))[:VAL_SAMPLE])
    val_images = val_set.images[val_rows]
    val_refs = [val_set.references[i] for i in val_rows]
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
        captions = retrieve(part, nearest(embed(evalset.images), train, k), k)
        out[name] = {
            **_metric_block(captions, evalset, meteor),
            "k": k,
            "k_grid_val_cider": {str(key): value for key, value in by_k.items()},
            "k_chosen_on": f"val ({len(val_rows)} images, seeded sample)",
            "space": f"{described}, {int(np.prod(train.shape[1:]))}-d, cosine",
            "consensus": CONSENSUS,
            "pool": where
            if rows is None
            else f"train split, {len(rows)} of {len(pool)} images (seeded sample)",
        }
    split = evalset.evaluated.get("split")
    if split in ("train", "val"):
        used = "retrieve from" if split == "train" else "choose k on"
        out["note"] = f"the evaluated split is '{split}', which the baselines {used}"
    return out


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
    from captioning.metrics import score_captions

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
    model = score_captions(generated, val.references, split=val.tokenize)["cider"]
    pool = build_pool(pool_set.references, val.tokenize)
    train = captioner.pooled_features(pool_set.images)
    neighbours = nearest(captioner.pooled_features(val.images), train, max(K_GRID))
    k, by_k = choose_k(pool, neighbours, val.references, val.tokenize)
    return {"n": len(val), "model_cider": round(float(model), 6), "baseline_cider": by_k[k], "k": k}
