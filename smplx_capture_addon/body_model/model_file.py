"""Read body model files in the SMPL-X layout into plain numpy arrays.

Reads the official SMPL-X downloads (`.npz` and `.pkl`; the 2019 layout with 10 shape +
10 expression directions and the 2020 layout with 300 + 100; neutral, male, female), a
folder laid out like the download (`smplx/SMPLX_NEUTRAL.npz`, ...), and the project's
open default body, which uses the same keys plus a few optional ones:

    model_kind            str     what body this is (official files: "smplx")
    gender                str     neutral | male | female (else taken from the file name)
    shape_space_dim       int     column of shapedirs where expression directions start
    vertex_keypoint_ids   (21,)   vertex of each name in names.VERTEX_KEYPOINT_NAMES
    shape_names           (S,)    a name per shape direction
    expression_names      (E,)    a name per expression direction
    attribution           str     licence and attribution text shown to the user

`posedirs` may be absent (a body without pose correctives). Nothing here imports torch,
so Blender's process can read a model to build the mesh and rig.

Pickles are untrusted input: they are read by `safe_pickle`, which only rebuilds numpy
arrays and stand-ins for chumpy and scipy.sparse objects, never running other code.
"""

from __future__ import annotations

import hashlib
import math
import pickle
import zipfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import ModelFileError
from .names import JOINT_PARENTS, NUM_JOINTS, VERTEX_KEYPOINT_NAMES
from .safe_pickle import MAX_ARRAY_ELEMENTS, BadArray, RefusedPickle, StandIn, unpickle_arrays

GENDERS = ("neutral", "male", "female")
DATA_DIR = Path(__file__).resolve().parent.parent / "data"
DEFAULT_MODEL_PATH = DATA_DIR / "default_body" / "open_body_smplx_layout.npz"

# Vertices of the official SMPL-X mesh (10,475 vertices) that give the surface keypoints,
# in the order of names.VERTEX_KEYPOINT_NAMES. Official files do not carry them; other
# bodies store their own as `vertex_keypoint_ids`.
SMPLX_NUM_VERTICES = 10475
SMPLX_VERTEX_KEYPOINT_IDS = (
    9120, 9929, 9448, 616, 6,  # nose, right eye, left eye, right ear, left ear
    5770, 5780, 8846, 8463, 8474, 8635,  # left big/small toe, heel; right big/small toe, heel
    5361, 4933, 5058, 5169, 5286,  # left thumb, index, middle, ring, pinky tips
    8079, 7669, 7794, 7905, 8022,  # right thumb, index, middle, ring, pinky tips
)  # fmt: skip
SMPLX_SHAPE_SPACE_DIM = 300  # 2020 files: expression directions start at column 300

# The other bodies of the SMPL family, by (joints, vertices): their files share keys with
# SMPL-X's, so naming the body tells the user more than naming a key it lacks.
OTHER_BODY_MODELS = {
    (24, 6890): "an SMPL", (52, 6890): "an SMPL+H", (16, 778): "a MANO", (5, 5023): "a FLAME",
}  # fmt: skip

REQUIRED_KEYS = (
    "v_template", "f", "weights", "J_regressor", "kintree_table", "shapedirs",
    "hands_componentsl", "hands_componentsr", "hands_meanl", "hands_meanr",
    "lmk_faces_idx", "lmk_bary_coords",
)  # fmt: skip


@dataclass(frozen=True)
class BodyModelData:
    """A body model in the SMPL-X layout. V vertices, F faces, J=55 joints.

    Arrays: v_template (V, 3); faces (F, 3) int64; weights (V, J); j_regressor (J, V);
    parents (J,) int64, -1 for the root; shapedirs (V, 3, S); exprdirs (V, 3, E);
    posedirs (V, 3, 9*(J-1)) or None; hand_components_left/right (45, 45), rows are
    components; hand_mean_left/right (45,); vertex_keypoint_ids (21,) int64;
    landmark_faces (51,) int64 with landmark_bary (51, 3); contour_faces (79, 17) int64
    with contour_bary (79, 17, 3), or None when the file has no face contour.
    """

    path: str
    sha256: str
    kind: str
    gender: str
    v_template: np.ndarray
    faces: np.ndarray
    weights: np.ndarray
    j_regressor: np.ndarray
    parents: np.ndarray
    shapedirs: np.ndarray
    exprdirs: np.ndarray
    posedirs: np.ndarray | None
    hand_components_left: np.ndarray
    hand_components_right: np.ndarray
    hand_mean_left: np.ndarray
    hand_mean_right: np.ndarray
    vertex_keypoint_ids: np.ndarray
    landmark_faces: np.ndarray
    landmark_bary: np.ndarray
    contour_faces: np.ndarray | None = None
    contour_bary: np.ndarray | None = None
    shape_names: tuple[str, ...] = ()
    expression_names: tuple[str, ...] = ()
    attribution: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def num_vertices(self) -> int:
        return int(self.v_template.shape[0])

    @property
    def num_joints(self) -> int:
        return int(self.parents.shape[0])

    @property
    def num_shape(self) -> int:
        return int(self.shapedirs.shape[2])

    @property
    def num_expression(self) -> int:
        return int(self.exprdirs.shape[2])

    @property
    def has_pose_correctives(self) -> bool:
        return self.posedirs is not None and bool(np.any(self.posedirs))

    @property
    def has_face_contour(self) -> bool:
        return self.contour_faces is not None

    def summary(self) -> dict:
        """The facts `model-info` prints, as a JSON-friendly dict."""
        return {
            "path": self.path,
            "kind": self.kind,
            "gender": self.gender,
            "vertices": self.num_vertices,
            "faces": int(self.faces.shape[0]),
            "joints": self.num_joints,
            "shape_directions": self.num_shape,
            "expression_directions": self.num_expression,
            "pose_correctives": self.has_pose_correctives,
            "face_contour": self.has_face_contour,
            "sha256": self.sha256,
        }


# --- reading ---------------------------------------------------------------------


def resolve_model_path(path: str | Path | None, gender: str = "neutral") -> Path:
    """The model file to use for `path`: a file, a folder like the SMPL-X download, or
    None / "default" for the bundled open default body."""
    if gender not in GENDERS:
        raise ModelFileError(f"Unknown gender {gender!r}: use one of {', '.join(GENDERS)}.")
    if path is None or str(path) == "default":
        if not DEFAULT_MODEL_PATH.exists():
            raise ModelFileError(
                f"The bundled default body is missing ({DEFAULT_MODEL_PATH}): reinstall the "
                "extension, or give an SMPL-X model file with --model."
            )
        return DEFAULT_MODEL_PATH
    path = Path(path).expanduser()
    if path.is_dir():
        stem = f"SMPLX_{gender.upper()}"
        for folder in (path, path / "smplx", path / "models" / "smplx"):
            for ext in (".npz", ".pkl"):
                if (folder / (stem + ext)).is_file():
                    return folder / (stem + ext)
        raise ModelFileError(
            f"No {stem}.npz or {stem}.pkl in {path} (nor in its smplx/ folder): point to the "
            "folder of the SMPL-X download, or to one model file."
        )
    if not path.exists():
        raise ModelFileError(f"Model file not found: {path}")
    return path


def load_model(path: str | Path | None = None, gender: str = "neutral") -> BodyModelData:
    """Read and check a body model (see `resolve_model_path` for what `path` may be)."""
    path = resolve_model_path(path, gender)
    raw = _read_arrays(path)
    return _to_model_data(path, raw)


def _read_arrays(path: Path) -> dict:
    """The file's top-level mapping, values as read (arrays or stand-ins)."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(4)
    except OSError as error:
        raise ModelFileError(f"{path}: cannot be read ({error.strerror}).") from None
    if head.startswith(b"PK"):
        return _read_npz(path)
    if head[:1] == b"\x80" or path.suffix == ".pkl":
        return _read_pickle(path)
    raise ModelFileError(f"{path}: not a model file (expected an SMPL-X .npz or .pkl file).")


def _read_npz(path: Path) -> dict:
    try:
        archive = np.load(path, allow_pickle=False)
        # Read only what we use: other members (such as pickled dicts) are never touched.
        wanted = [k for k in archive.files if k in _KNOWN_KEYS]
        for key in wanted:
            if _npz_member_size(archive, key) > MAX_ARRAY_ELEMENTS:
                raise ModelFileError(
                    f"{path}: key '{key}' claims more values than any body model holds: the file is "
                    "damaged; download the model file again."
                )
        return {key: archive[key] for key in wanted}
    except (zipfile.BadZipFile, EOFError, OSError, ValueError, KeyError) as error:
        raise ModelFileError(
            f"{path}: the archive is corrupt or truncated ({type(error).__name__}): download "
            "the model file again."
        ) from None


def _npz_member_size(archive, key: str) -> int:
    """How many values member `key` of an open .npz claims, read from its header alone
    (a damaged or hostile header may claim terabytes). Raises ValueError when unreadable."""
    name = key + ".npy" if key + ".npy" in archive.zip.namelist() else key
    formats = np.lib.format
    with archive.zip.open(name) as member:
        version = formats.read_magic(member)
        read_header = {(1, 0): formats.read_array_header_1_0, (2, 0): formats.read_array_header_2_0}
        if version not in read_header:
            raise ValueError(f"unknown .npy version {version}")
        shape = read_header[version](member)[0]
    if any(size < 0 for size in shape):
        raise ValueError(f"negative shape {shape}")
    return math.prod(shape)


def _read_pickle(path: Path) -> dict:
    try:
        with open(path, "rb") as handle:
            data = unpickle_arrays(handle)
    except RefusedPickle as error:
        raise ModelFileError(
            f"{path}: not a model file ({error}): model files hold only arrays, so this file was "
            "not loaded. Use the SMPL-X download's files."
        ) from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError,
            MemoryError) as error:  # fmt: skip
        raise ModelFileError(
            f"{path}: the pickle is corrupt or truncated ({type(error).__name__}): download "
            "the model file again."
        ) from None
    if not isinstance(data, dict):
        raise ModelFileError(f"{path}: not a model file (the pickle holds no dictionary of arrays).")
    return {key: _as_array(path, key, value) for key, value in data.items() if key in _KNOWN_KEYS}


def _as_array(path: Path, key: str, value) -> np.ndarray:
    try:
        array = value.array() if isinstance(value, StandIn) else np.asarray(value)
    except (ValueError, TypeError, IndexError) as error:  # BadArray says what is wrong; else ragged lists
        what = error if isinstance(error, BadArray) else "a damaged array"
        raise ModelFileError(f"{path}: key '{key}' holds {what}: download the file again.") from None
    if array is None:
        raise ModelFileError(f"{path}: key '{key}' holds an object that is not plain data.")
    return array


# --- checking --------------------------------------------------------------------

_OPTIONAL_KEYS = (
    "posedirs", "dynamic_lmk_faces_idx", "dynamic_lmk_bary_coords", "model_kind", "gender",
    "shape_space_dim", "vertex_keypoint_ids", "shape_names", "expression_names", "attribution",
)  # fmt: skip
_KNOWN_KEYS = frozenset(REQUIRED_KEYS + _OPTIONAL_KEYS)


def _to_model_data(path: Path, raw: dict) -> BodyModelData:
    _refuse_other_body_models(path, raw)
    missing = [key for key in REQUIRED_KEYS if key not in raw]
    if missing:
        raise ModelFileError(
            f"{path}: missing key {', '.join(repr(k) for k in missing)}: this is not a complete "
            "SMPL-X model file (use the SMPL-X download's SMPLX_*.npz or .pkl)."
        )
    check = _ShapeChecker(path, raw)
    if (vertices := _vertex_count(raw)) is not None:
        check.sizes["V"] = vertices
    v_template = check.array("v_template", ("V", 3), np.float32)
    faces = check.indices("f", ("F", 3), "V", "vertices")
    kintree = check.array("kintree_table", (2, "J"), np.int64)
    parents = kintree[0].copy()
    parents[0] = -1  # the root is stored as -1 or as 2**32 - 1
    if check.sizes["J"] != NUM_JOINTS or tuple(parents) != JOINT_PARENTS:
        raise ModelFileError(
            f"{path}: the kinematic tree is not SMPL-X's ({check.sizes['J']} joints): this looks "
            "like another body model (SMPL, SMPL+H, MANO or FLAME); use an SMPL-X file."
        )
    weights = check.array("weights", ("V", "J"), np.float32)
    j_regressor = check.array("J_regressor", ("J", "V"), np.float32)
    dirs = check.array("shapedirs", ("V", 3, "D"), np.float32)
    shape_dim = _shape_space_dim(path, raw, check.sizes["D"])
    posedirs = None
    if "posedirs" in raw:
        posedirs = check.array("posedirs", ("V", 3, 9 * (NUM_JOINTS - 1)), np.float32)
    vertex_kp = _vertex_keypoint_ids(path, raw, check)
    contour_faces = contour_bary = None
    if "dynamic_lmk_faces_idx" in raw and "dynamic_lmk_bary_coords" in raw:
        contour_faces = check.indices("dynamic_lmk_faces_idx", (79, 17), "F", "faces")
        contour_bary = check.array("dynamic_lmk_bary_coords", (79, 17, 3), np.float32)
    return BodyModelData(
        path=str(path),
        sha256=file_sha256(path),
        kind=_text(raw.get("model_kind"), "smplx"),
        gender=_text(raw.get("gender"), _gender_from_name(path)),
        v_template=v_template,
        faces=faces,
        weights=weights,
        j_regressor=j_regressor,
        parents=parents,
        shapedirs=np.ascontiguousarray(dirs[:, :, : min(shape_dim, dirs.shape[2])]),
        exprdirs=np.ascontiguousarray(dirs[:, :, shape_dim:]),
        posedirs=posedirs,
        hand_components_left=check.array("hands_componentsl", (45, 45), np.float32),
        hand_components_right=check.array("hands_componentsr", (45, 45), np.float32),
        hand_mean_left=check.array("hands_meanl", (45,), np.float32),
        hand_mean_right=check.array("hands_meanr", (45,), np.float32),
        vertex_keypoint_ids=vertex_kp,
        landmark_faces=check.indices("lmk_faces_idx", (51,), "F", "faces"),
        landmark_bary=check.array("lmk_bary_coords", (51, 3), np.float32),
        contour_faces=contour_faces,
        contour_bary=contour_bary,
        shape_names=_names(raw.get("shape_names")),
        expression_names=_names(raw.get("expression_names")),
        attribution=_text(raw.get("attribution"), ""),
    )


def _refuse_other_body_models(path: Path, raw: dict) -> None:
    """Name the body when the file holds SMPL, SMPL+H, MANO or FLAME instead of SMPL-X."""
    joints = _axis(raw, "kintree_table", 1) or _axis(raw, "weights", 1) or _axis(raw, "J_regressor", 0)
    vertices = _axis(raw, "v_template", 0)
    body = OTHER_BODY_MODELS.get((joints, vertices))
    if body:
        raise ModelFileError(
            f"{path}: this is {body} file, not SMPL-X: it has {joints} joints and {vertices:,} vertices, "
            f"where SMPL-X has {NUM_JOINTS} and {SMPLX_NUM_VERTICES:,}. Use the SMPL-X download's "
            "SMPLX_*.npz or .pkl (https://smpl-x.is.tue.mpg.de)."
        )


def _vertex_count(raw: dict) -> int | None:
    """The vertex count most of the per-vertex arrays agree on, so that the one array
    that disagrees is the one blamed (v_template's own, on a tie)."""
    counts = [count for key, axis in _VERTEX_AXES if (count := _axis(raw, key, axis)) is not None]
    tally = Counter(counts)
    return next((count for count in counts if tally[count] == max(tally.values())), None)


# Where each array keeps one entry per vertex, v_template first.
_VERTEX_AXES = (("v_template", 0), ("weights", 0), ("shapedirs", 0), ("posedirs", 0), ("J_regressor", 1))


def _axis(raw: dict, key: str, axis: int) -> int | None:
    """The size of `axis` of array `key`, or None when it is absent or has no such axis."""
    shape = np.shape(raw[key]) if key in raw else ()
    return int(shape[axis]) if axis < len(shape) else None


class _ShapeChecker:
    """Checks array shapes against symbolic sizes (V, F, J, D), learning each once."""

    def __init__(self, path: Path, raw: dict) -> None:
        self.path, self.raw, self.sizes = path, raw, {}

    def array(self, key: str, pattern: tuple, dtype) -> np.ndarray:
        value = np.asarray(self.raw[key])
        if value.dtype.kind not in "biuf":
            raise ModelFileError(f"{self.path}: key '{key}' is not a numeric array.")
        expected = []
        for axis, want in enumerate(pattern):
            if isinstance(want, str) and axis < value.ndim:
                want = self.sizes.setdefault(want, value.shape[axis])
            expected.append(want)
        if value.shape != tuple(expected):
            shown = "x".join(str(n) for n in expected)
            raise ModelFileError(
                f"{self.path}: key '{key}' has shape {'x'.join(map(str, value.shape))}, expected {shown}."
            )
        if value.dtype.kind == "f" and not np.all(np.isfinite(value)):
            raise ModelFileError(f"{self.path}: key '{key}' contains NaN or infinite values.")
        return np.ascontiguousarray(value, dtype=dtype)

    def indices(self, key: str, pattern: tuple, size: str, what: str) -> np.ndarray:
        """An index array (int64) whose every value picks one of the `size` `what` (an
        index past them would crash the fit, a negative one pick the wrong one silently)."""
        value = self.array(key, pattern, np.float64)
        count = self.sizes[size]
        if value.size and (not np.all(value == np.round(value)) or value.min() < 0 or value.max() >= count):
            raise ModelFileError(
                f"{self.path}: key '{key}' indexes {what} that do not exist (the file has {count}, "
                f"numbered from 0): the file is damaged; download the model file again."
            )
        return value.astype(np.int64)


def _shape_space_dim(path: Path, raw: dict, num_dirs: int) -> int:
    if "shape_space_dim" in raw:
        value = np.asarray(raw["shape_space_dim"])
        if value.shape != () or value.dtype.kind not in "iu" or not 0 < value <= num_dirs:
            raise ModelFileError(
                f"{path}: key 'shape_space_dim' must be a whole number from 1 to {num_dirs} (the "
                f"directions in 'shapedirs'), found {value!r}."
            )
        return int(value)
    if num_dirs > SMPLX_SHAPE_SPACE_DIM:
        return SMPLX_SHAPE_SPACE_DIM
    return num_dirs // 2  # the 2019 files: 10 shape + 10 expression


def _vertex_keypoint_ids(path: Path, raw: dict, check: _ShapeChecker) -> np.ndarray:
    count = len(VERTEX_KEYPOINT_NAMES)
    if "vertex_keypoint_ids" in raw:
        return check.indices("vertex_keypoint_ids", (count,), "V", "vertices")
    if check.sizes["V"] == SMPLX_NUM_VERTICES:
        return np.array(SMPLX_VERTEX_KEYPOINT_IDS, dtype=np.int64)
    raise ModelFileError(
        f"{path}: {check.sizes['V']} vertices is not the SMPL-X mesh, and the file has no "
        "'vertex_keypoint_ids' to say where the nose, toes and finger tips are."
    )


def _text(value, default: str) -> str:
    if value is None:
        return default
    value = np.asarray(value)
    return str(value.item() if value.ndim == 0 else value)


def _names(value) -> tuple[str, ...]:
    return () if value is None else tuple(str(v) for v in np.asarray(value).ravel())


def _gender_from_name(path: Path) -> str:
    stem = path.stem.lower()
    for gender in ("female", "male", "neutral"):  # "female" first: it contains "male"
        if gender in stem:
            return gender
    return "neutral"


def file_sha256(path: Path) -> str:
    """The checksum a model's identity is recorded by (`BodyModelData.sha256`)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
