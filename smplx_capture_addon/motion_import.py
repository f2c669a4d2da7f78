"""Motions made by other tools, read as our motion (motion_format), so `blend` and the
exporters take them like a video's fit.

Two kinds of file are read:

- AMASS-style SMPL-X .npz: `poses` (N, 165: root 3, body 63, jaw 3, eyes 6, hands 90)
  or the separate `root_orient`, `pose_body`, `pose_jaw`, `pose_eye`, `pose_hand`;
  `trans` (N, 3), `betas`, `mocap_frame_rate` (or SMPL-H's `mocap_framerate`), optional
  `expression` and `gender`. Missing blocks other than the body's are zeros. AMASS's hands
  are the joints' own rotations (fitted with a flat hand mean), as ours are.
  AMASS's world is Z-up; ours is a camera's (OpenCV: x right, y down, z forward). The
  importer puts a camera in front of the body: it looks horizontally at the first
  frame's pelvis from the side the body faces, with world up as the image's up, from
  DISTANCE_M, where a 1.8 m person fills most of a 1920 x 1080 view at a 50 mm lens's
  focal (FOCAL_PX). The whole clip is turned by that one rigid motion: each frame's root
  rotation is the camera's rotation times AMASS's, and the translation moves so that the
  pelvis lands where the camera sees it (SMPL-X turns the root about the rest pelvis).
- SMPLify-X result .pkl (the reference's output), one frame: global_orient, body_pose
  (63), left/right_hand_pose (45 full, or PCA coefficients expanded with the model's hand
  components), jaw_pose, leye/reye_pose, expression, betas, camera_translation and/or
  transl. The reference adds the model's mean hand to its hand poses, so the importer
  does too. Its camera is kept as it fitted: DEFAULT_FOCAL_PX at the centre of a 1920 x
  1080 frame (the file does not say the photo's size). A folder of numbered .pkl files is
  a clip, with the frames' mean shape. Pickles are read with the safe unpickler (arrays
  only, nothing in the file runs).

Every frame is flagged imported, without residuals (no keypoints of ours measured it).
Only the standard library and numpy: Blender's process can use it.
"""

from __future__ import annotations

import pickle
import re
import zipfile
from pathlib import Path

import numpy as np

from .body_model import numpy_body
from .body_model.model_file import BodyModelData
from .body_model.safe_pickle import BadArray, RefusedPickle, StandIn, unpickle_arrays
from .errors import CaptureError
from .json_fields import JsonFields
from .motion_format import IMPORTED, Motion, MotionFrame, VideoInfo
from .result_format import MAX_TRANSLATION_M, MAX_TURN_RAD, Camera, ModelIdentity

FRAME_SIZE = (1920, 1080)
FOCAL_PX = FRAME_SIZE[0] * 50.0 / 36.0  # a 50 mm lens on a 36 mm wide sensor
DISTANCE_M = FOCAL_PX * 2.2 / FRAME_SIZE[1]  # 2.2 m of height in the view: a 1.8 m person fills 80 %
DEFAULT_FOCAL_PX = 5000.0  # SMPLify-X's camera
DEFAULT_FPS = 30.0
FPS_KEYS = ("mocap_frame_rate", "mocap_framerate")
# The blocks of AMASS's `poses`, in order, with the parameters each one holds.
AMASS_BLOCKS = (
    ("root_orient", ("global_orient",)),
    ("pose_body", ("body_pose",)),
    ("pose_jaw", ("jaw_pose",)),
    ("pose_eye", ("leye_pose", "reye_pose")),
    ("pose_hand", ("left_hand_pose", "right_hand_pose")),
)
POSE_WIDTHS = {
    "global_orient": 3, "body_pose": 63, "jaw_pose": 3, "leye_pose": 3, "reye_pose": 3,
    "left_hand_pose": 45, "right_hand_pose": 45,
}  # fmt: skip
FULL_POSE_WIDTH = sum(POSE_WIDTHS.values())  # 165
VPOSER_CODE_WIDTH = 32
_AMASS_REMEDY = "Export the motion again as an SMPL-X .npz (AMASS's layout), or correct the file."
_PKL_REMEDY = "Give a result .pkl written by SMPLify-X, or correct the file."


class MotionImportError(CaptureError):
    """A motion file of another tool that cannot be imported."""


def import_motion(path: str | Path, data: BodyModelData, fps: float | None = None,
                  expand_hand_pca: bool = True) -> Motion:  # fmt: skip
    """The motion in `path`: an AMASS-style .npz, an SMPLify-X .pkl, or a folder of numbered
    .pkl files. `data` is the body model it is built with; `fps` overrides the file's rate.
    `expand_hand_pca`: whether `data`'s hand components may expand PCA hand poses (only
    when they are the components the fit used)."""
    path = Path(path)
    if path.is_dir():
        return read_smplify(path, data, fps, expand_hand_pca)
    if not path.is_file():
        raise MotionImportError(f"Motion file not found: {path}")
    if path.suffix.lower() == ".npz":
        return read_amass(path, data, fps)
    if path.suffix.lower() == ".pkl":
        return read_smplify(path, data, fps, expand_hand_pca)
    raise MotionImportError(f"{path}: not a motion this can import: give an SMPL-X .npz "
                            f"(AMASS's layout), an SMPLify-X result .pkl or a folder of them.")  # fmt: skip


def file_gender(path: str | Path) -> str | None:
    """The gender an AMASS-style .npz names ('female', 'male', 'neutral'), or None."""
    path = Path(path)
    if path.suffix.lower() != ".npz" or not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as archive:
            if "gender" not in archive.files:
                return None
            gender = archive["gender"].item()
    except (OSError, ValueError, zipfile.BadZipFile, EOFError):
        return None  # read_amass says what is wrong with the file
    gender = gender.decode("latin1") if isinstance(gender, bytes) else str(gender)
    return gender if gender in ("female", "male", "neutral") else None


def read_amass(path: Path, data: BodyModelData, fps: float | None = None) -> Motion:
    """An AMASS-style SMPL-X .npz as a motion seen by a camera in front of the body."""
    check = JsonFields(path, MotionImportError, _AMASS_REMEDY)
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in archive.files if key != "gender"}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as error:
        raise MotionImportError(f"{path}: not a readable .npz ({error}). {_AMASS_REMEDY}") from None
    poses = _amass_poses(check, arrays)
    frames = len(poses["global_orient"])
    poses["transl"] = _rows(check, arrays, "trans", frames, 3, required=False)
    expression = _rows(check, arrays, "expression", frames, None, required=False)
    betas = _vector(check, arrays.get("betas", np.zeros(10)), "betas", None)
    if fps is None:
        fps = next((_number(check, arrays[key], key) for key in FPS_KEYS if key in arrays), None)
        if fps is None:
            raise MotionImportError(f"{path}: mocap_frame_rate: is missing, so the clip's rate is unknown: "
                                    "give it with --fps.")  # fmt: skip
    poses["global_orient"], poses["transl"] = _in_front_of_camera(data, betas, poses)
    poses["expression"] = expression
    camera = Camera(FOCAL_PX, [FRAME_SIZE[0] / 2, FRAME_SIZE[1] / 2], "default-fov")
    method = "imported from an AMASS-style SMPL-X .npz; a camera placed in front of the body"
    return _motion(path, data, poses, betas, fps, camera, method)


def read_smplify(path: Path, data: BodyModelData, fps: float | None = None,
                        expand_hand_pca: bool = True) -> Motion:  # fmt: skip
    """An SMPLify-X result .pkl (one frame), or a folder of numbered ones (a clip)."""
    files = _numbered_pickles(path) if path.is_dir() else [path]
    frames = [read_smplify_frame(file, data, expand_hand_pca) for file in files]
    poses = {name: np.stack([frame[name] for frame in frames]) for name in frames[0] if name != "betas"}
    betas = np.mean([frame["betas"] for frame in frames], axis=0)  # a motion has one shape
    camera = Camera(DEFAULT_FOCAL_PX, [FRAME_SIZE[0] / 2, FRAME_SIZE[1] / 2], "default-fov")
    method = "imported from SMPLify-X result .pkl files"
    return _motion(path, data, poses, betas, DEFAULT_FPS if fps is None else fps, camera, method)


def read_smplify_frame(
    path: Path, data: BodyModelData, expand_hand_pca: bool = True
) -> dict[str, np.ndarray]:
    """One SMPLify-X result: each parameter as a flat array, hands as full poses with the
    model's mean hand added (as the reference's body model adds it)."""
    check = JsonFields(path, MotionImportError, _PKL_REMEDY)
    raw = _unpickle(path)
    latent_only = "body_pose" not in raw and "pose_embedding" in raw
    if latent_only or _size(raw.get("body_pose")) == VPOSER_CODE_WIDTH:
        raise MotionImportError(
            f"{path}: body_pose: holds a VPoser code ({VPOSER_CODE_WIDTH} values), not "
            "21 joint rotations: decode it with VPoser into body_pose (63 values) first."
        )
    if "body_pose" not in raw or "global_orient" not in raw:
        missing = "body_pose" if "body_pose" not in raw else "global_orient"
        raise check.fail(missing, "is missing: this is not an SMPL-X result")
    frame = {}
    for name, width in POSE_WIDTHS.items():
        if name.endswith("hand_pose"):
            frame[name] = _hand_pose(check, raw, name, data, expand_hand_pca)
        elif name in raw:
            frame[name] = _vector(check, raw[name], name, width)
        else:
            frame[name] = np.zeros(width)
    frame["transl"] = sum(_vector(check, raw[key], key, 3) if key in raw else np.zeros(3)
                          for key in ("camera_translation", "transl"))  # fmt: skip
    rotation = raw.get("camera_rotation")
    turned = rotation is not None and not np.allclose(
        _vector(check, rotation, "camera_rotation", 9), np.eye(3).ravel(), atol=1e-6
    )
    if turned:
        raise check.fail("camera_rotation", "is not the identity (SMPLify-X keeps it fixed); turn the body "
                                            "into the camera's frame first")  # fmt: skip
    frame["expression"] = _vector(check, raw.get("expression", np.zeros(0)), "expression", None)
    frame["betas"] = _vector(check, raw.get("betas", np.zeros(10)), "betas", None)
    return frame


def _unpickle(path: Path) -> dict:
    try:
        with open(path, "rb") as handle:
            raw = unpickle_arrays(handle)
    except RefusedPickle as error:
        raise MotionImportError(f"{path}: not a result of arrays ({error}), so it was not loaded. "
                                f"{_PKL_REMEDY}") from None  # fmt: skip
    except (OSError, pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError,
            MemoryError) as error:  # fmt: skip
        problem = f"not a readable pickle ({type(error).__name__})"
        raise MotionImportError(f"{path}: {problem}. {_PKL_REMEDY}") from None
    if not isinstance(raw, dict):
        raise MotionImportError(f"{path}: the pickle holds no dictionary of parameters. {_PKL_REMEDY}")
    try:  # chumpy arrays (older results) hold their values as plain data
        return {key: value.array() if isinstance(value, StandIn) else value for key, value in raw.items()}
    except (BadArray, ValueError) as error:
        raise MotionImportError(f"{path}: holds a damaged array ({error}). {_PKL_REMEDY}") from None


def _numbered_pickles(folder: Path) -> list[Path]:
    """The folder's .pkl files in the order of the number in their names."""
    numbered = []
    for file in folder.iterdir():
        found = re.findall(r"\d+", file.stem)
        if file.suffix.lower() == ".pkl" and found:
            numbered.append((int(found[-1]), file.name, file))
    if not numbered:
        raise MotionImportError(f"{folder}: no numbered .pkl files (000.pkl, 001.pkl, ...) to import.")
    return [file for _, _, file in sorted(numbered)]


def _hand_pose(check: JsonFields, raw: dict, name: str, data: BodyModelData, expand_pca: bool) -> np.ndarray:
    left = name.startswith("left")
    mean = (data.hand_mean_left if left else data.hand_mean_right).astype(np.float64)
    if name not in raw:
        return mean
    values = _vector(check, raw[name], name, None)
    if values.size == POSE_WIDTHS[name]:
        return values + mean
    if not 0 < values.size < POSE_WIDTHS[name]:
        raise check.fail(name, f"must hold 45 values (or up to 44 PCA coefficients), found {values.size}")
    if not expand_pca:
        problem = f"holds {values.size} PCA coefficients: give the SMPL-X model the fit used with --model"
        raise MotionImportError(f"{check.path}: {name}: {problem}, whose hand components expand them.")
    components = data.hand_components_left if left else data.hand_components_right
    return values @ components[: values.size].astype(np.float64) + mean


def _amass_poses(check: JsonFields, arrays: dict) -> dict[str, np.ndarray]:
    """Each pose parameter as (N, width), from `poses` or from the separate blocks."""
    if "poses" in arrays:
        poses = _rows(check, arrays, "poses", None, FULL_POSE_WIDTH)
        widths = list(POSE_WIDTHS.values())
        splits = np.split(poses, np.cumsum(widths)[:-1], axis=1)
        return dict(zip(POSE_WIDTHS, splits, strict=True))
    if "root_orient" not in arrays or "pose_body" not in arrays:
        raise check.fail("poses", "is missing (so are root_orient and pose_body): the file holds no motion")
    frames = len(_rows(check, arrays, "root_orient", None, 3))
    out = {}
    for key, names in AMASS_BLOCKS:
        width = sum(POSE_WIDTHS[name] for name in names)
        block = _rows(check, arrays, key, frames, width, required=key in ("root_orient", "pose_body"))
        splits = np.split(block, np.cumsum([POSE_WIDTHS[name] for name in names])[:-1], axis=1)
        out.update(zip(names, splits, strict=True))
    return out


def _rows(check: JsonFields, arrays: dict, key: str, frames: int | None, width: int | None,
          required: bool = True) -> np.ndarray:  # fmt: skip
    """arrays[key] as (frames, width) floats (zeros when absent and not `required`)."""
    if key not in arrays:
        if required:
            raise check.fail(key, "is missing")
        return np.zeros((frames, width or 0))
    value = np.asarray(arrays[key])
    if value.dtype.kind not in "biuf" or value.ndim != 2 or (width is not None and value.shape[1] != width):
        wanted = f"(frames, {width})" if width is not None else "(frames, values)"
        found = f"{value.dtype} of shape {value.shape}"
        raise check.fail(key, f"must be numbers of shape {wanted}, found {found}")
    if frames is not None and len(value) != frames:
        raise check.fail(key, f"holds {len(value)} frames where the poses hold {frames}")
    if not len(value):
        raise check.fail(key, "holds no frame")
    if not np.all(np.isfinite(value)):
        raise check.fail(key, "holds a value that is not a finite number")
    return value.astype(np.float64)


def _vector(check: JsonFields, value: object, key: str, width: int | None) -> np.ndarray:
    """A parameter as a flat array of `width` finite floats (any width when None)."""
    try:
        array = np.asarray(value, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        raise check.fail(key, "must be an array of numbers") from None
    if width is not None and array.size != width:
        raise check.fail(key, f"must hold {width} values, found {array.size}")
    if not np.all(np.isfinite(array)):
        raise check.fail(key, "holds a value that is not a finite number")
    return array


def _number(check: JsonFields, value: object, key: str) -> float:
    number = _vector(check, value, key, 1)[0]
    if not number > 0:
        raise check.fail(key, f"must be above 0, found {number:g}")
    return float(number)


def _size(value: object) -> int | None:
    try:
        return np.asarray(value).size if value is not None else None
    except (TypeError, ValueError):  # a ragged list: _vector says what is wrong
        return None


def camera_from_amass(forward: np.ndarray) -> np.ndarray:
    """The rotation (3, 3) from AMASS's Z-up world into the camera's frame (OpenCV) of a
    camera looking horizontally against `forward` (the way the body faces), world up
    being the image's up."""
    facing = np.array([forward[0], forward[1], 0.0])
    if np.linalg.norm(facing) < 1e-6:  # lying face up or down: look along world Y
        facing = np.array([0.0, -1.0, 0.0])
    look = -facing / np.linalg.norm(facing)
    down = np.array([0.0, 0.0, -1.0])
    right = np.cross(down, look)
    return np.stack([right, down, look])  # rows: the camera's axes in world coordinates


def _in_front_of_camera(data: BodyModelData, betas: np.ndarray, poses: dict) -> tuple[np.ndarray, np.ndarray]:
    """(global_orient, transl) of every frame in the camera's frame (see the module's docstring)."""
    roots = numpy_body.axis_angle_to_matrix(poses["global_orient"])
    camera = camera_from_amass(roots[0] @ np.array([0.0, 0.0, 1.0]))  # SMPL-X's body faces +z
    rest_pelvis = numpy_body.rest_joints(data, betas)[0]
    trans = poses["transl"]
    # pelvis_world = rest_pelvis + trans; the first frame's pelvis lands at DISTANCE_M straight ahead
    transl = (trans - trans[0]) @ camera.T + np.array([0.0, 0.0, DISTANCE_M]) - rest_pelvis
    return numpy_body.matrix_to_axis_angle(camera @ roots), transl


def _motion(path: Path, data: BodyModelData, poses: dict, betas: np.ndarray, fps: float, camera: Camera,
            method: str) -> Motion:  # fmt: skip
    frames = len(poses["global_orient"])
    check = JsonFields(path, MotionImportError, "Correct the file.")
    for name, values in poses.items():
        if name == "transl" and np.abs(values).max() > MAX_TRANSLATION_M:
            raise check.fail(name, "places the body over 10 km away")
        turns = np.linalg.norm(values.reshape(frames, -1, 3), axis=-1) if name in POSE_WIDTHS else np.zeros(1)
        if turns.max() > MAX_TURN_RAD:
            raise check.fail(name, f"a turn of {turns.max():g} radians is not a pose")
    motion_frames = [
        MotionFrame(index=k, flag=IMPORTED, residual_px=None,
                    **{name: values[k].tolist() for name, values in poses.items()})
        for k in range(frames)
    ]  # fmt: skip
    model = ModelIdentity(data.kind, Path(data.path).name, str(data.path), data.sha256, data.gender)
    return Motion(
        model=model,
        video=VideoInfo(str(path), FRAME_SIZE[0], FRAME_SIZE[1], float(fps), 0, 1),
        camera=camera,
        fps=float(fps),
        betas=betas.tolist(),
        frames=motion_frames,
        solver={"method": method, "source": str(path)},
    )
