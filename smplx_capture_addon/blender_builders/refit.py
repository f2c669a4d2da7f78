"""Re-fit: a new fit takes the place of an old one in the scene, keeping what the artist
added to it."""

from __future__ import annotations

import bpy

from .scene import PROP_PERSON, PROP_ROLE, BuiltFit, remove_objects


def replace_fit(old: bpy.types.Collection, built: BuiltFit, scene: bpy.types.Scene) -> None:
    """Put `built` where `old` was: the artist's own objects move over, the old fit's
    objects go (their materials carried to the new body), the name is taken over."""
    old_meshes = [o for o in old.objects if o.get(PROP_ROLE) == "mesh"]
    for person in built.people:
        match = [o for o in old_meshes if o.get(PROP_PERSON) == person.mesh[PROP_PERSON]]
        if match:
            for material in match[0].data.materials:
                person.mesh.data.materials.append(material)
    for obj in list(old.objects):
        if obj.get(PROP_ROLE) is None:
            built.collection.objects.link(obj)
            old.objects.unlink(obj)
    remove_objects([o for o in old.objects if o.get(PROP_ROLE) is not None])
    # Same place in the outliner: under whatever collections held the old fit.
    parents = [c for c in (scene.collection, *bpy.data.collections) if old.name in c.children]
    for parent in parents:
        if built.collection.name not in parent.children:  # build_fit linked it to the scene's
            parent.children.link(built.collection)
    if scene.collection not in parents:
        scene.collection.children.unlink(built.collection)
    name = old.name
    old.name = name + " (old)"  # free the name before removing, so the new one gets it exactly
    bpy.data.collections.remove(old)
    built.collection.name = name
