"""A picture of the detections drawn over the photo, to check them by eye."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..atomic_files import write_bytes
from .errors import ImageError
from .layouts import LAYOUTS
from .people import Detections

# RGB colour per keypoint set: the person's left in warm, right in cool colours
_COLOURS = {
    "mediapipe_pose_33": (255, 255, 255),
    "openpose_body_25": (255, 255, 255),
    "coco_wholebody_133": (255, 255, 255),
    "hand_21_left": (255, 80, 0),
    "hand_21_right": (0, 160, 255),
    "mediapipe_face_478": (0, 230, 0),
    "openpose_face_70": (0, 230, 0),
}
_BODY_SETS = ("mediapipe_pose_33", "openpose_body_25", "coco_wholebody_133")
_BOX_COLOUR = (255, 220, 0)
_OUTLINE = (0, 0, 0)
# Limbs drawn between body points (body-model names) so a wrong pose shows at a glance.
_BODY_LINES = (
    ("left_shoulder", "right_shoulder"), ("left_hip", "right_hip"),
    ("left_shoulder", "left_hip"), ("right_shoulder", "right_hip"),
    ("left_shoulder", "left_elbow"), ("left_elbow", "left_wrist"),
    ("right_shoulder", "right_elbow"), ("right_elbow", "right_wrist"),
    ("left_hip", "left_knee"), ("left_knee", "left_ankle"),
    ("right_hip", "right_knee"), ("right_knee", "right_ankle"),
)  # fmt: skip


def draw_overlay(pixels: np.ndarray, detections: Detections, min_confidence: float = 0.3) -> np.ndarray:
    """Copy of the upright photo (RGB, any working scale) with the boxes and the points
    the fit uses (those its layout maps to a body-model name) drawn."""
    import cv2

    canvas = pixels.copy()
    scale = canvas.shape[1] / detections.image_size[0] if detections.image_size else 1.0
    radius = max(1, round(max(canvas.shape[:2]) / 400))
    # Every person found, numbered as the fit's person choice counts them.
    for number, box in enumerate(detections.found_boxes or [person.box for person in detections.people], 1):
        _numbered_box(canvas, [round(v * scale) for v in box], number, radius)
    for person in detections.people:
        for set_name, points in person.keypoint_sets.items():
            seen = {
                name: (round(points[index, 0] * scale), round(points[index, 1] * scale))
                for index, name, _ in LAYOUTS[set_name].mapping
                if points[index, 2] >= min_confidence
            }
            lines = _BODY_LINES if set_name in _BODY_SETS else ()
            for start, end in lines:
                if start in seen and end in seen:
                    cv2.line(canvas, seen[start], seen[end], _COLOURS[set_name], radius, cv2.LINE_AA)
            for centre in seen.values():
                cv2.circle(canvas, centre, radius + 1, _OUTLINE, -1, lineType=cv2.LINE_AA)
                cv2.circle(canvas, centre, radius, _COLOURS[set_name], -1, lineType=cv2.LINE_AA)
    return canvas


def _numbered_box(canvas: np.ndarray, box: list[int], number: int, thickness: int) -> None:
    import cv2

    x0, y0, x1, y1 = box
    cv2.rectangle(canvas, (x0, y0), (x1, y1), _BOX_COLOUR, thickness)
    text, font, size = str(number), cv2.FONT_HERSHEY_SIMPLEX, 0.6 * thickness + 0.4
    (width, height), _ = cv2.getTextSize(text, font, size, thickness + 1)
    corner = (x0 + 2 * thickness, y0 + 2 * thickness)
    cv2.rectangle(canvas, corner, (corner[0] + width + 4 * thickness, corner[1] + height + 4 * thickness),
                  _BOX_COLOUR, -1)  # fmt: skip
    baseline = (corner[0] + 2 * thickness, corner[1] + height + 2 * thickness)
    cv2.putText(canvas, text, baseline, font, size, _OUTLINE, thickness + 1, cv2.LINE_AA)


def write_overlay(path: str | Path, pixels: np.ndarray, detections: Detections) -> None:
    """Write the drawing as a picture file of the type its name ends in (PNG, JPEG, ...)."""
    import cv2

    bgr = cv2.cvtColor(draw_overlay(pixels, detections), cv2.COLOR_RGB2BGR)
    try:
        encoded, data = cv2.imencode(Path(path).suffix, bgr)
    except cv2.error:
        encoded = False
    if not encoded:
        raise ImageError(f"could not write the overlay to {path}: give it a name that ends in .png or .jpg.")
    write_bytes(path, data.tobytes())
