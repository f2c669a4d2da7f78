"""Video fit on the rendered walking clip (devtools/video_clip.py), end to end with
detection: per-frame body PA vertex error, acceleration error (jitter) with and without
smoothing, foot skating (how far the fitted heels and toes slide over the steps where the
true ones stand: video_errors.truth_contact_steps) and the feet's height jitter, with the
feet held on the ground and as fitted; the contacts found against the truth's, the ground
against the truth's floor; frames per second. With --independent, also every frame fitted
alone from scratch (the single-photo fit), for comparison. With --size WxH, the same
clip re-encoded at that size (upscaled: a measure of speed only) gives the frames per
second, and the accuracy figures stay on the native clip. Prints figures, the frames per
second of each part too (decoding, detection, fitting, feet); asserts nothing.

    .venv/bin/python tests/benchmarks/bench_video.py [--start F] [--end F] [--independent] [--size 1280x720]
"""

# ruff: noqa: E402  (torch loads after the worker's thread settings are made)
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from smplx_capture_addon.cpu_threads import spin_briefly

spin_briefly()  # before torch loads, as the worker does

import numpy as np
import torch

from smplx_capture_addon.devtools import video_clip, video_errors
from smplx_capture_addon.fit_request import FitRequest
from smplx_capture_addon.keypoints.detect import Detector
from smplx_capture_addon.solver import camera
from smplx_capture_addon.solver.options import FitOptions
from smplx_capture_addon.solver.pipeline import load_body
from smplx_capture_addon.video import feet
from smplx_capture_addon.video.clip_fit import ClipFitter, motion_frames
from smplx_capture_addon.video.fit_video import fit_video
from smplx_capture_addon.video.frames import FrameRange, open_clip
from smplx_capture_addon.video.tracks import track_person


def figures(name: str, frames, betas, model, truth) -> None:
    params = video_errors.frame_parameters(frames, betas, model)
    errors = video_errors.body_pa_v2v_mm(model, params, truth)
    jitter = video_errors.acceleration_error_mm(model, params, truth)
    points = video_errors.foot_points(model, params)
    steps = video_errors.truth_contact_steps(video_errors.foot_points(model, truth))
    print(f"{name:<34} body PA-V2V mean {errors.mean():6.1f} median {np.median(errors):6.1f} "
          f"max {errors.max():6.1f} mm | acceleration error {jitter:6.2f} mm/frame^2 | foot skating "
          f"{video_errors.foot_skating_mm(points, steps):5.2f} mm/frame, height jitter "
          f"{video_errors.foot_height_jitter_mm(points):5.2f} mm/frame^2")  # fmt: skip


def truth_figures(motion, model, truth) -> None:
    """The truth's own foot figures, and the contacts and ground found against the truth's."""
    points = video_errors.foot_points(model, truth)
    steps = video_errors.truth_contact_steps(points)
    print(f"{'truth':<34} foot skating {video_errors.foot_skating_mm(points, steps):5.2f} mm/frame over "
          f"{steps.sum()} contact steps, height jitter {video_errors.foot_height_jitter_mm(points):5.2f} "
          "mm/frame^2")  # fmt: skip
    if motion.ground is None:
        print("no ground found")
        return
    found = np.array([[frame.contacts[name] for name in feet.CONTACT_POINTS] for frame in motion.frames])
    true = video_errors.truth_contacts(points)
    floor = (points @ video_errors.TRUTH_UP).min()
    normal = np.asarray(motion.ground.normal)
    angle = np.degrees(np.arccos(np.clip(normal @ video_errors.TRUTH_UP, -1.0, 1.0)))
    print(f"contacts: {np.mean(found == true):.0%} of frame-points agree with the truth's "
          f"({found.sum()} found, {true.sum()} true, {np.sum(found & true)} both); ground normal "
          f"{angle:.1f} degrees from the floor's, offset {motion.ground.offset:.3f} m (the truth's "
          f"{floor:.3f})")  # fmt: skip


def independent_frames(request: FitRequest, frame_range: FrameRange):
    """Each frame fitted alone from scratch, no smoothing -> its fits and its shapes."""
    clip = open_clip(request.photo)
    _, body, _ = load_body(request)
    focal = camera.default_focal(clip.info.width, clip.info.height)
    fits, shapes = [], []
    with Detector() as detector:
        for tracked in track_person(clip.frames(frame_range), request.person, detector):
            fitter = ClipFitter(body, focal, (clip.info.width, clip.info.height), FitOptions())
            fits.append(fitter.fit_frame(tracked))
            shapes.append(fitter.betas if fitter.betas is not None else np.zeros(10))
    return fits, shapes


def resized_clip(source: Path, size: tuple[int, int], folder: Path) -> Path:
    """`source` re-encoded at `size` (width, height) into `folder`, frame for frame."""
    import cv2

    capture = cv2.VideoCapture(str(source), cv2.CAP_FFMPEG)
    target = folder / f"clip_{size[0]}x{size[1]}.mp4"
    fps = capture.get(cv2.CAP_PROP_FPS)
    writer = cv2.VideoWriter(str(target), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
    try:
        while True:
            ok, bgr = capture.read()
            if not ok:
                break
            writer.write(cv2.resize(bgr, size, interpolation=cv2.INTER_LINEAR))
    finally:
        capture.release()
        writer.release()
    return target


def speed(fitted, count: int, width: int, height: int) -> None:
    """Frames per second end to end and of each part."""
    solver = fitted.motion.solver
    parts = {name: solver[f"{name}_seconds"] for name in ("decode", "detect", "fit", "feet")}
    each = ", ".join(f"{name} {seconds:.1f} s ({count / seconds:.1f} fps)" for name, seconds in parts.items())
    print(f"{count} frames {width}x{height}, {fitted.seconds:.1f} s end to end: "
          f"{count / fitted.seconds:.2f} frames per second ({each}), torch threads 1")  # fmt: skip


def size_of(text: str) -> tuple[int, int]:
    width, height = (int(side) for side in text.lower().split("x"))
    return width, height


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--start", type=int, default=0)
    parser.add_argument("--end", type=int, default=None)
    parser.add_argument("--independent", action="store_true", help="also fit every frame alone")
    parser.add_argument("--size", type=size_of, help="WxH: time the clip re-encoded at this size")
    args = parser.parse_args()
    torch.set_num_threads(1)
    folder = video_clip.clip()
    frame_range = FrameRange(args.start, args.end)
    if args.size is not None:
        with tempfile.TemporaryDirectory() as scratch:
            resized = resized_clip(folder / "clip.mp4", args.size, Path(scratch))
            fitted = fit_video(FitRequest(photo=str(resized), device="cpu"), frame_range)
        speed(fitted, len(fitted.motion.frames), *args.size)
        return
    request = FitRequest(photo=str(folder / "clip.mp4"), device="cpu")
    fitted = fit_video(request, frame_range)
    motion = fitted.motion
    model = video_errors.full_hand_model()
    truth = video_errors.truth_parameters(folder, [f.index for f in motion.frames], model)
    speed(fitted, len(motion.frames), video_clip.WIDTH, video_clip.HEIGHT)
    truth_figures(motion, model, truth)
    figures("video fit, smoothed, feet held", motion.frames, motion.betas, model, truth)
    figures("video fit, smoothed, feet as fitted", motion_frames(fitted.frame_fits), motion.betas, model,
            truth)  # fmt: skip
    figures("video fit, not smoothed", motion_frames(fitted.frame_fits, 0.0), motion.betas, model, truth)
    if args.independent:
        fits, shapes = independent_frames(request, frame_range)
        figures("each frame alone", motion_frames(fits, 0.0), shapes, model, truth)


if __name__ == "__main__":
    main()
