"""Decode any PNG, JPEG or DICOM file into the 8-bit array every model here reads: SxS grey
or RGB as the ``ImageSpec`` says (default MedNIST's 64x64 grey).

Conversions (the same for data preparation, evaluation and captioning):

- 16-bit and 32-bit grayscale: linearly rescaled from the image's own min..max to 0..255
  (medical PNGs rarely use the full 16-bit range; a plain ``>> 8`` would make them black).
- Grey specs: RGB, palette, CMYK become ITU-R 601 luma (Pillow's ``convert("L")``).
- RGB specs: Pillow's ``convert("RGB")`` (grey files repeat their level on the 3 channels).
- RGBA / LA / palette with transparency: composited on black first (radiographs have black air).
- Any size: resized to SxS (``fit`` ``stretch``), or first padded with black to a centred
  square, keeping its proportions (``fit`` ``pad``; ``captioning.data.image_spec``), with
  Pillow's area-averaging ``BOX`` filter, or bilinear when enlarging along either side.
- More than ``MAX_PIXELS`` pixels: refused before decoding (decompression-bomb guard).
- DICOM (recognised by its ``DICM`` marker, whatever the file name): through its own window
  first (``captioning.data.dicom``; needs the optional ``pydicom``), then the rules above.

Decoding also measures the file's colour (``colour_spread``), which a grey model input has
lost: the out-of-scope check of a grey run reads it (``captioning.scope.colour``).
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path
from typing import NamedTuple

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


COLOUR_SAMPLES = 256  # colour_spread reads at most this many pixels along each side
LUMA = (0.299, 0.587, 0.114)  # ITU-R 601


class Decoded(NamedTuple):
    """A decoded file: the model's pixels, the original size and its colour."""

    pixels: np.ndarray  # ``spec.cache_shape`` uint8
    size: tuple[int, int]  # the original (width, height)
    colour: float  # ``colour_spread`` of the original's RGB (0.0 for a grey file)


def colour_spread(rgb: np.ndarray) -> float:
    """(H, W, 3) uint8 -> the colour of an image that no tint of its grey level explains: the
    RMS (in levels 0..255), over the three channels, of each channel's residual after its best
    linear fit on the luma. 0 for grey stored as RGB, and for a grey image tinted by per-channel
    gains and offsets; tens of levels for a colour photograph. Read on every k-th row and
    column, k = ceil(longest side / ``COLOUR_SAMPLES``) (the same pixels in the SavedModel's
    twin, ``captioning.export.images``)."""
    step = max(1, -(-max(rgb.shape[:2]) // COLOUR_SAMPLES))
    x = np.asarray(rgb[::step, ::step], np.float64).reshape(-1, 3)  # (n, 3)
    y = x @ np.array(LUMA)  # (n,)
    xc, yc = x - x.mean(0), y - y.mean()
    var_y = (yc**2).mean()
    explained = ((xc * yc[:, None]).mean(0) ** 2 / var_y) if var_y > 0 else 0.0  # (3,)
    return float(np.sqrt(max(((xc**2).mean(0) - explained).mean(), 0.0)))


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
    return open_image(source, name, spec).pixels


def open_image(
    source: str | Path | bytes, name: str | None = None, spec: ImageSpec = DEFAULT_IMAGE
) -> Decoded:
    """``load_image`` with the original's size and colour (``Decoded``)."""
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
        return decode_image(data, label, spec)
    except ImageError:
        raise
    except FileNotFoundError:
        raise ImageError(label, "no such file") from None
    except OSError as err:
        raise ImageError(label, f"cannot read file ({err.strerror or err})") from None


def decode_image(
    data: bytes, label: str = "<bytes>", spec: ImageSpec = DEFAULT_IMAGE, colour: bool = True
) -> Decoded:
    """Decode PNG/JPEG/DICOM bytes: the uint8 array of ``spec.cache_shape``, the original
    (width, height) and, with ``colour``, its ``colour_spread`` (else 0.0).

    See the module doc for the conversions. Raises ``ImageError`` only.
    """
    if is_dicom(data):
        return _decode_dicom(data, label, spec, colour)
    try:
        image = Image.open(io.BytesIO(data), formats=("PNG", "JPEG"))
        width, height = image.size
        if width * height > MAX_PIXELS:
            raise ImageError(label, f"image too large ({width}x{height} > {MAX_PIXELS:,} pixels)")
        spread = None
        if image.format == "JPEG":
            if colour and spec.mode == "L" and image.mode != "L":  # drafted to grey below
                spread = _jpeg_colour(data, spec)
            image.draft(spec.mode, (spec.size, spec.size))  # decode at reduced scale: fast
        image.load()
        pixels, measured = _to_square(image, spec, colour and spread is None)
        return Decoded(pixels, (width, height), measured if spread is None else spread)
    except ImageError:
        raise
    except UnidentifiedImageError:
        raise ImageError(label, "not a PNG, JPEG or DICOM image") from None
    except Image.DecompressionBombError:
        raise ImageError(label, "image too large (decompression-bomb guard)") from None
    except (OSError, SyntaxError, ValueError, EOFError) as err:
        raise ImageError(label, f"corrupt or truncated image ({err})") from None


def _jpeg_colour(data: bytes, spec: ImageSpec) -> float:
    """``colour_spread`` of a colour JPEG decoded as RGB at the scale a grey draft uses."""
    image = Image.open(io.BytesIO(data), formats=("JPEG",))
    image.draft("RGB", (spec.size, spec.size))
    return colour_spread(np.asarray(image.convert("RGB")))


def _decode_dicom(data: bytes, label: str, spec: ImageSpec, colour: bool) -> Decoded:
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
    square, spread = _to_square(image, spec, colour)
    return Decoded(square, (width, height), spread)


def _to_square(image: Image.Image, spec: ImageSpec, colour: bool) -> tuple[np.ndarray, float]:
    """A decoded Pillow image -> (S, S) or (S, S, 3) uint8 by the module doc's rules, and
    (with ``colour``) its ``colour_spread`` after compositing (0.0 for a grey image)."""
    if image.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
        pixels = np.asarray(image, dtype=np.float64)
        low, high = float(pixels.min()), float(pixels.max())
        scaled = (pixels - low) * (255.0 / (high - low)) if high > low else pixels * 0
        image = Image.fromarray(np.round(scaled).astype(np.uint8), mode="L")
    elif image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        black = Image.new("RGBA", rgba.size, (0, 0, 0, 255))
        image = Image.alpha_composite(black, rgba)
    grey = image.mode in ("L", "LA", "1")  # 16-bit and float grey became L above
    spread = colour_spread(np.asarray(image.convert("RGB"))) if colour and not grey else 0.0
    if image.mode != spec.mode:
        image = image.convert(spec.mode)
    width, height = image.size
    if width != height and spec.fit == "pad":
        side = max(width, height)
        square = Image.new(spec.mode, (side, side), 0)
        square.paste(image, ((side - width) // 2, (side - height) // 2))
        image = square
    return np.asarray(_resize(image, spec.size), dtype=np.uint8), spread


def _resize(image: Image.Image, side: int) -> Image.Image:
    """``image`` -> side x side: bilinear when a side is enlarged, else box; one pass across
    the columns, then one down the rows. Two calls rather than one: Pillow picks the order of
    its two passes by their cost in some versions, and the 8-bit rounding between them makes
    the order show (the SavedModel's twin, ``captioning.export.images``, fixes the same)."""
    if image.size == (side, side):
        return image
    enlarge = min(image.size) < side
    resample = Image.Resampling.BILINEAR if enlarge else Image.Resampling.BOX
    across = image.resize((side, image.size[1]), resample)
    return across.resize((side, side), resample)
