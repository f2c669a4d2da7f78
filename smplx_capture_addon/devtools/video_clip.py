"""A short test clip with ground truth: the open default body walking towards a still
camera (DeepMimic's walk), a second body standing behind it to the right, rendered by
Blender (Cycles on the CPU, few samples) into numbered PNGs and an mp4.

    .venv/bin/python -m smplx_capture_addon.devtools.video_clip [OUTDIR]

Writes OUTDIR (default .cache/video_clips/walk) with frames/frame_0000.png ..., clip.mp4
and truth.npz: the walker's SMPL-X parameters per frame in OpenCV camera space
(global_orient, body_pose, transl; the shape at zero), the focal length in pixels and
`hidden`, the frames where the walker is left out (only the second body is seen there).
The camera sees with the fit's default focal length (solver.camera.default_focal), so a
fit without --focal sees through the same lens. Made once and cached: `clip()` returns the
folder, rendering it only when it is missing. Needs torch and bpy.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from ..body_model.numpy_body import axis_angle_to_matrix
from .motions import MOTION_CACHE, frame_to_smplx, load_clip, matrix_to_axis_angle

CLIP_CACHE = Path(__file__).resolve().parents[2] / ".cache" / "video_clips" / "walk"
WIDTH, HEIGHT, FPS = 480, 360, 30.0
FRAMES = 32
HIDDEN = (12,)  # frames without the walker
WALKER_START = np.array([0.0, -0.1, 4.6])  # the walker's pelvis at the first frame, camera space, metres
BYSTANDER_AT = np.array([1.35, -0.1, 6.5])
SAMPLES = 12
RECIPE = {"version": 1, "frames": FRAMES, "hidden": list(HIDDEN), "size": [WIDTH, HEIGHT], "samples": SAMPLES}
# OpenCV camera space from SMPL-X's (y up, the body facing +z): a half turn about x, so the
# camera looks at the body's front.
CAMERA_FROM_MODEL = np.diag([1.0, -1.0, -1.0])
OPENCV_TO_BLENDER = np.array([1.0, -1.0, -1.0])  # the Blender camera at the origin looks down its -z


def clip(folder: Path = CLIP_CACHE) -> Path:
    """The cached clip's folder, rendered first when it is missing or from another recipe."""
    recipe = folder / "recipe.json"
    if not (recipe.is_file() and json.loads(recipe.read_text()) == RECIPE):
        render_clip(folder)
    return folder


def camera_parameters(orient: np.ndarray, body_pose: np.ndarray, pelvis_at: np.ndarray,
                      rest_pelvis: np.ndarray) -> dict[str, np.ndarray]:  # fmt: skip
    """A body posed in SMPL-X's axes (global_orient `orient`), its pelvis at `pelvis_at` in
    camera space -> its parameters in camera space (the model turns about its rest pelvis)."""
    rotation = CAMERA_FROM_MODEL @ axis_angle_to_matrix(orient[None])[0]
    return {"global_orient": matrix_to_axis_angle(rotation), "body_pose": body_pose,
            "transl": pelvis_at - rest_pelvis}  # fmt: skip


def walker_parameters(rest_pelvis: np.ndarray) -> dict[str, np.ndarray]:
    """The walker's parameters (F, ...) in camera space: DeepMimic's walk, its root path
    moved to start at WALKER_START, coming towards the camera."""
    frames = load_clip(MOTION_CACHE / "humanoid3d_walk.txt")[:FRAMES]
    change = np.array([[0.0, 0.0, -1.0], [0.0, 1.0, 0.0], [1.0, 0.0, 0.0]])  # as motions' frame change
    params = []
    for frame in frames:
        orient, pose = frame_to_smplx(frame)
        path = CAMERA_FROM_MODEL @ change @ (frame[1:4] - frames[0, 1:4])
        params.append(camera_parameters(orient, pose, WALKER_START + path, rest_pelvis))
    return {name: np.stack([p[name] for p in params]) for name in params[0]}


def render_clip(folder: Path) -> None:
    """Render the clip into `folder` (see the module docstring)."""
    import bpy
    import cv2
    import torch

    from ..body_model.model import BodyModel
    from ..body_model.model_file import load_model
    from ..solver.camera import default_focal

    data = load_model("default")
    model = BodyModel(data, num_betas=10, num_expression=10, hand_pca=None, flat_hand_mean=False)
    rest_pelvis = model(vertices=False).joints[0, 0].detach().numpy().astype(np.float64)
    walker = walker_parameters(rest_pelvis)
    orient, pose = frame_to_smplx(load_clip(MOTION_CACHE / "humanoid3d_dance_b.txt")[0])
    bystander = camera_parameters(orient, pose, BYSTANDER_AT, rest_pelvis)

    def vertices(params: dict[str, np.ndarray]) -> np.ndarray:
        tensors = {name: torch.as_tensor(np.atleast_2d(value), dtype=torch.float32)
                   for name, value in params.items()}  # fmt: skip
        with torch.no_grad():
            return model(**tensors).vertices.numpy().astype(np.float64)

    focal = default_focal(WIDTH, HEIGHT)
    frames_dir = folder / "frames"
    frames_dir.mkdir(parents=True, exist_ok=True)
    scene = _scene(data.faces, vertices(bystander)[0], focal)
    walker_mesh = scene.objects["walker"]
    writer = cv2.VideoWriter(str(folder / "clip.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), FPS, (WIDTH, HEIGHT))
    try:
        for index, points in enumerate(vertices(walker)):
            walker_mesh.data.vertices.foreach_set("co", (points * OPENCV_TO_BLENDER).reshape(-1))
            walker_mesh.data.update()
            walker_mesh.hide_render = index in HIDDEN
            scene.render.filepath = str(frames_dir / f"frame_{index:04d}.png")
            bpy.ops.render.render(write_still=True)
            writer.write(cv2.imread(scene.render.filepath))
    finally:
        writer.release()
    hidden = np.isin(np.arange(FRAMES), HIDDEN)
    np.savez(folder / "truth.npz", focal=focal, hidden=hidden, fps=FPS, **walker)
    (folder / "recipe.json").write_text(json.dumps(RECIPE))


def _scene(faces: np.ndarray, bystander: np.ndarray, focal: float):
    """Blender's scene: the camera at the origin (OpenCV's, turned to Blender's axes),
    two lights, a grey-blue world, the bystander and the walker's mesh."""
    import bpy

    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    for name, points, colour in (("walker", bystander, (0.8, 0.6, 0.48, 1.0)),
                                 ("bystander", bystander, (0.55, 0.42, 0.36, 1.0))):  # fmt: skip
        mesh = bpy.data.meshes.new(name)
        mesh.from_pydata((points * OPENCV_TO_BLENDER).tolist(), [], faces.tolist())
        mesh.shade_smooth()
        material = bpy.data.materials.new(name)
        material.use_nodes = True
        material.node_tree.nodes["Principled BSDF"].inputs["Base Color"].default_value = colour
        mesh.materials.append(material)
        scene.collection.objects.link(bpy.data.objects.new(name, mesh))
    camera = bpy.data.objects.new("camera", bpy.data.cameras.new("camera"))
    camera.data.sensor_fit = "HORIZONTAL"
    camera.data.lens = focal * camera.data.sensor_width / WIDTH
    scene.collection.objects.link(camera)
    scene.camera = camera
    for rotation, energy in (((0.9, 0.2, -0.6), 3.0), ((1.2, -0.3, 2.2), 1.5)):
        light = bpy.data.objects.new("light", bpy.data.lights.new("light", "SUN"))
        light.data.energy, light.rotation_euler = energy, rotation
        scene.collection.objects.link(light)
    world = bpy.data.worlds.new("world")
    world.color = (0.3, 0.32, 0.36)
    scene.world = world
    scene.render.engine = "CYCLES"
    scene.cycles.device, scene.cycles.samples = "CPU", SAMPLES
    scene.render.resolution_x, scene.render.resolution_y = WIDTH, HEIGHT
    scene.render.resolution_percentage = 100
    return scene


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Render the walking test clip with its ground truth.")
    parser.add_argument("output", type=Path, nargs="?", default=CLIP_CACHE, help="folder for the clip")
    args = parser.parse_args(argv)
    render_clip(args.output)
    print(f"wrote {FRAMES} frames, clip.mp4 and truth.npz to {args.output}")


if __name__ == "__main__":
    main()
