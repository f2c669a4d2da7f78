"""The sidebar panel of the 3D View (its own "SMPL-X Capture" tab)."""

from __future__ import annotations

import textwrap

import bpy

from ..blender_builders import controls, edits, floor, keypoint_handles, rig
from ..blender_builders import scene as builders
from ..body_model.names import JOINT_NAMES, LEFT_HAND_JOINTS, RIGHT_HAND_JOINTS
from . import fit_job

CATEGORY = "SMPL-X Capture"
MAX_PERSON_BUTTONS = 9  # a crowd's others are picked by number or box


def _wrapped(layout: bpy.types.UILayout, text: str, context: bpy.types.Context, icon: str = "NONE") -> None:
    """Multi-line label: panels do not wrap text themselves."""
    width = max(20, int(context.region.width / 7)) if context.region is not None else 60
    column = layout.column(align=True)
    for index, line in enumerate(textwrap.wrap(text, width)):
        column.label(text=line, icon=icon if index == 0 else "BLANK1")


class SMPLX_CAPTURE_PT_fit(bpy.types.Panel):  # noqa: N801 (Blender's naming)
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = CATEGORY
    bl_label = "Fit a Photo"

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        settings = context.scene.smplx_capture
        layout.prop(settings, "image")
        layout.prop(settings, "show_keypoints")
        layout.prop(settings, "person", expand=True)
        if settings.person == "BOX":
            layout.prop(settings, "box")
        elif settings.person == "NUMBER":
            layout.prop(settings, "person_number")
        layout.prop(settings, "model")
        layout.prop(settings, "gender")
        layout.prop(settings, "device", expand=True)
        layout.prop(settings, "focal_px")
        if not _job_progress(layout, context, "photo"):
            row = layout.row(align=True)
            row.operator("smplx_capture.fit", icon="ARMATURE_DATA")
            if fit_job.fit_of(context.active_object) is not None:
                row.operator("smplx_capture.fit", text="Re-fit", icon="FILE_REFRESH").keep_edits = True
            _job_outcome(layout, context, "photo")
            _other_people(layout, fit_job.fit_of(context.active_object))
        _job_error(layout, context, "photo")


def _job_progress(layout: bpy.types.UILayout, context: bpy.types.Context, kind: str) -> bool:
    """The bar and Cancel, in place of the Fit buttons, while a job of this panel's `kind`
    (photo or video) runs; whether one does."""
    job = context.window_manager.smplx_capture_job
    if job.kind != kind or not job.running:
        return False
    layout.progress(factor=job.progress, type="BAR", text=job.status)
    layout.operator("smplx_capture.cancel", icon="CANCEL")
    return True


def _job_outcome(layout: bpy.types.UILayout, context: bpy.types.Context, kind: str) -> None:
    job = context.window_manager.smplx_capture_job
    if job.kind == kind and job.status:
        layout.label(text=job.status)


def _job_error(layout: bpy.types.UILayout, context: bpy.types.Context, kind: str) -> None:
    job = context.window_manager.smplx_capture_job
    if job.kind == kind and job.error:
        _wrapped(layout.box(), job.error, context, icon="ERROR")


class SMPLX_CAPTURE_PT_video(bpy.types.Panel):  # noqa: N801 (Blender's naming)
    """A video fitted frame by frame into one rig with an Action, with the body model,
    gender and device that Fit a Photo has chosen."""

    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = CATEGORY
    bl_label = "Fit a Video"
    bl_parent_id = "SMPLX_CAPTURE_PT_fit"

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        settings = context.scene.smplx_capture
        layout.prop(settings, "video")
        row = layout.row(align=True)
        row.prop(settings, "video_start")
        row.prop(settings, "video_end")
        row.prop(settings, "video_step")
        layout.prop(settings, "video_person")
        layout.prop(settings, "video_ground")
        if not _job_progress(layout, context, "video"):
            layout.operator("smplx_capture.fit_video", icon="SEQUENCE")
            _job_outcome(layout, context, "video")
        _job_error(layout, context, "video")


def _other_people(layout: bpy.types.UILayout, fit: bpy.types.Collection | None) -> None:
    """One button per person the photo showed (numbered as the keypoint picture numbers
    them): a click fits that one in place of the active fit."""
    found = fit.get(builders.PROP_PEOPLE_FOUND, 0) if fit is not None else 0
    if found < 2:
        return
    fitted = set(fit.get(builders.PROP_NUMBERS, []))
    row = layout.row(align=True)
    row.label(text="Person:")
    for number in range(1, min(found, MAX_PERSON_BUTTONS) + 1):
        row.operator("smplx_capture.fit_person", text=str(number), depress=number in fitted).number = number


class SMPLX_CAPTURE_PT_refine(bpy.types.Panel):  # noqa: N801 (Blender's naming)
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = CATEGORY
    bl_label = "Refine the Fit"

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return fit_job.fit_of(context.active_object) is not None

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        armature, _ = fit_job.person_objects(context.active_object)
        layout.operator("smplx_capture.look_through", icon="CAMERA_DATA")
        layout.operator("smplx_capture.export", icon="EXPORT")
        if armature is not None:
            row = layout.row(align=True)
            row.prop(armature.data, "pose_position", expand=True)
            layout.operator("smplx_capture.reset_pose", icon="LOOP_BACK")


def _shape_keys(context: bpy.types.Context, shapes: bool) -> list[bpy.types.ShapeKey]:
    """The fitted person's shape keys (`shapes`) or its expression keys, basis excluded."""
    _, mesh = fit_job.person_objects(context.active_object)
    if mesh is None or mesh.data.shape_keys is None:
        return []
    keys = mesh.data.shape_keys.key_blocks[1:]
    if shapes:
        return [k for k in keys if k.name.startswith(rig.SHAPE_KEY_PREFIX)]
    return [k for k in keys if not k.name.startswith((rig.SHAPE_KEY_PREFIX, rig.CORRECTIVE_PREFIX))]


class _KeysPanel:
    """A sub-panel of Refine the Fit with sliders for one kind of the person's shape keys."""

    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = CATEGORY
    bl_parent_id = "SMPLX_CAPTURE_PT_refine"
    shapes: bool  # the shape keys, or else the expression keys

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return bool(_shape_keys(context, shapes=cls.shapes))

    def draw(self, context: bpy.types.Context) -> None:
        column = self.layout.column(align=True)
        for key in _shape_keys(context, shapes=self.shapes):
            column.prop(key, "value", text=key.name, slider=True)


class SMPLX_CAPTURE_PT_shape(_KeysPanel, bpy.types.Panel):  # noqa: N801 (Blender's naming)
    bl_label = "Shape (0 = as fitted)"
    shapes = True

    def draw(self, context: bpy.types.Context) -> None:
        super().draw(context)
        self.layout.operator("smplx_capture.fit_bones", icon="BONE_DATA")


class SMPLX_CAPTURE_PT_expression(_KeysPanel, bpy.types.Panel):  # noqa: N801 (Blender's naming)
    bl_label = "Expression"
    bl_options = {"DEFAULT_CLOSED"}  # noqa: RUF012 (dozens of sliders: opened when wanted)
    shapes = False


class _RefineSubPanel:
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = CATEGORY
    bl_parent_id = "SMPLX_CAPTURE_PT_refine"
    bl_options = {"DEFAULT_CLOSED"}  # noqa: RUF012

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return fit_job.person_objects(context.active_object)[0] is not None


class SMPLX_CAPTURE_PT_pose(_RefineSubPanel, bpy.types.Panel):  # noqa: N801 (Blender's naming)
    bl_label = "Pose: Pins, Depth and Mirror"

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        armature, _ = fit_job.person_objects(context.active_object)
        row = layout.row(align=True)
        row.operator("smplx_capture.pin_bones", text="Pin", icon="PINNED").pin = True
        row.operator("smplx_capture.pin_bones", text="Unpin", icon="UNPINNED").pin = False
        row.operator("smplx_capture.clear_pins", text="Clear")
        pinned = edits.pinned_bones(armature)
        column = layout.column(align=True)
        for name in pinned:
            column.label(text=name, icon="PINNED")
        if not pinned:
            column.label(text="No pinned bones (pin them in Pose Mode)")
        if context.mode == "POSE":
            layout.operator("smplx_capture.flip_in_depth", icon="ARROW_LEFTRIGHT")
            row = layout.row(align=True)
            row.operator("pose.copy", icon="COPYDOWN")
            row.operator("pose.paste", text="Paste X-Flipped", icon="PASTEFLIPDOWN").flipped = True


class SMPLX_CAPTURE_PT_keypoints(_RefineSubPanel, bpy.types.Panel):  # noqa: N801 (Blender's naming)
    bl_label = "Keypoints"

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        shown = keypoint_handles.handles_collection(fit_job.fit_of(context.active_object)) is not None
        row = layout.row(align=True)
        row.operator("smplx_capture.keypoint_handles", text="Show Handles" if not shown else "Reset Handles",
                     icon="EMPTY_DATA").show = True  # fmt: skip
        if shown:
            row.operator("smplx_capture.keypoint_handles", text="Remove", icon="X").show = False
            row = layout.row(align=True)
            row.operator("smplx_capture.mark_keypoints", text="Seen", icon="HIDE_OFF").seen = True
            row.operator("smplx_capture.mark_keypoints", text="Not Seen", icon="HIDE_ON").seen = False


class SMPLX_CAPTURE_PT_floor_and_ik(_RefineSubPanel, bpy.types.Panel):  # noqa: N801 (Blender's naming)
    bl_label = "Floor and IK"

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        armature, _ = fit_job.person_objects(context.active_object)
        row = layout.row(align=True)
        row.operator("smplx_capture.snap_to_floor", icon="IMPORT")
        kept = floor.kept_on_floor(armature)
        row.operator("smplx_capture.keep_on_floor", text="Keep" if not kept else "Release",
                     depress=kept).keep = not kept  # fmt: skip
        if not controls.has_ik(armature):
            layout.operator("smplx_capture.ik_controls", text="Add IK Controls", icon="CON_KINEMATIC")
            return
        layout.operator("smplx_capture.ik_controls", text="Remove IK Controls", icon="X").add = False
        column = layout.column(align=True)
        for limb in controls.LIMBS:
            ik = controls.is_ik(armature, limb)
            row = column.row(align=True)
            row.label(text=limb.replace("_", " ").title())
            switch = row.operator("smplx_capture.ik_switch", text="IK" if ik else "FK", depress=ik)
            switch.limb, switch.ik = limb, not ik


def inferred_summary(names: list[str]) -> list[str]:
    """Bone names for the panel, a hand's 15 finger bones said as one line."""
    lines = []
    for side, hand in (("left", LEFT_HAND_JOINTS), ("right", RIGHT_HAND_JOINTS)):
        fingers = JOINT_NAMES[hand]
        if set(fingers) <= set(names):
            names = [name for name in names if name not in fingers]
            lines.append(f"{side} hand: all fingers")
    return [*names, *lines]


class SMPLX_CAPTURE_PT_inferred(_RefineSubPanel, bpy.types.Panel):  # noqa: N801 (Blender's naming)
    bl_label = "Not Seen in the Photo"
    bl_options = set()  # noqa: RUF012 (open: what to check comes first)

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        armature, _ = fit_job.person_objects(context.active_object)
        return armature is not None and bool(rig.inferred_bones(armature))

    def draw(self, context: bpy.types.Context) -> None:
        armature, _ = fit_job.person_objects(context.active_object)
        _wrapped(self.layout, f"Posed by the priors, shown in the bone collection '{rig.INFERRED_BONES}':",
                 context, icon="INFO")  # fmt: skip
        column = self.layout.column(align=True)
        for line in inferred_summary(rig.inferred_bones(armature)):
            column.label(text=line, icon="BONE_DATA")


CLASSES = (
    SMPLX_CAPTURE_PT_fit,
    SMPLX_CAPTURE_PT_video,
    SMPLX_CAPTURE_PT_refine,
    SMPLX_CAPTURE_PT_inferred,
    SMPLX_CAPTURE_PT_shape,
    SMPLX_CAPTURE_PT_expression,
    SMPLX_CAPTURE_PT_pose,
    SMPLX_CAPTURE_PT_keypoints,
    SMPLX_CAPTURE_PT_floor_and_ik,
)
