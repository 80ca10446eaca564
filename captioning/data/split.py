"""Train/val/test split: seeded, stratified by class, grouped by content hash.

Byte-identical images (MedNIST has hundreds of duplicate pairs in AbdomenCT, and 94 identical
blank HeadCT slices) share a group, so no image can appear in two splits and leak. A caption
file may name a grouping column too (``data prepare --group-column case``): ``linked_groups``
joins it with the content hash, so neither a case nor an image straddles two splits.
"""

from __future__ import annotations

import math
import warnings

import numpy as np

SPLITS = ("train", "val", "test")


def fold_counts(fractions: tuple[float, float, float]) -> tuple[int, int, int]:
    """Express train/val/test fractions as whole folds: (0.8, 0.1, 0.1) -> (8, 1, 1)."""
    percents = [round(f * 100) for f in fractions]
    if (
        sum(percents) != 100
        or min(percents) < 0
        or any(abs(p - f * 100) > 1e-6 for p, f in zip(percents, fractions, strict=True))
    ):
        raise ValueError(f"split fractions must be whole percents summing to 1, got {fractions}")
    unit = math.gcd(*[p for p in percents if p])
    return tuple(p // unit for p in percents)  # type: ignore[return-value]


def grouped_stratified_split(
    labels: np.ndarray,
    groups: np.ndarray,
    fractions: tuple[float, float, float] = (0.8, 0.1, 0.1),
    seed: int = 0,
) -> np.ndarray:
    """Assign every sample to 'train', 'val' or 'test'.

    scikit-learn's ``StratifiedGroupKFold`` deals the groups into k folds of near-equal class
    balance; test takes the first folds, val the next, train the rest. Returns an object array
    of split names, aligned with ``labels``.

    When a class has fewer groups than folds (a handful of images, or a single split such as
    (1, 0, 0)), k-fold cannot deal them into every split (scikit-learn refuses outright when
    every class is that small, and otherwise leaves a small class out of some splits): each
    class's groups are then shuffled, the first ``floor(n * test)`` go to test, the next
    ``floor(n * val)`` to val and the rest to train.
    """
    n_train, n_val, n_test = fold_counts(fractions)
    n_folds = n_train + n_val + n_test
    if n_folds < 2 or _fewest_groups_per_class(labels, groups) < n_folds:
        return _small_split(labels, groups, fractions, seed)
    from sklearn.model_selection import StratifiedGroupKFold  # ~1 s: only when a split is made

    folds = np.zeros(len(labels), dtype=np.int64)
    splitter = StratifiedGroupKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    with warnings.catch_warnings():  # tiny subsets have fewer members per class than folds
        warnings.simplefilter("ignore", UserWarning)
        for fold, (_, members) in enumerate(splitter.split(np.zeros(len(labels)), labels, groups)):
            folds[members] = fold
    names = np.full(len(labels), "train", dtype=object)
    names[folds < n_test] = "test"
    names[(folds >= n_test) & (folds < n_test + n_val)] = "val"
    return names


def _fewest_groups_per_class(labels: np.ndarray, groups: np.ndarray) -> int:
    pairs = {(label, group) for label, group in zip(labels.tolist(), groups.tolist(), strict=True)}
    per_class: dict = {}
    for label, _ in pairs:
        per_class[label] = per_class.get(label, 0) + 1
    return min(per_class.values(), default=0)


def _small_split(
    labels: np.ndarray, groups: np.ndarray, fractions: tuple[float, float, float], seed: int
) -> np.ndarray:
    rng = np.random.default_rng(seed)
    names = np.full(len(labels), "train", dtype=object)
    unique, first = np.unique(groups, return_index=True)
    group_label = np.asarray(labels)[first]
    for label in np.unique(group_label):
        members = unique[group_label == label]
        members = members[rng.permutation(len(members))]
        n_test = math.floor(len(members) * fractions[2] + 1e-9)
        n_val = math.floor(len(members) * fractions[1] + 1e-9)
        names[np.isin(groups, members[:n_test])] = "test"
        names[np.isin(groups, members[n_test : n_test + n_val])] = "val"
    return names


def linked_groups(*keys: np.ndarray) -> np.ndarray:
    """Group ids (N,) int64 for ``grouped_stratified_split``: rows that share a value of any
    of ``keys`` (arrays aligned row by row, e.g. a case id and the content md5) share a group,
    and so does everything linked through such rows (two cases holding one byte-identical
    image become one group). Ids number the groups in order of their first row."""
    n = len(keys[0]) if keys else 0
    parent = list(range(n))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for key in keys:
        first: dict = {}
        for i, value in enumerate(np.asarray(key).tolist()):
            j = first.setdefault(value, i)
            if j != i:
                a, b = root(i), root(j)
                if a != b:
                    parent[max(a, b)] = min(a, b)
    # a group's root is its first row (links point to the lower row), so the sorted roots
    # number the groups in order of their first row
    _, ids = np.unique([root(i) for i in range(n)], return_inverse=True)
    return ids.astype(np.int64).reshape(n)
