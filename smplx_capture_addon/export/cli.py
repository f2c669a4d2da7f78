"""`export SCENE_OR_RESULT -o OUT.fbx|OUT.glb`: write the fitted rigs for animation,
headless with the bpy module. A .blend is opened as it is; a result.json is built into
a scene first, as `blend` builds it."""

from __future__ import annotations

import argparse
import time
from contextlib import suppress
from pathlib import Path

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
    import bpy

    from ..errors import CaptureError
    from . import exporter

    source = Path(args.source).resolve()
    if not source.is_file():
        raise CaptureError(f"{source} does not exist: give a .blend or a result.json.")
    if source.suffix.lower() == ".blend":
        bpy.ops.wm.open_mainfile(filepath=str(source))
    else:
        from ..blender_builders.scene import build_fit
        from ..result_format import model_for_result, read_result

        result = read_result(source)
        bpy.ops.wm.read_factory_settings(use_empty=True)
        build_fit(result, model_for_result(result, args.model), result_path=source)
    output = Path(args.output).resolve()
    with suppress(OSError):  # a folder that cannot be made is reported by the exporter
        output.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    rigs = exporter.scene_rigs(bpy.context.scene)
    exporter.export_rigs(rigs, output, preset_name=args.preset, correctives=args.correctives.upper(),
                         include_camera=args.camera)  # fmt: skip
    names = ", ".join(f"'{rig.name}'" for rig in rigs)
    print(f"exported {names} to {output} ({args.preset}) in {time.perf_counter() - start:.2f} s")
    return 0
