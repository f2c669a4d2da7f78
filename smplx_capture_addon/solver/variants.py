"""Other starts for a fit, made by editing its pose: limbs mirrored in depth (an arm swung
forwards or backwards by the same angle looks alike in a photo) and the whole body turned
a little. The fit tries them as extra rows of its batch (see `stages`), and the lowest
loss wins.

Mirrors go through the plane parallel to the image at the limb's root (M: z -> -z) and
keep the limb's image:
- at the root: the root's world rotation G becomes M G M. Its first bone (which lies in
  the model's x-y plane) is mirrored; the bones below turn with it.
- whole: every bone of the limb mirrored. The root's G becomes M G M T and each joint
  below it L -> T^T M L M T, T the half turn about the root's rest bone. Mirroring alone
  would bend the knee or elbow backwards; the half turn bends it forwards again, and M T
  leaves the plane of the bone and the depth axis in place, which holds a leg's (an
  arm's) rest bones when the limb is straight at rest (nearly so for other shapes; the
  stages after correct the rest).
- first bone: the root's G becomes M G M as at the root, and its children's local
  rotations undo that change, L -> (M G M)^T G L: the bones below keep their directions
  (the elbow or knee bends anew).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from ..body_model import lbs
from ..body_model.model import BodyModel
from ..body_model.names import JOINT_NAMES, JOINT_PARENTS, NUM_BODY_JOINTS
from . import camera
from .packing import Packing

AT_ROOT, WHOLE, FIRST_BONE, TURN = "at the root", "whole", "first bone", "turned"

LIMB_ROOTS = tuple(JOINT_NAMES.index(n) for n in ("left_shoulder", "right_shoulder", "left_hip", "right_hip"))
HINGES = tuple(JOINT_NAMES.index(n) for n in ("left_elbow", "right_elbow", "left_knee", "right_knee"))
# The limbs whose depth a photo leaves open: each alone, both arms, both legs.
LIMB_SETS = (*((j,) for j in LIMB_ROOTS), LIMB_ROOTS[:2], LIMB_ROOTS[2:])
# The retry also mirrors each forearm and shin alone: a polished fit is often right but
# for one of them.
RETRY_LIMB_SETS = LIMB_SETS + tuple((j,) for j in HINGES)
# And each bone alone, the bones below keeping their directions: an upper arm on the wrong
# side in depth under a right forearm is mended neither at the root nor whole.
RETRY_BONE_SETS = tuple((j,) for j in LIMB_ROOTS + HINGES)
# (camera axis, degrees): turns towards and away from the camera about the image's
# vertical and horizontal axes; a polished fit is often 20-40 degrees off.
RETRY_TURNS = (
    ((0.0, 1.0, 0.0), 25.0),
    ((0.0, 1.0, 0.0), -25.0),
    ((1.0, 0.0, 0.0), 20.0),
    ((1.0, 0.0, 0.0), -20.0),
)


def _body_joints_below(root: int) -> tuple[int, ...]:
    """The body joints (1..21) of the subtree under `root`, itself excluded."""

    def descends(joint: int) -> bool:
        while joint > 0:
            joint = JOINT_PARENTS[joint]
            if joint == root:
                return True
        return False

    return tuple(j for j in range(1, NUM_BODY_JOINTS + 1) if descends(j))


BELOW = {root: _body_joints_below(root) for root in LIMB_ROOTS + HINGES}
CHILDREN = {root: tuple(j for j in BELOW[root] if JOINT_PARENTS[j] == root) for root in LIMB_ROOTS + HINGES}


@dataclass(frozen=True)
class Variant:
    """One edit of a fit: `kind` AT_ROOT, WHOLE or FIRST_BONE of the limbs rooted at
    `joints`, or TURN of the whole body by `degrees` about the camera-space `axis`."""

    kind: str
    joints: tuple[int, ...] = ()
    axis: tuple[float, float, float] = (0.0, 0.0, 0.0)
    degrees: float = 0.0

    @property
    def label(self) -> str:
        if self.kind == TURN:
            axis = "vertical" if self.axis[1] else "horizontal"
            return f"{TURN} {self.degrees:+g} degrees about the image's {axis} axis"
        return " and ".join(JOINT_NAMES[j] for j in self.joints) + f" mirrored {self.kind}"

    def moves(self) -> set[int]:
        """The joints whose rotations this edit changes (0: the global orientation)."""
        if self.kind == TURN:
            return {0}
        below = {WHOLE: BELOW, FIRST_BONE: CHILDREN}.get(self.kind, {})
        return {j for root in self.joints for j in (root, *below.get(root, ()))}

    def witnesses(self) -> tuple[int, ...]:
        """The joints (their keypoints) whose places in the photo tell this edit from the
        fit it edits: those below its limbs' roots; () for a turn, which every keypoint sees."""
        return tuple(sorted({j for root in self.joints for j in BELOW[root]}))


def witnessed(variants: tuple[Variant, ...], confidence: Tensor) -> Tensor:
    """(B, V) whether each person (keypoint confidences (B, K), K >= the joints) sees a
    witness of each variant: a mirrored limb whose keypoints are all unseen (below the
    frame, behind a table, or only guessed by the detector) looks the same either way."""
    always = torch.ones(len(confidence), dtype=torch.bool, device=confidence.device)
    seen = [confidence[:, list(v.witnesses())].amax(1) > 0 if v.witnesses() else always for v in variants]
    return torch.stack(seen, 1) if seen else always[:, None][:, :0]


def limb_variants() -> tuple[Variant, ...]:
    """The variants tried after the body stages: each limb set at the root, then whole."""
    return tuple(Variant(kind, joints) for kind in (AT_ROOT, WHOLE) for joints in LIMB_SETS)


def retry_variants() -> tuple[Variant, ...]:
    """The variants of the limb retry: RETRY_LIMB_SETS at the root, then whole, then
    RETRY_BONE_SETS by their first bone, then the body turns."""
    return (
        *(Variant(kind, joints) for kind in (AT_ROOT, WHOLE) for joints in RETRY_LIMB_SETS),
        *(Variant(FIRST_BONE, joints) for joints in RETRY_BONE_SETS),
        *(Variant(TURN, axis=axis, degrees=degrees) for axis, degrees in RETRY_TURNS),
    )


def without_fixed(variants: tuple[Variant, ...], fixed_joints: set[int]) -> tuple[Variant, ...]:
    """The variants that leave every joint of `fixed_joints` (indices) as it is."""
    return tuple(v for v in variants if not v.moves() & fixed_joints)


def apply_variants(
    model: BodyModel, packing: Packing, x: Tensor, variants: tuple[Variant, ...]
) -> list[Tensor]:
    """x (B, N) edited by each of `variants` -> one (B, N) per variant, in their order."""
    limbs = [v for v in variants if v.kind != TURN]
    pose = _limb_frames(model, packing, x) if limbs else None
    return [_turned(x, packing, v) if v.kind == TURN else _mirrored(packing, x, v, *pose) for v in variants]


def _limb_frames(model: BodyModel, packing: Packing, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """The rest joints (B, 55, 3), local and world rotations (B, 55, 3, 3) of the bodies x."""
    p = packing.unpack(x)
    zeros = torch.zeros_like(p["global_orient"])
    pose = model.full_pose(p["global_orient"], p["body_pose"], p["jaw_pose"], zeros, zeros,
                           p["left_hand_pose"], p["right_hand_pose"])  # fmt: skip
    rest = lbs.blend(
        torch.cat([p["betas"], p["expression"]], 1), model.joint_directions, model.joint_template
    ).view(len(x), -1, 3)
    local = lbs.axis_angle_to_matrix(pose)
    world, _ = lbs.forward_kinematics(local, rest, model.tree)
    return rest, local, world


def _mirrored(packing: Packing, x: Tensor, variant: Variant, rest: Tensor, local: Tensor,
              world: Tensor) -> Tensor:  # fmt: skip
    """x with the limbs of `variant` mirrored in depth (see the module docstring)."""
    mirror = torch.diag(torch.tensor([1.0, 1.0, -1.0], dtype=x.dtype, device=x.device))
    block = packing.block("body_pose")
    flipped = x.clone()

    def set_rotation(joint: int, rotation: Tensor) -> None:
        start = block.start + 3 * (joint - 1)
        flipped[:, start : start + 3] = camera.matrix_to_axis_angle(rotation)

    for joint in variant.joints:
        turned = mirror @ world[:, joint] @ mirror  # the joint's world rotation mirrored
        mirrored = world[:, JOINT_PARENTS[joint]].transpose(1, 2) @ turned  # the local rotation giving it
        if variant.kind == AT_ROOT:
            set_rotation(joint, mirrored)
        elif variant.kind == WHOLE:
            bone = rest[:, JOINT_PARENTS.index(joint)] - rest[:, joint]
            half_turn = lbs.axis_angle_to_matrix(torch.pi * bone / bone.norm(dim=-1, keepdim=True))
            set_rotation(joint, mirrored @ half_turn)
            undo = half_turn.transpose(1, 2) @ mirror
            for below in BELOW[joint]:
                set_rotation(below, undo @ local[:, below] @ mirror @ half_turn)
        else:
            set_rotation(joint, mirrored)
            for child in CHILDREN[joint]:
                set_rotation(child, turned.transpose(1, 2) @ world[:, child])
    return flipped


def _turned(x: Tensor, packing: Packing, variant: Variant) -> Tensor:
    """x turned as a whole about its root, which stays in place (the global orientation
    rotates the body about it): G -> R G, R in camera space."""
    return turned_about_root(x, packing, torch.tensor(variant.axis, dtype=x.dtype, device=x.device),
                             math.radians(variant.degrees))  # fmt: skip


def turned_about_root(x: Tensor, packing: Packing, axis: Tensor, angle: Tensor | float) -> Tensor:
    """x (B, N) with its global orientation turned by `angle` radians ((B,) or one for
    all) about the camera-space `axis` (3,)."""
    block = packing.block("global_orient")
    orient = lbs.axis_angle_to_matrix(x[:, block])
    turn = axis * (angle[:, None] if isinstance(angle, Tensor) else angle)
    turned = x.clone()
    turned[:, block] = camera.matrix_to_axis_angle(lbs.axis_angle_to_matrix(turn.expand(len(x), 3)) @ orient)
    return turned
