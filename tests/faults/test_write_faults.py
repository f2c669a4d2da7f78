"""Faults while writing (issue #33, part 1): concurrent writers of one result, a full disk,
a read-only folder or a file in the way for every command, Ctrl-C and SIGKILL at random
points of real `fit`, `blend` and `export` processes.

The invariants checked after each fault: no file under a target's name that is partial
(every one parses as a whole, valid file), the old file left as it was where a write
failed, no temporary file of ours left behind (or, after a SIGKILL, only stale ones that
the next run removes), nothing written where a command was refused or cancelled, and a
message that names the problem (one line, no traceback). The `tally` fixture counts the
fault cases and the invariants checked, and prints them at the end of the module.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from smplx_capture_addon.atomic_files import is_temporary, process_running
from smplx_capture_addon.body_model.model_file import load_model
from smplx_capture_addon.body_model.names import KEYPOINT_NAMES_WITH_CONTOUR
from smplx_capture_addon.devtools import synthetic_cases, synthetic_model
from smplx_capture_addon.keypoints.formats import write_keypoints
from smplx_capture_addon.keypoints.layouts import LAYOUTS
from smplx_capture_addon.keypoints.people import Detections, Person
from smplx_capture_addon.result_format import (
    Camera,
    FitResult,
    ImageInfo,
    ModelIdentity,
    PersonFit,
    read_result,
    write_result,
)

ROOT = Path(__file__).resolve().parents[2]
COMMAND = [sys.executable, "-m", "smplx_capture_addon"]
FAST_REFUSAL_S = 3.0  # a refused output is reported before any work: no torch, no Blender, no model
KILL_SEED = 33


class Tally:
    """Fault cases run and invariants checked (each one asserted, so checked = held)."""

    def __init__(self) -> None:
        self.cases = 0
        self.invariants = 0

    def case(self) -> None:
        self.cases += 1

    def hold(self, condition: bool, what: str) -> None:
        assert condition, what
        self.invariants += 1


@pytest.fixture(scope="module")
def tally(request) -> Tally:
    counts = Tally()
    yield counts
    plugins = request.config.pluginmanager
    reporter, capture = plugins.get_plugin("terminalreporter"), plugins.get_plugin("capturemanager")
    if reporter is not None and capture is not None:
        with capture.global_and_fixture_disabled():  # shown, not captured
            reporter.write_line(f"\nwrite faults: {counts.cases} fault cases run, {counts.invariants} "
                                "invariants checked, all held")  # fmt: skip


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict[str, Path]:
    """What the commands read: a body model and a keypoint file of a synthetic person it
    sees (for `fit`), a result of a model without pose correctives (a small scene, quick
    to build and save, for `blend` and `export`), and a photo."""
    import torch

    from smplx_capture_addon.body_model.model import BodyModel

    shared = tmp_path_factory.mktemp("inputs")
    model = synthetic_cases.write_bench_model(shared / "SMPLX_NEUTRAL.npz")
    data = load_model(model)
    body = BodyModel(data, face_contour=True)
    orient, pose = synthetic_cases.random_body_poses(1, seed=3, scale=0.15)
    with torch.no_grad():
        cases = synthetic_cases.make_cases(body, orient, pose, seed=4, noise_px=0.0, drop=0.0)
    named = cases.keypoints[0].numpy()
    index = {name: k for k, name in enumerate(KEYPOINT_NAMES_WITH_CONTOUR)}
    sets = {}
    for set_name in ("openpose_body_25", "hand_21_left", "hand_21_right", "openpose_face_70"):
        points = np.zeros((LAYOUTS[set_name].size, 3))
        for point, name, _ in LAYOUTS[set_name].mapping:
            points[point] = named[index[name]]
        sets[set_name] = points
    width, height = (int(v) for v in cases.image_size[0])
    keypoints = shared / "keypoints.json"
    write_keypoints(keypoints, Detections("", (width, height), [Person((0.0, 0.0, width, height), sets)]))
    scene_model = synthetic_model.write_model(shared / "scene" / "SMPLX_NEUTRAL.npz", posedirs=None)
    result = write_result(make_result(load_model(scene_model), tag=0), shared / "result.json")
    photo = shared / "astronaut.png"
    shutil.copy(ROOT / ".cache" / "photos" / "astronaut.png", photo)
    return {"model": model, "keypoints": keypoints, "scene_model": scene_model, "result": result,
            "photo": photo}  # fmt: skip


def make_result(data, tag: int, people: int = 1) -> FitResult:
    """A valid result whose numbers come from `tag`, which its `solver["writer"]` names."""
    rng = np.random.default_rng(tag)

    def values(size: int, scale: float = 0.1) -> list[float]:
        return (rng.normal(size=size) * scale).round(6).tolist()

    person = PersonFit(
        betas=values(10), expression=values(10), global_orient=[np.pi, 0.0, 0.0], body_pose=values(63),
        jaw_pose=values(3), leye_pose=[0.0] * 3, reye_pose=[0.0] * 3, left_hand_pose=values(45),
        right_hand_pose=values(45), transl=[0.0, 0.2, 3.0], residuals_px=[values(2) for _ in range(144)],
    )  # fmt: skip
    return FitResult(
        model=ModelIdentity("smplx", Path(data.path).name, str(data.path), data.sha256, data.gender),
        image=ImageInfo("", 750, 1000),
        camera=Camera(1000.0, [375.0, 500.0], "user"),
        people=[person] * people,
        solver={"writer": tag},
    )


def run(arguments: list[str], timeout: float = 120, **options) -> subprocess.CompletedProcess:
    return subprocess.run([*COMMAND, *arguments], cwd=ROOT, capture_output=True, text=True, timeout=timeout,
                          env=command_environment(), **options)  # fmt: skip


def command_environment() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}


def ordinary_user() -> dict:
    """subprocess options that take root's right to write anywhere away (CAP_DAC_OVERRIDE,
    dropped from the bounding set before exec), so that a read-only folder is read-only
    for the command even when the tests run as root; none otherwise."""
    return {"preexec_fn": _drop_write_override} if os.geteuid() == 0 else {}


def _drop_write_override() -> None:
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(24, 1, 0, 0, 0) != 0:  # PR_CAPBSET_DROP, CAP_DAC_OVERRIDE
        raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP) failed")


def listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def one_line_message(tally: Tally, stderr: str, *words: str) -> None:
    """No traceback, and the last line says all `words`."""
    lines = [line for line in stderr.splitlines() if line.strip()]
    tally.hold("Traceback" not in stderr, f"no traceback: {stderr}")
    tally.hold(bool(lines) and all(word in lines[-1] for word in words), f"{words} said last: {stderr}")


# --- concurrent writers ----------------------------------------------------------------

WRITER = """
import sys
from pathlib import Path
sys.path.insert(0, {root!r})
from smplx_capture_addon.result_format import read_result, write_result
source, count, target = Path(sys.argv[1]), int(sys.argv[2]), Path(sys.argv[3])
result = read_result(source)
print("ready", flush=True)
sys.stdin.readline()  # all writers start together
for _ in range(count):
    write_result(result, target)
"""

READER = """
import sys
from pathlib import Path
sys.path.insert(0, {root!r})
from smplx_capture_addon.result_format import read_result
target, stop = Path(sys.argv[1]), Path(sys.argv[2])
good = 0
while not stop.exists():
    try:
        read_result(target)
        good += 1
    except Exception as error:
        print(type(error).__name__, error, file=sys.stderr)
print(good)
"""


def test_concurrent_writers_of_one_result_never_show_half_a_file(inputs, tmp_path, tally):
    """Four writer processes write their own result into one file 60 times each while two
    reader processes read it: every read is a whole result, no writer fails, and the file
    left is one writer's whole result."""
    tally.case()
    data = load_model(inputs["model"])
    sources = [write_result(make_result(data, tag, 4), tmp_path / f"source-{tag}.json") for tag in range(4)]
    folder = tmp_path / "shared"
    target, stop = folder / "result.json", tmp_path / "stop"
    write_result(make_result(data, tag=99, people=4), target)
    writer, reader = tmp_path / "writer.py", tmp_path / "reader.py"
    writer.write_text(WRITER.format(root=str(ROOT)))
    reader.write_text(READER.format(root=str(ROOT)))
    pipes = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, "text": True}
    writers = [subprocess.Popen([sys.executable, str(writer), str(source), "60", str(target)],
                                stdin=subprocess.PIPE, **pipes) for source in sources]  # fmt: skip
    for process in writers:
        assert process.stdout.readline() == "ready\n", process.stderr.read()
    read_command = [sys.executable, str(reader), str(target), str(stop)]
    readers = [subprocess.Popen(read_command, **pipes) for _ in range(2)]
    for process in writers:
        process.stdin.write("go\n")
        process.stdin.flush()
    writer_outputs = [process.communicate(timeout=120) for process in writers]
    stop.touch()
    reader_outputs = [process.communicate(timeout=120) for process in readers]

    for process, (_, stderr) in zip(writers, writer_outputs, strict=True):
        tally.hold(process.returncode == 0, f"every writer succeeds: {stderr[-2000:]}")
    for _, stderr in reader_outputs:
        tally.hold(stderr == "", f"no read sees half a file: {stderr[:2000]}")
    reads = sum(int(stdout) for stdout, _ in reader_outputs)
    tally.hold(reads > 20, f"the readers did read while the writers wrote ({reads} reads)")
    final = read_result(target)
    winner = final.solver["writer"]
    tally.hold(winner in range(4) and final == read_result(sources[winner]), "one writer's whole result")
    tally.hold(listing(folder) == ["result.json"], f"no temporary file left: {listing(folder)}")


# --- a full disk --------------------------------------------------------------------------

FULL_DISK = """
import resource, signal, sys
sys.path.insert(0, {root!r})
from smplx_capture_addon.cli import main
from smplx_capture_addon.errors import CaptureError
from smplx_capture_addon.result_format import read_result, write_result
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG instead
resource.setrlimit(resource.RLIMIT_FSIZE, ({limit}, {limit}))
{call}
"""
WRITE_RESULT = """
try:
    write_result(read_result({result!r}), {target!r})
except CaptureError as error:
    sys.exit(print("error:", error, file=sys.stderr) or 2)
"""
COMMAND_LINE = "sys.exit(main([{command!r}, {result!r}, '-o', {target!r}, '--model', {model!r}]))"


@pytest.mark.parametrize(
    ("name", "call", "limit"),
    [
        ("result.json", WRITE_RESULT, 4096),
        ("scene.blend", COMMAND_LINE, 200_000),
        ("fit.glb", COMMAND_LINE, 200_000),
    ],
    ids=["write_result", "blend", "export"],
)
def test_a_full_disk_leaves_the_old_file_and_no_temporary(inputs, tmp_path, tally, name, call, limit):
    tally.case()
    target = tmp_path / name
    target.write_bytes(b"the previous file")
    command = {"scene.blend": "blend", "fit.glb": "export"}.get(name)
    call = call.format(command=command, result=str(inputs["result"]), target=str(target),
                       model=str(inputs["scene_model"]))  # fmt: skip
    script = FULL_DISK.format(root=str(ROOT), limit=limit, call=call)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                          env=command_environment())  # fmt: skip
    tally.hold(done.returncode == 2, f"the command fails: {done.returncode} {done.stderr}")
    last = done.stderr.strip().splitlines()[-1]
    tally.hold(f"Cannot write {target} (File too large): free some disk space" in last, f"says so: {last}")
    tally.hold(target.read_bytes() == b"the previous file", "the old file is left as it was")
    tally.hold(listing(tmp_path) == [name], f"no temporary file left: {listing(tmp_path)}")


# --- a read-only folder, a file in the way -------------------------------------------------


@pytest.fixture
def read_only(tmp_path: Path):
    folder = tmp_path / "read-only"
    folder.mkdir(mode=0o555)
    yield folder
    folder.chmod(0o755)


@pytest.fixture
def file_in_the_way(tmp_path: Path):
    path = tmp_path / "a file"
    path.write_text("a file, not a folder")
    return path


COMMANDS = {
    "fit": lambda i, out: ["fit", str(i["keypoints"]), "-o", str(out), "--model", str(i["model"])],
    "detect": lambda i, out: ["detect", str(i["photo"]), "-o", str(out / "keypoints.json")],
    "blend": lambda i, out: ["blend", str(i["result"]), "-o", str(out / "scene.blend")],
    "export": lambda i, out: ["export", str(i["result"]), "-o", str(out / "fit.glb")],
    "worker": lambda i, out: ["worker", str(i["keypoints"]), "--out", str(out), "--model", str(i["model"])],
}


def refusal(done: subprocess.CompletedProcess, command: str) -> str:
    """The one message a refused command gave: on stderr, or the worker's protocol error."""
    if command != "worker":
        return done.stderr
    messages = [json.loads(line) for line in done.stdout.splitlines()]
    return "\n".join(m["message"] for m in messages if m["type"] == "error")


@pytest.mark.parametrize("command", sorted(COMMANDS))
@pytest.mark.parametrize("fault", ["read-only folder", "file in the way"])
def test_an_output_that_cannot_be_written_is_refused_before_any_work(
    inputs, read_only, file_in_the_way, tally, command, fault
):
    tally.case()
    if fault == "read-only folder":
        out, named, words = read_only, read_only, ("Permission denied", "choose a folder you can write to")
    else:
        out, named, words = file_in_the_way / "out", file_in_the_way, ("is a file in the way",)
    start = time.monotonic()
    done = run(COMMANDS[command](inputs, out), **ordinary_user())
    seconds = time.monotonic() - start
    tally.hold(done.returncode == 2, f"exit status 2: {done.returncode} {done.stderr}")
    tally.hold(seconds < FAST_REFUSAL_S, f"refused before any work, in {seconds:.1f} s")
    one_line_message(tally, refusal(done, command), str(named), *words)
    tally.hold(listing(read_only) == [], "nothing written")
    tally.hold(file_in_the_way.read_text() == "a file, not a folder", "the file in the way is untouched")


# --- Ctrl-C ----------------------------------------------------------------------------------


def test_ctrl_c_during_a_fit_says_cancelled_and_writes_nothing(inputs, tmp_path, tally):
    tally.case()
    out = tmp_path / "out"
    _write_blank_photo(tmp_path / "photo.png")
    process = subprocess.Popen(
        [*COMMAND, *COMMANDS["fit"](inputs, out), "--overlay", "--image", str(tmp_path / "photo.png")],
        cwd=ROOT, env=command_environment(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=_ctrl_c_as_from_a_shell,
    )  # fmt: skip
    seen = []
    for line in process.stderr:  # wait until the solver is at work
        seen.append(line)
        if "body-2" in line:
            break
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=60)
    stderr = "".join(seen) + stderr
    tally.hold(process.returncode == 3, f"exit status 3 (cancelled): {process.returncode} {stderr}")
    one_line_message(tally, stderr, "cancelled")
    tally.hold("wrote" not in stdout, "no 'wrote'")
    tally.hold(listing(out) == [], f"nothing written: {listing(out)}")


def _ctrl_c_as_from_a_shell() -> None:
    # A command run from a shell gets Ctrl-C's default action. The test process may have
    # been started with Ctrl-C ignored (or left so by code it ran), and a child inherits
    # that: Python would then not turn the signal into KeyboardInterrupt.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _write_blank_photo(path: Path) -> None:
    import cv2

    cv2.imwrite(str(path), np.full((1000, 750, 3), 128, np.uint8))  # the keypoint file's 750 x 1000


@pytest.mark.parametrize("command", ["blend", "export"])
def test_ctrl_c_at_a_random_point_of_a_blender_command(inputs, tmp_path, tally, command):
    """Either the command finished before the Ctrl-C landed (a whole file), or it says
    'cancelled' and wrote nothing; never a traceback (Blender would print one for a
    Ctrl-C that lands in its own Python code)."""
    tally.case()
    delay = random.Random(f"{KILL_SEED} {command}").uniform(0.2, 2.5)
    target, out = {"blend": "scene.blend", "export": "fit.glb"}[command], tmp_path / "out"
    process = subprocess.Popen([*COMMAND, *COMMANDS[command](inputs, out)], cwd=ROOT,
                               env=command_environment(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, preexec_fn=_ctrl_c_as_from_a_shell)  # fmt: skip
    time.sleep(delay)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    status = process.returncode
    tally.hold("Traceback" not in stderr, f"no traceback: {stderr}")
    if status == 0:
        tally.hold(listing(out) == [target] and VALID[target](out / target), "finished: a whole file")
    else:
        tally.hold(status == 3 and stderr.strip().endswith("cancelled"), f"cancelled: {status} {stderr}")
        tally.hold(listing(out) == [], f"cancelled: nothing written: {listing(out)}")


# --- SIGKILL at random points ------------------------------------------------------------------


def _valid_result(path: Path) -> bool:
    return read_result(path) is not None


def _valid_png(path: Path) -> bool:
    import cv2

    data = path.read_bytes()
    return data.endswith(b"IEND\xaeB`\x82") and cv2.imdecode(np.frombuffer(data, np.uint8), 1) is not None


def _valid_blend(path: Path) -> bool:
    """A whole .blend: uncompressed, it starts with BLENDER and ends with its ENDB block;
    compressed (zstd, in seekable frames), the frame sizes its closing seek table lists,
    and the table itself, add up to the file's size."""
    data = path.read_bytes()
    if data.startswith(b"BLENDER"):
        return b"ENDB" in data[-32:]
    frames, descriptor, magic = int.from_bytes(data[-9:-5], "little"), data[-5], data[-4:]
    entry = 12 if descriptor & 0x80 else 8  # with or without a checksum per frame
    table = 8 + frames * entry + 9
    if data[:4] != b"\x28\xb5\x2f\xfd" or magic != b"\xb1\xea\x92\x8f" or table > len(data):
        return False
    entries = data[len(data) - table + 8 : len(data) - 9]
    compressed = sum(int.from_bytes(entries[i : i + 4], "little") for i in range(0, len(entries), entry))
    return compressed + table == len(data)


def _valid_glb(path: Path) -> bool:
    data = path.read_bytes()
    length = int.from_bytes(data[8:12], "little")
    json_length = int.from_bytes(data[12:16], "little")
    json.loads(data[20 : 20 + json_length])
    return data[:4] == b"glTF" and length == len(data)


VALID: dict[str, Callable[[Path], bool]] = {
    "result.json": _valid_result,
    "overlay.png": _valid_png,
    "scene.blend": _valid_blend,
    "fit.glb": _valid_glb,
}


def kill_at(process: subprocess.Popen, folder: Path, delay: float | None, targets: tuple[str, ...]) -> None:
    """SIGKILL `process` after `delay` seconds, or (None) as soon as `folder` shows a file
    named after a target (a temporary one, or the target itself) that is new or changed:
    in the middle of a write."""
    stems = [name.split(".")[0] for name in targets]
    before = writes(folder, stems)
    end = time.monotonic() + (delay if delay is not None else 60.0)
    while time.monotonic() < end and process.poll() is None:
        if delay is None and writes(folder, stems) != before:
            break
        time.sleep(0.001 if delay is None else 0.01)
    process.kill()
    process.wait()


def writes(folder: Path, stems: list[str]) -> dict[str, tuple[int, int]]:
    """Size and time of change of each file in `folder` whose name holds one of `stems`."""
    found = {}
    for entry in os.scandir(folder):
        if any(stem in entry.name for stem in stems):
            with contextlib.suppress(FileNotFoundError):
                stat = entry.stat()
                found[entry.name] = (stat.st_size, stat.st_mtime_ns)
    return found


def check_after_kill(tally: Tally, folder: Path, targets: tuple[str, ...]) -> list[str]:
    """Every file is a whole target or a stale temporary of the killed process; returns the stale ones."""
    stale = []
    for name in listing(folder):
        if is_temporary(name):
            pid = int(name.split(".smplx-tmp.")[1].split(".")[0])
            tally.hold(not process_running(pid), f"{name}: only the killed writer's temporary is left")
            stale.append(name)
        else:
            tally.hold(name in targets and VALID[name](folder / name), f"{name} is a whole, valid file")
    return stale


@pytest.mark.parametrize(
    ("command", "targets", "kills"),
    [("fit", ("result.json", "overlay.png"), 3), ("export", ("fit.glb",), 3)],
)
def test_a_kill_at_random_points_leaves_whole_files_and_the_next_run_cleans_up(
    inputs, tmp_path, tally, command, targets, kills
):
    rng = random.Random(KILL_SEED)
    out = tmp_path / "out"
    arguments = COMMANDS[command](inputs, out)
    stale_seen = 0
    for trial in range(kills):
        tally.case()
        out.mkdir(exist_ok=True)
        # Kills at a random time, and (every second one) the moment a write begins.
        delay = rng.uniform(0.1, 4.0) if trial % 2 == 0 else None
        process = subprocess.Popen([*COMMAND, *arguments], cwd=ROOT, env=command_environment(),
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
        kill_at(process, out, delay, targets)
        stale_seen += len(check_after_kill(tally, out, targets))
    tally.case()
    done = run(arguments)
    tally.hold(done.returncode == 0, f"the next run succeeds: {done.stderr}")
    tally.hold(listing(out) == sorted(targets), f"the next run removed the stale temporaries: {listing(out)}")
    for name in targets:
        tally.hold(VALID[name](out / name), f"{name} is whole and valid")
    print(f"{command}: {kills} kills, {stale_seen} stale temporary files found and removed")


def test_a_writer_killed_mid_write_leaves_the_old_file_and_a_temporary_the_next_write_removes(
    tmp_path, tally
):
    tally.case()
    target = tmp_path / "keypoints.json"
    target.write_text('{"the previous": "file"}')
    script = textwrap.dedent(f"""
        import sys, time
        sys.path.insert(0, {str(ROOT)!r})
        from smplx_capture_addon.atomic_files import atomic_output
        with atomic_output({str(target)!r}) as temporary, open(temporary, "w") as handle:
            handle.write('{{"half": ')
            handle.flush()
            print("writing", flush=True)
            time.sleep(60)
    """)
    process = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert process.stdout.readline() == "writing\n"
    process.kill()
    process.wait()
    (stale,) = [name for name in listing(tmp_path) if name != "keypoints.json"]
    tally.hold(is_temporary(stale) and stale.startswith(".keypoints."), f"a hidden temporary: {stale}")
    tally.hold(target.read_text() == '{"the previous": "file"}', "the old file is left as it was")

    from smplx_capture_addon.atomic_files import write_text

    write_text(tmp_path / "other.json", "{}")  # the next write into the folder, of any file
    left = listing(tmp_path)
    tally.hold(left == ["keypoints.json", "other.json"], f"the stale one went: {left}")
