"""Run by test_extension_zip.py in its own process, never collected by pytest.

Installs an extension zip into the bpy module (BLENDER_USER_RESOURCES points at a temporary
folder), enables it, checks what a worker interpreter imports, fits a photo through the Fit
operator's blocking path, uninstalls, and writes what it saw to a JSON report.

    python install_in_bpy.py ZIP PHOTO BLENDER_PYTHON REPORT MODULE [MODULE ...]

BLENDER_PYTHON stands for Blender's own interpreter: the standard library and numpy only.
The MODULEs are those the worker interpreter must import from the extension alone.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import bpy

EXTENSION_ID = "smplx_capture"
ADDON = f"bl_ext.user_default.{EXTENSION_ID}"

# Imports the modules named on its command line (running one L-BFGS step when torch is among
# them) and lists where every module that is not part of the standard library came from.
IMPORT_CHECK = """
import importlib, json, os, sys, sysconfig
modules = {name: importlib.import_module(name) for name in sys.argv[1:]}
from mediapipe.tasks.python import vision

x = None
if "torch" in modules:
    import torch
    x = torch.zeros(3, requires_grad=True)
    optimizer = torch.optim.LBFGS([x], line_search_fn="strong_wolfe")
    def closure():
        optimizer.zero_grad()
        loss = ((x - 1.0) ** 2).sum()
        loss.backward()
        return loss
    optimizer.step(closure)
    x = x.tolist()
stdlib = (sysconfig.get_paths()["stdlib"], sysconfig.get_paths()["platstdlib"])
# torch.ops and torch.classes are synthetic modules whose __file__ is a bare name: skip those.
origins = {name: module.__file__ for name, module in list(sys.modules.items())
           if os.path.isabs(getattr(module, "__file__", None) or "")
           and not module.__file__.startswith(stdlib)}
has_pose = hasattr(vision, "PoseLandmarker")
print(json.dumps({"sys_path": sys.path, "origins": origins, "x": x, "vision": has_pose}))
"""


def listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


def main() -> None:
    import addon_utils  # importable only once bpy has put Blender's script modules on sys.path

    zip_path, photo, blender_python, report_path, *modules = sys.argv[1:]
    report: dict = {}
    prefs = bpy.context.preferences
    installed = bpy.ops.extensions.package_install_files(
        filepath=zip_path, repo="user_default", enable_on_install=True
    )
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    site = Path(bpy.utils.user_resource("EXTENSIONS", path=f".local/lib/{version}/site-packages"))
    repo = Path(bpy.utils.user_resource("EXTENSIONS", path="user_default"))
    report["install"] = sorted(installed)
    report["site_packages"] = str(site)
    report["site_contents"] = listing(site)
    report["extension_contents"] = listing(repo / EXTENSION_ID)
    report["enabled"] = ADDON in prefs.addons
    report["loaded"] = addon_utils.check(ADDON)[1]

    env = dict(os.environ, PYTHONPATH=str(site))
    check = subprocess.run(
        [blender_python, "-c", IMPORT_CHECK, *modules], env=env, capture_output=True, text=True
    )
    report["import_check"] = json.loads(check.stdout) if check.returncode == 0 else {"error": check.stderr}

    # The worker runs `sys.executable`: make that Blender's interpreter, as it is in Blender.
    sys.executable = blender_python
    bpy.context.scene.smplx_capture.image = photo
    before = set(bpy.data.objects)  # the default scene's cube, camera and light
    try:
        report["fit"] = sorted(bpy.ops.smplx_capture.fit())
    except RuntimeError:  # in background mode an operator that reports an error raises
        report["fit"] = ["CANCELLED"]
    job = bpy.context.window_manager.smplx_capture_job
    report["fit_status"], report["fit_error"] = job.status, job.error
    report["new_object_types"] = sorted(obj.type for obj in set(bpy.data.objects) - before)

    uninstalled = bpy.ops.extensions.package_uninstall(repo_directory=str(repo), pkg_id=EXTENSION_ID)
    report["uninstall"] = sorted(uninstalled)
    report["after_uninstall"] = {
        "extension_contents": listing(repo / EXTENSION_ID),
        "site_contents": listing(site),
        "enabled": ADDON in prefs.addons,
    }
    Path(report_path).write_text(json.dumps(report, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
