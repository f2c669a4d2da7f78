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
         "loss_per_stage": [floats], "converged": true}
      ],
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
- `model` names the body model the parameters belong to; `sha256` tells a reader
  whether the file it has is that one.

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
from .body_model.names import POSE_BLOCKS
from .errors import CaptureError, ModelFileError

FORMAT = "smplx-capture-result"
VERSION = 1

# Every pose parameter's width in the file (hands as full 15 x 3 poses), and transl's.
POSE_SIZES = {**{name: 3 * joints for name, joints in POSE_BLOCKS}, "transl": 3}


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
    try:
        raw = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise ResultFormatError(f"Result file not found: {path}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ResultFormatError(f"{path}: not a readable result file ({error}).") from None
    return result_from_dict(raw, str(path))


def result_from_dict(raw: dict, where: str = "result") -> FitResult:
    if not isinstance(raw, dict) or raw.get("format") != FORMAT:
        raise ResultFormatError(f"{where}: not an SMPL-X Capture result (no format '{FORMAT}').")
    if raw.get("version") != VERSION:
        raise ResultFormatError(
            f"{where}: result version {raw.get('version')} is not supported (this version reads "
            f"{VERSION}); update the extension or fit again."
        )
    try:
        result = FitResult(
            model=ModelIdentity(**raw["model"]),
            image=ImageInfo(**raw["image"]),
            camera=Camera(**raw["camera"]),
            people=[PersonFit(**person) for person in raw["people"]],
            keypoint_names=list(raw.get("keypoint_names", [])),
            stages=[Stage(**stage) for stage in raw.get("stages", [])],
            device=raw.get("device", "cpu"),
            solver=dict(raw.get("solver", {})),
        )
    except (KeyError, TypeError) as error:
        raise ResultFormatError(f"{where}: a required field is missing or unknown ({error}).") from None
    _check(result, where)
    return result


def _check(result: FitResult, where: str) -> None:
    if not result.people:
        raise ResultFormatError(f"{where}: the result holds no fitted person.")
    if result.camera.focal_length_px <= 0 or len(result.camera.principal_point_px) != 2:
        raise ResultFormatError(f"{where}: the camera is invalid.")
    for index, person in enumerate(result.people):
        for name, size in POSE_SIZES.items():
            values = getattr(person, name)
            if len(values) != size:
                raise ResultFormatError(
                    f"{where}: person {index} '{name}' has {len(values)} values, expected {size}."
                )
        numbers = [v for name in (*POSE_SIZES, "betas", "expression") for v in getattr(person, name)]
        if not all(isinstance(v, (int, float)) and math.isfinite(v) for v in numbers):
            raise ResultFormatError(f"{where}: person {index} has non-finite parameters.")
