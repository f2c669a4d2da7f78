"""A clip's frames, read one at a time: a video file (what OpenCV's FFmpeg backend reads:
mp4, mov, avi, webm, ...) or a folder of numbered images, within a range and a step.

Frames are streamed: only the frame being worked on is in memory, whatever the clip's
length. Unreadable input, a clip without frames and a range outside the clip are
`VideoError`s that say what to do.

A motion has one rate, so a video file's frames must come at the rate its container
states: each frame's time (OpenCV's CAP_PROP_POS_MSEC, from the first frame's) is checked
as it is read, and a frame more than RATE_TOLERANCE of a frame period from where the
stated rate puts it (a dropped or repeated frame, a variable frame rate) is a VideoError
that says how to re-encode the video at a constant rate. A folder of images has no times:
its frames are taken at its one rate.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import CaptureError
from ..keypoints.images import MAX_WORKING_SIDE

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")
FOLDER_FPS = 30.0  # a folder of images says no rate: the usual video rate, unless given
RATE_TOLERANCE = 0.5  # frame periods: past half a period, a frame is shown at another frame's time
_NUMBER = re.compile(r"(\d+)(?!.*\d)")  # the last number in a file name


class VideoError(CaptureError):
    """A video or folder of images that cannot be read, or a frame range outside it."""


@dataclass(frozen=True)
class FrameRange:
    """Frames `start`, `start + step`, ... up to `end` (included; None: the clip's last)."""

    start: int = 0
    end: int | None = None
    step: int = 1

    def __post_init__(self) -> None:
        if self.start < 0 or self.step < 1 or (self.end is not None and self.end < self.start):
            raise VideoError(
                f"The frame range start {self.start}, end {self.end}, step {self.step} is empty or "
                "backwards: give --start F >= 0, --end F at or after it, and --step K >= 1."
            )

    def wants(self, index: int) -> bool:
        return index >= self.start and (index - self.start) % self.step == 0

    def past(self, index: int) -> bool:
        return self.end is not None and index > self.end


@dataclass(frozen=True)
class ClipInfo:
    """What a clip says of itself: its path, frame size, rate and frame count (0 when the
    container does not say)."""

    path: str
    width: int
    height: int
    fps: float
    frame_count: int


@dataclass(frozen=True)
class Frame:
    index: int  # the frame's number in the clip, from 0
    pixels: np.ndarray  # (height, width, 3) uint8 RGB


class Clip:
    """The frames of a video file or a folder of numbered images (see `open_clip`)."""

    def __init__(self, info: ClipInfo, frames: Iterator[Frame]) -> None:
        self.info = info
        self._frames = frames

    def frames(self, frame_range: FrameRange) -> Iterator[Frame]:
        """The frames of `frame_range`, one at a time; a range that holds none of the
        clip's frames is a VideoError."""
        count = self.info.frame_count
        if count and frame_range.start >= count:
            raise VideoError(
                f"{self.info.path}: --start {frame_range.start} is past the clip's last frame "
                f"({count - 1}): give a start from 0 to {count - 1}."
            )
        given = 0
        for frame in self._frames:
            if frame_range.past(frame.index):
                break
            if frame_range.wants(frame.index):
                given += 1
                yield frame
        if given == 0:
            raise VideoError(
                f"{self.info.path}: no frame in the range from {frame_range.start} "
                f"(the clip has {count or 'no readable'} frames): give another --start."
            )


def open_clip(path: str | Path, folder_fps: float = FOLDER_FPS) -> Clip:
    """The clip at `path`: a folder of numbered images (at `folder_fps`) or a video file."""
    path = Path(path)
    if path.is_dir():
        return _image_folder(path, folder_fps)
    if not path.is_file():
        raise VideoError(f"{path}: no such video file or folder. Check the path.")
    if path.stat().st_size == 0:
        raise VideoError(f"{path}: the file is empty (0 bytes). Copy the video again.")
    return _video_file(path)


def _video_file(path: Path) -> Clip:
    import cv2

    capture = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    if not capture.isOpened():
        capture.release()
        raise VideoError(
            f"{path}: not a video this add-on can read. Use an mp4, mov, avi or webm file, "
            "or a folder of numbered images."
        )
    width = int(capture.get(cv2.CAP_PROP_FRAME_WIDTH))
    height = int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
    fps = float(capture.get(cv2.CAP_PROP_FPS))
    count = max(0, int(capture.get(cv2.CAP_PROP_FRAME_COUNT)))
    if width <= 0 or height <= 0 or not fps > 0:
        capture.release()
        raise VideoError(
            f"{path}: the video states no frame size or rate ({width}x{height}, {fps} fps); "
            "convert it to mp4 first."
        )
    _check_size(path, width, height)
    return Clip(ClipInfo(str(path.resolve()), width, height, fps, count), _decoded(capture, path, fps))


def _decoded(capture, path: Path, fps: float) -> Iterator[Frame]:
    import cv2

    index = 0
    first_ms = 0.0
    try:
        while True:
            ok, bgr = capture.read()
            if not ok:
                return
            time_ms = capture.get(cv2.CAP_PROP_POS_MSEC)
            first_ms = time_ms if index == 0 else first_ms
            _check_rate(path, index, time_ms - first_ms, fps)
            yield Frame(index, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
            index += 1
    finally:
        capture.release()


def off_rate(index: int, time_ms: float, fps: float) -> bool:
    """Whether frame `index`, `time_ms` after the clip's first, is more than RATE_TOLERANCE
    of a frame period from where a constant `fps` puts it."""
    return abs(time_ms * fps / 1000.0 - index) > RATE_TOLERANCE


def _check_rate(path: Path, index: int, time_ms: float, fps: float) -> None:
    if off_rate(index, time_ms, fps):
        raise VideoError(
            f"{path}: its frame rate varies: frame {index} is at {time_ms / 1000:.3f} s, where its stated "
            f"{fps:g} frames a second put it at {index / fps:.3f} s. Re-encode it at a constant rate "
            f'first, e.g. ffmpeg -i "{path.name}" -fps_mode cfr -r {fps:g} "{path.stem}_cfr.mp4", or '
            "give a folder of its frames as numbered images."
        )


def numbered_images(folder: Path) -> list[tuple[int, Path]]:
    """The folder's images with a number in their names (the last one), by number: the
    frames of a folder clip, the frame's index its place in this list."""
    numbered = []
    for file in folder.iterdir():
        match = _NUMBER.search(file.stem)
        if file.suffix.lower() in IMAGE_SUFFIXES and match:
            numbered.append((int(match.group(1)), file))
    return sorted(numbered)


def renumbered(file: Path, number: int) -> str:
    """`file`'s name with its number (the last one) written as `number`, at the same width."""
    match = _NUMBER.search(file.stem)
    if match is None:
        raise ValueError(f"{file.name} holds no number")
    digits = str(number).zfill(len(match.group(1)))
    return f"{file.stem[: match.start()]}{digits}{file.stem[match.end() :]}{file.suffix}"


def _image_folder(folder: Path, fps: float) -> Clip:
    from ..keypoints.images import load_image

    files = [file for _, file in numbered_images(folder)]
    if not files:
        raise VideoError(
            f"{folder}: no numbered images (frame_0001.png, ...) in the folder: give a video "
            "file, or a folder of numbered PNG or JPEG frames."
        )
    first = load_image(files[0], max_side=1 << 30)
    width, height = first.original_size
    _check_size(folder, width, height)

    def frames() -> Iterator[Frame]:
        for index, file in enumerate(files):
            image = first if index == 0 else load_image(file, max_side=1 << 30)
            if image.original_size != (width, height):
                raise VideoError(
                    f"{file}: {image.original_size[0]}x{image.original_size[1]} pixels, but the "
                    f"first frame is {width}x{height}: every frame must have one size."
                )
            yield Frame(index, image.pixels)

    return Clip(ClipInfo(str(folder.resolve()), width, height, fps, len(files)), frames())


def _check_size(path: Path, width: int, height: int) -> None:
    if max(width, height) > MAX_WORKING_SIDE:
        raise VideoError(
            f"{path}: frames of {width}x{height} pixels are over the {MAX_WORKING_SIDE} pixels a "
            "side the detector works at: scale the video down first."
        )
