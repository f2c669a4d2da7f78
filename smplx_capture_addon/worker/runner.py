"""Run worker processes from Blender and follow their jobs without blocking.

`JobState` and the functions that update it are plain: what a message or an exit does
to the job. `WorkerProcess` owns a process: threads read its output into a queue.
`WorkerJob` follows one job, the whole run of a one-shot worker or one fit of a serving
worker: `poll()` (called from a Blender timer, or in a loop by the blocking path) applies
what arrived and stops a worker that overstays. `WarmWorker` is a serving worker, and
`KeptWorker` the one Blender keeps from fit to fit, replaced when it has stopped. Nothing
here imports bpy: Blender's process and the worker both use it.

The time limits are read when they apply, so tests may set them small.
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..cpu_threads import spin_briefly
from ..fit_request import FitRequest
from ..video.request import VideoRequest
from . import protocol

PACKAGE_NAME = Path(__file__).resolve().parent.parent.name
PACKAGE_PARENT = Path(__file__).resolve().parent.parent.parent
CANCEL_GRACE_S = 5.0  # how long a worker may take to stop after `cancel` before it is killed
# How long a worker's end may take: exiting after its final message, and its output
# reaching its end after it exited (a child process of its own may hold the pipe).
EXIT_WAIT_S = 3.0
STDERR_TAIL_LINES = 20
STDERR_LINE_CHARS = 500  # what a message quotes of one line of the worker's standard error
# Output lines read ahead of poll(): a worker that floods its output waits for Blender,
# rather than Blender's memory growing.
QUEUED_LINES = 1000
BAD_LINE_EXCERPT = 80  # what a message quotes of a line that is not a protocol message
# A warm worker this close to its idle timeout is replaced rather than given a fit that
# could reach it just as it leaves.
REUSE_MARGIN_S = 10.0

RUNNING, DONE, FAILED, CANCELLED = "running", "done", "failed", "cancelled"


def extension_site_packages() -> Path:
    """Where Blender unpacks the extension's bundled wheels, found from this package's
    own place (EXTENSIONS/REPO/ID/worker/runner.py -> EXTENSIONS/.local/lib/pythonX.Y/
    site-packages, what bpy.utils.user_resource("EXTENSIONS", path=...) names), so
    Blender's process and a worker started by hand find the same folder without bpy."""
    extensions = Path(__file__).resolve().parents[3]
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    return extensions / ".local" / "lib" / version / "site-packages"


@dataclass
class JobState:
    """What Blender knows about a job. `status` is one of RUNNING, DONE, FAILED,
    CANCELLED; `error` is a plain-words message when FAILED."""

    status: str = RUNNING
    stage: str = "starting"
    fraction: float = 0.0
    message: str = "Starting the worker"
    result_path: str | None = None
    overlay_path: str | None = None
    photo_path: str | None = None  # upright copy of an EXIF-rotated photo
    partial: bool = False  # a video's motion holding the frames fitted before a cancel
    error: str | None = None
    cancel_requested: bool = False
    stderr_tail: list[str] = field(default_factory=list)
    bad_lines: int = 0  # output lines that were not protocol messages (ignored)
    last_bad_line: str = ""
    notice: str = ""  # for the user at the job's start: the warm worker had stopped and was replaced

    @property
    def finished(self) -> bool:
        return self.status != RUNNING

    def status_text(self) -> str:
        if self.status == FAILED:
            return self.error or "The fit failed."
        if self.status == CANCELLED:
            return "Cancelled."
        if self.status == DONE:
            return "Done."
        if self.cancel_requested:
            return "Cancelling..."
        return f"{self.stage}: {self.message}" if self.message else self.stage

    def note_bad_line(self, line: str) -> None:
        """A line of the worker's output that is not a protocol message (it is ignored)."""
        self.bad_lines += 1
        self.last_bad_line = line.strip()[:BAD_LINE_EXCERPT]


def apply_message(state: JobState, message: protocol.Message) -> JobState:
    """Update `state` with one message as `protocol.decode` returns it, its fields checked
    (messages after the end are ignored)."""
    if state.finished:
        return state
    if message.type == "progress":
        state.stage = message.get("stage")
        # Progress only moves forward: a late or repeated message never rewinds the bar.
        state.fraction = max(state.fraction, min(1.0, max(0.0, float(message.get("fraction")))))
        state.message = message.get("message", "")
    elif message.type == "result":
        state.status, state.fraction, state.message = DONE, 1.0, "Done"
        state.result_path = message.get("path")
        state.overlay_path = message.get("overlay")
        state.photo_path = message.get("photo")
        state.partial = message.get("partial", False)
    elif message.type == "error":
        state.status = FAILED
        state.error = message.get("message") or "The worker reported an error without a message."
    elif message.type == "cancelled":
        state.status = CANCELLED
    return state


def apply_exit(state: JobState, returncode: int) -> JobState:
    """The process has exited: a job still running at that point crashed (or was killed
    after a cancel request, which counts as cancelled)."""
    if state.finished:
        return state
    if state.cancel_requested:
        state.status = CANCELLED
        return state
    if returncode < 0:
        how = f"was stopped by signal {-returncode}"
    else:
        how = f"stopped unexpectedly (exit code {returncode})"
    return fail(state, f"The fitting process {how}.")


def fail(state: JobState, reason: str) -> JobState:
    """The job failed for `reason`, followed by what the worker wrote that may explain it:
    lines that were not protocol messages, and the end of its standard error."""
    state.status = FAILED
    if state.bad_lines == 1:
        reason += f" Its output had 1 line that is not a protocol message ({state.last_bad_line!r})."
    elif state.bad_lines:
        reason += (f" Its output had {state.bad_lines} lines that are not protocol messages (the last: "
                   f"{state.last_bad_line!r}).")  # fmt: skip
    tail = "\n".join(state.stderr_tail[-5:]).strip()
    state.error = reason + (f" Last output: {tail}" if tail else "")
    return state


def worker_environment(extra_paths: Sequence[str | Path] = (), base: dict | None = None) -> dict[str, str]:
    """Environment for a worker: this package's parent folder (so `-m` finds it) and
    `extra_paths` (the extension's bundled packages) in front of PYTHONPATH; torch's threads
    spinning only briefly while they wait (`cpu_threads`), since Blender is busy beside it."""
    env = dict(os.environ if base is None else base)
    paths = [str(PACKAGE_PARENT), *(str(p) for p in extra_paths)]
    if env.get("PYTHONPATH"):
        paths.append(env["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(paths)
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONIOENCODING"] = "utf-8"
    spin_briefly(env)
    return env


def worker_command(python: str | Path | None, arguments: Sequence[str]) -> list[str]:
    """Command line that runs a one-shot worker with `python` (this interpreter by default)."""
    return [str(python or sys.executable), "-m", f"{PACKAGE_NAME}.worker", "--stdin-control", *arguments]


def serve_command(python: str | Path | None, idle_timeout: float) -> list[str]:
    """Command line that runs a serving worker with `python` (this interpreter by default)."""
    return [str(python or sys.executable), "-m", f"{PACKAGE_NAME}.worker", "--serve",
            "--idle-timeout", repr(idle_timeout)]  # fmt: skip


class WorkerProcess:
    """A worker process and what it writes: threads read its standard output into a
    bounded queue of lines and keep the end of its standard error, so nothing that follows
    it blocks. When it could not be started, `process` is None and `start_error` says why."""

    def __init__(self, command: Sequence[str], env: dict[str, str] | None = None) -> None:
        self.command = list(command)
        self.start_error: str | None = None
        self.killed = False  # by Blender
        self.fault: str | None = None  # why it was killed, when that was the worker's fault
        self.output_ended = False
        self.exited_at: float | None = None
        self._queue: queue.Queue[str | None] = queue.Queue(maxsize=QUEUED_LINES)
        self._stderr: deque[str] = deque(maxlen=STDERR_TAIL_LINES)
        self._stderr_count = 0  # lines of standard error so far
        self._stderr_lock = threading.Lock()
        self._stderr_ended = threading.Event()
        try:
            self.process = subprocess.Popen(
                self.command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                env=env, text=True, encoding="utf-8", errors="replace", bufsize=1,
            )  # fmt: skip
        except OSError as error:
            self.process = None
            reason = error.strerror or error
            self.start_error = f"Could not start the fitting process with {command[0]}: {reason}."
            return
        threading.Thread(target=self._read_output, args=(self.process.stdout,), daemon=True).start()
        threading.Thread(target=self._read_errors, args=(self.process.stderr,), daemon=True).start()

    def _read_output(self, stream) -> None:
        with stream:
            for line in _lines(stream):
                self._queue.put(line)
        self._queue.put(None)  # end of output

    def _read_errors(self, stream) -> None:
        with stream:
            for line in _lines(stream):
                with self._stderr_lock:
                    self._stderr.append(line.rstrip()[:STDERR_LINE_CHARS])
                    self._stderr_count += 1
        self._stderr_ended.set()

    def lines(self) -> list[str]:
        """The output lines that arrived since the last call: a bounded number each call,
        however fast the worker writes."""
        arrived = []
        for _ in range(QUEUED_LINES):
            try:
                line = self._queue.get_nowait()
            except queue.Empty:
                break
            if line is None:
                self.output_ended = True
            else:
                arrived.append(line)
        return arrived

    @property
    def stderr_count(self) -> int:
        return self._stderr_count

    def stderr_tail(self, since: int = 0) -> list[str]:
        """The end of its standard error, of the lines after the first `since`."""
        with self._stderr_lock:
            tail, newer = list(self._stderr), self._stderr_count - since
        return tail[max(0, len(tail) - newer) :]

    @property
    def output_read(self) -> bool:
        """Whether both its outputs have reached their end."""
        return self.output_ended and self._stderr_ended.is_set()

    def returncode(self) -> int | None:
        """Its exit status, None while it runs."""
        returncode = self.process.poll()
        if returncode is not None and self.exited_at is None:
            self.exited_at = time.monotonic()
        return returncode

    def write(self, line: str) -> None:
        try:
            self.process.stdin.write(line)
            self.process.stdin.flush()
        except (OSError, ValueError):  # it has gone (or its input was closed): its exit says the rest
            pass

    def kill(self, fault: str | None = None) -> None:
        """Stop it now. `fault` says why, when it is the worker's fault (it stopped
        responding, it ignored a cancel): what the user is told when it is replaced."""
        if self.process.poll() is None:
            self.killed, self.fault = True, self.fault or fault
            self.process.kill()

    def reap(self) -> int:
        """Wait for its end (after a kill); its exit status."""
        try:
            return self.process.wait(timeout=EXIT_WAIT_S)
        except subprocess.TimeoutExpired:  # not even a kill ended it: give up on it, not on Blender
            return -9

    def close_input(self) -> None:
        try:
            self.process.stdin.close()
        except OSError:
            pass


class WorkerJob:
    """One fit followed from Blender and its JobState: the whole run of a one-shot worker
    (`WorkerJob(command, env)`), or one job of a serving worker (`WorkerJob.serving`),
    which ends with its final message while the worker goes on."""

    def __init__(self, command: Sequence[str], env: dict[str, str] | None = None) -> None:
        self._follow(WorkerProcess(command, env), None)

    @classmethod
    def serving(cls, worker: WorkerProcess, job_id: str, stderr_from: int) -> WorkerJob:
        """The job `job_id` of the serving worker `worker`, whose standard error is this
        job's from its line `stderr_from` on (earlier jobs wrote the lines before)."""
        job = cls.__new__(cls)
        job._follow(worker, job_id, stderr_from)
        return job

    def _follow(self, worker: WorkerProcess, job_id: str | None, stderr_from: int = 0) -> None:
        self.state = JobState()
        self.worker, self.process = worker, worker.process
        self.ended_at: float | None = None
        self._job_id = job_id  # None: a one-shot worker, whose every message is this job's
        self._stderr_from = stderr_from
        self._heard_at = time.monotonic()  # this job's last valid message (the watchdog's clock)
        self._final: protocol.Message | None = None
        self._final_at = 0.0
        self._cancel_at = 0.0
        self._stop_reason: str | None = None  # why Blender stopped the worker, if it did
        self._closed = False
        if worker.start_error is not None:
            self.state.status, self.state.error = FAILED, worker.start_error

    def poll(self) -> JobState:
        """Apply what the worker said since the last call, and stop a worker that overstays
        (silent for INACTIVITY_TIMEOUT_S, not stopping after a cancel, not exiting after its
        final message). Never blocks: a job ends on a later call, with a serving worker's
        final message, or once the process has exited and its output has been read (or
        EXIT_WAIT_S after it exited)."""
        if self.process is None or self._closed:
            return self.state
        self._read_what_arrived()
        if self._final is not None and self._job_id is not None:
            self._conclude(None)  # the serving worker goes on to the next job
            return self.state
        now = time.monotonic()
        returncode = self.worker.returncode()
        if returncode is None:
            self._enforce_time_limits(now)
            return self.state
        if self.worker.output_read or now - self.worker.exited_at > EXIT_WAIT_S:
            self._conclude(returncode)
        return self.state

    def _read_what_arrived(self) -> None:
        self.state.stderr_tail = self.worker.stderr_tail(since=self._stderr_from)
        for line in self.worker.lines():
            self._take(line)

    def _take(self, line: str) -> None:
        message = protocol.decode(line)
        if message is None:
            if line.strip():
                self.state.note_bad_line(line)
            return
        if self._job_id is not None and message.get("job") != self._job_id:
            return  # a serving worker's hello, or another job's message: no sign of this job's life
        self._heard_at = time.monotonic()
        if self._final is not None:  # the run has ended: nothing after its final message counts
            return
        if message.type in protocol.FINAL_TYPES:
            self._final, self._final_at = message, self._heard_at
        else:
            apply_message(self.state, message)

    def _enforce_time_limits(self, now: float) -> None:
        if self._final is not None:
            if now - self._final_at > EXIT_WAIT_S:
                self.worker.kill()  # its final message stands; it only failed to exit
        elif self.state.cancel_requested:
            if now - self._cancel_at > CANCEL_GRACE_S:
                self.worker.kill(fault="did not stop when its fit was cancelled")
        elif now - self._heard_at > protocol.INACTIVITY_TIMEOUT_S:
            self._stop(f"The fitting process stopped responding (no message for "
                       f"{protocol.INACTIVITY_TIMEOUT_S:g} s), so it was stopped.",
                       fault="stopped responding")  # fmt: skip

    def _stop(self, reason: str, fault: str) -> None:
        """Kill the worker; the job fails for `reason` (unless it has already ended another way)."""
        if self._stop_reason is None:
            self._stop_reason = reason
        self.worker.kill(fault)

    def _conclude(self, returncode: int | None) -> None:
        """The job's outcome: its final message, or how its process ended (`returncode`;
        None when a serving worker ended the job and serves on)."""
        if self._final is not None:
            apply_message(self.state, self._final)
        elif self._stop_reason is not None and not self.state.cancel_requested:
            fail(self.state, self._stop_reason)
        if returncode is not None:
            apply_exit(self.state, returncode)
        self._closed = True
        self.ended_at = time.monotonic()
        if self._job_id is None:
            self.worker.close_input()

    def cancel(self) -> None:
        """Ask the worker to stop the job; it is killed if the job has not ended after CANCEL_GRACE_S."""
        if self.process is None or self._closed or self._final is not None or self.state.cancel_requested:
            return
        self.state.cancel_requested = True
        self._cancel_at = time.monotonic()
        if self._job_id is None:
            self.worker.write(protocol.CANCEL_LINE + "\n")
        else:
            self.worker.write(protocol.request_cancel(self._job_id))

    def wait(
        self,
        on_update: Callable[[JobState], None] | None = None,
        interval: float = 0.1,
        timeout: float | None = None,
    ) -> JobState:
        """Block until the job ends (the path for headless Blender, which has no event loop):
        at the latest INACTIVITY_TIMEOUT_S after the worker's last message, or with `timeout`,
        after that many seconds (the job is stopped and fails)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self.poll().finished:
            if deadline is not None and time.monotonic() > deadline:
                self._stop(f"The fit did not finish within {timeout:g} s, so it was stopped.",
                           fault="did not finish a fit in time")  # fmt: skip
            if on_update is not None:
                on_update(self.state)
            time.sleep(interval)
        if on_update is not None:
            on_update(self.state)
        return self.state

    def close(self) -> JobState:
        """End the job now, whatever its state (Blender is done with it): a job that has not
        ended is stopped with its worker (killed and reaped) and counts as cancelled; a
        serving worker whose job has ended serves on."""
        if self.process is None or self._closed:
            return self.state
        self._read_what_arrived()
        if self._final is not None and self._job_id is not None:
            self._conclude(None)
            return self.state
        if self._final is None and self._stop_reason is None:
            self.state.cancel_requested = True
        self.worker.kill()
        returncode = self.worker.reap()
        self._read_what_arrived()
        self._conclude(returncode)
        return self.state


class WarmWorker:
    """A serving worker (`worker --serve`, see `protocol`): one process that fits one
    request after another, torch, the detector and the body models loaded in between."""

    def __init__(self, command: Sequence[str], env: dict[str, str] | None, idle_timeout: float) -> None:
        self.command, self.env, self.idle_timeout = list(command), env, idle_timeout
        self.worker = WorkerProcess(command, env)
        self._started_at = time.monotonic()
        self._prepared_at = self._started_at  # a prepare request restarts its idle time too
        self._jobs = 0
        self._last_job: WorkerJob | None = None

    def start_job(self, request: FitRequest | VideoRequest, out_dir: str | Path) -> WorkerJob:
        """Send it `request` (a photo's or a video's), to be fitted into `out_dir`; the job
        that follows it."""
        self._jobs += 1
        job_id = str(self._jobs)
        self.worker.lines()  # what it wrote between jobs belongs to none
        # All it wrote on standard error before its first job (its start) counts for that job.
        job = WorkerJob.serving(self.worker, job_id, 0 if self._jobs == 1 else self.worker.stderr_count)
        if self.worker.process is not None:
            self.worker.write(_request_line(job_id, request, out_dir))
        self._last_job = job
        return job

    def prepare(self, request: FitRequest) -> None:
        """Ask it to load now what a fit of `request` will need (no job: no answer)."""
        if self.worker.process is not None:
            self.worker.write(protocol.request_prepare(json.loads(request.to_json())))
            self._prepared_at = time.monotonic()

    def busy(self) -> bool:
        """Whether its last job has not ended (as far as polling it has seen)."""
        return self._last_job is not None and self._last_job.ended_at is None

    def serves(self, command: Sequence[str], env: dict[str, str] | None) -> bool:
        """Whether the next fit, to be run by `command` in `env`, can go to this worker:
        the same command and environment, still running, its last job ended, and not about
        to leave on its idle timeout."""
        if (self.command, self.env) != (list(command), env) or self.worker.process is None:
            return False
        if self.worker.returncode() is not None:
            return False
        if self.busy():
            return False
        idle_since = self._started_at if self._last_job is None else self._last_job.ended_at
        return time.monotonic() - max(idle_since, self._prepared_at) < self.idle_timeout - REUSE_MARGIN_S

    def replacement_notice(self) -> str | None:
        """What the user is told when this worker is replaced: why it stopped, when that was
        a fault (a crash, a hang, an ignored cancel). None when it left on its idle timeout
        or is simply not wanted any more (another worker Python)."""
        returncode = None if self.worker.process is None else self.worker.returncode()
        if returncode is None:
            return None
        if self.worker.killed:
            how = self.worker.fault
        elif returncode < 0:
            how = f"was stopped by signal {-returncode}"
        elif returncode > 0:
            how = f"stopped unexpectedly (exit code {returncode})"
        else:
            how = None
        if how is None:
            return None
        return f"The fitting process {how}, so a new one was started: this fit loads the models again."

    def close(self) -> None:
        """End it now (Blender is done with it); a job still running counts as cancelled."""
        if self._last_job is not None:
            self._last_job.close()
        if self.worker.process is not None:
            self.worker.kill()
            self.worker.reap()
            self.worker.close_input()


class KeptWorker:
    """The serving worker Blender keeps: started at the first fit, given the next ones, and
    replaced when it has stopped (a crash, the watchdog, its idle timeout) or another worker
    Python is asked for. The user is told (`JobState.notice`) when it had stopped on a fault."""

    def __init__(self) -> None:
        self.warm: WarmWorker | None = None
        self._notice: str | None = None  # why the last worker was replaced, for the next job

    def prepare(self, python: str | Path | None, env: dict[str, str] | None, request: FitRequest) -> None:
        """Have the worker of `python` in `env` (started when none serves) load what a fit
        of `request` needs, so that the fit, when asked for, starts at once. A worker still
        on a job is left to it."""
        if self.warm is None or not self.warm.busy():
            self._serving(python, env).prepare(request)

    def start_job(
        self,
        python: str | Path | None,
        env: dict[str, str] | None,
        request: FitRequest | VideoRequest,
        out_dir: str | Path,
    ) -> WorkerJob:
        """Give `request` to the worker of `python` (this interpreter by default) in `env`,
        started when none serves; its files go to `out_dir`."""
        job = self._serving(python, env).start_job(request, out_dir)
        job.state.notice, self._notice = self._notice or "", None
        return job

    def _serving(self, python: str | Path | None, env: dict[str, str] | None) -> WarmWorker:
        """The worker that serves `python` in `env`: the kept one, or a new one in its place."""
        command = serve_command(python, protocol.IDLE_TIMEOUT_S)
        if self.warm is not None and not self.warm.serves(command, env):
            self._notice = self.warm.replacement_notice() or self._notice
            self.close()
        if self.warm is None:
            self.warm = WarmWorker(command, env, protocol.IDLE_TIMEOUT_S)
        return self.warm

    def close(self) -> None:
        """End the worker (the add-on is disabled, Blender quits): its memory goes back now."""
        if self.warm is not None:
            self.warm.close()
            self.warm = None


def _request_line(job_id: str, request: FitRequest | VideoRequest, out_dir: str | Path) -> str:
    """The serving worker's request line that starts the job `job_id` on `request`."""
    if isinstance(request, VideoRequest):
        return protocol.request_fit_video(job_id, request.to_dict(), str(out_dir))
    return protocol.request_fit(job_id, json.loads(request.to_json()), str(out_dir))


def _lines(stream) -> Iterator[str]:
    """The lines of `stream`, each cut after MAX_LINE_CHARS + 1 characters (the rest of a
    longer line is read and dropped): one endless line cannot fill Blender's memory."""
    limit = protocol.MAX_LINE_CHARS + 1
    while line := stream.readline(limit):
        rest = line
        while rest and not rest.endswith("\n"):
            rest = stream.readline(limit)
        yield line
