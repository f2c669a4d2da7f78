"""Reading a clip: a video file and a folder of numbered frames give the same frames,
streamed, within a range and a step; bad input, bad ranges and a video whose frame rate
varies get a clear VideoError."""

from __future__ import annotations

import shutil
import struct
from pathlib import Path

import numpy as np
import pytest

from smplx_capture_addon.devtools.video_clip import FRAMES, HEIGHT, WIDTH
from smplx_capture_addon.video.frames import FrameRange, VideoError, off_rate, open_clip


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


def _variable_rate_copy(source: Path, target: Path) -> None:
    """`source` (an mp4 of one constant rate) with the second half of its frames lasting
    twice as long: its time-to-sample box (stts) rewritten with two entries, and the sizes
    of the boxes holding it grown to match (the index comes after the frames' data, so no
    offset into that data moves)."""
    data = bytearray(source.read_bytes())
    holders, start = [], 0
    while (kind := data[start + 4 : start + 8]) != b"stts":
        if kind in (b"moov", b"trak", b"mdia", b"minf", b"stbl"):
            holders.append(start)
            start += 8
        else:
            start += struct.unpack(">I", data[start : start + 4])[0]
    size = struct.unpack(">I", data[start : start + 4])[0]
    _, entries, count, delta = struct.unpack(">IIII", data[start + 8 : start + 24])  # version, entries
    assert entries == 1, "the clip was written at one constant rate"
    body = struct.pack(">IIIIII", 0, 2, count // 2, delta, count - count // 2, 2 * delta)
    data[start : start + size] = struct.pack(">I4s", 8 + len(body), b"stts") + body
    for box in holders:
        grown = struct.unpack(">I", data[box : box + 4])[0] + 8 + len(body) - size
        data[box : box + 4] = struct.pack(">I", grown)
    target.write_bytes(bytes(data))


def test_a_video_whose_frame_rate_varies_is_refused_with_how_to_re_encode_it(clip_folder, tmp_path):
    assert len(list(open_clip(clip_folder / "clip.mp4").frames(FrameRange()))) == FRAMES  # on its rate
    varies = tmp_path / "varies.mp4"
    _variable_rate_copy(clip_folder / "clip.mp4", varies)
    clip = open_clip(varies)
    assert clip.info.fps == 20.0  # 16 frames at 30 and 16 at 15 a second: FFmpeg states their mean
    with pytest.raises(VideoError, match=r"its frame rate varies: frame 2 is at 0\.067 s") as refused:
        list(clip.frames(FrameRange()))
    assert 'ffmpeg -i "varies.mp4" -fps_mode cfr -r 20 "varies_cfr.mp4"' in str(refused.value)


def test_frame_times_off_the_stated_rate_by_half_a_frame_are_found():
    ntsc = [round(index * 1001 / 30) for index in range(300)]  # 29.97 a second, in whole milliseconds
    assert not any(off_rate(index, time, 30000 / 1001) for index, time in enumerate(ntsc))
    dropped = [0.0, 40.0, 80.0, 160.0, 200.0]  # 25 a second, frame 3 missing
    assert [off_rate(index, time, 25.0) for index, time in enumerate(dropped)] == [False] * 3 + [True] * 2
    repeated = [0.0, 40.0, 40.0, 80.0]  # a frame's time given twice
    assert [off_rate(index, time, 25.0) for index, time in enumerate(repeated)] == [False, False, True, True]
    assert not off_rate(10, 10 * 40.0 + 19.0, 25.0) and off_rate(10, 10 * 40.0 + 21.0, 25.0)
