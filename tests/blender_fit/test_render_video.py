"""`blend MOTION -o scene.blend --render-video out.mp4`: the animation rendered through
Blender's FFmpeg output over the clip, read back with OpenCV (frame count, size, the clip's
frames behind the rig, the motion's first video frame on the first; a clip fitted every
other frame and a folder of frames too). OpenCV is in the
solver's environment only: Python 3.11."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from smplx_capture_addon.body_model import model_file
from smplx_capture_addon.cli import main
from smplx_capture_addon.motion_format import FITTED, Motion, MotionFrame, VideoInfo, write_motion
from smplx_capture_addon.result_format import Camera, ModelIdentity

WIDTH, HEIGHT = 160, 120
START, FRAMES = 3, 4
# Each frame of the clip one plain grey (colours would shift: video codecs keep colour at
# a quarter of the resolution, and readers differ in their colour matrix), 20 levels or
# more apart; those behind the rig, frames 2 to 6, 45 or more from the body's grey (130-145).
LEVELS = (0, 20, 40, 70, 190, 220, 250, 120)


@pytest.fixture(scope="module")
def colour_clip(tmp_path_factory) -> Path:
    """A clip whose every frame is one plain colour, so the frame behind the rig shows."""
    path = tmp_path_factory.mktemp("clip") / "colours.mp4"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 30.0, (WIDTH, HEIGHT))
    for level in LEVELS:
        writer.write(np.full((HEIGHT, WIDTH, 3), level, dtype=np.uint8))
    writer.release()
    return path


@pytest.fixture(scope="module")
def colour_frames(tmp_path_factory) -> Path:
    """The colour clip as a folder of numbered PNGs, numbered from 1."""
    folder = tmp_path_factory.mktemp("frames")
    for number, level in enumerate(LEVELS, start=1):
        grey = np.full((HEIGHT, WIDTH, 3), level, dtype=np.uint8)
        cv2.imwrite(str(folder / f"frame_{number:03d}.png"), grey)
    return folder


def standing_motion(clip: Path, step: int = 1, start: int = START, count: int = FRAMES) -> Motion:
    """The open default body standing 3 m before the camera, raising its arms, over
    `count` of the clip's frames: `start`, `start + step`, ..."""
    data = model_file.load_model(None)
    frames = []
    for number in range(count):
        body_pose = np.zeros((21, 3))
        body_pose[15, 2], body_pose[16, 2] = -0.3 * number, 0.3 * number  # the shoulders
        still = {name: [0.0] * 3 for name in ("jaw_pose", "leye_pose", "reye_pose")}
        frames.append(MotionFrame(
            index=start + step * number, flag=FITTED, expression=[0.0] * 10, global_orient=[np.pi, 0.0, 0.0],
            body_pose=body_pose.ravel().tolist(), left_hand_pose=[0.0] * 45, right_hand_pose=[0.0] * 45,
            transl=[0.0, 0.25, 3.0], box=None, residual_px={"mean": 1.0, "max": 2.0}, **still,
        ))  # fmt: skip
    return Motion(
        model=ModelIdentity("smplx", Path(data.path).name, data.path, data.sha256, data.gender),
        video=VideoInfo(str(clip), WIDTH, HEIGHT, 30.0, start, step),
        camera=Camera(150.0, [WIDTH / 2, HEIGHT / 2], "default-fov"),
        fps=30.0 / step,
        betas=[0.0] * 10,
        frames=frames,
    )


def read_video(path: Path) -> np.ndarray:
    capture = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(frame)
    capture.release()
    return np.stack(frames)


def test_the_animation_is_rendered_over_the_clip_frame_by_frame(colour_clip, tmp_path, capsys):
    motion = write_motion(standing_motion(colour_clip), tmp_path / "motion.json")
    out = tmp_path / "video" / "walk.mp4"
    assert main(["blend", str(motion), "-o", str(tmp_path / "scene.blend"), "--render-video", str(out)]) == 0
    assert "warning" not in capsys.readouterr().err
    assert sorted(p.name for p in out.parent.iterdir()) == ["walk.mp4"]  # no temporary file left
    assert_drawn_over_the_clip(read_video(out), range(START, START + FRAMES))


def assert_drawn_over_the_clip(frames: np.ndarray, clip_frames: range) -> None:
    """Each rendered frame shows the clip's frame `clip_frames` says, the body over it."""
    assert frames.shape == (len(clip_frames), HEIGHT, WIDTH, 3)
    for number, (frame, expected) in enumerate(zip(frames, clip_frames, strict=True)):
        corner = frame[:15, :15].mean()  # the body stands in the middle
        nearest = int(np.argmin(np.abs(np.array(LEVELS) - corner)))
        assert nearest == expected and abs(corner - LEVELS[nearest]) < 10, (number, corner)
        body = frame[40:80, 70:90].mean()  # the torso, drawn over the clip
        assert abs(body - corner) > 25, (number, body, corner)


def test_a_clip_fitted_every_other_frame_is_rendered_over_every_clip_frame(colour_clip, tmp_path, capsys):
    # Frames 2, 4 and 6 fitted: the scene runs over the clip's frames 2 to 6, the rig between its keys.
    motion = write_motion(standing_motion(colour_clip, step=2, start=2, count=3), tmp_path / "motion.json")
    out = tmp_path / "walk.mp4"
    assert main(["blend", str(motion), "-o", str(tmp_path / "scene.blend"), "--render-video", str(out)]) == 0
    assert "warning" not in capsys.readouterr().err
    assert_drawn_over_the_clip(read_video(out), range(2, 7))


def test_a_folder_of_frames_fitted_every_other_frame_is_rendered_over_every_frame(colour_frames, tmp_path,
                                                                                 capsys):  # fmt: skip
    motion = write_motion(standing_motion(colour_frames, step=2, start=2, count=3), tmp_path / "motion.json")
    out = tmp_path / "walk.mp4"
    assert main(["blend", str(motion), "-o", str(tmp_path / "scene.blend"), "--render-video", str(out)]) == 0
    assert "warning" not in capsys.readouterr().err
    assert_drawn_over_the_clip(read_video(out), range(2, 7))


def test_render_video_needs_a_motion(tmp_path, capsys):
    result = tmp_path / "result.json"
    result.write_text("{}")
    out = tmp_path / "out.mp4"
    assert main(["blend", str(result), "-o", str(tmp_path / "scene.blend"), "--render-video", str(out)]) == 2
    assert "--render-video renders a motion" in capsys.readouterr().err
    assert not out.exists() and not (tmp_path / "scene.blend").exists()
