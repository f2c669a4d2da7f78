"""Gradients pulled back through the skinned keypoints in closed form: given d loss /
d keypoints, d loss / d parameters, without building the Jacobian (`jacobian`) or
recording a graph for autograd. Small pure functions on tensors, in the notation of
`lbs`; the derivations are those of `jacobian`, contracted with the gradient early:

- turning joint j by d about its world axis w moves each keypoint k of its subtree by
  w x lever_kj d, so d loss / d (w d) is the torque sum_k lever_kj x g_k; summed over
  subtrees it takes two products with the subtree matrix, however many keypoints;
- a skinned point's gradient h_p reaches each joint m that carries it with weight w_pm:
  its force sum_p w_pm h_p, and its moment sum_p w_pm (R_m s_p) x h_p from the 3 x 3
  matrix sum_p w_pm s_p h_p^T;
- the rest points (shape directions, pose correctives) get h_p turned back by the
  point's blended rotation.

B is the batch size, P the number of points, J the number of joints, M the number of
shape and expression coefficients.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .lbs import cross_matrix, small_matmul


def axial(matrices: Tensor) -> Tensor:
    """(..., 3, 3) -> (..., 3): the vector v with trace([u]x N) = u . v for every u; for
    N = a b^T it is a x b."""
    return torch.stack(
        [matrices[..., 1, 2] - matrices[..., 2, 1], matrices[..., 2, 0] - matrices[..., 0, 2],
         matrices[..., 0, 1] - matrices[..., 1, 0]], dim=-1,
    )  # fmt: skip


def cross(a: Tensor, b: Tensor) -> Tensor:
    """a x b for (..., 3) stacks, by one small product."""
    return small_matmul(cross_matrix(a), b[..., None]).squeeze(-1)


def surface_pullback(grad: Tensor, points: int, vertex_ids: Tensor, faces: Tensor, bary: Tensor) -> Tensor:
    """The transpose of the surface embedding (`model._surface_keypoints`): the surface
    keypoints' gradients (B, V + L, C) -> the points' (B, P, C). vertex_ids (V,); faces,
    bary (B, L, 3) each landmark's triangle and barycentric weights."""
    batch, _, channels = grad.shape
    offsets = torch.arange(0, batch * points, points, device=grad.device)
    pulled = grad.new_zeros(batch * points, channels)
    count = len(vertex_ids)
    pulled.index_add_(0, (vertex_ids + offsets[:, None]).flatten(), grad[:, :count].reshape(-1, channels))
    if faces.shape[1]:
        corners = bary[..., None] * grad[:, count:, None, :]  # (B, L, 3, C)
        pulled.index_add_(0, (faces + offsets[:, None, None]).flatten(), corners.reshape(-1, channels))
    return pulled.view(batch, points, channels)


def joint_loads(
    world_rotations: Tensor,
    posed_joints: Tensor,
    translations: Tensor,
    shaped: Tensor,
    weights: Tensor,
    subtree: Tensor,
    joint_grad: Tensor,
    point_grad: Tensor,
) -> tuple[Tensor, Tensor, Tensor]:
    """What the keypoints' gradients exert on each joint's subtree.

    world_rotations (B, J, 3, 3); posed_joints (B, J, 3) (no translation); translations
    (B, J, 3) the skinning transforms' (`lbs.skinning_transforms`); shaped (B, P, 3) rest
    points; weights (P, J); subtree (J, J); joint_grad (B, J, 3) the joints' gradients,
    point_grad (B, P, 3) the points' (`surface_pullback`) -> torques (B, J, 3) sum over
    the subtree's keypoints of lever x gradient, subtree forces (B, J, 3) the sum of their
    gradients (both in the world frame), and carried (B, J, 3) each joint's own share of
    the points' gradients (sum_p w_pj h_p).
    """
    carried = weights.T @ point_grad
    forces = subtree @ (joint_grad + carried)
    spread = weights.T @ (shaped[..., :, None] * point_grad[..., None, :]).flatten(2)  # (B, J, 9)
    moments = axial(small_matmul(world_rotations, spread.unflatten(-1, (3, 3))))
    crossed = cross(torch.cat([posed_joints, translations, posed_joints], 1),
                    torch.cat([joint_grad, carried, forces], 1)).unflatten(1, (3, -1))  # fmt: skip
    torques = subtree @ (crossed[:, 0] + crossed[:, 1] + moments) - crossed[:, 2]
    return torques, forces, carried


def rest_point_pullback(world_rotations: Tensor, weights: Tensor, point_grad: Tensor) -> Tensor:
    """The points' gradients (B, P, 3) -> their rest positions' (B, P, 3): each turned back
    by the point's blended rotation. world_rotations (B, J, 3, 3); weights (P, J)."""
    blended = (weights @ world_rotations.flatten(2)).unflatten(-1, (3, 3))  # (B, P, 3, 3)
    return small_matmul(blended.transpose(-1, -2), point_grad[..., None]).squeeze(-1)


def pose_pullback(
    axes: Tensor, rotations: Tensor, local_torques: Tensor, feature_grad: Tensor | None
) -> Tensor:
    """d loss / d axis-angle of every joint (B, J, 3).

    axes (B, J, 3, 3) rows u_a (`jacobian.rotation_axes`); rotations (B, J, 3, 3) local;
    local_torques (B, J, 3) joint_loads' torques in each parent's frame; feature_grad
    (B, J - 1, 3, 3) d loss / d (R_j - I) of the pose correctives' input, or None.
    Component a of joint j turns its subtree about u_a in the parent's frame, and R_j by
    [u_a]x R_j.
    """
    local = local_torques
    if feature_grad is not None:
        correctives = axial(small_matmul(rotations[:, 1:], feature_grad.transpose(-1, -2)))
        local = local + torch.cat([torch.zeros_like(local[:, :1]), correctives], 1)
    return small_matmul(axes, local[..., None]).squeeze(-1)


def coefficient_pullback(
    world_rotations: Tensor,
    local_forces: Tensor,
    carried: Tensor,
    rest_grad: Tensor,
    bone_directions: Tensor,
    joint_directions: Tensor,
    point_directions: Tensor,
) -> Tensor:
    """d loss / d shape-and-expression coefficients (B, M).

    world_rotations (B, J, 3, 3); local_forces (B, J, 3) joint_loads' forces in each
    parent's frame; carried (B, J, 3) from joint_loads; rest_grad (B, P, 3) from
    rest_point_pullback; bone_directions, joint_directions (M, J * 3) the coefficients'
    directions of the rest bones (each joint less its parent; the root itself) and rest
    joints; point_directions (M, P * 3). A posed joint is the sum of its chain's rest
    bones turned by their parents; a skinned point also moves against each carrying
    joint's turned rest position.
    """
    against_rest = small_matmul(world_rotations.transpose(-1, -2), carried[..., None]).flatten(1)
    return (local_forces.flatten(1) @ bone_directions.T - against_rest @ joint_directions.T
            + rest_grad.flatten(1) @ point_directions.T)  # fmt: skip
