"""Write fitted rigs to FBX or binary glTF with Blender's own exporters (bpy + numpy).

What is exported is a temporary copy of each rig, mesh and (optionally) camera: the copy
holds the pose as shown now (what IK controls and floor constraints make of it, baked
into the bones: the file has no controls), keyed on frame 1, the shape keys at their
current values without drivers (formats cannot carry Blender drivers), the pose correctives either
mixed into the mesh ("bake") or kept as keys, and, for centimetre presets, everything
scaled by 100. A rig with an Action (a video's motion) is exported animated instead:
over the scene's frame range, every frame keys the copy's root, bones and shape keys as
the original shows them there (the correctives as keys with their driven values: a mix
into the mesh would hold for one pose only), the root motion where the preset puts it
(presets, root_motion).

The copies take the originals' names for the time of the export, so the
file names things as the scene does. Whatever happens, the scene is left as it was: the
copies are removed, names, selection, active object and frame range restored. The file
is written next to its target under a temporary name and renamed at the end
(`atomic_files`), so a failed export leaves no half-written file, and the temporary file
of an export killed mid-write is removed by the next write into that folder.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

import bpy
import numpy as np
from mathutils import Matrix

from ..atomic_files import atomic_output, os_error_in
from ..blender_builders.controls import bake_visual_pose
from ..blender_builders.rig import CORRECTIVE_PREFIX
from ..blender_builders.scene import PROP_ROLE, remove_objects
from ..body_model.names import JOINT_NAMES
from ..errors import CaptureError
from . import root_motion
from .presets import DEFAULT_PRESET, Preset, preset

EXTENSIONS = {"FBX": ".fbx", "GLB": ".glb"}  # file format -> its file name extension
BAKE, KEYS = "BAKE", "KEYS"  # what becomes of the pose correctives
KEY_FRAME = 1
_TEMP_NAME = "smplx_capture_export"  # collection of the copies; suffix of the renamed originals

NOTHING_SELECTED = "Nothing is selected: select the rig, body or camera of a fit to export it."


def rig_of(obj: bpy.types.Object) -> list[bpy.types.Object]:
    """The SMPL-X rigs `obj` stands for: itself (a rig), its rig (a body), or every rig of
    its fit (a camera). Refused for anything else, with a message that says what to do."""
    role = obj.get(PROP_ROLE)
    if role == "mesh" and obj.parent is not None:
        candidates = [obj.parent]
    elif role == "camera":
        candidates = [o for c in obj.users_collection for o in c.objects if o.get(PROP_ROLE) == "armature"]
    else:
        candidates = [obj]
    for candidate in candidates:
        if not is_smplx_rig(candidate):
            raise CaptureError(
                f"'{obj.name}' is not an SMPL-X rig made by SMPL-X Capture: select the rig, body or "
                "camera of a fit (build one with Fit first)."
            )
    return candidates


def is_smplx_rig(obj: bpy.types.Object) -> bool:
    """An armature the builders made: marked as such and holding the 55 SMPL-X bones."""
    return (
        obj.type == "ARMATURE"
        and obj.get(PROP_ROLE) == "armature"
        and all(name in obj.data.bones for name in JOINT_NAMES)
    )


def rigs_to_export(
    selected: Iterable[bpy.types.Object], active: bpy.types.Object | None
) -> list[bpy.types.Object]:
    """The rigs of the selected objects, the active object's first. Objects that belong to
    no fit are ignored when some do; when none does, the first is refused by name."""
    objects = sorted(selected, key=lambda obj: obj != active)
    if not objects:
        raise CaptureError(NOTHING_SELECTED)
    rigs: list[bpy.types.Object] = []
    refusal: CaptureError | None = None
    for obj in objects:
        try:
            found = rig_of(obj)
        except CaptureError as error:
            refusal = refusal or error
            continue
        rigs += [rig for rig in found if rig not in rigs]
    if not rigs:
        assert refusal is not None
        raise refusal
    return rigs


def scene_rigs(scene: bpy.types.Scene) -> list[bpy.types.Object]:
    """Every SMPL-X rig of `scene`, by name (what the command line exports)."""
    rigs = sorted((o for o in scene.objects if is_smplx_rig(o)), key=lambda o: o.name)
    if not rigs:
        raise CaptureError(f"The scene '{scene.name}' holds no SMPL-X rig: build one with `blend` or Fit.")
    return rigs


def export_rigs(
    armatures: list[bpy.types.Object],
    filepath: str | Path,
    *,
    preset_name: str = DEFAULT_PRESET,
    correctives: str = BAKE,
    include_camera: bool = False,
) -> Path:
    """Write `armatures` with their bodies (and their fits' cameras) to `filepath`, .fbx or
    .glb. Returns the path written."""
    if not armatures:
        raise CaptureError(NOTHING_SELECTED)
    target, file_format = _target(filepath)
    chosen = preset(preset_name)
    if correctives not in (BAKE, KEYS):
        raise CaptureError(
            f"Pose correctives are baked ('{BAKE}') or kept as keys ('{KEYS}'), not '{correctives}'."
        )
    if bpy.context.mode.startswith("EDIT"):
        raise CaptureError("Leave Edit Mode before exporting (edits are applied when you leave it).")
    people = [(armature, _body_of(armature)) for armature in armatures]
    cameras = _cameras_of(armatures) if include_camera else []
    # glTF is metres by its specification; only FBX is scaled for centimetre targets.
    scale = chosen.data_scale if file_format == "FBX" else 1.0
    animated = any(_is_animated(armature) for armature in armatures)
    bpy.context.view_layer.update()  # drivers of the correctives evaluated for the pose shown
    with _scene_kept(bpy.context.scene, bpy.context.view_layer, animated) as keep:
        copies = _make_copies(people, cameras, scale, KEYS if animated else correctives, keep, animated)
        if animated:
            on_root_bone = file_format == "FBX" and chosen.root_bone
            _key_frames(people, copies, scale, keep, on_root_bone)
            if file_format == "FBX" and chosen.armature_node and len(people) == 1:
                _rename(copies[0], chosen.armature_node, keep)
        _select_only(copies, bpy.context.view_layer)
        with atomic_output(target) as temporary:
            _WRITERS[file_format](temporary, chosen, include_camera)
            if temporary.stat().st_size == 0:
                raise CaptureError(f"Blender's exporter wrote nothing for {target.name}: see the console.")
    return target


def format_of(path: str | Path) -> str | None:
    """The file format ("FBX", "GLB") that `path`'s extension names, or None."""
    suffix = Path(path).suffix.lower()
    return next((name for name, extension in EXTENSIONS.items() if extension == suffix), None)


def _target(filepath: str | Path) -> tuple[Path, str]:
    target = Path(bpy.path.abspath(str(filepath))).expanduser().resolve()
    if target.is_dir():
        raise CaptureError(f"{target} is a folder: give the name of the file to write.")
    file_format = format_of(target)
    if file_format is None:
        raise CaptureError(f"Export to a .fbx or .glb file, not '{target.name}'.")
    if not target.parent.is_dir():
        raise CaptureError(f"The folder {target.parent} does not exist: make it, or choose another place.")
    return target, file_format


def _body_of(armature: bpy.types.Object) -> bpy.types.Object:
    for child in armature.children:
        if child.type == "MESH" and child.get(PROP_ROLE) == "mesh":
            return child
    raise CaptureError(
        f"The rig '{armature.name}' has no body mesh any more: undo its removal, or fit again."
    )


def _cameras_of(armatures: list[bpy.types.Object]) -> list[bpy.types.Object]:
    cameras: list[bpy.types.Object] = []
    for armature in armatures:
        for collection in armature.users_collection:
            cameras += [o for o in collection.objects if o.get(PROP_ROLE) == "camera" and o not in cameras]
    if not cameras:
        raise CaptureError("This fit has no camera any more: export without the camera.")
    return cameras


class _Keeper:
    """What an export changes in the scene, to be undone: objects it made, names it took."""

    def __init__(self, collection: bpy.types.Collection) -> None:
        self.collection = collection
        self.objects: list[bpy.types.Object] = []
        self.actions: list[bpy.types.Action] = []
        self.renamed: list[tuple[bpy.types.ID, str]] = []

    def take_name(self, original: bpy.types.ID, copy: bpy.types.ID) -> None:
        """Give `copy` the name of `original`, which carries a temporary one meanwhile."""
        name = original.name
        self.renamed.append((original, name))
        original.name = f"{name}.{_TEMP_NAME}"
        copy.name = name


@contextmanager
def _scene_kept(scene: bpy.types.Scene, view_layer: bpy.types.ViewLayer, animated: bool) -> Iterator[_Keeper]:
    selected = [o for o in view_layer.objects if o.select_get(view_layer=view_layer)]
    active = view_layer.objects.active
    frames = scene.frame_start, scene.frame_end, scene.frame_current
    collection = bpy.data.collections.new(_TEMP_NAME)
    scene.collection.children.link(collection)
    keep = _Keeper(collection)
    try:
        # The exporters key the scene's frame range: one frame, the copies hold still (unless animated).
        if not animated:
            scene.frame_start = scene.frame_end = KEY_FRAME
        yield keep
    finally:
        remove_objects(keep.objects)
        for action in keep.actions:
            bpy.data.actions.remove(action)
        bpy.data.collections.remove(collection)
        for original, name in reversed(keep.renamed):
            original.name = name
        scene.frame_start, scene.frame_end = frames[:2]
        scene.frame_set(frames[2])
        for obj in view_layer.objects:
            obj.select_set(obj in selected, view_layer=view_layer)
        view_layer.objects.active = active


def _rename(copy: bpy.types.Object, name: str, keep: _Keeper) -> None:
    """Call `copy` `name`; an object of the scene called so carries a temporary name meanwhile."""
    existing = bpy.data.objects.get(name)
    if existing is not None and existing != copy:
        keep.take_name(existing, copy)
    else:
        copy.name = name


def _select_only(objects: list[bpy.types.Object], view_layer: bpy.types.ViewLayer) -> None:
    for obj in view_layer.objects:
        obj.select_set(False, view_layer=view_layer)
    for obj in objects:
        obj.select_set(True, view_layer=view_layer)
    view_layer.objects.active = objects[0]


def _conjugated(matrix: Matrix, scale: float) -> Matrix:
    """The transform that does to scaled data what `matrix` does to the original."""
    if scale == 1.0:
        return matrix.copy()
    return Matrix.Scale(scale, 4) @ matrix @ Matrix.Scale(1.0 / scale, 4)


def _make_copies(
    people: list[tuple[bpy.types.Object, bpy.types.Object]],
    cameras: list[bpy.types.Object],
    scale: float,
    correctives: str,
    keep: _Keeper,
    animated: bool,
) -> list[bpy.types.Object]:
    """The copies, two per person (rig, body) then the cameras; a still one holds its pose
    keyed on KEY_FRAME, an animated one is keyed later (`_key_frames`)."""
    copies: list[bpy.types.Object] = []
    for armature, mesh in people:
        rig = _copy_object(armature, keep)
        bake_visual_pose(rig)  # IK controls and floor constraints become the bones' own pose
        rig.parent = None
        rig.matrix_world = _conjugated(armature.matrix_world, scale)
        if scale != 1.0:
            rig.data.transform(Matrix.Scale(scale, 4))
            for bone in rig.pose.bones:
                bone.location = bone.location * scale
        if not animated:
            _key_pose(rig, keep)

        body = _copy_object(mesh, keep)
        body.parent = rig
        body.matrix_parent_inverse = _conjugated(mesh.matrix_parent_inverse, scale)
        body.matrix_basis = _conjugated(mesh.matrix_basis, scale)
        for modifier in body.modifiers:
            if modifier.type == "ARMATURE" and modifier.object == armature:
                modifier.object = rig
        if body.data.shape_keys is not None:
            body.data.shape_keys.animation_data_clear()  # drivers: values stay as driven now
            if correctives == BAKE:
                _bake_correctives(body)
        if scale != 1.0:
            body.data.transform(Matrix.Scale(scale, 4), shape_keys=True)
        copies += [rig, body]
    for camera in cameras:
        copy = _copy_object(camera, keep)
        copy.parent = None
        copy.matrix_world = _conjugated(camera.matrix_world, scale)
        copy.data.clip_start *= scale
        copy.data.clip_end *= scale
        copies.append(copy)
    return copies


def _copy_object(obj: bpy.types.Object, keep: _Keeper) -> bpy.types.Object:
    """A copy of `obj` and its data in the export collection, under the original's names."""
    copy = obj.copy()
    copy.data = obj.data.copy()
    copy.animation_data_clear()
    keep.objects.append(copy)
    keep.collection.objects.link(copy)
    copy.hide_viewport = copy.hide_render = copy.hide_select = False
    keep.take_name(obj, copy)
    keep.take_name(obj.data, copy.data)
    return copy


def _key_pose(rig: bpy.types.Object, keep: _Keeper) -> None:
    """Key every bone as it stands on KEY_FRAME: the file carries the pose as animation."""
    for bone in rig.pose.bones:
        _key_transform(bone, KEY_FRAME)
    keep.actions.append(rig.animation_data.action)


def _key_transform(item: bpy.types.Object | bpy.types.PoseBone, frame: int) -> None:
    """Key an object's or a bone's location, rotation (in its rotation mode) and scale."""
    rotation = "rotation_quaternion" if item.rotation_mode == "QUATERNION" else "rotation_euler"
    for path in ("location", rotation, "scale"):
        item.keyframe_insert(path, frame=frame)


def _is_animated(armature: bpy.types.Object) -> bool:
    return armature.animation_data is not None and armature.animation_data.action is not None


def _key_frames(
    people: list[tuple[bpy.types.Object, bpy.types.Object]],
    copies: list[bpy.types.Object],
    scale: float,
    keep: _Keeper,
    on_root_bone: bool,
) -> None:
    """Key every frame of the scene's range on the copies (rig, body pairs, in `people`'s
    order) as the originals show it: root, bones, and shape key values (driven ones as
    their drivers have them at that frame). `on_root_bone`: the root motion then moves
    to a root bone (root_motion)."""
    scene = bpy.context.scene
    frames = range(scene.frame_start, scene.frame_end + 1)
    pairs = [(original, copies[2 * k : 2 * k + 2]) for k, original in enumerate(people)]
    samples: list[list[root_motion.Sample]] = [[] for _ in pairs]
    for frame in frames:
        scene.frame_set(frame)
        for ((armature, mesh), (rig, body)), sampled in zip(pairs, samples, strict=True):
            if on_root_bone:
                sampled.append(root_motion.sample(armature))
            rig.matrix_world = _conjugated(armature.matrix_world, scale)
            _key_transform(rig, frame)
            for bone in rig.pose.bones:
                bone.matrix_basis = armature.pose.bones[bone.name].matrix_basis
                bone.location = bone.location * scale
                _key_transform(bone, frame)
            if body.data.shape_keys is not None:
                for key in body.data.shape_keys.key_blocks[1:]:
                    key.value = mesh.data.shape_keys.key_blocks[key.name].value
                    key.keyframe_insert("value", frame=frame)
    if on_root_bone:
        for ((armature, _), (rig, _)), sampled in zip(pairs, samples, strict=True):
            ground = root_motion.ground_of(armature, sampled)
            root_motion.key_root_motion(rig, sampled, ground, scale, frames)
    for rig, body in (pair for _, pair in pairs):
        keep.actions.append(rig.animation_data.action)
        if body.data.shape_keys is not None and body.data.shape_keys.animation_data is not None:
            keep.actions.append(body.data.shape_keys.animation_data.action)


def _bake_correctives(body: bpy.types.Object) -> None:
    """Mix the pose-corrective keys, at their current values, into the mesh and drop them.
    Other keys keep their deltas (each key stores absolute positions, so all move)."""
    blocks = body.data.shape_keys.key_blocks
    count = len(body.data.vertices) * 3
    basis, co = np.empty(count), np.empty(count)
    blocks[0].data.foreach_get("co", basis)
    offset = np.zeros(count)
    correctives = [key for key in blocks[1:] if key.name.startswith(CORRECTIVE_PREFIX)]
    for key in correctives:
        if not key.mute and key.value != 0.0:
            key.data.foreach_get("co", co)
            offset += key.value * (co - basis)
    for key in reversed(correctives):
        body.shape_key_remove(key)
    for key in body.data.shape_keys.key_blocks:
        key.data.foreach_get("co", co)
        key.data.foreach_set("co", co + offset)
    body.data.vertices.foreach_set("co", basis + offset)
    body.data.update()


def _run_exporter(operator: Callable[..., set[str]], **options: object) -> None:
    try:
        result = operator(**options)
    except RuntimeError as error:
        # A full disk reaches us as the text of a traceback: as an OSError, atomic_output says what to do.
        raise os_error_in(str(error)) or CaptureError(f"Blender's exporter failed: {error}") from None
    if "FINISHED" not in result:
        raise CaptureError("Blender's exporter stopped without writing the file: see the console.")


def _write_fbx(path: Path, chosen: Preset, include_camera: bool) -> None:
    _run_exporter(
        bpy.ops.export_scene.fbx,
        filepath=str(path),
        check_existing=False,
        use_selection=True,
        object_types={"ARMATURE", "MESH", "CAMERA"} if include_camera else {"ARMATURE", "MESH"},
        use_mesh_modifiers=False,  # the Armature modifier is the skin; applying it would drop the keys
        add_leaf_bones=False,
        armature_nodetype="NULL",
        use_armature_deform_only=False,
        bake_anim=True,
        bake_anim_use_all_bones=True,
        bake_anim_use_nla_strips=False,
        bake_anim_use_all_actions=False,
        bake_anim_force_startend_keying=True,
        bake_anim_simplify_factor=0.0,  # every frame as keyed: simplifying moved joints over 1 mm
        use_custom_props=False,
        path_mode="AUTO",
        **chosen.fbx,
    )


def _write_glb(path: Path, chosen: Preset, include_camera: bool) -> None:
    _run_exporter(
        bpy.ops.export_scene.gltf,
        filepath=str(path),
        check_existing=False,
        export_format="GLB",
        use_selection=True,
        export_cameras=include_camera,
        export_yup=True,
        export_apply=False,  # modifiers stay: the skin is the Armature modifier
        export_skins=True,
        export_def_bones=False,
        export_leaf_bone=False,
        export_rest_position_armature=True,
        export_morph=True,
        export_morph_animation=True,
        export_animations=True,
        export_animation_mode="ACTIONS",
        export_extras=False,
    )


_WRITERS: dict[str, Callable[[Path, Preset, bool], None]] = {"FBX": _write_fbx, "GLB": _write_glb}
