"""Turn MakeHuman's rest pose into SMPL-X's.

MakeHuman models its body in an A-pose: upper arms about 50 degrees below horizontal,
elbows bent 45 degrees forward, palms facing the thighs. SMPL-X's zero pose has the
arms out to the sides, straight, palms down; pose priors and every pose made for
SMPL-X assume it. So the generator poses the MakeHuman rig (all 163 bones, with its
twist bones, before folding) into that T-pose once, and the posed mesh becomes the
template. The rotations are found on the neutral body and reused for every shape sample.
"""

from __future__ import annotations

import numpy as np

from .rig import axis_angle, rotation_vector_between, twist_angle, world_transforms

ARM_DROP_DEGREES = 8.0  # SMPL-X's rest arms sit a little below horizontal
# Share of the arm lift given to the deltoid bone (shoulder01): spreading the lift over
# two pivots keeps the top of the shoulder round instead of creasing at one.
SHOULDER_SHARE = 0.3
# Share of the forearm's pronation given to the mid-forearm twist bone (lowerarm02); the
# wrist takes the rest, so neither the elbow nor the wrist skin twists much.
FOREARM_TWIST_SHARE = 0.7


def t_pose_rotations(heads: np.ndarray, names: tuple[str, ...]) -> np.ndarray:
    """(B, 3, 3) local bone rotations (rest-frame axes, about each bone's head) that take
    the MakeHuman A-pose to SMPL-X's T-pose, from bone heads (B, 3) in SMPL-X axes."""
    index = {name: i for i, name in enumerate(names)}
    local = np.tile(np.eye(3), (len(names), 1, 1))
    drop = np.radians(ARM_DROP_DEGREES)
    for tag, sign in (("L", 1.0), ("R", -1.0)):

        def head(bone: str, tag: str = tag) -> np.ndarray:
            return heads[index[f"{bone}.{tag}"]]

        target = np.array([sign * np.cos(drop), -np.sin(drop), 0.0])
        lift = rotation_vector_between(head("lowerarm01") - head("upperarm01"), target)
        local[index[f"shoulder01.{tag}"]] = axis_angle(SHOULDER_SHARE * lift)
        local[index[f"upperarm01.{tag}"]] = axis_angle((1.0 - SHOULDER_SHARE) * lift)
        chain = axis_angle(lift)
        # Straighten the elbow: the forearm continues the upper arm.
        elbow = axis_angle(rotation_vector_between(head("wrist") - head("lowerarm01"), chain.T @ target))
        local[index[f"lowerarm01.{tag}"]] = elbow
        chain = chain @ elbow
        # Palm down: the line from the little finger's knuckle to the index finger's points forward.
        across = chain @ (head("finger2-1") - head("finger5-1"))
        pronation = twist_angle(across, np.array([0.0, 0.0, 1.0]), target)
        forearm_twist = axis_angle(chain.T @ target * (FOREARM_TWIST_SHARE * pronation))
        local[index[f"lowerarm02.{tag}"]] = forearm_twist
        chain = chain @ forearm_twist
        wrist_twist = axis_angle(chain.T @ target * ((1.0 - FOREARM_TWIST_SHARE) * pronation))
        # Hand in line with the forearm (wrist to middle knuckle along the arm).
        hand = chain @ wrist_twist @ (head("finger3-1") - head("wrist"))
        straighten = axis_angle(chain.T @ rotation_vector_between(hand, target))
        local[index[f"wrist.{tag}"]] = straighten @ wrist_twist
    return local


def pose_bones(
    vertices: np.ndarray, heads: np.ndarray, weights: np.ndarray, parents: np.ndarray, local: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Pose the bone rig: vertices (V, 3), heads (B, 3), weights (V, B), parents (B,),
    local (B, 3, 3). Returns posed vertices (V, 3) and posed heads (B, 3)."""
    transforms = world_transforms(local, heads, parents)
    posed = np.einsum("vb,bij->vij", weights, transforms)
    posed_vertices = np.einsum("vij,vj->vi", posed[:, :, :3], vertices) + posed[:, :, 3]
    posed_heads = np.einsum("bij,bj->bi", transforms[:, :, :3], heads) + transforms[:, :, 3]
    return posed_vertices, posed_heads
