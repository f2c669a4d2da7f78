"""The detector's readings of a rendered photo with some replaced by the truth
(`bench-rendered --truth-readings`): how much of the fit's error each reading causes
(issue #29, part 5).

The detected people are matched to the rendered ones by their boxes; a matched person
then gets, for each reading named:

- "2d": every point a layout maps to a body-model keypoint, where the detector saw it, at
  the truth's projection of that keypoint (its confidence kept, so the same points count);
- "depth": the pose model's world landmarks of those keypoints at the truth's camera-space
  positions about its hips' midpoint (the fit reads their depths).

The shape is not among them: held at the truth's, it mattered little once the other
two were true (docs/solver_notes.md).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from ...body_model.names import KEYPOINT_NAMES
from ...keypoints.layouts import LAYOUTS
from ...keypoints.people import WORLD_LAYOUT, Detections, Person
from .metrics import match_people
from .truth import PersonTruth

TRUTH_READINGS = ("2d", "depth")
_KEYPOINT_INDEX = {name: k for k, name in enumerate(KEYPOINT_NAMES)}
_HIPS = [_KEYPOINT_INDEX["left_hip"], _KEYPOINT_INDEX["right_hip"]]


def with_truth_readings(
    detections: Detections, truths: list[PersonTruth], readings: frozenset[str]
) -> Detections:
    """`detections` with the `readings` (of TRUTH_READINGS) of every person matched to one
    of `truths` replaced by that truth's (see the module doc)."""
    unknown = readings - set(TRUTH_READINGS)
    if unknown:
        raise ValueError(f"Unknown readings {sorted(unknown)}: choose from {TRUTH_READINGS}.")
    people = list(detections.people)
    matches = match_people([truth.box for truth in truths], [person.box for person in people])
    for rendered, detected in matches.items():
        people[detected] = _person_with_truth(people[detected], truths[rendered], readings)
    return replace(detections, people=people)


def _person_with_truth(person: Person, truth: PersonTruth, readings: frozenset[str]) -> Person:
    sets = person.keypoint_sets
    if "2d" in readings:
        sets = {name: _true_points(name, points, truth.projected) for name, points in sets.items()}
    world = person.world_landmarks
    if "depth" in readings and world is not None:
        world = _true_world_landmarks(world, truth.keypoints)
    return replace(person, keypoint_sets=sets, world_landmarks=world)


def _true_points(layout: str, points: np.ndarray, projected: np.ndarray) -> np.ndarray:
    """A layout's (n, 3) points with each one seen that stands for a keypoint at the
    truth's projection (K, 2) of it."""
    points = points.copy()
    for index, name, _ in LAYOUTS[layout].mapping:
        keypoint = _KEYPOINT_INDEX.get(name)  # the face contour is not among the truth's
        if keypoint is not None and points[index, 2] > 0:
            points[index, :2] = projected[keypoint]
    return points


def _true_world_landmarks(world: np.ndarray, keypoints: np.ndarray) -> np.ndarray:
    """The pose model's (33, 3) world landmarks with each one that stands for a keypoint
    at the truth's camera-space keypoint (K, 3) less the hips' midpoint."""
    world = world.copy()
    hips = keypoints[_HIPS].mean(0)
    for index, name, _ in LAYOUTS[WORLD_LAYOUT].mapping:
        world[index] = keypoints[_KEYPOINT_INDEX[name]] - hips
    return world
