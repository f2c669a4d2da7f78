"""A video (or folder of frames) in, a motion out: what the `fit-video` command calls.

Frames are read, searched and fitted one at a time (only per-frame parameters are kept;
the search runs in a thread a few frames ahead of the fit, `ahead`),
then bridged and smoothed (`clip_fit`), and the feet put on the ground and held still
where they stand (`feet`, window by window, each window told to `progress` as FEET_STEP).
A Ctrl-C (or `Cancelled`) during the frames ends the clip early: the frames done so far
become a motion marked `partial`, still complete and valid (their feet as fitted: holding
them takes seconds), and the caller is told it was cancelled. A cancel while the feet are
held ends the same way, with every frame fitted and the feet as fitted. `cancel()` is
asked before each frame, inside each frame's fit and at each step of the feet's solve, so
a cancel is heard within moments.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..errors import Cancelled
from ..fit_request import FitRequest
from ..motion_format import Motion, VideoInfo
from ..result_format import Camera
from ..solver import camera
from ..solver.pipeline import load_body, model_identity
from . import feet, smoothing
from .ahead import Timed, run_ahead
from .clip_fit import ClipFitter, FrameFit, motion_frames
from .frames import FOLDER_FPS, FrameRange, open_clip
from .tracks import track_person

if TYPE_CHECKING:
    from ..solver.pipeline import WarmModels
    from .request import VideoRequest

# (frame index, what happened to it, frames done, frames in the range: 0 when the clip does not say)
Progress = Callable[[int, str, int, int], None]
FEET_STEP = "feet held"  # how a window of the feet step's `what` starts: "feet held, window 1 of 3"


@dataclass
class VideoFit:
    motion: Motion
    cancelled: bool  # the motion holds the frames done before a cancel (motion.partial)
    seconds: float  # end to end: reading, detection, fitting, smoothing
    frame_fits: list[FrameFit]  # each frame's own fit, before bridging and smoothing


def fit_video(
    request: FitRequest,
    frame_range: FrameRange,
    folder_fps: float = FOLDER_FPS,
    sigma: float = smoothing.SIGMA_FRAMES,
    progress: Progress | None = None,
    ground: bool = True,
    cancel: Callable[[], bool] | None = None,
    warm: WarmModels | None = None,
    feet_windows: feet.Windows = feet.DEFAULT_WINDOWS,
) -> VideoFit:
    """Fit the person `request.person` chooses in `request.photo` (the video or folder)
    over `frame_range`; `sigma` is the smoothing's width in frames (0: none); `ground`:
    find the ground and hold the feet still where they stand on it (`feet`, in
    `feet_windows`). `warm`: the detector and body models a serving worker keeps (None:
    loaded for this clip alone)."""
    from ..keypoints.detect import Detector
    from ..solver.options import FitOptions

    started = time.perf_counter()
    clip = open_clip(request.photo, folder_fps)
    info = clip.info
    data, body, device = warm.body(request) if warm is not None else load_body(request)
    focal = request.focal_px or camera.default_focal(info.width, info.height)
    fitter = ClipFitter(body, focal, (info.width, info.height), FitOptions())
    total = frames_in_range(frame_range, info.frame_count)
    fits: list[FrameFit] = []
    cancelled = False
    fit_seconds = 0.0
    with nullcontext(warm.detector()) if warm is not None else Detector() as detector:
        decoded = Timed(clip.frames(frame_range))
        detected = Timed(track_person(decoded, request.person, detector))
        tracked_frames = run_ahead(detected, name="video detection")
        try:
            while True:
                if cancel is not None and cancel():
                    raise Cancelled("The video fit was cancelled.")
                tracked = next(tracked_frames, None)
                if tracked is None:
                    break
                mark = time.perf_counter()
                fits.append(fitter.fit_frame(tracked, cancel))
                fit_seconds += time.perf_counter() - mark
                if progress is not None:
                    what = "fitted" if fits[-1].full_pose is not None else "no person"
                    progress(tracked.index, what, len(fits), total)
        except (KeyboardInterrupt, Cancelled):
            if fitter.betas is None:
                raise  # nothing fitted: nothing to keep
            cancelled = True
        finally:
            tracked_frames.close()  # the detection thread stops before the detector closes
    frames = motion_frames(fits, sigma)
    fps = info.fps / frame_range.step
    mark = time.perf_counter()
    planted = None
    if ground and not cancelled:  # a cancel asks to stop now: the frames done stay as fitted

        def window_done(last: int, done: int, windows: int) -> None:
            if progress is not None:
                progress(frames[last].index, f"{FEET_STEP}, window {done} of {windows}", len(fits), total)

        try:  # from the feet step's very start: a Ctrl-C after the last frame keeps every frame
            body_as_motion = feet.motion_body(data, len(fitter.betas), len(frames[0].expression))
            planted = feet.plant_feet(body_as_motion, feet.clip_pose(frames, fitter.betas), fps, focal,
                                      (info.width / 2, info.height / 2), feet_windows, window_done,
                                      cancel)  # fmt: skip
            frames = feet.planted_frames(frames, planted)
        except (KeyboardInterrupt, Cancelled):
            cancelled = True
    feet_seconds = time.perf_counter() - mark
    motion = Motion(
        model=model_identity(data),
        video=VideoInfo(info.path, info.width, info.height, info.fps, frame_range.start, frame_range.step),
        camera=Camera(
            focal, [info.width / 2, info.height / 2], "user" if request.focal_px else "default-fov"
        ),
        fps=fps,
        betas=fitter.betas.tolist(),
        frames=frames,
        partial=cancelled,
        device=device,
        solver={
            "method": "first frame: the full single-photo fit; then each frame warm-started from the last "
            "fit with the shape held; gaps bridged; rotations smoothed as quaternions, translation and "
            "expression alike; then, unless ground is false, the ground found under the resting feet and "
            "the legs and translation moved to hold each foot still where it stands",
            "smoothing_sigma_frames": sigma,
            "ground": ground,
            "decode_seconds": round(decoded.seconds, 3),
            "detect_seconds": round(detected.seconds - decoded.seconds, 3),
            "fit_seconds": round(fit_seconds, 3),
            "feet_seconds": round(feet_seconds, 3),
        },
        ground=None if planted is None else feet.ground_plane(planted.ground),
    )
    return VideoFit(motion, cancelled, time.perf_counter() - started, fits)


def fit_video_request(
    video_request: VideoRequest,
    progress: Progress | None = None,
    cancel: Callable[[], bool] | None = None,
    warm: WarmModels | None = None,
) -> VideoFit:
    """`fit_video` with the clip, range and settings of `video_request`."""
    return fit_video(video_request.fit, video_request.frame_range(), folder_fps=video_request.folder_fps,
                     sigma=video_request.smooth, progress=progress, ground=video_request.ground,
                     cancel=cancel, warm=warm)  # fmt: skip


def frames_in_range(frame_range: FrameRange, frame_count: int) -> int:
    """How many frames of a clip of `frame_count` frames `frame_range` gives (0: unknown,
    a clip that states no count, read to its end)."""
    last = frame_range.end
    if frame_count:
        last = frame_count - 1 if last is None else min(last, frame_count - 1)
    if last is None or last < frame_range.start:
        return 0
    return (last - frame_range.start) // frame_range.step + 1
