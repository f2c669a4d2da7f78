"""The fit result: where the solver and the Blender builders meet.

A result is one JSON file (`result.json`), format "smplx-capture-result", version 1:

    {
      "format": "smplx-capture-result", "version": 1,
      "model":  {"kind": "smplx", "file": "SMPLX_NEUTRAL.npz", "path": "...",
                 "sha256": "...", "gender": "neutral"},
      "image":  {"path": "photo.jpg", "width": 810, "height": 1080},
      "camera": {"focal_length_px": 1234.5, "principal_point_px": [405.0, 540.0],
                 "source": "exif" | "default-fov" | "user" | "refined"},
      "people": [
        {"box": [x0, y0, x1, y1] | null,
         "betas": [S floats], "expression": [E floats],
         "global_orient": [3], "body_pose": [63], "jaw_pose": [3],
         "leye_pose": [3], "reye_pose": [3],
         "left_hand_pose": [45], "right_hand_pose": [45], "transl": [3],
         "residuals_px": [[dx, dy] | null per name of "keypoint_names"],
         "loss_per_stage": [floats], "converged": true,
         "inferred_joints": [names of joints no seen keypoint pinned down],
         "number": N | null,
         "keypoints_px": [[x, y, confidence] per name of "keypoint_names"]}
      ],
      "found_boxes": [[x0, y0, x1, y1] of everyone found, in person-number order],
      "keypoint_names": [names of the keypoints the residuals refer to],
      "stages": [{"name": "camera", "seconds": 0.1}, ...],
      "device": "cpu", "solver": {free-form settings}
    }

Conventions:
- Rotations are axis-angle (radians) in the SMPL-X parameter layout. Hand poses are the
  full 15 x 3 rotations with the model file's mean hand already included, so a reader
  needs no PCA basis and no flat-hand-mean flag.
- Camera space is OpenCV's: x right, y down, z forward from the camera centre, metres.
  The body posed with these parameters (global_orient and transl included) lies in
  camera space; a point (x, y, z) projects to (f x / z + cx, f y / z + cy) pixels.
- `inferred_joints` names joints (of `names.JOINT_NAMES`) whose rotation no seen keypoint
  moved (a leg below the frame, a hand not found): the priors chose them, so an artist
  should check them. Files without it read as everything seen.
- `number` is the person's number among those found (1 = the most prominent, as the
  fit's person choice counts), and `found_boxes` the boxes of everyone found, fitted or
  not, so another person can be picked; null and [] where the input did not say
  (a fit inside a given box).
- `model` names the body model the parameters belong to; `sha256` tells a reader
  whether the file it has is that one.
- `keypoints_px` are the keypoints the person was fitted to (pixels, confidence with
  the layout's weight applied, 0 where not seen): Blender shows them as handles to
  correct, and a re-fit writes them back as a keypoint file. Results written before it
  lack it (an empty list).
- Every field is checked on reading and on writing: its type, its size and a plausible
  magnitude (the limits below POSE_SIZES). A bad one is a ResultFormatError that names
  the file and the field (`people[0].transl[2]`); keys of other tools at the top level
  are ignored, unknown keys inside are refused.

Only the standard library and numpy (with the package's name tables and model reader):
Blender's process, the worker and the solver all read it.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .atomic_files import write_text
from .body_model.model_file import BodyModelData, load_model
from .body_model.names import JOINT_NAMES, POSE_BLOCKS
from .errors import CaptureError, ModelFileError
from .json_fields import JsonFields, as_float, dataclass_from, field_names, read_json_file, shown

FORMAT = "smplx-capture-result"
VERSION = 1

# Every pose parameter's width in the file (hands as full 15 x 3 poses), and transl's.
POSE_SIZES = {**{name: 3 * joints for name, joints in POSE_BLOCKS}, "transl": 3}

# What a reader can do about a bad result file.
_REMEDY = "Fit the photo again, or correct the file."
# Plausible magnitudes. A focal length below 1/36 of the image width is a lens under 1 mm
# on a 36 mm wide sensor (Blender's shortest, 174 degrees across); 30,000 widths is past
# the longest lens EXIF can state (65,535 mm) at any aspect ratio.
FOCAL_RANGE_IN_WIDTHS = (1 / 36, 30_000)
MAX_IMAGE_SIDE_PX = 1_000_000
MAX_TRANSLATION_M = 10_000.0  # a person 10 km away is not in a photo
MAX_TURN_RAD = 8 * math.pi  # fits stay within a turn of rest; four turns is not a pose
MAX_PEOPLE = 10_000  # person numbers count the people found in one photo
MAX_COEFFICIENT = 100.0  # shape and expression coefficients are in standard deviations


class ResultFormatError(CaptureError):
    """A result file that cannot be read."""


@dataclass
class ModelIdentity:
    kind: str
    file: str
    path: str
    sha256: str
    gender: str


@dataclass
class ImageInfo:
    path: str
    width: int
    height: int


@dataclass
class Camera:
    focal_length_px: float
    principal_point_px: list[float]
    source: str


@dataclass
class PersonFit:
    betas: list[float]
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
    residuals_px: list[list[float] | None] = field(default_factory=list)
    loss_per_stage: list[float] = field(default_factory=list)
    converged: bool = True
    inferred_joints: list[str] = field(default_factory=list)
    number: int | None = None
    keypoints_px: list[list[float]] = field(default_factory=list)  # last: positional callers keep working


@dataclass
class Stage:
    name: str
    seconds: float


@dataclass
class FitResult:
    model: ModelIdentity
    image: ImageInfo
    camera: Camera
    people: list[PersonFit]
    keypoint_names: list[str] = field(default_factory=list)
    stages: list[Stage] = field(default_factory=list)
    device: str = "cpu"
    solver: dict = field(default_factory=dict)
    found_boxes: list[list[float]] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"format": FORMAT, "version": VERSION, **asdict(self)}


def model_for_result(result: FitResult, model: str | Path | None = None) -> BodyModelData:
    """The body model a result was fitted with: `model` when given, else the file the
    result names, else the bundled default body; refused if its checksum differs."""
    candidates = [model] if model is not None else [result.model.path, None]
    last_error: CaptureError | None = None
    for candidate in candidates:
        try:
            data = load_model(candidate, result.model.gender or "neutral")
        except CaptureError as error:
            last_error = error
            continue
        if result.model.sha256 and data.sha256 != result.model.sha256:
            last_error = ModelFileError(
                f"The body model {data.path} is not the one this result was fitted with "
                f"({result.model.file}): give that file with --model, or fit again."
            )
            continue
        return data
    assert last_error is not None
    raise last_error


def write_result(result: FitResult, path: str | Path) -> Path:
    """Write `result` as JSON, atomically (a reader never sees half a file; of writers at
    the same time, one's whole result wins)."""
    _check(result, str(path))
    return write_text(path, json.dumps(result.to_dict(), indent=1))


def read_result(path: str | Path) -> FitResult:
    """Read and check a result file."""
    return result_from_dict(read_json_file(path, "result", ResultFormatError), str(path))


def result_from_dict(raw: dict, where: str = "result") -> FitResult:
    """A result from its JSON form, every field checked (`where` names the file in messages)."""
    if not isinstance(raw, dict) or raw.get("format") != FORMAT:
        raise ResultFormatError(f"{where}: not an SMPL-X Capture result (no format '{FORMAT}').")
    if raw.get("version") != VERSION:
        raise ResultFormatError(
            f"{where}: result version {raw.get('version')} is not supported (this version reads "
            f"{VERSION}); update the extension or fit again."
        )
    check = JsonFields(where, ResultFormatError, _REMEDY)
    raw = check.fields("the result", raw, field_names(FitResult)[0], None)  # other tools' keys: ignored
    people = check.array("people", raw["people"])
    stages = check.array("stages", raw.get("stages", []))
    result = FitResult(
        model=dataclass_from(check, "model", raw["model"], ModelIdentity),
        image=dataclass_from(check, "image", raw["image"], ImageInfo),
        camera=dataclass_from(check, "camera", raw["camera"], Camera),
        people=[dataclass_from(check, f"people[{k}]", person, PersonFit) for k, person in enumerate(people)],
        keypoint_names=raw.get("keypoint_names", []),
        stages=[dataclass_from(check, f"stages[{k}]", stage, Stage) for k, stage in enumerate(stages)],
        device=raw.get("device", "cpu"),
        solver=raw.get("solver", {}),
        found_boxes=raw.get("found_boxes", []),
    )
    _check(result, where)
    return result


def _check(result: FitResult, where: str) -> None:
    """Every field of `result` of its type, size and a plausible magnitude."""
    check = JsonFields(where, ResultFormatError, _REMEDY)
    check_model(check, result.model)
    check.text("image.path", result.image.path)
    width = check.whole("image.width", result.image.width, 1, MAX_IMAGE_SIDE_PX)
    height = check.whole("image.height", result.image.height, 1, MAX_IMAGE_SIDE_PX)
    check_camera(check, result.camera, width, height)
    if not check.array("people", result.people):
        raise ResultFormatError(f"{where}: the result holds no fitted person.")
    for index, person in enumerate(result.people):
        _check_person(check, f"people[{index}]", person)
        if person.keypoints_px and len(person.keypoints_px) != len(result.keypoint_names):
            raise check.fail(f"people[{index}].keypoints_px", "must have a row per name of keypoint_names")
    for index, name in enumerate(check.array("keypoint_names", result.keypoint_names)):
        check.text(f"keypoint_names[{index}]", name)
    for index, stage in enumerate(check.array("stages", result.stages)):
        check.text(f"stages[{index}].name", stage.name)
        check.number(f"stages[{index}].seconds", stage.seconds, 0.0)
    check.text("device", result.device)
    check.mapping("solver", result.solver)
    for index, box in enumerate(check.array("found_boxes", result.found_boxes)):
        check.numbers(f"found_boxes[{index}]", box, 4)


def check_model(check: JsonFields, model: ModelIdentity) -> None:
    for name in ("kind", "file", "path", "sha256", "gender"):
        check.text(f"model.{name}", getattr(model, name))


def check_camera(check: JsonFields, camera: Camera, width: int, height: int) -> None:
    """The camera of a `width` x `height` picture: a focal length a lens can have, the
    principal point within an image of the picture."""
    low, high = (width * ratio for ratio in FOCAL_RANGE_IN_WIDTHS)
    check.number("camera.focal_length_px", camera.focal_length_px, low, high)
    centre = check.array("camera.principal_point_px", camera.principal_point_px, 2)
    for axis, (value, size) in enumerate(zip(centre, (width, height), strict=True)):
        check.number(f"camera.principal_point_px[{axis}]", value, -size, 2 * size)
    check.text("camera.source", camera.source)


def check_pose(check: JsonFields, where: str, posed: object) -> None:
    """The pose blocks and `transl` of `posed` (a PersonFit, a motion's frame): their sizes
    and turns no pose has."""
    for name, size in POSE_SIZES.items():
        if name == "transl":
            check.numbers(f"{where}.transl", posed.transl, size, -MAX_TRANSLATION_M, MAX_TRANSLATION_M)
            continue
        values = check.numbers(f"{where}.{name}", getattr(posed, name), size)
        for first in range(0, size, 3):
            turn = math.hypot(*values[first : first + 3])
            if turn > MAX_TURN_RAD:
                raise check.fail(
                    f"{where}.{name}[{first}:{first + 3}]",
                    f"a turn of {turn:g} radians is not a pose (at most {MAX_TURN_RAD:g})",
                )


def _check_person(check: JsonFields, where: str, person: PersonFit) -> None:
    check_pose(check, where, person)
    for name in ("betas", "expression"):
        values = check.array(f"{where}.{name}", getattr(person, name))
        check.numbers(f"{where}.{name}", values, len(values), -MAX_COEFFICIENT, MAX_COEFFICIENT)
    if person.box is not None:
        check.numbers(f"{where}.box", person.box, 4)
    for index, residual in enumerate(check.array(f"{where}.residuals_px", person.residuals_px)):
        if residual is not None:
            check.numbers(f"{where}.residuals_px[{index}]", residual, 2)
    for index, row in enumerate(check.array(f"{where}.keypoints_px", person.keypoints_px)):
        check.numbers(f"{where}.keypoints_px[{index}]", row, 3)
        check.number(f"{where}.keypoints_px[{index}][2]", row[2], 0.0, 1.0)
    for index, loss in enumerate(check.array(f"{where}.loss_per_stage", person.loss_per_stage)):
        if as_float(loss) is None:  # a diverged stage may have left an infinite loss: kept as a record
            raise check.fail(f"{where}.loss_per_stage[{index}]", f"must be a number, found {shown(loss)}")
    if not isinstance(person.converged, bool):
        raise check.fail(f"{where}.converged", f"must be true or false, found {shown(person.converged)}")
    if person.number is not None:
        check.whole(f"{where}.number", person.number, 1, MAX_PEOPLE)
    for index, name in enumerate(check.array(f"{where}.inferred_joints", person.inferred_joints)):
        if name not in JOINT_NAMES:
            raise check.fail(f"{where}.inferred_joints[{index}]", f"must name a joint, found {shown(name)}")
