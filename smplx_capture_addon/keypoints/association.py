"""Whose hand, whose face: the hands and faces found on crops given to the people whose
poses they fit, everyone at once.

A hand may go to the side of a person that its handedness label names (the label
alone cannot tell whose hand it is; the distance alone gives one hand to both wrists
when the pose puts them together). Its wrist must lie within half an arm's length of
that pose's wrist: the arm's length is the person's scale, so a small person far behind
does not reach a hand that is near in pixels. The cost of the pair is that distance in
arm lengths, plus the turn of the hand away from the forearm where the pose sees both
ends of the forearm: a wrist bends, but a hand pointing back along the forearm hangs
from another arm.

A face goes to the person whose nose and eyes it has, within half a face width (ear to
ear, see `face_width`) on average, when the face mesh is about as wide as that face.

The same hand (or face) found on several crops is one; pairs are taken cheapest first
over everyone, so when two people claim one hand the better match wins, and each side
gets at most one hand and each hand one side (not greedy per person).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .layouts import MEDIAPIPE_POSE_33

# BlazePose-33 indices
NOSE, LEFT_EYE, RIGHT_EYE, LEFT_EAR, RIGHT_EAR = 0, 2, 5, 7, 8
LEFT_SHOULDER, RIGHT_SHOULDER, LEFT_HIP, RIGHT_HIP = 11, 12, 23, 24
HEAD = (0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10)
ARM = {  # side -> (shoulder, elbow, wrist, pinky, index, thumb)
    "left": (11, 13, 15, 17, 19, 21),
    "right": (12, 14, 16, 18, 20, 22),
}
SIDES = ("left", "right")
# Face mesh vertices: nose tip, the subject's left and right eye corners, the cheeks
# beside the ears
_MESH_NOSE = 4
_MESH_LEFT_EYE = (362, 263)
_MESH_RIGHT_EYE = (33, 133)
_MESH_CHEEKS = (234, 454)
# Hand points: wrist, middle finger's knuckle
_HAND_WRIST, _HAND_MIDDLE = 0, 9

SEEN = MEDIAPIPE_POSE_33.min_confidence  # pose visibility above which a point counts as seen
HAND_REACH = 0.5  # of the arm's length: the farthest a hand's wrist may lie from the pose's
HAND_TURN_COST = 0.25  # cost of a hand pointing straight back along the forearm
FACE_REACH = 0.5  # of the face width: the farthest the face's nose and eyes may lie on average
FACE_WIDTH_RATIO = 2.0  # a face mesh at most this much wider or narrower than the head
_SAME_PART = 0.3  # two hands (faces) whose points lie this close, in hand (face) sizes, are one


@dataclass(frozen=True)
class Hand:
    points: np.ndarray  # (21, 3)
    side: str  # "left" or "right": the person's own


def arm_length(pose: np.ndarray) -> float:
    """Shoulder to wrist, bounded below by the torso's size (an arm pointing at the
    camera looks short): the person's scale in pixels."""
    arms = [
        np.linalg.norm(pose[shoulder, :2] - pose[elbow, :2])
        + np.linalg.norm(pose[elbow, :2] - pose[wrist, :2])
        for shoulder, elbow, wrist, *_ in ARM.values()
    ]
    return float(max(*arms, torso_size(pose), 1.0))


def torso_size(pose: np.ndarray) -> float:
    """The shoulders' width or the shoulders-to-hips length, whichever is longer (a
    torso seen from the side is narrow, one bent towards the camera short)."""
    shoulders = np.linalg.norm(pose[LEFT_SHOULDER, :2] - pose[RIGHT_SHOULDER, :2])
    length = np.linalg.norm(
        pose[[LEFT_SHOULDER, RIGHT_SHOULDER], :2].mean(axis=0) - pose[[LEFT_HIP, RIGHT_HIP], :2].mean(axis=0)
    )
    return float(max(shoulders, length))


def face_width(pose: np.ndarray) -> float:
    """Ear to ear, bounded below by half the shoulders (a face in profile is narrow)."""
    ears = float(np.linalg.norm(pose[LEFT_EAR, :2] - pose[RIGHT_EAR, :2]))
    shoulders = float(np.linalg.norm(pose[LEFT_SHOULDER, :2] - pose[RIGHT_SHOULDER, :2]))
    return max(ears, 0.5 * shoulders, 1.0)


def hand_cost(pose: np.ndarray, side: str, hand: Hand) -> float:
    """How badly `hand` fits the pose's `side` (see the module doc); inf when it cannot
    be that side's hand."""
    _, elbow, wrist, *_ = ARM[side]
    if hand.side != side:
        return np.inf
    distance = np.linalg.norm(hand.points[_HAND_WRIST, :2] - pose[wrist, :2]) / arm_length(pose)
    if distance >= HAND_REACH:
        return np.inf
    forearm = pose[wrist, :2] - pose[elbow, :2]
    pointing = hand.points[_HAND_MIDDLE, :2] - hand.points[_HAND_WRIST, :2]
    lengths = np.linalg.norm(forearm) * np.linalg.norm(pointing)
    if min(pose[elbow, 2], pose[wrist, 2]) < SEEN or lengths < 1e-9:
        return float(distance)
    return float(distance + HAND_TURN_COST * (1.0 - np.dot(forearm, pointing) / lengths) / 2.0)


def face_cost(pose: np.ndarray, face: np.ndarray) -> float:
    """How badly a face mesh (478, 3) fits the pose's head (see the module doc); inf when
    it cannot be that head's face."""
    width = face_width(pose)
    mesh_width = float(np.linalg.norm(face[_MESH_CHEEKS[0], :2] - face[_MESH_CHEEKS[1], :2]))
    if not 1.0 / FACE_WIDTH_RATIO <= mesh_width / width <= FACE_WIDTH_RATIO:
        return np.inf
    mesh = np.array([face[_MESH_NOSE, :2], *(face[list(eye), :2].mean(axis=0)
                                            for eye in (_MESH_LEFT_EYE, _MESH_RIGHT_EYE))])  # fmt: skip
    head = pose[[NOSE, LEFT_EYE, RIGHT_EYE], :2]
    distance = float(np.linalg.norm(mesh - head, axis=1).mean()) / width
    return distance if distance < FACE_REACH else np.inf


def assign_hands(poses: Sequence[np.ndarray], hands: Sequence[Hand]) -> list[dict[str, np.ndarray]]:
    """Per pose, side -> the points of the hand given to it (see the module doc)."""
    groups = _same_parts([hand.points for hand in hands])
    pairs = []
    for person, pose in enumerate(poses):
        for side in SIDES:
            for group, members in enumerate(groups):
                cost, best = min((hand_cost(pose, side, hands[k]), k) for k in members)
                pairs.append((cost, (person, side), group, best))
    given: list[dict[str, np.ndarray]] = [{} for _ in poses]
    for (person, side), best in cheapest_pairs(pairs):
        given[person][side] = hands[best].points
    return given


def assign_faces(poses: Sequence[np.ndarray], faces: Sequence[np.ndarray]) -> list[np.ndarray | None]:
    """Per pose, the face given to it or None; its confidence is the pose's mean
    visibility of the head points (the face model gives none per point)."""
    groups = _same_parts(list(faces))
    pairs = []
    for person, pose in enumerate(poses):
        for group, members in enumerate(groups):
            cost, best = min((face_cost(pose, faces[k]), k) for k in members)
            pairs.append((cost, person, group, best))
    given: list[np.ndarray | None] = [None for _ in poses]
    for person, best in cheapest_pairs(pairs):
        face = faces[best].copy()
        face[:, 2] = poses[person][list(HEAD), 2].mean()
        given[person] = face
    return given


def cheapest_pairs(pairs: list[tuple]) -> list[tuple]:
    """(cost, taker, item, payload) rows -> (taker, payload) of the pairs taken cheapest
    first, each taker and each item once; pairs of infinite cost are never taken."""
    taken_by, taken = set(), set()
    chosen = []
    for cost, taker, item, payload in sorted(pairs, key=lambda pair: pair[0]):
        if np.isfinite(cost) and taker not in taken_by and item not in taken:
            taken_by.add(taker)
            taken.add(item)
            chosen.append((taker, payload))
    return chosen


def _same_parts(parts: Sequence[np.ndarray]) -> list[list[int]]:
    """Indices of `parts` grouped by physical hand (face): a part joins the first group
    whose first part's points lie within _SAME_PART of its size (its points' extent) on
    average."""
    groups: list[list[int]] = []
    for index, points in enumerate(parts):
        size = max(float(np.ptp(points[:, :2], axis=0).max()), 1.0)
        for group in groups:
            first = parts[group[0]]
            if np.linalg.norm(first[:, :2] - points[:, :2], axis=1).mean() < _SAME_PART * size:
                group.append(index)
                break
        else:
            groups.append([index])
    return groups
