"""Export for animation: FBX per preset and binary glTF, read back with Blender's own
importers (bones, hierarchy, rest and posed joints, posed mesh, shape keys) and with
independent readers (ufbx, pygltflib); the scene is left as it was; the operator, the
File > Export entry and the command line; refusals with nothing written."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import addon_utils
import bpy
import numpy as np
import pygltflib
import pytest
from blender_helpers import evaluated_vertices_world, make_person, make_result, posed_joints_world

from smplx_capture_addon.blender_builders import controls, placement
from smplx_capture_addon.blender_builders.rig import CORRECTIVE_PREFIX
from smplx_capture_addon.blender_builders.scene import build_fit
from smplx_capture_addon.body_model import numpy_body
from smplx_capture_addon.body_model.names import JOINT_NAMES
from smplx_capture_addon.cli import main
from smplx_capture_addon.errors import CaptureError
from smplx_capture_addon.export import exporter
from smplx_capture_addon.export.exporter import BAKE, KEYS, export_rigs
from smplx_capture_addon.export.presets import PRESETS
from smplx_capture_addon.result_format import write_result

ROOT = Path(__file__).resolve().parents[2]
MM = 1e-3  # joints and vertices agree within 1 mm (in metres, after unit conversion)


@dataclass
class RigState:
    """What an export must carry over, in Blender world space (metres)."""

    parents: dict[str, str | None]
    rest_joints: np.ndarray
    posed_joints: np.ndarray
    rest_vertices: np.ndarray  # the mesh's basis
    posed_vertices: np.ndarray
    deltas: dict[str, np.ndarray]  # shape key name -> world-space offsets, in key order
    values: dict[str, float]


def _world(matrix, points: np.ndarray) -> np.ndarray:
    matrix = np.array(matrix)
    return points @ matrix[:3, :3].T + matrix[:3, 3]


def rig_state(armature: bpy.types.Object, mesh: bpy.types.Object) -> RigState:
    bpy.context.view_layer.update()
    bones = armature.data.bones
    rest_joints = _world(armature.matrix_world, np.array([bones[name].head_local for name in JOINT_NAMES]))
    blocks = mesh.data.shape_keys.key_blocks
    count = len(mesh.data.vertices)

    def co(block) -> np.ndarray:
        flat = np.empty(count * 3)
        block.data.foreach_get("co", flat)
        return flat.reshape(count, 3)

    basis = co(blocks[0])
    linear = np.array(mesh.matrix_world)[:3, :3]
    return RigState(
        parents={bone.name: bone.parent.name if bone.parent else None for bone in bones},
        rest_joints=rest_joints,
        posed_joints=posed_joints_world(armature),
        rest_vertices=_world(mesh.matrix_world, basis),
        posed_vertices=evaluated_vertices_world(mesh),
        deltas={block.name: (co(block) - basis) @ linear.T for block in blocks[1:]},
        values={block.name: block.value for block in blocks[1:]},
    )


def expected_rest(state: RigState, baked: bool) -> np.ndarray:
    """The rest mesh an export writes: baked correctives are mixed in at their values."""
    rest = state.rest_vertices.copy()
    if baked:
        for name, delta in state.deltas.items():
            if name.startswith(CORRECTIVE_PREFIX):
                rest += state.values[name] * delta
    return rest


def nearest(points: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Index of the closest reference point for each point (glTF may reorder and split)."""
    squared = (points**2).sum(1)[:, None] + (reference**2).sum(1)[None] - 2.0 * points @ reference.T
    return np.argmin(squared, axis=1)


def assert_same_rig(original: RigState, imported: RigState, baked: bool) -> None:
    assert imported.parents == original.parents
    np.testing.assert_allclose(imported.rest_joints, original.rest_joints, atol=MM)
    np.testing.assert_allclose(imported.posed_joints, original.posed_joints, atol=MM)
    rest = expected_rest(original, baked)
    order = nearest(imported.rest_vertices, rest)
    assert len(set(order.tolist())) == len(rest)  # every vertex is there
    np.testing.assert_allclose(imported.rest_vertices, rest[order], atol=MM)
    np.testing.assert_allclose(imported.posed_vertices, original.posed_vertices[order], atol=MM)
    names = [n for n in original.deltas if not (baked and n.startswith(CORRECTIVE_PREFIX))]
    assert list(imported.deltas) == names
    for name in names:
        np.testing.assert_allclose(
            imported.deltas[name], original.deltas[name][order], atol=1e-5, err_msg=name
        )


def keyed_frames(obj: bpy.types.Object) -> set[float]:
    action = obj.animation_data.action
    frames: set[float] = set()
    for layer in action.layers:
        for strip in layer.strips:
            for bag in strip.channelbags:
                for curve in bag.fcurves:
                    frames |= {point.co[0] for point in curve.keyframe_points}
    return frames


def scene_summary() -> dict:
    """What an export must leave as it was."""
    view_layer, data = bpy.context.view_layer, bpy.data
    return {
        "objects": sorted(o.name for o in bpy.data.objects),
        "data": [len(c) for c in (data.meshes, data.armatures, data.cameras, data.actions, data.collections)],
        "selected": sorted(o.name for o in view_layer.objects if o.select_get()),
        "active": view_layer.objects.active.name if view_layer.objects.active else None,
        "frames": (
            bpy.context.scene.frame_start,
            bpy.context.scene.frame_end,
            bpy.context.scene.frame_current,
        ),
        "drivers": [len(k.animation_data.drivers) for k in bpy.data.shape_keys],
    }


@pytest.fixture
def fit(small_model):
    person = make_person(seed=5)
    built = build_fit(make_result(small_model, [person]), small_model, name="photo")
    scene = bpy.context.scene
    scene.frame_start, scene.frame_end = 1, 120  # the user's range, which an export keeps
    scene.frame_set(7)
    return built, person


def reimport(path: Path, **options) -> tuple[bpy.types.Object, bpy.types.Object]:
    bpy.ops.wm.read_factory_settings(use_empty=True)
    if path.suffix == ".fbx":
        # No offset: Blender's importer shifts FBX animation by one frame unless told not to.
        bpy.ops.import_scene.fbx(filepath=str(path), anim_offset=0.0, **options)
    else:
        bpy.ops.import_scene.gltf(filepath=str(path), **options)
    return bpy.data.objects["photo rig"], bpy.data.objects["photo body"]


@pytest.mark.parametrize(
    ("preset", "correctives", "camera"),
    [("unity", BAKE, True), ("unreal", KEYS, False), ("maya", BAKE, False), ("generic", KEYS, True)],
)
def test_fbx_round_trip_per_preset(fit, small_model, tmp_path, preset, correctives, camera):
    built, person = fit
    person_objects = built.people[0]
    original = rig_state(person_objects.armature, person_objects.mesh)
    camera_matrix = np.array(built.camera.matrix_world)
    armature_matrix = np.array(person_objects.armature.matrix_world)
    before = scene_summary()

    path = export_rigs([person_objects.armature], tmp_path / "fit.fbx", preset_name=preset,
                       correctives=correctives, include_camera=camera)  # fmt: skip

    assert path == tmp_path / "fit.fbx" and path.stat().st_size > 0
    assert scene_summary() == before
    assert [p.name for p in tmp_path.iterdir()] == ["fit.fbx"]  # no temporary file left
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask  # an ordinary file, not mkstemp's private one
    axes = PRESETS[preset].fbx
    armature, mesh = reimport(path, primary_bone_axis=axes["primary_bone_axis"],
                              secondary_bone_axis=axes["secondary_bone_axis"])  # fmt: skip
    assert sorted(b.name for b in armature.data.bones) == sorted(JOINT_NAMES)  # no leaf bones
    assert_same_rig(original, rig_state(armature, mesh), baked=correctives == BAKE)
    assert keyed_frames(armature) == {1.0}
    cameras = [o for o in bpy.data.objects if o.type == "CAMERA"]
    assert len(cameras) == int(camera)
    if camera:
        imported = np.array(cameras[0].matrix_world)
        np.testing.assert_allclose(imported[:3, 3], camera_matrix[:3, 3], atol=MM)
        np.testing.assert_allclose(imported[:3, 2], camera_matrix[:3, 2], atol=1e-4)  # looks the same way
    if correctives == KEYS:
        # The fitted shape is in the rest mesh itself: shape keys at 0 are "as fitted".
        shaped = numpy_body.shaped_vertices(small_model, person.betas) @ placement.MODEL_TO_BLENDER.T
        np.testing.assert_allclose(
            rig_state(armature, mesh).rest_vertices, _world(armature_matrix, shaped), atol=MM
        )


@pytest.mark.parametrize("correctives", [BAKE, KEYS])
def test_glb_round_trip(fit, tmp_path, correctives):
    built, _ = fit
    person_objects = built.people[0]
    original = rig_state(person_objects.armature, person_objects.mesh)
    before = scene_summary()

    path = export_rigs([person_objects.armature], tmp_path / "fit.glb", preset_name="unreal",
                       correctives=correctives, include_camera=True)  # fmt: skip

    assert scene_summary() == before
    assert [p.name for p in tmp_path.iterdir()] == ["fit.glb"]
    armature, mesh = reimport(path)
    assert sorted(b.name for b in armature.data.bones) == sorted(JOINT_NAMES)
    assert_same_rig(original, rig_state(armature, mesh), baked=correctives == BAKE)
    assert len(keyed_frames(armature)) == 1  # the pose, keyed on one frame
    assert [o.name for o in bpy.data.objects if o.type == "CAMERA"] == ["photo camera"]


@pytest.mark.parametrize(("suffix", "preset"), [(".fbx", "unreal"), (".fbx", "maya"), (".glb", "unity")])
def test_ik_controls_are_baked_away(fit, tmp_path, suffix, preset):
    """A rig posed through its IK controls exports as the same 55 bones in the pose shown,
    with no controls and no constraints, and the scene keeps its controls (also for
    centimetre presets, whose scaled copy the controls, in metres, would pull astray)."""
    built, _ = fit
    person_objects = built.people[0]
    rig = person_objects.armature
    controls.add_ik_controls(built.collection, rig)
    target = bpy.data.objects[f"{rig.name} right_leg target"]
    target.matrix_world.translation += 0.3 * (rig.matrix_world @ rig.pose.bones["right_hip"].head
                                              - target.matrix_world.translation)  # fmt: skip
    original = rig_state(rig, person_objects.mesh)
    before = scene_summary()

    path = export_rigs([rig], tmp_path / f"fit{suffix}", preset_name=preset)

    assert scene_summary() == before and controls.has_ik(rig)
    axes = PRESETS[preset].fbx if suffix == ".fbx" else {}
    armature, mesh = reimport(path, **{k: v for k, v in axes.items() if k.endswith("bone_axis")})
    assert sorted(b.name for b in armature.data.bones) == sorted(JOINT_NAMES)
    assert not any(bone.constraints for bone in armature.pose.bones)
    assert not [o for o in bpy.data.objects if o.type == "EMPTY"]
    assert_same_rig(original, rig_state(armature, mesh), baked=True)


def ufbx_facts(path: Path) -> dict:
    """What ufbx reads in `path` (see ufbx_facts.py: it runs in its own process)."""
    script = Path(__file__).with_name("ufbx_facts.py")
    command = [sys.executable, str(script), str(path)]
    out = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


@pytest.mark.parametrize(("preset", "metres_per_unit"), [("unity", 1.0), ("unreal", 0.01), ("maya", 0.01)])
def test_fbx_is_read_by_ufbx_in_the_preset_units(fit, tmp_path, preset, metres_per_unit):
    built, _ = fit
    armature = built.people[0].armature
    pelvis_world = posed_joints_world(armature)[0]
    path = export_rigs([armature], tmp_path / "fit.fbx", preset_name=preset, correctives=KEYS)

    facts = ufbx_facts(path)
    assert facts["unit_meters"] == pytest.approx(metres_per_unit)
    assert facts["scale"]["photo rig"] == pytest.approx([1.0, 1.0, 1.0])  # no node scaled by 100
    assert facts["bones"] == sorted(JOINT_NAMES)
    # -Z forward, Y up: Blender's (x, y, z) is the file's (x, z, -y), in the file's unit.
    expected = np.array([pelvis_world[0], pelvis_world[2], -pelvis_world[1]]) / metres_per_unit
    np.testing.assert_allclose(facts["position"]["pelvis"], expected, atol=MM / metres_per_unit)
    (body,) = facts["meshes"]
    assert body["name"] == "photo body"
    assert body["vertices"] == len(built.people[0].mesh.data.vertices)
    assert body["clusters"] == sorted(JOINT_NAMES)
    assert body["channels"] == [k.name for k in built.people[0].mesh.data.shape_keys.key_blocks[1:]]
    (stack,) = facts["anim_stacks"]
    fps = bpy.context.scene.render.fps / bpy.context.scene.render.fps_base
    assert stack[0] == pytest.approx(stack[1])  # one keyed frame...
    assert stack[0] * fps == pytest.approx(1.0)  # ...frame 1


def test_glb_is_well_formed_for_pygltflib(fit, tmp_path):
    built, _ = fit
    mesh = built.people[0].mesh
    path = export_rigs(
        [built.people[0].armature], tmp_path / "fit.glb", correctives=KEYS, include_camera=True
    )

    gltf = pygltflib.GLTF2().load(str(path))
    blob = gltf.binary_blob()
    assert gltf.asset.version == "2.0"
    for view in gltf.bufferViews:
        assert view.byteOffset + view.byteLength <= len(blob)
    sizes = {"SCALAR": 1, "VEC2": 2, "VEC3": 3, "VEC4": 4, "MAT4": 16}
    for accessor in gltf.accessors:
        if accessor.bufferView is not None:
            view = gltf.bufferViews[accessor.bufferView]
            item = sizes[accessor.type] * {5126: 4, 5125: 4, 5123: 2, 5121: 1}[accessor.componentType]
            assert (accessor.byteOffset or 0) + accessor.count * max(
                item, view.byteStride or 0
            ) <= view.byteLength + 3
    joints = [gltf.nodes[j].name for j in gltf.skins[0].joints]
    assert sorted(joints) == sorted(JOINT_NAMES)
    (body,) = [m for m in gltf.meshes]
    keys = [k.name for k in mesh.data.shape_keys.key_blocks[1:]]
    assert body.extras["targetNames"] == keys
    assert all(len(p.targets) == len(keys) for p in body.primitives)
    assert len(gltf.cameras) == 1
    (animation,) = gltf.animations
    animated = {gltf.nodes[c.target.node].name for c in animation.channels if c.target.path == "rotation"}
    assert set(JOINT_NAMES) <= animated


def test_failed_export_leaves_scene_and_file_as_they_were(fit, tmp_path, monkeypatch):
    built, _ = fit
    target = tmp_path / "fit.fbx"
    target.write_bytes(b"the previous export")
    bpy.context.view_layer.objects.active = built.camera
    built.camera.select_set(True)
    before = scene_summary()

    def half_write(path: Path, *_):
        path.write_bytes(b"half a file")
        raise CaptureError("the exporter broke")

    monkeypatch.setitem(exporter._WRITERS, "FBX", half_write)
    with pytest.raises(CaptureError, match="the exporter broke"):
        export_rigs([built.people[0].armature], target, correctives=BAKE, include_camera=True)

    assert scene_summary() == before
    assert [p.name for p in tmp_path.iterdir()] == ["fit.fbx"]
    assert target.read_bytes() == b"the previous export"


def test_refusals_say_what_to_do(fit, tmp_path):
    built, _ = fit
    rig = built.people[0].armature
    with pytest.raises(CaptureError, match="Nothing is selected"):
        exporter.rigs_to_export([], None)
    with pytest.raises(CaptureError, match="Nothing is selected"):
        export_rigs([], tmp_path / "fit.fbx")
    other = bpy.data.objects.new("other rig", bpy.data.armatures.new("other rig"))
    bpy.context.scene.collection.objects.link(other)
    with pytest.raises(CaptureError, match=r"'other rig' is not an SMPL-X rig.*select the rig"):
        exporter.rigs_to_export([other], other)
    other["smplx_capture_role"] = "armature"  # marked, but without the SMPL-X bones
    with pytest.raises(CaptureError, match="not an SMPL-X rig"):
        exporter.rigs_to_export([other], other)
    # Body, camera and rig all stand for the rig; stray objects beside them are ignored.
    assert exporter.rigs_to_export([built.people[0].mesh, other, built.camera], other) == [rig]

    blocker = tmp_path / "a file"
    blocker.write_text("")
    for path, message in [
        (blocker / "fit.fbx", "does not exist: make it"),
        (tmp_path / "fit.obj", "Export to a .fbx or .glb file"),
        (tmp_path, "is a folder"),
    ]:
        with pytest.raises(CaptureError, match=message):
            export_rigs([rig], path)
    with pytest.raises(CaptureError, match="Unknown export preset 'godot'"):
        export_rigs([rig], tmp_path / "fit.fbx", preset_name="godot")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a file"]


@pytest.fixture
def addon():
    addon_utils.enable("smplx_capture_addon", default_set=True)
    yield
    addon_utils.disable("smplx_capture_addon", default_set=True)


def test_operator_exports_the_selected_fit_and_is_in_the_export_menu(addon, fit, tmp_path):
    built, _ = fit
    menu = bpy.types.TOPBAR_MT_file_export
    assert any(getattr(f, "__name__", "") == "menu_export" for f in menu._dyn_ui_initialize())
    for obj in bpy.context.view_layer.objects:
        obj.select_set(False)
    with pytest.raises(RuntimeError, match="Nothing is selected"):
        bpy.ops.smplx_capture.export("EXEC_DEFAULT", filepath=str(tmp_path / "fit.fbx"))

    built.people[0].armature.select_set(True)
    bpy.context.view_layer.objects.active = built.people[0].armature
    result = bpy.ops.smplx_capture.export(
        "EXEC_DEFAULT", filepath=str(tmp_path / "fit"), file_format="GLB",
        preset="unreal", bake_correctives=False, include_camera=True,
    )  # fmt: skip
    assert result == {"FINISHED"}
    assert [p.name for p in tmp_path.iterdir()] == ["fit.glb"]
    keys = len(built.people[0].mesh.data.shape_keys.key_blocks) - 1
    gltf = pygltflib.GLTF2().load(str(tmp_path / "fit.glb"))
    assert len(gltf.meshes[0].extras["targetNames"]) == keys and len(gltf.cameras) == 1
    addon_utils.disable("smplx_capture_addon", default_set=True)
    assert not any(getattr(f, "__name__", "") == "menu_export" for f in menu._dyn_ui_initialize())


def test_command_line_exports_a_blend_and_a_result(fit, small_model, tmp_path, capsys):
    built, person = fit
    original = rig_state(built.people[0].armature, built.people[0].mesh)
    blend = tmp_path / "scene.blend"
    bpy.ops.wm.save_as_mainfile(filepath=str(blend))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run(
        [sys.executable, "-m", "smplx_capture_addon", "export", str(blend),
         "-o", str(tmp_path / "out" / "fit.fbx"), "--preset", "unreal", "--correctives", "keys"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "exported 'photo rig'" in done.stdout
    armature, mesh = reimport(tmp_path / "out" / "fit.fbx")
    assert_same_rig(original, rig_state(armature, mesh), baked=False)

    result = write_result(make_result(small_model, [person]), tmp_path / "result.json")
    assert main(["export", str(result), "-o", str(tmp_path / "fit.glb"), "--model", small_model.path]) == 0
    gltf = pygltflib.GLTF2().load(str(tmp_path / "fit.glb"))
    assert sorted(gltf.nodes[j].name for j in gltf.skins[0].joints) == sorted(JOINT_NAMES)

    assert main(["export", str(blend), "-o", str(tmp_path / "fit.obj")]) == 2
    assert "Export to a .fbx or .glb file" in capsys.readouterr().err
