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
                       "mediapipe_face_478": [...]}}
      ]
    }

Coordinates are pixels of the upright photo (EXIF orientation applied) from the top-left
corner, x to the right and y down; confidence is in [0, 1], 0 where nothing was seen.
Each key of ``keypoints`` is a layout of :mod:`.layouts`, which says what its points are.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..atomic_files import write_text
from .errors import KeypointFileError
from .layouts import LAYOUTS
from .people import Detections, Person, body_keypoints, box_of_points

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
        "people": [
            {
                "box": [round(float(v), 3) for v in person.box],
                "score": round(float(person.score), 4),
                "keypoints": {name: _rounded_rows(points) for name, points in person.keypoint_sets.items()},
            }
            for person in detections.people
        ],
    }
    write_text(path, json.dumps(document) + "\n")


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
    image = document.get("image", {})
    size = (int(image["width"]), int(image["height"])) if image.get("width") and image.get("height") else None
    people = []
    for person in document.get("people", []):
        sets = {name: _points(path, name, rows) for name, rows in person.get("keypoints", {}).items()}
        people.append(
            Person(
                box=tuple(float(v) for v in person["box"]), keypoint_sets=sets, score=person.get("score", 0.0)
            )
        )
    return Detections(
        image_path=str(image.get("path", "")),
        image_size=size,
        people=people,
        detector=str(document.get("detector", "")),
        focal_length_px=image.get("focal_length_px"),
    )


def _from_openpose_document(
    path: str | Path, document: dict, image_size: tuple[int, int] | None
) -> Detections:
    people = []
    for entry in document["people"]:
        sets = {}
        for key, set_name in _OPENPOSE_SETS.items():
            values = entry.get(key) or []
            if values:
                sets[set_name] = _points(path, set_name, np.asarray(values, dtype=np.float64).reshape(-1, 3))
        if "openpose_body_25" not in sets:
            raise KeypointFileError(f"{path}: a person has no pose_keypoints_2d; OpenPose BODY_25 is needed.")
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
    entries = document["annotations"] if isinstance(document, dict) else document
    image_path = str(path)
    if isinstance(document, dict) and document.get("images"):
        first = document["images"][0]
        image_path = first.get("file_name", image_path)
        image_size = image_size or (int(first["width"]), int(first["height"]))
    people = [_person_from_sets({"coco_wholebody_133": _coco_points(path, entry)}) for entry in entries]
    return Detections(image_path, image_size, people, detector="COCO-WholeBody JSON")


def _coco_points(path: str | Path, entry: dict) -> np.ndarray:
    if "keypoint_scores" in entry:  # MMPose: positions and scores apart
        xy = np.asarray(entry["keypoints"], dtype=np.float64).reshape(-1, 2)
        return _points(path, "coco_wholebody_133", np.column_stack([xy, entry["keypoint_scores"]]))
    if "foot_kpts" in entry:  # annotation: visibility flag 0 (unlabelled), 1, 2
        parts = [
            np.asarray(entry.get(part) or [0.0] * 3 * count, dtype=np.float64) for part, count in _COCO_PARTS
        ]
        rows = np.concatenate(parts).reshape(-1, 3)
        rows[:, 2] = rows[:, 2] > 0
        return _points(path, "coco_wholebody_133", rows)
    return _points(
        path, "coco_wholebody_133", np.asarray(entry["keypoints"], dtype=np.float64).reshape(-1, 3)
    )


def _person_from_sets(sets: dict[str, np.ndarray]) -> Person:
    boxes = [box for box in (box_of_points(points) for points in sets.values()) if box is not None]
    if not boxes:
        return Person(box=(0.0, 0.0, 0.0, 0.0), keypoint_sets=sets)
    corners = np.array(boxes)
    box = (*corners[:, :2].min(axis=0), *corners[:, 2:].max(axis=0))
    return Person(box=tuple(float(v) for v in box), keypoint_sets=sets)


def _points(path: str | Path, set_name: str, rows: object) -> np.ndarray:
    """Validated (n, 3) float array for a set of a known layout."""
    if set_name not in LAYOUTS:
        raise KeypointFileError(f"{path}: unknown keypoint set '{set_name}'. Known: {', '.join(LAYOUTS)}.")
    points = np.asarray(rows, dtype=np.float64)
    expected = LAYOUTS[set_name].size
    if points.shape != (expected, 3) or not np.isfinite(points).all():
        raise KeypointFileError(
            f"{path}: set '{set_name}' must hold {expected} finite (x, y, confidence) rows, found shape "
            f"{points.shape}. The file is damaged or of another layout."
        )
    return points


def _rounded_rows(points: np.ndarray) -> list[list[float]]:
    return [[round(float(x), 3), round(float(y), 3), round(float(c), 4)] for x, y, c in points]


def _load_json(path: str | Path) -> object:
    path = Path(path)
    if not path.is_file():
        raise KeypointFileError(f"{path}: no such keypoint file. Check the path.")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise KeypointFileError(f"{path}: not valid JSON ({error}). Is it a keypoint file?") from None
