"""The pinhole camera and the first guess of where the body stands in front of it.

Camera space is OpenCV's (x right, y down, z forward, metres), the camera at the origin
looking down +z, principal point at the image centre. The body's global orientation and
translation place it in that space; there is no separate camera rotation.

Focal length: given by the user, else from the photo's EXIF (read by
`keypoints.images`), else `DEFAULT_FOCAL_35MM`: a 35 mm-equivalent lens, about 63
degrees diagonal field of view, typical of phone and compact cameras (the reference's
fixed 5000 px is a telephoto of about 5 degrees that flattens depth on real photos).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ..body_model.lbs import axis_angle_to_matrix

DEFAULT_FOCAL_35MM = 35.0
FULL_FRAME_DIAGONAL_MM = math.hypot(36.0, 24.0)  # 43.27 mm


def focal_from_35mm(focal_35mm: float, width: int, height: int) -> float:
    """Focal length in pixels of a lens with this 35 mm-equivalent focal length: the
    equivalence is defined on the diagonal, so it holds for any aspect ratio."""
    return focal_35mm * math.hypot(width, height) / FULL_FRAME_DIAGONAL_MM


def default_focal(width: int, height: int) -> float:
    return focal_from_35mm(DEFAULT_FOCAL_35MM, width, height)


MIN_DEPTH = 1e-3  # metres: project clamps depths here


def project(points: Tensor, focal: Tensor, centre: Tensor) -> Tensor:
    """Perspective projection. points (B, K, 3) camera space; focal (B,); centre (B, 2)
    -> pixels (B, K, 2). Depth is clamped at 1 mm so a point behind the camera cannot
    produce inf (the divergence check catches such bodies)."""
    depth = points[..., 2:].clamp(min=MIN_DEPTH)
    return focal[:, None, None] * points[..., :2] / depth + centre[:, None, :]


def projection_jacobian(points: Tensor, focal: Tensor) -> Tensor:
    """d project / d points: points (B, K, 3); focal (B,) -> (B, K, 2 pixel axes, 3).
    Where the depth is clamped, the projection does not move with it."""
    depth = points[..., 2:]
    clamped = depth.clamp(min=MIN_DEPTH)
    reach = (focal[:, None, None] / clamped)[..., None]  # (B, K, 1, 1)
    along_depth = torch.where(depth[..., None] > MIN_DEPTH, -points[..., :2, None] / clamped[..., None], 0.0)
    eye = torch.eye(2, dtype=points.dtype, device=points.device)
    return reach * torch.cat([eye.expand(*points.shape[:2], 2, 2), along_depth], -1)


def projection_pullback(points: Tensor, focal: Tensor, grad: Tensor) -> Tensor:
    """The transpose of projection_jacobian: d loss / d pixels (B, K, 2) -> d loss / d
    points (B, K, 3); points (B, K, 3); focal (B,)."""
    depth = points[..., 2:]
    clamped = depth.clamp(min=MIN_DEPTH)
    across = grad * (focal[:, None, None] / clamped)  # (B, K, 2)
    along_depth = -(across * points[..., :2]).sum(-1, keepdim=True) / clamped
    return torch.cat([across, torch.where(depth > MIN_DEPTH, along_depth, 0.0)], -1)


def matrix_to_axis_angle(matrix: Tensor) -> Tensor:
    """(..., 3, 3) rotation matrices -> (..., 3) axis-angle, via a unit quaternion
    (stable near 0 and near 180 degrees)."""
    m00, m01, m02 = matrix[..., 0, 0], matrix[..., 0, 1], matrix[..., 0, 2]
    m10, m11, m12 = matrix[..., 1, 0], matrix[..., 1, 1], matrix[..., 1, 2]
    m20, m21, m22 = matrix[..., 2, 0], matrix[..., 2, 1], matrix[..., 2, 2]
    rows = (
        (1 + m00 + m11 + m22, m21 - m12, m02 - m20, m10 - m01),
        (m21 - m12, 1 + m00 - m11 - m22, m01 + m10, m02 + m20),
        (m02 - m20, m01 + m10, 1 - m00 + m11 - m22, m12 + m21),
        (m10 - m01, m02 + m20, m12 + m21, 1 - m00 - m11 + m22),
    )
    candidates = torch.stack([torch.stack(row, -1) for row in rows], dim=-2)
    # Each row is 4 q_i q (i = w, x, y, z): take the row with the largest |q_i|.
    best = candidates.norm(dim=-1).argmax(-1)
    quat = torch.gather(candidates, -2, best[..., None, None].expand(*best.shape, 1, 4)).squeeze(-2)
    quat = quat / quat.norm(dim=-1, keepdim=True)
    quat = torch.where(quat[..., :1] < 0, -quat, quat)
    sin_half = quat[..., 1:].norm(dim=-1, keepdim=True)
    angle = 2.0 * torch.atan2(sin_half, quat[..., :1])
    return quat[..., 1:] * torch.where(
        sin_half > 1e-8, angle / sin_half.clamp(min=1e-8), torch.full_like(angle, 2.0)
    )


def rotation_x(angle: float) -> Tensor:
    return axis_angle_to_matrix(torch.tensor([angle, 0.0, 0.0], dtype=torch.float64))


def rotation_y(angle: float) -> Tensor:
    return axis_angle_to_matrix(torch.tensor([0.0, angle, 0.0], dtype=torch.float64))


# The model stands with y up and faces +z; in camera space up is -y and the camera looks
# along +z, so a body facing the camera is the model turned 180 degrees about x.
FACING_CAMERA = rotation_x(math.pi)
FACING_AWAY = rotation_y(math.pi) @ FACING_CAMERA


def initial_orientation(facing_away: Tensor, roll: Tensor | None = None) -> Tensor:
    """Global orientation (B, 3) of a body facing the camera, or turned away from it where
    `facing_away` (B,) bool is set, its head up in the image or, with `roll` (B,)
    radians, leaning by that angle in the image plane (clockwise on screen)."""
    front = FACING_CAMERA.to(facing_away.device)
    back = FACING_AWAY.to(facing_away.device)
    base = torch.where(facing_away[:, None, None], back, front)
    if roll is not None:
        axis = torch.zeros(len(roll), 3, dtype=torch.float64, device=roll.device)
        axis[:, 2] = roll.double()
        base = axis_angle_to_matrix(axis) @ base
    return matrix_to_axis_angle(base).float()


def turned_around(global_orient: Tensor) -> Tensor:
    """The same orientations (B, 3) turned 180 degrees about the body's own vertical axis:
    the other answer to "which way does a person seen from the side face"."""
    turn = rotation_y(math.pi).to(global_orient)
    return matrix_to_axis_angle(axis_angle_to_matrix(global_orient) @ turn)


def tilt_mirrored(global_orient: Tensor) -> Tensor:
    """The Necker twin of orientations (B, 3): M R M with M the mirror through the image
    plane. A torso's shoulders and hips lie nearly in one plane, and such a plane leaning
    towards the camera or away from it by the same angle looks the same in a photo: the
    first two axes of R keep their x and y, their depth changes sign."""
    mirror = torch.diag(
        torch.tensor([1.0, 1.0, -1.0], dtype=global_orient.dtype, device=global_orient.device)
    )
    return matrix_to_axis_angle(mirror @ axis_angle_to_matrix(global_orient) @ mirror)


def similar_triangles_depth(
    model_points: Tensor, image_points: Tensor, pairs_visible: Tensor, focal: Tensor
) -> Tensor:
    """Depth at which the model's segments project to the detected lengths.

    model_points (B, P, 2, 3) segment end points of the rest model; image_points
    (B, P, 2, 2) the same segments detected, pixels; pairs_visible (B, P) bool;
    focal (B,). Returns depth (B,) metres: focal * RMS 3D length / RMS 2D length over the
    visible segments (the reference does this on the torso: shoulders to hips).
    """
    length3d = (model_points[:, :, 0, :2] - model_points[:, :, 1, :2]).square().sum(-1)
    length2d = (image_points[:, :, 0] - image_points[:, :, 1]).square().sum(-1)
    weight = pairs_visible.to(length3d.dtype)
    mean3d = (length3d * weight).sum(-1) / weight.sum(-1).clamp(min=1)
    mean2d = (length2d * weight).sum(-1) / weight.sum(-1).clamp(min=1)
    return focal * torch.sqrt(mean3d / mean2d.clamp(min=1e-6))


def segment_depth_bound(
    model_points: Tensor, image_points: Tensor, pairs_visible: Tensor, focal: Tensor, rank: int = 1
) -> Tensor:
    """Depth beyond which the body cannot be: a segment of 3D length L seen as l pixels
    lies no farther than focal * L / l, as turning it towards the camera only shortens
    its image. The `rank`-th smallest of those bounds (0: the tightest; 1 survives one
    misplaced point). model_points (B, P, 2, 3) segment end points of the model;
    image_points (B, P, 2, 2) pixels; pairs_visible (B, P) bool; focal (B,). -> (B,)
    metres, infinite where fewer than rank + 1 segments are seen."""
    length3d = (model_points[:, :, 0] - model_points[:, :, 1]).norm(dim=-1)
    length2d = (image_points[:, :, 0] - image_points[:, :, 1]).norm(dim=-1)
    bounds = focal[:, None] * length3d / length2d.clamp(min=1e-6)
    bounds = torch.where(pairs_visible, bounds, torch.full_like(bounds, float("inf")))
    return bounds.sort(dim=-1).values[:, rank]
