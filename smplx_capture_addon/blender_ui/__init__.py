"""Blender's side of the add-on: preferences, properties, the sidebar panel and thin
operators. Uses bpy and numpy only; fits run in a worker process."""

from __future__ import annotations

import atexit

import bpy

from . import fit_job, operators, panel, preferences, properties, refine_operators

CLASSES = (
    *preferences.CLASSES,
    *properties.CLASSES,
    *operators.CLASSES,
    *refine_operators.CLASSES,
    *panel.CLASSES,
)


def register() -> None:
    for cls in CLASSES:
        bpy.utils.register_class(cls)
    properties.register()
    operators.register_menus()
    atexit.register(fit_job.close_worker)  # Blender quits without disabling its add-ons


def unregister() -> None:
    operators.cancel_running()
    atexit.unregister(fit_job.close_worker)
    fit_job.close_worker()
    operators.unregister_menus()
    properties.unregister()
    for cls in reversed(CLASSES):
        bpy.utils.unregister_class(cls)
