"""Run a worker process from Blender and follow it without blocking.

`JobState` and the functions that update it are plain: what a message or an exit does
to the job. `WorkerJob` owns the process: threads read its output into a queue, and
`poll()` (called from a Blender timer, or in a loop by the blocking path) applies what
arrived and stops a worker that overstays. Nothing here imports bpy: Blender's process
and the worker both use it.

The time limits are read when they apply, so tests may set them small.
"""

from __future__ import annotations

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
    error: str | None = None
    cancel_requested: bool = False
    stderr_tail: list[str] = field(default_factory=list)
    bad_lines: int = 0  # output lines that were not protocol messages (ignored)
    last_bad_line: str = ""

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
    `extra_paths` (the extension's bundled packages) in front of PYTHONPATH."""
    env = dict(os.environ if base is None else base)
    paths = [str(PACKAGE_PARENT), *(str(p) for p in extra_paths)]
    if env.get("PYTHONPATH"):
        paths.append(env["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(paths)
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONIOENCODING"] = "utf-8"
    return env


def worker_command(python: str | Path | None, arguments: Sequence[str]) -> list[str]:
    """Command line that runs the worker with `python` (this interpreter by default)."""
    return [str(python or sys.executable), "-m", f"{PACKAGE_NAME}.worker", "--stdin-control", *arguments]


class WorkerJob:
    """One worker process and its JobState."""

    def __init__(self, command: Sequence[str], env: dict[str, str] | None = None) -> None:
        self.state = JobState()
        self._queue: queue.Queue[str | None] = queue.Queue(maxsize=QUEUED_LINES)
        self._stderr: deque[str] = deque(maxlen=STDERR_TAIL_LINES)
        self._stderr_ended = threading.Event()
        self._output_ended = False
        self._heard_at = time.monotonic()  # the last valid message (the watchdog's clock)
        self._final: protocol.Message | None = None  # applied once the process has exited
        self._final_at = 0.0
        self._cancel_at = 0.0
        self._exited_at: float | None = None
        self._stop_reason: str | None = None  # why Blender stopped the worker, if it did
        self._closed = False
        try:
            self.process = subprocess.Popen(
                list(command), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                env=env, text=True, encoding="utf-8", errors="replace", bufsize=1,
            )  # fmt: skip
        except OSError as error:
            self.process = None
            self.state.status = FAILED
            reason = error.strerror or error
            self.state.error = f"Could not start the fitting process with {command[0]}: {reason}."
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
                self._stderr.append(line.rstrip()[:STDERR_LINE_CHARS])
        self._stderr_ended.set()

    def poll(self) -> JobState:
        """Apply what the worker said since the last call, and stop a worker that overstays
        (silent for INACTIVITY_TIMEOUT_S, not stopping after a cancel, not exiting after its
        final message). Never blocks: the job ends on a later call, once the process has
        exited and its output has been read (or EXIT_WAIT_S after it exited)."""
        if self.process is None or self._closed:
            return self.state
        self._read_what_arrived()
        now = time.monotonic()
        returncode = self.process.poll()
        if returncode is None:
            self._enforce_time_limits(now)
            return self.state
        if self._exited_at is None:
            self._exited_at = now
        output_read = self._output_ended and self._stderr_ended.is_set()
        if output_read or now - self._exited_at > EXIT_WAIT_S:
            self._conclude(returncode)
        return self.state

    def _read_what_arrived(self) -> None:
        self.state.stderr_tail = list(self._stderr)
        for _ in range(QUEUED_LINES):  # a bounded amount each call, however fast the worker writes
            try:
                line = self._queue.get_nowait()
            except queue.Empty:
                return
            if line is None:
                self._output_ended = True
            else:
                self._take(line)

    def _take(self, line: str) -> None:
        message = protocol.decode(line)
        if message is None:
            if line.strip():
                self.state.note_bad_line(line)
            return
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
                self.process.kill()  # its final message stands; it only failed to exit
        elif self.state.cancel_requested:
            if now - self._cancel_at > CANCEL_GRACE_S:
                self.process.kill()
        elif now - self._heard_at > protocol.INACTIVITY_TIMEOUT_S:
            self._stop(f"The fitting process stopped responding (no message for "
                       f"{protocol.INACTIVITY_TIMEOUT_S:g} s), so it was stopped.")  # fmt: skip

    def _stop(self, reason: str) -> None:
        """Kill the worker; the job fails for `reason` (unless it has already ended another way)."""
        if self._stop_reason is None:
            self._stop_reason = reason
        self.process.kill()

    def _conclude(self, returncode: int) -> None:
        """The process has exited and its output is read: the job's outcome."""
        if self._final is not None:
            apply_message(self.state, self._final)
        elif self._stop_reason is not None and not self.state.cancel_requested:
            fail(self.state, self._stop_reason)
        apply_exit(self.state, returncode)
        self._closed = True
        try:
            self.process.stdin.close()
        except OSError:
            pass

    def cancel(self) -> None:
        """Ask the worker to stop; it is killed if it has not stopped after CANCEL_GRACE_S."""
        if self.process is None or self._closed or self._final is not None or self.state.cancel_requested:
            return
        self.state.cancel_requested = True
        self._cancel_at = time.monotonic()
        try:
            self.process.stdin.write(protocol.CANCEL_LINE + "\n")
            self.process.stdin.flush()
        except OSError:  # the worker has already gone
            pass

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
                self._stop(f"The fit did not finish within {timeout:g} s, so it was stopped.")
            if on_update is not None:
                on_update(self.state)
            time.sleep(interval)
        if on_update is not None:
            on_update(self.state)
        return self.state

    def close(self) -> JobState:
        """End the job now, whatever its state (Blender is done with it): a worker still
        running is killed and reaped, and a job that had not ended counts as cancelled."""
        if self.process is None or self._closed:
            return self.state
        if self._final is None and self._stop_reason is None:
            self.state.cancel_requested = True
        self.process.kill()
        try:
            returncode = self.process.wait(timeout=EXIT_WAIT_S)
        except subprocess.TimeoutExpired:  # not even a kill ended it: give up on it, not on Blender
            returncode = -9
        self._read_what_arrived()
        self._conclude(returncode)
        return self.state


def _lines(stream) -> Iterator[str]:
    """The lines of `stream`, each cut after MAX_LINE_CHARS + 1 characters (the rest of a
    longer line is read and dropped): one endless line cannot fill Blender's memory."""
    limit = protocol.MAX_LINE_CHARS + 1
    while line := stream.readline(limit):
        rest = line
        while rest and not rest.endswith("\n"):
            rest = stream.readline(limit)
        yield line
