"""One video fit request: the clip, its frame range and the person, from the panel or the
command line to `fit_video`.

A `VideoRequest` holds a `FitRequest` for what a single frame's fit shares with a photo's
(the video file or folder of frames as its `photo`, the body model, gender, device, focal
length and the person: the most prominent, a number or a box in the first frame where
anyone is found), the frame range (`start`, `end` included or None for the clip's last,
`step`), the frame rate of a folder of images, the smoothing width and whether the feet
are put on the ground (`ground`, see video/feet.py). It is checked when it is made: a bad
value raises a CaptureError that says what to give instead.

Its JSON form (`to_dict` / `from_dict`, what a serving worker's `fit-video` request
carries, see worker.protocol):

    {"fit": {the FitRequest's JSON form}, "start": 0, "end": 80 | null, "step": 1,
     "folder_fps": 30.0, "smooth": 1.5, "ground": true}

Only the standard library and numpy (through the frame range's module): Blender's
process makes requests, the worker reads them.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

from ..errors import CaptureError
from ..fit_request import EVERYONE, FitRequest, check_keys
from .frames import FOLDER_FPS, FrameRange
from .smoothing import SIGMA_FRAMES


@dataclass(frozen=True)
class VideoRequest:
    """Everything a video fit needs (see the module docstring)."""

    fit: FitRequest
    start: int = 0
    end: int | None = None
    step: int = 1
    folder_fps: float = FOLDER_FPS
    smooth: float = SIGMA_FRAMES
    ground: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.fit, FitRequest):
            raise CaptureError(f"A video fit's settings must be a FitRequest, not {self.fit!r}.")
        if self.fit.photo is None or self.fit.keypoints is not None:
            raise CaptureError("A video fit needs the video file or folder of frames, not a keypoint file.")
        if self.fit.person.kind == EVERYONE:
            raise CaptureError("A video fit follows one person: choose the largest, a number or a box.")
        if self.fit.overlay or self.fit.start is not None or self.fit.vposer or self.fit.gmm:
            raise CaptureError(
                "A video fit draws no keypoints, starts from no earlier fit and uses the built-in pose "
                "priors: leave the overlay, --start, VPoser and the GMM out."
            )
        for name in ("start", "step"):
            _check_whole(name, getattr(self, name))
        if self.end is not None:
            _check_whole("end", self.end)
        self.frame_range()  # a backwards or empty range says so now, not in the worker
        if not _is_number(self.folder_fps) or not self.folder_fps > 0:
            raise CaptureError(
                f"The frame rate of a folder of images must be above 0, not {self.folder_fps!r}."
            )
        if not _is_number(self.smooth) or not self.smooth >= 0:
            raise CaptureError(f"The smoothing width must be 0 or more frames, not {self.smooth!r}.")
        if not isinstance(self.ground, bool):
            raise CaptureError(f"Feet on the ground or not must be true or false, not {self.ground!r}.")

    def frame_range(self) -> FrameRange:
        return FrameRange(self.start, self.end, self.step)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: object) -> VideoRequest:
        """The request in `raw` (the JSON form, parsed); a CaptureError when it is not one."""
        check_keys(raw, [f.name for f in fields(cls)], "video fit request")
        return cls(**{**raw, "fit": FitRequest.from_dict(raw.get("fit"))})


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _check_whole(name: str, value: object) -> None:
    if type(value) is not int:
        raise CaptureError(f"The frame {name} must be a whole number, not {value!r}.")
