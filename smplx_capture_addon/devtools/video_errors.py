"""Errors of a video fit against the rendered clip's ground truth (devtools/video_clip.py):
per-frame body PA vertex error, the acceleration error (jitter) of the body joints, and
the feet: how far a fitted foot slides while the true foot stands, and how its height jitters.

The truth's hands are the model's mean hand pose (the clip is rendered with zero hand
parameters), and its shape and expression are zero.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..body_model.model import BodyModel
from ..body_model.model_file import load_model
from ..body_model.names import keypoint_index
from ..motion_format import MotionFrame
from .bench import BODY_JOINTS, errors_mm

FOOT_NAMES = ("left_heel", "left_big_toe", "right_heel", "right_big_toe")
FOOT_KEYPOINTS = [keypoint_index(name) for name in FOOT_NAMES]
# The clip's camera is level (video_clip), so its floor's normal is camera space's up, -y.
TRUTH_UP = np.array([0.0, -1.0, 0.0])
# A true foot point stands on the floor over a step from one frame to the next when it is
# within TRUTH_CONTACT_HEIGHT of the floor at both frames and moves less than
# TRUTH_CONTACT_STEP (0.3 m/s at 30 fps; the walk's swing foot moves 40 to 140 mm a frame).
TRUTH_CONTACT_HEIGHT = 0.02
TRUTH_CONTACT_STEP = 0.01
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


def foot_points(model: BodyModel, params: dict) -> np.ndarray:
    """(F, 4, 3) the heels and big toes (left heel, left toe, right heel, right toe), camera space."""
    with torch.no_grad():
        keypoints = model(vertices=False, face_landmarks=False, **params).keypoints
    return keypoints[:, FOOT_KEYPOINTS].double().numpy()


def truth_floor_heights(truth_points: np.ndarray) -> np.ndarray:
    """(F, 4) the true foot points' heights above the floor: the lowest their soles reach."""
    along_up = truth_points @ TRUTH_UP
    return along_up - along_up.min()


def truth_contact_steps(truth_points: np.ndarray) -> np.ndarray:
    """(F - 1, 4) whether each true foot point stands on the floor from frame t to t + 1."""
    low = truth_floor_heights(truth_points) < TRUTH_CONTACT_HEIGHT
    still = np.linalg.norm(np.diff(truth_points, axis=0), axis=-1) < TRUTH_CONTACT_STEP
    return low[1:] & low[:-1] & still


def foot_skating_mm(points: np.ndarray, steps: np.ndarray) -> float:
    """Mean distance (mm, camera space) the foot `points` (F, 4, 3) move over the contact
    `steps` (F - 1, 4) of the truth."""
    return float(np.linalg.norm(np.diff(points, axis=0), axis=-1)[steps].mean() * 1000.0)


def foot_height_jitter_mm(points: np.ndarray) -> float:
    """Mean size of the second difference in time of the foot points' heights along the
    true floor's normal, mm per frame^2."""
    heights = points @ TRUTH_UP
    return float(np.abs(heights[2:] - 2 * heights[1:-1] + heights[:-2]).mean() * 1000.0)


def truth_contacts(truth_points: np.ndarray) -> np.ndarray:
    """(F, 4) whether each true foot point stands on the floor at each frame: it begins or
    ends a contact step (`truth_contact_steps`)."""
    steps = truth_contact_steps(truth_points)
    contacts = np.zeros(truth_points.shape[:2], dtype=bool)
    contacts[1:] |= steps
    contacts[:-1] |= steps
    return contacts
