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
from smplx_capture_addon.keypoints.images import exif_orientation
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
    # Written whole under temporary names: none left over (nor Blender's .blend1 backup).
    assert sorted(p.name for p in tmp_path.iterdir()) == ["overlay.png", "result.json", "scene.blend"]

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


def exif_rotated_jpeg(upright: np.ndarray, path: Path) -> Path:
    """Write `upright` (H, W, 4 floats, top row first) as a phone does: stored turned a
    quarter anticlockwise, with EXIF orientation 6 ("turn 90 degrees clockwise to view").
    Blender writes the JPEG; the EXIF block is put in by hand (no Pillow on Python 3.13)."""
    stored = np.rot90(upright)  # a quarter turn anticlockwise
    height, width = stored.shape[:2]
    image = bpy.data.images.new("stored", width, height)
    image.pixels.foreach_set(np.ascontiguousarray(stored[::-1], dtype=np.float32).ravel())
    image.filepath_raw, image.file_format = str(path), "JPEG"
    image.save()
    bpy.data.images.remove(image)
    # One IFD with one entry: tag 0x0112, type SHORT, count 1, value 6; big-endian ("MM").
    entry = bytes.fromhex("0112 0003 00000001 0006 0000")
    tiff = b"MM\x00*" + (8).to_bytes(4, "big") + (1).to_bytes(2, "big") + entry + bytes(4)
    app1 = b"\xff\xe1" + (len(tiff) + 8).to_bytes(2, "big") + b"Exif\x00\x00" + tiff
    data = path.read_bytes()
    path.write_bytes(data[:2] + app1 + data[2:])
    return path


def test_a_photo_stored_sideways_is_upright_behind_the_fit_and_in_the_render(small_model, photo_dir,
                                                                            tmp_path):  # fmt: skip
    bus = bpy.data.images.load(str(photo_dir / "bus.jpg"))  # 810 x 1080, upright
    bus.scale(405, 540)
    upright = np.empty(405 * 540 * 4, dtype=np.float32)
    bus.pixels.foreach_get(upright)
    upright = upright.reshape(540, 405, 4)[::-1]
    photo = exif_rotated_jpeg(upright, tmp_path / "sideways.jpg")
    assert exif_orientation(photo) == 6
    person = make_person(seed=21, transl=(0.0, 0.3, 4.0), scale=0.15)
    result = make_result(small_model, [person], image=str(photo), size=(405, 540), focal=500.0)
    result_path = write_result(result, tmp_path / "result.json")
    blend, png = tmp_path / "scene.blend", tmp_path / "render.png"

    assert main(["blend", str(result_path), "-o", str(blend), "--render", str(png),
                 "--model", small_model.path]) == 0  # fmt: skip

    rendered = read_png(png)
    assert rendered.shape == (540, 405, 4)
    corners = (slice(0, 60), slice(0, 60)), (slice(0, 60), slice(-60, None)), (slice(-60, None), slice(0, 60))
    for rows, columns in corners:  # far from the body: the photo itself, upright
        assert np.abs(rendered[rows, columns, :3] - upright[rows, columns, :3]).mean() < 0.03
    bpy.ops.wm.open_mainfile(filepath=str(blend))
    background = bpy.context.scene.camera.data.background_images[0].image
    assert tuple(background.size) == (405, 540) and background.packed_file is not None
    shown = np.empty(405 * 540 * 4, dtype=np.float32)
    background.pixels.foreach_get(shown)
    assert np.abs(shown.reshape(540, 405, 4)[::-1, :, :3] - upright[..., :3]).mean() < 0.03


def test_blend_warns_in_one_line_when_the_photo_is_missing(small_model, tmp_path, capsys):
    result = make_result(small_model, [make_person(seed=3)], image=str(tmp_path / "gone.jpg"))
    result_path = write_result(result, tmp_path / "result.json")
    blend = tmp_path / "scene.blend"
    assert main(["blend", str(result_path), "-o", str(blend), "--model", small_model.path]) == 0
    warnings = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning:")]
    assert warnings == [
        f"warning: The photo {tmp_path / 'gone.jpg'} is missing: the camera shows no photo behind the body "
        "(give the photo, or put it back)."
    ]
    bpy.ops.wm.open_mainfile(filepath=str(blend))
    assert len(bpy.context.scene.camera.data.background_images) == 0
