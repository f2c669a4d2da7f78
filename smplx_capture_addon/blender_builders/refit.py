"""Re-fit: a new fit takes the place of an old one in the scene, keeping what the artist
added to it."""

from __future__ import annotations

import bpy

from . import keypoint_handles
from .edits import pinned_bones, set_pinned
from .scene import PROP_PERSON, PROP_ROLE, BuiltFit, remove_objects


def replace_fit(old: bpy.types.Collection, built: BuiltFit, scene: bpy.types.Scene) -> None:
    """Put `built` where `old` was: the artist's own objects and collections move over,
    the old fit's objects and keypoint handles go (their materials and pinned bones
    carried to the new person), the name is taken over."""
    old_objects = {(o.get(PROP_ROLE), o.get(PROP_PERSON)): o for o in old.objects}
    for person in built.people:
        index = person.mesh[PROP_PERSON]
        if ("mesh", index) in old_objects:
            for material in old_objects["mesh", index].data.materials:
                person.mesh.data.materials.append(material)
        if ("armature", index) in old_objects:
            set_pinned(person.armature, pinned_bones(old_objects["armature", index]), True)
    for obj in list(old.objects):
        if obj.get(PROP_ROLE) is None:
            built.collection.objects.link(obj)
            old.objects.unlink(obj)
    keypoint_handles.remove_handles(old)
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
