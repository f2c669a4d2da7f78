"""Run a worker process from Blender and follow it without blocking.

`JobState` and the functions that update it are plain: what a message or an exit does
to the job. `WorkerJob` owns the process: threads read its output into a queue, and
`poll()` (called from a Blender timer, or in a loop by the blocking path) applies what
arrived. Nothing here imports bpy: Blender's process and the worker both use it.
"""

from __future__ import annotations

import os
import queue
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from . import protocol

PACKAGE_NAME = Path(__file__).resolve().parent.parent.name
PACKAGE_PARENT = Path(__file__).resolve().parent.parent.parent
CANCEL_GRACE_S = 5.0  # how long a worker may take to stop after `cancel` before it is killed
STDERR_TAIL_LINES = 20
EXIT_WAIT_S = 3.0  # how long a worker that sent its final message may take to exit

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


def apply_message(state: JobState, message: protocol.Message) -> JobState:
    """Update `state` with one worker message (messages after the end are ignored)."""
    if state.finished:
        return state
    if message.type == "progress":
        state.stage = str(message.get("stage", state.stage))
        # Progress only moves forward: a late or repeated message never rewinds the bar.
        state.fraction = max(state.fraction, min(1.0, max(0.0, float(message.get("fraction", 0.0)))))
        state.message = str(message.get("message", ""))
    elif message.type == "result":
        state.status, state.fraction, state.message = DONE, 1.0, "Done"
        state.result_path = message.get("path")
        state.overlay_path = message.get("overlay")
        state.photo_path = message.get("photo")
    elif message.type == "error":
        state.status = FAILED
        state.error = str(message.get("message") or "The worker reported an error without a message.")
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
    state.status = FAILED
    tail = "\n".join(state.stderr_tail[-5:]).strip()
    if returncode < 0:
        how = f"was stopped by signal {-returncode}"
    else:
        how = f"stopped unexpectedly (exit code {returncode})"
    state.error = f"The fitting process {how}." + (f" Last output: {tail}" if tail else "")
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

    def __init__(
        self, command: Sequence[str], env: dict[str, str] | None = None, cancel_grace: float = CANCEL_GRACE_S
    ) -> None:
        self.state = JobState()
        self._queue: queue.Queue[tuple[str, str | None]] = queue.Queue()
        self._stderr: deque[str] = deque(maxlen=STDERR_TAIL_LINES)
        self._cancel_at: float | None = None
        self._cancel_grace = cancel_grace
        self._ended = 0  # output streams read to their end
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
        threading.Thread(target=self._read, args=(self.process.stdout, "out"), daemon=True).start()
        threading.Thread(target=self._read, args=(self.process.stderr, "err"), daemon=True).start()

    def _read(self, stream, name: str) -> None:
        for line in stream:
            self._queue.put((name, line))
        self._queue.put((name, None))  # end of stream

    def poll(self) -> JobState:
        """Apply everything the worker said since the last call; never blocks (except
        briefly once the process has exited, to read its last lines)."""
        if self.process is None or self._closed:
            return self.state
        while True:
            try:
                self._handle(*self._queue.get_nowait())
            except queue.Empty:
                break
        returncode = self.process.poll()
        if returncode is None and self.state.finished:
            # The final message came: the worker only has to exit (it gets a moment).
            try:
                returncode = self.process.wait(timeout=EXIT_WAIT_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                returncode = self.process.wait()
        if returncode is not None:
            # The final message may still be in the pipe: read to the end before judging.
            deadline = time.monotonic() + 2.0
            while self._ended < 2 and time.monotonic() < deadline:
                try:
                    self._handle(*self._queue.get(timeout=0.05))
                except queue.Empty:
                    continue
            apply_exit(self.state, returncode)
            self._close()
        elif self._cancel_at is not None and time.monotonic() > self._cancel_at:
            self.process.kill()
        self.state.stderr_tail = list(self._stderr)
        return self.state

    def _handle(self, name: str, line: str | None) -> None:
        if line is None:
            self._ended += 1
        elif name == "err":
            self._stderr.append(line.rstrip())
            self.state.stderr_tail = list(self._stderr)
        else:
            message = protocol.decode(line)
            if message is not None:
                apply_message(self.state, message)

    def cancel(self) -> None:
        """Ask the worker to stop; it is killed if it has not stopped after the grace time."""
        if self.process is None or self.state.finished or self.state.cancel_requested:
            return
        self.state.cancel_requested = True
        self._cancel_at = time.monotonic() + self._cancel_grace
        try:
            self.process.stdin.write(protocol.CANCEL_LINE + "\n")
            self.process.stdin.flush()
        except OSError:  # the worker has already gone
            pass

    def wait(self, on_update: Callable[[JobState], None] | None = None, interval: float = 0.1) -> JobState:
        """Block until the job ends (the path for headless Blender, which has no event loop)."""
        while not self.poll().finished:
            if on_update is not None:
                on_update(self.state)
            time.sleep(interval)
        if on_update is not None:
            on_update(self.state)
        return self.state

    def _close(self) -> None:
        self._closed = True
        for stream in (self.process.stdin, self.process.stdout, self.process.stderr):
            try:
                stream.close()
            except OSError:
                pass
