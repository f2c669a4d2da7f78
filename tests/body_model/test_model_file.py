"""Reading model files: layouts, formats, folders, and one clear message per bad file."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
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
