"""The warm worker with real fits (worker process, MediaPipe detection, the solver, the
open default body): the second fit goes to the same process, which neither opens the
detector nor builds the body model again, and its result is the one-shot worker's, bit
for bit; a fit cancelled while it waits behind another is answered without being started.
(A cancel mid-fit: test_fit_operator.py; faults: tests/faults/.)"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

from smplx_capture_addon.blender_ui import fit_job
from smplx_capture_addon.fit_request import FitRequest
from smplx_capture_addon.result_format import read_result
from smplx_capture_addon.worker import protocol, runner

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
