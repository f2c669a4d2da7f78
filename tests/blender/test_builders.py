"""The scene a fit builds, checked against the numpy body model: bones, rest joints, the
posed mesh in camera space, the camera's projection, drivers of the pose correctives,
expression keys, and a second fit beside the first."""

from __future__ import annotations

import time

import bpy
import numpy as np
import pytest
from blender_helpers import (
    evaluated_vertices_world,
    make_person,
    make_result,
    posed_joints_world,
    reference,
    world_to_opencv,
)
from bpy_extras.object_utils import world_to_camera_view
from mathutils import Quaternion, Vector

from smplx_capture_addon.blender_builders import correctives, placement, rig
from smplx_capture_addon.blender_builders.scene import build_fit
from smplx_capture_addon.body_model import model_file, numpy_body
from smplx_capture_addon.body_model.names import JOINT_NAMES, JOINT_PARENTS


@pytest.fixture
def built(small_model):
    person = make_person()
    return build_fit(make_result(small_model, [person]), small_model, name="photo"), person


def test_bones_have_smplx_names_hierarchy_and_rest_joints(built, small_model):
    fit, person = built
    armature = fit.people[0].armature
    bones = armature.data.bones
    assert len(bones) == 55
    assert sorted(bone.name for bone in bones) == sorted(JOINT_NAMES)
    for name, parent in zip(JOINT_NAMES, JOINT_PARENTS, strict=True):
        assert (bones[name].parent.name if bones[name].parent else None) == (
            JOINT_NAMES[parent] if parent >= 0 else None
        )
    heads = np.array([bones[name].head_local for name in JOINT_NAMES])
    rest = numpy_body.rest_joints(small_model, person.betas, person.expression)
    expected = rest @ placement.MODEL_TO_BLENDER.T
    np.testing.assert_allclose(heads, expected, atol=1e-5)


def test_posed_rig_reproduces_the_fit_in_camera_space(built, small_model):
    fit, person = built
    expected = reference(small_model, person)
    joints = world_to_opencv(fit.camera, posed_joints_world(fit.people[0].armature))
    np.testing.assert_allclose(joints, expected.joints, atol=1e-4)
    vertices = world_to_opencv(fit.camera, evaluated_vertices_world(fit.people[0].mesh))
    # Pose correctives included: this only holds if the drivers evaluated.
    np.testing.assert_allclose(vertices, expected.vertices, atol=1e-4)


def test_body_stands_upright_on_the_floor(built):
    fit, _ = built
    vertices = evaluated_vertices_world(fit.people[0].mesh)
    armature = fit.people[0].armature
    head = posed_joints_world(armature)[JOINT_NAMES.index("head")]
    pelvis = posed_joints_world(armature)[0]
    assert head[2] > pelvis[2] + 0.3  # Z up, head above the pelvis
    assert abs(np.array(armature.matrix_world)[:3, :3] - np.eye(3)).max() < 1e-6
    assert vertices[:, 2].min() > -0.5  # near the floor, not hanging below it


@pytest.mark.parametrize(
    ("size", "principal"), [((640, 480), None), ((480, 720), (230.0, 380.0)), ((800, 600), (420.0, 290.0))]
)
def test_camera_projection_lands_on_the_fitted_pixels(small_model, size, principal):
    person = make_person(seed=4)
    result = make_result(small_model, [person], size=size, focal=900.0, principal=principal)
    fit = build_fit(result, small_model)
    scene = bpy.context.scene
    principal_px = result.camera.principal_point_px
    expected = placement.project(reference(small_model, person).joints, 900.0, principal_px)
    width, height = size
    assert (scene.render.resolution_x, scene.render.resolution_y) == size
    pixels = []
    for point in posed_joints_world(fit.people[0].armature):
        ndc = world_to_camera_view(scene, fit.camera, Vector(point.tolist()))
        pixels.append((ndc.x * width, (1.0 - ndc.y) * height))
    assert np.abs(np.array(pixels) - expected).max() < 0.5


def test_mesh_deforms_with_the_armature(small_model_without_correctives):
    data = small_model_without_correctives
    fit = build_fit(make_result(data, [make_person(seed=1)]), data)
    mesh, armature = fit.people[0].mesh, fit.people[0].armature
    before = evaluated_vertices_world(mesh)
    bone = armature.pose.bones["left_elbow"]
    bone.rotation_quaternion = Quaternion((0.0, 0.0, 1.0), 1.0) @ bone.rotation_quaternion
    after = evaluated_vertices_world(mesh)
    moved = np.linalg.norm(after - before, axis=1) > 1e-3
    weighted = data.weights[:, JOINT_NAMES.index("left_elbow")] > 0.5
    assert moved[weighted].all()
    right_leg = data.weights[:, JOINT_NAMES.index("right_ankle")] > 0.5
    assert right_leg.any() and not moved[right_leg].any()


def test_reposed_rig_still_matches_the_model(built, small_model):
    """The artist turns an elbow: skinning and the driven correctives follow, so the mesh
    is still exactly the model's mesh for the new pose."""
    fit, person = built
    armature = fit.people[0].armature
    rotation = Quaternion((0.2, 1.0, -0.3), 1.1)
    armature.pose.bones["left_elbow"].rotation_quaternion = rotation
    elbow = JOINT_NAMES.index("left_elbow")
    frame = rig.bone_frames_model(armature)[elbow]
    pose = numpy_body.axis_angle_to_matrix(numpy_body.full_pose(person))
    pose[elbow] = frame @ np.array(rotation.to_matrix()) @ frame.T
    expected = numpy_body.forward(small_model, pose, person.betas, person.expression, person.transl)
    vertices = world_to_opencv(fit.camera, evaluated_vertices_world(fit.people[0].mesh))
    np.testing.assert_allclose(vertices, expected.vertices, atol=1e-4)


def test_elbow_rotation_drives_the_corrective_keys(built, small_model):
    fit, _ = built
    bpy.context.preferences.filepaths.use_scripts_auto_execute = False
    mesh, armature = fit.people[0].mesh, fit.people[0].armature
    keys = mesh.data.shape_keys.key_blocks
    names = [f"{rig.CORRECTIVE_PREFIX}left_elbow_{a}{b}" for a in range(3) for b in range(3)]
    for name in names:
        driver = mesh.data.shape_keys.animation_data.drivers.find(f'key_blocks["{name}"].value').driver
        assert driver.is_valid and driver.is_simple_expression
    frames = rig.bone_frames_model(armature)
    elbow = JOINT_NAMES.index("left_elbow")
    for angle in (0.4, 1.3):
        rotation = Quaternion((0.3, 0.9, 0.2), angle)
        armature.pose.bones["left_elbow"].rotation_quaternion = rotation
        bpy.context.view_layer.update()
        model_rotation = frames[elbow] @ np.array(rotation.to_matrix()) @ frames[elbow].T
        expected = (model_rotation - np.eye(3)).ravel()
        values = np.array([keys[name].value for name in names])
        np.testing.assert_allclose(values, expected, atol=1e-5)
    assert np.abs(values).max() > 0.1
    # An artist may switch the bone to Euler rotation: the drivers read the evaluated
    # rotation, whatever its mode.
    bone = armature.pose.bones["left_elbow"]
    bone.rotation_mode = "XYZ"
    bone.rotation_euler = (0.3, -0.8, 0.5)
    bpy.context.view_layer.update()
    model_rotation = frames[elbow] @ np.array(bone.rotation_euler.to_matrix()) @ frames[elbow].T
    values = np.array([keys[name].value for name in names])
    np.testing.assert_allclose(values, (model_rotation - np.eye(3)).ravel(), atol=1e-5)


def test_corrective_expression_matches_the_rotation_matrix():
    frame = numpy_body.axis_angle_to_matrix(np.array([0.3, -1.1, 0.5]))
    forms = correctives.feature_forms(frame)
    quaternion = numpy_body.matrix_to_quaternion(numpy_body.axis_angle_to_matrix(np.array([0.7, 0.2, -0.4])))
    rotation = numpy_body.axis_angle_to_matrix(np.array([0.7, 0.2, -0.4]))
    expected = frame @ rotation @ frame.T - np.eye(3)
    for a in range(3):
        for b in range(3):
            # Scaling the quaternion changes nothing: the expression divides by its length.
            value = correctives.evaluate(forms[a, b], 2.5 * quaternion)
            assert value == pytest.approx(expected[a, b], abs=1e-9)


def test_expression_keys_move_the_face(built, small_model):
    fit, person = built
    mesh = fit.people[0].mesh
    keys = mesh.data.shape_keys.key_blocks
    names = [f"expression_{i:03d}" for i in range(10)]
    np.testing.assert_allclose([keys[n].value for n in names], person.expression, atol=1e-6)
    before = world_to_opencv(fit.camera, evaluated_vertices_world(mesh))
    keys["expression_002"].value += 1.0
    after = world_to_opencv(fit.camera, evaluated_vertices_world(mesh))
    # Each vertex's rest offset is carried by its blended bone rotations (joints stay).
    posed = reference(small_model, person)
    blended = np.einsum("vj,jab->vab", small_model.weights, posed.world_rotations)
    expected = np.einsum("vab,vb->va", blended, small_model.exprdirs[:, :, 2])
    assert np.linalg.norm(expected, axis=1).max() > 1e-3
    np.testing.assert_allclose(after - before, expected, atol=1e-5)


def test_shape_keys_start_at_the_fit(built, small_model):
    fit, person = built
    mesh = fit.people[0].mesh
    keys = mesh.data.shape_keys.key_blocks
    assert all(keys[f"{rig.SHAPE_KEY_PREFIX}{i:03d}"].value == 0.0 for i in range(10))
    basis = np.array([v.co for v in mesh.data.vertices])
    shaped = numpy_body.shaped_vertices(small_model, person.betas) @ placement.MODEL_TO_BLENDER.T
    np.testing.assert_allclose(basis, shaped, atol=1e-5)


def test_body_without_correctives_gets_no_corrective_keys(small_model_without_correctives):
    data = small_model_without_correctives
    person = make_person(seed=2)
    fit = build_fit(make_result(data, [person]), data)
    keys = fit.people[0].mesh.data.shape_keys.key_blocks
    assert fit.people[0].corrective_keys == 0
    assert not [k for k in keys if k.name.startswith(rig.CORRECTIVE_PREFIX)]
    vertices = world_to_opencv(fit.camera, evaluated_vertices_world(fit.people[0].mesh))
    np.testing.assert_allclose(vertices, reference(data, person).vertices, atol=1e-4)


def test_two_people_share_one_camera(small_model):
    people = [make_person(seed=5, transl=(-0.6, -0.1, 4.5)), make_person(seed=6, transl=(0.7, 0.0, 5.0))]
    fit = build_fit(make_result(small_model, people), small_model, name="pair")
    assert len(fit.people) == 2
    for built_person, person in zip(fit.people, people, strict=True):
        joints = world_to_opencv(fit.camera, posed_joints_world(built_person.armature))
        np.testing.assert_allclose(joints, reference(small_model, person).joints, atol=1e-4)


def test_second_fit_leaves_the_first_intact(small_model):
    first = build_fit(make_result(small_model, [make_person(seed=7)]), small_model, name="photo")
    before = evaluated_vertices_world(first.people[0].mesh)
    first_names = sorted(o.name for o in first.collection.objects)
    second = build_fit(make_result(small_model, [make_person(seed=8)]), small_model, name="photo")
    assert second.collection.name != first.collection.name
    assert sorted(o.name for o in first.collection.objects) == first_names
    assert not set(first_names) & {o.name for o in second.collection.objects}
    np.testing.assert_allclose(evaluated_vertices_world(first.people[0].mesh), before, atol=1e-6)
    assert bpy.context.scene.camera == second.camera


def test_full_size_build_is_fast(synthetic_model_dir):
    data = model_file.load_model(synthetic_model_dir, "neutral")
    person = make_person(seed=9)
    start = time.perf_counter()
    fit = build_fit(make_result(data, [person]), data)
    seconds = time.perf_counter() - start
    assert fit.people[0].corrective_keys == 486
    assert len(fit.people[0].mesh.data.vertices) == 10475
    assert seconds < 20.0, f"building took {seconds:.1f} s"
    vertices = world_to_opencv(fit.camera, evaluated_vertices_world(fit.people[0].mesh))
    np.testing.assert_allclose(vertices, reference(data, person).vertices, atol=1e-4)


def test_a_build_that_fails_midway_leaves_nothing_behind(small_model, monkeypatch):
    first = build_fit(make_result(small_model, [make_person(seed=13)]), small_model, name="kept")
    before = (sorted(o.name for o in bpy.data.objects), len(bpy.data.meshes), len(bpy.data.armatures),
              len(bpy.data.cameras), sorted(c.name for c in bpy.data.collections))  # fmt: skip

    def out_of_memory(*args, **kwargs):
        raise MemoryError("no memory left for shape keys")

    monkeypatch.setattr(rig, "add_corrective_keys", out_of_memory)  # fails after camera, rig and mesh
    with pytest.raises(MemoryError):
        build_fit(make_result(small_model, [make_person(seed=14)], size=(300, 200)), small_model, name="lost")
    after = (sorted(o.name for o in bpy.data.objects), len(bpy.data.meshes), len(bpy.data.armatures),
             len(bpy.data.cameras), sorted(c.name for c in bpy.data.collections))  # fmt: skip
    assert after == before
    scene = bpy.context.scene
    assert (scene.camera, scene.render.resolution_x, scene.render.resolution_y) == (first.camera, 640, 480)


def test_bones_no_keypoint_saw_are_gathered_and_coloured(small_model):
    from dataclasses import replace

    from smplx_capture_addon.blender_ui.panel import inferred_summary

    unseen = ["left_knee", "left_ankle", "left_foot", *JOINT_NAMES[25:40]]
    built = build_fit(make_result(small_model, [replace(make_person(), inferred_joints=unseen)]), small_model)
    armature = built.people[0].armature
    assert rig.inferred_bones(armature) == unseen
    assert all(armature.pose.bones[name].color.palette == rig.INFERRED_COLOUR for name in unseen)
    assert armature.pose.bones["right_knee"].color.palette == "DEFAULT"
    assert inferred_summary(rig.inferred_bones(armature)) == [
        "left_knee", "left_ankle", "left_foot", "left hand: all fingers"
    ]  # fmt: skip
    # A result of everything seen marks nothing.
    seen = build_fit(make_result(small_model, [make_person()]), small_model).people[0].armature
    assert rig.inferred_bones(seen) == []

