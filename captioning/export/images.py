"""``captioning.data.images`` in TensorFlow ops, for the exported serving model.

The serving signature takes encoded files and must turn them into the same uint8 arrays that
``load_image`` (Pillow) gives for the run's ``ImageSpec`` (S, C): (S, S) grey or (S, S, 3) RGB,
(64, 64) by default, with TensorFlow alone. What is reproduced, and how:

- JPEG: Pillow decodes with ``draft(mode, (S, S))``: libjpeg's own grayscale output (the Y
  channel of a colour file) or its RGB output at the largest DCT scale 1/8, 1/4, 1/2 that keeps
  both sides >= S, with the accurate integer DCT. ``tf.io.decode_jpeg(channels=C, ratio=s,
  dct_method="INTEGER_ACCURATE")`` is the same libjpeg call (``ratio`` is picked per file).
- PNG: 8-bit grey as is; 16-bit grey rescaled from its own min..max (rounding half to even, as
  numpy does); alpha composited on black with Pillow's fixed-point ``alpha_composite`` first;
  then, for grey, colour through ITU-R 601 luma in Pillow's fixed point, and for RGB, grey
  repeated on the three channels.
- With ``fit`` ``pad``, a centred black square first; then Pillow's two-pass fixed-point
  resampling to SxS (``BOX`` when shrinking, ``BILINEAR`` when a side is enlarged), each
  channel alike: its coefficients, 22-bit integer weights and 8-bit rounding between the
  passes are computed here the way ``Resample.c`` does, across the columns first.

Each file's ``colour_spread`` is measured on the same pixels as Pillow's: a PNG's after alpha
compositing, a colour JPEG's RGB decode at the draft scale (for a grey spec, a second decode).

Not reproduced: CMYK/Adobe JPEGs, which ``decode_jpeg`` refuses (the call fails); 16-bit
colour PNGs are untested. A file that does not start like a PNG or JPEG, an empty one and one
over ``MAX_PIXELS`` get an error row instead of pixels; a file that starts like one but is
corrupt makes the whole call fail (graph ops cannot catch errors).
"""

from __future__ import annotations

import tensorflow as tf

from captioning.data.image_spec import DEFAULT_IMAGE, ImageSpec
from captioning.data.images import COLOUR_SAMPLES, LUMA, MAX_PIXELS

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
JPEG_MAGIC = b"\xff\xd8\xff"
PRECISION_BITS = 22  # Pillow's Resample.c, 8-bit images: 32 - 8 - 2


def _luma(rgb):
    """(H, W, 3) int32 -> (H, W) int32: Pillow's ``convert("L")``, L24(rgb) >> 16."""
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    return (r * 19595 + g * 38470 + b * 7471 + 0x8000) // 65536


def colour_spread(rgb):
    """(H, W, 3) int32 -> float64 scalar: ``captioning.data.images.colour_spread``."""
    step = (tf.maximum(tf.shape(rgb)[0], tf.shape(rgb)[1]) + COLOUR_SAMPLES - 1) // COLOUR_SAMPLES
    x = tf.cast(tf.reshape(rgb[::step, ::step], [-1, 3]), tf.float64)  # (n, 3)
    y = tf.linalg.matvec(x, tf.constant(LUMA, tf.float64))  # (n,)
    xc, yc = x - tf.reduce_mean(x, 0), y - tf.reduce_mean(y)
    var_y = tf.reduce_mean(yc**2)
    covariance = tf.reduce_mean(xc * yc[:, None], 0)  # (3,)
    explained = tf.where(var_y > 0, covariance**2 / tf.where(var_y > 0, var_y, 1.0), 0.0)
    residual = tf.reduce_mean(tf.reduce_mean(xc**2, 0) - explained)
    return tf.sqrt(tf.maximum(residual, 0.0))


def _on_black(colour, alpha):
    """Pillow's ``alpha_composite`` of a colour channel (int32) with ``alpha`` on opaque
    black: SHIFTFORDIV255(c * a * 128 + 128 << 7) >> 7."""
    t = colour * alpha * 128 + (0x80 << 7)
    return ((t // 256 + t) // 256) // 128  # non-negative: // is >>


def _png_pixels(data, spec: ImageSpec):
    """An 8- or 16-bit PNG -> (H, W, C) int32 levels 0..255, as ``images._to_square``, and
    its ``colour_spread``."""
    header = tf.io.decode_raw(tf.strings.substr(data, 24, 2), tf.uint8)
    depth, colour_type = tf.cast(header[0], tf.int32), tf.cast(header[1], tf.int32)

    def grey16():  # Pillow mode I;16: min..max -> 0..255, np.round (half to even)
        x = tf.cast(tf.io.decode_png(data, channels=1, dtype=tf.uint16)[..., 0], tf.float64)
        low, high = tf.reduce_min(x), tf.reduce_max(x)
        scaled = tf.where(high > low, (x - low) * (255.0 / tf.maximum(high - low, 1.0)), 0.0)
        pixels = tf.tile(tf.cast(tf.round(scaled), tf.int32)[..., None], [1, 1, spec.channels])
        return pixels, tf.constant(0.0, tf.float64)

    def eight_bit():  # grey, grey+alpha, RGB, RGBA, palette (expanded by libpng)
        x = tf.cast(tf.io.decode_png(data, channels=0, dtype=tf.uint8), tf.int32)  # (H, W, C)
        channels = tf.shape(x)[-1]
        grey = x[..., :1]
        colour = tf.cond(channels >= 3, lambda: x[..., :3], lambda: tf.tile(grey, [1, 1, 3]))
        alpha = tf.cond(
            tf.equal(channels % 2, 0), lambda: x[..., -1:], lambda: tf.fill(tf.shape(grey), 255)
        )
        composited = tf.where(tf.equal(channels % 2, 0), _on_black(colour, alpha), colour)
        spread = tf.cond(
            channels >= 3, lambda: colour_spread(composited), lambda: tf.constant(0.0, tf.float64)
        )
        if spec.channels == 3:
            return composited, spread  # (H, W, 3): grey repeated, as Pillow's convert("RGB")
        luma = tf.cond(channels >= 2, lambda: _luma(composited), lambda: grey[..., 0])
        return luma[..., None], spread

    return tf.cond((depth == 16) & (colour_type == 0), grey16, eight_bit)


def _jpeg_pixels(data, width, height, spec: ImageSpec):
    """A JPEG -> (H', W', C) int32 at Pillow's draft scale (1, 2, 4 or 8), and the
    ``colour_spread`` of its RGB decode at that scale (0 for a one-component JPEG)."""
    scale = tf.minimum(width // spec.size, height // spec.size)
    branch = tf.where(scale >= 8, 3, tf.where(scale >= 4, 2, tf.where(scale >= 2, 1, 0)))

    def decode(ratio, channels):
        return lambda: tf.io.decode_jpeg(
            data, channels=channels, ratio=ratio, dct_method="INTEGER_ACCURATE"
        )

    def at_scale(channels):
        scales = [decode(r, channels) for r in (1, 2, 4, 8)]
        return tf.cast(tf.switch_case(branch, scales), tf.int32)

    pixels = at_scale(spec.channels)
    components = tf.io.extract_jpeg_shape(data)[2]
    spread = tf.cond(
        components >= 3,
        lambda: colour_spread(pixels if spec.channels == 3 else at_scale(3)),
        lambda: tf.constant(0.0, tf.float64),
    )
    return pixels, spread


def _weights(in_size, filter_name: str, out_size: int):
    """(out_size, in_size) float64: Pillow's fixed-point resampling weights (precompute_coeffs
    and normalize_coeffs_8bpc) for one axis, as a dense matrix."""
    size = tf.cast(in_size, tf.float64)
    scale = size / out_size
    filterscale = tf.maximum(scale, 1.0)
    support = (0.5 if filter_name == "box" else 1.0) * filterscale
    centre = (tf.range(out_size, dtype=tf.float64) + 0.5) * scale  # (out,)
    trunc = lambda v: tf.cast(tf.cast(v, tf.int64), tf.float64)  # noqa: E731  C's (int)
    xmin = tf.maximum(trunc(centre - support + 0.5), 0.0)[:, None]  # (out, 1)
    xmax = tf.minimum(trunc(centre + support + 0.5), size)[:, None]
    x = tf.range(in_size, dtype=tf.float64)[None, :]  # (1, in) absolute input positions
    u = (x - centre[:, None] + 0.5) / filterscale
    if filter_name == "box":
        w = tf.where((u > -0.5) & (u <= 0.5), 1.0, 0.0)
    else:
        w = tf.maximum(1.0 - tf.abs(u), 0.0)
    w = tf.where((x >= xmin) & (x < xmax), w, 0.0)
    total = tf.reduce_sum(w, 1, keepdims=True)
    w = tf.where(total != 0.0, w / tf.where(total != 0.0, total, 1.0), w)
    one = float(1 << PRECISION_BITS)
    return tf.where(w < 0, trunc(-0.5 + w * one), trunc(0.5 + w * one))


def _clip8(acc):
    """Pillow's clip8 of a fixed-point sum (float64 holding an integer) -> int32."""
    shifted = tf.floor(acc / float(1 << PRECISION_BITS))
    return tf.cast(tf.clip_by_value(shifted, 0.0, 255.0), tf.int32)


def _resample(pixels, filter_name: str, out_size: int):
    """(H, W, C) int32 -> (S, S, C) int32: horizontal pass, 8-bit rounding, vertical pass,
    each channel alike (S = ``out_size``; a side already S passes through unchanged), as
    ``images._resize`` orders them."""
    columns = _weights(tf.shape(pixels)[1], filter_name, out_size)  # (S, W)
    rows = _weights(tf.shape(pixels)[0], filter_name, out_size)  # (S, H)
    half = float(1 << (PRECISION_BITS - 1))
    # integer products and sums stay below 2**53: exact in float64 whatever the order
    x = tf.cast(pixels, tf.float64)  # (H, W, C): rows, columns, channels
    across = _clip8(tf.einsum("hwc,ow->hoc", x, columns) + half)  # (H, S, C)
    return _clip8(tf.einsum("oh,hwc->owc", rows, tf.cast(across, tf.float64)) + half)  # (S, S, C)


def square_and_resize(pixels, spec: ImageSpec = DEFAULT_IMAGE):
    """(H, W, C) int32 -> ``spec.cache_shape`` uint8: with ``fit`` ``pad`` a centred black
    square first, then Pillow's resize to S x S (bilinear when a side is enlarged, else box)."""
    if spec.fit == "pad":
        height, width = tf.shape(pixels)[0], tf.shape(pixels)[1]
        side = tf.maximum(height, width)
        top, left = (side - height) // 2, (side - width) // 2
        pads = [[top, side - height - top], [left, side - width - left], [0, 0]]
        pixels = tf.pad(pixels, pads)
    height, width, side = tf.shape(pixels)[0], tf.shape(pixels)[1], spec.size
    out = tf.case(
        [
            (tf.equal(height, side) & tf.equal(width, side), lambda: pixels),
            (tf.minimum(height, width) < side, lambda: _resample(pixels, "bilinear", side)),
        ],
        default=lambda: _resample(pixels, "box", side),
    )
    return tf.cast(tf.reshape(out, spec.cache_shape), tf.uint8)


def _size(data, is_png):
    """(width, height) int64 from the PNG header or the JPEG frame header."""

    def jpeg():
        shape = tf.io.extract_jpeg_shape(data, output_type=tf.int32)
        return tf.cast(tf.stack([shape[1], shape[0]]), tf.int64)

    return tf.cond(is_png, lambda: _png_size(data), jpeg)


def _png_size(data):
    """IHDR width and height (big-endian uint32 at bytes 16 and 20) as int64 (2,)."""
    raw = tf.cast(tf.io.decode_raw(tf.strings.substr(data, 16, 8), tf.uint8), tf.int64)
    raw = tf.reshape(raw, [2, 4])
    return raw[:, 0] * 2**24 + raw[:, 1] * 2**16 + raw[:, 2] * 2**8 + raw[:, 3]


def decode_one(data, spec: ImageSpec = DEFAULT_IMAGE):
    """One encoded file (scalar string) -> (``spec.cache_shape`` uint8, error string ('' when
    fine), float64 ``colour_spread`` (0 without pixels))."""
    length = tf.strings.length(data)
    is_png = tf.equal(tf.strings.substr(data, 0, 8), PNG_MAGIC) & (length >= 26)
    is_jpeg = tf.equal(tf.strings.substr(data, 0, 3), JPEG_MAGIC)
    blank = tf.zeros(spec.cache_shape, tf.uint8)
    no_colour = tf.constant(0.0, tf.float64)

    def known():
        size = _size(data, is_png)
        too_big = size[0] * size[1] > MAX_PIXELS
        message = tf.strings.format(
            "image too large ({}x{} > " + f"{MAX_PIXELS:,}" + " pixels)", (size[0], size[1])
        )

        def pixels():
            width, height = tf.cast(size[0], tf.int32), tf.cast(size[1], tf.int32)
            decoded, spread = tf.cond(
                is_png,
                lambda: _png_pixels(data, spec),
                lambda: _jpeg_pixels(data, width, height, spec),
            )  # (H, W, C) int32, scalar
            return square_and_resize(decoded, spec), tf.constant(""), spread

        return tf.cond(too_big, lambda: (blank, message, no_colour), pixels)

    def unknown():
        problem = tf.where(tf.equal(length, 0), "empty file (0 bytes)", "not a PNG or JPEG image")
        return blank, problem, no_colour

    return tf.cond(is_png | is_jpeg, known, unknown)


def decode_images(files, spec: ImageSpec = DEFAULT_IMAGE):
    """(N,) string of encoded files -> (N, *spec.cache_shape) uint8 pixels ((N, 64, 64) by
    default), (N,) error strings and (N,) float64 colour spreads."""
    return tf.map_fn(
        lambda data: decode_one(data, spec),
        files,
        fn_output_signature=(
            tf.TensorSpec(spec.cache_shape, tf.uint8),
            tf.TensorSpec([], tf.string),
            tf.TensorSpec([], tf.float64),
        ),
    )
