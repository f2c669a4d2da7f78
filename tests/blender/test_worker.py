"""The worker protocol and runner: messages, progress and cancel as plain functions, and
real worker processes (small scripts speaking the protocol, and the real worker module)
that finish, crash, get killed, honour or ignore a cancel, fall silent or write what is
not a message; the real serving worker kept from fit to fit, replaced when it was killed,
leaving on its idle timeout. tests/faults/test_worker_faults.py runs more of these
through Blender's Fit operator; tests/blender_fit/test_warm_worker.py fits real photos
in the warm worker."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from smplx_capture_addon.fit_request import FitRequest
from smplx_capture_addon.worker import protocol, runner
from smplx_capture_addon.worker.runner import JobState, WorkerJob, apply_exit, apply_message


def message(line: str) -> protocol.Message:
    decoded = protocol.decode(line)
    assert decoded is not None
    return decoded


def test_lines_round_trip_and_garbage_is_ignored():
    decoded = message(protocol.progress("fit", 0.5, "stage 2"))
    assert (decoded.type, decoded.get("stage"), decoded.get("fraction"), decoded.get("message")) == (
        "progress", "fit", 0.5, "stage 2",
    )  # fmt: skip
    assert message(protocol.result("/r.json")).get("path") == "/r.json"
    assert protocol.progress("x", 7.0).count("1.0") == 1  # clamped to [0, 1]
    for garbage in ("", "hello", "[1, 2]", "{not json", '{"no_type": 1}', '{"type": 3}'):
        assert protocol.decode(garbage) is None


MALFORMED_LINES = [
    '{"type": "progress", "stage": "fit", "fraction": "half", "message": ""}',
    '{"type": "progress", "stage": "fit", "fraction": null, "message": ""}',
    '{"type": "progress", "stage": "fit", "fraction": NaN, "message": ""}',
    '{"type": "progress", "stage": "fit", "fraction": Infinity, "message": ""}',
    '{"type": "progress", "stage": "fit", "fraction": [0.5], "message": ""}',
    '{"type": "progress", "stage": "fit", "fraction": true, "message": ""}',
    '{"type": "progress", "stage": "fit", "message": "no fraction"}',
    '{"type": "progress", "stage": 5, "fraction": 0.5, "message": ""}',
    '{"type": "progress", "stage": "fit", "fraction": 0.5, "message": {"text": "hi"}}',
    '{"type": "result", "overlay": null, "photo": null}',
    '{"type": "result", "path": 5}',
    '{"type": "result", "path": ""}',
    '{"type": "result", "path": "/r.json", "overlay": 3}',
    '{"type": "result", "path": "/m.json", "partial": "yes"}',
    '{"type": "result", "path": "/m.json", "partial": 1}',
    '{"type": "error", "message": null}',
    '{"type": "error", "message": ["boom"]}',
    '{"type": "error", "message": "boom", "kind": 3}',
    '{"type": "shout", "message": "unknown type"}',
    '{"type": ["progress"], "stage": "fit", "fraction": 0.5}',
    '{"stage": "fit", "fraction": 0.5, "message": "no type"}',
    '{"type": "progress", "stage": "fit", "fraction": 0.5, "n": ' + "9" * 5000 + "}",  # over int limits
    '{"type": "progress", "deep": ' + "[" * 100_000 + "]" * 100_000 + "}",  # deeper than json recurses
    protocol.progress("fit", 0.5, "x" * protocol.MAX_LINE_CHARS),  # longer than any real message
]


def test_only_valid_messages_decode():
    """A field of the wrong type, an unknown type or an absurd line is not a message: the
    runner can rely on every message it gets."""
    for line in MALFORMED_LINES:
        assert protocol.decode(line) is None, line[:80]
    valid = [
        protocol.encode("progress", stage="fit", fraction=1, message="a whole number is a fraction too"),
        protocol.result("/r.json"), protocol.error("boom"), protocol.cancelled(),
        protocol.encode("hello", protocol=1, pid=2, python="3.11"),
        protocol.result("/m.json", partial=True, job="4"), protocol.result("/m.json", partial=False),
    ]  # fmt: skip
    for line in valid:
        assert protocol.decode(line) is not None, line


def test_only_valid_requests_decode():
    """What a serving worker reads on its input: a fit with its job, request and folder, a
    prepare with its request, a cancel with its job, quit; anything else is no request."""
    fit = protocol.decode_request(protocol.request_fit("3", {"photo": "a.jpg"}, "/tmp/job"))
    assert (fit.type, fit.get("job"), fit.get("request"), fit.get("out")) == ("fit", "3", {"photo": "a.jpg"},
                                                                              "/tmp/job")  # fmt: skip
    video = protocol.decode_request(protocol.request_fit_video("4", {"start": 2}, "/tmp/job"))
    assert (video.type, video.get("job"), video.get("request"), video.get("out")) == (
        "fit-video", "4", {"start": 2}, "/tmp/job")  # fmt: skip
    assert protocol.decode_request(protocol.request_cancel("3")).get("job") == "3"
    assert protocol.decode_request(protocol.request_quit()).type == "quit"
    prepare = protocol.decode_request(protocol.request_prepare({"photo": "a.jpg"}))
    assert (prepare.type, prepare.get("request"), prepare.get("job")) == ("prepare", {"photo": "a.jpg"}, None)
    not_requests = [
        "cancel", "",
        '{"type": "fit", "request": {}, "out": "/o"}',
        '{"type": "fit", "job": "", "request": {}, "out": "/o"}',
        '{"type": "fit", "job": "1", "request": "a.jpg", "out": "/o"}',
        '{"type": "fit", "job": "1", "request": {}}',
        '{"type": "fit", "job": 1, "request": {}, "out": "/o"}',
        '{"type": "fit-video", "job": "1", "request": "clip.mp4", "out": "/o"}',
        '{"type": "fit-video", "job": "1", "request": {}}',
        '{"type": "prepare"}', '{"type": "prepare", "request": "a.jpg"}',
        '{"type": "cancel"}', '{"type": "cancel", "job": 3}', '{"type": "stop"}',
        protocol.progress("fit", 0.5),
    ]  # fmt: skip
    for line in not_requests:
        assert protocol.decode_request(line) is None, line
    # A serving worker's messages carry their job, a one-shot worker's none; a job is a string.
    assert message(protocol.progress("fit", 0.5, "x", job="3")).get("job") == "3"
    assert message(protocol.cancelled(job="3")).get("job") == "3"
    assert "job" not in message(protocol.cancelled()).fields
    assert protocol.decode('{"type": "cancelled", "job": 3}') is None


def test_progress_only_moves_forward_and_the_end_is_final():
    state = JobState()
    apply_message(state, message(protocol.progress("detect", 0.3, "finding people")))
    assert (state.stage, state.fraction, state.status_text()) == ("detect", 0.3, "detect: finding people")
    apply_message(state, message(protocol.progress("detect", 0.1, "late message")))
    assert state.fraction == 0.3
    apply_message(state, message(protocol.result("/tmp/result.json", None)))
    assert state.finished and state.status == runner.DONE and state.result_path == "/tmp/result.json"
    apply_message(state, message(protocol.error("too late")))
    apply_exit(state, 1)
    assert state.status == runner.DONE and state.error is None


def test_a_video_result_says_whether_it_is_partial_and_a_photos_never_is():
    assert "partial" not in message(protocol.result("/r.json")).fields
    photo, whole, partial = JobState(), JobState(), JobState()
    apply_message(photo, message(protocol.result("/r.json")))
    apply_message(whole, message(protocol.result("/m.json", partial=False)))
    apply_message(partial, message(protocol.result("/m.json", partial=True)))
    assert [s.partial for s in (photo, whole, partial)] == [False, False, True]
    assert partial.status == runner.DONE and partial.result_path == "/m.json"


def test_exit_without_a_final_message_is_a_crash_with_its_reason():
    state = JobState(stderr_tail=["Traceback (most recent call last):", "RuntimeError: boom"])
    apply_exit(state, 1)
    assert state.status == runner.FAILED
    assert "exit code 1" in state.error and "RuntimeError: boom" in state.error
    killed = apply_exit(JobState(), -9)
    assert "signal 9" in killed.error


def test_exit_after_a_cancel_request_counts_as_cancelled():
    state = JobState(cancel_requested=True)
    assert state.status_text() == "Cancelling..."
    apply_exit(state, -9)
    assert state.status == runner.CANCELLED and state.status_text() == "Cancelled."


def script_job(tmp_path: Path, body: str) -> WorkerJob:
    """A real process running `body` (with `protocol` and `sys` imported)."""
    script = tmp_path / "worker_script.py"
    script.write_text(
        "import os, sys, time\nfrom smplx_capture_addon.worker import protocol\n" + textwrap.dedent(body)
    )
    return WorkerJob([sys.executable, str(script)], runner.worker_environment())


def test_runner_follows_progress_to_the_result(tmp_path):
    job = script_job(tmp_path, """
        print("some library chatter")
        for i in range(5):
            sys.stdout.write(protocol.progress("fit", i / 4, f"step {i}")); sys.stdout.flush()
            time.sleep(0.02)
        sys.stdout.write(protocol.result("/tmp/x/result.json", "/tmp/x/overlay.png"))
    """)
    seen = []
    state = job.wait(lambda s: seen.append(s.fraction), interval=0.01)
    assert state.status == runner.DONE
    assert (state.result_path, state.overlay_path) == ("/tmp/x/result.json", "/tmp/x/overlay.png")
    assert seen == sorted(seen) and seen[-1] == 1.0
    assert job.process.returncode == 0  # the process is reaped, not left behind


def test_runner_poll_never_blocks(tmp_path):
    job = script_job(tmp_path, """
        sys.stdout.write(protocol.progress("fit", 0.5, "half")); sys.stdout.flush()
        time.sleep(30)
    """)
    start = time.monotonic()
    for _ in range(20):
        assert not job.poll().finished
    assert time.monotonic() - start < 0.5
    job.process.kill()
    job.wait(interval=0.01)


def test_a_crashing_worker_is_reported_in_plain_words(tmp_path):
    job = script_job(tmp_path, """
        sys.stdout.write(protocol.progress("fit", 0.2, "working")); sys.stdout.flush()
        raise RuntimeError("the solver fell over")
    """)
    state = job.wait(interval=0.01)
    assert state.status == runner.FAILED
    assert "stopped unexpectedly (exit code 1)" in state.error
    assert "the solver fell over" in state.error


def test_a_killed_worker_is_detected(tmp_path):
    job = script_job(tmp_path, """
        import signal
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    state = job.wait(interval=0.01)
    assert state.status == runner.FAILED and "signal 9" in state.error


def test_cancel_is_honoured_by_a_listening_worker(tmp_path):
    job = script_job(tmp_path, """
        sys.stdout.write(protocol.progress("fit", 0.1, "started")); sys.stdout.flush()
        for line in sys.stdin:
            if line.strip() == protocol.CANCEL_LINE:
                sys.stdout.write(protocol.cancelled()); sys.stdout.flush()
                sys.exit(protocol.EXIT_CANCELLED)
    """)
    while job.poll().stage != "fit":
        time.sleep(0.01)
    job.cancel()
    assert job.state.status_text() == "Cancelling..."
    state = job.wait(interval=0.01)
    assert state.status == runner.CANCELLED and job.process.returncode == protocol.EXIT_CANCELLED


def test_a_worker_that_ignores_cancel_is_killed_after_the_grace_time(tmp_path, monkeypatch):
    monkeypatch.setattr(runner, "CANCEL_GRACE_S", 0.3)
    job = script_job(tmp_path, """
        import signal
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        sys.stdout.write(protocol.progress("fit", 0.1, "busy")); sys.stdout.flush()
        time.sleep(60)
    """)
    while job.poll().stage != "fit":
        time.sleep(0.01)
    start = time.monotonic()
    job.cancel()
    state = job.wait(interval=0.01)
    assert state.status == runner.CANCELLED
    assert time.monotonic() - start < 5.0
    assert job.process.returncode == -9


def test_malformed_messages_are_ignored_and_never_raise_out_of_poll(tmp_path):
    (tmp_path / "lines.txt").write_text("\n".join(MALFORMED_LINES) + "\n")
    job = script_job(tmp_path, f"""
        sys.stdout.write(protocol.progress("fit", 0.25, "before"))
        sys.stdout.write(open({str(tmp_path / "lines.txt")!r}).read())
        sys.stdout.write(protocol.progress("fit", 0.5, "after"))
        sys.stdout.write(protocol.result("/tmp/x/result.json"))
    """)
    seen = []
    state = job.wait(lambda s: seen.append((s.stage, s.fraction, s.message)), interval=0.01)
    assert state.status == runner.DONE and state.result_path == "/tmp/x/result.json"
    assert {entry[:2] for entry in seen} <= {("starting", 0.0), ("fit", 0.25), ("fit", 0.5), ("fit", 1.0)}
    assert state.bad_lines == len(MALFORMED_LINES)


def test_a_silent_worker_is_stopped_by_the_watchdog(tmp_path, monkeypatch):
    monkeypatch.setattr(protocol, "INACTIVITY_TIMEOUT_S", 0.5)
    job = script_job(tmp_path, """
        sys.stdout.write(protocol.progress("fit", 0.3, "working")); sys.stdout.flush()
        time.sleep(60)
    """)
    start = time.monotonic()
    state = job.wait(interval=0.01)
    assert state.status == runner.FAILED
    assert state.error == "The fitting process stopped responding (no message for 0.5 s), so it was stopped."
    assert 0.5 <= time.monotonic() - start < 5.0
    assert job.process.returncode == -9


def test_output_that_is_not_a_message_is_no_sign_of_life(tmp_path, monkeypatch):
    monkeypatch.setattr(protocol, "INACTIVITY_TIMEOUT_S", 0.5)
    job = script_job(tmp_path, """
        sys.stdout.write(protocol.progress("fit", 0.3, "working")); sys.stdout.flush()
        while True:
            print('{"type": "progress", "stage": "fit", "fraction": "more"}', flush=True)
            time.sleep(0.02)
    """)
    state = job.wait(interval=0.01)
    assert state.status == runner.FAILED and job.process.returncode == -9
    assert state.error.startswith("The fitting process stopped responding (no message for 0.5 s)")
    assert state.bad_lines > 5
    assert f"Its output had {state.bad_lines} lines that are not protocol messages (the last: " in state.error
    assert """"fraction": "more"}')""" in state.error


def test_poll_does_not_wait_for_the_exit_after_the_final_message(tmp_path, monkeypatch):
    """A worker that says it is done but does not exit: poll() stays quick, and the worker
    is killed after EXIT_WAIT_S, its result standing."""
    monkeypatch.setattr(runner, "EXIT_WAIT_S", 0.5)
    job = script_job(tmp_path, """
        sys.stdout.write(protocol.result("/tmp/x/result.json")); sys.stdout.flush()
        time.sleep(60)
    """)
    start, slowest = time.monotonic(), 0.0
    while not job.state.finished and time.monotonic() - start < 10:
        before = time.monotonic()
        job.poll()
        slowest = max(slowest, time.monotonic() - before)
        time.sleep(0.01)
    assert job.state.status == runner.DONE and job.state.result_path == "/tmp/x/result.json"
    assert slowest < 0.2
    assert job.process.returncode == -9


def test_wait_stops_a_job_that_does_not_finish_in_time(tmp_path):
    job = script_job(tmp_path, """
        while True:
            sys.stdout.write(protocol.progress("fit", 0.5, "still going")); sys.stdout.flush()
            time.sleep(0.05)
    """)
    start = time.monotonic()
    state = job.wait(interval=0.01, timeout=0.5)
    assert state.status == runner.FAILED
    assert state.error == "The fit did not finish within 0.5 s, so it was stopped."
    assert time.monotonic() - start < 5.0 and job.process.returncode == -9


def test_close_ends_a_running_job_at_once(tmp_path):
    job = script_job(tmp_path, """
        sys.stdout.write(protocol.progress("fit", 0.3, "working")); sys.stdout.flush()
        time.sleep(60)
    """)
    while job.poll().stage != "fit":
        time.sleep(0.01)
    start = time.monotonic()
    assert job.close().status == runner.CANCELLED
    assert time.monotonic() - start < 2.0 and job.process.returncode == -9
    assert job.poll().status == runner.CANCELLED and job.close().status == runner.CANCELLED


def test_an_overlong_line_is_skipped_and_the_next_message_read(tmp_path):
    job = script_job(tmp_path, """
        sys.stdout.write("x" * 1_000_000 + "\\n")
        sys.stdout.write('{"type": "error", "message": "' + "y" * 1_000_000 + '"}\\n')
        sys.stdout.write(protocol.error("The real message."))
        sys.exit(protocol.EXIT_ERROR)
    """)
    state = job.wait(interval=0.01)
    assert state.status == runner.FAILED and state.error == "The real message."
    assert state.bad_lines == 2 and state.last_bad_line == '{"type": "error", "message": "' + "y" * 50


def test_the_worker_repeats_its_progress_while_busy_and_nothing_after_its_end(tmp_path, monkeypatch):
    """The heartbeat: a stage that sends nothing for longer than the watchdog allows
    keeps the job alive, and the worker sends nothing after its final message."""
    script = tmp_path / "busy_worker.py"
    script.write_text(textwrap.dedent("""
        import sys, time
        from smplx_capture_addon.worker import job, protocol

        channel = job.Channel(heartbeat_s=0.1)
        channel.send(protocol.progress("fit", 0.5, "a long stage"))
        time.sleep(float(sys.argv[1]))  # the stage sends nothing itself
        channel.send(protocol.result("/tmp/x/result.json"))
        time.sleep(0.3)
    """))
    monkeypatch.setattr(protocol, "INACTIVITY_TIMEOUT_S", 1.0)
    job = WorkerJob([sys.executable, str(script), "2.0"], runner.worker_environment())
    assert job.wait(interval=0.01).status == runner.DONE, job.state.error

    done = subprocess.run([sys.executable, str(script), "0.6"], capture_output=True, text=True, timeout=30,
                          env=runner.worker_environment())  # fmt: skip
    messages = [protocol.decode(line) for line in done.stdout.splitlines()]
    assert len(messages) > 4 and messages[-1].type == "result"
    assert {(m.type, m.get("stage"), m.get("fraction"), m.get("message")) for m in messages[:-1]} == {
        ("progress", "fit", 0.5, "a long stage")
    }


def test_a_python_that_does_not_exist_fails_clearly():
    job = WorkerJob(["/nonexistent/python3", "-m", "x"])
    assert job.state.status == runner.FAILED
    assert "Could not start the fitting process with /nonexistent/python3" in job.state.error
    assert job.poll() is job.state


def test_the_real_worker_reports_a_missing_photo(tmp_path):
    command = runner.worker_command(None, [str(tmp_path / "missing.jpg"), "--out", str(tmp_path / "job")])
    state = WorkerJob(command, runner.worker_environment()).wait(interval=0.02)
    assert state.status == runner.FAILED
    assert state.error == f"The photo {tmp_path / 'missing.jpg'} does not exist."


@pytest.mark.parametrize("extra", [[], ["/opt/bundled"]])
def test_worker_environment_finds_the_package_first(extra):
    env = runner.worker_environment(extra, base={"PYTHONPATH": "/user/path"})
    assert env["PYTHONPATH"].split(":") == [str(runner.PACKAGE_PARENT), *extra, "/user/path"]
    command = runner.worker_command("/py", ["a"])
    assert command == ["/py", "-m", "smplx_capture_addon.worker", "--stdin-control", "a"]


@pytest.mark.parametrize("chosen", [None, "300000"])
def test_the_worker_s_threads_spin_briefly_while_they_wait_unless_the_user_chose(chosen):
    # Long spins would take the cores Blender draws with (see cpu_threads).
    base = {k: v for k, v in os.environ.items() if k != "GOMP_SPINCOUNT"} | (
        {"GOMP_SPINCOUNT": chosen} if chosen else {})
    done = subprocess.run([sys.executable, "-c", "import os; print(os.environ['GOMP_SPINCOUNT'])"],
                          env=runner.worker_environment(base=base), capture_output=True, text=True,
                          timeout=60)  # fmt: skip
    assert done.stdout.strip() == (chosen or "1000")


def test_the_worker_runs_from_an_installed_copy_under_another_name(tmp_path):
    """Blender installs the extension as a folder named after its id (not
    smplx_capture_addon); the runner must start the worker from that copy."""
    installed = tmp_path / "extensions" / "user_default" / "smplx_capture"
    shutil.copytree(runner.PACKAGE_PARENT / runner.PACKAGE_NAME, installed,
                    ignore=shutil.ignore_patterns("data", "__pycache__"))  # fmt: skip
    script = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(installed.parent)!r})
        from smplx_capture.worker import runner
        command = runner.worker_command(None, [{str(tmp_path / "missing.jpg")!r}, "--out", "job"])
        print(command[2])
        print(runner.extension_site_packages())
        print(runner.WorkerJob(command, runner.worker_environment()).wait(interval=0.02).error)
    """)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env,
                          cwd=tmp_path, timeout=60)  # fmt: skip
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    wheels = tmp_path / "extensions" / ".local" / "lib" / version / "site-packages"
    assert done.stdout.splitlines() == [
        "smplx_capture.worker", str(wheels), f"The photo {tmp_path / 'missing.jpg'} does not exist."
    ], done.stderr


def missing_photo_fit(kept: runner.KeptWorker, tmp_path: Path, name: str) -> runner.WorkerJob:
    """A fit the real serving worker answers at once (its photo does not exist), needing no solver."""
    request = FitRequest(photo=str(tmp_path / "missing.jpg"))
    job = kept.start_job(None, runner.worker_environment(), request, tmp_path / name)
    assert job.wait(interval=0.02).error == f"The photo {tmp_path / 'missing.jpg'} does not exist."
    return job


def test_the_warm_worker_serves_the_next_fit_and_is_replaced_when_killed_between_fits(tmp_path):
    kept = runner.KeptWorker()
    try:
        first = missing_photo_fit(kept, tmp_path, "job-1")
        assert first.process.poll() is None  # a fit's error ends the fit, not the worker
        kept.warm.worker.write("not a request\n")  # ignored: the worker serves on
        second = missing_photo_fit(kept, tmp_path, "job-2")
        assert second.process is first.process and second.state.notice == ""
        first.process.kill()
        first.process.wait()
        third = missing_photo_fit(kept, tmp_path, "job-3")
        assert third.process is not first.process and third.process.poll() is None
        assert third.state.notice == (
            "The fitting process was stopped by signal 9, so a new one was started: this fit loads the "
            "models again."
        )
        fourth = missing_photo_fit(kept, tmp_path, "job-4")
        assert fourth.process is third.process and fourth.state.notice == ""  # told once
    finally:
        kept.close()
    assert third.process.poll() is not None  # closed: nothing left running


def test_another_worker_python_replaces_the_warm_worker_without_a_notice(tmp_path):
    other = tmp_path / "other-python"
    other.write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    other.chmod(0o755)
    kept = runner.KeptWorker()
    try:
        first = missing_photo_fit(kept, tmp_path, "job-1")
        request = FitRequest(photo=str(tmp_path / "missing.jpg"))
        second = kept.start_job(str(other), runner.worker_environment(), request, tmp_path / "job-2")
        assert second.wait(interval=0.02).status == runner.FAILED and second.state.notice == ""
        assert second.process is not first.process and first.process.poll() is not None
    finally:
        kept.close()


def test_the_idle_timeout_ends_the_warm_worker(tmp_path, monkeypatch):
    monkeypatch.setattr(protocol, "IDLE_TIMEOUT_S", 1.0)
    kept = runner.KeptWorker()
    try:
        job = missing_photo_fit(kept, tmp_path, "job-1")
        idle_from = time.monotonic()
        assert job.process.wait(timeout=30) == 0  # it leaves by itself, freeing its memory
        assert 0.8 < time.monotonic() - idle_from < 20.0
        assert not kept.warm.serves(kept.warm.command, kept.warm.env)
        after = missing_photo_fit(kept, tmp_path, "job-2")
        assert after.process is not job.process and after.state.notice == ""  # leaving idle is no fault
    finally:
        kept.close()


def test_a_serving_worker_takes_no_photo_on_its_command_line(tmp_path):
    for arguments, said in (
        (["--serve", str(tmp_path / "a.jpg")], "worker --serve reads its fits on stdin"),
        ([str(tmp_path / "a.jpg")], "give the photo (or keypoint file) and --out DIR, or --serve"),
        (["--serve", "--idle-timeout", "0"], "--idle-timeout must be a positive number of seconds, not 0.0"),
    ):
        done = subprocess.run([sys.executable, "-m", "smplx_capture_addon", "worker", *arguments], timeout=60,
                              capture_output=True, text=True, env=runner.worker_environment())  # fmt: skip
        assert done.returncode == 2 and said in done.stderr and done.stdout == "", (arguments, done.stderr)
