"""Reading a clip: a video file and a folder of numbered frames give the same frames,
streamed, within a range and a step; bad input and bad ranges get a clear VideoError."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from smplx_capture_addon.devtools.video_clip import FRAMES, HEIGHT, WIDTH
from smplx_capture_addon.video.frames import FrameRange, VideoError, open_clip


def test_a_video_and_its_frames_folder_give_the_frames_of_the_range(clip_folder):
    video = open_clip(clip_folder / "clip.mp4")
    assert (video.info.width, video.info.height, video.info.fps) == (WIDTH, HEIGHT, 30.0)
    assert video.info.frame_count == FRAMES
    from_video = list(video.frames(FrameRange(3, 12, 4)))
    assert [f.index for f in from_video] == [3, 7, 11]
    folder = open_clip(clip_folder / "frames", folder_fps=24.0)
    assert (folder.info.frame_count, folder.info.fps) == (FRAMES, 24.0)
    from_folder = list(folder.frames(FrameRange(3, 12, 4)))
    assert [f.index for f in from_folder] == [3, 7, 11]
    for a, b in zip(from_video, from_folder, strict=True):
        assert a.pixels.shape == b.pixels.shape == (HEIGHT, WIDTH, 3)
        assert np.abs(a.pixels.astype(int) - b.pixels.astype(int)).mean() < 4  # mp4 is lossy


def test_the_range_runs_to_the_clips_end_without_an_end(clip_folder):
    indices = [f.index for f in open_clip(clip_folder / "frames").frames(FrameRange(25, None, 3))]
    assert indices == [25, 28, 31]


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("missing.mp4", None, "no such video file or folder"),
        ("empty.mp4", b"", "the file is empty"),
        ("text.mp4", b"not a video " * 100, "not a video this add-on can read"),
        ("nothing", "folder", "no numbered images"),
    ],
)
def test_unreadable_input_is_refused_with_what_to_do(tmp_path, name, content, message):
    path = tmp_path / name
    if content == "folder":
        path.mkdir()
    elif content is not None:
        path.write_bytes(content)
    with pytest.raises(VideoError, match=message):
        open_clip(path)


def test_a_cut_video_gives_the_frames_it_has_and_a_range_past_them_is_refused(clip_folder, tmp_path):
    cut = tmp_path / "cut.mp4"
    data = (clip_folder / "clip.mp4").read_bytes()
    cut.write_bytes(data[: len(data) // 3])
    try:
        clip = open_clip(cut)
    except VideoError as error:  # the container's index was cut away: refused as unreadable
        assert "not a video" in str(error) or "states no frame size" in str(error)
        return
    with pytest.raises(VideoError, match="no frame in the range from 30"):
        list(clip.frames(FrameRange(30)))


@pytest.mark.parametrize(("start", "end", "step"), [(-1, None, 1), (5, 4, 1), (0, None, 0)])
def test_a_backwards_or_empty_range_is_refused(start, end, step):
    with pytest.raises(VideoError, match="empty or backwards"):
        FrameRange(start, end, step)


def test_a_start_past_the_clip_is_refused_naming_its_last_frame(clip_folder):
    with pytest.raises(VideoError, match=f"past the clip's last frame \\({FRAMES - 1}\\)"):
        list(open_clip(clip_folder / "clip.mp4").frames(FrameRange(FRAMES + 5)))


def test_frames_of_different_sizes_in_a_folder_are_refused(clip_folder, tmp_path):
    from PIL import Image

    folder = tmp_path / "frames"
    folder.mkdir()
    for index in range(2):
        shutil.copy(clip_folder / "frames" / f"frame_{index:04d}.png", folder / f"frame_{index:04d}.png")
    Image.new("RGB", (100, 80)).save(folder / "frame_0002.png")
    with pytest.raises(VideoError, match="every frame must have one size"):
        list(open_clip(folder).frames(FrameRange()))
