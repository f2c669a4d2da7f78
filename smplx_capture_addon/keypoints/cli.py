"""`python -m smplx_capture_addon detect IMAGE -o keypoints.json`: keypoints of a photo."""

from __future__ import annotations

import argparse
import os

HELP = "detect body, hand and face keypoints in a photo (offline, MediaPipe)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("image", help="the photo (JPEG, PNG, WebP, BMP, TIFF)")
    parser.add_argument("-o", "--output", required=True, help="keypoint file to write (JSON)")
    parser.add_argument(
        "--box", nargs=4, type=float, metavar=("X0", "Y0", "X1", "Y1"),
        help="the person to use, as a box in photo pixels (default: the most prominent person)",
    )  # fmt: skip
    parser.add_argument("--all-people", action="store_true", help="keep everyone found, each with a box")
    parser.add_argument("--overlay", metavar="PNG", help="also write the photo with the keypoints drawn")
    parser.add_argument(
        "--openpose", action="store_true", help="write OpenPose JSON (BODY_25, hands, face 70) instead"
    )


def run(args: argparse.Namespace) -> int:
    from ..atomic_files import check_output_file

    for output in (args.output, args.overlay):  # before the detector is loaded
        if output is not None:
            check_output_file(output)
    from .detect import Detector, detect
    from .formats import write_keypoints, write_openpose
    from .images import load_image
    from .overlay import write_overlay

    image = load_image(os.path.abspath(args.image))  # the keypoint file names its photo wherever it is read
    with Detector() as detector:
        detections = detect(
            image, detector, box=tuple(args.box) if args.box else None, all_people=args.all_people
        )
    (write_openpose if args.openpose else write_keypoints)(args.output, detections)
    if args.overlay:
        write_overlay(args.overlay, image.pixels, detections)
    sets = ", ".join(sorted({name for person in detections.people for name in person.keypoint_sets}))
    print(f"{len(detections.people)} person(s) in {args.image}: {sets} -> {args.output}")
    return 0
