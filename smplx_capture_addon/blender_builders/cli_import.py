"""`import-motion FILE -o scene.blend`: another tool's SMPL-X motion (an AMASS-style .npz, an
SMPLify-X result .pkl or a folder of them) built into a .blend, as `blend motion.json` builds one."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from ..atomic_files import check_output_file
from ..errors import CaptureError
from ..fit_request import GENDERS
from ..interrupts import interrupts_deferred

HELP = (
    "import a motion of another tool (an AMASS-style SMPL-X .npz, an SMPLify-X result .pkl or a folder "
    "of numbered ones) and build it into a .blend; optionally write it as motion.json too"
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("motion", help="an SMPL-X .npz (AMASS's layout), a result .pkl, or a folder of .pkl")
    parser.add_argument("-o", "--output", required=True, help="the .blend file to write")
    parser.add_argument(
        "--model", metavar="PATH", help="SMPL-X model file or folder (default: the open body)"
    )
    parser.add_argument(
        "--gender", choices=GENDERS, help="the model's gender (default: the file's, or neutral)"
    )
    parser.add_argument("--fps", type=float, help="the clip's frame rate (default: the file's; .pkl: 30)")
    parser.add_argument("--motion-out", metavar="JSON", help="also write the motion as a motion.json")


def run(args: argparse.Namespace) -> int:
    output = check_output_file(Path(args.output).resolve())  # before Blender is even imported
    if args.motion_out:
        check_output_file(args.motion_out)
    if args.fps is not None and not 0 < args.fps < float("inf"):
        raise CaptureError(f"--fps must be above 0, not {args.fps}.")
    from ..body_model.model_file import load_model
    from ..motion_format import write_motion
    from ..motion_import import file_gender, import_motion

    data = load_model(args.model, args.gender or file_gender(args.motion) or "neutral")
    # PCA hand coefficients mean something only with the components of the model the fit used.
    motion = import_motion(args.motion, data, args.fps, expand_hand_pca=args.model is not None)
    print(f"read {len(motion.frames)} frames at {motion.fps:g} frames per second from {args.motion}")
    if args.motion_out:
        print(f"wrote {write_motion(motion, args.motion_out)}")
    with interrupts_deferred():  # Blender's start-up would print a Ctrl-C as a traceback and go on
        import bpy

        bpy.ops.wm.read_factory_settings(use_empty=True)
    from .animation import build_motion
    from .cli import save_blend

    start = time.perf_counter()
    built = build_motion(motion, data)
    for warning in built.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    print(f"built '{built.collection.name}' in {time.perf_counter() - start:.2f} s")
    save_blend(output)
    print(f"saved {output}")
    return 0
