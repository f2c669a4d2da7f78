"""Feet on the floor: the fit's people and camera moved up or down together until the
lowest foot point lies on the ground plane z = 0 (the view through the camera does not
change), and Floor constraints that keep the feet above it while the pose is edited.
"""

from __future__ import annotations

import bpy
import numpy as np

from ..errors import CaptureError
from .scene import PROP_ROLE

FOOT_BONES = {"left": ("left_ankle", "left_foot"), "right": ("right_ankle", "right_foot")}
FOOT_WEIGHT = 0.5  # a vertex belongs to a foot when its foot bones carry at least this much of it
FLOOR_CONSTRAINT = "Keep on floor"
ROLE_FLOOR = "floor"


def foot_vertices(mesh: bpy.types.Object) -> dict[str, np.ndarray]:
    """Indices of each foot's vertices (by the foot bones' skin weights)."""
    groups = {group.name: group.index for group in mesh.vertex_groups}
    weights = {side: np.zeros(len(mesh.data.vertices)) for side in FOOT_BONES}
    wanted = {groups[bone]: side for side, bones in FOOT_BONES.items() for bone in bones if bone in groups}
    for vertex in mesh.data.vertices:
        for element in vertex.groups:
            side = wanted.get(element.group)
            if side is not None:
                weights[side][vertex.index] += element.weight
    return {side: np.flatnonzero(weight >= FOOT_WEIGHT) for side, weight in weights.items()}


def deformed_vertices_world(mesh: bpy.types.Object) -> np.ndarray:
    """(V, 3) world positions of the posed (evaluated) body."""
    bpy.context.view_layer.update()
    evaluated = mesh.evaluated_get(bpy.context.evaluated_depsgraph_get())
    posed = evaluated.to_mesh()
    try:
        co = np.empty(len(posed.vertices) * 3)
        posed.vertices.foreach_get("co", co)
    finally:
        evaluated.to_mesh_clear()
    matrix = np.array(mesh.matrix_world)
    return co.reshape(-1, 3) @ matrix[:3, :3].T + matrix[:3, 3]


def lowest_foot_point(meshes: list[bpy.types.Object]) -> float:
    """World height of the lowest foot vertex of the posed bodies (of any vertex, for a body
    whose skin names no foot bones)."""
    lowest = np.inf
    for mesh in meshes:
        vertices = deformed_vertices_world(mesh)
        feet = np.concatenate(list(foot_vertices(mesh).values()))
        lowest = min(lowest, float((vertices[feet] if len(feet) else vertices)[:, 2].min()))
    return lowest


def snap_to_floor(fit: bpy.types.Collection) -> float:
    """Move the fit's people and camera together so that the lowest foot point is at z = 0;
    returns how far they moved up (metres). The camera sees the bodies as before."""
    meshes = [o for o in fit.objects if o.get(PROP_ROLE) == "mesh"]
    if not meshes:
        raise CaptureError("This fit has no body any more: nothing to put on the floor.")
    rise = -lowest_foot_point(meshes)
    for obj in fit.objects:
        if obj.get(PROP_ROLE) in ("camera", "armature"):
            obj.matrix_world.translation.z += rise
    bpy.context.view_layer.update()
    return rise


def floor_of(fit: bpy.types.Collection) -> bpy.types.Object:
    """The fit's floor: an empty at the world origin the Floor constraints look at (made
    when missing)."""
    for obj in fit.objects:
        if obj.get(PROP_ROLE) == ROLE_FLOOR:
            return obj
    floor = bpy.data.objects.new(f"{fit.name} floor", None)
    fit.objects.link(floor)
    floor.empty_display_type = "PLAIN_AXES"
    floor[PROP_ROLE] = ROLE_FLOOR
    return floor


def keep_on_floor(fit: bpy.types.Collection, armature: bpy.types.Object, mesh: bpy.types.Object) -> None:
    """Floor constraints on the foot bones: while the pose is edited, each stays as high
    above the floor as it is above its foot's sole now, so the sole does not sink below."""
    floor = floor_of(fit)
    vertices = deformed_vertices_world(mesh)
    matrix = np.array(armature.matrix_world)
    for side, indices in foot_vertices(mesh).items():
        sole = float(vertices[indices, 2].min()) if len(indices) else 0.0
        for name in FOOT_BONES[side]:
            bone = armature.pose.bones[name]
            constraint = bone.constraints.get(FLOOR_CONSTRAINT) or bone.constraints.new("FLOOR")
            constraint.name = FLOOR_CONSTRAINT
            constraint.target = floor
            constraint.floor_location = "FLOOR_Z"
            head = matrix @ np.append(np.array(bone.head), 1.0)
            constraint.offset = max(float(head[2]) - sole, 0.0)
    bpy.context.view_layer.update()


def release_floor(armature: bpy.types.Object) -> None:
    """Remove the Floor constraints `keep_on_floor` added."""
    for bones in FOOT_BONES.values():
        for name in bones:
            bone = armature.pose.bones[name]
            constraint = bone.constraints.get(FLOOR_CONSTRAINT)
            if constraint is not None:
                bone.constraints.remove(constraint)


def kept_on_floor(armature: bpy.types.Object) -> bool:
    return any(armature.pose.bones[name].constraints.get(FLOOR_CONSTRAINT) for name in FOOT_BONES["left"])
