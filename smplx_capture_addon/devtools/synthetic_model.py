"""Synthetic model files with the keys and shapes of the official SMPL-X downloads.

For tests and benchmarks: no licensed data is committed, a file is made at test time.
The content is random but body-like: vertices cluster around a T-pose skeleton with the
SMPL-X tree, the joint regressor averages each cluster, skin weights blend a joint with
its parent, hand PCA components are orthonormal. The `smplx` package loads these files.
"""

from __future__ import annotations

import pickle
import sys
import types
from pathlib import Path

import numpy as np

from ..body_model.model_file import SMPLX_NUM_VERTICES
from ..body_model.names import JOINT_NAMES, JOINT_PARENTS, NUM_JOINTS

SMPLX_NUM_FACES = 20908

# Rest offset of each joint from its parent, metres (x: the body's left, y: up, z: front).
_OFFSETS = {
    "pelvis": (0.0, 0.95, 0.0), "left_hip": (0.06, -0.09, 0.0), "right_hip": (-0.06, -0.09, 0.0),
    "spine1": (0.0, 0.11, -0.01), "left_knee": (0.01, -0.38, 0.0), "right_knee": (-0.01, -0.38, 0.0),
    "spine2": (0.0, 0.13, 0.0), "left_ankle": (0.0, -0.40, -0.03), "right_ankle": (0.0, -0.40, -0.03),
    "spine3": (0.0, 0.05, 0.0), "left_foot": (0.0, -0.05, 0.12), "right_foot": (0.0, -0.05, 0.12),
    "neck": (0.0, 0.21, -0.02), "left_collar": (0.08, 0.12, 0.0), "right_collar": (-0.08, 0.12, 0.0),
    "head": (0.0, 0.09, 0.05), "left_shoulder": (0.11, 0.03, 0.0), "right_shoulder": (-0.11, 0.03, 0.0),
    "left_elbow": (0.26, 0.0, 0.0), "right_elbow": (-0.26, 0.0, 0.0),
    "left_wrist": (0.25, 0.0, 0.0), "right_wrist": (-0.25, 0.0, 0.0),
    "jaw": (0.0, -0.02, 0.02), "left_eye_smplhf": (0.03, 0.07, 0.08), "right_eye_smplhf": (-0.03, 0.07, 0.08),
}  # fmt: skip
_FINGER_BASE = {"index": (0.09, 0.0, 0.03), "middle": (0.095, 0.0, 0.01), "pinky": (0.08, 0.0, -0.035),
                "ring": (0.09, 0.0, -0.012), "thumb": (0.03, -0.015, 0.04)}  # fmt: skip
_SEGMENT = (0.035, 0.025)


def rest_joints() -> np.ndarray:
    """(55, 3) rest positions of the synthetic skeleton."""
    joints = np.zeros((NUM_JOINTS, 3))
    for index, name in enumerate(JOINT_NAMES):
        side, _, rest = name.partition("_")
        finger = rest.rstrip("123")
        if finger in _FINGER_BASE:
            sign = 1.0 if side == "left" else -1.0
            level = int(name[-1])
            direction = np.array(_FINGER_BASE[finger]) / np.linalg.norm(_FINGER_BASE[finger])
            offset = np.array(_FINGER_BASE[finger]) if level == 1 else direction * _SEGMENT[level - 2]
            offset = offset * np.array([sign, 1.0, 1.0])
        else:
            offset = np.array(_OFFSETS[name])
        parent = JOINT_PARENTS[index]
        joints[index] = offset + (joints[parent] if parent >= 0 else 0.0)
    return joints


def make_model_arrays(
    num_shape: int = 10,
    num_expression: int = 10,
    num_vertices: int = SMPLX_NUM_VERTICES,
    num_faces: int = SMPLX_NUM_FACES,
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """The arrays of an SMPL-X-layout model file (keys as in the official files)."""
    rng = np.random.default_rng(seed)
    joints = rest_joints()
    owner = np.arange(num_vertices) % NUM_JOINTS
    v_template = joints[owner] + rng.normal(scale=0.02, size=(num_vertices, 3))
    j_regressor = np.zeros((NUM_JOINTS, num_vertices))
    j_regressor[owner, np.arange(num_vertices)] = 1.0
    j_regressor /= j_regressor.sum(axis=1, keepdims=True)
    weights = np.zeros((num_vertices, NUM_JOINTS))
    parent_of_owner = np.array(JOINT_PARENTS)[owner]
    has_parent = parent_of_owner >= 0
    weights[np.arange(num_vertices), owner] = np.where(has_parent, 0.7, 1.0)
    weights[np.arange(num_vertices)[has_parent], parent_of_owner[has_parent]] += 0.3
    kintree = np.array([JOINT_PARENTS, range(NUM_JOINTS)], dtype=np.int64)
    kintree[0, 0] = 2**32 - 1  # how the official files store the root's parent
    faces = rng.integers(0, num_vertices, size=(num_faces, 3))

    def orthonormal() -> np.ndarray:
        q, _ = np.linalg.qr(rng.normal(size=(45, 45)))
        return q.T

    def bary(*shape: int) -> np.ndarray:
        b = rng.uniform(0.1, 1.0, size=(*shape, 3))
        return b / b.sum(axis=-1, keepdims=True)

    return {
        "v_template": v_template,
        "f": faces.astype(np.uint32),
        "weights": weights,
        "J_regressor": j_regressor,
        "kintree_table": kintree,
        "shapedirs": rng.normal(scale=0.01, size=(num_vertices, 3, num_shape + num_expression)),
        "posedirs": rng.normal(scale=0.002, size=(num_vertices, 3, 9 * (NUM_JOINTS - 1))),
        "hands_componentsl": orthonormal(),
        "hands_componentsr": orthonormal(),
        "hands_meanl": rng.normal(scale=0.1, size=45),
        "hands_meanr": rng.normal(scale=0.1, size=45),
        "lmk_faces_idx": rng.integers(0, num_faces, size=51),
        "lmk_bary_coords": bary(51),
        "dynamic_lmk_faces_idx": rng.integers(0, num_faces, size=(79, 17)),
        "dynamic_lmk_bary_coords": bary(79, 17),
    }


def write_model(
    path: str | Path,
    layout: str = "2019",
    seed: int = 0,
    sparse_state: dict | None = None,
    num_vertices: int = SMPLX_NUM_VERTICES,
    **overrides,
) -> Path:
    """Write a synthetic model file; `.npz` or `.pkl` by the suffix of `path`.

    layout "2019": 10 shape + 10 expression directions; "2020": 300 + 100.
    `num_vertices` other than SMPL-X's makes a small file for quick tests (it then needs
    `vertex_keypoint_ids` among the overrides to load).
    `overrides` replace or (with value None) remove keys before writing.
    A `.pkl` stores `shapedirs` as a chumpy object and `J_regressor` as a scipy.sparse
    CSC matrix, as the official pickles may: neither package is needed to write them.
    `sparse_state` replaces entries of that matrix's pickled state (a damaged file).
    """
    sizes = {"2019": (10, 10), "2020": (300, 100)}[layout]
    arrays = make_model_arrays(*sizes, num_vertices=num_vertices, seed=seed)
    for key, value in overrides.items():
        if value is None:
            arrays.pop(key, None)
        else:
            arrays[key] = value
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".npz":
        np.savez(path, **arrays)
    else:
        with open(path, "wb") as handle:
            _dump_pickle(arrays, handle, sparse_state or {})
    return path


def _with_foreign_objects(arrays: dict, fake_modules: dict, sparse_state: dict) -> dict:
    """Wrap arrays as chumpy / scipy.sparse lookalikes that pickle under those modules."""
    out = dict(arrays)
    if "shapedirs" in out:
        out["shapedirs"] = _foreign(fake_modules, "chumpy.ch", "Ch", {"x": out["shapedirs"]})
    if "J_regressor" in out:
        dense = np.asarray(out["J_regressor"])
        rows, cols = np.nonzero(dense.T)  # CSC: column-major
        indptr = np.searchsorted(rows, np.arange(dense.shape[1] + 1))
        state = {"data": dense.T[rows, cols], "indices": cols, "indptr": indptr, "_shape": dense.shape,
                 "format": "csc", "maxprint": 50, **sparse_state}  # fmt: skip
        out["J_regressor"] = _foreign(fake_modules, "scipy.sparse._csc", "csc_matrix", state)
    return out


def _foreign(fake_modules: dict, module_name: str, class_name: str, state: dict):
    """An object whose class pickles as `module_name.class_name` (module made up)."""
    parts = module_name.split(".")
    for depth in range(1, len(parts) + 1):
        fake_modules.setdefault(".".join(parts[:depth]), types.ModuleType(".".join(parts[:depth])))
    cls = type(class_name, (), {"__module__": module_name, "__qualname__": class_name})
    setattr(fake_modules[module_name], class_name, cls)
    obj = cls.__new__(cls)
    obj.__dict__.update(state)
    return obj


def _dump_pickle(arrays: dict, handle, sparse_state: dict) -> None:
    fake_modules: dict[str, types.ModuleType] = {}
    data = _with_foreign_objects(arrays, fake_modules, sparse_state)
    saved = {name: sys.modules.get(name) for name in fake_modules}
    sys.modules.update(fake_modules)  # only while dumping: pickle looks the classes up
    try:
        pickle.dump(data, handle, protocol=2)
    finally:
        for name, module in saved.items():
            if module is None:
                del sys.modules[name]
            else:
                sys.modules[name] = module
