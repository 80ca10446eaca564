"""DICOM files as images: the stored pixels through the file's own display window.

``pydicom`` is an optional extra (``pip install "captioning[dicom]"``). Rules, so that a DICOM
image looks as a radiologist's viewer shows it before the usual decoding rules apply:

- the modality LUT or rescale slope/intercept first (stored values -> e.g. Hounsfield units);
- then the window centre and width (the first, if several), or else the VOI LUT, when the file
  has one; without either, 8-bit pixels as stored and wider ones from their own min..max;
- ``MONOCHROME1`` (low values bright) inverted, so bone is bright as in ``MONOCHROME2``;
- colour (``RGB``, ``YBR_*``) converted to RGB by pydicom, then to luma like any RGB image;
- the first frame of a multi-frame file.
"""

from __future__ import annotations

import io

import numpy as np

DICOM_SUFFIXES = (".dcm", ".dicom")


def is_dicom(data: bytes) -> bool:
    """A DICOM Part 10 file: the 4 bytes ``DICM`` after a 128-byte preamble."""
    return data[128:132] == b"DICM"


def dicom_pixels(data: bytes) -> np.ndarray:
    """(H, W) uint8 for grayscale, (H, W, 3) uint8 for colour. Raises ``ValueError`` with one
    line for a file pydicom cannot decode, ``ImportError`` when pydicom is not installed."""
    import pydicom
    from pydicom.pixels import apply_modality_lut, apply_voi_lut

    dataset = pydicom.dcmread(io.BytesIO(data))
    if "PixelData" not in dataset:
        raise ValueError("DICOM file has no pixel data")
    try:
        pixels = dataset.pixel_array
    except Exception as err:  # missing codec, truncated data, inconsistent tags
        raise ValueError(f"cannot decode DICOM pixels ({str(err).splitlines()[0]})") from None
    frames = int(getattr(dataset, "NumberOfFrames", 1) or 1)
    if frames > 1:
        pixels = pixels[0]
    photometric = str(getattr(dataset, "PhotometricInterpretation", "MONOCHROME2"))
    if pixels.ndim == 3:  # colour: pydicom gives RGB for RGB and converts YBR on request
        if photometric.startswith("YBR"):
            from pydicom.pixels import convert_color_space

            pixels = convert_color_space(pixels, photometric, "RGB")
        return pixels if pixels.dtype == np.uint8 else _to_uint8(pixels, None, None)
    values = apply_modality_lut(pixels, dataset).astype(np.float64)
    low = high = None
    if "WindowCenter" in dataset and "WindowWidth" in dataset:  # DICOM PS3.3 C.11.2.1.2 linear
        centre, width = _first(dataset.WindowCenter), max(_first(dataset.WindowWidth), 1.0)
        low, high = centre - 0.5 - (width - 1) / 2, centre - 0.5 + (width - 1) / 2
    elif "VOILUTSequence" in dataset:
        values = apply_voi_lut(values, dataset, index=0).astype(np.float64)
    elif pixels.dtype == np.uint8 and np.array_equal(values, pixels):  # 8-bit, no rescale
        low, high = 0.0, 255.0
    gray = _to_uint8(values, low, high)
    return 255 - gray if photometric == "MONOCHROME1" else gray


def _first(value) -> float:
    """A window attribute may hold several values (one per window): the first."""
    from pydicom.multival import MultiValue

    return float(value[0]) if isinstance(value, (MultiValue, list, tuple)) else float(value)


def _to_uint8(values: np.ndarray, low: float | None, high: float | None) -> np.ndarray:
    """Linearly map ``low..high`` (default: the values' own range) to 0..255, clipping."""
    low = float(values.min()) if low is None else low
    high = float(values.max()) if high is None else high
    if high <= low:
        return np.zeros(values.shape, np.uint8)
    return np.round(np.clip((values - low) * (255.0 / (high - low)), 0, 255)).astype(np.uint8)
