"""How the processes that run torch share the CPU: set before torch loads."""

from __future__ import annotations

import os
from collections.abc import MutableMapping

# OpenMP threads that spin while they wait steal the cores from any other busy process (Blender
# drawing, a second fit) and then wait on each other's stolen turns: fits 3-20x slower.
SLEEP_WHILE_WAITING = {"OMP_WAIT_POLICY": "PASSIVE"}


def sleep_while_waiting(env: MutableMapping[str, str] = os.environ) -> None:
    """Sets SLEEP_WHILE_WAITING in `env` (this process' environment by default) where the
    user has not chosen otherwise; only takes effect in a process that loads torch later."""
    for name, value in SLEEP_WHILE_WAITING.items():
        env.setdefault(name, value)
