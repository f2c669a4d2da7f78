"""Build the Blender scene of a fit result: armature, skinned mesh, shape keys, driven
pose correctives, camera and collection, and a re-fit's swap of the old fit for the new
(`refit.replace_fit`). Plain functions (`scene.build_fit`) that the operator, the `blend`
command and the tests call; bpy and numpy only."""
