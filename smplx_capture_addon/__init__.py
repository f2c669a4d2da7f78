"""SMPL-X Capture: one photo in, an editable SMPL-X rig out (Blender extension).

Blender imports this package and calls register(); the command line runs
`python -m smplx_capture_addon`. Importing the package itself pulls in neither bpy nor
torch: each room imports what it needs when it is used.
"""


def register() -> None:
    from .blender_ui import register as register_ui

    register_ui()


def unregister() -> None:
    from .blender_ui import unregister as unregister_ui

    unregister_ui()
