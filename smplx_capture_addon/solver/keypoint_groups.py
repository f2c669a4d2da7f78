"""The groups of keypoints the fit treats alike, as index arrays into
`names.KEYPOINT_NAMES_WITH_CONTOUR` (the first len(KEYPOINT_NAMES) are those without the
face contour)."""

from __future__ import annotations

import numpy as np

from ..body_model.names import KEYPOINT_NAMES, KEYPOINT_NAMES_WITH_CONTOUR, keypoint_index


def _group(names: list[str]) -> np.ndarray:
    return np.array([keypoint_index(n) for n in names], dtype=np.int64)


_BODY_NAMES = [*KEYPOINT_NAMES[1:22], "nose", "right_eye", "left_eye", "right_ear", "left_ear",
               "left_big_toe", "left_small_toe", "left_heel",
               "right_big_toe", "right_small_toe", "right_heel",
               "pelvis"]  # fmt: skip
BODY = _group(_BODY_NAMES)
HANDS = _group([n for n in KEYPOINT_NAMES_WITH_CONTOUR if n.startswith(("left_", "right_"))
                and any(f in n for f in ("thumb", "index", "middle", "ring", "pinky"))])  # fmt: skip
FACE = _group([n for n in KEYPOINT_NAMES_WITH_CONTOUR if n.startswith("face_")]
              + ["jaw", "left_eye_smplhf", "right_eye_smplhf"])  # fmt: skip
TORSO = _group(["left_shoulder", "right_shoulder", "left_hip", "right_hip"])
HEAD = _group(["nose", "left_eye", "right_eye", "left_ear", "right_ear"])
TORSO_PAIRS = ((keypoint_index("left_shoulder"), keypoint_index("left_hip")),
               (keypoint_index("right_shoulder"), keypoint_index("right_hip")))  # fmt: skip
# Segments of fixed length in any pose (bones, the hips, the shoulders nearly): each
# bounds how far the body can be (camera.segment_depth_bound).
RIGID_SEGMENTS = tuple((keypoint_index(a), keypoint_index(b)) for a, b in (
    ("left_shoulder", "right_shoulder"), ("left_hip", "right_hip"),
    ("left_shoulder", "left_hip"), ("right_shoulder", "right_hip"),
    ("left_shoulder", "left_elbow"), ("left_elbow", "left_wrist"),
    ("right_shoulder", "right_elbow"), ("right_elbow", "right_wrist"),
    ("left_hip", "left_knee"), ("left_knee", "left_ankle"),
    ("right_hip", "right_knee"), ("right_knee", "right_ankle")))  # fmt: skip
# The limbs' points whose depth relative to the hips the depth term pulls toward the pose
# model's 3D reading (objective.StageObjective).
DEPTH_POINTS = _group([f"{side}_{part}" for part in ("shoulder", "elbow", "wrist", "hip", "knee", "ankle")
                       for side in ("left", "right")])  # fmt: skip
SHOULDERS = (keypoint_index("left_shoulder"), keypoint_index("right_shoulder"))
HIPS = (keypoint_index("left_hip"), keypoint_index("right_hip"))


def present(group: np.ndarray, count: int) -> np.ndarray:
    """The indices of `group` below `count` (the keypoints a model without the face contour has)."""
    return group[group < count]
