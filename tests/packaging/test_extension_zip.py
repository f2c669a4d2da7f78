"""The Linux extension zips, end to end: built by build.py with Blender's own tool, validated,
installed into the bpy module in a fresh process with a temporary user resources folder,
enabled, used through the Fit operator on a real photo with the bundled packages only, and
uninstalled. cp311 (bpy 5.0.1, Blender 4.2-5.0) bundles torch and must fit; cp313 (bpy
5.2.3, Blender 5.1+) has no torch (PyPI has only a CUDA build for Linux) and must say so.

"Bundled packages only": the worker runs under a stand-in for Blender's own Python, the
venv's interpreter started with -S -s (no site-packages) plus a folder holding just numpy,
which every Blender ships. Everything else must come from the extension.
"""

from __future__ import annotations

import json
import os
import subprocess
import tomllib
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest

import build

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "smplx_capture_addon"
INSTALL_SCRIPT = Path(__file__).with_name("install_in_bpy.py")
INSTALL_TIMEOUT_S = 1200


@dataclass(frozen=True)
class Family:
    python: str  # "311" or "313"
    venv: Path  # holds the bpy module of that family
    version_min: str
    version_max: str | None
    bundled_torch: bool
    imports: tuple[str, ...]  # what the worker's interpreter must import from the extension alone


FAMILIES = {
    "311": Family(
        "311", build.VENV, "4.2.0", "5.1.0", True, ("torch", "mediapipe", "cv2", "matplotlib", "PIL")
    ),
    "313": Family("313", build.VENV313, "5.1.0", None, False, ("mediapipe", "cv2", "matplotlib", "PIL")),
}


@pytest.fixture(scope="module", params=sorted(FAMILIES))
def family(request: pytest.FixtureRequest) -> Family:
    return FAMILIES[request.param]


@pytest.fixture(scope="module")
def linux_zip(family: Family, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The Linux zip of `family`, built into a temporary folder (wheels from .cache/wheels)."""
    work = tmp_path_factory.mktemp(f"extension-cp{family.python}")
    (archive,) = build.build_extensions(
        ["linux-x64"],
        [family.python],
        dist=work / "dist",
        wheels_dir=work / "wheels",
        stage_root=work / "stage",
    )
    return archive


@pytest.fixture(scope="module")
def blender_python(family: Family, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An interpreter like Blender's own: standard library and numpy, no site-packages."""
    python = build.venv_python(family.venv)
    out = subprocess.run(
        [str(python), "-c", "import numpy, os; print(os.path.dirname(os.path.dirname(numpy.__file__)))"],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    site = Path(out.stdout.strip())
    folder = tmp_path_factory.mktemp(f"blender-python-cp{family.python}")
    lib = folder / "lib"
    lib.mkdir()
    for name in ("numpy", "numpy.libs"):  # numpy.libs holds the wheel's bundled BLAS
        if (site / name).exists():
            (lib / name).symlink_to(site / name)
    script = folder / "python"
    script.write_text(
        f'#!/bin/sh\nPYTHONPATH="${{PYTHONPATH:+$PYTHONPATH:}}{lib}" exec "{python}" -s -S "$@"\n',
        encoding="utf-8",
    )
    script.chmod(0o755)
    return script


@pytest.fixture(scope="module")
def install_report(
    family: Family,
    linux_zip: Path,
    blender_python: Path,
    photo_dir: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> dict:
    folder = tmp_path_factory.mktemp(f"install-cp{family.python}")
    report_path = folder / "report.json"
    env = dict(os.environ, BLENDER_USER_RESOURCES=str(folder / "user"))
    env.pop("PYTHONPATH", None)
    proc = subprocess.run(
        [str(build.venv_python(family.venv)), str(INSTALL_SCRIPT), str(linux_zip),
         str(photo_dir / "astronaut.png"), str(blender_python), str(report_path), *family.imports],
        env=env, cwd=folder, capture_output=True, text=True, timeout=INSTALL_TIMEOUT_S,
    )  # fmt: skip
    assert proc.returncode == 0 and report_path.is_file(), proc.stdout[-4000:] + proc.stderr[-4000:]
    return json.loads(report_path.read_text(encoding="utf-8"))


def test_blender_validates_the_zip(linux_zip: Path) -> None:
    checked = build.blender_ext_tool("validate", linux_zip)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "Success" in checked.stdout + checked.stderr


def test_zip_holds_the_add_on_its_data_and_only_its_wheels(family: Family, linux_zip: Path) -> None:
    with zipfile.ZipFile(linux_zip) as archive:
        names = set(archive.namelist())
        manifest = tomllib.loads(archive.read("blender_manifest.toml").decode("utf-8"))
    # The package's contents sit at the root, next to the manifest and wheels/.
    assert {"__init__.py", "blender_manifest.toml", "worker/__main__.py"} <= names
    data = {p.relative_to(PACKAGE).as_posix() for p in (PACKAGE / "data").rglob("*") if p.is_file()}
    assert {"data/mediapipe/pose_landmarker_full.task", "data/mediapipe/LICENSE"} <= data
    assert data <= names
    assert (PACKAGE / "docs" / "panel_workflow.png").is_file()
    assert not any(name.startswith("docs/") for name in names)  # the README's pictures stay out
    assert (PACKAGE / "devtools" / "bench.py").is_file()
    assert not any(name.startswith("devtools/") for name in names)  # development tools stay out
    wheels = {name.removeprefix("wheels/") for name in names if name.startswith("wheels/")}
    packages = {build.normalized(name.split("-")[0]) for name in wheels}
    assert {"mediapipe", "opencv-python-headless", "absl-py", "flatbuffers"} <= packages
    assert ("torch" in packages) == family.bundled_torch
    # smplx's licence forbids redistribution (and the add-on does not use it); Blender ships numpy.
    unwanted = {
        "smplx",
        "numpy",
        "bpy",
        "pytest",
        "ruff",
        "setuptools",
        "jax",
        "sounddevice",
        "opencv-contrib-python",
    }
    assert not packages & unwanted
    for name in wheels:  # Linux x64 or pure Python, and for this Python only
        python_tag, abi_tag, platform_tag = name.removesuffix(".whl").split("-")[-3:]
        assert platform_tag == "any" or (platform_tag.endswith("x86_64") and "linux" in platform_tag), name
        assert abi_tag in ("none", "abi3") or python_tag == f"cp{family.python}", name
    if family.bundled_torch:
        assert any(name.startswith(f"torch-2.13.0+cpu-cp{family.python}-") for name in wheels)
    assert manifest["blender_version_min"] == family.version_min
    assert manifest.get("blender_version_max") == family.version_max
    assert manifest["build"]["generated"]["platforms"] == ["linux-x64"]
    assert sorted(f"./wheels/{name}" for name in wheels) == sorted(manifest["build"]["generated"]["wheels"])
    assert set(manifest["permissions"]) == {"files"}


def test_install_enables_the_add_on_and_unpacks_its_wheels(family: Family, install_report: dict) -> None:
    assert install_report["install"] == ["FINISHED"]
    assert install_report["enabled"] and install_report["loaded"]
    assert install_report["site_packages"].endswith(
        f"python{family.python[0]}.{family.python[1:]}/site-packages"
    )
    site = set(install_report["site_contents"])
    assert {"mediapipe", "cv2", "matplotlib", "absl", "flatbuffers"} <= site
    assert "smplx" not in site
    assert ("torch" in site) == family.bundled_torch
    assert "__init__.py" in install_report["extension_contents"]


def test_worker_python_imports_only_bundled_packages(family: Family, install_report: dict) -> None:
    check = install_report["import_check"]
    assert "error" not in check, check.get("error")
    if family.bundled_torch:
        assert check["x"] == pytest.approx([1.0, 1.0, 1.0], abs=1e-4)  # L-BFGS really ran
    assert check["vision"]
    site = install_report["site_packages"]
    assert not [p for p in check["sys_path"] if "site-packages" in p and not p.startswith(site)]
    # numpy comes from the stand-in for Blender's Python, everything else from the extension.
    outside = {n: f for n, f in check["origins"].items() if not f.startswith(site) and n[:5] != "numpy"}
    assert not outside
    for name in family.imports:
        assert check["origins"][name].startswith(site), name


def test_fit_through_the_operator_with_the_bundled_packages(family: Family, install_report: dict) -> None:
    if family.bundled_torch:
        assert install_report["fit"] == ["FINISHED"], install_report["fit_error"]
        assert install_report["fit_error"] == ""
        assert {"ARMATURE", "MESH", "CAMERA"} <= set(install_report["new_object_types"])
    else:  # no torch: the artist is told what is missing and where to set a Python that has it
        assert install_report["fit"] == ["CANCELLED"]
        assert "torch" in install_report["fit_error"] and "preferences" in install_report["fit_error"]
        assert install_report["new_object_types"] == []


def test_uninstall_removes_the_extension_and_its_packages(install_report: dict) -> None:
    after = install_report["after_uninstall"]
    assert install_report["uninstall"] == ["FINISHED"]
    assert not after["enabled"]
    assert after["extension_contents"] == []
    assert not {"torch", "mediapipe", "cv2"} & set(after["site_contents"])
