"""Linear blend skinning for SMPL-X-layout bodies: small pure functions on tensors.

B is the batch size, V the number of vertices, J the number of joints, K the number of
blend directions. Rotations are axis-angle vectors or 3x3 matrices (no homogeneous 4x4
transforms: a rotation and a translation are kept apart, which is cheaper).

Two choices make this faster than a joint-by-joint implementation:
- the kinematic chain is composed by pointer jumping (4 rounds of batched matrix
  products for SMPL-X instead of 54 sequential ones, or 10 tree levels);
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
    """A joint tree prepared for forward kinematics by pointer jumping.

    parents: (J,) long, -1 for the root. jumps: one (J + 1,) long per round: for each
    joint (and an identity slot J), the slot whose accumulated transform goes before its
    own in that round. After round r a joint holds its chain's transform over up to 2^r
    joints, so ceil(log2(depth + 1)) rounds (4 for SMPL-X) pose the whole tree.
    """

    parents: Tensor
    jumps: tuple[Tensor, ...]

    def to(self, device: torch.device | str) -> KinematicTree:
        return KinematicTree(self.parents.to(device), tuple(t.to(device) for t in self.jumps))


def kinematic_tree(parents: Sequence[int]) -> KinematicTree:
    """Prepare the rounds. Parents must come before their children, as in SMPL-X."""
    for joint, parent in enumerate(parents):
        if parent >= joint:
            raise ValueError("each joint's parent must come before it")
    if list(parents).count(-1) != 1 or any(p < -1 for p in parents):
        raise ValueError("the tree must have exactly one root")
    done = len(parents)  # the identity slot: the chain above the root
    before = [done if p < 0 else p for p in parents] + [done]
    jumps = []
    while any(slot != done for slot in before):
        jumps.append(torch.tensor(before, dtype=torch.long))
        before = [before[slot] for slot in before]
    return KinematicTree(parents=torch.tensor(list(parents), dtype=torch.long), jumps=tuple(jumps))


def small_matmul(a: Tensor, b: Tensor, broadcast: bool | None = None) -> Tensor:
    """a @ b for stacks of small matrices, (..., n, k) @ (..., k, m) with k and m of 3 or
    less: on a GPU (or with `broadcast`) as one broadcast product summed over k, else by
    the batched product. cuBLAS runs 3x3 batched products far below the memory's speed:
    on an H200 they took 46 of the 52 ms of GPU time of one value-and-gradient pass of
    the hands stage at 13,312 rows (1.4 ms for 745k products), and with the broadcast
    form the pass took 18 ms instead of 61. On the CPU the batched product is the fastest
    (broadcasting measured 3.5x slower)."""
    if a.is_cuda if broadcast is None else broadcast:
        return (a[..., :, :, None] * b[..., None, :, :]).sum(-2)
    return a @ b


def axis_angle_to_matrix(axis_angle: Tensor) -> Tensor:
    """Rodrigues' formula. (..., 3) axis-angle -> (..., 3, 3) rotation matrices.

    The small epsilon keeps the gradient finite at the zero rotation.
    """
    angle = torch.sqrt((axis_angle * axis_angle).sum(-1, keepdim=True) + 1e-16)
    skew = cross_matrix(axis_angle / angle)
    sin, cos = torch.sin(angle)[..., None], torch.cos(angle)[..., None]
    identity = torch.eye(3, dtype=axis_angle.dtype, device=axis_angle.device)
    return identity + sin * skew + (1.0 - cos) * small_matmul(skew, skew)


def cross_matrix(vectors: Tensor) -> Tensor:
    """[v]x, the matrix of the cross product v x . ; (..., 3) -> (..., 3, 3)."""
    return (vectors @ _CROSS_GENERATORS.to(vectors)).unflatten(-1, (3, 3))


# [e_i]x of the unit vectors, row i flattened: [v]x = sum_i v_i [e_i]x. One product makes
# the matrix (an eager forward pass pays per operation).
_CROSS_GENERATORS = torch.tensor(
    [[0, 0, 0, 0, 0, -1, 0, 1, 0],
     [0, 0, 1, 0, 0, 0, -1, 0, 0],
     [0, -1, 0, 1, 0, 0, 0, 0, 0]], dtype=torch.float64,
)  # fmt: skip


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
    identity = torch.eye(3, dtype=rotations.dtype, device=rotations.device)
    # Each slot holds the transform from its joint's frame to that of the joint `jumps`
    # names; composing with that joint's own transform doubles the span each round.
    world_r = torch.cat([rotations, identity.expand(len(rotations), 1, 3, 3)], dim=1)
    world_t = torch.cat([offsets, offsets.new_zeros(len(offsets), 1, 3)], dim=1)
    for before in tree.jumps:
        before_r = world_r[:, before]
        world_t = small_matmul(before_r, world_t[..., None]).squeeze(-1) + world_t[:, before]
        world_r = small_matmul(before_r, world_r)
    return world_r[:, :-1], world_t[:, :-1]


def skinning_transforms(world_rotations: Tensor, posed_joints: Tensor, rest_joints: Tensor) -> Tensor:
    """Per-joint transforms that carry rest-pose points to the posed body.

    (B, J, 3, 3), (B, J, 3), (B, J, 3) -> (B, J, 12): the 3x3 rotation row-major, then
    the translation.
    """
    translation = posed_joints - small_matmul(world_rotations, rest_joints[..., None]).squeeze(-1)
    return torch.cat([world_rotations.flatten(2), translation], dim=-1)


def skin(points: Tensor, weights: Tensor, transforms: Tensor) -> Tensor:
    """Linear blend skinning. points (B, V, 3); weights (V, J); transforms (B, J, 12)
    -> (B, V, 3)."""
    blended = torch.matmul(weights, transforms)  # (B, V, 12)
    rotation = blended[..., :9].unflatten(-1, (3, 3))
    return small_matmul(rotation, points[..., None]).squeeze(-1) + blended[..., 9:]


def surface_points(vertices: Tensor, face_vertices: Tensor, barycentric: Tensor) -> Tensor:
    """Points given by barycentric coordinates on triangles.

    vertices (B, V, 3); face_vertices (B, L, 3) vertex ids of each point's triangle;
    barycentric (B, L, 3) -> (B, L, 3).
    """
    corners = gather_rows(vertices, face_vertices)  # (B, L, 3 corners, 3 coords)
    return (corners * barycentric[..., None]).sum(dim=2)


def gather_rows(values: Tensor, ids: Tensor) -> Tensor:
    """Each batch row's values at its own point ids: values (B, P, C...), ids (B, I...) in
    [0, P) -> (B, I..., C...). One index_select of whole rows: indexing with a batch index
    and the ids gathers element by element, several times slower on large values."""
    batch, count = values.shape[:2]
    offsets = torch.arange(0, batch * count, count, device=ids.device).view(-1, *[1] * (ids.dim() - 1))
    picked = values.reshape(batch * count, -1).index_select(0, (ids + offsets).flatten())
    return picked.view(*ids.shape, *values.shape[2:])


def neck_yaw_bins(rotations: Tensor, neck_chain: Tensor, num_bins: int = 79) -> Tensor:
    """Which of the face-contour tables to use, from the neck's turn about the vertical.

    rotations (B, J, 3, 3) local rotations; neck_chain: joint ids from the neck up to the
    root. Returns (B,) long in [0, num_bins): 0..39 for turns of 0..39 degrees one way,
    40..78 for -1..-39 degrees the other way (the SMPL-X file's table layout).
    """
    global_neck = rotations[:, neck_chain[0]]
    for joint in neck_chain[1:]:
        global_neck = small_matmul(rotations[:, joint], global_neck)
    # Rotation about y from the first column of the matrix, in degrees.
    first_col = global_neck[..., 0]
    yaw = torch.atan2(-first_col[:, 2], torch.sqrt(first_col[:, 0] ** 2 + first_col[:, 1] ** 2 + 1e-12))
    half = num_bins // 2  # 39
    degrees = torch.round(torch.clamp(-yaw * 180.0 / torch.pi, max=half)).long()
    negative = torch.where(degrees < -half, torch.full_like(degrees, 2 * half), half - degrees)
    return torch.where(degrees < 0, negative, degrees)
