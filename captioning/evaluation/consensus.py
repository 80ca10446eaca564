"""Consensus re-ranking of retrieved captions (Devlin et al. 2015): among candidate captions,
the one with the highest mean similarity to the others.

Similarity of two captions: the mean over n = 1..4 of the cosine of their n-gram TF-IDF
vectors (IDF from the pool's images), i.e. CIDEr's vector similarity without CIDEr-D's length
penalty and clipping. Each pool text has one sparse row in ``Pool.vectors``, unit norm per
order and scaled so that a dot product is the mean cosine over the orders.

``consensus_pick`` re-ranks one candidate list; ``consensus_picks`` re-ranks many at once with
numpy (the retrieval baselines re-rank every image of a split for every k of a grid: a Python
loop over the images was most of their time). Both compute each score with the same float
operations in the same order (column sums over the candidates in their order, then one dot
product per candidate), so they pick the same caption, ties included.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np
from scipy import sparse

from captioning.metrics.cider import MAX_N, ngram_counts

CELLS = 1 << 20  # consensus_picks: column sums held at once (8 MiB) ...
ENTRIES = 1 << 16  # ... and vector entries of the candidates taken at once


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
    counts = [ngram_counts(tokenize(t), MAX_N) for t in texts]
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
    return int(np.argmax(consensus_scores(vectors, candidates)))


def consensus_scores(vectors: sparse.csr_matrix, candidates: np.ndarray) -> np.ndarray:
    """(m,) each candidate's mean similarity to the other candidates (``candidates``: text
    ids, repeats allowed); a lone candidate scores 0."""
    if len(candidates) == 1:
        return np.zeros(1)
    v = vectors[candidates]  # (m, G)
    total = np.asarray(v.sum(axis=0)).ravel()  # (G,)
    own = np.asarray(v.multiply(v).sum(axis=1)).ravel()  # (m,) each one's self-similarity
    return (v @ total - own) / (len(candidates) - 1)  # (m,)


def consensus_picks(vectors: sparse.csr_matrix, ids: np.ndarray, query: np.ndarray) -> np.ndarray:
    """``consensus_pick`` of many candidate lists at once: ``ids`` (P,) text ids, the lists
    one after another; ``query`` (P,) the list of each (0, 1, 2, ..., each at least once,
    non-decreasing). Returns, per list, the position (into ``ids``) of its pick. Lists are
    taken in blocks of about ``ENTRIES`` vector entries whose column sums fit ``CELLS``
    floats: small enough to stay in cache (4x faster than one block on MedNIST-sized input)."""
    if not len(ids):
        return np.zeros(0, np.int64)
    n_lists = int(query[-1]) + 1
    entries = np.bincount(query, weights=np.diff(vectors.indptr)[ids], minlength=n_lists)
    before = np.cumsum(entries) - entries  # entries of the lists before each list
    step = max(1, CELLS // max(vectors.shape[1], 1))
    cuts = np.searchsorted(before, np.arange(0, before[-1] + entries[-1], ENTRIES), "right") - 1
    cuts = np.union1d(np.union1d(cuts, np.arange(0, n_lists, step)), [0, n_lists])
    edges = np.searchsorted(query, cuts)
    parts = [
        a + _picks_block(vectors, ids[a:b], query[a:b] - query[a])
        for a, b in itertools.pairwise(edges)
        if b > a
    ]
    return np.concatenate(parts)


def _picks_block(vectors: sparse.csr_matrix, ids: np.ndarray, query: np.ndarray) -> np.ndarray:
    """``consensus_picks`` of a block of lists (``query`` from 0)."""
    indptr = vectors.indptr
    starts, lens = indptr[ids], indptr[ids + 1] - indptr[ids]
    offsets = np.cumsum(lens) - lens  # where each candidate's entries begin
    at = np.repeat(starts - offsets, lens) + np.arange(offsets[-1] + lens[-1])
    position = np.repeat(np.arange(len(ids)), lens)  # entries: candidate by candidate
    vals = vectors.data[at]
    cell = query[position] * np.int64(vectors.shape[1]) + vectors.indices[at]
    total = np.bincount(cell, weights=vals)  # per list, candidates added in order (v.sum(0))
    dot = np.bincount(position, weights=vals * total[cell], minlength=len(ids))  # v @ total
    own = np.zeros(len(ids))  # each one's sum of squares, as v.multiply(v).sum(axis=1)
    filled = np.flatnonzero(lens)
    if len(filled):
        own[filled] = np.add.reduceat(vals * vals, offsets[filled])
    size = np.bincount(query)[query]  # candidates in each one's list
    score = np.where(size > 1, (dot - own) / np.maximum(size - 1, 1), 0.0)
    order = np.lexsort((np.arange(len(ids)), -score, query))  # best first, then the first
    first = np.concatenate(([True], query[order][1:] != query[order][:-1]))
    return order[first]
