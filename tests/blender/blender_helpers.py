"""Helpers for the Blender-side tests: results made from known parameters, and reading
back what Blender evaluated."""

from __future__ import annotations

from pathlib import Path

import bpy
import numpy as np

from smplx_capture_addon.body_model import numpy_body
from smplx_capture_addon.body_model.model_file import BodyModelData
from smplx_capture_addon.body_model.names import JOINT_NAMES
from smplx_capture_addon.result_format import Camera, FitResult, ImageInfo, ModelIdentity, PersonFit


def make_person(seed: int = 0, transl=(0.1, -0.2, 4.0), scale: float = 0.3) -> PersonFit:
    """Random but plausible parameters; the global rotation turns the model (y up) to
    stand upright in OpenCV camera space (y down), facing the camera."""
    rng = np.random.default_rng(seed)
    pose = rng.normal(scale=scale, size=(55, 3))
    pose[0] = [np.pi + 0.2, 0.3, 0.1]
    return PersonFit(
        betas=rng.normal(size=10).tolist(),
        expression=rng.normal(size=10).tolist(),
        global_orient=pose[0].tolist(),
        body_pose=pose[1:22].ravel().tolist(),
        jaw_pose=pose[22].tolist(),
        leye_pose=pose[23].tolist(),
        reye_pose=pose[24].tolist(),
        left_hand_pose=pose[25:40].ravel().tolist(),
        right_hand_pose=pose[40:].ravel().tolist(),
        transl=list(transl),
    )


def make_result(
    data: BodyModelData,
    people: list[PersonFit],
    image: str = "/nonexistent/photo.jpg",
    size: tuple[int, int] = (640, 480),
    focal: float = 700.0,
    principal: tuple[float, float] | None = None,
) -> FitResult:
    width, height = size
    return FitResult(
        model=ModelIdentity("smplx", Path(data.path).name, data.path, data.sha256, data.gender),
        image=ImageInfo(image, width, height),
        camera=Camera(focal, list(principal or (width / 2, height / 2)), "user"),
        people=people,
    )


def reference(data: BodyModelData, person: PersonFit) -> numpy_body.PosedBody:
    """The fitted body in camera space, from numpy_body."""
    return numpy_body.forward(
        data, numpy_body.full_pose(person), person.betas, person.expression, person.transl
    )


def evaluated_vertices_world(obj: bpy.types.Object) -> np.ndarray:
    """(V, 3) world positions of an object's evaluated (deformed) mesh."""
    bpy.context.view_layer.update()
    evaluated = obj.evaluated_get(bpy.context.evaluated_depsgraph_get())
    mesh = evaluated.to_mesh()
    try:
        co = np.empty(len(mesh.vertices) * 3, dtype=np.float64)
        mesh.vertices.foreach_get("co", co)
    finally:
        evaluated.to_mesh_clear()
    matrix = np.array(obj.matrix_world)
    return co.reshape(-1, 3) @ matrix[:3, :3].T + matrix[:3, 3]


def world_to_opencv(camera: bpy.types.Object, points: np.ndarray) -> np.ndarray:
    """World points to the fitted (OpenCV) camera's space."""
    inverse = np.linalg.inv(np.array(camera.matrix_world))
    local = points @ inverse[:3, :3].T + inverse[:3, 3]
    return local * np.array([1.0, -1.0, -1.0])


def posed_joints_world(armature: bpy.types.Object) -> np.ndarray:
    bpy.context.view_layer.update()
    matrix = np.array(armature.matrix_world)
    heads = np.array([armature.pose.bones[name].head for name in JOINT_NAMES])
    return heads @ matrix[:3, :3].T + matrix[:3, 3]
