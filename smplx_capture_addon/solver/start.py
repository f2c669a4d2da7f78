"""Where a fit starts: which way each person faces and leans in the image, and the body's
first guess (relaxed pose, depth from similar triangles), or a given earlier fit."""

from __future__ import annotations

import torch
from torch import Tensor

from ..body_model.model import BodyModel
from ..result_format import PersonFit
from . import camera, priors
from .keypoint_groups import BODY, HEAD, HIPS, RIGID_SEGMENTS, SHOULDERS, TORSO_PAIRS
from .learned_priors import VPoserDecoder
from .packing import LATENT

SIDE_VIEW_RATIO = 0.4  # shoulder width / torso length in 2D below which both facings are tried


def initial_parameters(
    model: BodyModel,
    detected: Tensor,
    confidence: Tensor,
    focal: Tensor,
    centre: Tensor,
    facing_away: Tensor,
    roll: Tensor,
    vposer: VPoserDecoder | None = None,
) -> dict[str, Tensor]:
    """The body facing the camera (or away), leaning as its torso does in the image, at
    the depth where its torso (else its visible body) has the detected size, centred on
    the detections. In the relaxed pose, or with VPoser its zero code's pose."""
    batch = detected.shape[0]
    params = model.zeros(batch)
    params["global_orient"] = camera.initial_orientation(facing_away, roll).to(detected)
    if vposer is not None:
        params[LATENT] = detected.new_zeros(batch, vposer.latent_dim)
        params["body_pose"] = vposer.decode(params[LATENT])
    else:
        params["body_pose"] = priors.relaxed_body_pose().to(detected).expand(batch, -1).clone()
    rest = model(
        vertices=False, global_orient=params["global_orient"], body_pose=params["body_pose"]
    ).keypoints
    body = torch.as_tensor(BODY, device=detected.device)
    seen = confidence[:, body] > 0
    weight = seen.to(detected.dtype)[..., None]

    def centroid(points: Tensor) -> Tensor:
        return (points[:, body] * weight).sum(1) / weight.sum(1)

    pairs = torch.as_tensor(TORSO_PAIRS, device=detected.device)  # (2, 2)
    pair_seen = (confidence[:, pairs] > 0).all(-1)
    torso_depth = camera.similar_triangles_depth(rest[:, pairs], detected[:, pairs], pair_seen, focal)
    # Fallback without a torso segment: spread of the visible body keypoints.
    rest_c, det_c = centroid(rest), centroid(detected)
    spread3d = torch.stack([rest[:, body], rest_c[:, None].expand(-1, len(BODY), -1)], 2)
    spread2d = torch.stack([detected[:, body], det_c[:, None].expand(-1, len(BODY), -1)], 2)
    spread_depth = camera.similar_triangles_depth(spread3d, spread2d, seen, focal)
    depth = torch.where(pair_seen.any(-1), torso_depth, spread_depth)
    # A torso turned towards the camera looks short, as if far away: the limbs then
    # tell the depth (people lying along the line of sight, bent over, seen from above).
    segments = torch.as_tensor(RIGID_SEGMENTS, device=detected.device)
    segments_seen = (confidence[:, segments] > 0).all(-1)
    depth = torch.minimum(
        depth, camera.segment_depth_bound(rest[:, segments], detected[:, segments], segments_seen, focal)
    )
    transl = torch.stack(
        [
            (det_c[:, 0] - centre[:, 0]) * depth / focal - rest_c[:, 0],
            (det_c[:, 1] - centre[:, 1]) * depth / focal - rest_c[:, 1],
            depth - rest_c[:, 2],
        ],
        dim=1,
    )
    params["transl"] = transl
    return params


def mean_seen(points: Tensor, seen: Tensor) -> tuple[Tensor, Tensor]:
    """Mean of the seen points. points (B, P, 2); seen (B, P) -> (B, 2), any seen (B,)."""
    weight = seen.to(points.dtype)[..., None]
    return (points * weight).sum(1) / weight.sum(1).clamp(min=1), seen.any(-1)


def image_up(detected: Tensor, confidence: Tensor) -> Tensor:
    """Direction (B, 2) from the hips to the shoulders in the image (else from the
    shoulders to the head, else straight up): the person's up on screen."""
    shoulders, shoulders_seen = mean_seen(detected[:, list(SHOULDERS)], confidence[:, list(SHOULDERS)] > 0)
    hips, hips_seen = mean_seen(detected[:, list(HIPS)], confidence[:, list(HIPS)] > 0)
    head, head_seen = mean_seen(detected[:, HEAD], confidence[:, HEAD] > 0)
    up = torch.zeros_like(shoulders)
    up[:, 1] = -1.0
    up = torch.where((shoulders_seen & head_seen)[:, None], head - shoulders, up)
    up = torch.where((shoulders_seen & hips_seen)[:, None], shoulders - hips, up)
    return up / up.norm(dim=-1, keepdim=True).clamp(min=1e-6)


def facing(
    detected: Tensor, confidence: Tensor, scale: Tensor, threshold: float
) -> tuple[Tensor, Tensor, Tensor]:
    """(facing_away, side_view, roll), each (B,): which way the person faces, whether it
    is seen from the side, and its lean in the image plane (radians, see
    camera.initial_orientation). Facing the camera, a person's left shoulder (else hip)
    is on the right of its up direction on screen.

    Side view: the shoulders closer than `threshold` normalised pixels (the reference's
    test) or, with the torso seen, closer than SIDE_VIEW_RATIO of its length: the
    reference's fixed 25 px misses people seen 15-30 degrees off the side, who then end
    up facing the wrong way.
    """
    up = image_up(detected, confidence)
    facing_away = torch.zeros(detected.shape[0], dtype=torch.bool, device=detected.device)
    side_view = torch.ones_like(facing_away)
    for left, right in (HIPS, SHOULDERS):  # shoulders last: they decide when both are seen
        both = (confidence[:, left] > 0) & (confidence[:, right] > 0)
        across = detected[:, left] - detected[:, right]
        facing_away = torch.where(both, up[:, 0] * across[:, 1] - up[:, 1] * across[:, 0] < 0, facing_away)
        distance = (detected[:, left] - detected[:, right]).norm(dim=-1) * scale
        side_view = torch.where(both, distance < threshold, side_view)
    pairs = torch.as_tensor(TORSO_PAIRS, device=detected.device)
    torso_seen = (confidence[:, pairs] > 0).all(-1)  # (B, 2)
    torso = ((detected[:, pairs[:, 0]] - detected[:, pairs[:, 1]]).norm(dim=-1) * torso_seen).sum(-1)
    torso = torso / torso_seen.sum(-1).clamp(min=1)
    shoulders = (detected[:, SHOULDERS[0]] - detected[:, SHOULDERS[1]]).norm(dim=-1)
    narrow = (
        torso_seen.any(-1)
        & (confidence[:, list(SHOULDERS)] > 0).all(-1)
        & (shoulders < SIDE_VIEW_RATIO * torso)
    )
    roll = torch.atan2(up[:, 0], -up[:, 1])
    return facing_away, side_view | narrow, roll


def start_from_result(model: BodyModel, people: list[PersonFit]) -> dict[str, Tensor]:
    """The parameters (B, ...) of earlier fits (a result file's people) in `model`'s own
    parameterisation, for fit_keypoints' `start`: shape and expression cut or padded to
    the model's sizes, full hand poses (mean included) projected onto its hand PCA."""
    device, dtype = model.full_template.device, model.full_template.dtype
    params = {}
    for name, size in model.parameter_sizes.items():
        values = torch.tensor([getattr(person, name) for person in people], device=device, dtype=dtype)
        if name.endswith("hand_pose"):
            side = name.split("_")[0]
            offset = values - getattr(model, f"{side}_hand_mean")
            basis = getattr(model, f"{side}_hand_components")  # (P, 45)
            values = torch.linalg.lstsq(basis.T, offset.T).solution.T
        params[name] = torch.nn.functional.pad(values[:, :size], (0, size - min(size, values.shape[1])))
    return params
