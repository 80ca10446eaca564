"""Every conversion documented in ``captioning.data.images``, on real files written with Pillow."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from captioning.data.image_spec import DEFAULT_IMAGE, ImageSpec
from captioning.data.images import MAX_PIXELS, ImageError, decode_image, load_image

IMAGE_SIZE = DEFAULT_IMAGE.size
PADDED = ImageSpec(fit="pad")  # a file that is not square padded to a square first


def save(image: Image.Image, path, **kwargs):
    image.save(path, **kwargs)
    return path


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def png_header(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width`` x ``height`` pixels, with almost no pixel data."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\0" * 16))
        + chunk(b"IEND", b"")
    )


def gradient(width: int = IMAGE_SIZE, height: int = IMAGE_SIZE) -> np.ndarray:
    x = np.linspace(0, 255, width)
    y = np.linspace(0, 255, height)
    return ((x[None, :] + y[:, None]) / 2).round().astype(np.uint8)


# --- conversions -------------------------------------------------------------------------


def test_gray_8bit_png_is_returned_unchanged(tmp_path):
    pixels = gradient()
    out = load_image(save(Image.fromarray(pixels, "L"), tmp_path / "gray.png"))
    assert out.dtype == np.uint8 and out.shape == (IMAGE_SIZE, IMAGE_SIZE)
    np.testing.assert_array_equal(out, pixels)


def test_gray_jpeg_is_close_to_its_source(tmp_path):
    pixels = gradient()
    out = load_image(save(Image.fromarray(pixels, "L"), tmp_path / "gray.jpeg", quality=95))
    assert out.shape == (IMAGE_SIZE, IMAGE_SIZE)
    assert np.abs(out.astype(int) - pixels).max() <= 8


def test_rgb_uses_itu_601_luma(tmp_path):
    rgb = np.zeros((IMAGE_SIZE, IMAGE_SIZE, 3), np.uint8)
    rgb[:, :, 0] = 200  # pure red, 200
    rgb[:, 32:, 1] = 100  # right half: plus green
    out = load_image(save(Image.fromarray(rgb, "RGB"), tmp_path / "rgb.png"))
    expected_left = round(200 * 299 / 1000)
    expected_right = round((200 * 299 + 100 * 587) / 1000)
    assert abs(int(out[10, 5]) - expected_left) <= 1
    assert abs(int(out[10, 50]) - expected_right) <= 1


def test_rgba_is_composited_on_black(tmp_path):
    rgba = np.zeros((IMAGE_SIZE, IMAGE_SIZE, 4), np.uint8)
    rgba[..., :3] = 255  # white everywhere...
    rgba[:, :32, 3] = 0  # ...fully transparent on the left
    rgba[:, 32:, 3] = 128  # half transparent on the right
    out = load_image(save(Image.fromarray(rgba, "RGBA"), tmp_path / "rgba.png"))
    assert out[:, :32].max() == 0  # transparent white is black, not white
    assert abs(int(out[:, 40].mean()) - 128) <= 1


def test_gray_alpha_is_composited_on_black(tmp_path):
    la = np.zeros((IMAGE_SIZE, IMAGE_SIZE, 2), np.uint8)
    la[..., 0] = 200
    la[..., 1] = 0
    out = load_image(save(Image.fromarray(la, "LA"), tmp_path / "la.png"))
    assert out.max() == 0


def test_palette_image_uses_its_colours(tmp_path):
    image = Image.new("P", (IMAGE_SIZE, IMAGE_SIZE), 0)
    image.putpalette([0, 0, 0, 255, 255, 255] + [0] * 762)
    image.paste(1, (0, 0, 32, IMAGE_SIZE))  # left half: palette entry 1 = white
    out = load_image(save(image, tmp_path / "palette.png"))
    assert out[:, :32].min() == 255
    assert out[:, 32:].max() == 0


def test_palette_transparency_is_composited_on_black(tmp_path):
    image = Image.new("P", (IMAGE_SIZE, IMAGE_SIZE), 1)
    image.putpalette([0, 0, 0, 255, 255, 255] + [0] * 762)
    image.info["transparency"] = 1  # the white entry is transparent
    out = load_image(save(image, tmp_path / "palette_t.png", transparency=1))
    assert out.max() == 0


def test_16bit_png_is_rescaled_from_its_own_min_max(tmp_path):
    pixels = np.linspace(1000, 5000, IMAGE_SIZE * IMAGE_SIZE).reshape(IMAGE_SIZE, IMAGE_SIZE)
    pixels = pixels.astype(np.uint16)
    path = save(Image.fromarray(pixels), tmp_path / "deep.png")
    assert Image.open(path).mode.startswith("I")  # really a 16-bit file
    out = load_image(path)
    assert out.min() == 0 and out.max() == 255  # not black (a plain >> 8 gives 3..19)
    expected = np.round((pixels.astype(float) - 1000) * 255 / 4000).astype(np.uint8)
    assert np.abs(out.astype(int) - expected).max() <= 1


def test_constant_16bit_png_is_black(tmp_path):
    pixels = np.full((8, 8), 40000, np.uint16)
    out = load_image(save(Image.fromarray(pixels), tmp_path / "flat16.png"))
    assert out.shape == (IMAGE_SIZE, IMAGE_SIZE) and out.max() == 0


def test_wide_image_is_padded_centred_then_kept(tmp_path):
    # 64 x 32 white: padding to 64 x 64 puts 16 black rows above and below, no resize
    path = save(Image.new("L", (64, 32), 255), tmp_path / "wide.png")
    out = load_image(path, spec=PADDED)
    assert out[:16].max() == 0 and out[48:].max() == 0
    assert out[16:48].min() == 255
    assert load_image(path).min() == 255  # stretched (the default): no bars


def test_tall_image_is_padded_centred_then_reduced(tmp_path):
    # 64 x 128 white: padded to 128 x 128 (32 black columns each side), reduced by 2
    out, size, _ = decode_image(png_bytes(Image.new("L", (64, 128), 255)), "tall.png", PADDED)
    assert size == (64, 128)
    assert out[:, :16].max() == 0 and out[:, 48:].max() == 0
    assert out[:, 16:48].min() == 255


def test_large_image_is_area_averaged(tmp_path):
    # a 256 x 256 checkerboard of single pixels averages to uniform grey, not aliasing
    board = (np.indices((256, 256)).sum(axis=0) % 2 * 255).astype(np.uint8)
    out = load_image(save(Image.fromarray(board, "L"), tmp_path / "board.png"))
    assert out.min() >= 126 and out.max() <= 129


def test_one_pixel_image_is_enlarged(tmp_path):
    out, size, _ = decode_image(png_bytes(Image.new("L", (1, 1), 77)), "one.png")
    assert size == (1, 1)
    assert out.shape == (IMAGE_SIZE, IMAGE_SIZE)
    assert (out == 77).all()


def test_original_size_is_reported(tmp_path):
    size = decode_image(png_bytes(Image.new("RGB", (300, 200))), "x.png").size
    assert size == (300, 200)


# --- refusals ----------------------------------------------------------------------------


def assert_refused(source, name_part: str, problem_part: str):
    with pytest.raises(ImageError) as info:
        load_image(source)
    message = str(info.value)
    assert "\n" not in message
    assert name_part in message
    assert problem_part in message.lower()
    return info.value


@pytest.mark.parametrize("side", [7_000, 10_000])
def test_too_many_pixels_is_refused_naming_the_file(tmp_path, side):
    assert side * side > MAX_PIXELS
    path = tmp_path / f"huge{side}.png"
    path.write_bytes(png_header(side, side))
    assert_refused(path, str(path), "too large")


def test_bomb_is_refused_without_warnings_escaping(tmp_path, recwarn):
    path = tmp_path / "bomb.png"
    path.write_bytes(png_header(20_000, 20_000))
    assert_refused(path, str(path), "too large")
    assert not [w for w in recwarn if "DecompressionBomb" in type(w.message).__name__]


def test_corrupt_jpeg(tmp_path):
    good = io.BytesIO()
    Image.fromarray(gradient(), "L").save(good, "JPEG")
    data = bytearray(good.getvalue())
    data[len(data) // 2 :] = b"\x00" * (len(data) - len(data) // 2)  # scan data wiped
    path = tmp_path / "bad.jpeg"
    path.write_bytes(bytes(data[: len(data) // 2 + 10]))
    assert_refused(path, str(path), "corrupt")


def test_truncated_png(tmp_path):
    data = png_bytes(Image.fromarray(gradient(), "L"))
    path = tmp_path / "cut.png"
    path.write_bytes(data[: len(data) // 2])
    assert_refused(path, str(path), "truncated")


def test_zero_byte_file(tmp_path):
    path = tmp_path / "empty.png"
    path.write_bytes(b"")
    assert_refused(path, str(path), "empty")


def test_text_file_named_png(tmp_path):
    path = tmp_path / "notes.png"
    path.write_text("this is not an image\n")
    assert_refused(path, str(path), "not a png, jpeg or dicom")


def test_other_image_format_is_refused(tmp_path):
    path = tmp_path / "scan.png"  # a GIF in disguise
    Image.new("L", (8, 8)).save(path, "GIF")
    assert_refused(path, str(path), "not a png, jpeg or dicom")


def test_directory_named_like_an_image(tmp_path):
    path = tmp_path / "folder.jpeg"
    path.mkdir()
    assert_refused(path, str(path), "directory")


def test_missing_file(tmp_path):
    path = tmp_path / "absent.png"
    assert_refused(path, str(path), "no such file")


def test_bytes_are_labelled_with_the_given_name():
    with pytest.raises(ImageError, match=r"^upload\.png: "):
        load_image(b"garbage", name="upload.png")


# --- fuzz ----------------------------------------------------------------------------------


def _valid_samples() -> list[bytes]:
    rgb = Image.fromarray(np.dstack([gradient(16, 12)] * 3), "RGB")
    out = [png_bytes(Image.fromarray(gradient(16, 12), "L")), png_bytes(rgb)]
    jpeg = io.BytesIO()
    rgb.save(jpeg, "JPEG", quality=80)
    out.append(jpeg.getvalue())
    return out


VALID = _valid_samples()


def _check_decode(data: bytes) -> None:
    try:
        out, (width, height), _ = decode_image(data, "fuzz")
    except ImageError as err:
        assert str(err).startswith("fuzz: ")
        return
    assert out.shape == (IMAGE_SIZE, IMAGE_SIZE) and out.dtype == np.uint8
    assert width > 0 and height > 0


FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(st.binary(max_size=2048))
def test_fuzz_random_bytes_raise_only_image_error(data):
    _check_decode(data)


@FUZZ
@given(st.binary(max_size=64))
def test_fuzz_random_bytes_behind_a_signature(tail):
    for signature in (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff\xe0"):
        _check_decode(signature + tail)


@FUZZ
@given(
    st.sampled_from(range(len(VALID))),
    st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), min_size=1, max_size=8),
    st.one_of(st.none(), st.integers(0, 10_000)),
)
def test_fuzz_mutated_valid_images_raise_only_image_error(which, flips, cut):
    data = bytearray(VALID[which])
    for position, value in flips:
        data[position % len(data)] = value
    if cut is not None:
        data = data[: cut % len(data)]
    _check_decode(bytes(data))
