"""Fault injection for the worker, seen from Blender. Fake workers (small scripts written
here) crash, hang, write garbage or malformed messages, flood their standard error or
exit without a final message; each is followed by the real WorkerJob, as a one-shot
worker and as a serving worker (`--serve`: the fake reads its fit's request on stdin and
its messages carry the job), and through Blender's Fit operator, which gives its fits to
a serving worker, by the blocking path (bpy.ops.smplx_capture.fit, what scripts run)
and by the modal path (invoke, then modal() on each timer tick, what a click runs).
After each:

- the job ended in time (the watchdog, exit and cancel limits are set small here) with a
  message that names the problem, and poll() never blocked;
- the worker process is gone (a serving worker that only idles after its final message
  is no fault: it serves on);
- Blender's scene is as it was (collections, objects, the active and selected objects,
  the scene camera, data-blocks);
- Fit is available again (its poll), the panel shows no running job, no timer is left;
- nothing of ours is left in the temporary folder (the job folder `fit_job.start_fit`
  makes is gone).

Serving workers also fail between fits and across them: messages for another job are no
sign of this job's life, a fit's error leaves the worker serving and a crash in the next
fit ends it, and a worker that died between fits is replaced at the next one, the user
told.

The bpy module has no event loop: for the modal path a copy of the Fit operator (the same
methods, under another id) runs invoke() and modal() itself, with a window manager whose
modal handler is recorded rather than called by Blender. Python 3.11 only (tests/faults/).
"""

from __future__ import annotations

import signal
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import bpy
import pytest

from smplx_capture_addon.blender_ui import fit_job, operators
from smplx_capture_addon.fit_request import FitRequest
from smplx_capture_addon.worker import protocol, runner
from smplx_capture_addon.worker.runner import WorkerJob

ADDON = "smplx_capture_addon"
WATCHDOG_S, EXIT_WAIT_S, CANCEL_GRACE_S = 0.5, 1.0, 0.5
SLOWEST_POLL_S = 0.5  # poll() must never block: the old one waited up to EXIT_WAIT_S
CASE_LIMIT_S = 60  # a case that runs longer has hung: it fails instead of wedging the suite
TICK_S = 0.02

PRELUDE = """\
import json, os, signal, sys, time

SERVING = "--serve" in sys.argv  # then each fit's request comes on stdin, and its messages carry its job
JOB = None

def next_job():
    global JOB
    line = sys.stdin.readline() if SERVING else ""
    if not line:
        sys.exit(0)
    JOB = json.loads(line)["job"]

def send(message_type, **fields):
    job = {"job": JOB} if JOB is not None and message_type != "hello" else {}
    sys.stdout.write(json.dumps({"type": message_type, **fields, **job}) + "\\n")
    sys.stdout.flush()

def progress(stage, fraction, message=""):
    send("progress", stage=stage, fraction=fraction, message=message)

def hello():
    send("hello", protocol=1, pid=os.getpid(), python="fake")

if SERVING:
    next_job()
"""


@dataclass(frozen=True)
class Fake:
    script: str  # after PRELUDE
    message: str  # what the job's message must contain
    also: str = ""  # and further on, where the end of the message is worth checking too
    idles: bool = False  # silent after its final message: a one-shot worker's fault, a serving worker's due


FAKES = {
    "crashes at once": Fake(
        'sys.stderr.write("Fatal Python error: Segmentation fault\\n"); sys.exit(139)',
        "The fitting process stopped unexpectedly (exit code 139). Last output: Fatal Python error: "
        "Segmentation fault",
    ),
    "crashes mid-fit": Fake(
        'hello(); progress("detect", 0.1, "finding people"); progress("fit", 0.4, "stage 2")\n'
        'raise RuntimeError("the solver fell over")',
        "The fitting process stopped unexpectedly (exit code 1).",
        "RuntimeError: the solver fell over",
    ),
    "is killed mid-fit": Fake(
        'hello(); progress("fit", 0.4, "stage 2"); os.kill(os.getpid(), signal.SIGKILL)',
        "The fitting process was stopped by signal 9.",
    ),
    "hangs silently": Fake(
        'hello(); progress("fit", 0.4, "stage 2"); time.sleep(60)',
        f"The fitting process stopped responding (no message for {WATCHDOG_S:g} s), so it was stopped.",
    ),
    "hangs before saying anything": Fake(
        "time.sleep(60)",
        f"The fitting process stopped responding (no message for {WATCHDOG_S:g} s), so it was stopped.",
    ),
    "hangs after its final message": Fake(
        'hello(); send("error", message="No person found in photo.jpg.", kind="CaptureError")\n'
        "time.sleep(60)",
        "No person found in photo.jpg.",
        idles=True,
    ),
    "prints garbage": Fake(
        'hello(); print("some library chatter", flush=True); print("[1, 2]", flush=True)\n'
        'os.write(1, bytes(range(256)) * 4 + b"\\n"); print("{not json", flush=True); sys.exit(0)',
        "The fitting process stopped unexpectedly (exit code 0). Its output had ",
    ),
    "sends malformed messages": Fake(
        'hello(); progress("fit", "half"); progress("fit", None); progress("fit", float("nan"))\n'
        'progress("fit", [0.5]); progress(5, 0.5); send("result", path=5); send("shout")\n'
        'print(json.dumps({"stage": "fit", "fraction": 0.5}), flush=True); sys.exit(0)',
        "The fitting process stopped unexpectedly (exit code 0). Its output had 8 lines that are not "
        'protocol messages (the last: \'{"stage": "fit", "fraction": 0.5}\').',
    ),
    "babbles malformed messages forever": Fake(
        'hello()\nwhile True:\n    progress("fit", "more"); time.sleep(0.01)',
        f"The fitting process stopped responding (no message for {WATCHDOG_S:g} s), so it was stopped. "
        "Its output had ",
    ),
    "writes a 1 MB line": Fake(
        'hello(); progress("fit", 0.4, "x" * 1_000_000); sys.exit(0)',
        "The fitting process stopped unexpectedly (exit code 0). Its output had 1 line that is not a "
        'protocol message (\'{"type": "progress", "stage": "fit", "fraction": 0.4, ',
    ),
    "writes one endless line": Fake(
        'hello()\nwhile True:\n    sys.stdout.write("x" * 65536); sys.stdout.flush()',
        f"The fitting process stopped responding (no message for {WATCHDOG_S:g} s), so it was stopped. "
        "Its output had 1 line that is not a protocol message ('xxxxxxxx",
    ),
    "floods its standard error": Fake(
        'hello(); progress("fit", 0.4, "stage 2")\n'
        'for i in range(20_000): sys.stderr.write(f"warning {i}: " + "w" * 90 + "\\n")\n'
        'sys.stderr.write("RuntimeError: out of patience\\n"); sys.exit(1)',
        "The fitting process stopped unexpectedly (exit code 1). Last output: warning 19996: ",
        "RuntimeError: out of patience",
    ),
    "exits 0 without a final message": Fake(
        'hello(); progress("fit", 0.9, "nearly there"); sys.exit(0)',
        "The fitting process stopped unexpectedly (exit code 0).",
    ),
}


@pytest.fixture(autouse=True)
def small_limits(monkeypatch):
    monkeypatch.setattr(protocol, "INACTIVITY_TIMEOUT_S", WATCHDOG_S)
    monkeypatch.setattr(runner, "EXIT_WAIT_S", EXIT_WAIT_S)
    monkeypatch.setattr(runner, "CANCEL_GRACE_S", CANCEL_GRACE_S)


@pytest.fixture(autouse=True)
def case_limit():
    """A hung case fails (the exception reaches the loop that hangs) instead of wedging CI."""

    def too_long(*_):
        raise TimeoutError(f"the fault case ran past {CASE_LIMIT_S} s")

    previous = signal.signal(signal.SIGALRM, too_long)
    signal.alarm(CASE_LIMIT_S)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


def write_fake(folder: Path, body: str) -> Path:
    script = folder / "fake_worker.py"
    script.write_text(PRELUDE + textwrap.dedent(body) + "\n")
    return script


# --- the worker job alone ---------------------------------------------------------------

MODES = ("one-shot", "serving")


def start_job(mode: str, script: Path, tmp_path: Path) -> tuple[WorkerJob, runner.WarmWorker | None]:
    """The fake's job: a one-shot worker's run, or the first fit given to it serving."""
    if mode == "one-shot":
        return WorkerJob([sys.executable, str(script)]), None
    warm = runner.WarmWorker([sys.executable, str(script), "--serve"], None, protocol.IDLE_TIMEOUT_S)
    return warm.start_job(FitRequest(photo=str(tmp_path / "photo.png")), tmp_path / "job"), warm


def follow(job: WorkerJob) -> tuple[runner.JobState, float, float]:
    """Poll `job` to its end: its state, how long that took and the slowest poll()."""
    polls = []
    start = time.monotonic()
    while True:
        before = time.monotonic()
        state = job.poll()
        polls.append(time.monotonic() - before)
        if state.finished:
            return state, time.monotonic() - start, max(polls)
        time.sleep(TICK_S)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("fault", FAKES)
def test_worker_job(fault, mode, tmp_path):
    job, warm = start_job(mode, write_fake(tmp_path, FAKES[fault].script), tmp_path)
    try:
        state, seconds, slowest = follow(job)
        assert_job_ended(fault, job, state, seconds, serving=warm is not None)
        assert slowest < SLOWEST_POLL_S, f"{fault}: poll() blocked for {slowest:.2f} s"
    finally:
        if warm is not None:
            warm.close()


def assert_names_the_problem(fault: str, message: str) -> None:
    fake = ALL_FAKES[fault]
    assert fake.message in message, f"{fault}: {message}"
    assert fake.also in message[message.index(fake.message) :], f"{fault}: {message}"


def assert_job_ended(
    fault: str, job: WorkerJob, state: runner.JobState, seconds: float, serving: bool
) -> None:
    """The job ended in time, with the message that names the problem; the process is gone
    (a serving worker that idles after its final message serves on)."""
    assert state.status == runner.FAILED, f"{fault}: {state.status}"
    assert_names_the_problem(fault, state.error)
    limit = WATCHDOG_S + EXIT_WAIT_S + 5.0  # the longest of the limits involved, and a loaded machine
    assert seconds < limit, f"{fault}: the job took {seconds:.1f} s"
    if serving and ALL_FAKES[fault].idles:
        assert job.process.poll() is None, f"{fault}: the serving worker is gone"
    else:
        assert job.process.poll() is not None, f"{fault}: the worker still runs"


SERVING_FAKES = {
    "answers for another job": Fake(
        'hello()\nwhile True:\n'
        '    print(json.dumps({"type": "progress", "stage": "fit", "fraction": 0.5, "job": "another"}), '
        'flush=True); time.sleep(0.01)',
        f"The fitting process stopped responding (no message for {WATCHDOG_S:g} s), so it was stopped.",
    ),
    "fails a fit, then crashes in the next": Fake(
        'hello(); send("error", message="No person found in photo.jpg.", kind="CaptureError")\n'
        'next_job(); progress("fit", 0.4, "stage 2"); raise RuntimeError("the solver fell over")',
        "The fitting process stopped unexpectedly (exit code 1).",
        "RuntimeError: the solver fell over",
    ),
}
ALL_FAKES = {**FAKES, **SERVING_FAKES}


def test_messages_for_another_job_are_no_sign_of_life(tmp_path):
    fault = "answers for another job"
    job, warm = start_job("serving", write_fake(tmp_path, SERVING_FAKES[fault].script), tmp_path)
    try:
        state, seconds, slowest = follow(job)
        assert_job_ended(fault, job, state, seconds, serving=True)
        assert slowest < SLOWEST_POLL_S
    finally:
        warm.close()


def test_an_error_ends_the_fit_and_a_crash_ends_the_serving_worker(tmp_path):
    fault = "fails a fit, then crashes in the next"
    first, warm = start_job("serving", write_fake(tmp_path, SERVING_FAKES[fault].script), tmp_path)
    try:
        state, _, _ = follow(first)
        assert state.status == runner.FAILED and state.error == "No person found in photo.jpg."
        assert first.process.poll() is None  # a fit's error leaves the worker serving
        assert warm.serves(warm.command, None)
        second = warm.start_job(FitRequest(photo=str(tmp_path / "photo.png")), tmp_path / "job-2")
        assert second.process is first.process
        state, seconds, _ = follow(second)
        assert_job_ended(fault, second, state, seconds, serving=True)
        assert "No person found" not in state.error  # the first fit's output is not the second's
        assert warm.replacement_notice() == (
            "The fitting process stopped unexpectedly (exit code 1), so a new one was started: this fit "
            "loads the models again."
        )
    finally:
        warm.close()


# --- through Blender's Fit operator -----------------------------------------------------


class _WindowManagerWithoutEventLoop:
    """The real window manager, except that adding a modal handler does nothing (the test
    calls modal() itself) and the timers added and not yet removed are tracked."""

    def __init__(self, window_manager: bpy.types.WindowManager) -> None:
        self._real = window_manager
        self.live_timers: set[int] = set()

    def __getattr__(self, name: str):
        return getattr(self._real, name)

    def modal_handler_add(self, operator: bpy.types.Operator) -> bool:
        return True

    def event_timer_add(self, *args, **kwargs) -> bpy.types.Timer:
        timer = self._real.event_timer_add(*args, **kwargs)
        self.live_timers.add(timer.as_pointer())
        return timer

    def event_timer_remove(self, timer: bpy.types.Timer) -> None:
        self.live_timers.remove(timer.as_pointer())
        self._real.event_timer_remove(timer)


class _ContextWithoutEventLoop:
    def __init__(self, context: bpy.types.Context) -> None:
        self._real = context
        self.window_manager = _WindowManagerWithoutEventLoop(context.window_manager)

    def __getattr__(self, name: str):
        return getattr(self._real, name)


@dataclass
class _Drive:
    """What the copy of the Fit operator does between timer ticks, and what it saw."""

    on_tick: Callable[[bpy.types.Operator, _ContextWithoutEventLoop], bool] | None = None  # True: stop
    live_timers: set[int] | None = None
    result: set[str] | None = None
    polls: list[float] | None = None


DRIVE = _Drive()


def _drive_fit(self: bpy.types.Operator, context: bpy.types.Context) -> set[str]:
    """What Blender's event loop does with the Fit operator: invoke, then modal() on each
    timer tick until it returns something else than 'still running'."""
    loop = _ContextWithoutEventLoop(context)
    DRIVE.live_timers, DRIVE.polls = loop.window_manager.live_timers, []
    result = self.invoke(loop, _Event("LEFTMOUSE"))
    while result in ({"RUNNING_MODAL"}, {"PASS_THROUGH"}):
        time.sleep(TICK_S)
        if DRIVE.on_tick is not None and DRIVE.on_tick(self, loop):
            break
        start = time.monotonic()
        result = self.modal(loop, _Event("TIMER"))
        DRIVE.polls.append(time.monotonic() - start)
    DRIVE.result = result
    return result if result in ({"FINISHED"}, {"CANCELLED"}) else {"CANCELLED"}


@dataclass(frozen=True)
class _Event:
    type: str


def _modal_copy_of_the_fit_operator() -> type:
    fit = operators.SMPLX_CAPTURE_OT_fit
    methods = {k: v for k, v in vars(fit).items() if k not in ("__dict__", "__weakref__", "bl_rna")}
    methods.update(bl_idname="smplx_capture_test.fit_modal", execute=_drive_fit)
    return type("SMPLX_CAPTURE_TEST_OT_fit_modal", fit.__bases__, methods)  # the job-following base too


@pytest.fixture
def blender(tmp_path, monkeypatch):
    """The add-on enabled in a small scene; Fit gives its fits to the fake worker, serving
    (the preferences' worker Python, a shell script), on a photo file the fake never reads;
    jobs go to a private temporary folder; the jobs started are recorded."""
    import addon_utils  # Blender's module: on the path once bpy is imported

    bpy.ops.wm.read_factory_settings(use_empty=True)
    addon_utils.enable(ADDON, default_set=True)
    modal_copy = _modal_copy_of_the_fit_operator()
    bpy.utils.register_class(modal_copy)
    temp = tmp_path / "temp"
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    started: list[WorkerJob] = []
    real_start_fit = fit_job.start_fit

    def start_fit(*args, **kwargs):
        job, out_dir = real_start_fit(*args, **kwargs)
        started.append(job)
        return job, out_dir

    monkeypatch.setattr(fit_job, "start_fit", start_fit)
    wrapper = tmp_path / "worker-python"
    wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{tmp_path / "fake_worker.py"}" "$@"\n')
    wrapper.chmod(0o755)
    bpy.context.preferences.addons[ADDON].preferences.worker_python = str(wrapper)
    photo = tmp_path / "photo.png"
    photo.write_bytes(b"\x89PNG\r\n\x1a\n")
    bpy.context.scene.smplx_capture.image = str(photo)
    make_scene()
    DRIVE.on_tick, DRIVE.live_timers, DRIVE.result, DRIVE.polls = None, set(), None, []
    yield Blender(tmp_path, temp, started)
    DRIVE.on_tick = None
    for job in started:
        job.close()
    bpy.utils.unregister_class(modal_copy)
    addon_utils.disable(ADDON, default_set=True)


@dataclass
class Blender:
    folder: Path
    temp: Path
    started: list[WorkerJob]

    def fake(self, body: str) -> None:
        write_fake(self.folder, body)


def make_scene() -> None:
    """An artist's scene: a mesh (active, selected), a camera (the scene's), an empty in a
    collection of its own."""
    bpy.ops.mesh.primitive_cube_add(location=(1.0, 2.0, 0.5))
    cube = bpy.context.active_object
    bpy.ops.object.camera_add(location=(0.0, -6.0, 1.5))
    bpy.context.scene.camera = bpy.context.active_object
    props = bpy.data.collections.new("Props")
    bpy.context.scene.collection.children.link(props)
    props.objects.link(bpy.data.objects.new("Marker", None))
    for obj in bpy.context.view_layer.objects:
        obj.select_set(obj is cube)
    bpy.context.view_layer.objects.active = cube


def scene_snapshot() -> dict:
    scene, objects = bpy.context.scene, bpy.context.view_layer.objects
    return {
        "collections": sorted((c.name, sorted(o.name for o in c.objects)) for c in bpy.data.collections),
        "objects": sorted((o.name, o.type, tuple(o.location)) for o in bpy.data.objects),
        "active": objects.active.name if objects.active else None,
        "selected": sorted(o.name for o in objects if o.select_get()),
        "scene camera": scene.camera.name if scene.camera else None,
        "data-blocks": [len(bpy.data.meshes), len(bpy.data.cameras), len(bpy.data.images)],
        "armatures": [a.name for a in bpy.data.armatures],
        "scenes": [s.name for s in bpy.data.scenes],
    }


def run_blocking() -> None:
    with pytest.raises(RuntimeError):  # the operator reports an error: bpy.ops raises it
        bpy.ops.smplx_capture.fit()


def run_modal() -> None:
    with pytest.raises(RuntimeError):
        bpy.ops.smplx_capture_test.fit_modal()


PATHS = {"blocking": run_blocking, "modal": run_modal}


def assert_blender_left_clean(blender: Blender, before: dict, case: str, serves: bool = False) -> None:
    """The worker gone (or, with `serves`, serving on after the job's final message), the
    scene as it was, Fit available, no timer and no file of ours left."""
    assert len(blender.started) == 1, case
    if serves:
        assert blender.started[0].process.poll() is None, f"{case}: the serving worker is gone"
    else:
        assert blender.started[0].process.poll() is not None, f"{case}: the worker still runs"
    assert scene_snapshot() == before, f"{case}: the scene changed"
    assert "job" not in operators._ACTIVE and bpy.ops.smplx_capture.fit.poll(), f"{case}: Fit is greyed out"
    assert not bpy.context.window_manager.smplx_capture_job.running, f"{case}: the panel shows a job"
    assert not DRIVE.live_timers, f"{case}: a timer is left"
    left = sorted(str(p.relative_to(blender.temp)) for p in blender.temp.rglob("*"))
    assert left == [], f"{case}: files or folders left: {left}"


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("fault", [*FAKES, "answers for another job"])
def test_fit_operator(fault, path, blender):
    blender.fake(ALL_FAKES[fault].script)
    before = scene_snapshot()
    start = time.monotonic()
    PATHS[path]()
    job = blender.started[0]
    assert_job_ended(fault, job, job.state, time.monotonic() - start, serving=True)
    assert_names_the_problem(fault, bpy.context.window_manager.smplx_capture_job.error)  # in the panel
    assert_blender_left_clean(blender, before, f"{fault} ({path})", serves=ALL_FAKES[fault].idles)
    if path == "modal":
        assert DRIVE.result == {"CANCELLED"} and max(DRIVE.polls) < SLOWEST_POLL_S, (fault, DRIVE.polls)


@pytest.mark.parametrize("path", PATHS)
def test_a_serving_worker_fails_a_fit_then_crashes_in_the_next(path, blender):
    fault = "fails a fit, then crashes in the next"
    blender.fake(SERVING_FAKES[fault].script)
    run_blocking()
    assert bpy.context.window_manager.smplx_capture_job.error == "No person found in photo.jpg."
    first = blender.started.pop()
    assert first.process.poll() is None  # an error ends the fit, not the worker
    before = scene_snapshot()
    start = time.monotonic()
    PATHS[path]()
    job = blender.started[0]
    assert job.process is first.process  # the second fit went to the same worker
    assert_job_ended(fault, job, job.state, time.monotonic() - start, serving=True)
    assert_names_the_problem(fault, bpy.context.window_manager.smplx_capture_job.error)
    assert_blender_left_clean(blender, before, f"{fault} ({path})")


def test_a_serving_worker_that_died_between_fits_is_replaced_and_the_user_told(blender, capfd):
    blender.fake('hello(); send("error", message="No person found in photo.jpg.", kind="CaptureError")\n'
                 "os.kill(os.getpid(), signal.SIGKILL)")  # fmt: skip
    run_blocking()
    first = blender.started.pop()
    assert first.process.wait(timeout=5) == -9
    capfd.readouterr()
    before = scene_snapshot()
    run_blocking()
    job = blender.started[0]
    assert job.process is not first.process and job.state.error == "No person found in photo.jpg."
    notice = ("The fitting process was stopped by signal 9, so a new one was started: this fit loads the "
              "models again.")  # fmt: skip
    assert job.state.notice == notice
    assert f"Warning: {notice}" in capfd.readouterr().out  # the operator's report
    assert_blender_left_clean(blender, before, "died between fits")


def when_fitting(action: Callable[[bpy.types.Operator, _ContextWithoutEventLoop], bool]):
    """An on_tick that runs `action` once, at the first tick that finds the job in its "fit"
    stage (True from `action` ends the drive there)."""
    done = []

    def on_tick(operator, context) -> bool:
        job = operators._ACTIVE["job"].job if "job" in operators._ACTIVE else None
        if done or job is None or job.state.stage != "fit":
            return False
        done.append(True)
        return action(operator, context)

    return on_tick


BUSY = 'hello()\nwhile True:\n    progress("fit", 0.4, "stage 2"); time.sleep(0.05)'  # alive, never done


def test_a_cancel_the_worker_ignores_ends_in_a_kill(blender):
    blender.fake("signal.signal(signal.SIGTERM, signal.SIG_IGN)\n" + BUSY)
    DRIVE.on_tick = when_fitting(lambda op, context: bpy.ops.smplx_capture.cancel() and False)
    before = scene_snapshot()
    start = time.monotonic()
    assert bpy.ops.smplx_capture_test.fit_modal() == {"CANCELLED"}
    assert time.monotonic() - start < CANCEL_GRACE_S + 5.0
    job = blender.started[0]
    assert job.state.status == runner.CANCELLED and job.process.returncode == -9
    assert bpy.context.window_manager.smplx_capture_job.status == "Cancelled."
    assert_blender_left_clean(blender, before, "ignored cancel")


def test_blender_ending_the_operator_ends_the_job(blender):
    """Blender cancels a modal operator itself when a file is loaded or it quits."""
    blender.fake(BUSY)
    DRIVE.on_tick = when_fitting(lambda op, context: op.cancel(context) or True)
    before = scene_snapshot()
    bpy.ops.smplx_capture_test.fit_modal()
    assert blender.started[0].state.status == runner.CANCELLED
    assert_blender_left_clean(blender, before, "operator cancelled by Blender")


def test_disabling_the_addon_ends_the_job(blender):
    blender.fake(BUSY)
    DRIVE.on_tick = when_fitting(lambda op, context: operators.cancel_running() or False)
    before = scene_snapshot()
    assert bpy.ops.smplx_capture_test.fit_modal() == {"CANCELLED"}
    assert blender.started[0].state.status == runner.CANCELLED
    assert_blender_left_clean(blender, before, "add-on disabled")


def test_a_bug_in_the_build_still_cleans_up(blender, monkeypatch):
    blender.fake('hello()\nwhile True:\n'
                 '    progress("fit", 0.9)\n'
                 '    send("result", path="/nowhere/result.json", overlay=None, photo=None)\n'
                 "    next_job()")  # fmt: skip

    def broken_build(*args, **kwargs):
        raise ZeroDivisionError("a bug in the builder")

    monkeypatch.setattr(fit_job, "finish_fit", broken_build)
    before = scene_snapshot()
    run_modal()
    assert bpy.context.window_manager.smplx_capture_job.error == (
        "The fit stopped on an internal error (ZeroDivisionError: a bug in the builder); the system "
        "console has the details."
    )
    assert_blender_left_clean(blender, before, "a bug in the build (modal)", serves=True)
    first = blender.started.pop()
    with pytest.raises(RuntimeError, match="a bug in the builder"):  # a script gets the traceback
        bpy.ops.smplx_capture.fit()
    assert blender.started[0].process is first.process  # the worker served the next fit too
    assert_blender_left_clean(blender, before, "a bug in the build (blocking)", serves=True)


def test_a_bug_in_following_the_job_still_cleans_up(blender, monkeypatch):
    blender.fake(BUSY)

    def broken_poll(self):
        raise KeyError("a bug in following")

    monkeypatch.setattr(WorkerJob, "poll", broken_poll)
    before = scene_snapshot()
    run_modal()
    assert "internal error (KeyError: 'a bug in following')" in (
        bpy.context.window_manager.smplx_capture_job.error
    )
    assert blender.started[0].state.status == runner.CANCELLED  # closed: the worker was killed
    assert_blender_left_clean(blender, before, "a bug in following the job")
