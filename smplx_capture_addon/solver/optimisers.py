"""The optimisers a stage can run, as objects with one `minimize` method, so that a stage
names its optimiser and a caller (the benchmark's comparison with the reference's
optimiser, say) can put in another without a branch in the fit.

minimize(objective, rows, x (R, N), mask (R, N), iterations, callback) -> LbfgsResult:
minimise each row's loss over the coordinates where mask is 1. `objective` offers
loss(x, *rows) -> (R,) and, for Levenberg-Marquardt, residuals(x, *rows) -> (R, M) and
jacobian (see objective.StageObjective); rows are per-row tensors, batch first.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from torch import Tensor

from . import lbfgs, lm
from .lbfgs import LbfgsResult

Callback = Callable[[int, Tensor], None]


class Optimiser(Protocol):
    def minimize(
        self, objective: Any, rows: tuple[Tensor, ...], x: Tensor, mask: Tensor, iterations: int,
        callback: Callback,
    ) -> LbfgsResult: ...  # fmt: skip


@dataclass(frozen=True)
class BatchedLbfgs:
    """`lbfgs.minimize`: every row its own problem, with its own line search."""

    history: int = 60  # curvature pairs: about half the unknowns
    relative_tolerance: float = 1e-6

    def minimize(
        self, objective: Any, rows: tuple[Tensor, ...], x: Tensor, mask: Tensor, iterations: int,
        callback: Callback,
    ) -> LbfgsResult:  # fmt: skip
        return lbfgs.minimize(
            lbfgs.value_and_grad(objective.loss, mask, rows),
            x,
            max_iterations=iterations,
            history=self.history,
            relative_tolerance=self.relative_tolerance,
            callback=callback,
        )


@dataclass(frozen=True)
class LevenbergMarquardt:
    """`lm.minimize` on the objective's residuals, with its closed-form Jacobian when it
    has one."""

    def minimize(
        self, objective: Any, rows: tuple[Tensor, ...], x: Tensor, mask: Tensor, iterations: int,
        callback: Callback,
    ) -> LbfgsResult:  # fmt: skip
        return lm.minimize(objective.residuals, rows, x, mask, max_iterations=iterations, callback=callback,
                           jacobian=objective.jacobian)  # fmt: skip
