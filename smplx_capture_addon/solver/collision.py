"""Self-collision penalty in plain PyTorch: the body as capsules around its bones.

The reference finds colliding triangles with a BVH in a CUDA extension (a top
installation complaint). Here each limb segment and the torso is a capsule (a segment
between two joints with a radius), and a penalty grows with the overlap of capsule pairs
that cannot touch through the body (forearm and torso, hand and head, shin and shin...).
It needs only the posed joints, so it runs on the fitter's fast path, on CPU and GPU
alike, and costs a few microseconds per person. The radii are those of an average adult
scaled by the model's rest height; a capsule is coarser than the mesh, so the penalty
catches a hand inside the torso, not a finger grazing the skin.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..body_model.names import JOINT_NAMES

_J = JOINT_NAMES.index
# name: (start joint, end joint(s) averaged, radius in metres for REFERENCE_HEIGHT)
CAPSULES: dict[str, tuple[int, tuple[int, ...], float]] = {
    "abdomen": (_J("pelvis"), (_J("spine2"),), 0.11),
    "chest": (_J("spine2"), (_J("neck"),), 0.11),
    "head": (_J("head"), (_J("left_eye_smplhf"), _J("right_eye_smplhf")), 0.09),
    "left_upper_arm": (_J("left_shoulder"), (_J("left_elbow"),), 0.045),
    "right_upper_arm": (_J("right_shoulder"), (_J("right_elbow"),), 0.045),
    "left_forearm": (_J("left_elbow"), (_J("left_wrist"),), 0.04),
    "right_forearm": (_J("right_elbow"), (_J("right_wrist"),), 0.04),
    "left_hand": (_J("left_wrist"), (_J("left_middle1"),), 0.035),
    "right_hand": (_J("right_wrist"), (_J("right_middle1"),), 0.035),
    "left_thigh": (_J("left_hip"), (_J("left_knee"),), 0.075),
    "right_thigh": (_J("right_hip"), (_J("right_knee"),), 0.075),
    "left_shin": (_J("left_knee"), (_J("left_ankle"),), 0.05),
    "right_shin": (_J("right_knee"), (_J("right_ankle"),), 0.05),
    "left_foot": (_J("left_ankle"), (_J("left_foot"),), 0.04),
    "right_foot": (_J("right_ankle"), (_J("right_foot"),), 0.04),
}
REFERENCE_HEIGHT = 1.46  # rest distance from the ankles to the head joint of an adult


def _pairs() -> tuple[tuple[str, str], ...]:
    pairs = []
    for side, other in (("left", "right"), ("right", "left")):
        for limb in (f"{side}_forearm", f"{side}_hand"):
            pairs += [(limb, part) for part in ("abdomen", "chest", "head", "left_thigh", "right_thigh")]
            pairs += [(limb, f"{other}_upper_arm")]
        pairs += [(f"{side}_foot", f"{other}_shin")]
    pairs += [(f"left_{a}", f"right_{b}") for a in ("forearm", "hand") for b in ("forearm", "hand")]
    pairs += [("left_shin", "right_shin"), ("left_foot", "right_foot")]
    return tuple(dict.fromkeys(pairs))


PAIRS = _pairs()
# The sum of each pair's radii, metres for REFERENCE_HEIGHT: (P,).
_REACH = torch.tensor([CAPSULES[a][2] + CAPSULES[b][2] for a, b in PAIRS], dtype=torch.float64)


def _segment_matrix() -> Tensor:
    """(P * 4, 55): row 4p + i averages the joints of end point i of pair p's segments
    (start 1, end 1, start 2, end 2; an end may be the mean of several joints)."""
    matrix = torch.zeros(len(PAIRS), 4, len(JOINT_NAMES), dtype=torch.float64)
    for pair, (first, second) in enumerate(PAIRS):
        for slot, name in ((0, first), (2, second)):
            start, end, _ = CAPSULES[name]
            matrix[pair, slot, start] = 1.0
            matrix[pair, slot + 1, list(end)] = 1.0 / len(end)
    return matrix.flatten(0, 1)


_SEGMENTS = _segment_matrix()
_MILLIMETRES = 1000.0  # segment_residuals' unit per metre


def pair_segments(joints: Tensor) -> Tensor:
    """The two segments of every pair of PAIRS, each pair with its own copy:
    joints (B, 55, 3, ...) -> (B, P, 4, 3, ...) as (start 1, end 1, start 2, end 2).
    Linear in the joints (one product: a fit evaluates it hundreds of times), so it maps
    their derivatives too."""
    flat = joints.flatten(2)
    segments = _SEGMENTS.to(flat) @ flat
    return segments.view(len(joints), len(PAIRS), 4, *joints.shape[2:])


def pair_segments_pullback(grad: Tensor) -> Tensor:
    """The transpose of pair_segments: d loss / d segments (B, P, 4, 3) -> d loss / d
    joints (B, 55, 3)."""
    return _SEGMENTS.to(grad).T @ grad.flatten(1, 2)


def joint_derivatives(per_segment: Tensor) -> Tensor:
    """Derivatives with respect to pair_segments' output, (B, P, 4, 3), as derivatives
    with respect to the joints, each pair's apart: (B, P, 55, 3) (the transpose of
    pair_segments' product)."""
    return torch.einsum("bpmc,pmj->bpjc", per_segment, _SEGMENTS.to(per_segment).view(len(PAIRS), 4, -1))


def closest_parameters(p1: Tensor, q1: Tensor, p2: Tensor, q2: Tensor) -> tuple[Tensor, Tensor]:
    """Where segments p1-q1 and p2-q2 (..., 3) each come closest to the other: s, t (...,)
    in [0, 1] along each.

    Clamped parameters (Ericson, Real-Time Collision Detection 5.1.9); the small epsilons
    keep degenerate (zero-length, parallel) segments finite.
    """
    d1, d2, r = q1 - p1, q2 - p2, p1 - p2
    a = (d1 * d1).sum(-1).clamp(min=1e-12)
    e = (d2 * d2).sum(-1).clamp(min=1e-12)
    f = (d2 * r).sum(-1)
    c = (d1 * r).sum(-1)
    b = (d1 * d2).sum(-1)
    denominator = (a * e - b * b).clamp(min=1e-12)
    s = ((b * f - c * e) / denominator).clamp(0.0, 1.0)
    t = (b * s + f) / e
    # t outside [0, 1]: clamp it and recompute s for that end point.
    t_clamped = t.clamp(0.0, 1.0)
    s = torch.where(t == t_clamped, s, ((b * t_clamped - c) / a).clamp(0.0, 1.0))
    return s, t_clamped


def _gap(p1: Tensor, q1: Tensor, p2: Tensor, q2: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """The closest parameters s, t and the vector between the closest points (..., 3)."""
    s, t = closest_parameters(p1, q1, p2, q2)
    return s, t, p1 + (q1 - p1) * s[..., None] - p2 - (q2 - p2) * t[..., None]


def _length(gap: Tensor) -> Tensor:
    """|gap| (..., 3) -> (...,), kept off zero (a finite derivative where segments meet)."""
    return gap.square().sum(-1).add(1e-12).sqrt()


def segment_distance(p1: Tensor, q1: Tensor, p2: Tensor, q2: Tensor) -> Tensor:
    """Shortest distance between segments p1-q1 and p2-q2, (..., 3) each -> (...,)."""
    return _length(_gap(p1, q1, p2, q2)[2])


def segment_overlaps(segments: Tensor, size: float = 1.0) -> Tensor:
    """How deep each pair interpenetrates, metres (0 when apart). segments (B, P, 4, 3)
    from pair_segments; size: the body's rest height over REFERENCE_HEIGHT -> (B, P).
    Each pair's overlap depends on its own segments only."""
    reach = _REACH.to(segments) * size
    return (reach - segment_distance(*segments.unbind(2))).clamp(min=0.0)


def capsule_overlaps(joints: Tensor, size: float = 1.0) -> Tensor:
    """segment_overlaps of the pairs' segments. joints (B, 55, 3) -> (B, P) metres."""
    return segment_overlaps(pair_segments(joints), size)


def segment_residuals(segments: Tensor, size: float = 1.0) -> Tensor:
    """The penalty's residuals: overlaps in millimetres, segments (B, P, 4, 3) from
    pair_segments -> (B, P). Squared and summed, 1 cm of overlap costs as much as a
    10-pixel keypoint error at weight 1."""
    return segment_overlaps(segments, size) * _MILLIMETRES


def segment_residual_derivatives(segments: Tensor, size: float = 1.0) -> Tensor:
    """d segment_residuals / d segments, each pair's with respect to its own segments:
    (B, P, 4, 3). The distance is a minimum over the closest parameters, so its
    derivative is that of the closest points' distance with the parameters held (zero
    change along a segment at an interior minimum, none past a clamped end): moving an
    end point moves the closest point by its share (1 - s or s) of it."""
    return segment_residuals_and_derivatives(segments, size)[1]


def segment_residuals_and_derivatives(segments: Tensor, size: float = 1.0) -> tuple[Tensor, Tensor]:
    """segment_residuals (B, P) and segment_residual_derivatives (B, P, 4, 3) from one
    search for the closest points."""
    s, t, gap = _gap(*segments.unbind(2))
    distance = _length(gap)
    overlap = _REACH.to(segments) * size - distance
    touching = (overlap > 0)[..., None]
    direction = torch.where(touching, gap * (-_MILLIMETRES / distance[..., None]), 0.0)  # d residual / d gap
    shares = torch.stack([1 - s, s, t - 1, -t], -1)  # how each end point moves the gap
    return overlap.clamp(min=0.0) * _MILLIMETRES, shares[..., None] * direction[..., None, :]


def body_size(rest_joints: Tensor) -> float:
    """Rest height (head joint above the ankles) of a model over REFERENCE_HEIGHT.
    rest_joints (55, 3) in the model's frame (y up)."""
    ankles = rest_joints[[_J("left_ankle"), _J("right_ankle")], 1].mean()
    return float((rest_joints[_J("head"), 1] - ankles) / REFERENCE_HEIGHT)
