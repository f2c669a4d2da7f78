"""Reading keypoint files needs numpy only: Blender's Python and the solver can do it
without mediapipe, OpenCV, Pillow or torch."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_reading_keypoints_imports_no_heavy_package():
    code = (
        "import sys; import smplx_capture_addon.keypoints as k; "
        "from smplx_capture_addon.keypoints import cli, layouts, people, formats; "
        "heavy = {'torch', 'mediapipe', 'cv2', 'PIL', 'bpy'} & {m.split('.')[0] for m in sys.modules}; "
        "print(sorted(heavy))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"
