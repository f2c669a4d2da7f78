"""The optimisers a stage can run, as objects with one `minimize` method, so that a stage
names its optimiser and a caller (the benchmark's comparison with the reference's
optimiser, say) can put in another without a branch in the fit.

minimize(objective, rows, x (R, N), mask (R, N), iterations, callback) -> LbfgsResult:
minimise each row's loss over the coordinates where mask is 1. `objective` offers
loss(x, *rows) -> (R,), perhaps its closed-form `gradient` (L-BFGS uses it instead of
autograd) and, for Levenberg-Marquardt, residuals(x, *rows) -> (R, M) and jacobian (see
objective.StageObjective); rows are per-row tensors, batch first.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol

import torch
from torch import Tensor

from . import lbfgs, lm
from .lbfgs import LbfgsResult

Callback = Callable[[int, Tensor], None]


class Optimiser(Protocol):
    def minimize(
        self, objective: Any, rows: tuple[Tensor, ...], x: Tensor, mask: Tensor, iterations: int,
        callback: Callback,
    ) -> LbfgsResult: ...  # fmt: skip


# Levenberg-Marquardt batches of this many rows or more use every thread torch has; smaller
# ones, and L-BFGS at every size, one: their operations are too small to split, and each
# parallel region wakes the other threads (docs/solver_notes.md).
PARALLEL_ROWS = 64


@contextmanager
def threads_for(x: Tensor, parallel: bool) -> Iterator[None]:
    """On the CPU, torch's threads for the work on x: all of them where `parallel`, else one
    (set back afterwards). On a GPU nothing changes."""
    before = torch.get_num_threads()
    if x.is_cuda or parallel or before == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@dataclass(frozen=True)
class BatchedLbfgs:
    """`lbfgs.minimize`: every row its own problem, with its own line search."""

    history: int = 60  # curvature pairs: about half the unknowns
    relative_tolerance: float = 1e-6

    def minimize(
        self, objective: Any, rows: tuple[Tensor, ...], x: Tensor, mask: Tensor, iterations: int,
        callback: Callback,
    ) -> LbfgsResult:  # fmt: skip
        gradient = getattr(objective, "gradient", None)
        with threads_for(x, parallel=False):
            return lbfgs.minimize(
                lbfgs.value_and_grad(objective.loss, mask, rows) if gradient is None
                else lbfgs.with_gradient(gradient, mask, rows),
                x,
                max_iterations=iterations,
                history=self.history,
                relative_tolerance=self.relative_tolerance,
                callback=callback,
            )  # fmt: skip


@dataclass(frozen=True)
class LevenbergMarquardt:
    """`lm.minimize` on the objective's residuals, with its closed-form Jacobian when it
    has one."""

    def minimize(
        self, objective: Any, rows: tuple[Tensor, ...], x: Tensor, mask: Tensor, iterations: int,
        callback: Callback,
    ) -> LbfgsResult:  # fmt: skip
        with threads_for(x, parallel=len(x) >= PARALLEL_ROWS):
            return lm.minimize(objective.residuals, rows, x, mask, max_iterations=iterations,
                               callback=callback, jacobian=objective.jacobian)  # fmt: skip
