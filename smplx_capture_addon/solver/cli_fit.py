"""`fit INPUT -o OUTDIR`: photo or keypoint file in, result.json and overlay.png out."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

HELP = "fit the body model to a photo or a keypoint file; writes result.json and overlay.png"
KEYPOINT_SUFFIXES = (".json",)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", help="a photo (detect, then fit) or a keypoint file (project, OpenPose or "
                                      "COCO-WholeBody JSON)")  # fmt: skip
    parser.add_argument("-o", "--output", required=True, metavar="OUTDIR", help="folder for the result")
    parser.add_argument(
        "--model", default="default", help='SMPL-X model file or folder; "default": the open default body'
    )
    parser.add_argument("--gender", default="neutral", choices=("neutral", "male", "female"))
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--focal", type=float, metavar="PX", help="known focal length in pixels")
    parser.add_argument("--image", metavar="PHOTO", help="the photo of a keypoint file (size, EXIF, overlay)")
    parser.add_argument("--box", nargs=4, type=float, metavar=("X0", "Y0", "X1", "Y1"),
                        help="the person to fit, as a box in photo pixels")  # fmt: skip
    parser.add_argument("--all-people", action="store_true", help="fit everyone found, in one batch")
    parser.add_argument("--vposer", metavar="PATH", help="your VPoser v1 or v2 checkpoint (folder or file)")
    parser.add_argument("--gmm", metavar="PATH", help="your SMPLify GMM pose prior (gmm_08.pkl)")
    parser.add_argument("--quiet", action="store_true", help="no progress lines")


def run(args: argparse.Namespace) -> int:
    from ..result_format import write_result
    from .overlay import paint_fit_over_photo
    from .pipeline import fit_photo

    source = Path(args.input)
    is_keypoints = source.suffix.lower() in KEYPOINT_SUFFIXES
    photo = args.image if is_keypoints else args.input
    last = [""]

    def progress(stage: str, fraction: float, message: str) -> None:
        if not args.quiet and stage != last[0]:
            print(f"[{fraction * 100:5.1f}%] {message}", file=sys.stderr, flush=True)
            last[0] = stage

    result = fit_photo(
        photo,
        args.input if is_keypoints else None,
        model=args.model,
        gender=args.gender,
        device=args.device,
        focal_px=args.focal,
        box=tuple(args.box) if args.box else None,
        all_people=args.all_people,
        vposer=args.vposer,
        gmm=args.gmm,
        progress=progress,
    )
    out = Path(args.output)
    result_path = write_result(result, out / "result.json")
    overlay = paint_fit_over_photo(result, photo, out / "overlay.png")
    fit_seconds = sum(s.seconds for s in result.stages)
    errors = [
        sum((dx * dx + dy * dy) ** 0.5 for dx, dy in (r for r in person.residuals_px if r is not None))
        / max(1, sum(r is not None for r in person.residuals_px))
        for person in result.people
    ]
    print(f"{len(result.people)} person(s) fitted in {fit_seconds:.1f} s on {result.device}; mean keypoint "
          f"error {', '.join(f'{e:.1f}' for e in errors)} px; focal {result.camera.focal_length_px:.0f} px "
          f"({result.camera.source})")  # fmt: skip
    print(f"wrote {result_path} and {overlay}")
    return 0
