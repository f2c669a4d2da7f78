"""How far fits lie from their keypoints, in normalised pixels (see inputs.NORMALISED_HEIGHT):
the measures that gate the release, the limb retry and the restart."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from ..body_model.model import BodyModel
from . import camera
from .inputs import NORMALISED_HEIGHT
from .keypoint_groups import BODY, HEAD, HIPS
from .packing import Packing

# The body keypoints detectors place where the model has them, which a fit in a wrong
# minimum misses: not the hips (MediaPipe's and COCO's lie inside the model's hip joints)
# nor the head's landmarks (eyes and ears are defined unlike the model's, and the head
# turns on its own), which a right fit to detected keypoints misses as well.
TRUSTED_BODY = np.setdiff1d(BODY, [*HIPS, *HEAD])


def seen_reprojection_px(projected: Tensor, keypoints: Tensor, scale: Tensor) -> Tensor:
    """(B,) mean distance of each person's seen keypoints (B, K, 3) to their fitted
    projections (B, K, 2), times scale (B,): NORMALISED_HEIGHT / image height."""
    seen = (keypoints[..., 2] > 0).to(keypoints.dtype)
    distance = (projected - keypoints[..., :2]).norm(dim=-1)
    return (distance * seen).sum(1) / seen.sum(1).clamp(min=1) * scale


def body_reprojection_px(
    projected: Tensor, keypoints: Tensor, image_size: Tensor, points: np.ndarray = BODY
) -> Tensor:
    """seen_reprojection_px (B,) of the body keypoints `points` (indices; all of them by
    default). projected (B, K, 2) fitted keypoints; keypoints (B, K, 3) detected;
    image_size (B, 2)."""
    body = torch.as_tensor(points, device=keypoints.device)
    scale = NORMALISED_HEIGHT / image_size[:, 1]
    return seen_reprojection_px(projected[:, body], keypoints[:, body], scale)


def body_miss_beyond_typical_px(projected: Tensor, keypoints: Tensor, scale: Tensor) -> Tensor:
    """(B,) how much farther each person's fit lies from its seen trusted body keypoints
    (TRUSTED_BODY, on average) than from its seen keypoints typically (their median, hands
    and face included): the miss a wrong limb adds beyond the detector's noise. projected
    (B, K, 2); keypoints (B, K, 3); scale (B,) as in seen_reprojection_px."""
    trusted = torch.as_tensor(TRUSTED_BODY, device=keypoints.device)
    body = seen_reprojection_px(projected[:, trusted], keypoints[:, trusted], scale)
    distance = (projected - keypoints[..., :2]).norm(dim=-1) * scale[:, None]
    typical = distance.masked_fill(keypoints[..., 2] <= 0, float("nan")).nanmedian(dim=1).values
    return body - typical.nan_to_num(0.0)


def rows_projections(model: BodyModel, packing: Packing, x: Tensor, rows: tuple[Tensor, ...]
                     ) -> tuple[Tensor, Tensor, Tensor]:  # fmt: skip
    """The fitted keypoints of the bodies x (R, N) projected (R, K, 2), with the detected
    keypoints (R, K, 3) and the scale (R,) of their stage inputs rows (detected,
    confidence, focal, centre, scale, ...)."""
    detected, confidence, focal, centre, scale, *_ = rows
    with torch.no_grad():
        keypoints = model(vertices=False, **packing.unpack(x)).keypoints
    return camera.project(keypoints, focal, centre), torch.cat([detected, confidence[..., None]], -1), scale


def rows_reprojection_px(model: BodyModel, packing: Packing, x: Tensor, rows: tuple[Tensor, ...]) -> Tensor:
    """seen_reprojection_px (R,) of every keypoint of the bodies x (R, N) with their
    stage inputs rows (detected, confidence, focal, centre, scale, ...)."""
    return seen_reprojection_px(*rows_projections(model, packing, x, rows))
