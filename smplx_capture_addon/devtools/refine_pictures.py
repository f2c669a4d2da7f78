"""Render the README's pictures of refining a fit: the keypoint handles over the photo,
and the IK controls with a hand moved by its target.

    .venv/bin/python -m smplx_capture_addon.devtools.refine_pictures RESULT OUT_DIR

RESULT is a fit's result.json (`fit PHOTO -o DIR` writes one). Empties do not render, so
each handle or control is drawn as a small glowing ball (keypoints: green seen, red not
seen) or cube (IK targets; poles are balls), halfway between it and the camera (so the
body does not hide it; it looks the same size and in the same place), through the fit's
camera with Cycles on the CPU, cropped to the person. Writes keypoint_handles.jpg and ik_controls.jpg.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import bpy
import numpy as np
from PIL import Image

from ..blender_builders import controls, keypoint_handles
from ..blender_builders.render import render_scene_over_photo
from ..blender_builders.scene import BuiltFit, build_fit
from ..blender_ui import fit_job
from ..result_format import FitResult, model_for_result, read_result

SEEN, NOT_SEEN, TARGET, POLE = (0.1, 1.0, 0.2), (1.0, 0.15, 0.1), (1.0, 0.8, 0.1), (0.2, 0.6, 1.0)
MARGIN = 0.15  # of the person's box, around it
NEARER = 0.5  # proxies stand this far from the camera, as a fraction of their anchor's distance


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("result")
    parser.add_argument("out_dir")
    args = parser.parse_args()
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    result = read_result(args.result)

    built = _build(result)
    handles = fit_job.show_handles(built.collection)
    for handle in list(handles.objects):
        seen = handle[keypoint_handles.PROP_CONFIDENCE] > 0
        _ball(handle, built.camera, 1.5 * handle.empty_display_size, SEEN if seen else NOT_SEEN)
    _render(built, result, out / "keypoint_handles.jpg")

    built = _build(result)
    rig = built.people[0].armature
    collection = controls.add_ik_controls(built.collection, rig)
    target = bpy.data.objects[f"{rig.name} left_arm target"]
    shoulder = rig.matrix_world @ rig.pose.bones["left_shoulder"].head
    target.matrix_world.translation += 0.4 * (shoulder - target.matrix_world.translation)  # the hand raised
    bpy.context.view_layer.update()
    for control in list(collection.objects):
        is_target = control.get("smplx_capture_role") == controls.ROLE_TARGET
        _ball(control, built.camera, 0.035, TARGET if is_target else POLE, cube=is_target)
    _render(built, result, out / "ik_controls.jpg")


def _build(result: FitResult) -> BuiltFit:
    bpy.ops.wm.read_factory_settings(use_empty=True)
    return build_fit(result, model_for_result(result))


def _ball(
    anchor: bpy.types.Object, camera: bpy.types.Object, radius: float, colour: tuple, cube: bool = False
) -> None:
    """A glowing ball (or cube) that the camera sees where and as big as one of `radius`
    at `anchor`, standing nearer (NEARER), in front of the body."""
    radius *= NEARER
    mesh = bpy.data.meshes.new("proxy")
    if cube:
        corners = np.array([[x, y, z] for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)], float) * radius
        faces = [(0, 1, 3, 2), (4, 6, 7, 5), (0, 4, 5, 1), (2, 3, 7, 6), (0, 2, 6, 4), (1, 5, 7, 3)]
        mesh.from_pydata(corners.tolist(), [], faces)
    else:
        angles = np.linspace(0, np.pi, 7)[1:-1]
        turns = np.linspace(0, 2 * np.pi, 12, endpoint=False)
        rings = [[np.sin(a) * np.cos(t), np.sin(a) * np.sin(t), np.cos(a)] for a in angles for t in turns]
        points = np.array([[0, 0, 1], *rings, [0, 0, -1]]) * radius
        count, last = len(turns), len(points) - 1
        faces = [(0, 1 + (k + 1) % count, 1 + k) for k in range(count)]
        for ring in range(len(angles) - 1):
            top, bottom = 1 + ring * count, 1 + (ring + 1) * count
            faces += [(top + k, top + (k + 1) % count, bottom + (k + 1) % count, bottom + k)
                      for k in range(count)]  # fmt: skip
        bottom = 1 + (len(angles) - 1) * count
        faces += [(bottom + k, bottom + (k + 1) % count, last) for k in range(count)]
        mesh.from_pydata(points.tolist(), [], faces)
    material = bpy.data.materials.new("glow")
    material.use_nodes = True
    nodes = material.node_tree.nodes
    emission = nodes.new("ShaderNodeEmission")
    emission.inputs["Color"].default_value = (*colour, 1.0)
    emission.inputs["Strength"].default_value = 3.0
    output = next(n for n in nodes if n.type == "OUTPUT_MATERIAL")
    material.node_tree.links.new(emission.outputs["Emission"], output.inputs["Surface"])
    mesh.materials.append(material)
    proxy = bpy.data.objects.new(f"{anchor.name} proxy", mesh)
    anchor.users_collection[0].objects.link(proxy)
    eye = camera.matrix_world.translation
    proxy.location = eye + NEARER * (anchor.matrix_world.translation - eye)


def _render(built: BuiltFit, result: FitResult, path: Path) -> None:
    """Render through the fit's camera over the photo, cropped to the first person."""
    full = path.with_suffix(".full.png")
    size = max(result.image.width, result.image.height)
    render_scene_over_photo(built, full, result.image.path, max_size=size)
    picture = Image.open(full).convert("RGB")
    full.unlink()
    x0, y0, x1, y1 = result.people[0].box
    grow_x, grow_y = MARGIN * (x1 - x0), MARGIN * (y1 - y0)
    box = (max(0, x0 - grow_x), max(0, y0 - grow_y), min(picture.width, x1 + grow_x),
           min(picture.height, y1 + grow_y))  # fmt: skip
    picture.crop(tuple(int(v) for v in box)).save(path, quality=85)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
