"""The layout tables agree with the body model's names and with each other."""

from collections import Counter

from smplx_capture_addon.body_model.names import (
    CONTOUR_NAMES,
    FACE_LANDMARK_NAMES,
    KEYPOINT_NAMES_WITH_CONTOUR,
)
from smplx_capture_addon.keypoints.layouts import LAYOUTS, SET_PRIORITY


def test_every_mapped_name_is_a_body_model_keypoint_and_every_index_fits_the_layout():
    for layout in LAYOUTS.values():
        for index, name, weight in layout.mapping:
            assert name in KEYPOINT_NAMES_WITH_CONTOUR, (layout.name, name)
            assert 0 <= index < layout.size, (layout.name, index)
            assert 0.0 < weight <= 1.0


def test_a_name_appears_once_per_layout_except_coco_wrists_given_by_body_and_hand():
    for layout in LAYOUTS.values():
        repeated = {
            name for name, count in Counter(name for _, name, _ in layout.mapping).items() if count > 1
        }
        expected = {"left_wrist", "right_wrist"} if layout.name == "coco_wholebody_133" else set()
        assert repeated == expected, layout.name


def test_whole_face_layouts_cover_all_68_ibug_points_and_both_eyes():
    for name in ("mediapipe_face_478", "openpose_face_70", "coco_wholebody_133"):
        names = {mapped for _, mapped, _ in LAYOUTS[name].mapping}
        assert set(FACE_LANDMARK_NAMES + CONTOUR_NAMES) <= names, name
        assert {"left_eye", "right_eye"} <= names


def test_hand_tables_mirror_each_other_and_cover_all_15_joints_and_5_tips_per_hand():
    left = [(index, name) for index, name, _ in LAYOUTS["hand_21_left"].mapping]
    right = [(index, name.replace("right_", "left_")) for index, name, _ in LAYOUTS["hand_21_right"].mapping]
    assert left == right
    assert sorted(index for index, _ in left) == list(range(21))
    assert [name for index, name in left if index in (4, 8, 12, 16, 20)] == [
        f"left_{finger}_tip" for finger in ("thumb", "index", "middle", "ring", "pinky")
    ]


def test_body_layouts_keep_left_and_right_apart():
    for layout in LAYOUTS.values():
        for index, name, _ in layout.mapping:
            twin = [other for i, other, _ in layout.mapping if i == index and other != name]
            sides = {n.split("_")[0] for n in [name, *twin] if n.split("_")[0] in ("left", "right")}
            assert len(sides) <= 1, (layout.name, index)


def test_coco_wholebody_order_body_feet_face_left_hand_right_hand():
    mapping = {index: name for index, name, _ in LAYOUTS["coco_wholebody_133"].mapping}
    assert (mapping[0], mapping[9], mapping[16], mapping[17], mapping[22]) == (
        "nose", "left_wrist", "right_ankle", "left_big_toe", "right_heel",
    )  # fmt: skip
    assert (mapping[23], mapping[40], mapping[90]) == ("face_00", "face_17", "face_67")
    assert (mapping[91], mapping[111], mapping[112], mapping[132]) == (
        "left_wrist", "left_pinky_tip", "right_wrist", "right_pinky_tip",
    )  # fmt: skip


def test_openpose_body_25_pelvis_is_mid_hip_and_feet_are_in_openpose_order():
    mapping = {index: name for index, name, _ in LAYOUTS["openpose_body_25"].mapping}
    assert mapping[8] == "pelvis"
    assert [mapping[i] for i in range(19, 25)] == [
        "left_big_toe", "left_small_toe", "left_heel", "right_big_toe", "right_small_toe", "right_heel",
    ]  # fmt: skip


def test_priority_lists_every_layout_once_with_hands_and_faces_before_bodies():
    assert sorted(SET_PRIORITY) == sorted(LAYOUTS)
    assert SET_PRIORITY.index("mediapipe_face_478") < SET_PRIORITY.index("mediapipe_pose_33")
    assert SET_PRIORITY.index("hand_21_left") < SET_PRIORITY.index("openpose_body_25")
