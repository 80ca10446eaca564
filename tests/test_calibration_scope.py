"""Calibration error, temperature scaling, out-of-scope scores and their validation-only
threshold, and the finding confidences read from a decoder's distribution."""

from __future__ import annotations

import numpy as np
import pytest

from captioning.captions.templates import load_template_set
from captioning.confidence import locate_fields
from captioning.errors import RunError
from captioning.metrics.calibration import (
    class_groups,
    expected_calibration_error,
    fit_temperature,
    group_probs,
)
from captioning.scope import METHODS, fit_scope, mahalanobis_score, msp_score
from captioning.scope import neighbours as scope_neighbours


def test_ece_on_hand_made_probabilities():
    # bin 13 (0.9): accuracy 3/4, confidence 0.9 -> gap 0.15, weight 4/6
    # bin 9 (0.6): accuracy 1/2, confidence 0.6 -> gap 0.10, weight 2/6
    confidence = [0.9, 0.9, 0.9, 0.9, 0.6, 0.6]
    correct = [1, 1, 1, 0, 1, 0]
    assert expected_calibration_error(confidence, correct) == pytest.approx(0.4 / 3)
    assert expected_calibration_error([1.0, 1.0], [1, 1]) == pytest.approx(0.0)
    assert expected_calibration_error([1.0, 0.0], [0, 1]) == pytest.approx(1.0)
    assert expected_calibration_error([], []) is None
    # 2 bins: the same probabilities now share bin 1: accuracy 4/6, confidence 0.8
    assert expected_calibration_error(confidence, correct, bins=2) == pytest.approx(0.8 - 4 / 6)


def test_group_probs_sum_each_values_candidates():
    logits = np.log([[1.0, 1.0, 2.0, 1.0]])  # words: a (value 0), b (value 0), c (value 1), pad
    logits[0, 3] = -np.inf
    groups = np.array([[0, 0, 1, 0]])
    assert group_probs(logits, groups, 1.0, 2) == pytest.approx(np.array([[0.5, 0.5]]))
    # T = 2 flattens: weights 1, 1, sqrt(2)
    expected = 2 / (2 + np.sqrt(2))
    assert group_probs(logits, groups, 2.0, 2)[0, 0] == pytest.approx(expected)


@pytest.mark.parametrize("true_t", [0.5, 2.5])
def test_temperature_fit_recovers_a_known_temperature(true_t):
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 3, (20000, 4))
    probs = group_probs(logits, class_groups(len(logits), 4), true_t, 4)
    labels = (probs.cumsum(1) > rng.random((len(probs), 1))).argmax(1)  # drawn from probs
    fitted = fit_temperature(logits, class_groups(len(logits), 4), labels, 4)
    assert fitted == pytest.approx(true_t, rel=0.08)


def features(rng, n, shift=0.0):
    """Two well separated classes in 8 dimensions, their logits from a linear head, as the
    evidence ``encoder_outputs`` gives (every view a slice of the pooled vector, away from the
    origin as a ReLU network's features are), and labels."""
    labels = np.arange(n) % 2
    pooled = rng.normal(0, 1, (n, 8)) + 6 * labels[:, None] * np.eye(8)[0] + shift
    logits = np.stack([-pooled[:, 0], pooled[:, 0] - 6], 1) * 2
    lifted = pooled + 10
    views = {"features": lifted, "mid": lifted[:, :4], "pixels": lifted[:, 4:]}
    return {"pooled": pooled, "logits": logits, **views}, labels


def test_threshold_keeps_the_share_of_validation_images_and_ignores_everything_else():
    rng = np.random.default_rng(1)
    train, val = features(rng, 2000), features(rng, 1000)
    scope = fit_scope(*train, val[0], keep=0.99)
    for method, threshold in scope.thresholds.items():
        kept = scope.scores(val[0], method) <= threshold
        assert 0.99 <= kept.mean() < 0.995, method
    # the threshold is a function of the validation split: other test data cannot move it,
    # and a different validation split does
    again = fit_scope(*train, val[0], keep=0.99)
    assert again.thresholds == scope.thresholds
    np.testing.assert_array_equal(again.arrays["near_limits"], scope.arrays["near_limits"])
    other = features(rng, 1000, shift=0.5)
    moved = fit_scope(*train, other[0], keep=0.99)
    assert moved.thresholds["mahalanobis"] != scope.thresholds["mahalanobis"]
    assert not np.array_equal(moved.arrays["near_limits"], scope.arrays["near_limits"])


def test_mahalanobis_flags_far_points_and_msp_flags_uncertain_ones(tmp_path):
    rng = np.random.default_rng(2)
    train, val = features(rng, 2000), features(rng, 500)
    scope = fit_scope(*train, val[0], method="mahalanobis")
    near = scope.means  # the class means themselves
    far = near + 40.0
    d_near = mahalanobis_score(near, scope.means, scope.precision)
    assert d_near == pytest.approx(0.0, abs=1e-6)
    assert (mahalanobis_score(far, scope.means, scope.precision) > scope.threshold).all()
    assert msp_score(np.array([[0.0, 0.0]]))[0] == pytest.approx(0.5)
    assert msp_score(np.array([[20.0, 0.0]]))[0] < 1e-6
    scope.save(tmp_path)
    loaded = type(scope).load(tmp_path)
    assert loaded.thresholds == scope.thresholds and loaded.method == "mahalanobis"
    assert np.allclose(loaded.precision, scope.precision)
    assert type(scope).load(tmp_path / "none") is None


def test_finding_phrases_are_located_as_parse_back_reads_them():
    tset = load_template_set("findings")
    words = "chest ct with limited field coverage and abundant dense structures image bright"
    where = locate_fields(words.split(), tset)
    assert where["extent"] == (3, ("limited",), "small")
    assert where["density"] == (7, ("abundant",), "high")
    assert where["brightness"] == (11, ("bright",), "bright")
    assert locate_fields(["chest", "ct", "non-diagnostic"], tset) == {}


def test_auto_chooses_neighbours_with_enough_images_per_class_else_mahalanobis():
    rng = np.random.default_rng(2)
    assert fit_scope(*features(rng, 200), features(rng, 100)[0]).method == "neighbours"
    assert fit_scope(*features(rng, 20), features(rng, 100)[0]).method == "mahalanobis"


@pytest.mark.parametrize("method", ["neighbours", "gaussian"])
def test_rule_judges_an_image_against_the_class_it_is_given_and_says_why(tmp_path, method):
    rng = np.random.default_rng(3)
    train, val = features(rng, 2000), features(rng, 1000)
    scope = fit_scope(*train, val[0], method=method)
    assert scope.method == method and scope.threshold == 1.0
    probe, _ = features(rng, 4)  # like the training images, classes 0, 1, 0, 1
    assert scope.in_scope(scope.scores(probe)).all()
    assert scope.reasons(probe, ["a", "b"]) == [None] * 4
    # the same features, but the head gives the other class: unlike that class's images
    swapped = {**probe, "logits": probe["logits"][:, ::-1]}
    assert not scope.in_scope(scope.scores(swapped)).any()
    why = scope.reasons(swapped, ["a", "b"])
    assert all("unlike the training images of" in line for line in why), why
    assert "training images of b" in why[0] and "training images of a" in why[1]
    # a class without training images is never in scope, and the line says so
    only_a = fit_scope(train[0], np.zeros_like(train[1]), val[0], method=method)
    given_b = {**probe, "logits": np.tile([[0.0, 9.0]], (4, 1))}
    assert only_a.reasons(given_b, ["a", "b"]) == ["the model has no training images of b"] * 4
    scope.save(tmp_path)
    loaded = type(scope).load(tmp_path)
    np.testing.assert_allclose(loaded.scores(swapped), scope.scores(swapped))


def test_neighbours_refuse_the_gap_inside_a_class_that_its_gaussian_covers():
    # class 0 is two tight clusters (at -4 and +4 on the first axis): its Gaussian is centred
    # between them, where no training image lies; an image there is near that Gaussian's mean
    # but far from every image of the class
    rng = np.random.default_rng(4)

    def two_clusters(n):
        x = rng.normal(0, 0.3, (n, 8))
        x[:, 0] += np.where(np.arange(n) % 2, 4.0, -4.0)
        x[:, 1] += 10.0  # away from the origin: the neighbour views are unit-normalised
        return {
            "features": x,
            "mid": x[:, :4],
            "pixels": x[:, 4:],
            "pooled": x,
            "logits": np.zeros((n, 1)),
        }

    train, val, gap = two_clusters(3000), two_clusters(1000), two_clusters(50)
    gap = {**gap, "features": gap["features"] * [0, 1, 1, 1, 1, 1, 1, 1]}
    gap["mid"] = gap["features"][:, :4]
    labels = np.zeros(3000, int)
    by = {m: fit_scope(train, labels, val, method=m) for m in ("gaussian", "neighbours")}
    assert by["gaussian"].in_scope(by["gaussian"].scores(gap)).all()
    assert not by["neighbours"].in_scope(by["neighbours"].scores(gap)).any()
    assert by["neighbours"].in_scope(by["neighbours"].scores(val)).mean() >= 0.99


def test_a_scope_holds_only_its_own_rules_arrays_and_says_so_when_asked_for_another(tmp_path):
    rng = np.random.default_rng(5)
    train, val = features(rng, 400), features(rng, 200)
    scope = fit_scope(*train, val[0])  # auto: neighbours
    assert scope.methods == ("msp", "energy", "mahalanobis", "neighbours")
    assert set(scope.thresholds) == set(scope.methods)
    assert not any(key.endswith(("_means", "_roots")) for key in scope.arrays)
    with pytest.raises(RunError, match=r"no arrays of the 'gaussian' rule.*'neighbours'"):
        scope.scores(val[0], "gaussian")
    with pytest.raises(RunError, match="unknown out-of-scope method 'knn'"):
        scope.scores(val[0], "knn")
    scope.save(tmp_path)
    assert set(np.load(tmp_path / "scope.npz").files) == {"means", "precision", *scope.arrays}
    both = fit_scope(*train, val[0], rules=("gaussian",))  # experiments comparing rules
    assert both.methods == METHODS
    np.testing.assert_array_equal(both.scores(val[0]), scope.scores(val[0]))


def test_the_neighbour_bank_is_int8_and_its_distances_within_a_rounding_step():
    rng = np.random.default_rng(6)
    train, val = features(rng, 2000), features(rng, 300)
    arrays = scope_neighbours.fit(*train, val[0], 0.99, 2)
    exact = scope_neighbours.project(
        train[0]["features"], *(arrays[f"near_features_{part}"] for part in ("centre", "basis"))
    )
    bank, scale = arrays["near_features_bank"], arrays["near_features_scale"]
    assert bank.dtype == np.int8 and np.abs(bank).max() == 127
    assert np.all(np.abs(bank * scale - exact) <= scale / 2 + 1e-12)  # (M, m) vs (m,)
    # a query's nearest distance moves by at most the rounding of the bank
    z = scope_neighbours.project(
        val[0]["features"], *(arrays[f"near_features_{part}"] for part in ("centre", "basis"))
    )
    classes = val[0]["logits"].argmax(1)
    stored = scope_neighbours.nearest_distances(z, bank, train[1], classes, scale)
    unrounded = scope_neighbours.nearest_distances(z, exact, train[1], classes)
    step = np.sqrt((scale**2).sum()) / 2  # the longest rounding of one bank image
    assert np.all(np.abs(np.sqrt(stored) - np.sqrt(unrounded)) <= step + 1e-12)
