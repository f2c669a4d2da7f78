"""Errors of a video fit against the rendered clip's ground truth (devtools/video_clip.py):
per-frame body PA vertex error and the acceleration error (jitter) of the body joints.

The truth's hands are the model's mean hand pose (the clip is rendered with zero hand
parameters), and its shape and expression are zero.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..body_model.model import BodyModel
from ..body_model.model_file import load_model
from ..motion_format import MotionFrame
from .bench import BODY_JOINTS, errors_mm

POSE_NAMES = ("global_orient", "body_pose", "jaw_pose", "leye_pose", "reye_pose", "left_hand_pose",
              "right_hand_pose", "transl", "expression")  # fmt: skip


def full_hand_model() -> BodyModel:
    """The open default body with full 45-d hand poses as a motion holds them (mean included)."""
    return BodyModel(
        load_model("default"), num_betas=10, num_expression=10, hand_pca=None, flat_hand_mean=True
    )


def truth_parameters(clip_folder: Path, indices: list[int], model: BodyModel) -> dict[str, torch.Tensor]:
    """The clip's true parameters at the frames `indices`, in `model`'s layout."""
    truth = np.load(clip_folder / "truth.npz")
    count = len(indices)
    params = model.zeros(count)
    for name in ("global_orient", "body_pose", "transl"):
        params[name] = torch.as_tensor(truth[name][indices], dtype=torch.float32)
    data = load_model("default")
    for side, mean in (("left", data.hand_mean_left), ("right", data.hand_mean_right)):
        params[f"{side}_hand_pose"] = (
            torch.as_tensor(mean, dtype=torch.float32).reshape(1, -1).expand(count, -1)
        )
    return params


def frame_parameters(
    frames: list[MotionFrame], betas: list[float], model: BodyModel
) -> dict[str, torch.Tensor]:
    """A motion's frames as `model`'s parameters (F, ...); `betas` one shape, or one per frame."""
    params = {
        name: torch.tensor([getattr(f, name) for f in frames], dtype=torch.float32) for name in POSE_NAMES
    }
    shapes = np.broadcast_to(np.asarray(betas, dtype=np.float32), (len(frames), np.shape(betas)[-1]))
    params["betas"] = torch.as_tensor(shapes.copy())[:, : model.num_betas]
    params["expression"] = params["expression"][:, : model.num_expression]
    return params


def body_pa_v2v_mm(model: BodyModel, fitted: dict, truth: dict) -> np.ndarray:
    """(F,) each frame's body vertex error after Procrustes alignment, mm."""
    return errors_mm(model, fitted, truth)["body_pa_v2v"].numpy()


def acceleration_error_mm(model: BodyModel, fitted: dict, truth: dict) -> float:
    """Mean difference of the body joints' accelerations (pelvis-relative), mm per frame^2."""

    def accelerations(params: dict) -> np.ndarray:
        with torch.no_grad():
            joints = model(vertices=False, **params).joints[:, BODY_JOINTS].numpy()
        relative = joints - joints[:, :1]
        return relative[:-2] - 2 * relative[1:-1] + relative[2:]

    return float(np.linalg.norm(accelerations(fitted) - accelerations(truth), axis=-1).mean() * 1000.0)
