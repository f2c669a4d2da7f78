"""Export presets: where the file goes decides its units, axes and bone orientation.

The rig is built in metres, Z up (Blender's model space). Per preset, for FBX:

========  =============  ===========  ==========  ================================
preset    units in file  forward, up  bone axes   why
========  =============  ===========  ==========  ================================
unity     metres         -Z, Y        Y, X        Unity's units; objects at scale 1
                                                  ("FBX All"); Unity is Y up
unreal    centimetres    -Z, Y        X, -Y       Unreal's units, no scale 100 on the
                                                  root; X along the bone as in
                                                  Unreal's skeletons (IK Retargeter)
maya      centimetres    -Z, Y        X, Y        Maya's default units; X down the
                                                  joint as Maya orients joints
generic   Blender's      -Z, Y        Y, X        Blender's own FBX defaults
========  =============  ===========  ==========  ================================

Root motion, for an animated rig (a video's motion) written to FBX:

========  ============================  =============================================
preset    root motion on                why
========  ============================  =============================================
unity     a `root` bone at the ground,  Generic rigs take their root motion from the
          parent of the pelvis          bone picked as "Root node" (pick `root`);
                                        Humanoid rigs derive it from the hips, whose
                                        motion in the world is unchanged
unreal    a `root` bone, as for unity;  "Enable Root Motion" reads the skeleton's root
          the armature node of a file   bone, and Unreal's FBX importer (4.24 on)
          with one rig is named         makes the armature node that bone unless it
          "Armature"                    is named "Armature"
maya      the armature node             a scene, not an engine: animators key the
                                        rig's top node
generic   the armature node             Blender's own layout
========  ============================  =============================================

The `root` bone carries the pelvis's travel along the ground and its heading, relative
to the first frame; the pelvis carries the rest, and the armature node holds still (see
root_motion). Still exports keep the 55 SMPL-X bones for every preset: an animated
export carries its own mesh and skeleton, so nothing has to match a still one, and
retargeting tools get the bones they map. .glb keeps the motion on the armature node.

No preset adds leaf bones (end bones that retargeting tools show as extra joints).
Bone axes are the FBX exporter's primary and secondary bone axis: the bone's own
direction (Blender's Y) and its roll axis (Blender's X); they change bone orientations
only, never where joints are. Centimetre presets scale a temporary copy of the rig by
100 and write a unit scale of 1 cm, so no node carries a scale of 100. glTF fixes metres
and Y up itself: for .glb the preset changes nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from ..errors import CaptureError


@dataclass(frozen=True)
class Preset:
    name: str
    label: str
    description: str
    data_scale: float  # the temporary copy's scale: 100 writes centimetres
    fbx: Mapping[str, Any]  # options of bpy.ops.export_scene.fbx
    root_bone: bool = False  # animated FBX: root motion on a `root` bone (root_motion)
    armature_node: str | None = None  # animated FBX of one rig: the armature node's name


def _fbx(**options: Any) -> Mapping[str, Any]:
    return MappingProxyType(options)


# apply_unit_scale=False with FBX_SCALE_ALL: the file's unit is 100 * global_scale cm and
# no transform is scaled, whatever the scene's unit settings.
PRESETS: dict[str, Preset] = {
    "unity": Preset(
        "unity", "Unity", "Metres, Y up, objects at scale 1", 1.0,
        _fbx(apply_unit_scale=False, apply_scale_options="FBX_SCALE_ALL", global_scale=1.0,
             axis_forward="-Z", axis_up="Y", primary_bone_axis="Y", secondary_bone_axis="X"),
        root_bone=True,
    ),
    "unreal": Preset(
        "unreal", "Unreal Engine", "Centimetres, X along the bones, no leaf bones", 100.0,
        _fbx(apply_unit_scale=False, apply_scale_options="FBX_SCALE_ALL", global_scale=0.01,
             axis_forward="-Z", axis_up="Y", primary_bone_axis="X", secondary_bone_axis="-Y"),
        root_bone=True, armature_node="Armature",
    ),
    "maya": Preset(
        "maya", "Maya", "Centimetres, Y up, X down the joints", 100.0,
        _fbx(apply_unit_scale=False, apply_scale_options="FBX_SCALE_ALL", global_scale=0.01,
             axis_forward="-Z", axis_up="Y", primary_bone_axis="X", secondary_bone_axis="Y"),
    ),
    "generic": Preset(
        "generic", "Generic", "Blender's FBX defaults, without leaf bones", 1.0,
        _fbx(apply_unit_scale=True, apply_scale_options="FBX_SCALE_NONE", global_scale=1.0,
             axis_forward="-Z", axis_up="Y", primary_bone_axis="Y", secondary_bone_axis="X"),
    ),
}  # fmt: skip
DEFAULT_PRESET = "generic"


def preset(name: str) -> Preset:
    """The preset called `name` (any case)."""
    try:
        return PRESETS[name.lower()]
    except KeyError:
        raise CaptureError(f"Unknown export preset '{name}': choose one of {', '.join(PRESETS)}.") from None
