"""Where things go: the maths between the result's camera space and Blender's world.

numpy only (no bpy), so it is testable on its own. Frames:
- model: SMPL-X body space (x: the body's left, y: up, z: the body's front), metres.
- camera (OpenCV, as in the result): x right, y down, z forward.
- armature: Blender's Z-up version of model space, MODEL_TO_BLENDER @ model
  (up is +Z, the body faces -Y, as Blender's front view expects).
- Blender camera: x right, y up, looking down -z.

The world is chosen so that the first person stands: their armature sits at the world
origin unrotated (feet on the floor, pelvis above the origin) and the camera is placed
where it must be for that body to look as fitted. Every other person, and the camera,
are placed relative to that, so camera and bodies always move together.
"""

from __future__ import annotations

import numpy as np

from ..body_model import numpy_body

# Model (y up, z front) -> Blender (z up, -y front): +90 degrees about X.
MODEL_TO_BLENDER = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])
# OpenCV camera axes -> Blender camera axes (y and z flip).
OPENCV_TO_BLENDER_CAMERA = np.diag([1.0, -1.0, -1.0])
SENSOR_WIDTH_MM = 36.0


def rigid(rotation: np.ndarray, translation) -> np.ndarray:
    """4x4 matrix from a 3x3 rotation and a translation."""
    matrix = np.eye(4)
    matrix[:3, :3] = rotation
    matrix[:3, 3] = translation
    return matrix


def camera_from_model(global_orient, transl, rest_pelvis) -> np.ndarray:
    """4x4: a point of the body posed without its root rotation (model space) to camera
    space. SMPL-X turns the body about the rest pelvis j0: p_cam = R (p - j0) + j0 + t."""
    rotation = numpy_body.axis_angle_to_matrix(global_orient)
    j0 = np.asarray(rest_pelvis, dtype=np.float64)
    return rigid(rotation, j0 - rotation @ j0 + np.asarray(transl, dtype=np.float64))


def floor_offset(rest_vertices_model: np.ndarray, rest_pelvis_model: np.ndarray) -> np.ndarray:
    """Armature location that puts the rest body's lowest point on the floor (z = 0)
    with the pelvis above the world origin."""
    blender = rest_vertices_model @ MODEL_TO_BLENDER.T
    pelvis = MODEL_TO_BLENDER @ rest_pelvis_model
    return np.array([-pelvis[0], -pelvis[1], -blender[:, 2].min()])


def world_from_camera(first_camera_from_model: np.ndarray, first_location: np.ndarray) -> np.ndarray:
    """4x4 world matrix of the OpenCV camera frame, given the first person's
    camera_from_model and the location of their (unrotated) armature."""
    world_from_model = rigid(MODEL_TO_BLENDER, first_location)
    return world_from_model @ np.linalg.inv(first_camera_from_model)


def armature_matrix(world_from_cam: np.ndarray, cam_from_model: np.ndarray) -> np.ndarray:
    """4x4 world matrix of a person's armature object (armature space = Blender Z-up
    model space)."""
    return world_from_cam @ cam_from_model @ rigid(MODEL_TO_BLENDER.T, np.zeros(3))


def blender_camera_matrix(world_from_cam: np.ndarray) -> np.ndarray:
    """4x4 world matrix of the Blender camera object (its axes flipped from OpenCV's)."""
    return world_from_cam @ rigid(OPENCV_TO_BLENDER_CAMERA, np.zeros(3))


def camera_intrinsics(focal_px: float, principal_px, width: int, height: int) -> dict:
    """Blender camera settings that reproduce a pinhole camera of `width` x `height`
    pixels: the sensor is fitted horizontally, so focal_px = lens / sensor * width, and
    Blender then measures lens shift in image widths (measured, for portrait images too)."""
    cx, cy = principal_px
    return {
        "sensor_fit": "HORIZONTAL",
        "sensor_width": SENSOR_WIDTH_MM,
        "lens": focal_px * SENSOR_WIDTH_MM / width,
        "shift_x": (width / 2.0 - cx) / width,
        "shift_y": (cy - height / 2.0) / width,
    }


def project(points_cam: np.ndarray, focal_px: float, principal_px) -> np.ndarray:
    """OpenCV pinhole projection of (N, 3) camera-space points to (N, 2) pixels."""
    points_cam = np.asarray(points_cam, dtype=np.float64)
    return focal_px * points_cam[:, :2] / points_cam[:, 2:3] + np.asarray(principal_px, dtype=np.float64)
