"""`export SCENE_OR_RESULT -o OUT.fbx|OUT.glb`: write the fitted rigs for animation,
headless with the bpy module. A .blend is opened as it is; a result.json is built into
a scene first, as `blend` builds it."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from ..atomic_files import check_output_file
from ..interrupts import interrupts_deferred
from .presets import DEFAULT_PRESET, PRESETS

HELP = "export the fitted rigs of a .blend or a result.json to FBX or binary glTF (.glb)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "source", metavar="SCENE_OR_RESULT", help="a .blend with fits, or a fit's result.json"
    )
    parser.add_argument("-o", "--output", required=True, help="the .fbx or .glb file to write")
    parser.add_argument(
        "--preset", choices=sorted(PRESETS), default=DEFAULT_PRESET,
        help=f"units, axes and bone orientation of the target (default: {DEFAULT_PRESET})",
    )  # fmt: skip
    parser.add_argument(
        "--correctives", choices=("bake", "keys"), default="bake",
        help="pose correctives mixed into the mesh for the pose (default) or kept as shape keys",
    )  # fmt: skip
    parser.add_argument("--camera", action="store_true", help="also export the photo's camera")
    parser.add_argument(
        "--model", help="body model file or SMPL-X folder, for a result.json (default: the result's)"
    )


def run(args: argparse.Namespace) -> int:
    from ..errors import CaptureError

    source = Path(args.source).resolve()
    if not source.is_file():
        raise CaptureError(f"{source} does not exist: give a .blend or a result.json.")
    output = check_output_file(Path(args.output).resolve())  # before Blender is even imported
    is_blend = source.suffix.lower() == ".blend"
    with interrupts_deferred():  # Blender's start-up would print a Ctrl-C as a traceback and go on
        import bpy

        if is_blend:
            bpy.ops.wm.open_mainfile(filepath=str(source))
        else:
            bpy.ops.wm.read_factory_settings(use_empty=True)
    from . import exporter

    if not is_blend:
        from ..blender_builders.scene import build_fit
        from ..result_format import model_for_result, read_result

        result = read_result(source)
        build_fit(result, model_for_result(result, args.model))
    output.parent.mkdir(parents=True, exist_ok=True)  # the exporter writes only into a folder that exists
    start = time.perf_counter()
    rigs = exporter.scene_rigs(bpy.context.scene)
    exporter.export_rigs(rigs, output, preset_name=args.preset, correctives=args.correctives.upper(),
                         include_camera=args.camera)  # fmt: skip
    names = ", ".join(f"'{rig.name}'" for rig in rigs)
    print(f"exported {names} to {output} ({args.preset}) in {time.perf_counter() - start:.2f} s")
    return 0
