"""Render the open default body in its rest pose and four test poses, to check the skin.

    BLENDER_USER_RESOURCES=$(mktemp -d) \
        .venv/bin/python -m smplx_capture_addon.devtools.open_body.render out/open_body

Writes rest.png, arms_bent.png, knees_bent.png, fists.png and face.png (mouth open and a
smile) plus close-ups (elbows, knees, hands, face) into the folder. Needs torch (the
project's BodyModel poses the body) and bpy (Blender as a module; Cycles on the CPU).
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np

from ...body_model.model_file import load_model
from ...body_model.names import JOINT_NAMES

FINGERS = ("index", "middle", "ring", "pinky")
# Close-ups per pose: (file suffix, joint at the centre, width in metres, view).
CLOSE_UPS = {
    "rest": (("side", "pelvis", 2.1, "side"), ("shoulder", "left_shoulder", 0.5, "front")),
    "arms_bent": (("elbow", "left_elbow", 0.45, "side"), ("shoulder", "right_shoulder", 0.5, "front")),
    "knees_bent": (("knee", "left_knee", 0.6, "side"), ("hips", "pelvis", 0.7, "side")),
    "fists": (("hand", "left_index1", 0.25, "front"), ("hand_side", "left_index1", 0.25, "side")),
    "face": (("face", "head", 0.3, "front"), ("face_side", "head", 0.3, "side")),
}


def _set(pose: np.ndarray, joint: str, axis_angle: tuple[float, float, float]) -> None:
    pose[JOINT_NAMES.index(joint)] = axis_angle


def test_poses() -> dict[str, tuple[np.ndarray, dict[str, float]]]:
    """Name -> ((55, 3) axis-angle pose, {expression name: value}). SMPL-X axes: x the
    body's left, y up, z front; the arms rest along +-x with the palms down."""
    rest = np.zeros((len(JOINT_NAMES), 3))
    arms = rest.copy()
    for side, sign in (("left", 1.0), ("right", -1.0)):
        _set(arms, f"{side}_shoulder", (0.0, 0.0, -sign * 1.1))  # arms down by 63 degrees
        _set(arms, f"{side}_elbow", (0.0, -sign * 1.75, 0.0))  # forearms forward by 100 degrees
    knees = rest.copy()
    for side in ("left", "right"):
        _set(knees, f"{side}_hip", (-1.4, 0.0, 0.0))  # thighs forward by 80 degrees
        _set(knees, f"{side}_knee", (1.9, 0.0, 0.0))  # shins back by 110 degrees
    fists = rest.copy()
    for side, sign in (("left", 1.0), ("right", -1.0)):
        _set(fists, f"{side}_wrist", (0.0, 0.0, -sign * 0.3))
        for finger in FINGERS:
            for level, angle in ((1, 1.4), (2, 1.6), (3, 1.0)):
                _set(fists, f"{side}_{finger}{level}", (0.0, 0.0, -sign * angle))  # curl towards the palm
        thumb_axis = np.array([1.0, 0.0, -sign]) / math.sqrt(2.0)  # across the thumb, towards the palm
        for level, angle in ((1, 0.4), (2, 0.6), (3, 0.8)):
            _set(fists, f"{side}_thumb{level}", tuple(thumb_axis * angle))
    face = rest.copy()
    _set(face, "jaw", (0.35, 0.0, 0.0))  # the chin down by 20 degrees
    return {
        "rest": (rest, {}),
        "arms_bent": (arms, {}),
        "knees_bent": (knees, {}),
        "fists": (fists, {}),
        "face": (face, {"mouthSmileLeft": 1.0, "mouthSmileRight": 1.0}),
    }


def posed_body(
    model_path: str | None, pose: np.ndarray, expression: dict[str, float]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Vertices (V, 3), joints (55, 3) and faces (F, 3) of the body in a pose."""
    import torch

    from ...body_model.model import BodyModel

    data = load_model(model_path)
    model = BodyModel(
        data, num_betas=data.num_shape, num_expression=data.num_expression, hand_pca=None, flat_hand_mean=True
    )
    values = torch.zeros(1, data.num_expression)
    for name, value in expression.items():
        values[0, data.expression_names.index(name)] = value
    full = torch.as_tensor(pose, dtype=torch.float32)[None]
    output = model(
        global_orient=full[:, 0], body_pose=full[:, 1:22].reshape(1, -1), jaw_pose=full[:, 22],
        leye_pose=full[:, 23], reye_pose=full[:, 24], left_hand_pose=full[:, 25:40].reshape(1, -1),
        right_hand_pose=full[:, 40:55].reshape(1, -1), expression=values,
    )  # fmt: skip
    return output.vertices[0].detach().numpy(), output.joints[0].detach().numpy(), data.faces


def render(
    vertices: np.ndarray, faces: np.ndarray, path: Path, centre: np.ndarray, size: float, view: str
) -> None:
    """One Cycles render (CPU) of the mesh: an orthographic camera looking at `centre`
    from the front (+z) or the body's left side (+x), `size` metres wide."""
    import bpy

    bpy.ops.wm.read_factory_settings(use_empty=True)
    mesh = bpy.data.meshes.new("body")
    # Blender is z-up: SMPL-X (x, y, z) -> Blender (x, -z, y).
    mesh.from_pydata((vertices[:, [0, 2, 1]] * [1, -1, 1]).tolist(), [], faces.tolist())
    mesh.shade_smooth()
    body = bpy.data.objects.new("body", mesh)
    material = bpy.data.materials.new("skin")
    material.diffuse_color = (0.8, 0.62, 0.5, 1.0)
    mesh.materials.append(material)
    scene = bpy.context.scene
    scene.collection.objects.link(body)
    target = (centre[0], -centre[2], centre[1])
    camera = bpy.data.objects.new("camera", bpy.data.cameras.new("camera"))
    camera.data.type = "ORTHO"
    camera.data.ortho_scale = size
    if view == "front":
        camera.location, camera.rotation_euler = (target[0], target[1] - 5, target[2]), (math.pi / 2, 0, 0)
    else:
        camera.location, camera.rotation_euler = (
            (target[0] + 5, target[1], target[2]),
            (math.pi / 2, 0, math.pi / 2),
        )
    scene.collection.objects.link(camera)
    scene.camera = camera
    for rotation, energy in (((0.9, 0.2, -0.6), 3.0), ((1.2, -0.3, 2.2), 1.5)):
        light = bpy.data.objects.new("light", bpy.data.lights.new("light", "SUN"))
        light.data.energy, light.rotation_euler = energy, rotation
        scene.collection.objects.link(light)
    world = bpy.data.worlds.new("world")
    world.color = (0.25, 0.25, 0.28)
    scene.world = world
    scene.render.engine = "CYCLES"
    scene.cycles.device, scene.cycles.samples = "CPU", 16
    scene.render.resolution_x = scene.render.resolution_y = 640
    scene.render.filepath = str(path)
    bpy.ops.render.render(write_still=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Render the open default body in test poses.")
    parser.add_argument("output", type=Path, help="folder for the PNG files")
    parser.add_argument("--model", default=None, help="model file (default: the bundled open body)")
    args = parser.parse_args(argv)
    args.output.mkdir(parents=True, exist_ok=True)
    for name, (pose, expression) in test_poses().items():
        vertices, joints, faces = posed_body(args.model, pose, expression)
        middle = (vertices.max(axis=0) + vertices.min(axis=0)) / 2
        render(vertices, faces, args.output / f"{name}.png", middle, 2.1, "front")
        for suffix, joint, size, view in CLOSE_UPS[name]:
            render(
                vertices,
                faces,
                args.output / f"{name}_{suffix}.png",
                joints[JOINT_NAMES.index(joint)],
                size,
                view,
            )
    print(f"wrote {len(list(args.output.glob('*.png')))} images to {args.output}")


if __name__ == "__main__":
    main()
