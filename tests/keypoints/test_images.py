"""Reading real photos in every format and pixel layout, EXIF, and clear errors."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from PIL import Image, ImageOps

from smplx_capture_addon.keypoints.errors import ImageError
from smplx_capture_addon.keypoints.images import (
    MAX_PHOTO_PIXELS,
    exif_orientation,
    focal_length_px,
    load_image,
    upright_pixels,
    write_upright_copy,
)


@pytest.fixture(scope="module")
def astronaut(photo_dir) -> np.ndarray:
    return np.asarray(Image.open(photo_dir / "astronaut.png").convert("RGB"))


@pytest.mark.parametrize(
    "suffix, tolerance", [(".png", 0), (".bmp", 0), (".tiff", 0), (".webp", 12), (".jpg", 12)]
)
def test_each_format_reads_as_the_same_rgb_picture(tmp_path, astronaut, suffix, tolerance):
    path = tmp_path / f"astronaut{suffix}"
    Image.fromarray(astronaut).save(path, quality=95)  # quality: ignored by lossless formats
    image = load_image(path)
    assert image.pixels.dtype == np.uint8 and image.pixels.shape == (512, 512, 3)
    assert image.original_size == (512, 512) and image.scale == 1.0
    assert np.abs(image.pixels.astype(int) - astronaut).mean() <= tolerance


def test_greyscale_photo_becomes_three_equal_channels(photo_dir):
    grey = np.asarray(Image.open(photo_dir / "camera.png"))
    image = load_image(photo_dir / "camera.png")
    assert grey.ndim == 2
    assert np.array_equal(image.pixels[:, :, 0], grey) and np.array_equal(image.pixels[:, :, 2], grey)


def test_16_bit_greyscale_and_16_bit_colour_keep_their_brightness(tmp_path, photo_dir, astronaut):
    import cv2

    grey = np.asarray(Image.open(photo_dir / "camera.png")).astype(np.uint16) * 257
    cv2.imwrite(str(tmp_path / "grey16.png"), grey)
    cv2.imwrite(
        str(tmp_path / "colour16.tiff"), cv2.cvtColor(astronaut, cv2.COLOR_RGB2BGR).astype(np.uint16) * 257
    )
    assert np.abs(load_image(tmp_path / "grey16.png").pixels[:, :, 1].astype(int) - grey // 257).max() <= 1
    assert np.abs(load_image(tmp_path / "colour16.tiff").pixels.astype(int) - astronaut).max() <= 1


def test_transparent_pixels_become_white_and_opaque_ones_stay(tmp_path, astronaut):
    rgba = np.dstack([astronaut, np.full((512, 512), 255, np.uint8)])
    rgba[:100, :, 3] = 0
    Image.fromarray(rgba).save(tmp_path / "alpha.png")
    pixels = load_image(tmp_path / "alpha.png").pixels
    assert (pixels[:100] == 255).all()
    assert np.array_equal(pixels[100:], astronaut[100:])


def test_exif_orientation_is_applied_and_size_is_the_upright_one(tmp_path, photo_dir):
    stored = Image.open(photo_dir / "bus.jpg")  # 810 x 1080, upright
    rotated = stored.transpose(Image.Transpose.ROTATE_90)  # lying on its side: 1080 x 810
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 clockwise to display"
    rotated.save(tmp_path / "sideways.jpg", exif=exif, quality=95)
    image = load_image(tmp_path / "sideways.jpg")
    assert image.original_size == (810, 1080)
    assert np.abs(image.pixels.astype(int) - np.asarray(stored)).mean() < 6


@pytest.mark.parametrize("orientation", range(1, 9))
@pytest.mark.parametrize("suffix", [".jpg", ".png", ".webp", ".tiff"])
def test_every_exif_orientation_in_every_format_reads_as_pillow_shows_it(tmp_path, photo_dir, suffix,
                                                                        orientation):  # fmt: skip
    """The one upright helper: `exif_orientation` (standard library, for Blender) reads the
    tag Pillow reads, and `upright_pixels` and `load_image` turn the photo as Pillow's
    exif_transpose does, for all eight orientations."""
    stored = Image.open(photo_dir / "bus.jpg").convert("RGB").resize((90, 60))  # not square
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = tmp_path / f"photo{suffix}"
    stored.save(path, exif=exif, **({"lossless": True} if suffix == ".webp" else {"quality": 100}))
    with Image.open(path) as image:
        tag = image.getexif().get(0x0112, 1)
        shown = np.asarray(ImageOps.exif_transpose(image).convert("RGB"))
    assert exif_orientation(path) == tag == orientation
    loaded = load_image(path)
    assert loaded.original_size == (shown.shape[1], shown.shape[0])
    np.testing.assert_array_equal(loaded.pixels, shown)
    as_stored = np.asarray(stored)
    expected = np.asarray(ImageOps.exif_transpose(_with_orientation(stored, orientation)))
    np.testing.assert_array_equal(upright_pixels(as_stored, orientation), expected)


def _with_orientation(image: Image.Image, orientation: int) -> Image.Image:
    tagged = image.copy()
    tagged.getexif()[0x0112] = orientation
    return tagged


def test_files_without_exif_are_upright(tmp_path, photo_dir):
    assert exif_orientation(photo_dir / "bus.jpg") == exif_orientation(photo_dir / "astronaut.png") == 1
    assert exif_orientation(_write(tmp_path / "notes.txt", b"no picture")) == 1
    assert exif_orientation(tmp_path / "missing.jpg") == 1


def test_the_upright_copy_of_a_sideways_photo(tmp_path, photo_dir):
    upright = Image.open(photo_dir / "bus.jpg")
    exif = Image.Exif()
    exif[0x0112] = 8  # "rotate 90 degrees anticlockwise to view"
    upright.transpose(Image.Transpose.ROTATE_270).save(tmp_path / "sideways.jpg", exif=exif, quality=95)
    copy = write_upright_copy(tmp_path / "sideways.jpg", tmp_path / "copy" / "upright.png")
    assert copy == tmp_path / "copy" / "upright.png" and exif_orientation(copy) == 1
    pixels = np.asarray(Image.open(copy))
    assert pixels.shape == (1080, 810, 3)
    assert np.abs(pixels.astype(int) - np.asarray(upright)).mean() < 6
    # A photo stored upright needs no copy: nothing is written.
    assert write_upright_copy(photo_dir / "bus.jpg", tmp_path / "none.png") is None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["copy", "sideways.jpg"]


def test_big_photos_are_downscaled_but_keep_their_original_size(photo_dir):
    image = load_image(photo_dir / "bus.jpg", max_side=300)
    assert image.original_size == (810, 1080)
    assert max(image.pixels.shape[:2]) == 300 and image.scale == pytest.approx(300 / 1080, rel=0.01)


def test_focal_length_from_35mm_equivalent_uses_the_diagonal():
    # 26 mm equivalent (a phone's main camera) on a 4032 x 3024 photo
    assert focal_length_px({0xA405: 26}, 4032, 3024) == pytest.approx(26 * 5040 / 43.2666, rel=1e-4)


def test_focal_length_from_millimetres_and_focal_plane_resolution_follows_resizing():
    # 50 mm lens, 4000 px over a 36 mm sensor (unit 4 = mm), photo resized to 2000 px wide
    exif = {0x920A: 50.0, 0xA20E: 4000 / 36, 0xA210: 4, 0xA002: 4000, 0xA003: 2667}
    assert focal_length_px(exif, 2000, 1333) == pytest.approx(50 * 2000 / 36, rel=1e-6)
    assert focal_length_px({0x920A: 50.0}, 2000, 1333) is None
    assert focal_length_px({}, 2000, 1333) is None


def test_focal_length_is_read_from_a_photos_exif(tmp_path, astronaut):
    exif = Image.Exif()
    exif.get_ifd(0x8769)[0xA405] = 35
    Image.fromarray(astronaut).save(tmp_path / "with_exif.jpg", exif=exif)
    expected = 35 * np.hypot(512, 512) / 43.2666
    assert load_image(tmp_path / "with_exif.jpg").focal_length_px == pytest.approx(expected, rel=1e-4)


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda folder, photos: folder / "missing.jpg", "no such file"),
        (lambda folder, photos: _write(folder / "empty.jpg", b""), "empty"),
        (
            lambda folder, photos: _write(folder / "notes.png", b"these are notes, not pixels\n" * 20),
            "not an image",
        ),
        (
            lambda folder, photos: _write(folder / "cut.jpg", (photos / "bus.jpg").read_bytes()[:20000]),
            "damaged",
        ),
        (
            lambda folder, photos: _write(
                folder / "cut.png", (photos / "astronaut.png").read_bytes()[:30000]
            ),
            "damaged",
        ),
        (lambda folder, photos: _write(folder / "zero.png", _png_header(0, 10)), "without pixels"),
        (lambda folder, photos: _write(folder / "huge.png", _png_header(20000, 20000)), "too many pixels"),
        (lambda folder, photos: _write(folder / "big.png", _png_header(13000, 12000)), "150 megapixels"),
    ],
)
def test_bad_files_raise_an_image_error_that_says_what_is_wrong(tmp_path, photo_dir, make, message):
    with pytest.raises(ImageError, match=message):
        load_image(make(tmp_path, photo_dir))


def test_the_pixel_limit_is_ours_and_pillow_says_nothing(tmp_path):
    """Between Pillow's warning (89 MP) and our limit, a photo is read without Pillow's
    DecompressionBombWarning reaching the user; over our limit, our message."""
    assert MAX_PHOTO_PIXELS == 150_000_000
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(ImageError, match="damaged"):  # the header only: 100 MP, no pixels
            load_image(_write(tmp_path / "100mp.png", _png_header(10000, 10000)))
        with pytest.raises(ImageError, match=r"13000 x 12000 is too many pixels .*limit of 150 megapixels"):
            load_image(_write(tmp_path / "156mp.png", _png_header(13000, 12000)))
    assert [w.category.__name__ for w in caught] == []


def _write(path, data: bytes):
    path.write_bytes(data)
    return path


def _png_header(width: int, height: int) -> bytes:
    """A PNG that declares its size but holds no image data."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b""))
        + chunk(b"IEND", b"")
    )
