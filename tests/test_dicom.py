"""DICOM files, written here with pydicom: the window, MONOCHROME1, the modality rescale,
8-bit pixels as stored, damaged files as one-line errors, and captions through the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest

from captioning.data.images import ImageError, load_image

from helpers import cli

pydicom = pytest.importorskip("pydicom")


def write_dicom(path, pixels, photometric="MONOCHROME2", **tags):
    """A minimal valid DICOM Part 10 file holding ``pixels`` (uint8 or uint16, 2-D)."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    bits = pixels.dtype.itemsize * 8
    ds.set_pixel_data(pixels, photometric_interpretation=photometric, bits_stored=bits)
    for name, value in tags.items():
        setattr(ds, name, value)
    ds.save_as(path, enforce_file_format=True)
    return path


def ramp(dtype=np.uint16, high=4000):
    """(64, 64) values rising left to right from 0 to ``high``."""
    row = np.linspace(0, high, 64)
    return np.round(np.tile(row, (64, 1))).astype(dtype)


def test_window_centre_and_width_map_to_0_255_and_clip(tmp_path):
    pixels = ramp()
    path = write_dicom(tmp_path / "ct.dcm", pixels, WindowCenter=2000, WindowWidth=1001)
    got = load_image(path).astype(int)
    low, high = 2000 - 0.5 - 500, 2000 - 0.5 + 500  # DICOM's linear window
    want = np.round(np.clip((pixels - low) * 255 / (high - low), 0, 255)).astype(int)
    assert np.abs(got - want).max() <= 1  # Pillow's BOX resize at 64 -> 64 is the identity
    assert got[:, 0].max() == 0 and got[:, -1].min() == 255  # clipped both sides


def test_monochrome1_is_inverted_and_the_rescale_applies_first(tmp_path):
    pixels = ramp(high=1000)
    two = load_image(write_dicom(tmp_path / "m2.dcm", pixels))
    one = load_image(write_dicom(tmp_path / "m1.dcm", pixels, "MONOCHROME1"))
    assert np.array_equal(one.astype(int), 255 - two.astype(int))
    # stored 0..1000 with slope 2, intercept -1000 -> -1000..1000; a window on 0..1000 of the
    # rescaled values shows only the right half of the ramp
    rescaled = write_dicom(
        tmp_path / "hu.dcm",
        pixels,
        RescaleSlope=2,
        RescaleIntercept=-1000,
        WindowCenter=500,
        WindowWidth=1000,
    )
    got = load_image(rescaled)
    assert got[:, :31].max() == 0 and got[:, -1].min() == 255


def test_8_bit_pixels_without_a_window_are_taken_as_stored(tmp_path):
    pixels = (ramp(np.uint8, high=100) + 20).astype(np.uint8)  # 20..120, not stretched
    assert np.array_equal(load_image(write_dicom(tmp_path / "a.dcm", pixels)), pixels)


def test_damaged_dicom_is_one_line_naming_the_file(tmp_path):
    good = write_dicom(tmp_path / "good.dcm", ramp())
    bad = tmp_path / "bad.dcm"
    bad.write_bytes(good.read_bytes()[:400])  # the header survives, the pixels do not
    with pytest.raises(ImageError) as err:
        load_image(bad)
    assert str(bad) in str(err.value) and "\n" not in str(err.value)
    assert "DICOM" in str(err.value)


@pytest.mark.slow
def test_caption_reads_dicom_like_the_jpeg_it_was_made_from(mednist_small, tmp_path):
    jpegs = sorted((mednist_small / "images").rglob("*.jpeg"))[::40][:3]
    dicoms = [
        str(write_dicom(tmp_path / f"{p.stem}_{i}", load_image(p)))  # no suffix: found by marker
        for i, p in enumerate(jpegs)
    ]
    (tmp_path / "broken.dcm").write_bytes(b"\0" * 128 + b"DICM" + b"\x02\x00")
    files = [*map(str, jpegs), *dicoms, str(tmp_path / "broken.dcm")]
    done = cli("caption", *files, "--json", cwd=tmp_path)
    assert done.returncode == 1  # the broken file; the others are captioned
    entries = [json.loads(line) for line in done.stdout.splitlines()]
    from_jpeg, from_dicom, broken = entries[:3], entries[3:6], entries[6]
    for a, b in zip(from_jpeg, from_dicom, strict=True):
        assert (a.get("caption"), a.get("class")) == (b.get("caption"), b.get("class"))
        assert a["ood_score"] == b["ood_score"]
    assert "DICOM" in broken["error"]
