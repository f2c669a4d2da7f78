"""`blend RESULT -o scene.blend`: build the scene of a fit headless with the bpy module."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

HELP = "build the Blender scene of a fit result (rig, mesh, camera) and save it as a .blend"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("result", help="result.json written by a fit")
    parser.add_argument("-o", "--output", required=True, help="the .blend file to write")
    parser.add_argument("--image", help="the photo (default: the path the result names)")
    parser.add_argument("--model", help="body model file or SMPL-X folder (default: the result's)")
    parser.add_argument("--render", metavar="PNG", help="also render the fit over the photo to PNG")
    parser.add_argument(
        "--expressions", type=int, help="expression shape keys to make (default: as the fit, at least 10)"
    )


def run(args: argparse.Namespace) -> int:
    import bpy

    from ..result_format import model_for_result, read_result
    from .render import render_scene_over_photo
    from .scene import build_fit

    result = read_result(args.result)
    data = model_for_result(result, args.model)
    image = Path(args.image or result.image.path)
    bpy.ops.wm.read_factory_settings(use_empty=True)
    start = time.perf_counter()
    built = build_fit(result, data, image_path=image, result_path=Path(args.result).resolve(),
                      num_expressions=args.expressions)  # fmt: skip
    print(f"built '{built.collection.name}' in {time.perf_counter() - start:.2f} s")
    output = Path(args.output).resolve()
    output.parent.mkdir(parents=True, exist_ok=True)
    bpy.ops.wm.save_as_mainfile(filepath=str(output))
    print(f"saved {output}")
    if args.render:
        start = time.perf_counter()
        render_scene_over_photo(built, args.render, image if image.is_file() else None)
        print(f"rendered {args.render} in {time.perf_counter() - start:.2f} s")
    return 0
