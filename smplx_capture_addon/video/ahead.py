"""Run an iterator in a thread a few items ahead of its consumer.

A video's detection (MediaPipe and OpenCV, which let go of Python's lock while they work)
then runs on one core while the fit (PyTorch) runs on the other: on a 2-core CPU the two
chains overlap instead of taking turns. The items come in their order; an exception of
the iterator is raised at the consumer where the item would have come; closing the
consumer (a cancel, a Ctrl-C, an error in the fit) stops the thread after the item it is
working on.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Generator, Iterator
from typing import TypeVar

T = TypeVar("T")
_DONE = object()
_POLL_SECONDS = 0.1  # how often a producer waiting on a full queue looks for a stop


class Timed(Iterator[T]):
    """An iterator counting the seconds its items take to make (in whichever thread asks
    for them)."""

    def __init__(self, items: Iterator[T]) -> None:
        self._items = items
        self.seconds = 0.0

    def __iter__(self) -> Timed[T]:
        return self

    def __next__(self) -> T:
        mark = time.perf_counter()
        try:
            return next(self._items)
        finally:
            self.seconds += time.perf_counter() - mark


def run_ahead(items: Iterator[T], depth: int = 4, name: str = "ahead") -> Generator[T, None, None]:
    """`items`, made in a thread called `name` at most `depth` items ahead of the consumer."""
    waiting: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(entry: tuple) -> bool:
        while not stop.is_set():
            try:
                waiting.put(entry, timeout=_POLL_SECONDS)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put((item, None)):
                    return
            put((_DONE, None))
        except BaseException as error:  # handed to the consumer, whatever it is
            put((None, error))

    thread = threading.Thread(target=produce, name=name, daemon=True)
    thread.start()
    try:
        while True:
            item, error = waiting.get()
            if error is not None:
                raise error
            if item is _DONE:
                return
            yield item
    finally:
        stop.set()
        thread.join()
