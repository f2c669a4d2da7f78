"""Which joint rotations seen keypoints pin down: the skeleton's rule on a small tree, and
the surface points of the open default body hung on the joints that carry them."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from smplx_capture_addon.body_model.evidence import inferred_joints, keypoint_joints, rotations_seen
from smplx_capture_addon.body_model.model_file import load_model
from smplx_capture_addon.body_model.names import (
    CONTOUR_NAMES,
    FACE_LANDMARK_NAMES,
    JOINT_NAMES,
    KEYPOINT_NAMES,
    VERTEX_KEYPOINT_NAMES,
)

# root 0 -> 1 -> 2 -> 3, and 0 -> 4
_PARENTS = [-1, 0, 1, 2, 0]


def test_a_joint_keypoint_pins_its_ancestors_but_not_itself():
    seen = rotations_seen(_PARENTS, np.array([3]), np.array([False]), np.array([True]))
    assert seen.tolist() == [True, True, True, False, False]


def test_a_surface_point_pins_the_joint_it_hangs_on_too():
    seen = rotations_seen(_PARENTS, np.array([3, 4]), np.array([True, False]), np.array([True, True]))
    # joint 4's own centre says nothing of how joint 4 turned; the root moved it
    assert seen.tolist() == [True, True, True, True, False]


def test_unseen_keypoints_pin_nothing():
    seen = rotations_seen(_PARENTS, np.array([3, 2]), np.array([True, True]), np.array([False, False]))
    assert not seen.any()


@pytest.fixture(scope="module")
def default_body():
    return load_model("default")


def test_surface_points_hang_on_the_bones_that_carry_them(default_body):
    joints = keypoint_joints(default_body, VERTEX_KEYPOINT_NAMES)
    name = {k: JOINT_NAMES[v] for k, v in zip(VERTEX_KEYPOINT_NAMES, joints, strict=True)}
    assert name["left_heel"] in ("left_ankle", "left_foot") and name["right_big_toe"] in ("right_foot",)
    assert name["left_index_tip"] == "left_index3" and name["right_thumb_tip"] == "right_thumb3"
    assert name["nose"] == "head"
    assert default_body.contour_faces is None  # the open body has no face contour
    with pytest.raises(ValueError, match="face_00"):
        keypoint_joints(default_body, CONTOUR_NAMES)
    face = {JOINT_NAMES[j] for j in keypoint_joints(default_body, FACE_LANDMARK_NAMES)}
    assert face <= {"head", "jaw", "left_eye_smplhf", "right_eye_smplhf"} and "jaw" in face
    # A model with a face contour (as the official SMPL-X files have): its candidate faces
    # (here faces of the face landmarks, 79 per contour point) hang the contour on the head.
    faces = np.resize(default_body.landmark_faces, (79, 17))
    with_contour = replace(default_body, contour_faces=faces, contour_bary=np.full((79, 17, 3), 1 / 3))
    contour = {JOINT_NAMES[j] for j in keypoint_joints(with_contour, CONTOUR_NAMES)}
    assert contour and contour <= {"head", "jaw"}
    assert keypoint_joints(default_body, ["left_knee"]).tolist() == [JOINT_NAMES.index("left_knee")]


def test_a_body_seen_down_to_the_waist_has_its_legs_inferred(default_body):
    names = list(KEYPOINT_NAMES)
    upper = {"nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder",
             "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip"}  # fmt: skip
    seen = np.array([name in upper for name in names])
    inferred = inferred_joints(default_body, names, seen)
    for leg in ("left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_foot"):
        assert leg in inferred
    for known in ("pelvis", "spine1", "spine3", "neck", "left_shoulder", "right_elbow", "left_collar"):
        assert known not in inferred
    # No hand was seen: the wrists' own turn and every finger are the priors' choice.
    assert "left_wrist" in inferred and "right_pinky3" in inferred
    # With every keypoint seen, nothing of the body or hands is inferred.
    everything = inferred_joints(default_body, names, np.ones(len(names), dtype=bool))
    assert not set(everything) & set(JOINT_NAMES[:22] + JOINT_NAMES[25:])
