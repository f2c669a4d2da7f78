"""One job of the worker and how its messages go out: the `Channel` (protocol lines on a
private stdout, with a heartbeat while a job runs), `fit` (a photo's request into a
folder), `fit_video` (a video's) and `run_job` (a job's exceptions turned into its final
message). The one-shot worker (`cli`) and the serving one (`serve`) both run their fits
through it.
"""

from __future__ import annotations

import os
import platform
import sys
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .. import fit_request as request
from ..atomic_files import check_output_folder
from ..body_model.model_file import resolve_model_path
from ..errors import Cancelled, CaptureError
from . import protocol

if TYPE_CHECKING:
    from ..solver.pipeline import WarmModels
    from ..video.request import VideoRequest

UPRIGHT_PHOTO = "photo_upright.png"
VIDEO_STAGE = "video"
Progress = Callable[[str, float, str], None]


@dataclass(frozen=True)
class Written:
    """What a job wrote: its result (result.json, or a video's motion.json), the keypoint
    drawing and the upright photo when made, and for a video whether the motion is partial."""

    result: Path
    overlay: Path | None = None
    photo: Path | None = None
    partial: bool | None = None  # None: a photo's job, which has no such thing


class Channel:
    """Protocol output on a private copy of stdout; fd 1 itself is pointed at stderr.

    While a job runs (from its first progress to its final message), a thread repeats its
    last progress every `heartbeat_s` seconds, so Blender hears from a worker busy in a
    long stage (see protocol.INACTIVITY_TIMEOUT_S). Between jobs it is silent."""

    def __init__(self, heartbeat_s: float = protocol.HEARTBEAT_S) -> None:
        sys.stdout.flush()
        self._stream = os.fdopen(os.dup(1), "w", encoding="utf-8", buffering=1)
        os.dup2(2, 1)
        sys.stdout = sys.stderr
        self._lock = threading.Lock()
        self._heartbeat_s = heartbeat_s
        self._last_progress: str | None = None  # None: no job is running
        self._beating = False

    def send(self, line: str) -> None:
        message = protocol.decode(line)
        with self._lock:
            self._stream.write(line)
            self._stream.flush()
            if message is not None and message.type in protocol.FINAL_TYPES:
                self._last_progress = None
            elif message is not None and message.type == "progress":
                self._last_progress = line
                if not self._beating:
                    self._beating = True
                    threading.Thread(target=self._beat, daemon=True).start()

    def _beat(self) -> None:
        while True:
            time.sleep(self._heartbeat_s)
            with self._lock:
                if self._last_progress is not None:  # checked under the lock: never after a final message
                    self._stream.write(self._last_progress)
                    self._stream.flush()

    def hello(self, **fields) -> None:
        self.send(protocol.encode("hello", protocol=protocol.PROTOCOL_VERSION, pid=os.getpid(),
                                  python=platform.python_version(), **fields))  # fmt: skip


def run_job(
    job: Callable[[Progress], Written], channel: Channel, job_id: str | None = None
) -> tuple[str, int]:
    """Run `job` (given the function that sends its progress) and return its final message
    and the exit status that goes with it: an exception becomes an error message, never a
    traceback on the protocol."""

    def progress(stage: str, fraction: float, message: str) -> None:
        channel.send(protocol.progress(stage, fraction, message, job=job_id))

    try:
        written = job(progress)
    except (Cancelled, KeyboardInterrupt):  # Ctrl-C in the terminal reaches the worker too
        return protocol.cancelled(job=job_id), protocol.EXIT_CANCELLED
    except CaptureError as error:
        return protocol.error(str(error), job=job_id), protocol.EXIT_ERROR
    except ImportError as error:
        message = (f"This Python ({sys.executable}) lacks a package the fit needs ({error.name or error}): "
                   "install the extension's packages, or set a Python that has them in the add-on's "
                   "preferences.")  # fmt: skip
        return protocol.error(message, kind="ImportError", job=job_id), protocol.EXIT_ERROR
    except MemoryError:
        message = "The fit ran out of memory: close other programs or use a smaller photo."
        return protocol.error(message, kind="MemoryError", job=job_id), protocol.EXIT_ERROR
    except Exception as error:  # a bug: report it rather than dying silently
        traceback.print_exc()
        message = f"Internal error in the fit ({type(error).__name__}: {error})."
        return protocol.error(message, kind="internal", job=job_id), protocol.EXIT_ERROR
    overlay, photo = (str(path) if path else None for path in (written.overlay, written.photo))
    final = protocol.result(str(written.result), overlay, photo, job=job_id, partial=written.partial)
    return final, protocol.EXIT_OK


def fit(
    fit_request: request.FitRequest,
    out: str | Path,
    progress: Progress,
    cancel: Callable[[], bool],
    warm: Callable[[], WarmModels] | None = None,
) -> Written:
    """Fit `fit_request` into the folder `out` (the solver, and so torch, is imported only
    here, after the checks that need no solver). `warm` gives the models a serving worker
    keeps; None loads them for this fit alone."""
    out = check_output_folder(out)
    for what, path in (("photo", fit_request.photo), ("keypoint file", fit_request.keypoints)):
        if path is not None and not Path(path).is_file():
            raise CaptureError(f"The {what} {path} does not exist.")
    # Fail fast, before the slow solver import, when the model cannot be found.
    resolve_model_path(fit_request.model, fit_request.gender)
    progress("loading", 0.0, "loading the solver")
    from ..keypoints.images import write_upright_copy
    from ..result_format import write_result
    from ..solver.pipeline import KEYPOINTS_PICTURE, fit_photo

    result = fit_photo(fit_request, progress, cancel, out_dir=out, warm=warm() if warm else None)
    overlay = out / KEYPOINTS_PICTURE if fit_request.overlay else None
    # The fit is in upright pixels, but Blender shows images as stored, ignoring EXIF.
    upright = write_upright_copy(fit_request.photo, out / UPRIGHT_PHOTO) if fit_request.photo else None
    return Written(write_result(result, out / "result.json"), overlay, upright)


def fit_video(
    video_request: VideoRequest,
    out: str | Path,
    progress: Progress,
    cancel: Callable[[], bool],
    warm: Callable[[], WarmModels] | None = None,
) -> Written:
    """Fit `video_request` into OUT/motion.json, telling `progress` each frame done. A
    cancel after the first frame was fitted writes the frames done, marked partial."""
    out = check_output_folder(out)
    if not Path(video_request.fit.photo).exists():
        raise CaptureError(f"The video {video_request.fit.photo} does not exist.")
    resolve_model_path(video_request.fit.model, video_request.fit.gender)
    progress("loading", 0.0, "loading the solver")
    from ..motion_format import write_motion
    from ..video.cli import MOTION_FILE
    from ..video.fit_video import fit_video_request

    def frame_done(index: int, what: str, done: int, total: int) -> None:
        counted = f"frame {done} of {total}" if total else f"frame {done}"
        progress(VIDEO_STAGE, done / total if total else 0.0, f"{counted} (clip frame {index}: {what})")

    fitted = fit_video_request(video_request, frame_done, cancel, warm() if warm else None)
    return Written(write_motion(fitted.motion, out / MOTION_FILE), partial=fitted.cancelled)
