"""`blend RESULT -o scene.blend`: build the scene of a fit headless with the bpy module."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from ..atomic_files import atomic_output, check_output_file, os_error_in
from ..errors import CaptureError, OutputError
from ..interrupts import interrupts_deferred

HELP = (
    "build the Blender scene of a fit result or a video's motion (rig, mesh, camera; a motion keyed on "
    "every frame) and save it as a .blend"
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("result", help="result.json written by a fit, or motion.json written by fit-video")
    parser.add_argument("-o", "--output", required=True, help="the .blend file to write")
    parser.add_argument("--image", help="the photo (default: the path the result names)")
    parser.add_argument("--model", help="body model file or SMPL-X folder (default: the result's)")
    parser.add_argument("--render", metavar="PNG", help="also render the fit over the photo to PNG")
    parser.add_argument(
        "--render-video", metavar="MP4", help="a motion: also render it over its clip to a video (H.264, MP4)"
    )
    parser.add_argument(
        "--expressions", type=int, help="expression shape keys to make (default: as the fit, at least 10)"
    )


def run(args: argparse.Namespace) -> int:
    output = check_output_file(Path(args.output).resolve())  # before Blender is even imported
    for rendered in (args.render, args.render_video):
        if rendered:
            check_output_file(rendered)
    from ..motion_format import frame_as_result, is_motion_file, read_motion
    from ..result_format import model_for_result, read_result

    motion = read_motion(args.result) if is_motion_file(args.result) else None
    if args.render_video and motion is None:
        raise CaptureError(f"--render-video renders a motion: {args.result} is a still fit (--render PNG).")
    result = frame_as_result(motion) if motion is not None else read_result(args.result)
    data = model_for_result(result, args.model)
    photo = args.image or result.image.path or None
    with interrupts_deferred():  # Blender's start-up would print a Ctrl-C as a traceback and go on
        import bpy

        bpy.ops.wm.read_factory_settings(use_empty=True)
    from .animation import build_motion
    from .render import render_scene_over_photo
    from .scene import build_fit

    start = time.perf_counter()
    if motion is not None:
        built = build_motion(motion, data)
    else:
        built = build_fit(result, data, image_path=photo, num_expressions=args.expressions)
    for warning in built.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    print(f"built '{built.collection.name}' in {time.perf_counter() - start:.2f} s")
    save_blend(output)
    print(f"saved {output}")
    if args.render:
        start = time.perf_counter()
        render_scene_over_photo(built, args.render, photo if photo and Path(photo).is_file() else None)
        print(f"rendered {args.render} in {time.perf_counter() - start:.2f} s")
    if args.render_video:
        from .render_video import render_motion_video

        start = time.perf_counter()
        _, warnings = render_motion_video(built, motion, args.render_video)
        for warning in warnings:
            print(f"warning: {warning}", file=sys.stderr)
        print(f"rendered {args.render_video} in {time.perf_counter() - start:.2f} s")
    return 0


def save_blend(output: Path) -> None:
    """Save the open scene to `output` whole or not at all (see atomic_files)."""
    import bpy

    with atomic_output(output) as temporary:
        temporary.unlink()  # Blender would keep an existing file, empty as it is, as a .blend1 backup
        try:
            # A copy: the open file keeps its name, not the temporary one.
            bpy.ops.wm.save_as_mainfile(filepath=str(temporary), copy=True)
        except RuntimeError as error:  # Blender says why in words; an OSError lets atomic_output advise
            failure = os_error_in(str(error)) or OutputError(f"Blender could not save {output}: {error}")
            raise failure from None
