"""A rendered clip with ground truth fitted end to end (detection included): the walker
followed in every frame and never swapped for the bystander, the frame without the
walker bridged and flagged, each frame's body near the truth, smoothing lowering the
jitter, a cancel keeping a valid partial motion, the `fit-video` command; and the
tracker's and the smoothing's rules on their own."""

from __future__ import annotations

import numpy as np
import pytest

from smplx_capture_addon.cli import main
from smplx_capture_addon.devtools import video_errors
from smplx_capture_addon.devtools.video_clip import HIDDEN
from smplx_capture_addon.errors import EXIT_CANCELLED
from smplx_capture_addon.fit_request import BOX, NUMBER, FitRequest, PersonChoice
from smplx_capture_addon.motion_format import BRIDGED, FITTED, LOST, read_motion
from smplx_capture_addon.solver import camera
from smplx_capture_addon.video import feet, smoothing
from smplx_capture_addon.video.clip_fit import motion_frames
from smplx_capture_addon.video.fit_video import fit_video
from smplx_capture_addon.video.frames import FrameRange
from smplx_capture_addon.video.request import VideoRequest
from smplx_capture_addon.video.tracks import Track
from smplx_capture_addon.worker import job

RANGE = FrameRange(8, 17)  # ten frames around the one without the walker


@pytest.fixture(scope="module")
def fitted(clip_folder):
    request = FitRequest(photo=str(clip_folder / "clip.mp4"), device="cpu", person=PersonChoice(NUMBER, 1))
    return fit_video(request, RANGE)


@pytest.fixture(scope="module")
def model():
    return video_errors.full_hand_model()


def _truth_boxes(clip_folder, model, indices):
    """The walker's true box in each frame: its projected vertices' extent."""
    import torch

    truth = video_errors.truth_parameters(clip_folder, indices, model)
    with torch.no_grad():
        vertices = model(**truth).vertices
    focal = float(np.load(clip_folder / "truth.npz")["focal"])
    points = camera.project(vertices, torch.full((len(indices),), focal), torch.tensor([[240.0, 180.0]]))
    return np.concatenate([points.amin(1).numpy(), points.amax(1).numpy()], axis=1)


def test_the_walker_is_followed_and_the_frame_without_them_is_bridged(fitted, clip_folder, model):
    motion = fitted.motion
    assert [f.index for f in motion.frames] == list(range(8, 18))
    assert not motion.partial and not fitted.cancelled
    parts = ("decode", "detect", "fit", "feet")
    decode, detect, fit, feet = (motion.solver[f"{part}_seconds"] for part in parts)
    assert min(decode, detect, fit, feet) > 0
    # Reading and detection run in their thread beside the fit: each chain within the total.
    assert decode + detect < fitted.seconds and fit + feet < fitted.seconds, (decode, detect, fit, feet)
    flags = {f.index: f.flag for f in motion.frames}
    assert {index for index, flag in flags.items() if flag != FITTED} == set(HIDDEN)
    assert flags[HIDDEN[0]] == BRIDGED and motion.frames[HIDDEN[0] - 8].box is None  # not the bystander
    fitted_frames = [f for f in motion.frames if f.flag == FITTED]
    truth = _truth_boxes(clip_folder, model, [f.index for f in fitted_frames])
    for frame, box in zip(fitted_frames, truth, strict=True):
        found = np.array(frame.box)
        assert abs((found[0] + found[2]) / 2 - (box[0] + box[2]) / 2) < 30, (frame.index, found, box)
        assert frame.residual_px["mean"] < 5.0


def test_each_frame_is_near_the_truth_and_smoothing_lowers_the_jitter(fitted, clip_folder, model):
    motion = fitted.motion
    indices = [f.index for f in motion.frames]
    truth = video_errors.truth_parameters(clip_folder, indices, model)
    smoothed = video_errors.frame_parameters(motion.frames, motion.betas, model)
    errors = video_errors.body_pa_v2v_mm(model, smoothed, truth)
    assert errors.max() < 110.0 and np.median(errors) < 80.0, errors
    raw = video_errors.frame_parameters(motion_frames(fitted.frame_fits, sigma=0.0), motion.betas, model)
    jitter_raw = video_errors.acceleration_error_mm(model, raw, truth)
    jitter_smoothed = video_errors.acceleration_error_mm(model, smoothed, truth)
    assert jitter_smoothed < 0.8 * jitter_raw, (jitter_smoothed, jitter_raw)
    assert np.median(video_errors.body_pa_v2v_mm(model, raw, truth)) > np.median(errors) - 5.0


def test_a_cancel_keeps_the_frames_done_as_a_valid_partial_motion(clip_folder, tmp_path):
    told = []

    def stop_after_two(index: int, what: str, done: int, total: int) -> None:
        told.append((index, what, done, total))
        if index == 1:
            raise KeyboardInterrupt

    request = FitRequest(photo=str(clip_folder / "frames"), device="cpu")
    fitted = fit_video(request, FrameRange(0), progress=stop_after_two)
    assert told == [(0, "fitted", 1, 32), (1, "fitted", 2, 32)]  # frames done of the range's 32
    assert fitted.cancelled and fitted.motion.partial
    assert fitted.motion.ground is None  # stopped at once: the feet as fitted, not held
    assert [(f.index, f.flag) for f in fitted.motion.frames] == [(0, FITTED), (1, FITTED)]
    from smplx_capture_addon.motion_format import write_motion

    assert read_motion(write_motion(fitted.motion, tmp_path / "motion.json")).partial


def test_the_command_writes_a_motion_and_refuses_two_person_choices(clip_folder, tmp_path, capsys):
    out = tmp_path / "out"
    code = main(["fit-video", str(clip_folder / "clip.mp4"), "-o", str(out), "--start", "30", "--box",
                 "150", "40", "330", "340", "--device", "cpu", "--quiet"])  # fmt: skip
    assert code == 0
    motion = read_motion(out / "motion.json")
    assert [(f.index, f.flag) for f in motion.frames] == [(30, FITTED), (31, FITTED)]
    assert motion.fps == 30.0 and len(motion.betas) == 10
    assert main(["fit-video", str(clip_folder), "-o", str(tmp_path / "x"), "--person", "1", "--box", "0", "0",
                 "9", "9"]) == 2  # fmt: skip
    assert "--person N or --box" in capsys.readouterr().err
    assert main(["fit-video", str(clip_folder / "clip.mp4"), "-o", str(tmp_path / "y"), "--start", "99"]) == 2
    assert "past the clip's last frame (31)" in capsys.readouterr().err
    assert not (tmp_path / "x").exists() and not (tmp_path / "y" / "motion.json").exists()


def test_a_cancel_after_the_last_frame_writes_every_frame_as_fitted_marked_partial(clip_folder, tmp_path):
    """The worker's job: the cancel arrives once the last frame is told, before the feet step."""
    told = []
    request = VideoRequest(FitRequest(photo=str(clip_folder / "clip.mp4"), device="cpu"), start=30)
    written = job.fit_video(request, tmp_path, lambda *step: told.append(step),
                            cancel=lambda: bool(told) and told[-1][2].startswith("frame 2 of 2"))  # fmt: skip
    motion = read_motion(written.result)
    assert written.partial and motion.partial
    assert [(f.index, f.flag) for f in motion.frames] == [(30, FITTED), (31, FITTED)]
    assert motion.ground is None and all(frame.contacts is None for frame in motion.frames)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["motion.json"]  # nothing else, no temporary


def test_a_ctrl_c_as_the_feet_step_starts_writes_every_frame_marked_partial(clip_folder, tmp_path,
                                                                           monkeypatch, capsys):  # fmt: skip
    """The command line: a Ctrl-C after the last frame, while the feet step sets up."""

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(feet, "motion_body", interrupted)
    out = tmp_path / "out"
    code = main(["fit-video", str(clip_folder / "clip.mp4"), "-o", str(out), "--start", "30",
                 "--device", "cpu", "--quiet"])  # fmt: skip
    assert code == EXIT_CANCELLED
    assert "cancelled: wrote the 2 frames done" in capsys.readouterr().err
    motion = read_motion(out / "motion.json")
    assert motion.partial and [(f.index, f.flag) for f in motion.frames] == [(30, FITTED), (31, FITTED)]
    assert motion.ground is None
    assert sorted(p.name for p in out.iterdir()) == ["motion.json"]


def test_the_track_keeps_its_person_and_is_lost_rather_than_swapped():
    track = Track(PersonChoice(NUMBER, 2))
    walker, bystander = [100.0, 50.0, 200.0, 300.0], [300.0, 80.0, 360.0, 250.0]
    assert track.pick([bystander, walker]) == 1  # the second most prominent, in the first frame
    assert track.pick([walker, bystander]) == 0  # followed when the order changes
    assert track.pick([bystander]) is None  # gone: lost, never the other one
    assert track.pick([[110.0, 55.0, 210.0, 305.0], bystander]) == 0  # back, near where it was
    boxed = Track(PersonChoice(BOX, box=(290.0, 70.0, 370.0, 260.0)))
    assert boxed.pick([walker, bystander]) == 1
    assert Track(PersonChoice(NUMBER, 3)).pick([walker, bystander]) is None  # not found yet


def test_bridging_interpolates_rotations_and_holds_at_the_ends():
    rotations = np.zeros((5, 1, 3))
    rotations[1, 0] = [0.0, 0.0, 0.2]
    rotations[3, 0] = [0.0, 0.0, 0.6]
    vectors = np.arange(5.0)[:, None] * [1.0, 2.0]
    known = np.array([False, True, False, True, False])
    bridged, filled = smoothing.bridge(rotations, vectors, known)
    np.testing.assert_allclose(bridged[:, 0, 2], [0.2, 0.2, 0.4, 0.6, 0.6], atol=1e-9)
    np.testing.assert_allclose(filled[:, 1], [2.0, 2.0, 4.0, 6.0, 6.0])
    frames = motion_frames([_frame_fit(k, k in (1, 3)) for k in range(5)], sigma=0.0)
    assert [f.flag for f in frames] == [LOST, FITTED, BRIDGED, FITTED, LOST]


def test_smoothing_rotations_has_no_flip_where_a_turn_crosses_half_a_turn():
    angles = np.linspace(np.pi - 0.5, np.pi + 0.5, 21)  # past pi, axis-angle jumps to the other side
    rotations = np.zeros((21, 1, 3))
    rotations[:, 0, 1] = np.where(angles <= np.pi, angles, angles - 2 * np.pi)
    smoothed = smoothing.smooth_rotations(rotations, sigma=1.5)
    turned = np.where(smoothed[:, 0, 1] < 0, smoothed[:, 0, 1] + 2 * np.pi, smoothed[:, 0, 1])
    # A steady turn, averaged over a whole window either side, stays as it was.
    np.testing.assert_allclose(turned[5:-5], angles[5:-5], atol=1e-6)


def _frame_fit(index: int, seen: bool):
    from smplx_capture_addon.video.clip_fit import FrameFit

    if not seen:
        return FrameFit(index)
    pose = np.full((55, 3), 0.01 * index)
    return FrameFit(index, pose, np.array([0.0, 0.0, 4.0]), np.zeros(10), [0.0, 0.0, 1.0, 1.0],
                    {"mean": 1.0, "max": 2.0})  # fmt: skip
