"""RandomAffine: one warp per image, with the ranges AugmentConfig names, seeded."""

import numpy as np
import pytest

from captioning.config import AugmentConfig
from captioning.data.augment import RandomAffine, build_augmenter


def dot(n=8, row=20, col=40):
    """(n, 64, 64, 1) frames, black but for one white pixel at (row, col)."""
    images = np.zeros((n, 64, 64, 1), "float32")
    images[:, row, col] = 255.0
    return images


def brightest(images):
    """(row, col) of each frame's brightest pixel."""
    return [np.unravel_index(frame[..., 0].argmax(), frame.shape[:2]) for frame in images]


def test_no_ranges_or_no_training_leave_the_images_as_they_are():
    images = dot()
    np.testing.assert_array_equal(RandomAffine(seed=0)(images, training=True), images)
    warp = RandomAffine(0.2, 0.2, 0.2, 0.2, flip=True, seed=0)
    np.testing.assert_array_equal(warp(images, training=False), images)


def test_translation_moves_each_image_within_its_range_and_keeps_its_mass():
    out = RandomAffine(translate=0.05, seed=0)(dot(), training=True).numpy()
    places = brightest(out)
    assert len(set(places)) > 1, "every image drew the same shift"
    for row, col in places:  # 5% of 64 px = 3.2 px either way
        assert abs(row - 20) <= 4 and abs(col - 40) <= 4
    np.testing.assert_allclose(out.sum(axis=(1, 2, 3)), 255.0, rtol=1e-4)


def test_flip_mirrors_about_the_vertical_axis():
    places = set(brightest(RandomAffine(flip=True, seed=1)(dot(16), training=True).numpy()))
    assert places == {(20, 40), (20, 63 - 40)}


def test_zoom_scales_about_the_centre():
    out = RandomAffine(zoom=0.3, seed=2)(dot(16, row=10, col=10), training=True).numpy()
    distances = [np.hypot(r - 31.5, c - 31.5) for r, c in brightest(out)]
    base = np.hypot(10 - 31.5, 10 - 31.5)  # zoom in [0.7, 1.3]: distance scales with it
    assert min(distances) < base < max(distances)
    assert 0.7 * base - 1.5 <= min(distances) and max(distances) <= 1.3 * base + 1.5


def test_same_seed_same_warps_and_config_round_trip():
    images = np.random.default_rng(0).uniform(0, 255, (4, 64, 64, 1)).astype("float32")
    first = RandomAffine(0.05, 0.05, 0.02, 0.1, flip=True, seed=7)
    clone = RandomAffine.from_config(first.get_config())
    np.testing.assert_array_equal(first(images, training=True), clone(images, training=True))
    other = RandomAffine(0.05, 0.05, 0.02, 0.1, flip=True, seed=8)
    assert not np.array_equal(first(images, training=True), other(images, training=True))


@pytest.mark.parametrize(
    ("config", "built"),
    [(AugmentConfig(translate=0, zoom=0), False), (AugmentConfig(), True)],
)
def test_build_augmenter_is_none_when_everything_is_off(config, built):
    assert (build_augmenter(config, seed=0) is not None) == built
