"""Reading model files: layouts, formats, folders, and one clear message per bad file."""

from __future__ import annotations

import io
import os
import pickle
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from smplx_capture_addon.body_model import model_file
from smplx_capture_addon.body_model.names import JOINT_PARENTS
from smplx_capture_addon.devtools import synthetic_model
from smplx_capture_addon.errors import ModelFileError

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("layouts")
    return {
        "2019.npz": synthetic_model.write_model(folder / "SMPLX_NEUTRAL.npz", layout="2019"),
        "2019.pkl": synthetic_model.write_model(folder / "SMPLX_NEUTRAL.pkl", layout="2019"),
        "2020.npz": synthetic_model.write_model(folder / "SMPLX_FEMALE.npz", layout="2020", seed=1),
    }


def test_both_layouts_load_with_their_shape_and_expression_split(files):
    old = model_file.load_model(files["2019.npz"])
    new = model_file.load_model(files["2020.npz"])
    assert (old.num_shape, old.num_expression) == (10, 10)
    assert (new.num_shape, new.num_expression) == (300, 100)
    raw = np.load(files["2020.npz"])
    np.testing.assert_allclose(new.exprdirs[:, :, 0], raw["shapedirs"][:, :, 300], rtol=1e-6)
    assert tuple(old.parents) == JOINT_PARENTS
    assert new.gender == "female" and old.gender == "neutral"
    assert old.kind == "smplx" and old.has_pose_correctives and old.has_face_contour
    assert tuple(old.vertex_keypoint_ids) == model_file.SMPLX_VERTEX_KEYPOINT_IDS


def test_pickle_with_chumpy_and_sparse_objects_reads_like_the_npz(files):
    from_npz = model_file.load_model(files["2019.npz"])
    from_pkl = model_file.load_model(files["2019.pkl"])
    for name in ("v_template", "faces", "weights", "j_regressor", "shapedirs", "exprdirs", "posedirs",
                 "hand_components_left", "landmark_bary", "contour_faces"):  # fmt: skip
        np.testing.assert_array_equal(getattr(from_npz, name), getattr(from_pkl, name), err_msg=name)


def test_folder_laid_out_like_the_download_finds_each_gender(synthetic_model_dir):
    for gender in ("neutral", "male", "female"):
        path = model_file.resolve_model_path(synthetic_model_dir, gender)
        assert path == synthetic_model_dir / "smplx" / f"SMPLX_{gender.upper()}.npz"
        assert model_file.load_model(synthetic_model_dir, gender).gender == gender


def _write_npz(path: Path, **changes) -> Path:
    arrays = synthetic_model.make_model_arrays(num_vertices=10475)
    for key, value in changes.items():
        if value is None:
            del arrays[key]
        else:
            arrays[key] = value
    np.savez(path, **arrays)
    return path


def _message(path) -> str:
    with pytest.raises(ModelFileError) as caught:
        model_file.load_model(path)
    return str(caught.value)


def test_missing_file(tmp_path):
    assert "not found" in _message(tmp_path / "SMPLX_NEUTRAL.npz")


def test_not_a_model_file(tmp_path):
    photo = tmp_path / "SMPLX_NEUTRAL.npz"
    photo.write_bytes(b"\xff\xd8\xff\xe0" + b"JFIF" * 100)
    message = _message(photo)
    assert "not a model file" in message and str(photo) in message


def test_missing_key_is_named(tmp_path):
    message = _message(_write_npz(tmp_path / "m.npz", weights=None))
    assert "missing key 'weights'" in message


def test_wrong_array_shape_is_named(tmp_path):
    message = _message(_write_npz(tmp_path / "m.npz", weights=np.ones((10475, 54))))
    assert "'weights' has shape 10475x54, expected 10475x55" in message


def test_non_finite_values(tmp_path):
    template = synthetic_model.make_model_arrays()["v_template"]
    template[5, 1] = np.nan
    assert "NaN" in _message(_write_npz(tmp_path / "m.npz", v_template=template))


def test_another_body_model_is_recognised(tmp_path):
    kintree = np.array([[2**32 - 1, *range(23)], range(24)])  # SMPL: a 24-joint chain
    message = _message(_write_npz(tmp_path / "m.npz", kintree_table=kintree))
    assert "not SMPL-X's (24 joints)" in message


@pytest.mark.parametrize("suffix", [".npz", ".pkl"])
def test_truncated_archive(files, tmp_path, suffix):
    source = files[f"2019{suffix}"].read_bytes()
    truncated = tmp_path / f"SMPLX_NEUTRAL{suffix}"
    truncated.write_bytes(source[: len(source) // 2])
    assert "corrupt or truncated" in _message(truncated)


def test_untrusted_pickle_runs_no_code(tmp_path):
    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    evil = tmp_path / "SMPLX_NEUTRAL.pkl"
    evil.write_bytes(pickle.dumps({"v_template": Exploit()}))
    message = _message(evil)
    assert "refusing to load" in message and "system" in message
    assert not marker.exists()


def test_folder_without_model_files(tmp_path):
    with pytest.raises(ModelFileError, match=r"No SMPLX_MALE\.npz or SMPLX_MALE\.pkl"):
        model_file.resolve_model_path(tmp_path, "male")


def test_model_info_command_prints_facts_and_clean_errors(files, tmp_path):
    command = [sys.executable, "-m", "smplx_capture_addon", "model-info"]
    ok = subprocess.run([*command, str(files["2020.npz"])], capture_output=True, text=True, cwd=ROOT)
    assert ok.returncode == 0, ok.stderr
    assert "shape directions:        300" in ok.stdout and "expression directions:   100" in ok.stdout
    assert "pose correctives:        present" in ok.stdout and "gender:                  female" in ok.stdout
    bad = subprocess.run([*command, str(tmp_path / "nope.npz")], capture_output=True, text=True, cwd=ROOT)
    assert bad.returncode == 2
    assert bad.stderr.startswith("error: Model file not found") and "Traceback" not in bad.stderr


@pytest.mark.parametrize(
    "key, value, names",
    [
        ("lmk_faces_idx", np.full(51, 20908), "faces"),  # one past the last face
        ("lmk_faces_idx", np.full(51, -1), "faces"),  # would silently pick the last face
        ("dynamic_lmk_faces_idx", np.full((79, 17), 10**6), "faces"),
        ("vertex_keypoint_ids", np.arange(21) + 10475, "vertices"),
        ("vertex_keypoint_ids", np.arange(21) + 0.5, "vertices"),  # not whole: no vertex
    ],
)
def test_indices_into_faces_or_vertices_that_do_not_exist_are_refused(tmp_path, key, value, names):
    """They used to pass model-info and crash the fit (faces[lmk_faces_idx] in the body model)."""
    path = _write_npz(tmp_path / "SMPLX_NEUTRAL.npz", posedirs=None, **{key: value})
    count = 20908 if names == "faces" else 10475
    expected = f"key '{key}' indexes {names} that do not exist (the file has {count}, numbered from 0)"
    assert expected in _message(path)
    info = subprocess.run([sys.executable, "-m", "smplx_capture_addon", "model-info", str(path)],
                          capture_output=True, text=True, cwd=ROOT)  # fmt: skip
    assert info.returncode == 2 and expected in info.stderr and "Traceback" not in info.stderr


@pytest.mark.parametrize(
    "state, expected",
    [
        ({"_shape": (10**7, 10**7)}, "a sparse matrix of 10000000 x 10000000, larger than any model array"),
        ({"_shape": (-55, 10475)}, "a sparse matrix with the shape (-55, 10475), not two whole numbers"),
        ({"_shape": None}, "a sparse matrix with the shape None, not two whole numbers"),
        ({"indices": np.full(10475, 55)}, "a sparse matrix with indices outside its 55 rows"),
        ({"indices": np.full(10475, -1)}, "a sparse matrix with indices outside its 55 rows"),
        ({"indptr": np.arange(5)}, "a sparse matrix whose index arrays do not fit together"),
    ],
)
def test_a_damaged_sparse_matrix_is_refused_before_anything_is_allocated(tmp_path, state, expected):
    """A huge shape used to allocate terabytes (MemoryError), a negative one or indices past
    the shape raised a traceback, negative indices counted silently from the end."""
    path = synthetic_model.write_model(tmp_path / "SMPLX_NEUTRAL.pkl", posedirs=None, sparse_state=state)
    message = _message(path)
    assert message.startswith(f"{path}: key 'J_regressor' holds {expected}") and "download" in message


def test_an_npz_member_claiming_terabytes_is_refused_from_its_header(tmp_path):
    header = io.BytesIO()
    claim = {"descr": "<f8", "fortran_order": False, "shape": (10**7, 10**7)}  # 728 TiB
    np.lib.format.write_array_header_1_0(header, claim)
    path = tmp_path / "SMPLX_NEUTRAL.npz"
    with zipfile.ZipFile(path, "w") as archive:
        for key, value in synthetic_model.make_model_arrays().items():
            if key == "posedirs":
                continue  # optional, and the largest
            if key == "weights":
                archive.writestr("weights.npy", header.getvalue() + bytes(64))
            else:
                member = io.BytesIO()
                np.save(member, value)
                archive.writestr(f"{key}.npy", member.getvalue())
    assert "key 'weights' claims more values than any body model holds" in _message(path)


def test_a_wrong_v_template_is_blamed_on_v_template(tmp_path):
    """The vertex count comes from what most per-vertex arrays agree on, not from v_template alone."""
    message = _message(_write_npz(tmp_path / "m.npz", posedirs=None, v_template=np.zeros((100, 3))))
    assert "key 'v_template' has shape 100x3, expected 10475x3" in message


SMPLH_HAND_KEYS = ("hands_componentsl", "hands_meanl", "hands_componentsr", "hands_meanr")


def _other_body(joints: int, vertices: int, extra_keys: tuple[str, ...]) -> dict[str, np.ndarray]:
    """The keys and shapes of an SMPL-family file that is not SMPL-X (zeros will do)."""
    kintree = np.array([[2**32 - 1, *range(joints - 1)], range(joints)])
    arrays = {
        "v_template": np.zeros((vertices, 3)),
        "f": np.zeros((100, 3), np.uint32),
        "kintree_table": kintree,
        "weights": np.zeros((vertices, joints)),
        "J_regressor": np.zeros((joints, vertices)),
        "shapedirs": np.zeros((vertices, 3, 10)),
        "posedirs": np.zeros((vertices, 3, 9 * (joints - 1))),
    }
    arrays.update({key: np.zeros(45) if "mean" in key else np.eye(45) for key in extra_keys})
    return arrays


@pytest.mark.parametrize(
    "body, joints, vertices, extra_keys, suffix",
    [
        ("an SMPL", 24, 6890, (), ".pkl"),
        ("an SMPL+H", 52, 6890, SMPLH_HAND_KEYS, ".npz"),
        ("a MANO", 16, 778, ("hands_components", "hands_mean"), ".pkl"),
        ("a FLAME", 5, 5023, (), ".npz"),
    ],
)
def test_other_bodies_of_the_smpl_family_are_named(tmp_path, body, joints, vertices, extra_keys, suffix):
    arrays = _other_body(joints, vertices, extra_keys)
    path = tmp_path / f"model{suffix}"
    if suffix == ".npz":
        np.savez(path, **arrays)
    else:
        path.write_bytes(pickle.dumps(arrays, protocol=2))
    message = _message(path)
    assert f"this is {body} file, not SMPL-X: it has {joints} joints and {vertices:,} vertices" in message
    assert "missing key" not in message and "SMPLX_*.npz" in message


@pytest.mark.parametrize("value", [np.array("ten"), np.array(-3), np.array(21), np.array([10, 10])])
def test_a_bad_shape_space_dim_is_refused(tmp_path, value):
    message = _message(_write_npz(tmp_path / "m.npz", posedirs=None, shape_space_dim=value))
    assert "key 'shape_space_dim' must be a whole number from 1 to 20" in message


@pytest.mark.parametrize("shape", ["ragged", "nested too deep"])
def test_pickled_lists_that_make_no_array_are_refused(tmp_path, shape):
    """np.asarray raised ValueError on these (inhomogeneous, or more than 64 dimensions)."""
    value: list = [[1.0, 2.0, 3.0], [4.0]]
    if shape == "nested too deep":
        value = [0.0]
        for _ in range(100):
            value = [value]
    path = tmp_path / "SMPLX_NEUTRAL.pkl"
    path.write_bytes(pickle.dumps({"v_template": value}, protocol=2))
    assert f"{path}: key 'v_template' holds a damaged array" in _message(path)
