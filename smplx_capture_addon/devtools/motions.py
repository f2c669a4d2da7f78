"""Real body poses for the benchmark: DeepMimic humanoid motion clips mapped to SMPL-X.

The clips (walk, run, jump, kick, punch, dance, cartwheel, ...) ship in the `pybullet`
wheel's pybullet_data (zlib licence; the clips come from DeepMimic, MIT licence);
`build.py setup` copies them to .cache/motions/. A frame is
[duration, root position (3), root rotation (4), chest (4), neck (4), right hip (4),
right knee (1), right ankle (4), right shoulder (4), right elbow (1), left hip (4),
left knee (1), left ankle (4), left shoulder (4), left elbow (1)], quaternions w x y z,
knees and elbows as hinge angles about the joint's z axis.

The DeepMimic humanoid stands with y up, faces +x, has its right side at +z and its arms
hanging down. SMPL-X faces +z, has its left side at +x and its arms spread (T-pose). A
local rotation maps by conjugation with the frame change M (DeepMimic -> SMPL-X axes)
and, along the arms, with the rest-pose difference A (T-pose arm -> hanging arm):
shoulder = M R M^T A, elbow = A^T M R M^T A. The chest rotation is shared out over the
three SMPL-X spine joints, the neck's over neck and head.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..body_model.names import JOINT_NAMES

MOTION_CACHE = Path(__file__).resolve().parents[2] / ".cache" / "motions"
CLIPS = ("walk", "run", "jump", "kick", "punch", "dance_a", "dance_b", "cartwheel")  # as fetched by build.py

_FRAME_CHANGE = np.array([[0.0, 0.0, -1.0], [0.0, 1.0, 0.0], [1.0, 0.0, 0.0]])  # rows: SMPL-X x, y, z


def _quaternion_matrix(q: np.ndarray) -> np.ndarray:
    """(4,) w x y z, any norm -> (3, 3)."""
    w, x, y, z = q / np.linalg.norm(q)
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
        [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
        [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
    ])  # fmt: skip


def _rotation_z(angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def matrix_to_axis_angle(matrix: np.ndarray) -> np.ndarray:
    """(3, 3) -> (3,) axis-angle (numpy; angles below pi - 1e-3, which poses here keep)."""
    cos = np.clip((np.trace(matrix) - 1.0) / 2.0, -1.0, 1.0)
    angle = np.arccos(cos)
    axis = np.array([matrix[2, 1] - matrix[1, 2], matrix[0, 2] - matrix[2, 0], matrix[1, 0] - matrix[0, 1]])
    norm = np.linalg.norm(axis)
    return axis * (angle / norm) if norm > 1e-9 else np.zeros(3)


def load_clip(path: str | Path) -> np.ndarray:
    """(F, 44) frames of a DeepMimic humanoid3d motion file."""
    frames = np.asarray(json.loads(Path(path).read_text())["Frames"], dtype=np.float64)
    if frames.ndim != 2 or frames.shape[1] != 44:
        raise ValueError(f"{path}: not a DeepMimic humanoid3d motion ({frames.shape})")
    return frames


def frame_to_smplx(frame: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One frame -> (global_orient (3,), body_pose (63,)) axis-angle, SMPL-X frame (y up)."""
    m = _FRAME_CHANGE
    offset = 1 + 3
    parts = {}
    for name, size in (("root", 4), ("chest", 4), ("neck", 4), ("right_hip", 4), ("right_knee", 1),
                       ("right_ankle", 4), ("right_shoulder", 4), ("right_elbow", 1), ("left_hip", 4),
                       ("left_knee", 1), ("left_ankle", 4), ("left_shoulder", 4),
                       ("left_elbow", 1)):  # fmt: skip
        value = frame[offset : offset + size]
        local = _quaternion_matrix(value) if size == 4 else _rotation_z(float(value[0]))
        parts[name] = m @ local @ m.T
        offset += size
    arm_rest = {"left": _rotation_z(-np.pi / 2), "right": _rotation_z(np.pi / 2)}
    pose = np.zeros((len(JOINT_NAMES), 3))

    def put(joint: str, rotation: np.ndarray) -> None:
        pose[JOINT_NAMES.index(joint)] = matrix_to_axis_angle(rotation)

    chest = matrix_to_axis_angle(parts["chest"])
    for spine in ("spine1", "spine2", "spine3"):
        pose[JOINT_NAMES.index(spine)] = chest / 3.0
    neck = matrix_to_axis_angle(parts["neck"])
    pose[JOINT_NAMES.index("neck")] = neck / 2.0
    pose[JOINT_NAMES.index("head")] = neck / 2.0
    for side in ("left", "right"):
        for joint in ("hip", "knee", "ankle"):
            put(f"{side}_{joint}", parts[f"{side}_{joint}"])
        a = arm_rest[side]
        put(f"{side}_shoulder", parts[f"{side}_shoulder"] @ a)
        put(f"{side}_elbow", a.T @ parts[f"{side}_elbow"] @ a)
    return matrix_to_axis_angle(parts["root"]), pose[1:22].reshape(-1)


def available_clips(folder: Path = MOTION_CACHE) -> list[Path]:
    return [
        folder / f"humanoid3d_{clip}.txt" for clip in CLIPS if (folder / f"humanoid3d_{clip}.txt").is_file()
    ]


def sample_poses(
    count: int, rng: np.random.Generator, folder: Path = MOTION_CACHE
) -> tuple[np.ndarray, np.ndarray]:
    """`count` frames drawn from the cached clips: (global_orient (N, 3), body_pose (N, 63))."""
    clips = available_clips(folder)
    if not clips:
        raise FileNotFoundError(f"No DeepMimic motion clips in {folder}: run `python3 build.py setup`.")
    frames = [load_clip(path) for path in clips]
    orients, poses = [], []
    for _ in range(count):
        clip = frames[rng.integers(len(frames))]
        orient, pose = frame_to_smplx(clip[rng.integers(len(clip))])
        orients.append(orient)
        poses.append(pose)
    return np.stack(orients), np.stack(poses)
