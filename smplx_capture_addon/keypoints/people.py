"""Detected people and the one view of them the solver needs.

A :class:`Person` holds named keypoint sets, each in the point order of a layout of
:mod:`.layouts` (``mediapipe_pose_33``, ``hand_21_left``, ``openpose_body_25``...), as an
``(n, 3)`` array of x, y (original image pixels, origin at the top-left corner of the
top-left pixel) and confidence in [0, 1] (0: not seen). The detector and every file
reader produce this same structure, so consumers need no format knowledge.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..body_model.names import KEYPOINT_NAMES_WITH_CONTOUR
from .layouts import LAYOUTS, SET_PRIORITY

_NAME_INDEX = {name: k for k, name in enumerate(KEYPOINT_NAMES_WITH_CONTOUR)}
WORLD_LAYOUT = "mediapipe_pose_33"  # the points a Person's world landmarks are of


@dataclass(eq=False)  # one person is one object: two readings alike are still two people
class Person:
    """One person: a box (x0, y0, x1, y1) in image pixels and keypoint sets by layout."""

    box: tuple[float, float, float, float]
    keypoint_sets: dict[str, np.ndarray] = field(default_factory=dict)
    score: float = 0.0  # detector's confidence that this is a person (0 when unknown)
    # The same person as a second look read them, facing the other way (front and back
    # views look alike); the fit keeps whichever it fits better. Not written to files.
    other_facing: Person | None = None
    # The pose model's 3D reading of its 33 points (WORLD_LAYOUT's order), (33, 3): metres
    # from the point between the hips, x right, y down, z away from the camera; None
    # when the keypoints came from elsewhere.
    world_landmarks: np.ndarray | None = None


@dataclass
class Detections:
    """Everything known about one photo's people."""

    image_path: str
    image_size: tuple[int, int] | None  # (width, height); None when a file did not say
    people: list[Person]
    detector: str = ""
    focal_length_px: float | None = None  # from EXIF when the photo had it
    # Boxes of everyone the detector found, in person-number order (1 = the most
    # prominent), also those not in `people`; empty when it did not look for everyone.
    found_boxes: list[tuple[float, float, float, float]] = field(default_factory=list)


def body_keypoints(person: Person, weighted: bool = True) -> np.ndarray:
    """Body-model keypoints of one person, shape ``(len(KEYPOINT_NAMES_WITH_CONTOUR), 3)``.

    Row k is (x, y, confidence) for name k of ``KEYPOINT_NAMES_WITH_CONTOUR``; rows no
    set saw (or saw below its layout's ``min_confidence``) have confidence 0. Where
    several sets give a name, the first set of :data:`.layouts.SET_PRIORITY` that saw it
    wins. With ``weighted`` the confidence is multiplied by the layout's default weight
    for that point (see :mod:`.layouts`).
    """
    result = np.zeros((len(KEYPOINT_NAMES_WITH_CONTOUR), 3))
    for set_name in reversed(SET_PRIORITY):  # lower priority first, overwritten by higher
        points = person.keypoint_sets.get(set_name)
        if points is None:
            continue
        layout = LAYOUTS[set_name]
        for index, name, weight in layout.mapping:
            x, y, confidence = points[index]
            if confidence > 0 and confidence >= layout.min_confidence:
                row = _NAME_INDEX[name]
                result[row] = (x, y, confidence * weight if weighted else confidence)
    return result


def body_depths(person: Person) -> np.ndarray:
    """The world landmarks' depth (z, metres) of each body-model keypoint, shape
    ``(len(KEYPOINT_NAMES_WITH_CONTOUR),)``, in the order of ``body_keypoints``; NaN
    where they give none (all NaN without world landmarks)."""
    result = np.full(len(KEYPOINT_NAMES_WITH_CONTOUR), np.nan)
    if person.world_landmarks is not None:
        for index, name, _ in LAYOUTS[WORLD_LAYOUT].mapping:
            result[_NAME_INDEX[name]] = person.world_landmarks[index, 2]
    return result


def box_of_points(points: np.ndarray) -> tuple[float, float, float, float] | None:
    """Tight box around the points seen (confidence > 0), or None when none was."""
    seen = points[points[:, 2] > 0]
    if len(seen) == 0:
        return None
    return (
        float(seen[:, 0].min()),
        float(seen[:, 1].min()),
        float(seen[:, 0].max()),
        float(seen[:, 1].max()),
    )
