"""The fit's unknowns as one (B, N) tensor: the model's parameter blocks side by side, and
which of its columns a stage may move for which row."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import torch
from torch import Tensor

from ..body_model.model import BodyModel
from ..body_model.names import (
    BODY_JOINTS,
    JAW_JOINT,
    JOINT_NAMES,
    LEFT_EYE_JOINT,
    LEFT_HAND_JOINTS,
    NUM_HAND_JOINTS,
    RIGHT_EYE_JOINT,
    RIGHT_HAND_JOINTS,
)
from .errors import FitError
from .keypoint_groups import FACE, HANDS, present
from .learned_priors import VPoserDecoder

LATENT = "pose_embedding"
HAND_BLOCKS = {"left_hand_pose", "right_hand_pose"}
FACE_BLOCKS = {"expression", "jaw_pose"}
UNFITTED = ("leye_pose", "reye_pose")  # no keypoint measures the eyes: they stay at zero


class Packing:
    """Flattens the model's parameter dict into one (B, N) tensor for the optimisers and
    back. The eyes are not fitted and stay at zero."""

    def __init__(self, model: BodyModel, vposer: VPoserDecoder | None = None) -> None:
        zeros = model.zeros(1)
        self.names = [n for n in zeros if n not in UNFITTED]
        self.sizes = [zeros[n].shape[1] for n in self.names]
        self.vposer = vposer
        self.hand_pca = model.hand_pca
        if vposer is not None:  # VPoser's code, the unknown the body pose is decoded from
            self.names.append(LATENT)
            self.sizes.append(vposer.latent_dim)
        self.offsets = np.cumsum([0, *self.sizes])

    def pack(self, params: dict[str, Tensor]) -> Tensor:
        return torch.cat([params[n] for n in self.names], dim=1)

    def unpack(self, x: Tensor) -> dict[str, Tensor]:
        """The body model's parameters; with VPoser the body pose is decoded from the
        latent code (`latent(x)`), and x's own body pose block is unused."""
        # One split, not a slice per block: its backward is one copy, not a zero-filled x per block.
        blocks = zip(self.names, x.split(self.sizes, dim=1), strict=True)
        params = {name: block for name, block in blocks if name != LATENT}
        if self.vposer is not None:
            params["body_pose"] = self.vposer.decode(self.latent(x))
        return params

    def latent(self, x: Tensor) -> Tensor:
        return x[:, self.block(LATENT)]

    def block(self, name: str) -> slice:
        index = self.names.index(name)
        return slice(int(self.offsets[index]), int(self.offsets[index + 1]))

    def mask(self, free: set[str], like: Tensor) -> Tensor:
        """(N,): 1 on the columns of the blocks in `free` (with VPoser, the body pose's
        freedom is its latent code's)."""
        mask = torch.zeros(self.offsets[-1], dtype=like.dtype, device=like.device)
        for name, a, b in zip(self.names, self.offsets[:-1], self.offsets[1:], strict=True):
            decoded = self.vposer is not None and name == "body_pose"
            if (name in free and not decoded) or (name == LATENT and "body_pose" in free):
                mask[a:b] = 1.0
        return mask

    def _joint_columns(self, joint: str) -> list[int]:
        """The columns of x that rotate `joint` (a name of JOINT_NAMES), the hands' as full
        axis-angle poses (not PCA)."""
        index = JOINT_NAMES.index(joint)
        if index == 0:
            return list(range(self.block("global_orient").start, self.block("global_orient").stop))
        if index in (LEFT_EYE_JOINT, RIGHT_EYE_JOINT):
            return []
        if index == JAW_JOINT:
            return list(range(self.block("jaw_pose").start, self.block("jaw_pose").stop))
        if BODY_JOINTS.start <= index < BODY_JOINTS.stop:
            start = self.block("body_pose").start + 3 * (index - BODY_JOINTS.start)
            return list(range(start, start + 3))
        side = LEFT_HAND_JOINTS if index < RIGHT_HAND_JOINTS.start else RIGHT_HAND_JOINTS
        block = self.block("left_hand_pose" if side is LEFT_HAND_JOINTS else "right_hand_pose")
        start = block.start + 3 * (index - side.start)
        return list(range(start, start + 3))

    def fixed_columns(self, joints: Iterable[str]) -> list[int]:
        """The columns of x that hold `joints` (names of JOINT_NAMES) where they are. A
        finger joint alone cannot be held while the hands are fitted as PCA coefficients
        (each coefficient moves every finger); all 15 joints of a hand hold the whole hand."""
        joints = set(joints)
        unknown = sorted(joints - set(JOINT_NAMES))
        if unknown:
            raise FitError(f"Unknown joints to hold fixed: {', '.join(unknown)}; use SMPL-X joint names.")
        if joints - {JOINT_NAMES[0]} and self.vposer is not None:
            raise FitError("Joints cannot be held fixed with VPoser, which decodes the whole body pose: "
                           "use the L2 or GMM pose prior.")  # fmt: skip
        columns = []
        for side, hand in (("left", LEFT_HAND_JOINTS), ("right", RIGHT_HAND_JOINTS)):
            fingers = set(JOINT_NAMES[hand])
            held = joints & fingers
            joints -= fingers
            if not held or self.hand_pca is None:
                columns += [c for joint in held for c in self._joint_columns(joint)]
            elif len(held) == NUM_HAND_JOINTS:
                block = self.block(f"{side}_hand_pose")
                columns += list(range(block.start, block.stop))
            else:
                raise FitError(
                    f"The {side} hand is fitted as PCA coefficients, so its finger joints can only be held "
                    f"all together, not {len(held)} of {NUM_HAND_JOINTS}."
                )
        columns += [c for joint in joints for c in self._joint_columns(joint)]
        return sorted(columns)


def row_mask(packing: Packing, free: set[str], confidence: Tensor) -> Tensor:
    """(R, N): 1 where a row's coordinate is fitted. The blocks in `free`, less the hand
    (face) blocks of a row that sees no hand (face) keypoint: those only follow their
    priors, and freeing them because another person of the batch sees a hand would make
    a person's fit depend on the batch. confidence (R, K)."""
    count = confidence.shape[1]
    mask = packing.mask(free, confidence)[None].expand(len(confidence), -1)
    for group, blocks in ((HANDS, HAND_BLOCKS), (FACE, FACE_BLOCKS)):
        seen = (confidence[:, torch.as_tensor(present(group, count), device=confidence.device)] > 0).any(-1)
        mask = mask * torch.where(seen[:, None], 1.0, 1.0 - packing.mask(blocks & free, confidence))
    return mask
