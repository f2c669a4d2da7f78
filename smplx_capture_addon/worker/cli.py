"""The worker process: fit a photo (or, with `--serve`, one request after another) and
report over the line protocol (see `protocol`).

Also the `worker` command of the command line. Protocol lines go to the original
standard output; everything else printed in this process (by Python code or by C
libraries) is sent to standard error, so it can never garble the protocol.
"""

from __future__ import annotations

import argparse
import signal
import site
import sys
import threading

from .. import fit_request as request
from ..errors import CaptureError
from . import protocol, runner
from .job import Channel, Progress, Written, fit, run_job

HELP = "fit a photo in a worker process that reports progress as JSON lines (used by Blender)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    request.add_arguments(parser, input_required=False)
    parser.add_argument("--out", help="folder for result.json (with --overlay also keypoints.json and .png)")
    parser.add_argument(
        "--stdin-control", action="store_true", help="stop when stdin says 'cancel' or closes (Blender's way)"
    )
    parser.add_argument(
        "--serve", action="store_true", help="fit requests read on stdin, one after another (Blender's way)"
    )
    parser.add_argument(
        "--idle-timeout", type=float, default=protocol.IDLE_TIMEOUT_S, metavar="S",
        help=f"with --serve: exit after S seconds without a request (default {protocol.IDLE_TIMEOUT_S:g})",
    )  # fmt: skip


def _watch_for_cancel(flag: threading.Event) -> None:
    """`cancel` on stdin, or stdin closing (Blender is gone), sets `flag`."""
    for line in sys.stdin:
        if line.strip() == protocol.CANCEL_LINE:
            break
    flag.set()


def run(args: argparse.Namespace) -> int:
    _check_usage(args)
    bundled = runner.extension_site_packages()  # the bundled wheels, also when started by hand
    if bundled.is_dir():
        site.addsitedir(str(bundled))  # also runs the wheels' .pth files
    channel = Channel()
    if args.serve:
        from .serve import serve

        return serve(channel, args.idle_timeout)
    cancel = threading.Event()
    if args.stdin_control:
        threading.Thread(target=_watch_for_cancel, args=(cancel,), daemon=True).start()
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, lambda *_: cancel.set())
    channel.hello()

    def job(progress: Progress) -> Written:
        return fit(request.from_arguments(args), args.out, progress, cancel.is_set)

    final, status = run_job(job, channel)
    channel.send(final)
    return status


def _check_usage(args: argparse.Namespace) -> None:
    if args.serve and (args.input is not None or args.out is not None):
        raise CaptureError("worker --serve reads its fits on stdin: give it no photo and no --out.")
    if not args.serve and (args.input is None or args.out is None):
        raise CaptureError("worker: give the photo (or keypoint file) and --out DIR, or --serve.")
    if not args.idle_timeout > 0:
        raise CaptureError(f"--idle-timeout must be a positive number of seconds, not {args.idle_timeout!r}.")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m smplx_capture_addon.worker", description=HELP)
    add_arguments(parser)
    try:
        return run(parser.parse_args(argv))
    except CaptureError as error:  # a usage error (anything later goes over the protocol)
        parser.error(str(error))
