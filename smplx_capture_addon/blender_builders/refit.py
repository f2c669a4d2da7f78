"""Re-fit: a new fit takes the place of an old one in the scene, keeping what the artist
added to it and set up on it."""

from __future__ import annotations

import bpy

from . import controls, floor, keypoint_handles
from .edits import pinned_bones, set_pinned
from .scene import PROP_PERSON, PROP_ROLE, BuiltFit, BuiltPerson, remove_objects, result_of


def replace_fit(old: bpy.types.Collection, built: BuiltFit, scene: bpy.types.Scene) -> None:
    """Put `built` where `old` was: the artist's own objects and collections move over;
    what the artist set up on the old fit is set up again on the new one (materials,
    pinned bones, IK controls, floor constraints, keypoint handles, these showing the new
    fit's keypoints); the old fit's objects go; the name is taken over."""
    old_objects = {(o.get(PROP_ROLE), o.get(PROP_PERSON)): o for o in old.objects}
    handles_shown = keypoint_handles.handles_collection(old) is not None
    keypoint_handles.remove_handles(old)
    for person in built.people:
        index = person.mesh[PROP_PERSON]
        if ("mesh", index) in old_objects:
            for material in old_objects["mesh", index].data.materials:
                person.mesh.data.materials.append(material)
        if ("armature", index) in old_objects:
            _set_up_like(old_objects["armature", index], person, built.collection)
    for obj in list(old.objects):
        if obj.get(PROP_ROLE) is None:
            built.collection.objects.link(obj)
            old.objects.unlink(obj)
    for child in list(old.children):
        built.collection.children.link(child)
        old.children.unlink(child)
    remove_objects([o for o in old.objects if o.get(PROP_ROLE) is not None])
    # Same place in the outliner: under whatever collections held the old fit.
    parents = [c for c in (scene.collection, *bpy.data.collections) if old.name in c.children]
    for parent in parents:
        if built.collection.name not in parent.children:  # the scene's own: built there already
            parent.children.link(built.collection)
    if scene.collection not in parents:
        scene.collection.children.unlink(built.collection)
    name = old.name
    old.name = name + " (old)"  # free the name before removing, so the new one gets it exactly
    bpy.data.collections.remove(old)
    built.collection.name = name
    if handles_shown:
        rigs = [person.armature for person in built.people]
        keypoint_handles.show_handles(built.collection, result_of(built.collection), built.camera, rigs)


def _set_up_like(old_rig: bpy.types.Object, person: BuiltPerson, fit: bpy.types.Collection) -> None:
    """The old rig's pins, IK controls and floor constraints on the new person's rig (the
    old controls go with the old rig)."""
    set_pinned(person.armature, pinned_bones(old_rig), True)
    if controls.has_ik(old_rig):
        controls.remove_ik_controls(old_rig)
        controls.add_ik_controls(fit, person.armature)
    if floor.kept_on_floor(old_rig):
        floor.keep_on_floor(fit, person.armature, person.mesh)
