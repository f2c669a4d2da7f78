"""The add-on in Blender: registration, the Fit operator's failure paths (the scene stays
as it was), the request the worker reads from the panel, re-fit, reset pose, rest pose."""

from __future__ import annotations

import argparse
import importlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import addon_utils
import bpy
import numpy as np
import pytest
from blender_helpers import evaluated_vertices_world, make_person, make_result

from smplx_capture_addon import fit_request
from smplx_capture_addon.blender_builders import placement, rig
from smplx_capture_addon.blender_builders import scene as builders
from smplx_capture_addon.blender_builders.scene import PROP_ROLE
from smplx_capture_addon.blender_ui import fit_job
from smplx_capture_addon.blender_ui.operators import preference_path, request_from_context
from smplx_capture_addon.body_model import numpy_body
from smplx_capture_addon.body_model.names import JOINT_NAMES
from smplx_capture_addon.errors import CaptureError
from smplx_capture_addon.fit_request import FitRequest
from smplx_capture_addon.result_format import write_result
from smplx_capture_addon.worker import protocol, runner
from smplx_capture_addon.worker.runner import JobState

ADDON = "smplx_capture_addon"


@pytest.fixture
def addon():
    addon_utils.enable(ADDON, default_set=True)
    yield bpy.context.preferences.addons[ADDON].preferences
    addon_utils.disable(ADDON, default_set=True)


@pytest.fixture
def built_fit(small_model, tmp_path):
    """A fit built the way the operator builds one, from a finished job's result file."""
    result = make_result(small_model, [make_person(seed=11)], image=str(tmp_path / "photo.jpg"))
    path = write_result(result, tmp_path / "job" / "result.json")
    request = FitRequest(photo=str(tmp_path / "photo.jpg"), model=small_model.path)
    state = JobState(status=runner.DONE, result_path=str(path))
    return fit_job.finish_fit(state, request), request, state


def test_addon_registers_and_unregisters_cleanly():
    for _ in range(2):  # twice: unregistering leaves nothing behind that breaks a second register
        addon_utils.enable(ADDON, default_set=True)
        assert bpy.context.preferences.addons.get(ADDON) is not None
        assert hasattr(bpy.types.Scene, "smplx_capture")
        assert hasattr(bpy.types.WindowManager, "smplx_capture_job")
        operators = ("fit", "cancel", "reset_pose", "fit_bones", "look_through", "pin_bones", "clear_pins",
                     "keypoint_handles", "mark_keypoints", "snap_to_floor", "keep_on_floor", "ik_controls",
                     "ik_switch")  # fmt: skip
        for operator in operators:
            assert getattr(bpy.ops.smplx_capture, operator).idname() == f"SMPLX_CAPTURE_OT_{operator}"
        assert bpy.types.Panel.bl_rna_get_subclass_py("SMPLX_CAPTURE_PT_fit").bl_category == "SMPL-X Capture"
        for sub_panel in ("shape", "expression", "pose", "keypoints", "floor_and_ik"):  # under Refine the Fit
            panel = bpy.types.Panel.bl_rna_get_subclass_py(f"SMPLX_CAPTURE_PT_{sub_panel}")
            assert panel.bl_parent_id == "SMPLX_CAPTURE_PT_refine"
        addon_utils.disable(ADDON, default_set=True)
        assert bpy.context.preferences.addons.get(ADDON) is None
        assert not hasattr(bpy.types.Scene, "smplx_capture")
        assert bpy.types.Panel.bl_rna_get_subclass_py("SMPLX_CAPTURE_PT_fit") is None
        with pytest.raises(KeyError):
            bpy.ops.smplx_capture.fit.get_rna_type()


def snapshot() -> dict:
    """What a failed fit must not change."""
    state = {
        "collections": sorted(c.name for c in bpy.data.collections),
        "objects": sorted(o.name for o in bpy.data.objects),
        "meshes": len(bpy.data.meshes),
        "armatures": len(bpy.data.armatures),
        "cameras": len(bpy.data.cameras),
        "images": len(bpy.data.images),
        "scene_camera": bpy.context.scene.camera.name if bpy.context.scene.camera else None,
        "resolution": (bpy.context.scene.render.resolution_x, bpy.context.scene.render.resolution_y),
    }
    for obj in bpy.data.objects:
        state[obj.name] = np.array(obj.matrix_world).round(9).tolist()
        if obj.type == "ARMATURE":
            state[obj.name + " pose"] = [tuple(b.rotation_quaternion) for b in obj.pose.bones]
    return state


def crashing_python(tmp_path: Path) -> str:
    script = tmp_path / "crashing-python"
    script.write_text("#!/bin/sh\necho 'Fatal Python error: Segmentation fault' >&2\nexit 139\n")
    script.chmod(0o755)
    return str(script)


@pytest.mark.parametrize(
    ("failure", "expected"),
    [
        ("crash", "stopped unexpectedly (exit code 139). Last output: Fatal Python error: Segmentation"),
        ("missing photo", "does not exist"),
        ("missing model", "No SMPLX_FEMALE.npz or SMPLX_FEMALE.pkl in"),
        ("no image", "Pick an image first."),
    ],
)
def test_a_failing_fit_leaves_the_scene_as_it_was(addon, built_fit, tmp_path, failure, expected):
    settings = bpy.context.scene.smplx_capture
    settings.image = str(tmp_path / "photo.jpg")
    if failure == "crash":
        addon.worker_python = crashing_python(tmp_path)
        Path(settings.image).write_bytes(b"not really a photo")
    elif failure == "missing model":
        Path(settings.image).write_bytes(b"not really a photo")
        empty = tmp_path / "empty"
        empty.mkdir()
        addon.smplx_folder = str(empty)
        settings.model, settings.gender = "SMPLX", "female"
    elif failure == "no image":
        settings.image = ""
    before, folders = snapshot(), job_folders()
    with pytest.raises(RuntimeError, match="Error"):
        bpy.ops.smplx_capture.fit()
    assert snapshot() == before
    job = bpy.context.window_manager.smplx_capture_job
    assert expected in job.error
    assert not job.running
    assert job_folders() == folders  # the job's folder went with the job


def job_folders() -> list[str]:
    """The job folders of this process (this Blender) in the temporary folder."""
    prefix = f"{fit_job.JOB_FOLDER_PREFIX}{os.getpid()}-"
    return sorted(p.name for p in Path(tempfile.gettempdir()).iterdir() if p.name.startswith(prefix))


def write_png(path: Path, rgba: tuple[float, float, float, float], size: tuple[int, int] = (64, 48)) -> Path:
    image = bpy.data.images.new(path.stem, *size)
    image.pixels.foreach_set(np.tile(np.array(rgba, dtype=np.float32), size[0] * size[1]))
    image.filepath_raw, image.file_format = str(path), "PNG"
    image.save()
    bpy.data.images.remove(image)
    return path


def test_a_built_fit_needs_nothing_from_its_job_folder(small_model, tmp_path):
    """The result is kept in the .blend and the worker's pictures (the upright photo copy,
    the keypoint drawing) are packed into it: the job folder can go, and the scene saved
    and opened again still has its result and both pictures."""
    job = tmp_path / "job"
    job.mkdir()
    result = make_result(small_model, [make_person(seed=4)], image=str(tmp_path / "photo.jpg"))
    state = JobState(status=runner.DONE, result_path=str(write_result(result, job / "result.json")),
                     photo_path=str(write_png(job / "photo_upright.png", (0.2, 0.4, 0.6, 1.0))),
                     overlay_path=str(write_png(job / "keypoints.png", (1.0, 0.5, 0.0, 1.0))))  # fmt: skip
    request = FitRequest(photo=str(tmp_path / "photo.jpg"), model=small_model.path)
    built = fit_job.finish_fit(state, request)
    name = built.collection.name
    fit_job.remove_job_folder(job)
    assert not job.exists()
    bpy.ops.wm.save_as_mainfile(filepath=str(tmp_path / "scene.blend"))
    bpy.ops.wm.open_mainfile(filepath=str(tmp_path / "scene.blend"))

    collection = bpy.data.collections[name]
    assert builders.result_of(collection) == result
    camera = next(o for o in collection.objects if o.get(PROP_ROLE) == "camera")
    colours = (0.2, 0.4, 0.6), (1.0, 0.5, 0.0)  # the photo's copy, then the keypoint drawing
    for background, colour in zip(camera.data.background_images, colours, strict=True):
        assert background.image.packed_file is not None
        pixels = np.empty(64 * 48 * 4, dtype=np.float32)
        background.image.pixels.foreach_get(pixels)
        np.testing.assert_allclose(pixels.reshape(-1, 4)[:, :3].mean(axis=0), colour, atol=0.01)


def test_job_folders_of_blender_sessions_that_are_gone_are_removed_at_the_next_fit(tmp_path):
    ended = subprocess.Popen([sys.executable, "-c", "pass"])
    ended.wait()  # its process id now names no running process, as a crashed Blender's
    running = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        gone = Path(tempfile.mkdtemp(prefix=f"{fit_job.JOB_FOLDER_PREFIX}{ended.pid}-"))
        (gone / "result.json").write_text("{}")
        alive = Path(tempfile.mkdtemp(prefix=f"{fit_job.JOB_FOLDER_PREFIX}{running.pid}-"))
        job, out_dir = fit_job.start_fit(FitRequest(photo=str(tmp_path / "missing.jpg")))
        state = job.wait(interval=0.02)
        assert not gone.exists() and alive.is_dir()
        assert out_dir.name.startswith(f"{fit_job.JOB_FOLDER_PREFIX}{os.getpid()}-")
        assert state.status == runner.FAILED
        fit_job.remove_job_folder(out_dir)
        fit_job.remove_job_folder(alive)
    finally:
        running.kill()
        running.wait()


def worker_request(arguments: list[str]) -> FitRequest:
    """The request the one-shot worker reads from `arguments` (parsed by its own parser)."""
    from smplx_capture_addon.worker import cli

    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    return fit_request.from_arguments(parser.parse_args(arguments))


def request_sent(request: FitRequest, tmp_path: Path) -> FitRequest:
    """The request the warm worker reads from the line `fit_job.start_fit` sends it (a
    worker Python that only keeps that line, read back the way a serving worker reads it)."""
    kept = tmp_path / "request-line.json"
    python = tmp_path / "keeping-python"
    python.write_text(f'#!/bin/sh\nhead -n 1 > "{kept}"\n')
    python.chmod(0o755)
    job, out_dir = fit_job.start_fit(request, str(python))
    job.wait(interval=0.02)
    fit_job.close_worker()
    fit_job.remove_job_folder(out_dir)
    sent = protocol.decode_request(kept.read_text())
    assert sent.type == "fit" and sent.get("out") == str(out_dir)
    return FitRequest.from_dict(sent.get("request"))


def test_the_panel_settings_become_the_request_the_worker_reads(addon, tmp_path):
    settings = bpy.context.scene.smplx_capture
    settings.image = str(tmp_path / "me.jpg")
    settings.person, settings.box = "BOX", (10.0, 20.5, 300.0, 400.0)
    settings.model, settings.gender, settings.device = "SMPLX", "male", "cuda"
    settings.show_keypoints, settings.focal_px = True, 1500.0

    with pytest.raises(CaptureError, match="preferences"):
        request_from_context(bpy.context)
    addon.smplx_folder = str(tmp_path)
    request = request_from_context(bpy.context)
    assert preference_path(bpy.context, "worker_python") is None
    arguments = request.to_arguments()  # its command-line form: the one-shot worker's and `fit`'s
    assert arguments == [
        str(tmp_path / "me.jpg"), "--model", str(tmp_path), "--gender", "male", "--device", "cuda",
        "--focal", "1500.0", "--box", "10.0", "20.5", "300.0", "400.0", "--overlay",
    ]  # fmt: skip
    assert worker_request([*arguments, "--out", "/out"]) == request
    assert request_sent(request, tmp_path) == request
    settings.person, settings.person_number, settings.show_keypoints = "NUMBER", 2, False
    request = request_from_context(bpy.context)
    assert request.to_arguments()[-4:] == ["--focal", "1500.0", "--person", "2"]
    assert request_sent(request, tmp_path) == request
    addon.vposer, addon.gmm = str(tmp_path / "V02_05"), str(tmp_path / "gmm_08.pkl")
    with pytest.raises(CaptureError, match="not both"):
        request_from_context(bpy.context)
    addon.gmm = ""
    assert request_from_context(bpy.context).to_arguments()[-2:] == ["--vposer", str(tmp_path / "V02_05")]
    addon.vposer, addon.gmm = "", str(tmp_path / "gmm_08.pkl")
    request = request_from_context(bpy.context)
    assert request.to_arguments()[-2:] == ["--gmm", str(tmp_path / "gmm_08.pkl")]
    assert request_sent(request, tmp_path) == request
    addon.vposer = addon.gmm = ""
    settings.person, settings.box = "BOX", (0.0, 0.0, 0.0, 0.0)  # the panel's untouched box
    with pytest.raises(CaptureError, match="X0 < X1 and Y0 < Y1"):
        request_from_context(bpy.context)


def test_the_extension_site_packages_are_where_blender_puts_them(tmp_path):
    """Found from the package's own place (no bpy), in an installed layout the folder is
    the one Blender names: EXTENSIONS/.local/lib/pythonX.Y/site-packages."""
    extensions = Path(bpy.utils.user_resource("EXTENSIONS"))
    installed = extensions / "user_default" / "smplx_capture_site_check"
    shutil.copytree(runner.PACKAGE_PARENT / runner.PACKAGE_NAME, installed,
                    ignore=shutil.ignore_patterns("data", "docs", "__pycache__"))  # fmt: skip
    sys.path.insert(0, str(installed.parent))
    try:
        copy = importlib.import_module("smplx_capture_site_check.worker.runner")
        site = copy.extension_site_packages()
    finally:
        sys.path.remove(str(installed.parent))
        for name in [m for m in sys.modules if m.split(".")[0] == "smplx_capture_site_check"]:
            del sys.modules[name]
        shutil.rmtree(installed)
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    expected = bpy.utils.user_resource("EXTENSIONS", path=f".local/lib/{version}/site-packages")
    assert site == Path(expected).resolve()
    assert site.parts[-4:] == (".local", "lib", version, "site-packages")
    assert str(site).startswith(str(Path(os.environ["BLENDER_USER_RESOURCES"]).resolve()))


def test_refit_replaces_only_the_fit(built_fit, small_model, tmp_path):
    first, request, state = built_fit
    name = first.collection.name
    artist_empty = bpy.data.objects.new("my prop", None)
    first.collection.objects.link(artist_empty)
    folder = bpy.data.collections.new("characters")  # the artist files the fit away
    bpy.context.scene.collection.children.link(folder)
    folder.children.link(first.collection)
    bpy.context.scene.collection.children.unlink(first.collection)
    material = bpy.data.materials.new("skin")
    first.people[0].mesh.data.materials.append(material)
    other = fit_job.finish_fit(state, request)  # a second, separate fit stays untouched
    other_names = sorted(o.name for o in other.collection.objects)

    second_result = make_result(small_model, [make_person(seed=12)], image=request.photo)
    second_path = write_result(second_result, tmp_path / "r2.json")
    second_state = JobState(status=runner.DONE, result_path=str(second_path))
    refit = fit_job.finish_fit(second_state, request, replace=first.collection)

    assert refit.collection.name == name
    assert list(folder.children) == [refit.collection]
    assert refit.collection.name not in bpy.context.scene.collection.children
    assert bpy.data.collections.get(name) == refit.collection
    assert "my prop" in refit.collection.objects
    assert list(refit.people[0].mesh.data.materials) == [material]
    assert sorted(o.name for o in other.collection.objects) == other_names
    ours = [o for o in bpy.data.objects if o.get(PROP_ROLE)]
    assert len(ours) == 6  # two fits, each a camera, a rig and a body: the old objects are gone
    assert len(bpy.data.meshes) == 2 and len(bpy.data.armatures) == 2


def test_a_failed_job_builds_nothing(built_fit):
    _, request, _ = built_fit
    before = snapshot()
    failed = JobState(status=runner.FAILED, error="No person found.")
    for state, message in ((failed, "No person found."), (JobState(status=runner.CANCELLED), "cancelled")):
        with pytest.raises(CaptureError, match=re.escape(message)):
            fit_job.finish_fit(state, request)
    assert snapshot() == before


def test_reset_pose_and_rest_pose_toggle(addon, built_fit, small_model):
    fit = built_fit[0]
    armature, mesh = fit.people[0].armature, fit.people[0].mesh
    bpy.context.view_layer.objects.active = mesh
    assert fit_job.person_objects(mesh) == (armature, mesh)
    posed = evaluated_vertices_world(mesh)

    # Rest position: the evaluated mesh is the basis plus the shape keys' mix, unposed
    # (corrective keys read the evaluated bones, so they fall to zero as well).
    armature.data.pose_position = "REST"
    bpy.context.view_layer.update()
    keys = mesh.data.shape_keys.key_blocks
    basis = np.array([v.co for v in mesh.data.vertices])
    mix = basis.copy()
    for key in keys[1:]:
        mix += key.value * (np.array([p.co for p in key.data]) - basis)
    assert all(abs(k.value) < 1e-6 for k in keys if k.name.startswith(rig.CORRECTIVE_PREFIX))
    matrix = np.array(armature.matrix_world)
    unposed = mix @ matrix[:3, :3].T + matrix[:3, 3]
    np.testing.assert_allclose(evaluated_vertices_world(mesh), unposed, atol=1e-5)
    armature.data.pose_position = "POSE"
    np.testing.assert_allclose(evaluated_vertices_world(mesh), posed, atol=1e-6)

    assert bpy.ops.smplx_capture.reset_pose() == {"FINISHED"}
    assert all(tuple(b.rotation_quaternion) == (1.0, 0.0, 0.0, 0.0) for b in armature.pose.bones)
    np.testing.assert_allclose(evaluated_vertices_world(mesh), unposed, atol=1e-5)


def test_shape_sliders_are_live(built_fit, small_model):
    fit = built_fit[0]
    armature, mesh = fit.people[0].armature, fit.people[0].mesh
    armature.data.pose_position = "REST"
    before = evaluated_vertices_world(mesh)
    mesh.data.shape_keys.key_blocks[f"{rig.SHAPE_KEY_PREFIX}001"].value = 2.0
    after = evaluated_vertices_world(mesh)
    rotation = np.array(armature.matrix_world)[:3, :3] @ placement.MODEL_TO_BLENDER
    np.testing.assert_allclose(after - before, 2.0 * small_model.shapedirs[:, :, 1] @ rotation.T, atol=1e-5)


def test_fit_bones_to_shape_makes_the_rig_the_model_with_the_new_shape(addon, built_fit, small_model):
    """After a shape slider moves, 'Fit Bones to Shape' moves the joints as SMPL-X does:
    the posed mesh is then the model's for the new betas, correctives included. The job's
    folder is gone by then: the result is kept in the scene."""
    fit, _, state = built_fit
    fit_job.remove_job_folder(Path(state.result_path).parent)
    armature, mesh = fit.people[0].armature, fit.people[0].mesh
    person = make_person(seed=11)
    mesh.data.shape_keys.key_blocks[f"{rig.SHAPE_KEY_PREFIX}003"].value = 2.5
    betas = np.array(person.betas)
    betas[3] += 2.5
    bpy.context.view_layer.objects.active = armature
    assert bpy.ops.smplx_capture.fit_bones() == {"FINISHED"}
    heads = np.array([armature.data.bones[n].head_local for n in JOINT_NAMES])
    rest = numpy_body.rest_joints(small_model, betas, person.expression) @ placement.MODEL_TO_BLENDER.T
    np.testing.assert_allclose(heads, rest, atol=1e-5)
    # Compared in armature space: the fit's root rotation is the armature object's, and
    # it keeps the world pivot it had (the body does not jump when its pelvis moves).
    pose = numpy_body.full_pose(person)
    pose[0] = 0.0
    expected = numpy_body.forward(small_model, pose, betas, person.expression)
    inverse = np.linalg.inv(np.array(armature.matrix_world))
    world = evaluated_vertices_world(mesh)
    local = world @ inverse[:3, :3].T + inverse[:3, 3]
    np.testing.assert_allclose(local, expected.vertices @ placement.MODEL_TO_BLENDER.T, atol=1e-4)
    assert armature.mode == "OBJECT"


def test_look_through_sets_the_fit_camera(addon, built_fit, small_model):
    fit = built_fit[0]
    bpy.context.scene.camera = None
    bpy.context.scene.render.resolution_x = 100
    bpy.context.view_layer.objects.active = fit.people[0].armature
    assert bpy.ops.smplx_capture.look_through() == {"FINISHED"}
    assert bpy.context.scene.camera == fit.camera
    assert bpy.context.scene.render.resolution_x == 640
