"""Reading real-world photos for detection: any common format and pixel layout, EXIF
orientation applied, huge photos downscaled, and the focal length EXIF implies.

:func:`load_image` returns RGB 8-bit pixels plus the size of the photo as a viewer
shows it (after EXIF orientation). Keypoints are always reported in the pixels of that
upright original, whatever downscaling happened here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import ImageError

# Working pixels never exceed this side: the detectors look at 224-256 px inputs, and
# crops of a 4096 px photo keep hands and faces sharper than that.
MAX_WORKING_SIDE = 4096

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
    from PIL import Image, ImageOps, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        raise ImageError(f"{path}: no such file. Check the path of the photo.")
    if path.stat().st_size == 0:
        raise ImageError(f"{path}: the file is empty (0 bytes). Copy the photo again.")
    try:
        with Image.open(path) as image:
            exif = _exif_tags(image)
            stored_size = image.size
            # JPEG can decode at 1/2, 1/4, 1/8 size directly: saves time and memory.
            image.draft("RGB", _fit(stored_size, max_side))
            image.load()
            upright = ImageOps.exif_transpose(image)
    except UnidentifiedImageError:  # Pillow also lands here for images of 0 x N pixels
        raise ImageError(
            f"{path}: not an image this add-on can read, or one without pixels. "
            "Use a JPEG, PNG, WebP, BMP or TIFF photo."
        ) from None
    except Image.DecompressionBombError:
        raise ImageError(
            f"{path}: too many pixels to read safely "
            f"(over {2 * Image.MAX_IMAGE_PIXELS / 1e6:.0f} megapixels). "
            "Downscale the photo first."
        ) from None
    except (OSError, SyntaxError) as error:  # Pillow reports broken PNG chunks as SyntaxError
        raise ImageError(
            f"{path}: the image data is damaged or cut short ({error}). Export it again."
        ) from None
    rotated = exif.get(_ORIENTATION, 1) in (5, 6, 7, 8)
    original_size = stored_size[::-1] if rotated else stored_size
    pixels = _downscale(to_rgb8(upright), max_side)
    return LoadedImage(str(path), pixels, original_size, focal_length_px(exif, *original_size))


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
