"""The serving worker (`worker --serve`): the fits requested on standard input (photos and
videos), one after another in one process that keeps torch, the solver, the detector and the body models
loaded between them (see `protocol` for the requests and the answers)."""

from __future__ import annotations

import queue
import signal
import sys
import threading
from functools import partial
from typing import TYPE_CHECKING

from ..errors import Cancelled
from ..fit_request import FitRequest
from ..video.request import VideoRequest
from . import protocol
from .job import Channel, Progress, Written, fit, fit_video, run_job

if TYPE_CHECKING:
    from ..solver.pipeline import WarmModels

IGNORED_LINE_EXCERPT = 80  # what standard error quotes of an input line that is not a request


def serve(channel: Channel, idle_timeout: float) -> int:
    """Fit the requests read on standard input until `quit`, the end of the input, a
    signal or `idle_timeout` seconds without a request; the exit status."""
    server = _Server(channel)
    threading.Thread(target=server.read_requests, args=(sys.stdin,), daemon=True).start()
    if threading.current_thread() is threading.main_thread():
        for number in (signal.SIGTERM, signal.SIGINT):
            signal.signal(number, lambda *_: server.stop(protocol.EXIT_CANCELLED))
    channel.hello(serve=True)
    try:
        return server.run(idle_timeout)
    finally:
        server.close()


class _Server:
    """The requests waiting, the jobs asked to cancel, and what is kept loaded."""

    def __init__(self, channel: Channel) -> None:
        self._channel = channel
        # None: stop. A SimpleQueue's put is reentrant: the signal handler's stop() cannot
        # deadlock on a lock the main thread holds while it waits for the next request.
        self._waiting: queue.SimpleQueue[protocol.Message | None] = queue.SimpleQueue()
        self._cancelled: set[str] = set()
        self._stopping = threading.Event()
        self._exit_status = protocol.EXIT_OK
        self._warm: WarmModels | None = None

    def read_requests(self, stream) -> None:
        """Queue the fits, note the cancels; `quit` or the end of the input stops the server."""
        for line in stream:
            request = protocol.decode_request(line)
            if request is None:
                excerpt = line.strip()[:IGNORED_LINE_EXCERPT]
                print(f"worker: ignored an input line that is not a request: {excerpt!r}", file=sys.stderr)
            elif request.type in (*protocol.FIT_REQUESTS, protocol.PREPARE):
                self._waiting.put(request)
            elif request.type == "cancel":
                self._cancelled.add(request.get("job"))
            else:
                break
        self.stop(protocol.EXIT_OK)

    def stop(self, exit_status: int) -> None:
        """Cancel the running job and those waiting, then exit with `exit_status`."""
        if not self._stopping.is_set():
            self._exit_status = exit_status
            self._stopping.set()
            self._waiting.put(None)

    def run(self, idle_timeout: float) -> int:
        while True:
            try:
                request = self._waiting.get(timeout=idle_timeout)
            except queue.Empty:  # idle for too long: the memory goes back, Blender starts another
                return protocol.EXIT_OK
            if request is None:
                return self._exit_status
            if request.type == protocol.PREPARE:
                self._prepare(request)
                continue
            job = request.get("job")
            final, _ = run_job(partial(self._fit, request), self._channel, job)
            self._channel.send(final)
            self._cancelled.discard(job)

    def _fit(self, request: protocol.Message, progress: Progress) -> Written:
        job = request.get("job")

        def cancelled() -> bool:
            return self._stopping.is_set() or job in self._cancelled

        if cancelled():  # cancelled while it waited: answered without starting it
            raise Cancelled("The fit was cancelled.")
        if request.type == protocol.FIT_VIDEO:
            video_request = VideoRequest.from_dict(request.get("request"))
            return fit_video(video_request, request.get("out"), progress, cancelled, self._warm_models)
        fit_request = FitRequest.from_dict(request.get("request"))
        return fit(fit_request, request.get("out"), progress, cancelled, self._warm_models)

    def _prepare(self, request: protocol.Message) -> None:
        """Load what a fit of the request needs; what fails is the fit's to report."""
        try:
            self._warm_models().prepare(FitRequest.from_dict(request.get("request")))
        except Exception as error:  # whatever it is, the fit that follows reports it
            print(f"worker: could not prepare for the next fit: {error}", file=sys.stderr)

    def _warm_models(self) -> WarmModels:
        """The models kept between fits (the first fit imports the solver for them)."""
        if self._warm is None:
            from ..solver.pipeline import WarmModels

            self._warm = WarmModels()
        return self._warm

    def close(self) -> None:
        if self._warm is not None:
            self._warm.close()
