"""Exact derivatives of skinned points and joints with respect to pose and shape, in
closed form: small pure functions on tensors, in the notation of `lbs`.

Forward-mode automatic differentiation of a whole forward pass costs one pass per
unknown (over a hundred for SMPL-X). Here the kinematic structure gives them at the
cost of about one pass:
- turning joint j by d about its world axis w moves every point of its subtree by
  w x (p - joint_j) d; a skinned vertex moves by the blend of that over the joints of
  the subtree that carry it;
- the pose correctives add, for the joints j below the root, the change of (R_j - I)
  times their directions, rotated by the vertex's blended rotation;
- shape and expression coefficients move the rest joints (and so the posed ones along
  the chain) and the rest vertices; the rotations do not depend on them.

B is the batch size, P the number of points, J the number of joints, M the number of
shape and expression coefficients.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .lbs import cross_matrix, gather_rows, small_matmul


def subtree_matrix(parents: Tensor) -> Tensor:
    """S (J, J): S[j, k] = 1 when joint k is j or below it. parents (J,), -1 at the root,
    each parent before its children."""
    count = len(parents)
    subtree = torch.eye(count, dtype=torch.float64)
    for joint in range(count - 1, 0, -1):  # children first: a joint's row is complete
        subtree[parents[joint]] += subtree[joint]
    return subtree


def rotation_axes(axis_angle: Tensor) -> Tensor:
    """The axes u (..., 3, 3), row a: u_a, about which axis_angle[a] turns its rotation R
    (d R / d axis_angle[a] = [u_a]x R): column a of SO(3)'s left Jacobian I + A [v]x +
    C [v]x^2, A = (1 - cos t) / t^2, C = (t - sin t) / t^3, t = |v|. Below SMALL_ANGLE by
    their series: in float32 the closed forms cancel to noise there. axis_angle (..., 3)."""
    squared = (axis_angle * axis_angle).sum(-1, keepdim=True)[..., None]
    small = squared < SMALL_ANGLE**2
    angle = torch.where(small, 1.0, squared).sqrt()
    first = torch.where(small, 0.5 - squared / 24 + squared * squared / 720, (1 - torch.cos(angle)) / squared)
    second = torch.where(small, 1 / 6 - squared / 120 + squared * squared / 5040,
                         (angle - torch.sin(angle)) / (squared * angle))  # fmt: skip
    skew = cross_matrix(axis_angle)
    identity = torch.eye(3, dtype=axis_angle.dtype, device=axis_angle.device)
    return (identity + first * skew + second * small_matmul(skew, skew)).transpose(-1, -2)


def rotation_derivatives(axis_angle: Tensor, rotations: Tensor) -> tuple[Tensor, Tensor]:
    """Derivatives of Rodrigues' formula: dR (..., 3, 3, 3) with dR[..., a, :, :] =
    d R / d axis_angle[a] = [u_a]x R, and the axes u (`rotation_axes`). axis_angle (..., 3);
    rotations (..., 3, 3) its matrices (`lbs.axis_angle_to_matrix`)."""
    axes = rotation_axes(axis_angle)
    return small_matmul(cross_matrix(axes), rotations[..., None, :, :]), axes


SMALL_ANGLE = 0.1  # radians; the series' error there is below 1e-10


def parent_rotations(world_rotations: Tensor, parents: Tensor) -> Tensor:
    """Each joint's parent's world rotation, the identity above the root.
    world_rotations (B, J, 3, 3); parents (J,) -> (B, J, 3, 3)."""
    identity = torch.eye(3, dtype=world_rotations.dtype, device=world_rotations.device)
    above = world_rotations[:, parents.clamp(min=0)]
    return torch.where((parents < 0)[None, :, None, None], identity, above)


def blended_rotations(world_rotations: Tensor, weights: Tensor) -> Tensor:
    """Each point's skinning blend of the joints' world rotations.
    world_rotations (B, J, 3, 3); weights (P, J) -> (B, P, 3, 3)."""
    return torch.einsum("pk,bkxy->bpxy", weights, world_rotations)


def world_axes(axes: Tensor, parent_rotations: Tensor) -> Tensor:
    """The world direction of each joint's rotation axes: its parent's world rotation
    times u. axes (B, J, 3, 3) from rotation_derivatives; parent_rotations (B, J, 3, 3)
    -> (B, J, 3 by axis-angle component, 3)."""
    return torch.einsum("bjxy,bjay->bjax", parent_rotations, axes)


def joint_levers(posed_joints: Tensor, subtree: Tensor) -> Tensor:
    """Lever arm of each posed joint k about each joint j that moves it: joint_k -
    joint_j for k in j's subtree, else zero. posed_joints (B, J, 3); subtree (J, J)
    -> (B, J (k), 3, J (j))."""
    return (posed_joints[..., None] - posed_joints.transpose(1, 2)[:, None]) * subtree.T[None, :, None, :]


def point_levers(
    world_rotations: Tensor,
    posed_joints: Tensor,
    rest_joints: Tensor,
    shaped: Tensor,
    weights: Tensor,
    subtree: Tensor,
) -> Tensor:
    """Lever arm of each skinned point about each joint j: the part of the point that
    j's subtree carries (its skinning share of the point's position) less that share of
    j's position. Turning j by w moves the point by w x lever; levers are linear in the
    points, so they map through surface embeddings like positions.

    world_rotations (B, J, 3, 3); posed_joints, rest_joints (B, J, 3); shaped (B, P, 3)
    rest points with shape and pose correctives; weights (P, J); subtree (J, J)
    -> (B, P, 3, J).
    """
    batch, count = world_rotations.shape[:2]
    # Joint k alone carries a point v to R_k v + t_k, t_k its skinning translation.
    translations = posed_joints - small_matmul(world_rotations, rest_joints[..., None]).squeeze(-1)
    stacked = world_rotations.permute(0, 3, 2, 1).reshape(batch, 3, 3 * count)  # (B, y, x k)
    carried = (shaped @ stacked).view(batch, -1, 3, count) + translations.transpose(1, 2)[:, None]
    moved_part = (carried * weights[None, :, None, :]) @ subtree.T  # summed over each subtree
    share = weights @ subtree.T  # (P, J): the weight the subtree of j carries
    return moved_part - share[None, :, None, :] * posed_joints.transpose(1, 2)[:, None]


def moving_pairs(subtree: Tensor, weights: Tensor, surface_points: Tensor) -> Tensor:
    """The (keypoint, joint) pairs whose levers can be non-zero, for the keypoints in the
    order of the model's: the joints, each moved by the joints on its chain to the root,
    then the surface keypoints, each moved by the joints whose subtree skins one of the
    points it may lie on. Turning any other joint leaves a keypoint where it is (a hand's
    joints never move the feet): its lever is exactly zero.

    subtree (J, J); weights (P, J) 1 where a joint skins a point, else 0; surface_points
    (K - J, P) bool, the points each surface keypoint may lie on (every table of the face
    contour) -> (2, M) long, keypoint then joint, ascending by keypoint.
    """
    carries = (weights @ subtree.T > 0).to(weights)  # (P, J): the points each joint's subtree skins
    surface = surface_points.to(weights) @ carries > 0
    return torch.nonzero(torch.cat([subtree.T > 0, surface])).T


def pose_jacobian(omega: Tensor, levers: Tensor, pairs: Tensor) -> Tensor:
    """d point / d axis-angle of every joint, omega x lever, computed for the (keypoint,
    joint) `pairs` (2, M) only (`moving_pairs`, those of the first Q keypoints), zero
    elsewhere. omega (B, J, 3, 3) world axes; levers (B, Q, 3, J) -> (B, Q, 3, J, 3 by
    component), contiguous."""
    batch, count, _, joints = levers.shape
    point, joint = pairs
    # By coordinate: (B, M, 3 by component) and (B, M, 1).
    w = omega.index_select(1, joint).unbind(-1)
    lever = levers.transpose(2, 3).reshape(batch, count * joints, 3).index_select(1, point * joints + joint)
    lever = lever[..., None].unbind(2)
    crossed = torch.stack([w[1] * lever[2] - w[2] * lever[1],
                           w[2] * lever[0] - w[0] * lever[2],
                           w[0] * lever[1] - w[1] * lever[0]], dim=2)  # fmt: skip
    # Each pair's three coordinates are runs of 3 components in the result.
    runs = ((point[:, None] * 3 + torch.arange(3, device=point.device)) * joints + joint[:, None]).flatten()
    result = levers.new_zeros(batch, count, 3, joints, 3)
    result.view(batch, -1, 3).index_copy_(1, runs, crossed.view(batch, -1, 3))
    return result


def corrective_jacobian(
    rotation_derivative: Tensor,
    blended: Tensor,
    posedirs: Tensor,
    vertex_ids: Tensor,
    faces: Tensor,
    barycentric: Tensor,
) -> Tensor:
    """The pose correctives' share of d surface keypoint / d axis-angle of the joints
    below the root: the change of (R_j - I) times their directions, turned by each
    point's blended rotation, at the keypoints only (turning and weighting the corners in
    one product). rotation_derivative (B, J, 3, 3, 3) local dR per component; blended
    (B, P, 3, 3) from blended_rotations; posedirs ((J - 1) * 9, P * 3); the keypoints:
    vertex_ids (V,), then triangles faces (B, L, 3) with barycentric (B, L, 3), as
    `lbs.surface_points` -> (B, V + L, 3, J - 1, 3).
    """
    batch, count, points = blended.shape[0], rotation_derivative.shape[1], blended.shape[1]
    directions = posedirs.view(count - 1, 9, points, 3)
    # Unturned, (B, P, 3, J - 1, 3); laid out so that gathering points reads it in runs.
    corrective = torch.einsum("bjae,jepy->bpyja", rotation_derivative[:, 1:].flatten(-2), directions)
    corrective = corrective.contiguous()
    at_vertices = blended[:, vertex_ids] @ corrective[:, vertex_ids].flatten(3)  # (B, V, 3, (J - 1) 3)
    corners = gather_rows(corrective, faces).flatten(4).flatten(2, 3)  # (B, L, 3 corners x 3, (J - 1) 3)
    turned = barycentric[..., None, None] * gather_rows(blended, faces)
    turns = turned.transpose(2, 3).flatten(3)  # (B, L, 3, 9)
    return torch.cat([at_vertices, turns @ corners], dim=1).view(batch, -1, 3, count - 1, 3)


def coefficient_jacobians(
    world_rotations: Tensor,
    parent_rotations: Tensor,
    blended: Tensor,
    parents: Tensor,
    subtree: Tensor,
    weights: Tensor,
    joint_directions: Tensor,
    point_directions: Tensor,
) -> tuple[Tensor, Tensor]:
    """d posed joints and d skinned points / d shape-and-expression coefficients.

    world_rotations, parent_rotations (B, J, 3, 3); blended (B, P, 3, 3) from
    blended_rotations; parents (J,); subtree (J, J); weights (P, J); joint_directions
    (M, J * 3) and point_directions (M, P * 3) as in `lbs.blend` -> (B, J, 3, M),
    (B, P, 3, M).
    """
    count, points = len(parents), weights.shape[0]
    rest = joint_directions.view(-1, count, 3).permute(1, 2, 0)  # (J, 3, M)
    offsets = rest - rest[parents.clamp(min=0)] * (parents >= 0)[:, None, None]
    turned = torch.einsum("bjxy,jym->bjxm", parent_rotations, offsets)
    joints = torch.einsum("jk,bjxm->bkxm", subtree, turned)  # each joint sums its ancestors' bones
    per_joint = joints - torch.einsum("bkxy,kym->bkxm", world_rotations, rest)
    shaped = point_directions.view(-1, points, 3).permute(1, 2, 0)  # (P, 3, M)
    skinned = torch.einsum("pk,bkxm->bpxm", weights, per_joint)
    skinned = skinned + torch.einsum("bpxy,pym->bpxm", blended, shaped)
    return joints, skinned
