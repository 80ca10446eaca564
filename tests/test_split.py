"""The train/val/test split: grouped by content hash, stratified by class, seeded."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from captioning.data.dataset import PreparedData
from captioning.data.split import SPLITS, fold_counts, grouped_stratified_split, linked_groups


@pytest.mark.parametrize(
    ("fractions", "folds"),
    [
        ((0.8, 0.1, 0.1), (8, 1, 1)),
        ((0.7, 0.15, 0.15), (14, 3, 3)),
        ((0.6, 0.2, 0.2), (3, 1, 1)),
        ((0.8, 0.2, 0.0), (4, 1, 0)),
        ((1.0, 0.0, 0.0), (1, 0, 0)),
    ],
)
def test_fold_counts(fractions, folds):
    assert fold_counts(fractions) == folds


@pytest.mark.parametrize(
    "fractions", [(0.5, 0.5, 0.5), (0.9, 0.2, -0.1), (0.333, 0.333, 0.334), (0.805, 0.1, 0.095)]
)
def test_fold_counts_refuses_bad_fractions(fractions):
    with pytest.raises(ValueError, match="fractions"):
        fold_counts(fractions)


def synthetic(n_groups: int = 600, seed: int = 1):
    """Labels in 3 unbalanced classes; groups of 1 to 4 identical images within a class."""
    rng = np.random.default_rng(seed)
    group_labels = rng.choice(3, size=n_groups, p=[0.5, 0.3, 0.2])
    sizes = rng.integers(1, 5, size=n_groups)
    groups = np.repeat(np.arange(n_groups), sizes)
    labels = np.repeat(group_labels, sizes)
    order = rng.permutation(len(labels))
    return labels[order], np.array([f"md5-{g}" for g in groups[order]], dtype=object)


def test_groups_never_cross_splits():
    labels, groups = synthetic()
    names = grouped_stratified_split(labels, groups, seed=3)
    frame = pd.DataFrame({"group": groups, "split": names})
    assert (frame.groupby("group")["split"].nunique() == 1).all()


def test_fractions_and_strata_are_roughly_respected():
    labels, groups = synthetic()
    names = grouped_stratified_split(labels, groups, seed=0)
    assert set(names) == set(SPLITS)
    share = {s: np.mean(names == s) for s in SPLITS}
    assert share["train"] == pytest.approx(0.8, abs=0.03)
    assert share["val"] == pytest.approx(0.1, abs=0.02)
    assert share["test"] == pytest.approx(0.1, abs=0.02)
    overall = np.bincount(labels) / len(labels)
    for split in SPLITS:
        within = np.bincount(labels[names == split], minlength=3) / np.sum(names == split)
        np.testing.assert_allclose(within, overall, atol=0.05)


def test_other_fractions():
    labels, groups = synthetic()
    names = grouped_stratified_split(labels, groups, fractions=(0.6, 0.2, 0.2), seed=0)
    assert np.mean(names == "test") == pytest.approx(0.2, abs=0.03)
    assert np.mean(names == "train") == pytest.approx(0.6, abs=0.03)


def test_seeded_and_seed_dependent():
    labels, groups = synthetic()
    first = grouped_stratified_split(labels, groups, seed=5)
    again = grouped_stratified_split(labels, groups, seed=5)
    other = grouped_stratified_split(labels, groups, seed=6)
    np.testing.assert_array_equal(first, again)
    assert (first != other).any()


@pytest.mark.parametrize("n", [1, 2, 6, 9])
def test_fewer_groups_than_folds_still_split(n):
    labels = np.arange(n) % 2
    groups = np.arange(n)
    names = grouped_stratified_split(labels, groups, seed=0)
    assert len(names) == n and set(names) <= set(SPLITS)
    assert (names == "train").sum() >= max(1, n - 2)


def test_small_split_keeps_groups_together_and_follows_fractions():
    labels = np.array([0] * 6 + [1] * 6)
    groups = np.array([0, 0, 1, 2, 3, 4, 5, 5, 6, 7, 8, 9])  # 5 groups per class: < 10 folds
    names = grouped_stratified_split(labels, groups, fractions=(0.6, 0.2, 0.2), seed=0)
    assert names[0] == names[1] and names[6] == names[7]
    for label in (0, 1):  # 5 groups: 1 test, 1 val, 3 train
        per_group = pd.Series(names[labels == label]).groupby(groups[labels == label]).first()
        assert sorted(per_group) == ["test", "train", "train", "train", "val"]


def test_a_tiny_class_beside_large_ones_is_in_train():
    labels, groups = synthetic(300)
    labels = np.concatenate([labels, [7, 7, 7]])
    groups = np.concatenate([groups, ["tiny-0", "tiny-1", "tiny-2"]])
    for seed in range(5):
        names = grouped_stratified_split(labels, groups, seed=seed)
        assert "train" in set(names[labels == 7])
        assert set(names[labels == 0]) == set(SPLITS)


def test_single_split_fractions_put_everything_in_train():
    labels, groups = synthetic(50)
    names = grouped_stratified_split(labels, groups, fractions=(1.0, 0.0, 0.0))
    assert set(names) == {"train"}


def test_linked_groups_join_rows_that_share_any_key():
    cases = np.array(["a", "b", "c", "a", "d", "e"], dtype=object)
    md5 = np.array(["x", "y", "y", "z", "w", "w"], dtype=object)
    # b and c share an image; d and e share one; a's two rows share the case
    assert linked_groups(cases, md5).tolist() == [0, 1, 1, 0, 2, 2]
    assert linked_groups(md5).tolist() == [0, 1, 1, 2, 3, 3]
    chain = np.array([0, 1, 1, 2]), np.array([5, 5, 6, 6])  # 0-1 by key 2, 1-2, 2-3 by key 1
    assert linked_groups(*chain).tolist() == [0, 0, 0, 0]
    assert linked_groups(np.array([])).tolist() == []


def test_text_strata_and_linked_groups_keep_cases_whole():
    """A caption file's split: stratified by a label column's text values, grouped by case
    linked with content (as ``data prepare --group-column`` draws it)."""
    rng = np.random.default_rng(0)
    cases = np.repeat([f"case{i}" for i in range(120)], 3)
    modality = np.repeat(rng.choice(["CT", "MR", "US"], 120, p=[0.5, 0.4, 0.1]), 3).astype(object)
    md5 = np.array([f"m{i}" for i in range(360)], dtype=object)
    md5[5] = md5[10]  # case1 and case3 share an image
    names = grouped_stratified_split(modality, linked_groups(cases, md5), seed=0)
    frame = pd.DataFrame({"case": cases, "split": names, "modality": modality})
    assert (frame.groupby("case")["split"].nunique() == 1).all()
    assert names[5] == names[10]
    assert set(frame.loc[frame.modality == "CT", "split"]) == set(SPLITS)


# --- the real archive ---------------------------------------------------------------------


@pytest.mark.slow
def test_real_duplicates_never_cross_splits(mednist_full):
    data = PreparedData(mednist_full)
    manifest = data.manifest
    duplicated = manifest[manifest.duplicated("md5", keep=False)]
    assert duplicated["md5"].nunique() >= 100  # the real archive has hundreds of duplicate pairs
    assert (manifest.groupby("md5")["split"].nunique() == 1).all()
    assert (manifest.groupby("md5")["class"].nunique() == 1).all()
    assert data.card["duplicates"]["groups_across_splits"] == 0
    assert data.card["duplicates"]["groups"] == duplicated["md5"].nunique()


@pytest.mark.slow
def test_real_split_has_every_class_in_every_split(mednist_full):
    manifest = PreparedData(mednist_full).manifest
    counts = pd.crosstab(manifest["class"], manifest["split"])
    assert sorted(counts.columns) == sorted(SPLITS)
    assert len(counts) == 6
    assert (counts > 0).all().all()
    share = manifest["split"].value_counts(normalize=True)
    assert share["train"] == pytest.approx(0.8, abs=0.01)
    assert share["test"] == pytest.approx(0.1, abs=0.01)


@pytest.mark.slow
def test_real_card_counts_equal_the_manifest(mednist_full):
    data = PreparedData(mednist_full)
    card = json.loads((mednist_full / "data_card.json").read_text())
    manifest = data.manifest
    for name in card["classes"]:
        for split in SPLITS:
            rows = manifest[(manifest["class"] == name) & (manifest["split"] == split)]
            assert card["counts"][name][split] == len(rows)
    assert card["n_images"] == len(manifest) == len(data.images)
    assert sum(card["split_sizes"].values()) == len(manifest)
