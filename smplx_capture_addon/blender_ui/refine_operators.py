"""Thin operators of Refine the Fit: pinned bones, bones flipped in depth, keypoint
handles, the floor and the IK controls. Each calls a plain function of
`blender_builders` (the tests call those) and is one undo step; a refusal is a message,
the scene left as it was."""

from __future__ import annotations

import bpy
from bpy.props import BoolProperty, EnumProperty

from ..blender_builders import controls, depth_flip, edits, floor, keypoint_handles
from ..blender_builders.controls import LIMBS
from ..errors import CaptureError
from . import fit_job


def _rig(context: bpy.types.Context) -> bpy.types.Object | None:
    return fit_job.person_objects(context.active_object)[0]


class _RefineOperator:
    bl_options = {"REGISTER", "UNDO"}  # noqa: RUF012

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return _rig(context) is not None

    def execute(self, context: bpy.types.Context) -> set[str]:
        try:
            self.run(context)
        except CaptureError as error:
            self.report({"ERROR"}, str(error))
            return {"CANCELLED"}
        return {"FINISHED"}

    def run(self, context: bpy.types.Context) -> None:
        raise NotImplementedError


class SMPLX_CAPTURE_OT_pin_bones(_RefineOperator, bpy.types.Operator):  # noqa: N801 (Blender's naming)
    """Pin the selected bones (a re-fit keeps their rotations), or unpin them"""

    bl_idname = "smplx_capture.pin_bones"
    bl_label = "Pin Selected Bones"
    pin: BoolProperty(name="Pin", default=True)

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return _rig(context) is not None and context.mode == "POSE"

    def run(self, context: bpy.types.Context) -> None:
        names = [bone.name for bone in context.selected_pose_bones or ()]
        edits.set_pinned(_rig(context), names, self.pin)


class SMPLX_CAPTURE_OT_clear_pins(_RefineOperator, bpy.types.Operator):  # noqa: N801 (Blender's naming)
    """Unpin every bone of the active fit's rig"""

    bl_idname = "smplx_capture.clear_pins"
    bl_label = "Clear Pins"

    def run(self, context: bpy.types.Context) -> None:
        rig = _rig(context)
        edits.set_pinned(rig, edits.pinned_bones(rig), False)


class SMPLX_CAPTURE_OT_flip_in_depth(_RefineOperator, bpy.types.Operator):  # noqa: N801 (Blender's naming)
    """Turn the selected bones to their other depth (toward or away from the camera), joints kept in view"""

    bl_idname = "smplx_capture.flip_in_depth"
    bl_label = "Flip in Depth"

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return _rig(context) is not None and context.mode == "POSE"

    def run(self, context: bpy.types.Context) -> None:
        camera = fit_job.camera_of(fit_job.fit_of(context.active_object))
        if camera is None:
            raise CaptureError("This fit has lost its camera: its bones' depths cannot be flipped.")
        names = [bone.name for bone in context.selected_pose_bones or ()]
        flipped = depth_flip.flip_in_depth(_rig(context), camera, names)
        if flipped:
            self.report({"INFO"}, f"Flipped {', '.join(flipped)}; a re-fit holds them.")
        else:
            self.report(
                {"WARNING"}, "Nothing flipped: select bones of the rig that do not lie across the view."
            )


class SMPLX_CAPTURE_OT_keypoint_handles(_RefineOperator, bpy.types.Operator):  # noqa: N801 (Blender's naming)
    """Show the fit's keypoints as handles over the photo (drag them, then Re-fit), or remove them"""

    bl_idname = "smplx_capture.keypoint_handles"
    bl_label = "Keypoint Handles"
    show: BoolProperty(name="Show", default=True)

    def run(self, context: bpy.types.Context) -> None:
        fit = fit_job.fit_of(context.active_object)
        if self.show:
            fit_job.show_handles(fit)
        else:
            keypoint_handles.remove_handles(fit)


class SMPLX_CAPTURE_OT_mark_keypoints(bpy.types.Operator):  # noqa: N801 (Blender's naming)
    """Mark the selected keypoint handles seen or not seen (a re-fit ignores those not seen)"""

    bl_idname = "smplx_capture.mark_keypoints"
    bl_label = "Mark Keypoints"
    bl_options = {"REGISTER", "UNDO"}  # noqa: RUF012
    seen: BoolProperty(name="Seen", default=False)

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return any(o.get(keypoint_handles.PROP_KEYPOINT) for o in context.selected_objects)

    def execute(self, context: bpy.types.Context) -> set[str]:
        keypoint_handles.set_seen(list(context.selected_objects), self.seen)
        return {"FINISHED"}


class SMPLX_CAPTURE_OT_snap_to_floor(_RefineOperator, bpy.types.Operator):  # noqa: N801 (Blender's naming)
    """Move the fit's bodies and camera together so the lowest foot is on the floor (z = 0); the view stays"""

    bl_idname = "smplx_capture.snap_to_floor"
    bl_label = "Feet on the Floor"

    def run(self, context: bpy.types.Context) -> None:
        floor.snap_to_floor(fit_job.fit_of(context.active_object))


class SMPLX_CAPTURE_OT_keep_on_floor(_RefineOperator, bpy.types.Operator):  # noqa: N801 (Blender's naming)
    """Keep the feet above the floor while posing (Floor constraints on the foot bones), or stop"""

    bl_idname = "smplx_capture.keep_on_floor"
    bl_label = "Keep on Floor"
    keep: BoolProperty(name="Keep", default=True)

    def run(self, context: bpy.types.Context) -> None:
        rig, mesh = fit_job.person_objects(context.active_object)
        if not self.keep:
            floor.release_floor(rig)
        elif mesh is None:
            raise CaptureError("This fit has lost its body: the feet cannot be found.")
        else:
            floor.keep_on_floor(fit_job.fit_of(context.active_object), rig, mesh)


class SMPLX_CAPTURE_OT_ik_controls(_RefineOperator, bpy.types.Operator):  # noqa: N801 (Blender's naming)
    """Add IK controls for arms and legs (hand and foot targets, elbow and knee poles), or remove them"""

    bl_idname = "smplx_capture.ik_controls"
    bl_label = "IK Controls"
    add: BoolProperty(name="Add", default=True)

    def run(self, context: bpy.types.Context) -> None:
        if self.add:
            controls.add_ik_controls(fit_job.fit_of(context.active_object), _rig(context))
        else:
            controls.remove_ik_controls(_rig(context))


class SMPLX_CAPTURE_OT_ik_switch(_RefineOperator, bpy.types.Operator):  # noqa: N801 (Blender's naming)
    """Switch a limb between FK and IK, keeping its pose"""

    bl_idname = "smplx_capture.ik_switch"
    bl_label = "FK/IK"
    limb: EnumProperty(name="Limb", items=[(name, name.replace("_", " ").title(), "") for name in LIMBS])
    ik: BoolProperty(name="IK", default=True)

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        rig = _rig(context)
        return rig is not None and controls.has_ik(rig)

    def run(self, context: bpy.types.Context) -> None:
        controls.set_ik(_rig(context), self.limb, self.ik)


CLASSES = (
    SMPLX_CAPTURE_OT_pin_bones,
    SMPLX_CAPTURE_OT_clear_pins,
    SMPLX_CAPTURE_OT_flip_in_depth,
    SMPLX_CAPTURE_OT_keypoint_handles,
    SMPLX_CAPTURE_OT_mark_keypoints,
    SMPLX_CAPTURE_OT_snap_to_floor,
    SMPLX_CAPTURE_OT_keep_on_floor,
    SMPLX_CAPTURE_OT_ik_controls,
    SMPLX_CAPTURE_OT_ik_switch,
)
