"""Whole-body keypoints of the people in a photo with MediaPipe Tasks (IMAGE mode), offline.

Pipeline (:func:`detect`):

1. Find people: PoseLandmarker on the whole photo, then on the photo zoomed out (set in
   a black frame twice its size: a head and shoulders filling a close-up are too large
   for its person detector), then on overlapping tiles half the photo's size (it misses
   people that are small in the frame; on ultralytics' bus.jpg the whole photo yields
   one of three people, the tiles all three). A person overlapping one already found
   is the same person. Then
   once more around each person found, with that person painted over: the pose model
   reads one person per region, so a person partly behind another is missed until the
   one in front is hidden.
2. Choose: with a box, the person found inside that box (the pose is searched on a
   crop around it); with ``all_people``, everyone; otherwise the most prominent person:
   the largest torso seen, ``torso size squared x mean visibility of the head,
   shoulders and hips`` (`prominence`). The torso, not the box: people at a table or
   cut by the frame show no legs, and a person nearer the camera is the one a photo is
   of; an upper body mostly hidden or out of frame counts less. Ties go to the leftmost.
   Everyone's box is kept in that order (``Detections.found_boxes``: person numbers),
   so another person can be picked without detecting again.
3. Second pass, per chosen person: pose and hands again on a crop around the person
   (the box plus 10%: a tight crop keeps neighbours out of the pose detector's view; the
   other people found are painted over where they are not on this person, or their limbs
   inside the crop become this person's, `hide_neighbours`),
   hands once more on a crop around each wrist, and the face on a crop around the head.
   Hands and faces are too small on whole photos for their detectors (bus.jpg: no hand,
   no face on the whole photo). The pose is looked for once more on the person's crop
   mirrored: where that look has the person facing the other way, the person carries
   both readings (`Person.other_facing`) and the fit keeps the one it fits better.
4. Whose hand, whose face: the hands and faces of every crop go to the people whose
   wrists and heads they fit, everyone at once (:mod:`.association`); the people found
   but not chosen take part, so a neighbour's hand near the chosen person's wrist
   stays the neighbour's.

The MediaPipe calls of a step that do not wait on each other (the whole photo and its
tiles, the looks behind each person, each person's crops) run side by side on the
detector's lanes (`Detector.run_all`), with the same results as one by one.

Each person also keeps the pose model's world landmarks, its 3D reading of the 33 pose
points in metres about the hips (`Person.world_landmarks`), from the same look as the
pose's image points.

Left and right are the person's own, for body and hands alike. With HandLandmarker on
unmirrored photos the handedness label is the person's own side (on bus.jpg the man
holding a phone crosses his left arm to his right shoulder: labels and pose elbows
agree); the legacy Holistic API mirrored it.
Coordinates are original-photo pixels (x right, y down, from the top-left corner).
"""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from .association import (
    ARM,
    HEAD,
    LEFT_HIP,
    LEFT_SHOULDER,
    NOSE,
    RIGHT_HIP,
    RIGHT_SHOULDER,
    SIDES,
    Hand,
    assign_faces,
    assign_hands,
    face_width,
    torso_size,
)
from .errors import KeypointError
from .images import LoadedImage
from .layouts import MEDIAPIPE_POSE_33
from .people import Detections, Person

MODEL_DIR = Path(__file__).resolve().parent.parent / "data" / "mediapipe"
POSE_MODEL = "pose_landmarker_full.task"
HAND_MODEL = "hand_landmarker.task"
FACE_MODEL = "face_landmarker.task"

# visibility above which a pose point counts as seen when boxing a person: the fit's own
_SEEN = MEDIAPIPE_POSE_33.min_confidence
# head, shoulders and hips: what `prominence` wants seen (legs hidden by a table do not count)
_UPPER_BODY = (*HEAD, LEFT_SHOULDER, RIGHT_SHOULDER, LEFT_HIP, RIGHT_HIP)
_MAX_PEOPLE_PER_PASS = 6
# BlazePose-33 bones of `person_outline`: the torso's sides, the limbs, hands and feet
_BONES = ((11, 12), (11, 23), (12, 24), (23, 24), (11, 13), (13, 15), (12, 14), (14, 16), (23, 25), (25, 27),
          (24, 26), (26, 28), (15, 19), (16, 20), (27, 31), (28, 32))  # fmt: skip
# BlazePose-33: each point's mirror image (the person's left and right swapped)
MEDIAPIPE_POSE_33_MIRROR = [0, 4, 5, 6, 1, 2, 3, 8, 7, 10, 9, 12, 11, 14, 13, 16, 15, 18, 17, 20, 19, 22, 21,
                            24, 23, 26, 25, 28, 27, 30, 29, 32, 31]  # fmt: skip
# Columns of a pose's world landmarks (see `Detector.poses`), after its x, y and visibility:
# metres from the point between the hips, camera-aligned (z away from the camera); a crop
# leaves them as they are, so they ride along with the image points.
WORLD = slice(3, 6)
_PERSON_CROP_SIZE = 512
_PART_CROP_SIZE = 256
_ZOOM_OUT_MARGIN = 0.5  # of the photo's size on every side: a close-up's person at half the size
# MediaPipe calls side by side (see Detector): a photo's tiles and crops take about half
# the time on two cores; each lane's models take about 140 MB more.
DEFAULT_LANES = 2
T = TypeVar("T")


@dataclass(frozen=True)
class Crop:
    """A region of the working image starting at (x0, y0), resampled so that its long
    side has `size` pixels."""

    x0: float
    y0: float
    width: float
    height: float
    size: int

    @property
    def scale(self) -> float:
        return self.size / max(self.width, self.height)

    @property
    def out_size(self) -> tuple[int, int]:
        return max(1, round(self.width * self.scale)), max(1, round(self.height * self.scale))

    def to_image(self, points: np.ndarray) -> np.ndarray:
        """Crop-normalised (x, y, ...) rows -> working-image pixels, other columns kept."""
        out_width, out_height = self.out_size
        result = points.astype(np.float64).copy()
        result[:, 0] = self.x0 + points[:, 0] * out_width / self.scale
        result[:, 1] = self.y0 + points[:, 1] * out_height / self.scale
        return result


def square_crop(center: np.ndarray, side: float, size: int) -> Crop:
    return Crop(float(center[0] - side / 2), float(center[1] - side / 2), float(side), float(side), size)


def box_crop(box: np.ndarray, margin: float, size: int) -> Crop:
    """The box grown by `margin` of its size on every side."""
    width, height = max(box[2] - box[0], 1.0), max(box[3] - box[1], 1.0)
    return Crop(
        float(box[0] - margin * width), float(box[1] - margin * height),
        float((1 + 2 * margin) * width), float((1 + 2 * margin) * height), size,
    )  # fmt: skip


def cut(pixels: np.ndarray, crop: Crop) -> np.ndarray:
    """The crop's pixels; outside the image is black."""
    import cv2

    scale = crop.scale
    # pixel-centre convention of warpAffine: u + 0.5 = scale * (x + 0.5 - x0)
    matrix = np.array(
        [[scale, 0.0, scale * (0.5 - crop.x0) - 0.5], [0.0, scale, scale * (0.5 - crop.y0) - 0.5]]
    )
    return cv2.warpAffine(
        pixels, matrix, crop.out_size, flags=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0),
    )  # fmt: skip


def person_side(handedness_label: str) -> str:
    """HandLandmarker's handedness label ("Left"/"Right") -> the person's own side."""
    return handedness_label.lower()


class Detector:
    """The three MediaPipe landmarkers, created once per lane; use as a context manager.

    Each method takes an RGB uint8 image and returns normalised coordinates
    (x, y in [0, 1] of that image's width and height) with a confidence column. A call
    takes whichever lane is free: MediaPipe runs one call on one core and lets go of
    Python meanwhile, so `run_all` keeps `lanes` calls going at once (by default
    DEFAULT_LANES, at most one per core). Every lane holds the same models, so the results
    do not depend on which lane ran a call.
    """

    def __init__(self, model_dir: Path = MODEL_DIR, lanes: int | None = None):
        paths = [model_dir / name for name in (POSE_MODEL, HAND_MODEL, FACE_MODEL)]
        missing = [path.name for path in paths if not path.is_file()]
        if missing:
            raise KeypointError(
                f"detector models missing in {model_dir}: {', '.join(missing)}. "
                "Run `python3 build.py setup` once to install them."
            )
        import mediapipe

        self.version = mediapipe.__version__
        lanes = min(DEFAULT_LANES, os.cpu_count() or 1) if lanes is None else max(1, lanes)
        self._pool = ThreadPoolExecutor(lanes, "detector", _mark_lane_thread) if lanes > 1 else None
        try:
            # The lanes open side by side too: a fit without a warm worker opens them every time.
            self._lanes = self.run_all([partial(_Landmarkers.open, *paths)] * lanes)
        except BaseException:
            if self._pool is not None:
                self._pool.shutdown()
            raise
        self._free: queue.SimpleQueue[_Landmarkers] = queue.SimpleQueue()
        for lane in self._lanes:
            self._free.put(lane)

    def __enter__(self) -> Detector:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def close(self) -> None:
        if self._pool is not None:  # calls not yet started (an interrupted detection's) are dropped
            self._pool.shutdown(cancel_futures=True)
        for lane in self._lanes:
            lane.close()

    def run_all(self, calls: Sequence[Callable[[], T]]) -> list[T]:
        """Each call's result, in order; the calls run side by side, one per lane. Called
        from inside one of those calls it runs them one by one (the lanes are taken)."""
        if self._pool is None or len(calls) < 2 or getattr(_LANE_THREAD, "inside", False):
            return [call() for call in calls]
        return list(self._pool.map(lambda call: call(), calls))

    def poses(self, rgb: np.ndarray) -> list[np.ndarray]:
        """(33, 6) arrays: x, y, visibility, then the pose's world landmark x, y, z (`WORLD`)."""
        result = self._detect("pose", rgb)
        return [
            np.array([(p.x, p.y, p.visibility, w.x, w.y, w.z) for p, w in zip(pose, world, strict=True)])
            for pose, world in zip(result.pose_landmarks, result.pose_world_landmarks, strict=True)
        ]

    def hands(self, rgb: np.ndarray) -> list[Hand]:
        """Hands with (21, 3) points: x, y and the handedness score for every point."""
        result = self._detect("hand", rgb)
        return [
            Hand(np.array([(p.x, p.y, labels[0].score) for p in hand]), person_side(labels[0].category_name))
            for hand, labels in zip(result.hand_landmarks, result.handedness, strict=True)
        ]

    def faces(self, rgb: np.ndarray) -> list[np.ndarray]:
        """(478, 3) arrays: x, y and 1.0 (the face model gives no per-point score)."""
        result = self._detect("face", rgb)
        return [np.array([(p.x, p.y, 1.0) for p in face]) for face in result.face_landmarks]

    def _detect(self, model: str, rgb: np.ndarray):
        lane = self._free.get()  # a landmarker serves one call at a time
        try:
            return getattr(lane, model).detect(_mp_image(rgb))
        finally:
            self._free.put(lane)


@dataclass(frozen=True)
class _Landmarkers:
    """One lane of `Detector`: a pose, a hand and a face landmarker (IMAGE mode)."""

    pose: Any
    hand: Any
    face: Any

    @staticmethod
    def open(pose_path: Path, hand_path: Path, face_path: Path) -> _Landmarkers:
        from mediapipe.tasks.python import BaseOptions, vision

        def options(kind, path: Path, **counts: int):
            return kind(base_options=BaseOptions(model_asset_path=str(path)),
                        running_mode=vision.RunningMode.IMAGE, **counts)  # fmt: skip

        return _Landmarkers(
            vision.PoseLandmarker.create_from_options(
                options(vision.PoseLandmarkerOptions, pose_path, num_poses=_MAX_PEOPLE_PER_PASS)
            ),
            vision.HandLandmarker.create_from_options(
                options(vision.HandLandmarkerOptions, hand_path, num_hands=2)
            ),
            vision.FaceLandmarker.create_from_options(
                options(vision.FaceLandmarkerOptions, face_path, num_faces=1)
            ),
        )

    def close(self) -> None:
        for landmarker in (self.pose, self.hand, self.face):
            landmarker.close()


_LANE_THREAD = threading.local()


def _mark_lane_thread() -> None:
    _LANE_THREAD.inside = True


def _mp_image(rgb: np.ndarray):
    import mediapipe as mp

    return mp.Image(image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(rgb))


def detect(
    image: LoadedImage,
    detector: Detector,
    box: tuple[float, float, float, float] | None = None,
    all_people: bool = False,
    two_pass: bool = True,
) -> Detections:
    """People of `image` with their pose, hand and face keypoint sets (see module doc).

    `box` is (x0, y0, x1, y1) in original-photo pixels. ``two_pass=False`` runs each
    model once on the whole photo and skips the tiles and crops (for comparison).
    Raises :class:`KeypointError` when no person is found.
    """
    pixels = image.pixels
    if box is not None:
        _check_box(box, image.original_size)
        working_box = np.asarray(box, dtype=np.float64) * image.scale
        found_boxes = []
        poses = [pose_in_box(pixels, detector, working_box)]
        boxes, others = [working_box], []
    else:
        everyone = find_people(pixels, detector, use_tiles=two_pass)  # most prominent first
        working_boxes = [person_box(pose, pixels.shape) for pose in everyone]
        found_boxes = [tuple(float(v) / image.scale for v in box) for box in working_boxes]
        poses = everyone if all_people else everyone[:1]
        boxes, others = working_boxes[: len(poses)], everyone[len(poses) :]
    poses = [pose for pose in poses if pose is not None]
    if not poses:
        where = "inside the given box" if box is not None else "in the photo"
        raise KeypointError(
            f"no person found {where} ({image.path}). Use a photo where the person's head and "
            "shoulders are visible, or give a box around the person (--box X0 Y0 X1 Y1)."
        )
    if two_pass:
        everyone = [*poses, *others]
        looks = detector.run_all(
            [partial(_look_closer_alone, pixels, detector, pose, everyone) for pose in poses]
        )
        hands = [hand for look in looks for hand in look.hands]
        faces = [face for look in looks for face in look.faces]
        people = people_with_parts([look.pose for look in looks], boxes, hands, faces, others)
        for index, (person, look) in enumerate(zip(people, looks, strict=True)):
            if look.other_facing is not None:
                rest = [other.pose for other in looks[:index] + looks[index + 1 :]]
                (person.other_facing,) = people_with_parts(
                    [look.other_facing], [boxes[index]], hands, faces, [*rest, *others]
                )
    else:
        people = single_pass_people(pixels, detector, poses, boxes)
    return Detections(
        image_path=image.path,
        image_size=image.original_size,
        people=[_to_original_pixels(person, image.scale) for person in people],
        detector=f"mediapipe {detector.version} " + ("two-pass" if two_pass else "single-pass"),
        focal_length_px=image.focal_length_px,
        found_boxes=found_boxes,
    )


def _check_box(box: tuple[float, float, float, float], size: tuple[int, int]) -> None:
    x0, y0, x1, y1 = box
    if not (x0 < x1 and y0 < y1 and x1 > 0 and y1 > 0 and x0 < size[0] and y0 < size[1]):
        raise KeypointError(
            f"the box {list(box)} is empty or outside the {size[0]}x{size[1]} photo. Give it as "
            "X0 Y0 X1 Y1 in photo pixels: left, top, right, bottom, with X0 < X1 and Y0 < Y1."
        )


def find_people(
    pixels: np.ndarray, detector: Detector, use_tiles: bool = True, look_behind: bool = True
) -> list[np.ndarray]:
    """Poses (working pixels) of everyone found, most prominent first; `look_behind`: also
    around each person with that person painted over (see the module doc)."""
    height, width = pixels.shape[:2]
    crops = []
    if use_tiles:
        zoomed_out = box_crop(np.array([0.0, 0.0, width, height]), _ZOOM_OUT_MARGIN, _PERSON_CROP_SIZE)
        crops = [zoomed_out, *_tiles(width, height)]
    whole, *on_crops = detector.run_all(
        [partial(detector.poses, pixels), *(partial(_poses_on, pixels, detector, crop) for crop in crops)]
    )
    found = [_from_normalised(pose, width, height) for pose in whole]
    for crop, poses in zip(crops, on_crops, strict=True):
        _add_new_people(found, poses, crop, pixels.shape)
    if use_tiles and look_behind:
        behind = [(known, box_crop(person_box(known, pixels.shape), 0.3, _PERSON_CROP_SIZE))
                  for known in found]  # fmt: skip
        looks = detector.run_all([partial(_poses_behind, pixels, detector, *look) for look in behind])
        for (_, crop), poses in zip(behind, looks, strict=True):
            _add_new_people(found, poses, crop, pixels.shape)
    return sorted(found, key=lambda pose: (-prominence(pose), float(pose[:, 0].mean())))


def _poses_on(pixels: np.ndarray, detector: Detector, crop: Crop) -> list[np.ndarray]:
    return detector.poses(cut(pixels, crop))


def _poses_behind(pixels: np.ndarray, detector: Detector, known: np.ndarray, crop: Crop) -> list[np.ndarray]:
    """The poses on `crop` with the person of `known` painted over."""
    return _poses_on(hide_person(pixels, known), detector, crop)


def _add_new_people(
    found: list[np.ndarray], poses: list[np.ndarray], crop: Crop, shape: tuple[int, ...]
) -> None:
    """Appends to `found` the poses (crop-normalised) found on `crop` that are no one
    already found."""
    for pose in poses:
        candidate = crop.to_image(pose)
        if not any(_same_person(candidate, known, shape) for known in found):
            found.append(candidate)


def hide_person(pixels: np.ndarray, pose: np.ndarray) -> np.ndarray:
    """The image (H, W, 3) with the person of `pose` (33, 3+: x, y, visibility first)
    painted over in its mean colour (limbs, torso and head where seen), so that a person
    behind them can be found."""
    return _painted_over(pixels, person_outline(pixels.shape, pose))


def hide_neighbours(pixels: np.ndarray, pose: np.ndarray, everyone: Sequence[np.ndarray]) -> np.ndarray:
    """The image with the other people of `everyone` painted over in its mean colour, except
    where this person's own outline lies, so that a closer look at this person does not read
    a neighbour's limbs as theirs. Readings under half this person's torso size (a hand or a
    head read as a tiny person) are left as they are: painting them would cut into the body."""
    size = torso_size(pose)
    neighbours = [other for other in everyone if other is not pose and torso_size(other) >= 0.5 * size]
    if not neighbours:
        return pixels
    covered = np.logical_or.reduce([person_outline(pixels.shape, other) for other in neighbours])
    covered &= ~person_outline(pixels.shape, pose)
    return _painted_over(pixels, covered)


def person_outline(shape: tuple[int, ...], pose: np.ndarray) -> np.ndarray:
    """(H, W) bool: where the person of `pose` (33, 3+) is, roughly: their seen limbs as strokes
    a third of the torso wide, the torso, and the head as a disc."""
    import cv2

    outline = np.zeros(shape[:2], dtype=np.uint8)
    width = max(int(0.35 * torso_size(pose)), 2)
    seen = pose[:, 2] > _SEEN
    for a, b in _BONES:
        if seen[a] and seen[b]:
            start, end = (tuple(int(v) for v in pose[k, :2]) for k in (a, b))
            cv2.line(outline, start, end, 1, width)
    torso = [LEFT_SHOULDER, RIGHT_SHOULDER, RIGHT_HIP, LEFT_HIP]
    if seen[torso].all():
        cv2.fillPoly(outline, [pose[torso, :2].astype(np.int32)], 1)
    if seen[list(HEAD)].any():
        centre = pose[list(HEAD), :2][seen[list(HEAD)]].mean(0)
        cv2.circle(outline, tuple(int(v) for v in centre), int(0.6 * face_width(pose)), 1, -1)
    return outline.astype(bool)


def _painted_over(pixels: np.ndarray, where: np.ndarray) -> np.ndarray:
    """A copy of the image (H, W, 3) with the pixels `where` (H, W) in its mean colour."""
    painted = pixels.copy()
    painted[where] = pixels.reshape(-1, pixels.shape[-1]).mean(0).astype(pixels.dtype)
    return painted


def _tiles(width: int, height: int) -> list[Crop]:
    """Square tiles of half the long side, overlapping by half, covering the image."""
    side = max(width, height) / 2
    columns = _tile_starts(width, side)
    rows = _tile_starts(height, side)
    size = int(np.clip(round(side), _PART_CROP_SIZE, 2 * _PERSON_CROP_SIZE))  # no needless resampling
    return [Crop(x0, y0, side, side, size) for y0 in rows for x0 in columns]


def _tile_starts(length: float, side: float) -> list[float]:
    if length <= side:
        return [(length - side) / 2]
    count = int(np.ceil(2 * length / side)) - 1
    return list(np.linspace(0.0, length - side, count))


def prominence(pose: np.ndarray) -> float:
    """The default choice's rule: the torso's size squared times the mean visibility of
    the head, shoulders and hips (see the module doc)."""
    return torso_size(pose) ** 2 * float(pose[list(_UPPER_BODY), 2].mean())


def person_box(pose: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Box of the seen pose points padded by 10%, raised to the top of the head (about a
    face width above the eyes), clipped to the image."""
    seen = pose[pose[:, 2] > _SEEN] if (pose[:, 2] > _SEEN).sum() >= 2 else pose
    low, high = seen[:, :2].min(axis=0), seen[:, :2].max(axis=0)
    low[1] = min(low[1], pose[list(HEAD), 1].min() - face_width(pose))
    pad = 0.1 * (high - low).max()
    height, width = shape[:2]
    return np.array(
        [max(low[0] - pad, 0), max(low[1] - pad, 0), min(high[0] + pad, width), min(high[1] + pad, height)]
    )


def _same_person(pose_a: np.ndarray, pose_b: np.ndarray, shape: tuple[int, ...]) -> bool:
    """Boxes overlapping by more than half of the smaller one, or heads at one place."""
    box_a, box_b = person_box(pose_a, shape), person_box(pose_b, shape)
    overlap = _intersection(box_a, box_b) / max(min(_area(box_a), _area(box_b)), 1e-9)
    shoulders = np.linalg.norm(pose_b[LEFT_SHOULDER, :2] - pose_b[RIGHT_SHOULDER, :2])
    return overlap > 0.5 or np.linalg.norm(pose_a[NOSE, :2] - pose_b[NOSE, :2]) < 0.5 * shoulders


def _area(box: np.ndarray) -> float:
    return float(max(box[2] - box[0], 0) * max(box[3] - box[1], 0))


def _intersection(box_a: np.ndarray, box_b: np.ndarray) -> float:
    return _area(np.array([*np.maximum(box_a[:2], box_b[:2]), *np.minimum(box_a[2:], box_b[2:])]))


def pose_in_box(
    pixels: np.ndarray, detector: Detector, box: np.ndarray, mirrored: bool = False
) -> np.ndarray | None:
    """The pose of the person in `box` (working pixels): found on the box plus 10%
    (`mirrored`: on that crop mirrored left to right, sides swapped back), the one whose
    box overlaps the given box best (intersection over union)."""
    crop = box_crop(box, 0.1, _PERSON_CROP_SIZE)
    pixels_in_crop = cut(pixels, crop)
    if mirrored:
        found = [_unmirror(pose) for pose in detector.poses(pixels_in_crop[:, ::-1])]
    else:
        found = detector.poses(pixels_in_crop)
    poses = [crop.to_image(pose) for pose in found]
    overlaps = [_iou(person_box(pose, pixels.shape), box) for pose in poses]
    if not poses or max(overlaps) <= 0:
        return None
    return poses[int(np.argmax(overlaps))]


def _iou(box_a: np.ndarray, box_b: np.ndarray) -> float:
    shared = _intersection(box_a, box_b)
    return shared / max(_area(box_a) + _area(box_b) - shared, 1e-9)


@dataclass(frozen=True)
class CloseLook:
    """A person's pose refined on a crop around them, with the hands and faces found on
    crops around their parts (whose they are is decided for everyone at once)."""

    pose: np.ndarray
    hands: list[Hand]
    faces: list[np.ndarray]
    other_facing: np.ndarray | None = None  # see `other_facing`


def look_closer(
    pixels: np.ndarray, detector: Detector, pose: np.ndarray, both_facings: bool = True
) -> CloseLook:
    """Second pass: pose and hands on a crop around the person (with `both_facings`, the
    pose once more on that crop mirrored, see `other_facing`), hands again on a crop
    around each wrist, the face on a crop around the head."""
    refined = pose_in_box(pixels, detector, person_box(pose, pixels.shape))
    if refined is not None and _same_person(refined, pose, pixels.shape):
        pose = refined
    crops = [box_crop(person_box(pose, pixels.shape), 0.1, _PERSON_CROP_SIZE)]
    crops += [hand_crop(pose, side) for side in SIDES]
    head = face_crop(pose)
    calls = [partial(_hands_on, pixels, detector, crop) for crop in crops]
    calls.append(partial(_faces_on, pixels, detector, head))
    if both_facings:
        calls.append(partial(other_facing, pixels, detector, pose))
    found = detector.run_all(calls)
    hands = [hand for on_crop in found[: len(crops)] for hand in on_crop]
    facing = found[len(crops) + 1] if both_facings else None
    return CloseLook(pose, hands, found[len(crops)], facing)


def _look_closer_alone(pixels: np.ndarray, detector: Detector, pose: np.ndarray,
                       everyone: Sequence[np.ndarray]) -> CloseLook:  # fmt: skip
    """`look_closer` at the person of `pose` with the others of `everyone` painted over."""
    return look_closer(hide_neighbours(pixels, pose, everyone), detector, pose)


def _hands_on(pixels: np.ndarray, detector: Detector, crop: Crop) -> list[Hand]:
    return [_hand_in_image(hand, crop) for hand in detector.hands(cut(pixels, crop))]


def _faces_on(pixels: np.ndarray, detector: Detector, crop: Crop) -> list[np.ndarray]:
    return [crop.to_image(face) for face in detector.faces(cut(pixels, crop))]


def other_facing(pixels: np.ndarray, detector: Detector, pose: np.ndarray) -> np.ndarray | None:
    """The pose found on the person's crop mirrored left to right (sides swapped back),
    when it has the person facing the other way than `pose` does, else None.

    Front and back views of a body outline look alike: the pose model then labels the
    sides by a guess, and a mirrored crop can make the other guess. The fit tries both
    and keeps the one it fits better (`Person.other_facing`)."""
    other = pose_in_box(pixels, detector, person_box(pose, pixels.shape), mirrored=True)
    if other is None or not _same_person(pose, other, pixels.shape) or not _sides_swapped(pose, other):
        return None
    return other


def _unmirror(pose: np.ndarray) -> np.ndarray:
    """A pose (33, 6) found on a left-right mirrored crop, crop-normalised, back on the
    crop: x mirrored (the world landmarks' x too), the person's left and right points swapped."""
    result = pose[MEDIAPIPE_POSE_33_MIRROR].copy()
    result[:, 0] = 1.0 - result[:, 0]
    result[:, WORLD.start] = -result[:, WORLD.start]
    return result


def _sides_swapped(pose: np.ndarray, other: np.ndarray) -> bool:
    """Whether `other`'s body points (shoulders down) lie nearer `pose`'s with its left and
    right swapped than as they are."""
    body = slice(LEFT_SHOULDER, None)
    as_is = np.linalg.norm(pose[body, :2] - other[body, :2], axis=1).mean()
    swapped = np.linalg.norm(pose[body, :2] - other[MEDIAPIPE_POSE_33_MIRROR][body, :2], axis=1).mean()
    return bool(swapped < as_is)


def refine_person(
    pixels: np.ndarray,
    detector: Detector,
    pose: np.ndarray,
    box: np.ndarray,
    others: Sequence[np.ndarray] = (),
) -> Person:
    """One person seen closer (`look_closer`, one facing: a clip's fit starts from the
    frame before); the poses of `others` found in the photo may claim a hand or the face
    found near this person (see `association`)."""
    look = look_closer(pixels, detector, pose, both_facings=False)
    return people_with_parts([look.pose], [box], look.hands, look.faces, others)[0]


def single_pass_people(
    pixels: np.ndarray, detector: Detector, poses: list[np.ndarray], boxes: list[np.ndarray]
) -> list[Person]:
    """Hands and faces from one run of each model on the whole image, given to the
    people whose wrists and heads they fit."""
    height, width = pixels.shape[:2]
    hands = [Hand(_from_normalised(hand.points, width, height), hand.side) for hand in detector.hands(pixels)]
    faces = [_from_normalised(face, width, height) for face in detector.faces(pixels)]
    return people_with_parts(poses, boxes, hands, faces)


def people_with_parts(
    poses: Sequence[np.ndarray],
    boxes: Sequence[np.ndarray],
    hands: Sequence[Hand],
    faces: Sequence[np.ndarray],
    others: Sequence[np.ndarray] = (),
) -> list[Person]:
    """A Person per pose (33, 6) and box, with the hands and faces that association
    gives it among these poses and `others` (people found but not kept)."""
    everyone = [*poses, *others]
    hands_of, faces_of = assign_hands(everyone, hands), assign_faces(everyone, faces)
    people = []
    kept = len(poses)
    for pose, box, own_hands, face in zip(poses, boxes, hands_of[:kept], faces_of[:kept], strict=True):
        person = Person(box=tuple(float(v) for v in box), keypoint_sets={"mediapipe_pose_33": pose[:, :3]},
                        world_landmarks=pose[:, WORLD].copy())  # fmt: skip
        person.score = float(pose[:, 2].mean())
        for side, hand in own_hands.items():
            person.keypoint_sets[f"hand_21_{side}"] = hand
        if face is not None:
            person.keypoint_sets["mediapipe_face_478"] = face
        people.append(person)
    return people


def _from_normalised(points: np.ndarray, width: float, height: float) -> np.ndarray:
    result = points.astype(np.float64).copy()
    result[:, 0] *= width
    result[:, 1] *= height
    return result


def _hand_in_image(hand: Hand, crop: Crop) -> Hand:
    return Hand(crop.to_image(hand.points), hand.side)


def _forearm(pose: np.ndarray, side: str) -> float:
    _, elbow, wrist, *_ = ARM[side]
    shoulder_width = np.linalg.norm(pose[LEFT_SHOULDER, :2] - pose[RIGHT_SHOULDER, :2])
    # a forearm seen end-on is short in the image: the shoulders bound the hand size
    return max(float(np.linalg.norm(pose[elbow, :2] - pose[wrist, :2])), 0.6 * float(shoulder_width), 1.0)


def hand_crop(pose: np.ndarray, side: str) -> Crop:
    """Square around the hand: centred between the wrist and the knuckles the pose gives,
    about twice the hand's length (a forearm ~ 1.3 hand lengths)."""
    _, _, wrist, pinky, index, thumb = ARM[side]
    knuckles = pose[[pinky, index, thumb], :2].mean(axis=0)
    center = pose[wrist, :2] + 0.5 * (knuckles - pose[wrist, :2])
    return square_crop(center, 1.6 * _forearm(pose, side), _PART_CROP_SIZE)


def face_crop(pose: np.ndarray) -> Crop:
    """Square around the head, about twice the face's width."""
    return square_crop(pose[list(HEAD), :2].mean(axis=0), 2.2 * face_width(pose), _PART_CROP_SIZE)


def _to_original_pixels(person: Person, scale: float) -> Person:
    sets = {}
    for name, points in person.keypoint_sets.items():
        scaled = points.copy()
        scaled[:, :2] /= scale
        sets[name] = scaled
    box = tuple(float(v) / scale for v in person.box)
    other = None if person.other_facing is None else _to_original_pixels(person.other_facing, scale)
    return Person(box=box, keypoint_sets=sets, score=person.score, other_facing=other,
                  world_landmarks=person.world_landmarks)  # fmt: skip
