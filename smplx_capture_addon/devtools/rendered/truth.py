"""Ground truth of a rendered case: where each person's keypoints are, and which are seen.

Each of a person's keypoints (the 55 joints, the surface points and the face landmarks
of `names.KEYPOINT_NAMES`) is OUTSIDE when it projects outside the image (or lies behind
the camera), OCCLUDED when the pixel it projects to shows another person or a prop, and
IN_VIEW otherwise. A joint lies inside its own body, so the body's own surface in front
of it does not hide it: a point is hidden only by something else, as a detector sees it.
A person's box is the box of the pixels the id map gives them (what of them is seen).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...blender_builders.placement import project
from ...body_model.model import BodyModel
from ...body_model.names import KEYPOINT_NAMES
from .cases import CaseSpec, posed
from .pictures import PROP

IN_VIEW, OCCLUDED, OUTSIDE = "in_view", "occluded", "outside"


@dataclass
class PersonTruth:
    """keypoints (K, 3) camera space; projected (K, 2) pixels; visibility (K,) of
    IN_VIEW / OCCLUDED / OUTSIDE; box (x0, y0, x1, y1) of the pixels seen, or None."""

    params: dict[str, list[float]]
    keypoints: np.ndarray
    projected: np.ndarray
    visibility: np.ndarray
    box: tuple[float, float, float, float] | None

    def seen(self, names: list[str] | tuple[str, ...] | None = None) -> np.ndarray:
        """(K,) or (len(names),) bool: in view."""
        if names is None:
            return self.visibility == IN_VIEW
        return np.array([self.visibility[KEYPOINT_NAMES.index(name)] == IN_VIEW for name in names])


def person_truths(case: CaseSpec, model: BodyModel, labels: np.ndarray) -> list[PersonTruth]:
    """Each person's truth, with visibility read from the id map's labels (H, W)."""
    truths = []
    for number, person in enumerate(case.people, start=1):
        keypoints = posed(model, person.params).keypoints[0].numpy()
        projected = project(keypoints, case.focal_px, case.principal_point)
        seen = visibility(keypoints, projected, labels, number)
        truths.append(PersonTruth(person.params, keypoints, projected, seen, pixel_box(labels, number)))
    return truths


def visibility(keypoints: np.ndarray, projected: np.ndarray, labels: np.ndarray, number: int) -> np.ndarray:
    """(K,) IN_VIEW / OCCLUDED / OUTSIDE of person `number`'s keypoints (see the module doc)."""
    height, width = labels.shape
    inside = ((keypoints[:, 2] > 0) & (projected[:, 0] >= 0) & (projected[:, 0] < width)
              & (projected[:, 1] >= 0) & (projected[:, 1] < height))  # fmt: skip
    states = np.full(len(keypoints), OUTSIDE, dtype=object)
    columns = np.clip(projected[:, 0].astype(int), 0, width - 1)
    rows = np.clip(projected[:, 1].astype(int), 0, height - 1)
    shown = labels[rows, columns]
    hidden = (shown == PROP) | ((shown > 0) & (shown != number))
    states[inside] = np.where(hidden[inside], OCCLUDED, IN_VIEW)
    return states


def pixel_box(labels: np.ndarray, number: int) -> tuple[float, float, float, float] | None:
    rows, columns = np.nonzero(labels == number)
    if len(rows) == 0:
        return None
    return float(columns.min()), float(rows.min()), float(columns.max() + 1), float(rows.max() + 1)


def truth_record(case: CaseSpec, truths: list[PersonTruth]) -> dict:
    """The case's ground truth as JSON: the camera, and per person the parameters, the
    box seen and the names of the keypoints in view, occluded and outside the frame."""
    return {
        "camera": {"focal_length_px": case.focal_px, "principal_point_px": list(case.principal_point),
                   "width": case.width, "height": case.height, **case.camera},
        "people": [
            {"params": truth.params, "box": truth.box, **_keypoints_by_state(truth.visibility)}
            for truth in truths
        ],
    }  # fmt: skip


def _keypoints_by_state(states: np.ndarray) -> dict[str, list[str]]:
    """The names of the keypoints IN_VIEW, OCCLUDED and OUTSIDE."""
    return {state: [name for name, value in zip(KEYPOINT_NAMES, states, strict=True) if value == state]
            for state in (IN_VIEW, OCCLUDED, OUTSIDE)}  # fmt: skip
