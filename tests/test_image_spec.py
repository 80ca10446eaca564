"""Image size and channels as a data setting (``ImageSpec``): the setting itself, the cache
written row by row, and real files decoded at 128 and 224, grey and RGB, through both prepare
paths (a class folder, a caption file)."""

from __future__ import annotations

import io
import json
import tarfile

import numpy as np
import pytest
from PIL import Image

from captioning.data.cache import CacheWriter, copy_rows
from captioning.data.dataset import PreparedData
from captioning.data.image_spec import DEFAULT_IMAGE, ImageSpec, with_channel_axis
from captioning.data.images import load_image
from captioning.data.prepare import PrepareOptions, prepare
from captioning.data.sources.prepare import CaptionFileOptions, prepare_caption_file
from captioning.errors import DataError

from helpers import cli

# A real MedPix 2.0 image (an MR slice printed in sepia: its three channels differ, so a swap
# of channels shows; 256 x 228) and the bound on the mean absolute difference between the
# cache of its PNG and of a JPEG copy. Measured (quality 90, stretched to the square): 2.14 (64
# grey: its 228 rows shrink 3.56-fold, the JPEG's half-scale draft 1.78-fold, and the box
# filter's windows fall differently; 0.27 padded, where both shrink by whole factors), 0.38
# (128 grey); on 60 MedPix images at 64 grey, median 1.21 and 90th percentile 2.96 stretched
# (0.22 and 3.24 padded). A shift of the image by one pixel costs 8 to 21, a swap of red and
# blue ~7.9.
COLOUR_IMAGE = "MPX1363_synpic43239.jpg"
JPEG_BOUND = 3.0
JPEG_QUALITY = 90  # not the archive's 92: re-encoding at the same quality would hide the error


def test_the_spec_checks_and_records_itself():
    assert ImageSpec(64, 1) == DEFAULT_IMAGE and DEFAULT_IMAGE.cache_shape == (64, 64)
    rgb = ImageSpec(224, 3)
    assert rgb.cache_shape == (224, 224, 3) and rgb.model_shape == (224, 224, 3)
    assert rgb.describe() == "224x224 RGB" and ImageSpec.from_card(rgb.card_fields()) == rgb
    assert ImageSpec.from_card({}) == ImageSpec(64, 1, "pad")  # a card from before the setting
    assert ImageSpec(64, 1, "pad").describe() == "64x64 grey, padded"
    assert DEFAULT_IMAGE.fit == "stretch"
    for size, channels in ((4, 1), (2048, 1), (64.0, 1), (64, 2), (64, True)):
        with pytest.raises(DataError, match=r"image (size|channels)"):
            ImageSpec(size, channels)
    with pytest.raises(DataError, match="image fit must be one of stretch, pad"):
        ImageSpec(64, 1, "crop")
    assert with_channel_axis(np.zeros((2, 8, 8))).shape == (2, 8, 8, 1)
    assert with_channel_axis(np.zeros((2, 8, 8, 3))).shape == (2, 8, 8, 3)


@pytest.mark.parametrize("spec", [DEFAULT_IMAGE, ImageSpec(32, 3)])
def test_the_cache_written_row_by_row_is_what_np_save_writes(tmp_path, spec):
    images = np.random.default_rng(0).integers(0, 256, (5, *spec.cache_shape), np.uint8)
    writer = CacheWriter(tmp_path / "rows.npy", 1000, spec)  # room for more: cut on close
    for image in images:
        writer.append(image)
    writer.close()
    np.save(tmp_path / "saved.npy", images)
    assert (tmp_path / "rows.npy").read_bytes() == (tmp_path / "saved.npy").read_bytes()
    copy_rows(tmp_path / "rows.npy", tmp_path / "picked.npy", [4, 0, 4], spec)
    np.testing.assert_array_equal(np.load(tmp_path / "picked.npy"), images[[4, 0, 4]])


def test_decoding_follows_the_spec():
    grey = np.tile(np.arange(0, 256, 2, dtype=np.uint8), (128, 1))  # (128, 128) ramp
    colour = np.stack([grey, grey // 2, 255 - grey], -1)  # (128, 128, 3)
    buffer = io.BytesIO()
    Image.fromarray(colour).save(buffer, format="PNG")
    data = buffer.getvalue()
    assert load_image(data).shape == (64, 64)
    as_rgb = load_image(data, spec=ImageSpec(128, 3))
    np.testing.assert_array_equal(as_rgb, colour)  # same size: untouched, channels in order
    as_grey = load_image(data, spec=ImageSpec(128, 1))
    np.testing.assert_array_equal(as_grey, np.asarray(Image.fromarray(colour).convert("L")))
    half = load_image(data, spec=ImageSpec(64, 3))
    assert half.shape == (64, 64, 3) and abs(int(half[0, 10, 0]) - int(colour[0, 20, 0])) <= 2


@pytest.mark.parametrize("size", [(160, 96), (96, 160), (40, 50)])
def test_a_file_that_is_not_square_is_stretched_or_padded(size):
    bright = Image.new("L", size, 200)  # a uniform grey: any black in the output is a bar
    buffer = io.BytesIO()
    bright.save(buffer, format="PNG")
    stretched = load_image(buffer.getvalue(), spec=ImageSpec(64, 1, "stretch"))
    np.testing.assert_array_equal(stretched, np.full((64, 64), 200, np.uint8))
    padded = load_image(buffer.getvalue(), spec=ImageSpec(64, 1, "pad"))
    short = round(64 * min(size) / max(size))  # the image's extent along its short side
    along = padded[:, 32] if size[0] > size[1] else padded[32, :]  # across the bars
    assert (along == 0).sum() in (64 - short, 64 - short + 1, 64 - short - 1)
    assert padded[32, 32] == 200


@pytest.fixture(scope="module")
def png_and_jpeg(medpix_archive, tmp_path_factory):
    """A folder ``Brain/`` with one real MedPix image as a PNG and a JPEG copy (quality 92),
    and a caption file naming both."""
    root = tmp_path_factory.mktemp("png-jpeg")
    with tarfile.open(medpix_archive) as tar:
        name = next(n for n in tar.getnames() if n.endswith("/" + COLOUR_IMAGE))
        original = Image.open(io.BytesIO(tar.extractfile(name).read()))
        original.load()
    assert original.mode == "RGB"
    folder = root / "images" / "Brain"
    folder.mkdir(parents=True)
    original.save(folder / "slice.png")
    Image.open(folder / "slice.png").save(folder / "slice.jpg", quality=JPEG_QUALITY)
    rows = ["image,caption,split", "Brain/slice.png,global atrophy,train"]
    rows.append("Brain/slice.jpg,global atrophy,train")
    (root / "captions.csv").write_text("\n".join(rows) + "\n")
    return root


def _prepared_pair(root, spec: ImageSpec, path: str, out) -> tuple[np.ndarray, np.ndarray]:
    """(png, jpeg) cached images of ``root`` prepared at ``spec`` through ``path``."""
    if path == "folder":
        prepare(out, PrepareOptions(source=str(root / "images"), image=spec), downloads=out)
    else:
        options = CaptionFileOptions(
            source=str(root / "captions.csv"), images=str(root / "images"), image=spec
        )
        prepare_caption_file(out, options)
    data = PreparedData(out)
    card = json.loads((out / "data_card.json").read_text())
    assert (card["image_size"], card["image_channels"]) == (spec.size, spec.channels)
    assert data.image_spec == spec and data.images.shape == (2, *spec.cache_shape)
    assert isinstance(data.images, np.memmap)
    order = {p.rsplit(".", 1)[-1]: i for i, p in enumerate(data.manifest["path"])}
    return data.images[order["png"]].astype(float), data.images[order["jpg"]].astype(float)


@pytest.mark.parametrize(
    ("spec", "path"),
    [
        (DEFAULT_IMAGE, "folder"),
        (ImageSpec(128, 1), "folder"),
        (ImageSpec(128, 3), "captions"),
        (ImageSpec(224, 3), "folder"),
    ],
)
def test_a_jpeg_copy_and_its_png_cache_alike(png_and_jpeg, tmp_path, spec, path):
    png, jpeg = _prepared_pair(png_and_jpeg, spec, path, tmp_path / "prepared")
    difference = np.abs(png - jpeg).mean()
    assert difference < JPEG_BOUND, difference
    # the bound can fail: one pixel of shift, or red and blue swapped, lies far beyond it
    assert np.abs(png[1:] - jpeg[:-1]).mean() > 2 * JPEG_BOUND
    if spec.channels == 3:
        assert np.abs(png - jpeg[..., ::-1]).mean() > 2 * JPEG_BOUND
        np.testing.assert_allclose(png.mean((0, 1)), jpeg.mean((0, 1)), atol=JPEG_BOUND)


def test_prepare_refuses_a_bad_setting_in_one_line(tmp_path):
    done = cli("data", "prepare", "--source", str(tmp_path), "--image-size", "4")
    assert done.returncode != 0
    assert done.stderr.strip().splitlines()[-1].startswith("error: image size must be")


def test_rgb_findings_and_pixel_statistics_read_the_grey_levels():
    """The template findings of an RGB image are those of its grey conversion, exactly; the
    scope's pixel statistics of a grey image stored as RGB are those of the grey image."""
    import pandas as pd
    import tensorflow as tf

    from captioning.captions.findings import measure
    from captioning.scope.evidence import pixel_statistics

    rng = np.random.default_rng(1)
    rgb = rng.integers(0, 256, (4, 40, 40, 3), dtype=np.uint8)
    grey = np.stack([np.asarray(Image.fromarray(x).convert("L")) for x in rgb])
    pd.testing.assert_frame_equal(measure(rgb), measure(grey))
    as_rgb = np.repeat(grey[..., None], 3, -1).astype(np.float32)
    np.testing.assert_allclose(
        pixel_statistics(tf.constant(as_rgb)).numpy(),
        pixel_statistics(tf.constant(grey[..., None].astype(np.float32))).numpy(),
        atol=1e-9,
    )


def test_a_run_decodes_with_the_fit_its_run_json_records():
    import keras

    from captioning.data.image_spec import run_image_spec

    model = keras.Sequential([keras.Input((32, 32, 1)), keras.layers.Flatten()])
    assert run_image_spec(model, {}, "run").fit == "pad"  # a run from before the setting
    recorded = ImageSpec(32, 1, "stretch").card_fields()
    assert run_image_spec(model, recorded, "run") == ImageSpec(32, 1, "stretch")
    with pytest.raises(DataError, match="inconsistent"):
        run_image_spec(model, ImageSpec(64, 1).card_fields(), "run")


def test_an_encoder_run_takes_data_of_its_size_and_channels_whatever_their_fit():
    from captioning.data.image_spec import check_same_images

    # a MedNIST copy prepared before the setting (read as padded) and a stretched encoder run
    check_same_images(ImageSpec(64, 1, "pad"), "data", ImageSpec(64, 1, "stretch"), "run")
    with pytest.raises(DataError, match="images are 128x128 grey, but the run run"):
        check_same_images(ImageSpec(128, 1), "data", ImageSpec(64, 1, "stretch"), "run")
