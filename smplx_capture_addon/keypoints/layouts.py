"""THE table of keypoint layouts: for each detector layout, which body-model keypoint
(a name of :data:`~smplx_capture_addon.body_model.names.KEYPOINT_NAMES_WITH_CONTOUR`)
each of its points stands for, and with what default weight.

Layouts and the sets that use them:

- ``mediapipe_pose_33``: MediaPipe PoseLandmarker (BlazePose, 33 points).
- ``hand_21_left`` / ``hand_21_right``: MediaPipe HandLandmarker and OpenPose hands
  share one 21-point order (wrist, then 4 points per finger from thumb to pinky).
- ``mediapipe_face_478``: MediaPipe FaceLandmarker mesh, of which 68 points stand for
  the iBUG-68 landmarks and the two iris centres for the eyes.
- ``openpose_body_25``, ``openpose_face_70``: OpenPose, the input of the reference
  SMPLify-X.
- ``coco_wholebody_133``: COCO-WholeBody (RTMW, DWPose, MMPose).
- ``smplx_keypoints_144``: the body model's own keypoints, in the order of
  ``KEYPOINT_NAMES_WITH_CONTOUR``, with the layouts' weights already in the confidence:
  what a fit used, as Blender's keypoint handles write it back for a re-fit.

Documented choices:

- Detector hips sit on the outside of the pelvis, near the top of the thigh bone,
  while SMPL-X hip joints lie inside the pelvis, higher and closer together. The
  reference SMPLify-X therefore ignores OpenPose's hips and trusts MidHip (= pelvis).
  Layouts without a mid-hip point (MediaPipe, COCO) would then lose the hips
  entirely, so every detector hip maps to the SMPL-X hip at weight 0.5: it still
  steers the legs without pulling the pelvis wide. OpenPose MidHip maps to the pelvis
  at weight 1.
- OpenPose Neck is the shoulder midpoint, lower than SMPL-X's neck joint: weight 0.5.
- MediaPipe pose "foot_index" (the toe tip) stands for the big toe; its
  pinky/index/thumb points are knuckles (pinky1, index1, thumb2) and are coarse,
  weight 0.5: the hand model's points take precedence when a hand was found.
- Hand points 1-3 of each finger are the SMPL-X finger joints 1-3 and point 4 is the
  finger tip (a surface point), as in SMPLify-X.
- Mouth and eye corners of the pose model fill in iBUG points when no face was
  found; the face model's points take precedence (see :data:`SET_PRIORITY`).
- A MediaPipe pose point's confidence is its visibility, the chance that it is in view
  and not hidden. Below 0.5 the point is a guess, for example legs below the frame or
  behind a coat, and is taken as not seen. Fitted, such guesses bent legs that were
  never in the photo (scikit-image's camera.png).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..body_model.names import CONTOUR_NAMES, FACE_LANDMARK_NAMES, KEYPOINT_NAMES_WITH_CONTOUR


@dataclass(frozen=True)
class Layout:
    """A detector's point order and what each point stands for on the body model."""

    name: str
    size: int
    # (point index in this layout, body-model keypoint name, default weight); when two
    # rows give the same name, the later row wins (COCO's hand wrist over its body wrist)
    mapping: tuple[tuple[int, str, float], ...]
    min_confidence: float = 0.0  # points below it count as not seen


def _hand_mapping(side: str) -> tuple[tuple[int, str, float], ...]:
    rows = [(0, f"{side}_wrist", 1.0)]
    for finger_index, finger in enumerate(("thumb", "index", "middle", "ring", "pinky")):
        first = 1 + 4 * finger_index
        rows += [(first + k, f"{side}_{finger}{k + 1}", 1.0) for k in range(3)]
        rows.append((first + 3, f"{side}_{finger}_tip", 1.0))
    return tuple(rows)


def _ibug_mapping(first: int) -> tuple[tuple[int, str, float], ...]:
    """iBUG-68 points stored in order from `first`: contour 0-16, then 17-67."""
    return tuple((first + k, name, 1.0) for k, name in enumerate(CONTOUR_NAMES + FACE_LANDMARK_NAMES))


# iBUG-68 point k -> face-mesh vertex of MediaPipe's canonical face model, chosen on
# the mesh by the landmark's definition (eye corners 33/133/362/263, mouth corners
# 61/291, nose tip 4, chin 152, ...).
_MESH_FOR_IBUG = (
    127, 234, 93, 132, 58, 136, 150, 176, 152, 400, 379, 365, 288, 361, 323, 454, 356,  # contour
    70, 63, 105, 66, 107, 336, 296, 334, 293, 300,  # brows, subject's right then left
    168, 197, 5, 4, 98, 97, 2, 326, 327,  # nose ridge, then nostrils
    33, 160, 158, 133, 153, 144, 362, 385, 387, 263, 373, 380,  # eyes
    61, 39, 37, 0, 267, 269, 291, 405, 314, 17, 84, 181,  # outer lips
    78, 82, 13, 312, 308, 317, 14, 87,  # inner lips
)  # fmt: skip
_MESH_RIGHT_IRIS, _MESH_LEFT_IRIS, _MESH_NOSE_TIP = 468, 473, 4

MEDIAPIPE_POSE_33 = Layout(
    "mediapipe_pose_33",
    33,
    (
        (0, "nose", 1.0),
        (1, "face_42", 0.5),  # left eye inner corner
        (2, "left_eye", 1.0),
        (3, "face_45", 0.5),  # left eye outer corner
        (4, "face_39", 0.5),
        (5, "right_eye", 1.0),
        (6, "face_36", 0.5),
        (7, "left_ear", 1.0),
        (8, "right_ear", 1.0),
        (9, "face_54", 0.5),  # mouth, subject's left corner
        (10, "face_48", 0.5),
        (11, "left_shoulder", 1.0),
        (12, "right_shoulder", 1.0),
        (13, "left_elbow", 1.0),
        (14, "right_elbow", 1.0),
        (15, "left_wrist", 1.0),
        (16, "right_wrist", 1.0),
        (17, "left_pinky1", 0.5),
        (18, "right_pinky1", 0.5),
        (19, "left_index1", 0.5),
        (20, "right_index1", 0.5),
        (21, "left_thumb2", 0.5),
        (22, "right_thumb2", 0.5),
        (23, "left_hip", 0.5),
        (24, "right_hip", 0.5),
        (25, "left_knee", 1.0),
        (26, "right_knee", 1.0),
        (27, "left_ankle", 1.0),
        (28, "right_ankle", 1.0),
        (29, "left_heel", 1.0),
        (30, "right_heel", 1.0),
        (31, "left_big_toe", 1.0),
        (32, "right_big_toe", 1.0),
    ),
    min_confidence=0.5,
)

HAND_21_LEFT = Layout("hand_21_left", 21, _hand_mapping("left"))
HAND_21_RIGHT = Layout("hand_21_right", 21, _hand_mapping("right"))

MEDIAPIPE_FACE_478 = Layout(
    "mediapipe_face_478",
    478,
    (
        *(
            (vertex, name, 1.0)
            for vertex, name in zip(_MESH_FOR_IBUG, CONTOUR_NAMES + FACE_LANDMARK_NAMES, strict=True)
        ),
        (_MESH_RIGHT_IRIS, "right_eye", 1.0),
        (_MESH_LEFT_IRIS, "left_eye", 1.0),
        (_MESH_NOSE_TIP, "nose", 1.0),
    ),
)

OPENPOSE_BODY_25 = Layout(
    "openpose_body_25",
    25,
    (
        (0, "nose", 1.0),
        (1, "neck", 0.5),
        (2, "right_shoulder", 1.0),
        (3, "right_elbow", 1.0),
        (4, "right_wrist", 1.0),
        (5, "left_shoulder", 1.0),
        (6, "left_elbow", 1.0),
        (7, "left_wrist", 1.0),
        (8, "pelvis", 1.0),
        (9, "right_hip", 0.5),
        (10, "right_knee", 1.0),
        (11, "right_ankle", 1.0),
        (12, "left_hip", 0.5),
        (13, "left_knee", 1.0),
        (14, "left_ankle", 1.0),
        (15, "right_eye", 1.0),
        (16, "left_eye", 1.0),
        (17, "right_ear", 1.0),
        (18, "left_ear", 1.0),
        (19, "left_big_toe", 1.0),
        (20, "left_small_toe", 1.0),
        (21, "left_heel", 1.0),
        (22, "right_big_toe", 1.0),
        (23, "right_small_toe", 1.0),
        (24, "right_heel", 1.0),
    ),
)

# iBUG 0-67, then the right and left pupils.
OPENPOSE_FACE_70 = Layout(
    "openpose_face_70", 70, (*_ibug_mapping(0), (68, "right_eye", 1.0), (69, "left_eye", 1.0))
)

_COCO_BODY = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder",
    "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip", "left_knee",
    "right_knee", "left_ankle", "right_ankle",
    "left_big_toe", "left_small_toe", "left_heel", "right_big_toe", "right_small_toe", "right_heel",
)  # fmt: skip
COCO_WHOLEBODY_133 = Layout(
    "coco_wholebody_133",
    133,
    tuple((k, name, 0.5 if name.endswith("_hip") else 1.0) for k, name in enumerate(_COCO_BODY))
    + _ibug_mapping(23)
    + tuple((91 + k, name, w) for k, name, w in _hand_mapping("left"))
    + tuple((112 + k, name, w) for k, name, w in _hand_mapping("right")),
)

SMPLX_KEYPOINTS = Layout(
    "smplx_keypoints_144",
    len(KEYPOINT_NAMES_WITH_CONTOUR),
    tuple((k, name, 1.0) for k, name in enumerate(KEYPOINT_NAMES_WITH_CONTOUR)),
)

LAYOUTS: dict[str, Layout] = {
    layout.name: layout
    for layout in (
        MEDIAPIPE_POSE_33,
        HAND_21_LEFT,
        HAND_21_RIGHT,
        MEDIAPIPE_FACE_478,
        OPENPOSE_BODY_25,
        OPENPOSE_FACE_70,
        COCO_WHOLEBODY_133,
        SMPLX_KEYPOINTS,
    )
}

# When several sets of a person give the same body-model keypoint, the first set in
# this order that saw it (confidence > 0) wins: dedicated hand and face models are
# more precise than a body model's coarse hand and face points.
SET_PRIORITY: tuple[str, ...] = (
    "smplx_keypoints_144",  # comes alone: a fit's keypoints, corrected by hand
    "hand_21_left",
    "hand_21_right",
    "mediapipe_face_478",
    "openpose_face_70",
    "coco_wholebody_133",
    "openpose_body_25",
    "mediapipe_pose_33",
)
