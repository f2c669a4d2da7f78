"""The chosen person followed from frame to frame.

Every frame is searched for everyone (keypoints.detect's IMAGE-mode search, tiles
included), the person of the track is the one whose box overlaps the track's last box
best, and only that person gets the second pass (pose, hands and face on crops around
them). MediaPipe's VIDEO mode is not used: its tracking carries state from one call to
the next of one landmarker, and the two-pass scheme runs each landmarker on crops that
move and change size from frame to frame (the person, each hand, the face), so the
state would join unrelated pictures; on whole frames alone it loses the crops' detail.
A frame where no one overlaps the track's last box enough is lost: never filled with
someone else.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from ..fit_request import BOX, NUMBER, PersonChoice
from ..keypoints.people import Person
from .frames import Frame

# Boxes of one person in consecutive frames overlap by far more than this (intersection
# over union); the boxes of two people side by side, or of someone passing, by less.
MIN_OVERLAP = 0.3


@dataclass(frozen=True)
class TrackedFrame:
    """One frame's outcome: the track's person (None where lost) and everyone's boxes."""

    index: int
    person: Person | None
    boxes: list[tuple[float, float, float, float]]


class Track:
    """Which of a frame's people is the chosen one. Until the person is first found, the
    choice picks (the N-th most prominent, or the one best overlapping the box); after
    that, the one overlapping the last box by MIN_OVERLAP or more, the most."""

    def __init__(self, choice: PersonChoice) -> None:
        self.choice = choice
        self.last_box: np.ndarray | None = None

    def pick(self, boxes: Sequence[Sequence[float]]) -> int | None:
        """The index of the track's person among `boxes` (most prominent first), or None."""
        if not boxes:
            return None
        boxes = np.asarray(boxes, dtype=np.float64)
        if self.last_box is None:
            chosen = self._first(boxes)
        else:
            overlaps = [iou(box, self.last_box) for box in boxes]
            best = int(np.argmax(overlaps))
            chosen = best if overlaps[best] >= MIN_OVERLAP else None
        if chosen is not None:
            self.last_box = boxes[chosen]
        return chosen

    def _first(self, boxes: np.ndarray) -> int | None:
        if self.choice.kind == NUMBER:
            return self.choice.number - 1 if self.choice.number <= len(boxes) else None
        if self.choice.kind == BOX:
            overlaps = [iou(box, np.asarray(self.choice.box)) for box in boxes]
            return int(np.argmax(overlaps)) if max(overlaps) > 0 else None
        return 0


def iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two boxes (x0, y0, x1, y1)."""
    shared = np.clip(np.minimum(a[2:], b[2:]) - np.maximum(a[:2], b[:2]), 0.0, None).prod()
    areas = np.clip(a[2:] - a[:2], 0.0, None).prod() + np.clip(b[2:] - b[:2], 0.0, None).prod()
    return float(shared / max(areas - shared, 1e-9))


def track_person(frames: Iterator[Frame], choice: PersonChoice, detector) -> Iterator[TrackedFrame]:
    """Each frame's person of the track (see the module docstring); `detector` is a
    keypoints.detect.Detector."""
    from ..keypoints.detect import find_people, person_box, refine_person

    track = Track(choice)
    for frame in frames:
        # A clip follows one person: no second looks behind the others, a pose inference each.
        poses = find_people(frame.pixels, detector, look_behind=False)
        boxes = [person_box(pose, frame.pixels.shape) for pose in poses]
        chosen = track.pick(boxes)
        # The others in the frame compete for the hands and the face found near the person.
        others = [pose for k, pose in enumerate(poses) if k != chosen]
        person = (
            None if chosen is None
            else refine_person(frame.pixels, detector, poses[chosen], boxes[chosen], others)
        )  # fmt: skip
        yield TrackedFrame(frame.index, person, [tuple(float(v) for v in box) for box in boxes])
