"""The warm worker with real fits (worker process, MediaPipe detection, the solver, the
open default body): the second fit goes to the same process, which neither opens the
detector nor builds the body model again, and its result is the one-shot worker's, bit
for bit; a photo picked has the worker load them before the click; a fit cancelled while
it waits behind another is answered without being started.
(A cancel mid-fit: test_fit_operator.py; faults: tests/faults/.)"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

import bpy
import pytest

from smplx_capture_addon.blender_ui import fit_job, operators
from smplx_capture_addon.fit_request import FitRequest
from smplx_capture_addon.result_format import read_result
from smplx_capture_addon.worker import protocol, runner

ADDON = "smplx_capture_addon"

# The real worker, with every detector opened and body model built written down in LOG.
COUNTING_WORKER = """\
import runpy, sys

from smplx_capture_addon.body_model import model
from smplx_capture_addon.keypoints import detect

LOG = sys.argv.pop(1)


def count(cls, what):
    init = cls.__init__

    def counting_init(self, *args, **kwargs):
        with open(LOG, "a") as log:
            log.write(what + "\\n")
        init(self, *args, **kwargs)

    cls.__init__ = counting_init


count(model.BodyModel, "body model built")
count(detect.Detector, "detector opened")
sys.argv = [sys.argv[0], *sys.argv[3:]]  # the worker's own arguments, after "-m PACKAGE.worker"
runpy.run_module("smplx_capture_addon.worker", run_name="__main__")
"""


def counting_python(folder: Path) -> tuple[str, Path]:
    """A worker Python that runs the counting worker, and the file it counts in."""
    script, log, python = folder / "counting_worker.py", folder / "loads.txt", folder / "counting-python"
    script.write_text(COUNTING_WORKER)
    python.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{script}" "{log}" "$@"\n')
    python.chmod(0o755)
    return str(python), log


def test_the_second_fit_reuses_the_worker_and_its_models_and_gives_the_one_shot_result(photo_dir, tmp_path):
    python, log = counting_python(tmp_path)
    request = FitRequest(photo=str(photo_dir / "bus.jpg"), device="cpu")
    first, first_dir = fit_job.start_fit(request, python)
    assert first.wait(interval=0.05).status == runner.DONE, first.state.error
    assert log.read_text().splitlines() == ["detector opened", "body model built"]

    second, second_dir = fit_job.start_fit(request, python)
    assert second.wait(interval=0.05).status == runner.DONE, second.state.error
    assert second.process is first.process and second.process.poll() is None
    assert log.read_text().splitlines() == ["detector opened", "body model built"]  # nothing loaded again
    warm = read_result(second.state.result_path)
    assert warm.people == read_result(first.state.result_path).people

    one_shot_dir = tmp_path / "one-shot"
    command = runner.worker_command(None, [*request.to_arguments(), "--out", str(one_shot_dir)])
    one_shot = runner.WorkerJob(command, runner.worker_environment()).wait(interval=0.05)
    assert one_shot.status == runner.DONE, one_shot.error
    cold = read_result(one_shot.result_path)
    # Bit for bit: every parameter, residual and stage loss, and the camera.
    assert warm.people == cold.people and warm.camera == cold.camera
    assert [s.name for s in warm.stages] == [s.name for s in cold.stages]
    for folder in (first_dir, second_dir):
        fit_job.remove_job_folder(folder)


def lines_of(log: Path, count: int, timeout: float = 120.0) -> list[str]:
    """The counting worker's log once it has `count` lines."""
    deadline = time.monotonic() + timeout
    while len(lines := log.read_text().splitlines() if log.exists() else []) < count:
        assert time.monotonic() < deadline, lines
        time.sleep(0.05)
    return lines


def test_a_photo_picked_has_the_worker_load_its_models_before_the_click(photo_dir, tmp_path):
    python, log = counting_python(tmp_path)
    request = FitRequest(photo=str(photo_dir / "bus.jpg"), device="cpu")
    fit_job.prepare_worker(request, python)
    assert lines_of(log, 2) == ["detector opened", "body model built"]  # no fit asked for yet

    job, out_dir = fit_job.start_fit(request, python)
    fit_job.prepare_worker(request, python)  # a photo picked during the fit: the worker is left to it
    assert job.wait(interval=0.05).status == runner.DONE, job.state.error
    assert job.state.notice == "" and job.process.poll() is None
    assert log.read_text().splitlines() == ["detector opened", "body model built"]  # nothing loaded again
    assert [stage.name for stage in read_result(job.state.result_path).stages][:2] == ["detect", "load-model"]
    fit_job.remove_job_folder(out_dir)


@pytest.mark.parametrize("video", [False, True])
def test_a_photo_or_video_picked_has_the_worker_prepare_its_fit(addon, photo_dir, tmp_path, run_job_operator,
                                                                video):  # fmt: skip
    python, log = counting_python(tmp_path)
    bpy.context.preferences.addons[ADDON].preferences.worker_python = python
    settings = bpy.context.scene.smplx_capture
    operators.prepare_fit(bpy.context, video)  # nothing picked yet: no request, no error
    settings.model, settings.device = "DEFAULT", "cpu"
    if video:
        settings.video = str(tmp_path / "clip.mp4")  # not read before its fit
    else:
        settings.image = str(photo_dir / "bus.jpg")
    operators.prepare_fit(bpy.context, video)  # what picking it does in Blender's window
    assert lines_of(log, 2) == ["detector opened", "body model built"]
    if not video:
        run_job_operator(bpy.ops.smplx_capture.fit, "fit + build, prepared")
        assert log.read_text().splitlines() == ["detector opened", "body model built"]
        assert "bus" in bpy.data.collections


def test_a_fit_the_worker_could_not_prepare_for_reports_its_own_error(photo_dir, tmp_path):
    kept = runner.KeptWorker()
    request = FitRequest(photo=str(photo_dir / "bus.jpg"), model=str(tmp_path / "SMPLX_NEUTRAL.npz"))
    try:
        kept.prepare(None, runner.worker_environment(), request)
        deadline = time.monotonic() + 120
        while not any("could not prepare" in line for line in kept.warm.worker.stderr_tail()):
            assert time.monotonic() < deadline, kept.warm.worker.stderr_tail()
            time.sleep(0.05)
        said = [line for line in kept.warm.worker.stderr_tail() if "could not prepare" in line]
        assert said == [f"worker: could not prepare for the next fit: Model file not found: {request.model}"]
        job = kept.start_job(None, runner.worker_environment(), request, tmp_path / "job")
        assert job.wait(interval=0.05).error == f"Model file not found: {request.model}"
        assert job.process.poll() is None and job.state.notice == ""  # an error ends the fit, not the worker
    finally:
        kept.close()


def messages_until(
    worker: runner.WorkerProcess, last: Callable[[protocol.Message], bool], timeout: float = 120.0
) -> list[protocol.Message]:
    """The worker's messages up to the one for which `last` is true (and any that came with it)."""
    deadline, seen = time.monotonic() + timeout, []
    while not any(last(message) for message in seen):
        assert time.monotonic() < deadline, [(m.type, m.fields) for m in seen]
        seen += [message for message in map(protocol.decode, worker.lines()) if message is not None]
        time.sleep(0.02)
    return seen


def test_a_fit_cancelled_while_it_waits_is_answered_without_being_started(photo_dir, tmp_path):
    command = runner.serve_command(None, protocol.IDLE_TIMEOUT_S)
    worker = runner.WorkerProcess(command, runner.worker_environment())
    request = json.loads(FitRequest(photo=str(photo_dir / "bus.jpg"), device="cpu").to_json())
    try:
        worker.write(protocol.request_fit("1", request, str(tmp_path / "job-1")))
        messages_until(worker, lambda m: m.type == "progress" and m.get("job") == "1")  # job 1 runs
        second = protocol.request_fit("2", request, str(tmp_path / "job-2"))
        worker.write(second + protocol.request_cancel("2") + protocol.request_cancel("1"))
        seen = messages_until(worker, lambda m: m.type in protocol.FINAL_TYPES and m.get("job") == "2")
        finals = [(m.get("job"), m.type) for m in seen if m.type in protocol.FINAL_TYPES]
        assert finals == [("1", "cancelled"), ("2", "cancelled")]
        assert [m.type for m in seen if m.get("job") == "2"] == ["cancelled"]  # no progress: never started
        assert not (tmp_path / "job-1" / "result.json").exists() and not (tmp_path / "job-2").exists()
        worker.write(protocol.request_quit())
        assert worker.process.wait(timeout=30) == protocol.EXIT_OK
    finally:
        worker.kill()
        worker.reap()
