"""Ctrl-C held back across code that would swallow it.

Blender catches exceptions raised in its own Python code (add-ons loaded at start-up,
operators such as the exporters) and prints them as tracebacks: a Ctrl-C landing there
would show a KeyboardInterrupt traceback and be lost. Inside `interrupts_deferred()` a
Ctrl-C is only noted; it interrupts when the block ends.

Standard library only.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def interrupts_deferred() -> Iterator[None]:
    """Hold Ctrl-C back until the block has ended, then raise KeyboardInterrupt. Only
    where Ctrl-C is Python's KeyboardInterrupt, in the main thread (the command line);
    elsewhere (Blender's own window, a worker thread) nothing changes."""
    if (
        threading.current_thread() is not threading.main_thread()
        or signal.getsignal(signal.SIGINT) is not signal.default_int_handler
    ):
        yield
        return
    pressed: list[int] = []
    signal.signal(signal.SIGINT, lambda number, frame: pressed.append(number))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    if pressed:
        raise KeyboardInterrupt
