"""How the processes that run torch share the CPU: set before torch loads."""

from __future__ import annotations

import os
from collections.abc import MutableMapping

# torch's OpenMP threads spin a long while before they sleep when they wait for work;
# beside another busy process (Blender drawing, a second fit) a spinning thread takes the
# core its partner needs at every barrier. A short spin keeps most of a quiet machine's
# speed, which no spin at all would lose (figures in docs/solver_notes.md).
SHORT_SPIN = {"GOMP_SPINCOUNT": "1000"}


def spin_briefly(env: MutableMapping[str, str] = os.environ) -> None:
    """Sets SHORT_SPIN in `env` (this process' environment by default) where the user has
    not chosen otherwise; it only takes effect in a process that loads torch later."""
    for name, value in SHORT_SPIN.items():
        env.setdefault(name, value)
