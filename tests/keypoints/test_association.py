"""Whose hand, whose face (keypoints/association.py), on the poses, hands and faces that
the detector finds in bus.jpg: the man in the fleece coat (no hand found: his hands are
in his sleeves) and the man with the phone (both hands found)."""

from __future__ import annotations

import numpy as np
import pytest

from smplx_capture_addon.keypoints.association import (
    ARM,
    NOSE,
    Hand,
    arm_length,
    assign_faces,
    assign_hands,
    face_width,
)

POSE, FACE = "mediapipe_pose_33", "mediapipe_face_478"
FLEECE_NOSE, PHONE_NOSE = (143, 446), (290, 450)  # by eye, as in test_detect.py


def nearest(people, nose):
    return min(people, key=lambda person: np.linalg.norm(person.keypoint_sets[POSE][NOSE, :2] - nose))


@pytest.fixture(scope="module")
def bus(detections_of):
    """(fleece man, phone man) as detected, everyone found."""
    people = detections_of("bus.jpg", all_people=True).people
    return nearest(people, FLEECE_NOSE), nearest(people, PHONE_NOSE)


@pytest.fixture(scope="module")
def phone_hands(bus):
    _, phone = bus
    return [Hand(phone.keypoint_sets[f"hand_21_{side}"], side) for side in ("left", "right")]


def moved(points: np.ndarray, offset) -> np.ndarray:
    result = points.copy()
    result[:, :2] += offset
    return result


def scaled(points: np.ndarray, factor: float, about: np.ndarray) -> np.ndarray:
    result = points.copy()
    result[:, :2] = about + factor * (points[:, :2] - about)
    return result


def test_the_detector_gives_both_hands_to_the_phone_man_and_none_to_his_neighbour(bus):
    fleece, phone = bus
    assert not any(name.startswith("hand_21") for name in fleece.keypoint_sets)
    pose = phone.keypoint_sets[POSE]
    for side in ("left", "right"):
        wrist = ARM[side][2]
        assert np.linalg.norm(phone.keypoint_sets[f"hand_21_{side}"][0, :2] - pose[wrist, :2]) < 15, side


def test_each_hand_goes_to_its_own_side_of_its_own_person_whoever_is_listed_first(bus, phone_hands):
    fleece, phone = (person.keypoint_sets[POSE] for person in bus)
    for poses, owner in (([fleece, phone], 1), ([phone, fleece], 0)):
        given = assign_hands(poses, phone_hands)
        assert given[1 - owner] == {}
        assert set(given[owner]) == {"left", "right"}
        for hand in phone_hands:
            assert given[owner][hand.side] is hand.points


def test_a_hand_beyond_every_arms_reach_goes_to_nobody(bus, phone_hands):
    poses = [person.keypoint_sets[POSE] for person in bus]
    # the phone man's right hand moved up by an arm's length, onto the bus window
    lifted = Hand(moved(phone_hands[1].points, (0.0, -arm_length(poses[1]))), "right")
    assert assign_hands(poses, [lifted]) == [{}, {}]


def test_a_hand_is_judged_against_the_persons_size_not_pixels(bus, phone_hands):
    phone = bus[1].keypoint_sets[POSE]
    right_wrist = phone[ARM["right"][2], :2]
    hand = phone_hands[1]
    # the hand 40% of his arm away from his wrist: still within his reach
    offset = hand.points[0, :2] - right_wrist
    near = Hand(moved(hand.points, 0.4 * arm_length(phone) * np.array([1.0, 0.0]) - offset), "right")
    assert "right" in assign_hands([phone], [near])[0]
    # the same pixels from the wrist of a person a quarter his size (far behind him)
    small = scaled(phone, 0.25, right_wrist)
    assert assign_hands([small], [near]) == [{}]


def test_when_two_people_reach_one_hand_the_better_match_wins_in_either_order(bus, phone_hands):
    fleece, phone = (person.keypoint_sets[POSE] for person in bus)
    hand = phone_hands[1]
    # the fleece man moved so that his right wrist is a fifth of his arm from the hand:
    # within his reach, but the phone man's own wrist is nearer
    fleece_wrist = fleece[ARM["right"][2], :2]
    target = hand.points[0, :2] + (0.2 * arm_length(fleece), 0.0)
    reaching = moved(fleece, target - fleece_wrist)
    assert "right" in assign_hands([reaching], [hand])[0]
    assert [set(given) for given in assign_hands([reaching, phone], [hand])] == [set(), {"right"}]
    assert [set(given) for given in assign_hands([phone, reaching], [hand])] == [{"right"}, set()]


def test_one_hand_found_on_two_crops_is_given_once_even_with_two_labels(bus, phone_hands):
    phone = bus[1].keypoint_sets[POSE]
    hand = phone_hands[0]
    copy = Hand(moved(hand.points, (2.0, -1.0)), "right")  # another crop's view of it, mislabelled
    given = assign_hands([phone], [hand, copy])[0]
    assert list(given) == ["left"] and given["left"] is hand.points


def test_faces_go_to_their_own_heads_and_a_face_of_the_wrong_size_to_nobody(bus):
    poses = [person.keypoint_sets[POSE] for person in bus]
    faces = [person.keypoint_sets[FACE] for person in bus]
    for order in ((0, 1), (1, 0)):
        given = assign_faces(poses, [faces[k] for k in order])
        for person in (0, 1):
            np.testing.assert_array_equal(given[person][:, :2], faces[person][:, :2])
    # the phone man's face mesh three times as wide as his head, about its nose
    too_wide = scaled(faces[1], 3.0, faces[1][4, :2])
    assert assign_faces([poses[1]], [too_wide]) == [None]
    # his face moved a face width aside (onto his shoulder): nobody's face
    aside = moved(faces[1], (face_width(poses[1]), 0.0))
    assert assign_faces(poses, [aside]) == [None, None]
