"""Decode any PNG, JPEG or DICOM file into the 8-bit array every model here reads: SxS grey
or RGB as the ``ImageSpec`` says (default MedNIST's 64x64 grey).

Conversions (the same for data preparation, evaluation and captioning):

- 16-bit and 32-bit grayscale: linearly rescaled from the image's own min..max to 0..255
  (medical PNGs rarely use the full 16-bit range; a plain ``>> 8`` would make them black).
- Grey specs: RGB, palette, CMYK become ITU-R 601 luma (Pillow's ``convert("L")``).
- RGB specs: Pillow's ``convert("RGB")`` (grey files repeat their level on the 3 channels).
- RGBA / LA / palette with transparency: composited on black first (radiographs have black air).
- Any size: padded with black to a centred square (keeps the aspect ratio), then resized to
  SxS with Pillow's area-averaging ``reduce``/``BOX`` filter, or bilinear when enlarging.
- More than ``MAX_PIXELS`` pixels: refused before decoding (decompression-bomb guard).
- DICOM (recognised by its ``DICM`` marker, whatever the file name): through its own window
  first (``captioning.data.dicom``; needs the optional ``pydicom``), then the rules above.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from captioning.data.dicom import DICOM_SUFFIXES, dicom_pixels, is_dicom
from captioning.data.image_spec import DEFAULT_IMAGE, ImageSpec
from captioning.errors import CaptioningError

MAX_PIXELS = 40_000_000  # 40 megapixels: larger than any radiograph, far below a bomb
IMAGE_SUFFIXES = (".jpeg", ".jpg", ".png")
CAPTION_SUFFIXES = IMAGE_SUFFIXES + DICOM_SUFFIXES  # what `caption FOLDER` picks up

# Our MAX_PIXELS check refuses big images before Pillow decodes them, so Pillow's own
# warning (at ~89 megapixels) would only add noise. Filtered once here rather than with
# warnings.catch_warnings() per call, which is not thread-safe (prepare decodes in threads).
warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)


class ImageError(CaptioningError, ValueError):
    """An image file could not be read; ``str()`` is one line naming the file and the problem."""

    def __init__(self, path: str | Path, problem: str):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


def load_image(
    source: str | Path | bytes, name: str | None = None, spec: ImageSpec = DEFAULT_IMAGE
) -> np.ndarray:
    """Read ``source`` (a path or the file's bytes) as a uint8 array of ``spec.cache_shape``
    ((64, 64) by default).

    Raises ``ImageError`` for anything that is not a readable PNG/JPEG/DICOM image; never
    another type.
    ``name`` labels bytes in error messages.
    """
    label = name or (str(source) if not isinstance(source, bytes) else "<bytes>")
    try:
        if isinstance(source, bytes):
            data = source
        else:
            path = Path(source)
            if path.is_dir():
                raise ImageError(label, "is a directory, not an image")
            data = path.read_bytes()
        if not data:
            raise ImageError(label, "empty file (0 bytes)")
        return decode_image(data, label, spec)[0]
    except ImageError:
        raise
    except FileNotFoundError:
        raise ImageError(label, "no such file") from None
    except OSError as err:
        raise ImageError(label, f"cannot read file ({err.strerror or err})") from None


def decode_image(
    data: bytes, label: str = "<bytes>", spec: ImageSpec = DEFAULT_IMAGE
) -> tuple[np.ndarray, tuple[int, int]]:
    """Decode PNG/JPEG/DICOM bytes: the uint8 array of ``spec.cache_shape`` and the original
    (width, height).

    See the module doc for the conversions. Raises ``ImageError`` only.
    """
    if is_dicom(data):
        return _decode_dicom(data, label, spec)
    try:
        image = Image.open(io.BytesIO(data), formats=("PNG", "JPEG"))
        width, height = image.size
        if width * height > MAX_PIXELS:
            raise ImageError(label, f"image too large ({width}x{height} > {MAX_PIXELS:,} pixels)")
        if image.format == "JPEG":
            image.draft(spec.mode, (spec.size, spec.size))  # decode at reduced scale: fast
        image.load()
        return _to_square(image, spec), (width, height)
    except ImageError:
        raise
    except UnidentifiedImageError:
        raise ImageError(label, "not a PNG, JPEG or DICOM image") from None
    except Image.DecompressionBombError:
        raise ImageError(label, "image too large (decompression-bomb guard)") from None
    except (OSError, SyntaxError, ValueError, EOFError) as err:
        raise ImageError(label, f"corrupt or truncated image ({err})") from None


def _decode_dicom(data: bytes, label: str, spec: ImageSpec) -> tuple[np.ndarray, tuple[int, int]]:
    try:
        pixels = dicom_pixels(data)
    except ImportError:
        raise ImageError(
            label, 'DICOM file, but pydicom is not installed (pip install "captioning[dicom]")'
        ) from None
    except Exception as err:  # pydicom raises many types for damaged files
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ImageError(label, f"unreadable DICOM file ({first})") from None
    height, width = pixels.shape[:2]
    if width * height > MAX_PIXELS:
        raise ImageError(label, f"image too large ({width}x{height} > {MAX_PIXELS:,} pixels)")
    image = Image.fromarray(pixels, mode="RGB" if pixels.ndim == 3 else "L")
    return _to_square(image, spec), (width, height)


def _to_square(image: Image.Image, spec: ImageSpec) -> np.ndarray:
    """A decoded Pillow image -> (S, S) or (S, S, 3) uint8 by the module doc's rules."""
    if image.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
        pixels = np.asarray(image, dtype=np.float64)
        low, high = float(pixels.min()), float(pixels.max())
        scaled = (pixels - low) * (255.0 / (high - low)) if high > low else pixels * 0
        image = Image.fromarray(np.round(scaled).astype(np.uint8), mode="L")
    elif image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        black = Image.new("RGBA", rgba.size, (0, 0, 0, 255))
        image = Image.alpha_composite(black, rgba).convert(spec.mode)
    if image.mode != spec.mode:
        image = image.convert(spec.mode)
    width, height = image.size
    if width != height:
        side = max(width, height)
        square = Image.new(spec.mode, (side, side), 0)
        square.paste(image, ((side - width) // 2, (side - height) // 2))
        image = square
    if image.size != (spec.size, spec.size):
        enlarge = image.size[0] < spec.size
        image = image.resize(
            (spec.size, spec.size), Image.Resampling.BILINEAR if enlarge else Image.Resampling.BOX
        )
    return np.asarray(image, dtype=np.uint8)
