"""`fit INPUT -o OUTDIR`: photo or keypoint file in, result.json and overlay.png out."""

from __future__ import annotations

import argparse
import sys

from .. import fit_request as request
from ..atomic_files import check_output_folder

HELP = "fit the body model to a photo or a keypoint file; writes result.json and overlay.png"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    request.add_arguments(parser)
    parser.add_argument("-o", "--output", required=True, metavar="OUTDIR", help="folder for the result")
    parser.add_argument("--quiet", action="store_true", help="no progress lines")


def run(args: argparse.Namespace) -> int:
    out = check_output_folder(args.output)  # before the solver (and torch) is even imported
    fit_request = request.from_arguments(args)

    from ..result_format import write_result
    from .overlay import paint_fit, write_png
    from .pipeline import KEYPOINTS_FILE, KEYPOINTS_PICTURE, fit_photo

    last = [""]

    def progress(stage: str, fraction: float, message: str) -> None:
        if not args.quiet and stage != last[0]:
            print(f"[{fraction * 100:5.1f}%] {message}", file=sys.stderr, flush=True)
            last[0] = stage

    result = fit_photo(fit_request, progress, out_dir=out)
    picture = paint_fit(result, fit_request.photo)  # all work done before the files are written
    result_path = write_result(result, out / "result.json")
    overlay = write_png(out / "overlay.png", picture)
    fit_seconds = sum(s.seconds for s in result.stages)
    errors = [
        sum((dx * dx + dy * dy) ** 0.5 for dx, dy in (r for r in person.residuals_px if r is not None))
        / max(1, sum(r is not None for r in person.residuals_px))
        for person in result.people
    ]
    print(f"{len(result.people)} person(s) fitted in {fit_seconds:.1f} s on {result.device}; mean keypoint "
          f"error {', '.join(f'{e:.1f}' for e in errors)} px; focal {result.camera.focal_length_px:.0f} px "
          f"({result.camera.source})")  # fmt: skip
    keypoints = f", {out / KEYPOINTS_FILE} and {out / KEYPOINTS_PICTURE}" if fit_request.overlay else ""
    print(f"wrote {result_path}, {overlay}{keypoints}")
    return 0
