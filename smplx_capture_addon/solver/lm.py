"""Batched Levenberg-Marquardt on residuals: the final polish of a fit.

L-BFGS sees only the gradient of the summed loss and needs hundreds of iterations to
settle the last pixels of a fit with 100+ coupled unknowns. The SMPLify-X objective is
a sum of squares (the robust data term included, see `priors.keypoint_residuals`), so
Gauss-Newton steps with the exact Jacobian converge in a few iterations near a minimum.
Each row (person) has its own damping and acceptance test. The Jacobian is the caller's
(the fitter's comes mostly in closed form from the body model) or else comes from one
vectorised forward-mode pass (torch.func.jacfwd under vmap); both run on the GPU too.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from .lbfgs import LbfgsResult

# residuals(x (B, N), *rows) -> (B, R); rows are per-person tensors with batch first
Residuals = Callable[..., Tensor]
# jacobian(x (B, N), free (n,) column indices, *rows) -> (B, R, n)
Jacobian = Callable[..., Tensor]


def minimize(
    residuals: Residuals,
    rows: tuple[Tensor, ...],
    x0: Tensor,
    mask: Tensor,
    max_iterations: int = 15,
    relative_tolerance: float = 1e-7,
    damping: float = 1e-3,
    callback: Callable[[int, Tensor], None] | None = None,
    jacobian: Jacobian | None = None,
) -> LbfgsResult:
    """Minimise sum(residuals^2) per row of x0 (B, N) over the coordinates where
    mask (N,) or (B, N) is 1. A row stops when a step lowers its loss by less than
    `relative_tolerance` of it or its damping grows past 1e10 (no step helps); a row
    with no free coordinate never starts (nor counts as moving). `jacobian` gives the
    residuals' derivatives; without it, forward-mode differentiation of `residuals`
    does (one pass per free coordinate)."""
    mask = mask.expand_as(x0)
    free = torch.nonzero(mask.any(0)).flatten()
    # Columns frozen for some rows only: zero in their Jacobian, so those rows' steps
    # there are zero and their system is the one without those coordinates. Applied to
    # J^T J and J^T r (the same numbers as a masked J gives, without a copy of J).
    row_free = mask[:, free]
    jacobian = jacobian or _forward_mode_jacobian(residuals, free)
    x = x0.detach().clone()
    with torch.no_grad():
        r = residuals(x, *rows)
    loss = r.square().sum(-1)
    lam = torch.full_like(loss, damping)
    active = torch.isfinite(loss) & mask.any(1)
    # A row's normal equations change only when it moves: rows whose last step was
    # rejected (about 40% of them) reuse theirs with more damping, and rows that have
    # stopped are left out of every pass.
    moved = active.clone()
    jtj = x.new_zeros(len(x), len(free), len(free))
    gradient = x.new_zeros(len(x), len(free))
    evaluations = 1
    iteration = 0
    for iteration in range(1, max_iterations + 1):
        if not bool(active.any()):
            iteration -= 1
            break
        with torch.no_grad():
            update = torch.nonzero(moved).flatten()
            if len(update):
                jac = jacobian(x[update], free, *(row[update] for row in rows))
                kept = row_free[update]
                jtj[update] = (jac.transpose(1, 2) @ jac) * (kept[:, :, None] * kept[:, None, :])
                gradient[update] = (jac.transpose(1, 2) @ r[update, :, None]).squeeze(-1) * kept
            live = torch.nonzero(active).flatten()
            trial, trial_r = _damped_step(
                residuals, rows, x, live, free, jtj[live], gradient[live], lam[live]
            )
        evaluations += 2
        trial_loss = trial_r.square().sum(-1)
        before = loss[live]
        better = torch.isfinite(trial_loss) & (trial_loss < before)
        small = better & (before - trial_loss <= relative_tolerance * before)
        accepted = live[better]
        x[accepted], r[accepted], loss[accepted] = trial[better], trial_r[better], trial_loss[better]
        lam[live] = torch.where(better, lam[live] / 3.0, lam[live] * 4.0)
        active[live[small]] = False
        active &= lam < 1e10
        moved = torch.zeros_like(active)
        moved[accepted] = True
        moved &= active
        if callback is not None:
            callback(iteration, loss)
    return LbfgsResult(x=x, loss=loss, converged=~active, iterations=iteration, evaluations=evaluations)


def _damped_step(
    residuals: Residuals, rows: tuple[Tensor, ...], x: Tensor, live: Tensor, free: Tensor, normal: Tensor,
    gradient: Tensor, lam: Tensor,
) -> tuple[Tensor, Tensor]:  # fmt: skip
    """The rows `live` of x (B, N) moved by their damped Gauss-Newton steps over the
    columns `free`: normal (L, n, n) J^T J, gradient (L, n) J^T r, lam (L,) damping ->
    (the trial points (L, N), their residuals)."""
    diagonal = torch.diagonal(normal, dim1=1, dim2=2)
    system = normal + torch.diag_embed(lam[:, None] * diagonal + 1e-9)
    step = -solve_positive_definite(system, gradient)
    trial = x[live].clone()
    trial[:, free] = trial[:, free] + step
    return trial, residuals(trial, *(row[live] for row in rows))


def solve_positive_definite(system: Tensor, right: Tensor) -> Tensor:
    """x with system @ x = right for symmetric positive definite systems (B, n, n), (B, n).

    By Cholesky, which the damped normal equations allow: the batched LU solve of torch's
    CPU build fails on them with two threads or more (a RuntimeError from MKL's pivots).
    Systems that rounding left not quite positive definite are solved one by one.
    """
    factor, info = torch.linalg.cholesky_ex(system)
    solution = torch.cholesky_solve(right[..., None], factor).squeeze(-1)
    for row in torch.nonzero(info).flatten().tolist():
        solution[row] = torch.linalg.solve(system[row], right[row])
    return solution


def _forward_mode_jacobian(residuals: Residuals, free: Tensor) -> Jacobian:
    """The residuals' derivatives with respect to the columns `free`, by one vectorised
    forward-mode pass per column."""

    def one(u: Tensor, base: Tensor, *row: Tensor) -> Tensor:
        x = base.index_put((free,), u)
        return residuals(x[None], *(r[None] for r in row))[0]

    forward_mode = torch.func.vmap(torch.func.jacfwd(one))
    return lambda x, free, *rows: forward_mode(x[:, free], x, *rows)
