"""End to end in Blender: the Fit operator's blocking path runs a real fit (worker
process, MediaPipe detection, the solver) on a real photo with the open default body and
builds the scene, which must reproduce the fit. Needs the solver's packages (torch,
mediapipe) in this Python, so it runs on Python 3.11 only."""

from __future__ import annotations

import json
import time
from pathlib import Path

import bpy
import numpy as np
import pytest
from bpy_extras.object_utils import world_to_camera_view
from mathutils import Vector

from smplx_capture_addon.blender_builders import rig
from smplx_capture_addon.blender_builders.scene import PROP_NUMBERS, PROP_PEOPLE_FOUND, PROP_ROLE, result_of
from smplx_capture_addon.blender_ui import fit_job
from smplx_capture_addon.body_model import model_file, numpy_body
from smplx_capture_addon.body_model.names import JOINT_NAMES, JOINT_PARENTS, VERTEX_KEYPOINT_NAMES
from smplx_capture_addon.fit_request import EVERYONE, NUMBER, FitRequest, PersonChoice
from smplx_capture_addon.result_format import read_result
from smplx_capture_addon.worker import runner


def project(scene, camera, points) -> np.ndarray:
    width, height = scene.render.resolution_x, scene.render.resolution_y
    ndc = [world_to_camera_view(scene, camera, Vector(p.tolist())) for p in points]
    return np.array([(v.x * width, (1.0 - v.y) * height) for v in ndc])


def test_fit_operator_builds_a_rig_that_lands_on_the_detected_keypoints(addon, photo_dir, run_job_operator):
    settings = bpy.context.scene.smplx_capture
    settings.image = str(photo_dir / "astronaut.png")
    settings.model, settings.device, settings.show_keypoints = "DEFAULT", "cpu", True
    run_job_operator(bpy.ops.smplx_capture.fit, "fit + build")

    collection = bpy.data.collections["astronaut"]
    objects = {o[PROP_ROLE]: o for o in collection.objects}
    armature, mesh, camera = objects["armature"], objects["mesh"], objects["camera"]
    backgrounds = [b.image for b in camera.data.background_images]
    assert Path(backgrounds[0].filepath).name == "astronaut.png" and backgrounds[0].packed_file is None
    # The keypoint drawing came from the job's folder: it lives on in the .blend.
    assert Path(backgrounds[1].filepath).name == "keypoints.png" and backgrounds[1].packed_file is not None
    assert tuple(backgrounds[1].size) == (512, 512)
    result = result_of(collection)
    person = result.people[0]
    data = model_file.load_model(None)
    assert result.model.sha256 == data.sha256

    # Bones: SMPL-X names and tree, heads at the fitted body's rest joints.
    bones = armature.data.bones
    assert len(bones) == 55
    for name, parent in zip(JOINT_NAMES, JOINT_PARENTS, strict=True):
        assert (bones[name].parent.name if bones[name].parent else None) == (
            JOINT_NAMES[parent] if parent >= 0 else None
        )
    rest = numpy_body.rest_joints(data, person.betas, person.expression)
    heads = np.array([bones[n].head_local for n in JOINT_NAMES])
    np.testing.assert_allclose(heads[:, [0, 2, 1]] * [1, 1, -1], rest, atol=1e-5)

    # The open body has no pose correctives: no corrective keys; all fitted expressions.
    keys = mesh.data.shape_keys.key_blocks
    assert not [k for k in keys if k.name.startswith(rig.CORRECTIVE_PREFIX)]
    assert [keys[n].value for n in data.expression_names] == pytest.approx(person.expression, abs=1e-6)

    # Through the camera, joints and surface keypoints land where the fit put them: on the
    # detected keypoints, up to the fit's own residuals.
    scene = bpy.context.scene
    bpy.context.view_layer.update()
    matrix = np.array(armature.matrix_world)
    posed = np.array([armature.pose.bones[n].head for n in JOINT_NAMES]) @ matrix[:3, :3].T + matrix[:3, 3]
    evaluated = mesh.evaluated_get(bpy.context.evaluated_depsgraph_get()).to_mesh()
    vertices = np.array([v.co for v in evaluated.vertices]) @ matrix[:3, :3].T + matrix[:3, 3]
    surface = vertices[data.vertex_keypoint_ids]
    points = project(scene, camera, np.concatenate([posed, surface]))
    names = list(JOINT_NAMES) + list(VERTEX_KEYPOINT_NAMES)
    gaps = []
    for name, pixel in zip(names, points, strict=True):
        residual = person.residuals_px[result.keypoint_names.index(name)]
        if residual is None:
            continue
        detected = np.array(residual) * -1 + _fitted_pixel(data, person, result, name)
        np.testing.assert_allclose(pixel - detected, residual, atol=0.5)
        gaps.append((name, float(np.linalg.norm(pixel - detected))))
    face = dict(gaps)
    assert face["nose"] < 5.0 and face["left_eye"] < 5.0 and face["right_eye"] < 5.0
    assert np.median([gap for _, gap in gaps]) < 20.0


def _fitted_pixel(data, person, result, name) -> np.ndarray:
    """Where the fit itself projects keypoint `name` (numpy forward + the result's camera)."""
    posed = numpy_body.forward(data, numpy_body.full_pose(person), person.betas, person.expression,
                               person.transl)  # fmt: skip
    if name in JOINT_NAMES:
        point = posed.joints[JOINT_NAMES.index(name)]
    else:
        point = posed.vertices[data.vertex_keypoint_ids[VERTEX_KEYPOINT_NAMES.index(name)]]
    focal, (cx, cy) = result.camera.focal_length_px, result.camera.principal_point_px
    return np.array([focal * point[0] / point[2] + cx, focal * point[1] / point[2] + cy])


def test_cancel_stops_a_real_fit_and_the_worker_serves_the_next(photo_dir):
    request = FitRequest(photo=str(photo_dir / "bus.jpg"), device="cpu", person=PersonChoice(EVERYONE))
    job, out_dir = fit_job.start_fit(request)
    deadline = time.monotonic() + 120
    while job.poll().stage in ("starting", "loading", "detect") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not job.state.finished, job.state.error
    job.cancel()
    start = time.monotonic()
    state = job.wait(interval=0.05)
    assert state.status == runner.CANCELLED
    assert job.process.poll() is None  # the solver stopped itself: the worker was not killed, it serves on
    assert time.monotonic() - start < runner.CANCEL_GRACE_S
    assert not (out_dir / "result.json").exists()
    fit_job.remove_job_folder(out_dir)

    after, out_dir = fit_job.start_fit(FitRequest(photo=str(photo_dir / "bus.jpg"), device="cpu"))
    assert after.wait(interval=0.05).status == runner.DONE, after.state.error
    assert after.process is job.process and after.state.notice == ""
    assert len(read_result(after.state.result_path).people) == 1
    fit_job.remove_job_folder(out_dir)


def test_choosing_the_second_person_found(photo_dir):
    """bus.jpg: two people are found; asking for the second fits the second, and asking
    for a fifth says in plain words how many there are."""
    photo = str(photo_dir / "bus.jpg")
    fifth = FitRequest(photo=photo, device="cpu", person=PersonChoice(NUMBER, number=5))
    assert fit_job.start_fit(fifth)[0].wait(interval=0.05).error == (
        "Person 5 was asked for, but 2 people were found in the photo: choose a number from 1 to 2."
    )
    second = FitRequest(photo=photo, device="cpu", person=PersonChoice(NUMBER, number=2), overlay=True)
    job, out_dir = fit_job.start_fit(second)
    state = job.wait(interval=0.05)
    assert state.status == runner.DONE, state.error
    assert state.overlay_path == str(out_dir / "keypoints.png") and Path(state.overlay_path).is_file()
    found = json.loads((out_dir / "keypoints.json").read_text())["people"]
    fitted = read_result(state.result_path).people
    assert len(fitted) == 1 and fitted[0].box == pytest.approx(found[1]["box"], abs=1.0)


def test_a_photo_rotated_by_exif_shows_upright_behind_the_fit(photo_dir, tmp_path):
    """Phones store photos sideways with an EXIF orientation; Blender ignores it, the fit
    does not: the camera must show the worker's upright copy, at the fitted size."""
    from PIL import Image

    upright = Image.open(photo_dir / "bus.jpg").convert("RGB").resize((405, 540))
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to view"
    sideways = tmp_path / "sideways.jpg"
    upright.transpose(Image.Transpose.ROTATE_90).save(sideways, exif=exif, quality=95)

    bpy.ops.wm.read_factory_settings(use_empty=True)
    request = FitRequest(photo=str(sideways), device="cpu")
    state = fit_job.start_fit(request)[0].wait(interval=0.05)
    assert state.status == runner.DONE, state.error
    result = read_result(state.result_path)
    assert (result.image.width, result.image.height) == (405, 540)
    built = fit_job.finish_fit(state, request)
    assert built.collection.name == "sideways"
    image = built.camera.data.background_images[0].image
    assert tuple(image.size) == (405, 540)
    pixels = np.empty(405 * 540 * 4, dtype=np.float32)
    image.pixels.foreach_get(pixels)
    shown = pixels.reshape(540, 405, 4)[::-1, :, :3]
    assert np.abs(shown - np.asarray(upright, dtype=np.float32) / 255.0).mean() < 0.03


def test_a_click_on_another_persons_number_fits_that_person_in_place(addon, photo_dir):
    """bus.jpg: the fit of the most prominent person offers the others by number; a click
    on 2 fits the second person in place of the first (same collection name, settings
    kept for a later Re-fit)."""
    settings = bpy.context.scene.smplx_capture
    settings.image = str(photo_dir / "bus.jpg")
    settings.model, settings.device = "DEFAULT", "cpu"
    assert bpy.ops.smplx_capture.fit() == {"FINISHED"}
    collection = bpy.data.collections["bus"]
    assert collection[PROP_PEOPLE_FOUND] == 2 and list(collection[PROP_NUMBERS]) == [1]
    first = result_of(collection)
    armature = next(o for o in collection.objects if o.get(PROP_ROLE) == "armature")
    bpy.context.view_layer.objects.active = armature
    assert bpy.ops.smplx_capture.fit_person(number=2) == {"FINISHED"}
    assert [c.name for c in bpy.data.collections] == ["bus"]
    collection = bpy.data.collections["bus"]
    second = result_of(collection)
    assert list(collection[PROP_NUMBERS]) == [2] and second.people[0].number == 2
    assert second.people[0].box == pytest.approx(first.found_boxes[1], abs=1.0)
    assert (settings.person, settings.person_number) == ("NUMBER", 2)

