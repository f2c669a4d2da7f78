"""`python -m smplx_capture_addon blend RESULT -o scene.blend --render overlay.png`."""

from __future__ import annotations

from pathlib import Path

import bpy
import numpy as np
from blender_helpers import make_person, make_result, reference

from smplx_capture_addon.blender_builders import placement
from smplx_capture_addon.blender_ui import fit_job
from smplx_capture_addon.body_model.names import JOINT_NAMES
from smplx_capture_addon.cli import main
from smplx_capture_addon.result_format import write_result


def read_png(path) -> np.ndarray:
    image = bpy.data.images.load(str(path))
    width, height = image.size
    pixels = np.empty(width * height * 4, dtype=np.float32)
    image.pixels.foreach_get(pixels)
    bpy.data.images.remove(image)
    return pixels.reshape(height, width, 4)[::-1]


def test_blend_writes_the_scene_and_renders_it_over_the_photo(small_model, photo_dir, tmp_path):
    photo = photo_dir / "astronaut.png"  # 512 x 512
    person = make_person(seed=21, transl=(0.0, 0.3, 3.0), scale=0.15)
    result = make_result(small_model, [person], image=str(photo), size=(512, 512), focal=600.0)
    result_path = write_result(result, tmp_path / "result.json")
    blend, png = tmp_path / "scene.blend", tmp_path / "overlay.png"

    assert main(["blend", str(result_path), "-o", str(blend), "--render", str(png),
                 "--model", small_model.path]) == 0  # fmt: skip

    bpy.ops.wm.open_mainfile(filepath=str(blend))
    collection = bpy.data.collections["astronaut"]
    kinds = sorted(o.type for o in collection.objects)
    assert kinds == ["ARMATURE", "CAMERA", "MESH"]
    assert bpy.context.scene.camera.name == "astronaut camera"
    background = bpy.context.scene.camera.data.background_images[0].image.filepath
    assert Path(bpy.path.abspath(background)).resolve() == photo.resolve()
    armature = next(o for o in collection.objects if o.type == "ARMATURE")
    assert sorted(b.name for b in armature.data.bones) == sorted(JOINT_NAMES)
    # Opened in Blender, the scene is a fit the panel can refine, as one made by the add-on.
    assert fit_job.fit_of(armature) == collection

    overlay, original = read_png(png), read_png(photo)
    assert overlay.shape == original.shape
    changed = np.abs(overlay[..., :3] - original[..., :3]).max(axis=2) > 0.02
    # The body covers the pixels the fitted pelvis projects to, and only part of the photo.
    pelvis = placement.project(reference(small_model, person).joints[:1], 600.0, (256.0, 256.0))[0]
    column, row = round(pelvis[0]), round(pelvis[1])
    assert changed[row - 2 : row + 3, column - 2 : column + 3].all()
    assert 0.01 < changed.mean() < 0.6
    assert not changed[:20, :20].any()  # a corner far from the body is the photo itself
