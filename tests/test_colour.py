"""The colour a file carries beyond a tint of its grey (``colour_spread``), and who refuses it
(``captioning.scope.colour``): only a grey run, only above the limit."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from captioning.data.image_spec import ImageSpec
from captioning.data.images import colour_spread, open_image
from captioning.scope.colour import COLOUR_LIMIT, colour_reason, colour_refused


def grey_scene(side: int = 96) -> np.ndarray:
    y, x = np.mgrid[0:side, 0:side]
    return (128 + 100 * np.sin(x / 9.0) * np.cos(y / 13.0)).astype(np.float64)


def test_grey_and_tinted_grey_have_no_colour_and_a_false_colour_image_has_much():
    grey = grey_scene()
    as_rgb = np.repeat(grey[..., None], 3, -1).astype(np.uint8)
    assert colour_spread(as_rgb) == pytest.approx(0.0, abs=1e-3)
    tinted = np.stack([grey * 0.9 + 12, grey, grey * 0.8 + 20], -1).astype(np.uint8)
    assert colour_spread(tinted) < 1.0  # a per-channel gain and offset is no colour
    hue = np.stack([grey, 255 - grey, np.abs(grey - 128) * 2], -1).clip(0, 255)
    assert colour_spread(hue.astype(np.uint8)) > 5 * COLOUR_LIMIT
    flat = np.full((8, 8, 3), [200, 30, 30], np.uint8)  # one colour, no grey variation
    assert colour_spread(flat) == pytest.approx(0.0, abs=1e-3)  # a tint of a flat grey


def encoded(array: np.ndarray, fmt: str, mode: str | None = None) -> bytes:
    out = io.BytesIO()
    image = Image.fromarray(array.clip(0, 255).astype(np.uint8))
    (image.convert(mode) if mode else image).save(out, format=fmt)
    return out.getvalue()


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_files_grey_stored_as_rgb_or_rgba_are_not_colour(fmt):
    grey = grey_scene(300)
    for mode in ("RGB", "RGBA") if fmt == "PNG" else ("RGB",):
        data = encoded(np.repeat(grey[..., None], 3, -1), fmt, mode)
        assert open_image(data).colour < 1.0, mode
    assert open_image(encoded(grey, fmt)).colour == 0.0  # a grey file is not measured
    hue = np.stack([grey, 255 - grey, np.abs(grey - 128) * 2], -1)
    for spec in (ImageSpec(64, 1), ImageSpec(64, 3)):  # measured whatever the run reads
        assert open_image(encoded(hue, fmt), spec=spec).colour > COLOUR_LIMIT


def test_only_a_grey_run_refuses_colour_and_only_above_the_limit():
    spreads = np.array([0.0, COLOUR_LIMIT, COLOUR_LIMIT + 0.1, 40.0])
    assert colour_refused(spreads, channels=1).tolist() == [False, False, True, True]
    assert not colour_refused(spreads, channels=3).any()
    assert colour_reason(40.0).startswith("it is a colour image (40.0 levels")
