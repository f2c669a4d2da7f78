"""The rendered pictures as arrays: the photo the detector sees, and who is at each pixel.

`compose` lays the render (RGBA, transparent where nothing was drawn) over the case's
background, a plain colour or a crop of a photo without people (scikit-image's CC0 and
public-domain pictures that `build.py setup` fetches into .cache/backgrounds/), and
writes an RGB PNG as a camera would give it. `read_labels` turns the id map into
per-pixel labels: 0 nothing, k for person k (from 1), PROP for any prop.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from ...errors import CaptureError

BACKGROUND_CACHE = Path(__file__).resolve().parents[3] / ".cache" / "backgrounds"
# The id map's flat colours: person k (from 1) is ID_COLOURS[k - 1], every prop PROP_ID_COLOUR.
ID_COLOURS = ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0), (1.0, 0.0, 1.0), (0.0, 1.0, 1.0))
PROP_ID_COLOUR = (1.0, 1.0, 0.0)
PROP = -1


def background(spec: dict, width: int, height: int) -> np.ndarray:
    """(H, W, 3) float sRGB in [0, 1]: the plain colour, or the photo's crop (see
    cases.CaseSpec) scaled to the image."""
    if "colour" in spec:
        return np.broadcast_to(np.asarray(spec["colour"], dtype=np.float64), (height, width, 3)).copy()
    path = BACKGROUND_CACHE / spec["photo"]
    if not path.is_file():
        raise CaptureError(f"The background photo {path} is missing: run `python3 build.py setup` first.")
    with Image.open(path) as photo:
        photo = photo.convert("RGB")
        crop_width = min(photo.width, photo.height * spec["aspect"]) * spec["scale"]
        crop_height = crop_width / spec["aspect"]
        x0 = (photo.width - crop_width) * spec["position"][0]
        y0 = (photo.height - crop_height) * spec["position"][1]
        box = (x0, y0, x0 + crop_width, y0 + crop_height)
        scaled = photo.resize((width, height), Image.Resampling.BICUBIC, box=box)
    return np.asarray(scaled, dtype=np.float64) / 255.0


def compose(picture: Path, spec: dict, out: Path) -> Path:
    """The render over its background, written as an RGB PNG to `out`."""
    with Image.open(picture) as image:
        rgba = np.asarray(image.convert("RGBA"), dtype=np.float64) / 255.0
    height, width = rgba.shape[:2]
    alpha = rgba[..., 3:]
    composed = background(spec, width, height) * (1.0 - alpha) + rgba[..., :3] * alpha
    Image.fromarray(np.round(composed * 255.0).astype(np.uint8)).save(out)
    return out


def read_labels(id_map: Path) -> np.ndarray:
    """(H, W) int labels of the id map: 0 nothing, k for person k (from 1), PROP."""
    with Image.open(id_map) as image:
        rgba = np.asarray(image.convert("RGBA"), dtype=np.float64) / 255.0
    palette = np.array([*ID_COLOURS, PROP_ID_COLOUR])
    nearest = np.argmin(((rgba[..., None, :3] - palette) ** 2).sum(-1), axis=-1)
    labels = np.where(nearest == len(ID_COLOURS), PROP, nearest + 1)
    return np.where(rgba[..., 3] >= 0.5, labels, 0)
