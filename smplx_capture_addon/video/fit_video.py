"""A video (or folder of frames) in, a motion out: what the `fit-video` command calls.

Frames are read, searched and fitted one at a time (only per-frame parameters are kept),
then bridged and smoothed (`clip_fit`), and the feet put on the ground and held still
where they stand (`feet`). A Ctrl-C (or `Cancelled`) during the frames ends the clip
early: the frames done so far become a motion marked `partial`, still complete and
valid, and the caller is told it was cancelled.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from ..errors import Cancelled
from ..fit_request import FitRequest
from ..motion_format import Motion, VideoInfo
from ..result_format import Camera
from ..solver import camera
from ..solver.pipeline import load_body, model_identity
from . import feet, smoothing
from .clip_fit import ClipFitter, FrameFit, motion_frames
from .frames import FOLDER_FPS, FrameRange, open_clip
from .tracks import track_person

Progress = Callable[[int, str], None]  # (frame index, what happened to it)


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
) -> VideoFit:
    """Fit the person `request.person` chooses in `request.photo` (the video or folder)
    over `frame_range`; `sigma` is the smoothing's width in frames (0: none); `ground`:
    find the ground and hold the feet still where they stand on it (`feet`)."""
    from ..keypoints.detect import Detector
    from ..solver.options import FitOptions

    started = time.perf_counter()
    clip = open_clip(request.photo, folder_fps)
    info = clip.info
    data, body, device = load_body(request)
    focal = request.focal_px or camera.default_focal(info.width, info.height)
    fitter = ClipFitter(body, focal, (info.width, info.height), FitOptions())
    fits: list[FrameFit] = []
    cancelled = False
    detect_seconds = fit_seconds = 0.0
    with Detector() as detector:
        tracked_frames = track_person(clip.frames(frame_range), request.person, detector)
        try:
            while True:
                mark = time.perf_counter()
                tracked = next(tracked_frames, None)
                if tracked is None:
                    break
                detect_seconds += time.perf_counter() - mark
                mark = time.perf_counter()
                fits.append(fitter.fit_frame(tracked))
                fit_seconds += time.perf_counter() - mark
                if progress is not None:
                    progress(tracked.index, "fitted" if fits[-1].full_pose is not None else "no person")
        except (KeyboardInterrupt, Cancelled):
            if fitter.betas is None:
                raise  # nothing fitted: nothing to keep
            cancelled = True
    frames = motion_frames(fits, sigma)
    fps = info.fps / frame_range.step
    mark = time.perf_counter()
    planted = None
    if ground:
        body_as_motion = feet.motion_body(data, len(fitter.betas), len(frames[0].expression))
        planted = feet.plant_feet(body_as_motion, feet.clip_pose(frames, fitter.betas), fps, focal,
                                  (info.width / 2, info.height / 2))  # fmt: skip
        frames = feet.planted_frames(frames, planted)
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
            "detect_seconds": round(detect_seconds, 3),
            "fit_seconds": round(fit_seconds, 3),
            "feet_seconds": round(feet_seconds, 3),
        },
        ground=None if planted is None else feet.ground_plane(planted.ground),
    )
    return VideoFit(motion, cancelled, time.perf_counter() - started, fits)
