"""Reading real-world photos for detection: any common format and pixel layout, EXIF
orientation applied, huge photos downscaled, and the focal length EXIF implies.

:func:`load_image` returns RGB 8-bit pixels plus the size of the photo as a viewer
shows it (after EXIF orientation). Keypoints are always reported in the pixels of that
upright original, whatever downscaling happened here.

The photo upright, everywhere it is read or shown: :func:`exif_orientation` (standard
library only, so Blender's Python, which has no Pillow, reads it too) says how a photo
is stored, and :func:`upright_pixels` turns its pixels upright. Detection, the keypoint
and fit overlays (through :func:`load_image`), the worker's upright copy
(:func:`write_upright_copy`) and Blender's camera background and render use these two.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

from ..atomic_files import write_bytes
from .errors import ImageError

# Working pixels never exceed this side: the detectors look at 224-256 px inputs, and
# crops of a 4096 px photo keep hands and faces sharper than that.
MAX_WORKING_SIDE = 4096
# The most pixels a photo may have (our limit, in place of Pillow's decompression-bomb
# warning): the largest camera sensors make 100-150 megapixels, and a PNG or TIFF that
# big already takes about 450 MB to decode; a bigger file is more likely a bomb than a photo.
MAX_PHOTO_PIXELS = 150_000_000

# EXIF tags (Exif IFD unless noted)
_ORIENTATION = 0x0112  # IFD0
_EXIF_IFD = 0x8769
_FOCAL_LENGTH = 0x920A
_FOCAL_LENGTH_35MM = 0xA405
_FOCAL_PLANE_X_RESOLUTION = 0xA20E
_FOCAL_PLANE_RESOLUTION_UNIT = 0xA210
_EXIF_IMAGE_WIDTH = 0xA002
_EXIF_IMAGE_HEIGHT = 0xA003
_MM_PER_UNIT = {2: 25.4, 3: 10.0, 4: 1.0, 5: 0.001}  # inch, cm, mm, micrometre
_FULL_FRAME_DIAGONAL_MM = math.hypot(36.0, 24.0)


@dataclass
class LoadedImage:
    path: str
    pixels: np.ndarray  # (h, w, 3) uint8 RGB, upright, possibly downscaled
    original_size: tuple[int, int]  # (width, height) of the upright photo
    focal_length_px: float | None  # in original pixels, from EXIF; None when unknown

    @property
    def scale(self) -> float:
        """Working pixels per original pixel (1.0 unless the photo was downscaled)."""
        return self.pixels.shape[1] / self.original_size[0]


def load_image(path: str | Path, max_side: int = MAX_WORKING_SIDE) -> LoadedImage:
    """Read a photo (JPEG, PNG, WebP, BMP, TIFF; grey, alpha, 16-bit) upright as RGB8.

    Raises :class:`ImageError` for a missing, empty, non-image or truncated file.
    """
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        raise ImageError(f"{path}: no such file. Check the path of the photo.")
    if path.stat().st_size == 0:
        raise ImageError(f"{path}: the file is empty (0 bytes). Copy the photo again.")
    try:
        with warnings.catch_warnings():
            # MAX_PHOTO_PIXELS is the limit, said in our words below, not Pillow's warning.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                _check_pixel_count(path, image.size)
                exif = _exif_tags(image)
                stored_size = image.size
                # JPEG can decode at 1/2, 1/4, 1/8 size directly: saves time and memory.
                image.draft("RGB", _fit(stored_size, max_side))
                image.load()
                # What is left to turn: Pillow's TIFF reader turns the pixels itself and drops the tag.
                orientation = image.getexif().get(_ORIENTATION, 1)
                stored = to_rgb8(image)
    except UnidentifiedImageError:  # Pillow also lands here for images of 0 x N pixels
        raise ImageError(
            f"{path}: not an image this add-on can read, or one without pixels. "
            "Use a JPEG, PNG, WebP, BMP or TIFF photo."
        ) from None
    except Image.DecompressionBombError:  # Pillow's own refusal starts above MAX_PHOTO_PIXELS
        raise ImageError(
            f"{path}: too many pixels to read safely (over {MAX_PHOTO_PIXELS / 1e6:.0f} megapixels). "
            "Downscale the photo first."
        ) from None
    except (OSError, SyntaxError) as error:  # Pillow reports broken PNG chunks as SyntaxError
        raise ImageError(
            f"{path}: the image data is damaged or cut short ({error}). Export it again."
        ) from None
    original_size = stored_size[::-1] if orientation in _TURNED else stored_size
    pixels = _downscale(upright_pixels(stored, orientation), max_side)
    return LoadedImage(str(path), pixels, original_size, focal_length_px(exif, *original_size))


def _check_pixel_count(path: Path, size: tuple[int, int]) -> None:
    width, height = size
    if width * height > MAX_PHOTO_PIXELS:
        raise ImageError(
            f"{path}: {width} x {height} is too many pixels to read safely ({width * height / 1e6:.0f} "
            f"megapixels, over this add-on's limit of {MAX_PHOTO_PIXELS / 1e6:.0f} megapixels). "
            "Downscale the photo first."
        )


def write_upright_copy(photo: str | Path, target: str | Path) -> Path | None:
    """Write an upright PNG copy of a photo that EXIF says to turn (phones store photos
    sideways), for viewers that ignore EXIF, Blender among them. None, writing nothing,
    when the photo is stored upright."""
    import cv2

    if exif_orientation(photo) == 1:
        return None
    image = load_image(photo)
    encoded = cv2.imencode(".png", cv2.cvtColor(image.pixels, cv2.COLOR_RGB2BGR))[1]
    return write_bytes(target, encoded.tobytes())


def upright_pixels(pixels: np.ndarray, orientation: int) -> np.ndarray:
    """(h, w, ...) pixels, top row first, as stored with EXIF `orientation` (1-8) -> as a
    viewer shows them. Rows listed bottom first (Blender's) go in and come out reversed:
    `upright_pixels(rows[::-1], orientation)[::-1]`."""
    swapped = np.swapaxes(pixels, 0, 1)
    turned = {
        2: pixels[:, ::-1],  # mirrored left to right
        3: pixels[::-1, ::-1],  # upside down
        4: pixels[::-1],  # mirrored top to bottom
        5: swapped,  # mirrored about the main diagonal
        6: swapped[:, ::-1],  # to be turned 90 degrees clockwise
        7: swapped[::-1, ::-1],  # mirrored about the other diagonal
        8: swapped[::-1],  # to be turned 90 degrees anticlockwise
    }.get(orientation, pixels)
    return np.ascontiguousarray(turned)


def exif_orientation(path: str | Path) -> int:
    """The EXIF orientation (1-8) of a JPEG, PNG, WebP or TIFF file: 1 (stored upright)
    when the file has none or cannot be read. Standard library only."""
    try:
        with open(path, "rb") as handle:
            block = _exif_block(handle)
    except OSError:
        return 1
    value = _tiff_orientation(block) if block else None
    return value if value in range(1, 9) else 1


def to_rgb8(image) -> np.ndarray:
    """Pillow image of any mode -> (h, w, 3) uint8 RGB; alpha is composited on white."""
    from PIL import Image

    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        # 16-bit and float greyscale: stretch the file's value range, not clip at 255
        values = np.asarray(image, dtype=np.float64)
        top = 65535.0 if image.mode.startswith("I;16") else max(float(values.max()), 1e-12)
        grey = np.clip(np.round(values / top * 255.0), 0, 255).astype(np.uint8)
        return np.repeat(grey[:, :, None], 3, axis=2)
    if image.mode in ("RGBA", "LA", "PA", "La", "RGBa") or "transparency" in image.info:
        background = Image.new("RGBA", image.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, image.convert("RGBA"))
    return np.asarray(image.convert("RGB"), dtype=np.uint8).copy()


def focal_length_px(exif: dict[int, object], width: int, height: int) -> float | None:
    """Focal length in pixels of a `width` x `height` photo from its EXIF tags, or None.

    Prefers FocalLengthIn35mmFilm, converted through the image diagonal (the 35 mm
    equivalent is defined by the diagonal, so it holds for any aspect ratio). Falls back
    to FocalLength with FocalPlaneXResolution (sensor pixels per unit), rescaled when the
    photo is smaller than the sensor image (ExifImageWidth/Height).
    """
    diagonal_px = math.hypot(width, height)
    focal_35mm = _positive(exif.get(_FOCAL_LENGTH_35MM))
    if focal_35mm:
        return focal_35mm * diagonal_px / _FULL_FRAME_DIAGONAL_MM
    focal_mm = _positive(exif.get(_FOCAL_LENGTH))
    pixels_per_unit = _positive(exif.get(_FOCAL_PLANE_X_RESOLUTION))
    mm_per_unit = _MM_PER_UNIT.get(int(exif.get(_FOCAL_PLANE_RESOLUTION_UNIT, 2) or 2))
    if not (focal_mm and pixels_per_unit and mm_per_unit):
        return None
    focal_px_on_sensor = focal_mm * pixels_per_unit / mm_per_unit
    sensor_long_side = max(_positive(exif.get(tag)) or 0.0 for tag in (_EXIF_IMAGE_WIDTH, _EXIF_IMAGE_HEIGHT))
    return focal_px_on_sensor * (max(width, height) / sensor_long_side if sensor_long_side else 1.0)


_TURNED = (5, 6, 7, 8)  # orientations whose upright width is the stored height


def _exif_block(handle: BinaryIO) -> bytes | None:
    """The EXIF data (a TIFF structure) of an open image file, or None."""
    head = handle.read(12)
    if head[:2] == b"\xff\xd8":
        block = _jpeg_exif(handle)
    elif head[:8] == b"\x89PNG\r\n\x1a\n":
        block = _chunk(handle, 8, b"eXIf", lambda size: size + 4, "big")
    elif head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        block = _chunk(handle, 12, b"EXIF", lambda size: size + size % 2, "little")
    elif head[:4] in (b"II*\x00", b"MM\x00*"):  # a TIFF file is itself the structure
        handle.seek(0)
        block = handle.read(1 << 20)  # the first IFD sits near the start in practice
    else:
        return None
    if block and block.startswith(b"Exif\x00\x00"):
        block = block[6:]
    return block


def _jpeg_exif(handle: BinaryIO) -> bytes | None:
    """The first APP1 segment that holds EXIF, from the markers before the image data."""
    handle.seek(2)
    while True:
        marker = handle.read(2)
        if len(marker) < 2 or marker[0] != 0xFF or marker[1] in (0xDA, 0xD9):  # image data or end
            return None
        if marker[1] == 0xFF:  # fill byte
            handle.seek(-1, 1)
            continue
        if marker[1] == 0x01 or 0xD0 <= marker[1] <= 0xD8:  # markers without a length
            continue
        length = int.from_bytes(handle.read(2), "big")
        if length < 2:
            return None
        data = handle.read(length - 2)
        if marker[1] == 0xE1 and data.startswith(b"Exif\x00\x00"):
            return data


def _chunk(handle: BinaryIO, start: int, wanted: bytes, skip, order: str) -> bytes | None:
    """The data of the first chunk named `wanted` in a PNG (length before name, big-endian)
    or RIFF (name before length, little-endian) file; `skip(size)`: bytes after the data's start
    to the next chunk."""
    handle.seek(start)
    while True:
        header = handle.read(8)
        if len(header) < 8:
            return None
        name, size = (header[4:], header[:4]) if order == "big" else (header[:4], header[4:])
        size = int.from_bytes(size, order)
        if name == wanted:
            return handle.read(size)
        handle.seek(skip(size), 1)


def _tiff_orientation(block: bytes) -> int | None:
    """The Orientation tag (0x0112) of the first IFD of a TIFF structure, or None."""
    order = {b"II*\x00": "little", b"MM\x00*": "big"}.get(block[:4])
    if order is None:
        return None
    first = int.from_bytes(block[4:8], order)
    count = int.from_bytes(block[first : first + 2], order)
    for start in range(first + 2, min(first + 2 + 12 * count, len(block) - 11), 12):
        entry = block[start : start + 12]
        if int.from_bytes(entry[:2], order) == _ORIENTATION:
            kind = int.from_bytes(entry[2:4], order)
            size = {3: 2, 4: 4}.get(kind)  # SHORT, as the standard says, or LONG
            return int.from_bytes(entry[8 : 8 + size], order) if size else None
    return None


def _exif_tags(image) -> dict[int, object]:
    """IFD0 and Exif IFD tags merged into one dict (empty when the file has none)."""
    exif = image.getexif()
    tags = dict(exif)
    tags.update(exif.get_ifd(_EXIF_IFD))
    return tags


def _positive(value: object) -> float | None:
    try:
        number = float(value)  # IFDRational and ints alike
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    return number if math.isfinite(number) and number > 0 else None


def _fit(size: tuple[int, int], max_side: int) -> tuple[int, int]:
    factor = min(1.0, max_side / max(size))
    return max(1, round(size[0] * factor)), max(1, round(size[1] * factor))


def _downscale(pixels: np.ndarray, max_side: int) -> np.ndarray:
    import cv2

    height, width = pixels.shape[:2]
    target = _fit((width, height), max_side)
    if target == (width, height):
        return pixels
    return cv2.resize(pixels, target, interpolation=cv2.INTER_AREA)
