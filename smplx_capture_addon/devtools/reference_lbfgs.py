"""The reference SMPLify-X's optimiser, kept to measure the solver's own against (see
`bench`): torch.optim.LBFGS with its strong-Wolfe line search on the sum of the rows'
losses, as one problem (one step length and one history for the whole batch). It
plugs into a fit as `FitOptions(lbfgs=StrongWolfeLbfgs())`; it never ships.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from ..solver.lbfgs import LbfgsResult


def minimize_strong_wolfe(
    loss_fn: Callable[[Tensor], Tensor],
    x0: Tensor,
    mask: Tensor | None = None,
    max_iterations: int = 30,
    history: int = 10,
    callback: Callable[[int, Tensor], None] | None = None,
) -> LbfgsResult:
    """What the reference does: `torch.optim.LBFGS` with its strong-Wolfe line search on
    the sum of the rows' losses, as one problem (one step length and one history for the
    whole batch). Kept to measure `minimize` against (see `bench`). loss_fn(x (B, N)) ->
    (B,); mask (N,) or (B, N) freezes coordinates."""
    x = x0.detach().clone().requires_grad_(True)
    optimiser = torch.optim.LBFGS([x], lr=1.0, max_iter=max_iterations, history_size=history,
                                  tolerance_change=1e-9, line_search_fn="strong_wolfe")  # fmt: skip
    evaluations = 0

    def closure() -> Tensor:
        nonlocal evaluations
        optimiser.zero_grad()
        loss = loss_fn(x).sum()
        loss.backward()
        if mask is not None:
            x.grad.mul_(mask)
        evaluations += 1
        return loss

    optimiser.step(closure)
    iterations = optimiser.state[x].get("n_iter", 0)
    with torch.no_grad():
        loss = loss_fn(x)
    if callback is not None:
        callback(iterations, loss)
    converged = torch.full_like(loss, iterations < max_iterations, dtype=torch.bool)
    return LbfgsResult(x=x.detach(), loss=loss.detach(), converged=converged, iterations=iterations,
                       evaluations=evaluations)  # fmt: skip


@dataclass(frozen=True)
class StrongWolfeLbfgs:
    """The reference's optimiser as a stage optimiser (see optimisers): torch.optim.LBFGS
    with its strong-Wolfe line search on the sum of the rows' losses, as one problem."""

    history: int = 60

    def minimize(
        self, objective: Any, rows: tuple[Tensor, ...], x: Tensor, mask: Tensor, iterations: int,
        callback: Callable[[int, Tensor], None],
    ) -> LbfgsResult:  # fmt: skip
        return minimize_strong_wolfe(lambda x: objective.loss(x, *rows), x, mask, max_iterations=iterations,
                                     history=self.history, callback=callback)  # fmt: skip
