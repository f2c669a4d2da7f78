"""Linear blend skinning for SMPL-X-layout bodies: small pure functions on tensors.

B is the batch size, V the number of vertices, J the number of joints, K the number of
blend directions. Rotations are axis-angle vectors or 3x3 matrices (no homogeneous 4x4
transforms: a rotation and a translation are kept apart, which is cheaper).

Two choices make this faster than a joint-by-joint implementation:
- the kinematic chain is walked one tree level at a time (11 batched matrix products
  for SMPL-X instead of 54 sequential ones);
- joints are regressed from precomputed "joint directions" (J_regressor applied to the
  template and to each blend direction once), so a forward pass never multiplies the
  (J, V) regressor with the shaped mesh.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class KinematicTree:
    """A joint tree prepared for level-by-level traversal.

    parents: (J,) long, -1 for the root. order: (J,) joints sorted by depth.
    level_joints / level_parent_slots: per level below the root, the joints of that level
    and, for each, where its parent sits in `order`. inverse_order: (J,) maps back.
    """

    parents: Tensor
    order: Tensor
    inverse_order: Tensor
    level_joints: tuple[Tensor, ...]
    level_parent_slots: tuple[Tensor, ...]

    def to(self, device: torch.device | str) -> KinematicTree:
        return KinematicTree(
            self.parents.to(device),
            self.order.to(device),
            self.inverse_order.to(device),
            tuple(t.to(device) for t in self.level_joints),
            tuple(t.to(device) for t in self.level_parent_slots),
        )


def kinematic_tree(parents: Sequence[int]) -> KinematicTree:
    """Group joints by depth. Parents must come before their children, as in SMPL-X."""
    depth: list[int] = []
    for joint, parent in enumerate(parents):
        if parent >= joint:
            raise ValueError("each joint's parent must come before it")
        depth.append(0 if parent < 0 else depth[parent] + 1)
    if depth.count(0) != 1:
        raise ValueError("the tree must have exactly one root")
    levels = [[j for j, d in enumerate(depth) if d == level] for level in range(max(depth) + 1)]
    order = [j for level in levels for j in level]
    slot = {joint: position for position, joint in enumerate(order)}
    long = torch.long
    return KinematicTree(
        parents=torch.tensor(list(parents), dtype=long),
        order=torch.tensor(order, dtype=long),
        inverse_order=torch.tensor([slot[j] for j in range(len(parents))], dtype=long),
        level_joints=tuple(torch.tensor(level, dtype=long) for level in levels[1:]),
        level_parent_slots=tuple(
            torch.tensor([slot[parents[j]] for j in level], dtype=long) for level in levels[1:]
        ),
    )


def axis_angle_to_matrix(axis_angle: Tensor) -> Tensor:
    """Rodrigues' formula. (..., 3) axis-angle -> (..., 3, 3) rotation matrices.

    The small epsilon keeps the gradient finite at the zero rotation.
    """
    angle = torch.sqrt((axis_angle * axis_angle).sum(-1, keepdim=True) + 1e-16)
    skew = cross_matrix(axis_angle / angle)
    sin, cos = torch.sin(angle)[..., None], torch.cos(angle)[..., None]
    identity = torch.eye(3, dtype=axis_angle.dtype, device=axis_angle.device)
    return identity + sin * skew + (1.0 - cos) * (skew @ skew)


def cross_matrix(vectors: Tensor) -> Tensor:
    """[v]x, the matrix of the cross product v x . ; (..., 3) -> (..., 3, 3)."""
    x, y, z = vectors.unbind(-1)
    zero = torch.zeros_like(x)
    return torch.stack([zero, -z, y, z, zero, -x, -y, x, zero], dim=-1).reshape(*vectors.shape, 3)


def blend(coefficients: Tensor, directions: Tensor, base: Tensor) -> Tensor:
    """base + directions . coefficients.

    coefficients (B, K); directions (K, N) with N = points * 3; base (N,) -> (B, N).
    """
    return torch.addmm(base, coefficients, directions)


def pose_feature(rotations: Tensor) -> Tensor:
    """Input of the pose correctives: (R - I) of every joint but the root, flattened.

    rotations (B, J, 3, 3) -> (B, (J - 1) * 9).
    """
    identity = torch.eye(3, dtype=rotations.dtype, device=rotations.device)
    return (rotations[:, 1:] - identity).flatten(1)


def forward_kinematics(rotations: Tensor, rest_joints: Tensor, tree: KinematicTree) -> tuple[Tensor, Tensor]:
    """Pose the joint tree.

    rotations (B, J, 3, 3) local rotations; rest_joints (B, J, 3).
    Returns world rotations (B, J, 3, 3) and posed joint positions (B, J, 3).
    """
    parent_positions = rest_joints[:, tree.parents.clamp(min=0)]
    offsets = rest_joints - parent_positions * (tree.parents >= 0)[None, :, None]
    root = tree.order[:1]
    world_r, world_t = rotations[:, root], offsets[:, root]
    for joints, parent_slots in zip(tree.level_joints, tree.level_parent_slots, strict=True):
        parent_r = world_r[:, parent_slots]
        level_r = parent_r @ rotations[:, joints]
        level_t = (parent_r @ offsets[:, joints, :, None]).squeeze(-1) + world_t[:, parent_slots]
        world_r = torch.cat([world_r, level_r], dim=1)
        world_t = torch.cat([world_t, level_t], dim=1)
    return world_r[:, tree.inverse_order], world_t[:, tree.inverse_order]


def skinning_transforms(world_rotations: Tensor, posed_joints: Tensor, rest_joints: Tensor) -> Tensor:
    """Per-joint transforms that carry rest-pose points to the posed body.

    (B, J, 3, 3), (B, J, 3), (B, J, 3) -> (B, J, 12): the 3x3 rotation row-major, then
    the translation.
    """
    translation = posed_joints - (world_rotations @ rest_joints[..., None]).squeeze(-1)
    return torch.cat([world_rotations.flatten(2), translation], dim=-1)


def skin(points: Tensor, weights: Tensor, transforms: Tensor) -> Tensor:
    """Linear blend skinning. points (B, V, 3); weights (V, J); transforms (B, J, 12)
    -> (B, V, 3)."""
    blended = torch.matmul(weights, transforms)  # (B, V, 12)
    rotation = blended[..., :9].unflatten(-1, (3, 3))
    return (rotation @ points[..., None]).squeeze(-1) + blended[..., 9:]


def surface_points(vertices: Tensor, face_vertices: Tensor, barycentric: Tensor) -> Tensor:
    """Points given by barycentric coordinates on triangles.

    vertices (B, V, 3); face_vertices (B, L, 3) vertex ids of each point's triangle;
    barycentric (B, L, 3) -> (B, L, 3).
    """
    batch = torch.arange(vertices.shape[0], device=vertices.device)[:, None, None]
    corners = vertices[batch, face_vertices]  # (B, L, 3 corners, 3 coords)
    return (corners * barycentric[..., None]).sum(dim=2)


def neck_yaw_bins(rotations: Tensor, neck_chain: Tensor, num_bins: int = 79) -> Tensor:
    """Which of the face-contour tables to use, from the neck's turn about the vertical.

    rotations (B, J, 3, 3) local rotations; neck_chain: joint ids from the neck up to the
    root. Returns (B,) long in [0, num_bins): 0..39 for turns of 0..39 degrees one way,
    40..78 for -1..-39 degrees the other way (the SMPL-X file's table layout).
    """
    global_neck = rotations[:, neck_chain[0]]
    for joint in neck_chain[1:]:
        global_neck = rotations[:, joint] @ global_neck
    # Rotation about y from the first column of the matrix, in degrees.
    first_col = global_neck[..., 0]
    yaw = torch.atan2(-first_col[:, 2], torch.sqrt(first_col[:, 0] ** 2 + first_col[:, 1] ** 2 + 1e-12))
    half = num_bins // 2  # 39
    degrees = torch.round(torch.clamp(-yaw * 180.0 / torch.pi, max=half)).long()
    negative = torch.where(degrees < -half, torch.full_like(degrees, 2 * half), half - degrees)
    return torch.where(degrees < 0, negative, degrees)
