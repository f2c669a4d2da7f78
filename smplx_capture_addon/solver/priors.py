"""Loss terms: the robust data term and the priors that need no licensed data.

Every term is a set of residuals per person (B, R) whose squares sum to its cost, so
the fit is a sum of independent least-squares problems (see `lbfgs` and `lm`). The L2
priors (shape, expression, jaw, hand PCA, body pose about `RELAXED_POSE` with each
entry weighted by `pose_prior_stiffness`) are their weighted parameters. Pose blocks
are axis-angle in each joint's parent frame, SMPL-X layout (x: the body's left, y: up,
z: forward in the rest pose).
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..body_model.names import JOINT_NAMES, NUM_BODY_JOINTS


def geman_mcclure_residual(residual: Tensor, rho: float) -> Tensor:
    """rho r / sqrt(r^2 + rho^2), the signed square root of the Geman-McClure cost
    rho^2 r^2 / (r^2 + rho^2): quadratic for small residuals, bounded by rho^2 for
    outliers (a wrong detection cannot pull the body arbitrarily far). Residual form, so
    that Levenberg-Marquardt can use it."""
    return rho * residual / torch.sqrt(residual * residual + rho * rho)


def keypoint_residuals(
    projected: Tensor, detected: Tensor, weights: Tensor, scale: Tensor, rho: float
) -> Tensor:
    """Residuals (B, 2K) whose squares sum to the data term
    sum_k w_k^2 GM(scale * (detected_k - projected_k)) over x and y.

    projected, detected (B, K, 2) pixels; weights (B, K) confidence times part weight;
    scale (B,) pixels -> "pixels of a 1000-pixel-high image", so rho and the weights
    mean the same at every resolution.
    """
    residual = (detected - projected) * scale[:, None, None]
    return (weights[..., None] * geman_mcclure_residual(residual, rho)).flatten(1)


def keypoint_residual_slopes(
    projected: Tensor, detected: Tensor, weights: Tensor, scale: Tensor, rho: float
) -> Tensor:
    """d keypoint_residuals / d projected, per coordinate (each residual depends on its
    own coordinate only): (B, K, 2), the arguments as there. The Geman-McClure residual's
    slope is rho^3 / (r^2 + rho^2)^(3/2)."""
    residual = (detected - projected) * scale[:, None, None]
    spread = residual * residual + rho * rho
    return -(weights * scale[:, None])[..., None] * rho**3 / (spread * spread.sqrt())


def depth_residuals(relative: Tensor, target: Tensor, weights: Tensor, rho: float) -> Tensor:
    """Residuals (B, D) whose squares sum to sum_j w_j^2 GM(relative_j - target_j): the
    fit's depths relative to the hips (B, D) metres against the pose model's `target`,
    Geman-McClure with scale `rho` metres (a wrong reading pulls a bounded amount)."""
    return weights * geman_mcclure_residual(relative - target, rho)


def depth_residual_slopes(relative: Tensor, target: Tensor, weights: Tensor, rho: float) -> Tensor:
    """d depth_residuals / d relative (B, D), the arguments as there."""
    residual = relative - target
    spread = residual * residual + rho * rho
    return weights * rho**3 / (spread * spread.sqrt())


# The reference's elbow/knee bending prior: body_pose entries (joint, axis, sign) whose
# rotation the wrong way is penalised by exp(sign * angle)^2: elbows about y, knees
# about x.
BENDING_ENTRIES = (
    (JOINT_NAMES.index("left_elbow"), 1, 1.0),
    (JOINT_NAMES.index("right_elbow"), 1, -1.0),
    (JOINT_NAMES.index("left_knee"), 0, -1.0),
    (JOINT_NAMES.index("right_knee"), 0, -1.0),
)


# Entry of body_pose each bending residual reads (joint j of the tree is entries 3(j - 1)..).
BENDING_INDEX = tuple(3 * (joint - 1) + axis for joint, axis, _ in BENDING_ENTRIES)
_BENDING_INDEX = torch.tensor(BENDING_INDEX)
_BENDING_SIGNS = torch.tensor([sign for *_, sign in BENDING_ENTRIES])


def bending_residuals(body_pose: Tensor) -> Tensor:
    """exp(sign * angle) per entry of BENDING_INDEX, body_pose (B, 63) -> (B, 4)."""
    return torch.exp(body_pose[:, _BENDING_INDEX.to(body_pose.device)] * _BENDING_SIGNS.to(body_pose))


def bending_slopes(body_pose: Tensor) -> Tensor:
    """d bending_residuals / d their entries of body_pose: sign * exp(sign * angle),
    (B, 63) -> (B, 4)."""
    return _BENDING_SIGNS.to(body_pose) * bending_residuals(body_pose)


# Anatomical range of each body joint's axis-angle components, radians, (x, y, z) low
# and high. Generous on purpose: they only forbid what a body cannot do (a knee bending
# forwards or sideways, an elbow bending backwards, a head turned around), leaving the
# usual range to the data. Left and right mirror each other (y and z change sign).
_LIMITS = {
    "hip": ((-2.6, -1.3, -0.8), (1.0, 1.3, 1.5)),
    "knee": ((-0.25, -0.4, -0.25), (2.8, 0.4, 0.25)),
    "ankle": ((-1.0, -1.0, -0.9), (1.3, 1.0, 0.9)),
    "foot": ((-0.8, -0.6, -0.6), (0.8, 0.6, 0.6)),
    "spine": ((-0.7, -0.7, -0.6), (1.1, 0.7, 0.6)),
    "neck": ((-0.9, -1.1, -0.8), (1.1, 1.1, 0.8)),
    "collar": ((-0.6, -0.7, -0.7), (0.6, 0.7, 0.7)),
    "shoulder": ((-3.0, -3.0, -3.0), (3.0, 3.0, 3.0)),
    "elbow": ((-1.8, -2.8, -0.6), (1.8, 0.2, 0.6)),
    "wrist": ((-1.7, -1.2, -1.6), (1.7, 1.2, 1.6)),
}
_KIND = {"spine1": "spine", "spine2": "spine", "spine3": "spine", "head": "neck"}


def joint_limit_table() -> tuple[Tensor, Tensor]:
    """(low, high), each (63,): the limits of body_pose in its own layout."""
    low, high = [], []
    for name in JOINT_NAMES[1 : NUM_BODY_JOINTS + 1]:
        side, _, part = name.partition("_")
        kind = _KIND.get(name, part if side in ("left", "right") else side)
        lo, hi = _LIMITS[kind]
        if side == "right":  # mirror across the body's mid-plane: y and z flip sign
            lo, hi = (lo[0], -hi[1], -hi[2]), (hi[0], -lo[1], -lo[2])
        low.extend(lo)
        high.extend(hi)
    return torch.tensor(low), torch.tensor(high)


def joint_limit_residuals(body_pose: Tensor, low: Tensor, high: Tensor) -> Tensor:
    """Excess beyond the range (one side at most is non-zero), (B, 63) -> (B, 63) rad."""
    return (body_pose - high).clamp(min=0) + (low - body_pose).clamp(min=0)


def joint_limit_slopes(body_pose: Tensor, low: Tensor, high: Tensor) -> Tensor:
    """d joint_limit_residuals / d body_pose per entry: 1 above the range, -1 below, else
    0. (B, 63) -> (B, 63)."""
    return (body_pose > high).to(body_pose) - (body_pose < low).to(body_pose)


# Centre of the L2 body pose prior and the starting pose: a relaxed stance (arms hanging
# about 25 degrees from the body, elbows and knees slightly bent) instead of the T-pose
# at zero. VPoser's zero code plays this role in the reference; with an L2 prior
# centred on the T-pose, every arms-down photo pays a large prior cost and the early,
# heavily regularised stages hold the arms out.
RELAXED_POSE = {
    "left_shoulder": (0.0, 0.0, -1.15),
    "right_shoulder": (0.0, 0.0, 1.15),
    "left_elbow": (0.0, -0.35, 0.0),
    "right_elbow": (0.0, 0.35, 0.0),
    "left_knee": (0.1, 0.0, 0.0),
    "right_knee": (0.1, 0.0, 0.0),
}


def pose_prior_stiffness(low: Tensor, high: Tensor, power: float) -> Tensor:
    """(63,) factor on each body_pose entry's L2 prior residual: the mean width of the
    joint ranges over the entry's own width, to the `power`, and at least 1. Joints that
    turn little (a collarbone, a vertebra, a toe, a knee's twist) are held nearer
    RELAXED_POSE; a shoulder or a hip, free to turn far, keeps the stage's weight.
    low, high (63,) of joint_limit_table."""
    width = high - low
    return (width.mean() / width).clamp(min=1.0) ** power


def relaxed_body_pose() -> Tensor:
    """(63,) body_pose of RELAXED_POSE."""
    pose = torch.zeros(NUM_BODY_JOINTS, 3)
    for name, rotation in RELAXED_POSE.items():
        pose[JOINT_NAMES.index(name) - 1] = torch.tensor(rotation)
    return pose.reshape(-1)
