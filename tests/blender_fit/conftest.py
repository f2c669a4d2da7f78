"""Blender-side tests that also need the solver's packages (torch, mediapipe): Python
3.11 only. Importing bpy first puts Blender's script modules (addon_utils, ...) on the
path."""

import bpy  # noqa: F401
