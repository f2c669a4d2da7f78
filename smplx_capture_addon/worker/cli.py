"""The worker process: fit a photo and report over the line protocol (see `protocol`).

Also the `worker` command of the command line. Protocol lines go to the original
standard output; everything else printed in this process (by Python code or by C
libraries) is sent to standard error, so it can never garble the protocol.
"""

from __future__ import annotations

import argparse
import os
import platform
import signal
import site
import sys
import threading
import traceback
from pathlib import Path

from .. import fit_request as request
from ..atomic_files import check_output_folder
from ..body_model.model_file import resolve_model_path
from ..errors import Cancelled, CaptureError
from . import protocol, runner

UPRIGHT_PHOTO = "photo_upright.png"
HELP = "fit a photo in a worker process that reports progress as JSON lines (used by Blender)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    request.add_arguments(parser)
    parser.add_argument(
        "--out", required=True, help="folder for result.json (with --overlay also keypoints.json and .png)"
    )
    parser.add_argument(
        "--stdin-control", action="store_true", help="stop when stdin says 'cancel' or closes (Blender's way)"
    )


class _Channel:
    """Protocol output on a private copy of stdout; fd 1 itself is pointed at stderr.

    From the first progress on, a thread repeats the last progress every `heartbeat_s`
    seconds until the final message, so Blender hears from a worker busy in a long stage
    (see protocol.INACTIVITY_TIMEOUT_S). Nothing is sent after the final message."""

    def __init__(self, heartbeat_s: float = protocol.HEARTBEAT_S) -> None:
        sys.stdout.flush()
        self._stream = os.fdopen(os.dup(1), "w", encoding="utf-8", buffering=1)
        os.dup2(2, 1)
        sys.stdout = sys.stderr
        self._lock = threading.Lock()
        self._heartbeat_s = heartbeat_s
        self._last_progress: str | None = None
        self._ended = threading.Event()

    def send(self, line: str) -> None:
        message = protocol.decode(line)
        with self._lock:
            if self._ended.is_set():
                return
            self._stream.write(line)
            self._stream.flush()
            if message is not None and message.type in protocol.FINAL_TYPES:
                self._ended.set()
            elif message is not None and message.type == "progress":
                if self._last_progress is None:
                    threading.Thread(target=self._beat, daemon=True).start()
                self._last_progress = line

    def _beat(self) -> None:
        while not self._ended.wait(self._heartbeat_s):
            self.send(self._last_progress)


def _watch_for_cancel(flag: threading.Event) -> None:
    """`cancel` on stdin, or stdin closing (Blender is gone), sets `flag`."""
    for line in sys.stdin:
        if line.strip() == protocol.CANCEL_LINE:
            break
    flag.set()


def run(args: argparse.Namespace) -> int:
    bundled = runner.extension_site_packages()  # the bundled wheels, also when started by hand
    if bundled.is_dir():
        site.addsitedir(str(bundled))  # also runs the wheels' .pth files
    channel = _Channel()
    cancel = threading.Event()
    if args.stdin_control:
        threading.Thread(target=_watch_for_cancel, args=(cancel,), daemon=True).start()
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, lambda *_: cancel.set())
    channel.send(protocol.encode("hello", protocol=protocol.PROTOCOL_VERSION, pid=os.getpid(),
                                 python=platform.python_version()))  # fmt: skip
    try:
        result_path, overlay_path, upright = fit(args, channel, cancel)
    except (Cancelled, KeyboardInterrupt):  # Ctrl-C in the terminal reaches the worker too
        channel.send(protocol.cancelled())
        return protocol.EXIT_CANCELLED
    except CaptureError as error:
        channel.send(protocol.error(str(error)))
        return protocol.EXIT_ERROR
    except ImportError as error:
        channel.send(protocol.error(
            f"This Python ({sys.executable}) lacks a package the fit needs ({error.name or error}): "
            "install the extension's packages, or set a Python that has them in the add-on's "
            "preferences.", kind="ImportError"))  # fmt: skip
        return protocol.EXIT_ERROR
    except MemoryError:
        channel.send(protocol.error("The fit ran out of memory: close other programs or use a smaller photo.",
                                    kind="MemoryError"))  # fmt: skip
        return protocol.EXIT_ERROR
    except Exception as error:  # a bug: report it rather than dying silently
        traceback.print_exc()
        channel.send(protocol.error(f"Internal error in the fit ({type(error).__name__}: {error}).",
                                    kind="internal"))  # fmt: skip
        return protocol.EXIT_ERROR
    paths = [str(path) if path else None for path in (result_path, overlay_path, upright)]
    channel.send(protocol.result(*paths))
    return protocol.EXIT_OK


def fit(
    args: argparse.Namespace, channel: _Channel, cancel: threading.Event
) -> tuple[Path, Path | None, Path | None]:
    """Fit the request the arguments describe (the solver, and so torch, is imported only
    here, after the checks that need no solver)."""
    fit_request = request.from_arguments(args)
    out = check_output_folder(args.out)
    for what, path in (("photo", fit_request.photo), ("keypoint file", fit_request.keypoints)):
        if path is not None and not Path(path).is_file():
            raise CaptureError(f"The {what} {path} does not exist.")
    # Fail fast, before the slow solver import, when the model cannot be found.
    resolve_model_path(fit_request.model, fit_request.gender)
    channel.send(protocol.progress("loading", 0.0, "loading the solver"))
    from ..keypoints.images import write_upright_copy
    from ..result_format import write_result
    from ..solver.pipeline import KEYPOINTS_PICTURE, fit_photo

    def progress(stage: str, fraction: float, message: str) -> None:
        channel.send(protocol.progress(stage, fraction, message))

    result = fit_photo(fit_request, progress, cancel.is_set, out_dir=out)
    overlay = out / KEYPOINTS_PICTURE if fit_request.overlay else None
    # The fit is in upright pixels, but Blender shows images as stored, ignoring EXIF.
    upright = write_upright_copy(fit_request.photo, out / UPRIGHT_PHOTO) if fit_request.photo else None
    return write_result(result, out / "result.json"), overlay, upright


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m smplx_capture_addon.worker", description=HELP)
    add_arguments(parser)
    return run(parser.parse_args(argv))
