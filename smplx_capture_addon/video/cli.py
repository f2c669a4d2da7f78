"""`fit-video VIDEO -o OUTDIR`: a video or a folder of numbered frames in, motion.json out."""

from __future__ import annotations

import argparse
import sys

from ..atomic_files import check_output_folder
from ..errors import EXIT_CANCELLED, CaptureError
from ..fit_request import BOX, DEVICES, GENDERS, NUMBER, FitRequest, PersonChoice
from .request import VideoRequest
from .smoothing import SIGMA_FRAMES

HELP = "fit the body model to a person in a video (or a folder of frames); writes motion.json"
MOTION_FILE = "motion.json"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("video", help="a video file (mp4, mov, avi, webm) or a folder of numbered images")
    parser.add_argument("-o", "--output", required=True, metavar="OUTDIR", help="folder for motion.json")
    parser.add_argument("--start", type=int, default=0, metavar="F", help="first frame (from 0; default 0)")
    parser.add_argument(
        "--end", type=int, metavar="F", help="last frame, included (default: the clip's last)"
    )
    parser.add_argument("--step", type=int, default=1, metavar="K", help="fit every K-th frame (default 1)")
    parser.add_argument(
        "--person", type=int, metavar="N", help="the N-th person found (1 = the most prominent)"
    )
    parser.add_argument("--box", nargs=4, type=float, metavar=("X0", "Y0", "X1", "Y1"),
                        help="the person in this box (pixels) in the first frame where found")  # fmt: skip
    parser.add_argument(
        "--model", metavar="PATH", help="SMPL-X model file or folder (default: the open body)"
    )
    parser.add_argument("--gender", default="neutral", choices=GENDERS)
    parser.add_argument("--device", default="auto", choices=DEVICES)
    parser.add_argument("--focal", type=float, metavar="PX", help="focal length in pixels (default: a guess)")
    parser.add_argument(
        "--fps", type=float, default=30.0, help="frame rate of a folder of images (default 30)"
    )
    parser.add_argument("--smooth", type=float, default=None, metavar="SIGMA",
                        help="smoothing width in frames (default 1.5; 0: none)")  # fmt: skip
    parser.add_argument("--no-ground", action="store_true",
                        help="leave the feet as fitted: no ground plane, no contacts held (a person "
                        "not standing on a floor)")  # fmt: skip
    parser.add_argument("--quiet", action="store_true", help="no progress lines")


def run(args: argparse.Namespace) -> int:
    out = check_output_folder(args.output)  # before the solver (and torch) is even imported
    video_request = request_from_arguments(args)

    from ..motion_format import FITTED, write_motion
    from .fit_video import fit_video_request

    def progress(index: int, what: str, done: int, total: int) -> None:
        if not args.quiet:
            print(f"frame {index}: {what}", file=sys.stderr, flush=True)

    fitted = fit_video_request(video_request, progress)
    motion = fitted.motion
    path = write_motion(motion, out / MOTION_FILE)
    count = sum(frame.flag == FITTED for frame in motion.frames)
    print(f"{count} of {len(motion.frames)} frames fitted in {fitted.seconds:.1f} s "
          f"({len(motion.frames) / fitted.seconds:.2f} frames per second, on {motion.device})")  # fmt: skip
    if fitted.cancelled:
        print(
            f"cancelled: wrote the {len(motion.frames)} frames done to {path}, marked partial",
            file=sys.stderr,
        )
        return EXIT_CANCELLED
    print(f"wrote {path}")
    return 0


def request_from_arguments(args: argparse.Namespace) -> VideoRequest:
    """The video request that the command's arguments describe."""
    if args.person is not None and args.box is not None:
        raise CaptureError("Choose the person one way: --person N or --box X0 Y0 X1 Y1, not both.")
    if args.person is not None:
        choice = PersonChoice(NUMBER, number=args.person)
    else:
        choice = PersonChoice(BOX, box=args.box) if args.box is not None else PersonChoice()
    fit = FitRequest(photo=args.video, model=args.model, gender=args.gender, device=args.device,
                     focal_px=args.focal, person=choice)  # fmt: skip
    smooth = SIGMA_FRAMES if args.smooth is None else args.smooth
    return VideoRequest(fit, args.start, args.end, args.step, folder_fps=args.fps, smooth=smooth,
                        ground=not args.no_ground)
