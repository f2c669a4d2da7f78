"""Blender's own Python reads model files too (the builders need them): on Python 3.13
with numpy 2 (Blender 5.2) as on Python 3.11 with numpy 1.26 (Blender 4.2-5.0)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from smplx_capture_addon.body_model import model_file
from smplx_capture_addon.devtools import synthetic_model
from smplx_capture_addon.errors import ModelFileError
from smplx_capture_addon.result_format import Camera, FitResult, ImageInfo, ModelIdentity, model_for_result

ROOT = Path(__file__).resolve().parents[2]


def test_npz_and_pickle_read_alike_under_this_python_and_numpy(tmp_path):
    npz = model_file.load_model(synthetic_model.write_model(tmp_path / "SMPLX_MALE.npz"))
    pkl = model_file.load_model(synthetic_model.write_model(tmp_path / "SMPLX_MALE.pkl"))
    for name in ("v_template", "weights", "j_regressor", "shapedirs", "posedirs", "hand_mean_right"):
        np.testing.assert_array_equal(getattr(npz, name), getattr(pkl, name), err_msg=name)
    assert npz.gender == pkl.gender == "male"


def test_reading_models_and_results_imports_neither_torch_nor_mediapipe():
    code = (
        "import sys; import smplx_capture_addon.body_model.model_file, smplx_capture_addon.result_format; "
        "print(sorted(m for m in ('torch', 'mediapipe', 'cv2') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == "[]"


def test_a_result_loads_the_model_it_was_fitted_with_and_refuses_another(tmp_path):
    """model_for_result: the file the result names, or the one given, when its checksum
    is the result's; another file (or the default body in place of a file that is gone)
    is refused with a message that says what to do."""
    fitted = model_file.load_model(synthetic_model.write_model(tmp_path / "a" / "SMPLX_NEUTRAL.npz", seed=0))
    other = synthetic_model.write_model(tmp_path / "b" / "SMPLX_NEUTRAL.npz", seed=1)
    identity = ModelIdentity("smplx", "SMPLX_NEUTRAL.npz", fitted.path, fitted.sha256, "neutral")
    result = FitResult(identity, ImageInfo("photo.jpg", 10, 10), Camera(10.0, [5.0, 5.0], "user"), [])
    assert model_for_result(result).sha256 == fitted.sha256
    assert model_for_result(result, fitted.path).sha256 == fitted.sha256
    with pytest.raises(ModelFileError, match=r"is not the one this result was fitted with.*--model"):
        model_for_result(result, other)
    Path(fitted.path).unlink()
    with pytest.raises(ModelFileError, match="is not the one this result was fitted with"):
        model_for_result(result)  # the default body stands in for the missing file, and is not it
