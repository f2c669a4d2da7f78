"""Keypoint files: the project's own JSON format, OpenPose JSON, COCO-WholeBody JSON.

Every reader returns :class:`~.people.Detections` with the same :class:`~.people.Person`
structure as the detector, so the solver reads any of them through
:func:`~.people.body_keypoints` without knowing the format.

The project format (``"format": "smplx-capture-keypoints"``, version 1), readable with
nothing but ``json``::

    {
      "format": "smplx-capture-keypoints",
      "version": 1,
      "image": {"path": "photo.jpg", "width": 810, "height": 1080,
                "focal_length_px": null},
      "detector": "mediapipe 1.2.2 two-pass",
      "people": [
        {"box": [x0, y0, x1, y1], "score": 0.93,
         "keypoints": {"mediapipe_pose_33": [[x, y, confidence], ...],
                       "hand_21_left": [...], "hand_21_right": [...],
                       "mediapipe_face_478": [...]},
         "world_landmarks": [[x, y, z], ...]}
      ]
    }

Coordinates are pixels of the upright photo (EXIF orientation applied) from the top-left
corner, x to the right and y down; confidence is in [0, 1], 0 where nothing was seen.
Each key of ``keypoints`` is a layout of :mod:`.layouts`, which says what its points are.
``world_landmarks`` (optional) is the pose model's 3D reading of the 33 points of
``mediapipe_pose_33``, in metres from the point between the hips, x right, y down and z
away from the camera (see :class:`~.people.Person`).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from ..atomic_files import write_text
from ..json_fields import JsonFields, as_float, shown
from .errors import KeypointFileError
from .layouts import LAYOUTS
from .people import WORLD_LAYOUT, Detections, Person, body_keypoints, box_of_points

FORMAT_NAME = "smplx-capture-keypoints"
FORMAT_VERSION = 1

# OpenPose JSON keys -> our set names
_OPENPOSE_SETS = {
    "pose_keypoints_2d": "openpose_body_25",
    "hand_left_keypoints_2d": "hand_21_left",
    "hand_right_keypoints_2d": "hand_21_right",
    "face_keypoints_2d": "openpose_face_70",
}
# COCO-WholeBody annotation parts, in the order of the 133-point layout
_COCO_PARTS = (
    ("keypoints", 17),
    ("foot_kpts", 6),
    ("face_kpts", 68),
    ("lefthand_kpts", 21),
    ("righthand_kpts", 21),
)


def write_keypoints(path: str | Path, detections: Detections) -> None:
    """Write the project format (see module doc)."""
    document = {
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        "image": {
            "path": detections.image_path,
            "width": detections.image_size[0] if detections.image_size else None,
            "height": detections.image_size[1] if detections.image_size else None,
            "focal_length_px": detections.focal_length_px,
        },
        "detector": detections.detector,
        "people": [_project_entry(person) for person in detections.people],
    }
    write_text(path, json.dumps(document) + "\n")


def _project_entry(person: Person) -> dict:
    entry = {
        "box": [round(float(v), 3) for v in person.box],
        "score": round(float(person.score), 4),
        "keypoints": {name: _rounded_rows(points) for name, points in person.keypoint_sets.items()},
    }
    if person.world_landmarks is not None:
        entry["world_landmarks"] = [[round(float(v), 4) for v in point] for point in person.world_landmarks]
    return entry


def read_keypoints(path: str | Path, image_size: tuple[int, int] | None = None) -> Detections:
    """Read any supported keypoint file: the project format, OpenPose or COCO-WholeBody.

    `image_size` (width, height) fills in the size for formats that do not store it.
    """
    document = _load_json(path)
    if isinstance(document, dict) and document.get("format") == FORMAT_NAME:
        return _from_project_document(path, document)
    if isinstance(document, dict) and "people" in document:
        return _from_openpose_document(path, document, image_size)
    if _looks_like_coco(document):
        return _from_coco_document(path, document, image_size)
    raise KeypointFileError(
        f"{path}: not a keypoint file this add-on knows. Use its own format, OpenPose JSON "
        "(with 'people') or COCO-WholeBody JSON (133 keypoints per person)."
    )


def write_openpose(path: str | Path, detections: Detections) -> None:
    """Write OpenPose JSON (BODY_25, hands 21, face 70) from any source's people.

    Sets already in an OpenPose layout are written as they are. Other sets go through
    the body-model names: each OpenPose point gets the point of the name it stands for
    (unweighted confidence). OpenPose's MidHip and Neck, absent from MediaPipe and
    COCO, are the midpoints of the hips and of the shoulders when the source has no
    pelvis or neck of its own. Unseen points are written as 0, 0, 0.
    """
    from ..body_model.names import keypoint_index

    people = []
    for person in detections.people:
        named = _with_midpoints(body_keypoints(person, weighted=False), keypoint_index)
        entry = {"person_id": [-1]}
        for key, set_name in _OPENPOSE_SETS.items():
            rows = person.keypoint_sets.get(set_name)
            if rows is None:
                rows = np.zeros((LAYOUTS[set_name].size, 3))
                for index, name, _ in LAYOUTS[set_name].mapping:
                    rows[index] = named[keypoint_index(name)]
            rows = np.where(rows[:, 2:] > 0, rows, 0.0)
            entry[key] = [round(float(v), 3) for v in rows.ravel()]
        people.append(entry)
    write_text(path, json.dumps({"version": 1.3, "people": people}) + "\n")


def _with_midpoints(named: np.ndarray, keypoint_index) -> np.ndarray:
    named = named.copy()
    for middle, (first, second) in (
        ("pelvis", ("left_hip", "right_hip")),
        ("neck", ("left_shoulder", "right_shoulder")),
    ):
        a, b, m = named[keypoint_index(first)], named[keypoint_index(second)], keypoint_index(middle)
        if named[m, 2] == 0 and a[2] > 0 and b[2] > 0:
            named[m] = ((a[0] + b[0]) / 2, (a[1] + b[1]) / 2, min(a[2], b[2]))
    return named


def _from_project_document(path: str | Path, document: dict) -> Detections:
    if document.get("version") != FORMAT_VERSION:
        raise KeypointFileError(
            f"{path}: keypoint file version {document.get('version')}; this add-on reads version "
            f"{FORMAT_VERSION}. Run the detection again with this version."
        )
    check = _checks(path)
    image = check.mapping("image", document.get("image", {}))
    people = check.array("people", document.get("people", []))
    focal = image.get("focal_length_px")
    return Detections(
        image_path=_optional_text(check, "image.path", image.get("path")),
        image_size=_image_size(check, "image", image),
        people=[_project_person(check, f"people[{index}]", person) for index, person in enumerate(people)],
        detector=_optional_text(check, "detector", document.get("detector")),
        focal_length_px=None if focal is None else check.number("image.focal_length_px", focal, 1.0),
    )


def _project_person(check: JsonFields, where: str, person: object) -> Person:
    person = check.mapping(where, person)
    if "box" not in person:
        raise check.fail(where, "the field 'box' ([x0, y0, x1, y1] in pixels) is missing")
    sets = {}
    for name, rows in check.mapping(f"{where}.keypoints", person.get("keypoints", {})).items():
        set_where = f"{where}.keypoints.{name}"
        sets[name] = _points(check, set_where, name, _rows(check, set_where, rows))
    world = person.get("world_landmarks")
    return Person(
        box=_box(check, f"{where}.box", person["box"]),
        keypoint_sets=sets,
        score=check.number(f"{where}.score", person.get("score", 0.0), 0.0, 1.0),
        world_landmarks=None if world is None else _world_landmarks(check, f"{where}.world_landmarks", world),
    )


def _world_landmarks(check: JsonFields, where: str, rows: object) -> np.ndarray:
    """The (33, 3) world landmarks of `rows`, each [x, y, z] in metres, checked."""
    size = LAYOUTS[WORLD_LAYOUT].size
    rows = check.array(where, rows, size)
    values = _rows(check, where, rows, ("x", "y", "z"))
    return np.array(
        [check.number(f"{where}[{index // 3}]", value, -_MAX_METRES, _MAX_METRES)
         for index, value in enumerate(values)]
    ).reshape(size, 3)  # fmt: skip


def _from_openpose_document(
    path: str | Path, document: dict, image_size: tuple[int, int] | None
) -> Detections:
    check = _checks(path)
    people = []
    for index, entry in enumerate(check.array("people", document["people"])):
        where = f"people[{index}]"
        entry = check.mapping(where, entry)
        sets = {}
        for key, set_name in _OPENPOSE_SETS.items():
            values = entry.get(key) or []  # absent, null or empty: not detected
            if values:
                sets[set_name] = _points(check, f"{where}.{key}", set_name, values)
        if "openpose_body_25" not in sets:
            raise check.fail(where, "the person has no pose_keypoints_2d; OpenPose BODY_25 is needed")
        people.append(_person_from_sets(sets))
    return Detections(str(path), image_size, people, detector="OpenPose JSON")


def _looks_like_coco(document: object) -> bool:
    return (isinstance(document, dict) and "annotations" in document) or (
        isinstance(document, list)
        and all(isinstance(item, dict) and "keypoints" in item for item in document)
    )


def _from_coco_document(
    path: str | Path, document: dict | list, image_size: tuple[int, int] | None
) -> Detections:
    """COCO-WholeBody annotations ({"images", "annotations"} with the parts in separate
    fields), COCO results (a list with 133 x 3 flat "keypoints") or MMPose predictions
    (a list with "keypoints" [[x, y], ...] and "keypoint_scores")."""
    check = _checks(path)
    image_path, entries, prefix = str(path), document, ""
    if isinstance(document, dict):
        entries, prefix = check.array("annotations", document["annotations"]), "annotations"
        images = check.array("images", document.get("images") or [])
        if images:
            first = check.mapping("images[0]", images[0])
            image_path = _optional_text(check, "images[0].file_name", first.get("file_name")) or image_path
            image_size = image_size or _coco_image_size(check, first)
    people = []
    for index, entry in enumerate(entries):
        where = f"{prefix}[{index}]"
        points = _coco_points(check, where, check.mapping(where, entry))
        people.append(_person_from_sets({"coco_wholebody_133": points}))
    return Detections(image_path, image_size, people, detector="COCO-WholeBody JSON")


def _coco_image_size(check: JsonFields, image: dict) -> tuple[int, int]:
    for side in ("width", "height"):
        if image.get(side) is None:
            raise check.fail(
                "images[0]", f"the image's '{side}' is missing: add its width and height, or give the photo "
                "too (--image PHOTO)"
            )
    return _image_size(check, "images[0]", image)


def _coco_points(check: JsonFields, where: str, entry: dict) -> np.ndarray:
    if "keypoint_scores" in entry:  # MMPose: positions and scores apart
        xy = _rows(check, f"{where}.keypoints", entry.get("keypoints"), _AXES[:2])
        scores = check.array(f"{where}.keypoint_scores", entry["keypoint_scores"], len(xy) // 2)
        values = [value for k, score in enumerate(scores) for value in (xy[2 * k], xy[2 * k + 1], score)]
        return _points(check, where, "coco_wholebody_133", values, _SCORE)
    if "foot_kpts" in entry:  # annotation: visibility flag 0 (unlabelled), 1, 2
        values = []
        for part, count in _COCO_PARTS:
            given = entry.get(part) or [0.0] * 3 * count  # absent, null or empty: unlabelled
            values += check.array(f"{where}.{part}", given, 3 * count)
        return _points(check, where, "coco_wholebody_133", values, _FLAG)
    return _points(check, f"{where}.keypoints", "coco_wholebody_133", entry.get("keypoints"), _SCORE)


def _person_from_sets(sets: dict[str, np.ndarray]) -> Person:
    boxes = [box for box in (box_of_points(points) for points in sets.values()) if box is not None]
    if not boxes:
        return Person(box=(0.0, 0.0, 0.0, 0.0), keypoint_sets=sets)
    corners = np.array(boxes)
    box = (*corners[:, :2].min(axis=0), *corners[:, 2:].max(axis=0))
    return Person(box=tuple(float(v) for v in box), keypoint_sets=sets)


# --- checking what a file holds ------------------------------------------------------

_REMEDY = "Correct the file, or write it again with the tool that made it."
_MAX_PIXELS = 1e6  # no photo is a million pixels across: a coordinate or size beyond is damage
_MAX_METRES = 10.0  # no body point lies this far from the hips: a world landmark beyond is damage
_AXES = ("x", "y", "confidence")
# What a file's third value of a point is: a confidence in [0, 1]; a detector's score,
# which may run over 1 (RTMPose-based detectors such as RTMW and DWPose score a point by
# its SimCC peak: mmpose issues 2755 and 3122) and is read as at most 1; or COCO's
# visibility flag: 0 unlabelled, 1 labelled but hidden, 2 labelled and visible.
_CONFIDENCE, _SCORE, _FLAG = "confidence", "score", "visibility flag"
_MAX_SCORE = 2.0


def _checks(path: str | Path) -> JsonFields:
    return JsonFields(path, KeypointFileError, _REMEDY)


def _points(
    check: JsonFields, where: str, set_name: str, values: object, third: str = _CONFIDENCE
) -> np.ndarray:
    """The (n, 3) points of set `set_name` from `values`: x, y and the third value (see
    `third`) of one point after another, every one checked."""
    if set_name not in LAYOUTS:
        raise check.fail(where, f"unknown keypoint set '{set_name}'. Known: {', '.join(LAYOUTS)}")
    size = LAYOUTS[set_name].size
    values = check.array(where, values)
    if len(values) != 3 * size:
        raise check.fail(
            where, f"set '{set_name}' must hold {size} points of x, y and {third} ({3 * size} values), "
            f"found {len(values)} values; the file is damaged or of another layout"
        )  # fmt: skip
    numbers = [as_float(value) for value in values]
    for index, number in enumerate(numbers):
        if number is None:
            problem = f"{_AXES[index % 3]} must be a number, found {shown(values[index])}"
            raise check.fail(_point_where(where, set_name, index // 3), problem)
    points = np.array(numbers, dtype=np.float64).reshape(size, 3)
    for index, point in enumerate(points):
        problem = _point_problem(point, third)
        if problem:
            raise check.fail(_point_where(where, set_name, index), problem)
    if third == _FLAG:
        points[:, 2] = points[:, 2] > 0
    elif third == _SCORE:
        points[:, 2] = np.minimum(points[:, 2], 1.0)
    return points


def _point_problem(point: np.ndarray, third: str) -> str | None:
    """What is wrong with one (x, y, third value) point, or None."""
    for axis, value in zip(("x", "y", third), point, strict=True):
        if not math.isfinite(value):
            return f"{axis} is {shown(float(value))}, not a finite number"
    for axis, value in zip("xy", point[:2], strict=True):
        if abs(value) > _MAX_PIXELS:
            return f"{axis} = {value:g} pixels lies beyond any photo"
    value = point[2]
    if third == _FLAG:
        return None if value in (0.0, 1.0, 2.0) else f"the visibility flag {value:g} is not 0, 1 or 2"
    high = _MAX_SCORE if third == _SCORE else 1.0
    return None if 0.0 <= value <= high else f"the {third} {value:g} is outside [0, {high:g}]"


def _point_where(where: str, set_name: str, index: int) -> str:
    """`where` with the point named: its number in the layout and what it stands for."""
    names = [name for point, name, _ in LAYOUTS[set_name].mapping if point == index]
    return f"{where}, point {index}" + (f" ({names[0]})" if names else "")


def _rows(check: JsonFields, where: str, rows: object, axes: tuple[str, ...] = _AXES) -> list:
    """The values of `rows`, a list of [x, y, confidence] (or `axes`) lists, one after another."""
    values = []
    for index, row in enumerate(check.array(where, rows)):
        if not isinstance(row, list) or len(row) != len(axes):
            raise check.fail(f"{where}[{index}]", f"must be [{', '.join(axes)}], found {shown(row)}")
        values += row
    return values


def _box(check: JsonFields, where: str, value: object) -> tuple[float, float, float, float]:
    x0, y0, x1, y1 = check.numbers(where, value, 4, -_MAX_PIXELS, _MAX_PIXELS)
    if x1 < x0 or y1 < y0:
        raise check.fail(where, f"[x0, y0, x1, y1] must have x0 <= x1 and y0 <= y1, found {[x0, y0, x1, y1]}")
    return x0, y0, x1, y1


def _image_size(check: JsonFields, where: str, image: dict) -> tuple[int, int] | None:
    """(width, height) in pixels, or None when the file gives neither."""
    if image.get("width") is None and image.get("height") is None:
        return None
    return (
        check.whole(f"{where}.width", image.get("width"), 1, int(_MAX_PIXELS)),
        check.whole(f"{where}.height", image.get("height"), 1, int(_MAX_PIXELS)),
    )


def _optional_text(check: JsonFields, where: str, value: object) -> str:
    return "" if value is None else check.text(where, value)


def _rounded_rows(points: np.ndarray) -> list[list[float]]:
    return [[round(float(x), 3), round(float(y), 3), round(float(c), 4)] for x, y, c in points]


def _load_json(path: str | Path) -> object:
    path = Path(path)
    if not path.is_file():
        raise KeypointFileError(f"{path}: no such keypoint file. Check the path.")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    # ValueError: bad JSON, or an integer of over 4,300 digits; RecursionError: lists nested too deep
    except (UnicodeDecodeError, ValueError, RecursionError) as error:
        raise KeypointFileError(f"{path}: not valid JSON ({error}). Is it a keypoint file?") from None
