"""Blender's own Python reads model files too (the builders need them): on Python 3.13
with numpy 2 (Blender 5.2) as on Python 3.11 with numpy 1.26 (Blender 4.2-5.0)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np

from smplx_capture_addon.body_model import model_file
from smplx_capture_addon.devtools import synthetic_model

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
