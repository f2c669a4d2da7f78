"""The motion result: a video clip's fit, where the clip fitting and the Blender builders meet.

A motion is one JSON file (`motion.json`), format "smplx-capture-motion", version 2:

    {
      "format": "smplx-capture-motion", "version": 2,
      "model":  {"kind", "file", "path", "sha256", "gender"}   (as in result.json),
      "video":  {"path": "clip.mp4", "width": 320, "height": 480, "fps": 30.0,
                 "start": 0, "step": 1},
      "camera": {"focal_length_px", "principal_point_px", "source"}   (as in result.json),
      "fps": 30.0,
      "betas": [S floats],
      "partial": false,
      "frames": [
        {"index": 0, "flag": "fitted" | "bridged" | "lost" | "imported",
         "expression": [E], "global_orient": [3], "body_pose": [63], "jaw_pose": [3],
         "leye_pose": [3], "reye_pose": [3], "left_hand_pose": [45], "right_hand_pose": [45],
         "transl": [3], "box": [x0, y0, x1, y1] | null,
         "residual_px": {"mean": px, "max": px} | null,
         "contacts": {"left_heel": b, "left_toe": b, "right_heel": b, "right_toe": b} | null}
      ],
      "device": "cpu", "solver": {free-form settings},
      "ground": {"normal": [3], "offset": metres} | null
    }

Conventions:
- Parameters, rotations and camera space are those of result.json (see result_format):
  axis-angle, full 45-d hand poses with the mean included, OpenCV camera space in metres.
  One shape (`betas`) for the whole clip.
- `frames` are the clip's frames in order; `index` is each one's frame number in the
  video (or its position in the folder of images), from `video.start` in steps of
  `video.step`, and `fps` the motion's rate (the video's divided by the step).
- `flag`: "fitted" where the person was seen and fitted; "bridged" where the track was
  lost between two fitted frames (parameters interpolated between them); "lost" where
  it was lost before the first or after the last fitted frame (parameters held from the
  nearest fitted frame); "imported" where another tool made the frame (`import-motion`:
  nothing of ours measured it). `box` and `residual_px` (mean and largest distance of the seen
  body keypoints to the fit, in pixels) are null where nothing was fitted.
- `partial`: true when the fit was cancelled: the frames done so far, each complete.
- `ground`: the floor the feet stood on, a plane in camera space: the points x with
  normal . x = offset, the unit normal pointing from the floor towards the body. It passes
  through the heel and big-toe surface points of the feet where they stood (the sole's
  lowest vertices lie a centimetre or two below them). `contacts`: for each frame,
  whether each foot's heel and big toe stood on the ground (held still there by the fit,
  see video/feet.py). Both are null where nothing measured them: the feet never rested,
  an imported motion, or a version 1 file (read as version 2 without them).
- Every field is checked on reading and on writing, as result.json's are; a bad one is a
  MotionFormatError naming the file and the field (`frames[3].transl[2]`).

Only the standard library and numpy (with the package's name tables and model reader):
Blender's process and the clip fitting both read it.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .atomic_files import write_text
from .errors import CaptureError
from .json_fields import JsonFields, dataclass_from, field_names, read_json_file, shown
from .result_format import (
    MAX_COEFFICIENT,
    MAX_IMAGE_SIDE_PX,
    Camera,
    FitResult,
    ImageInfo,
    ModelIdentity,
    PersonFit,
    check_camera,
    check_model,
    check_pose,
)

FORMAT = "smplx-capture-motion"
VERSION = 2
READABLE_VERSIONS = (1, 2)  # version 1: no ground and no contacts
CONTACT_POINTS = ("left_heel", "left_toe", "right_heel", "right_toe")
MAX_GROUND_OFFSET = 1000.0  # metres from the camera
FITTED, BRIDGED, LOST, IMPORTED = "fitted", "bridged", "lost", "imported"
FLAGS = (FITTED, BRIDGED, LOST, IMPORTED)
MAX_FPS = 10_000.0
MAX_FRAME_INDEX = 100_000_000  # a day of video at over 1,000 frames per second
MAX_RESIDUAL_PX = 1.0e7

_REMEDY = "Fit the video again, or correct the file."


class MotionFormatError(CaptureError):
    """A motion file that cannot be read."""


@dataclass
class VideoInfo:
    path: str
    width: int
    height: int
    fps: float
    start: int
    step: int


@dataclass
class MotionFrame:
    index: int
    flag: str
    expression: list[float]
    global_orient: list[float]
    body_pose: list[float]
    jaw_pose: list[float]
    leye_pose: list[float]
    reye_pose: list[float]
    left_hand_pose: list[float]
    right_hand_pose: list[float]
    transl: list[float]
    box: list[float] | None = None
    residual_px: dict[str, float] | None = None
    contacts: dict[str, bool] | None = None


@dataclass
class GroundPlane:
    normal: list[float]
    offset: float


@dataclass
class Motion:
    model: ModelIdentity
    video: VideoInfo
    camera: Camera
    fps: float
    betas: list[float]
    frames: list[MotionFrame]
    partial: bool = False
    device: str = "cpu"
    solver: dict = field(default_factory=dict)
    ground: GroundPlane | None = None

    def to_dict(self) -> dict:
        return {"format": FORMAT, "version": VERSION, **asdict(self)}


def frame_as_result(motion: Motion, frame: int = 0) -> FitResult:
    """One frame of `motion` as a still fit (what the Blender builders build a rig from)."""
    pose = motion.frames[frame]
    names = ("expression", "global_orient", "body_pose", "jaw_pose", "leye_pose", "reye_pose",
             "left_hand_pose", "right_hand_pose", "transl")  # fmt: skip
    person = PersonFit(betas=list(motion.betas), **{name: list(getattr(pose, name)) for name in names})
    image = ImageInfo(path="", width=motion.video.width, height=motion.video.height)
    return FitResult(model=motion.model, image=image, camera=motion.camera, people=[person])


def write_motion(motion: Motion, path: str | Path) -> Path:
    """Write `motion` as JSON, atomically (a reader never sees half a file)."""
    _check(motion, str(path))
    return write_text(path, json.dumps(motion.to_dict(), indent=1))


def read_motion(path: str | Path) -> Motion:
    """Read and check a motion file."""
    return motion_from_dict(read_json_file(path, "motion", MotionFormatError), str(path))


def is_motion_file(path: str | Path) -> bool:
    """Whether `path` is JSON that says it is a motion (read without checking the rest)."""
    try:
        return json.loads(Path(path).read_text()).get("format") == FORMAT
    except (OSError, UnicodeDecodeError, ValueError, RecursionError, AttributeError):
        return False


def motion_from_dict(raw: object, where: str = "motion") -> Motion:
    """A motion from its JSON form, every field checked (`where` names the file in messages)."""
    if not isinstance(raw, dict) or raw.get("format") != FORMAT:
        raise MotionFormatError(f"{where}: not an SMPL-X Capture motion (no format '{FORMAT}').")
    if raw.get("version") not in READABLE_VERSIONS:
        raise MotionFormatError(
            f"{where}: motion version {raw.get('version')} is not supported (this version reads "
            f"{' and '.join(map(str, READABLE_VERSIONS))}); update the extension or fit the video again."
        )
    check = JsonFields(where, MotionFormatError, _REMEDY)
    required, optional = field_names(Motion)
    raw = check.fields("the motion", raw, required, None)  # other tools' keys at the top: ignored
    frames = check.array("frames", raw["frames"])
    ground = raw.get("ground")
    motion = Motion(
        model=dataclass_from(check, "model", raw["model"], ModelIdentity),
        video=dataclass_from(check, "video", raw["video"], VideoInfo),
        camera=dataclass_from(check, "camera", raw["camera"], Camera),
        fps=raw["fps"],
        betas=raw["betas"],
        frames=[dataclass_from(check, f"frames[{k}]", frame, MotionFrame) for k, frame in enumerate(frames)],
        **{name: raw[name] for name in optional if name in raw and name != "ground"},
        ground=None if ground is None else dataclass_from(check, "ground", ground, GroundPlane),
    )
    _check(motion, where)
    return motion


def _check(motion: Motion, where: str) -> None:
    """Every field of `motion` of its type, size and a plausible magnitude."""
    check = JsonFields(where, MotionFormatError, _REMEDY)
    check_model(check, motion.model)
    video = motion.video
    check.text("video.path", video.path)
    width = check.whole("video.width", video.width, 1, MAX_IMAGE_SIDE_PX)
    height = check.whole("video.height", video.height, 1, MAX_IMAGE_SIDE_PX)
    check.number("video.fps", video.fps, 0.0, MAX_FPS)
    check.whole("video.start", video.start, 0, MAX_FRAME_INDEX)
    step = check.whole("video.step", video.step, 1, MAX_FRAME_INDEX)
    check_camera(check, motion.camera, width, height)
    if check.number("fps", motion.fps, 0.0, MAX_FPS) <= 0.0:
        raise check.fail("fps", "must be above 0")
    betas = check.array("betas", motion.betas)
    check.numbers("betas", betas, len(betas), -MAX_COEFFICIENT, MAX_COEFFICIENT)
    if not isinstance(motion.partial, bool):
        raise check.fail("partial", f"must be true or false, found {shown(motion.partial)}")
    if not check.array("frames", motion.frames):
        raise MotionFormatError(f"{where}: the motion holds no frame.")
    previous = None
    for number, frame in enumerate(motion.frames):
        index = _check_frame(check, f"frames[{number}]", frame)
        if previous is not None and index != previous + step:
            raise check.fail(f"frames[{number}].index", f"must be {previous + step} (the frame before "
                                                         f"plus video.step), found {index}")  # fmt: skip
        previous = index
    check.text("device", motion.device)
    check.mapping("solver", motion.solver)
    if motion.ground is not None:
        _check_ground(check, motion.ground)


def _check_ground(check: JsonFields, ground: GroundPlane) -> None:
    normal = check.numbers("ground.normal", ground.normal, 3, -1.0, 1.0)
    if abs(sum(value * value for value in normal) - 1.0) > 1e-3:
        raise check.fail("ground.normal", "must be a unit vector (length 1)")
    check.number("ground.offset", ground.offset, -MAX_GROUND_OFFSET, MAX_GROUND_OFFSET)


def _check_frame(check: JsonFields, where: str, frame: MotionFrame) -> int:
    index = check.whole(f"{where}.index", frame.index, 0, MAX_FRAME_INDEX)
    if frame.flag not in FLAGS:
        raise check.fail(f"{where}.flag", f"must be one of {', '.join(FLAGS)}, found {shown(frame.flag)}")
    check_pose(check, where, frame)
    expression = check.array(f"{where}.expression", frame.expression)
    check.numbers(f"{where}.expression", expression, len(expression), -MAX_COEFFICIENT, MAX_COEFFICIENT)
    if frame.box is not None:
        check.numbers(f"{where}.box", frame.box, 4)
    if frame.residual_px is not None:
        residual = check.fields(f"{where}.residual_px", frame.residual_px, ("mean", "max"))
        for name in ("mean", "max"):
            check.number(f"{where}.residual_px.{name}", residual[name], 0.0, MAX_RESIDUAL_PX)
    if (frame.flag == FITTED) != (frame.residual_px is not None):
        raise check.fail(f"{where}.residual_px", "must be given for a fitted frame and null for any other")
    if frame.contacts is not None:
        contacts = check.fields(f"{where}.contacts", frame.contacts, CONTACT_POINTS)
        for name in CONTACT_POINTS:
            if not isinstance(contacts[name], bool):
                found = shown(contacts[name])
                raise check.fail(f"{where}.contacts.{name}", f"must be true or false, found {found}")
    return index
