"""Feet on the ground, on the rendered walking clip fitted end to end: the contacts found
from the fit against the truth's, the ground against the truth's floor, the contact feet
sliding far less once held (and the body no worse), the same result every time, held in
windows as in one solve; a cancel while the feet are held; the motion file keeping
contacts and ground; and the contact rules on their own."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from smplx_capture_addon.body_model.model_file import load_model
from smplx_capture_addon.devtools import video_errors
from smplx_capture_addon.errors import Cancelled
from smplx_capture_addon.fit_request import FitRequest
from smplx_capture_addon.motion_format import (
    CONTACT_POINTS,
    MotionFormatError,
    motion_from_dict,
    read_motion,
    write_motion,
)
from smplx_capture_addon.solver import camera
from smplx_capture_addon.video import feet
from smplx_capture_addon.video.clip_fit import motion_frames
from smplx_capture_addon.video.fit_video import FEET_STEP, fit_video
from smplx_capture_addon.video.frames import FrameRange


@pytest.fixture(scope="module")
def fitted(clip_folder):
    return fit_video(FitRequest(photo=str(clip_folder / "clip.mp4"), device="cpu"), FrameRange(0))


@pytest.fixture(scope="module")
def model():
    return video_errors.full_hand_model()


@pytest.fixture(scope="module")
def truth_points(fitted, clip_folder, model):
    indices = [frame.index for frame in fitted.motion.frames]
    return video_errors.foot_points(model, video_errors.truth_parameters(clip_folder, indices, model))


def _contacts(motion) -> np.ndarray:
    return np.array([[frame.contacts[name] for name in CONTACT_POINTS] for frame in motion.frames])


def test_the_contacts_found_from_the_fit_match_the_truths(fitted, truth_points):
    found, true = _contacts(fitted.motion), video_errors.truth_contacts(truth_points)
    # 89% of the 128 frame-points agree when written; every foot point stands somewhere.
    assert np.mean(found == true) > 0.8, (found.T.astype(int), true.T.astype(int))
    assert found.any(axis=0).all()
    assert np.sum(found & true) > 0.8 * true.sum()


def test_the_ground_is_near_the_truths_floor_and_the_body_stands_on_it(fitted, clip_folder, model,
                                                                        truth_points):  # fmt: skip
    motion = fitted.motion
    normal = np.array(motion.ground.normal)
    angle = np.degrees(np.arccos(normal @ video_errors.TRUTH_UP))
    assert angle < 5.0, motion.ground  # 2.4 when written
    floor = (truth_points @ video_errors.TRUTH_UP).min()
    # 8 cm when written: the fit sees the walker 3 to 7% farther away than they are.
    assert abs(motion.ground.offset - floor) < 0.1, (motion.ground.offset, floor)
    truth = video_errors.truth_parameters(clip_folder, [frame.index for frame in motion.frames], model)
    with torch.no_grad():
        pelvis = model(vertices=False, **video_errors.frame_parameters(motion.frames, motion.betas, model))
        true_pelvis = model(vertices=False, **truth)
    height = (pelvis.joints[:, 0].double().numpy() @ normal - motion.ground.offset).mean()
    true_height = (true_pelvis.joints[:, 0].double().numpy() @ video_errors.TRUTH_UP - floor).mean()
    assert abs(height - true_height) < 0.04, (height, true_height)  # 1.4 cm when written


def test_held_feet_slide_far_less_and_the_body_is_no_worse(fitted, clip_folder, model, truth_points):
    motion = fitted.motion
    truth = video_errors.truth_parameters(clip_folder, [frame.index for frame in motion.frames], model)
    steps = video_errors.truth_contact_steps(truth_points)
    held = video_errors.frame_parameters(motion.frames, motion.betas, model)
    as_fitted = video_errors.frame_parameters(motion_frames(fitted.frame_fits), motion.betas, model)
    skating_held = video_errors.foot_skating_mm(video_errors.foot_points(model, held), steps)
    skating_fitted = video_errors.foot_skating_mm(video_errors.foot_points(model, as_fitted), steps)
    assert skating_held < 5.0 and skating_held < 0.4 * skating_fitted, (skating_held, skating_fitted)
    errors_held = video_errors.body_pa_v2v_mm(model, held, truth).mean()
    errors_fitted = video_errors.body_pa_v2v_mm(model, as_fitted, truth).mean()
    assert errors_held < errors_fitted + 2.0, (errors_held, errors_fitted)
    jitter_held = video_errors.acceleration_error_mm(model, held, truth)
    jitter_fitted = video_errors.acceleration_error_mm(model, as_fitted, truth)
    assert jitter_held < 1.1 * jitter_fitted, (jitter_held, jitter_fitted)


def test_holding_the_feet_gives_the_same_motion_every_time(fitted):
    motion = fitted.motion
    frames = motion_frames(fitted.frame_fits)
    body = feet.motion_body(load_model("default"), len(motion.betas), len(frames[0].expression))
    seen_by = motion.camera
    again = feet.plant_feet(body, feet.clip_pose(frames, motion.betas), motion.fps, seen_by.focal_length_px,
                            tuple(seen_by.principal_point_px))  # fmt: skip
    assert feet.planted_frames(frames, again) == motion.frames
    assert feet.ground_plane(again.ground) == motion.ground


def test_the_motion_file_keeps_contacts_and_ground_and_reads_version_1(fitted, tmp_path):
    motion = fitted.motion
    back = read_motion(write_motion(motion, tmp_path / "motion.json"))
    assert back == motion and back.ground is not None and _contacts(back).any()
    document = json.loads((tmp_path / "motion.json").read_text())
    assert document["version"] == 2 and set(document["frames"][0]["contacts"]) == set(CONTACT_POINTS)
    older = {**document, "version": 1, "ground": None}
    older["frames"] = [{k: v for k, v in frame.items() if k != "contacts"} for frame in document["frames"]]
    old = motion_from_dict(older)
    assert old.ground is None and all(frame.contacts is None for frame in old.frames)
    assert [frame.transl for frame in old.frames] == [frame.transl for frame in motion.frames]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("frame", "contacts", {"left_heel": True}), "frames[0].contacts: the fields"),
        (("frame", "contacts", {name: 1 for name in CONTACT_POINTS}), "contacts.left_heel: must be true"),
        (("top", "ground", {"normal": [0.0, -2.0, 0.0], "offset": 1.0}), "ground.normal[1]: must be"),
        (("top", "ground", {"normal": [0.0, -0.5, 0.0], "offset": 1.0}), "ground.normal: must be a unit"),
        (("top", "ground", {"normal": [0.0, -1.0, 0.0]}), "ground: the field 'offset' is missing"),
    ],
)
def test_bad_contacts_or_ground_get_a_message_naming_the_field(fitted, change, message):
    document = json.loads(json.dumps(fitted.motion.to_dict()))
    where, key, value = change
    (document["frames"][0] if where == "frame" else document)[key] = value
    with pytest.raises(MotionFormatError, match="motion.json: .*" + message.replace("[", r"\[")):
        motion_from_dict(document, "motion.json")


def test_a_point_near_the_thresholds_does_not_flicker_and_a_fast_one_never_stands():
    heights = np.array([0.10, 0.02, 0.04, 0.02, 0.045, 0.06, 0.04, 0.02, 0.0])
    speeds = np.array([0.1, 0.1, 0.5, 0.1, 0.5, 0.1, 0.1, 0.1, 0.7])
    found = feet.find_contacts(np.stack([heights, heights], 1), np.stack([speeds, np.full(9, 2.0)], 1))
    # In at 0.02 m and slow; held while under the release height and speed; out above 0.05 m, back
    # in only under the contact height; out again when faster than the release speed.
    assert found[:, 0].tolist() == [False, True, True, True, True, False, False, True, False]
    assert not found[:, 1].any()
    assert feet.contact_runs(found[:, 0]) == [(1, 4), (7, 7)]


def test_the_ground_is_found_on_a_tilted_floor_despite_a_raised_foot():
    rng = np.random.default_rng(0)
    up = np.array([0.0, -np.cos(0.2), -np.sin(0.2)])  # seen by a camera looking 11 degrees down
    forward = np.cross(up, [1.0, 0.0, 0.0])
    on_floor = (-1.4 * up + rng.uniform(3.0, 5.0, (40, 1)) * forward + rng.uniform(-0.2, 0.2, (40, 1))
                * [1.0, 0.0, 0.0] + rng.normal(0.0, 0.005, (40, 1)) * up)  # fmt: skip
    raised = on_floor[:4] + 0.08 * up  # a foot at rest on a step
    points = np.concatenate([on_floor, raised])[:, None]
    ground = feet.fit_ground(points, np.zeros(points.shape[:2]), np.array([0.0, -1.0, 0.0]))
    assert np.degrees(np.arccos(ground.normal @ up)) < 1.0, ground
    assert abs(ground.offset - -1.4) < 0.005, ground
    assert feet.fit_ground(points[:5], np.zeros((5, 1)), np.array([0.0, -1.0, 0.0])) is None


def test_feet_that_never_rest_find_no_ground_and_are_left_as_fitted(fitted):
    motion = fitted.motion
    frames = motion_frames(fitted.frame_fits)[:1]  # one frame: too few resting points for a plane
    body = feet.motion_body(load_model("default"), len(motion.betas), len(frames[0].expression))
    planted = feet.plant_feet(body, feet.clip_pose(frames, motion.betas), motion.fps,
                              camera.default_focal(480, 360), (240.0, 180.0))  # fmt: skip
    assert planted.ground is None and not planted.contacts.any()
    assert feet.planted_frames(frames, planted) == frames


def test_the_command_leaves_the_feet_as_fitted_when_asked(clip_folder, tmp_path):
    from smplx_capture_addon.cli import main

    out = tmp_path / "out"
    assert main(["fit-video", str(clip_folder / "clip.mp4"), "-o", str(out), "--start", "29", "--device",
                 "cpu", "--no-ground", "--quiet"]) == 0  # fmt: skip
    motion = read_motion(out / "motion.json")
    assert len(motion.frames) == 3 and motion.ground is None and motion.solver["ground"] is False
    assert all(frame.contacts is None for frame in motion.frames)


def test_the_windows_cover_the_clip_and_their_weights_add_up_to_one():
    split = feet.Windows(12, 4)
    assert feet.windows(32, split) == [(0, 12), (8, 20), (16, 28), (20, 32)]
    assert feet.windows(10, split) == [(0, 10)]
    total = np.zeros(32)
    for first, end in feet.windows(32, split):
        total[first:end] += feet.blend_weights(first, end, 32, split.overlap)
    # Exactly 1 where two windows overlap by `overlap`; the last window's longer overlap adds up higher
    # (the hold divides by the sum), never to 0.
    assert np.allclose(total[:20], 1.0) and total.min() >= 1.0 and np.allclose(total[28:], 1.0)
    with pytest.raises(ValueError, match="cannot overlap"):
        feet.Windows(8, 8)


def _planted(fitted, **windowed):
    motion = fitted.motion
    frames = motion_frames(fitted.frame_fits)
    body = feet.motion_body(load_model("default"), len(motion.betas), len(frames[0].expression))
    seen_by = motion.camera
    planted = feet.plant_feet(body, feet.clip_pose(frames, motion.betas), motion.fps, seen_by.focal_length_px,
                              tuple(seen_by.principal_point_px), **windowed)  # fmt: skip
    return feet.planted_frames(frames, planted)


def test_holding_in_windows_gives_the_one_solves_motion(fitted, model, truth_points):
    motion = fitted.motion  # the 32 frames in one window
    told = []
    windowed = _planted(fitted, split=feet.Windows(12, 4), window_done=lambda *done: told.append(done))
    assert told == [(11, 1, 4), (19, 2, 4), (27, 3, 4), (31, 4, 4)]
    contacts = _contacts(motion)
    assert [frame.contacts for frame in windowed] == [frame.contacts for frame in motion.frames]
    one = video_errors.foot_points(model, video_errors.frame_parameters(motion.frames, motion.betas, model))
    points = video_errors.foot_points(model, video_errors.frame_parameters(windowed, motion.betas, model))
    # In the image the two agree within 2.1 px (0.4 on average) when written. Along the camera's line of
    # sight they differ by up to 5 cm: the image does not see depth, and the one solve itself moves as
    # much there between 150 and 600 iterations.
    in_image = points[..., :2] / points[..., 2:] - one[..., :2] / one[..., 2:]
    pixels = motion.camera.focal_length_px * np.linalg.norm(in_image, axis=-1)
    assert pixels.max() < 3.0 and pixels.mean() < 1.0, (pixels.max(), pixels.mean())
    steps = video_errors.truth_contact_steps(truth_points)
    skating, skating_one = (video_errors.foot_skating_mm(p, steps) for p in (points, one))
    assert skating < 5.0 and abs(skating - skating_one) < 1.0, (skating, skating_one)  # 3.91, 3.72
    normal, offset = np.array(motion.ground.normal), motion.ground.offset
    heights, heights_one = (1000 * np.abs(p @ normal - offset)[contacts] for p in (points, one))
    assert heights.max() < heights_one.max() + 3.0, (heights.max(), heights_one.max())  # 13.2, 13.8 mm


def test_a_cancel_while_the_feet_are_held_stops_the_solve(fitted):
    told = []
    with pytest.raises(Cancelled):
        _planted(fitted, split=feet.Windows(12, 4), window_done=lambda *done: told.append(done),
                 cancel=lambda: len(told) == 1)  # fmt: skip
    assert told == [(11, 1, 4)]


def test_a_cancel_during_the_feet_step_keeps_every_frame_with_its_feet_as_fitted(clip_folder, tmp_path):
    told = [(0, "", 0, 0)]  # cancelled once the first window of the feet is told
    fitted = fit_video(FitRequest(photo=str(clip_folder / "clip.mp4"), device="cpu"), FrameRange(20),
                       progress=lambda *step: told.append(step), cancel=lambda: FEET_STEP in told[-1][1],
                       feet_windows=feet.Windows(6, 2))  # fmt: skip
    motion = fitted.motion
    assert told[-1] == (25, f"{FEET_STEP}, window 1 of 3", 12, 12)  # frames 20 to 25
    assert fitted.cancelled and motion.partial and motion.ground is None
    assert motion.frames == motion_frames(fitted.frame_fits) and len(motion.frames) == 12
    assert all(frame.contacts is None for frame in motion.frames)
    assert read_motion(write_motion(motion, tmp_path / "motion.json")) == motion
