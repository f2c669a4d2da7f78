"""The fit's input: keypoints checked before any optimisation, with a message that says
what is wrong, and brought to the model's device, dtype and keypoint count.

Pixel distances inside the fit are normalised to a NORMALISED_HEIGHT-pixel-high image,
so weights and thresholds mean the same on any photo.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from ..body_model.model import BodyModel
from ..body_model.names import KEYPOINT_NAMES, KEYPOINT_NAMES_WITH_CONTOUR
from .errors import FitError
from .keypoint_groups import BODY, DEPTH_POINTS, HIPS

MIN_BODY_KEYPOINTS = 5
# Beyond this fraction of the image size outside it, most keypoints of a person mean
# coordinates of another image (or not pixels).
OTHER_IMAGE_MARGIN = 0.25
NORMALISED_HEIGHT = 1000.0  # weights and rho are in pixels of a 1000-pixel-high image
_KEYPOINT_COUNTS = (len(KEYPOINT_NAMES), len(KEYPOINT_NAMES_WITH_CONTOUR))


def check_keypoints(keypoints: np.ndarray, image_size: np.ndarray) -> None:
    """Refuse input that cannot be fitted, before any optimisation, with a message that
    says what is wrong. keypoints (B, K, 3); image_size (B, 2) width, height."""
    if keypoints.ndim != 3 or keypoints.shape[2] != 3 or keypoints.shape[1] not in _KEYPOINT_COUNTS:
        raise FitError(
            f"Keypoints have shape {tuple(keypoints.shape)}; expected (people, {len(KEYPOINT_NAMES)} or "
            f"{len(KEYPOINT_NAMES_WITH_CONTOUR)}, 3) as (x, y, confidence) per body-model keypoint."
        )
    if keypoints.shape[0] == 0:
        raise FitError("No person to fit: the keypoint input holds no person.")
    names = KEYPOINT_NAMES_WITH_CONTOUR
    for person, points in enumerate(keypoints):
        bad = ~np.isfinite(points).all(axis=1)
        if bad.any():
            raise FitError(
                f"Person {person}: keypoint '{names[int(np.argmax(bad))]}' has a NaN or infinite value "
                f"({int(bad.sum())} such keypoints): the keypoint file is corrupt."
            )
        confidence = points[:, 2]
        if (confidence < 0).any() or (confidence > 1.0 + 1e-6).any():
            raise FitError(f"Person {person}: confidences must lie in [0, 1].")
        width, height = image_size[person]
        seen = confidence > 0
        outside = seen & outside_image(points[:, :2], width, height, OTHER_IMAGE_MARGIN)
        if outside.sum() > 0.5 * seen.sum():
            index = int(np.argmax(outside))
            raise FitError(
                f"Person {person}: {int(outside.sum())} of {int(seen.sum())} keypoints lie outside the "
                f"{width:.0f}x{height:.0f} image (e.g. '{names[index]}' at ({points[index, 0]:.0f}, "
                f"{points[index, 1]:.0f})): the keypoints belong to another image size or are not in pixels."
            )
        confidence = np.where(outside, 0.0, confidence)
        body_seen = int((confidence[BODY] > 0).sum())
        if body_seen < MIN_BODY_KEYPOINTS:
            raise FitError(
                f"Person {person}: only {body_seen} body keypoints were found; at least {MIN_BODY_KEYPOINTS} "
                "(e.g. shoulders, elbows, hips) are needed to fit a body. Use a photo showing more of "
                "the person."
            )
        body_points = points[BODY][confidence[BODY] > 0, :2]
        if np.sqrt(((body_points - body_points.mean(0)) ** 2).sum(1).mean()) < 2.0:
            raise FitError(f"Person {person}: the body keypoints all lie on one spot; nothing to fit.")


def outside_image(
    points: np.ndarray | Tensor, width: float, height: float, margin: float
) -> np.ndarray | Tensor:
    """(..., 2) pixels -> (...) bool: beyond the image by more than `margin` of its long side."""
    margin = margin * max(float(width), float(height))
    x, y = points[..., 0], points[..., 1]
    return (x < -margin) | (x > width + margin) | (y < -margin) | (y > height + margin)


def prepare_keypoints(
    model: BodyModel, keypoints: Tensor, image_size: Tensor, outside_margin: float
) -> Tensor:
    """keypoints (B, K, 3) checked, on the model's device and dtype, with the confidence of
    points beyond the image by more than `outside_margin` of its long side zeroed (a
    detector's guesses) and K the model's count (the face contour's points padded as
    unseen, or dropped)."""
    given, sizes = keypoints.detach().cpu().numpy(), image_size.detach().cpu().numpy()
    check_keypoints(given, sizes)
    # On the host: a loop over people on the GPU would wait for it once per person.
    pairs = zip(given, sizes, strict=True)
    outside = np.stack([outside_image(points[:, :2], *size, outside_margin) for points, size in pairs])
    device, dtype = model.full_template.device, model.full_template.dtype
    count = len(KEYPOINT_NAMES_WITH_CONTOUR) if model.face_contour else len(KEYPOINT_NAMES)
    keypoints = keypoints.to(device=device, dtype=dtype)
    outside = torch.as_tensor(outside, device=device)
    keypoints = torch.cat([keypoints[..., :2], torch.where(outside, 0.0, keypoints[..., 2])[..., None]], -1)
    if keypoints.shape[1] < count:
        keypoints = torch.cat(
            [keypoints, keypoints.new_zeros(keypoints.shape[0], count - keypoints.shape[1], 3)], 1
        )
    return keypoints[:, :count]


def prepare_world_depths(keypoints: Tensor, depths: Tensor | None) -> tuple[Tensor, Tensor] | None:
    """The world depth term's rows (see objective) from the pose model's depths (B, K)
    metres (NaN where it gave none) and the prepared keypoints (B, K', 3): the depths of
    DEPTH_POINTS less their hips' midpoint (B, D), and their weights (B, D), 1 where the
    point is seen in the photo and the pose model gave it and both hips. None when it
    gave nobody any."""
    if depths is None:
        return None
    if depths.ndim != 2 or len(depths) != len(keypoints) or depths.shape[1] not in _KEYPOINT_COUNTS:
        raise FitError(
            f"World depths have shape {tuple(depths.shape)}; expected (people, {len(KEYPOINT_NAMES)} or "
            f"{len(KEYPOINT_NAMES_WITH_CONTOUR)}), one per keypoint."
        )
    depths = depths.to(keypoints)
    hips = depths[:, HIPS].mean(1, keepdim=True)
    relative = depths[:, DEPTH_POINTS] - hips
    given = torch.isfinite(relative) & (keypoints[:, DEPTH_POINTS, 2] > 0)
    if not bool(given.any()):
        return None
    return torch.where(given, relative, 0.0), given.to(keypoints.dtype)
