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
    `relative_tolerance` of it or its damping grows past 1e10 (no step helps).
    `jacobian` gives the residuals' derivatives; without it, forward-mode
    differentiation of `residuals` does (one pass per free coordinate)."""
    mask = mask.expand_as(x0)
    free = torch.nonzero(mask.any(0)).flatten()
    fixed = x0 * (1 - mask)
    # Columns frozen for some rows only: zero in their Jacobian, so those rows' steps
    # there are zero and their system is the one without those coordinates.
    row_free = mask[:, None, free]

    def one(u: Tensor, base: Tensor, *row: Tensor) -> Tensor:
        x = base.index_put((free,), u)
        return residuals(x[None], *(r[None] for r in row))[0]

    if jacobian is None:
        forward_mode = torch.func.vmap(torch.func.jacfwd(one))
        jacobian = lambda x, free, *rows: forward_mode(x[:, free], fixed, *rows)  # noqa: E731
    x = x0.detach().clone()
    with torch.no_grad():
        r = residuals(x, *rows)
    loss = r.square().sum(-1)
    lam = torch.full_like(loss, damping)
    active = torch.isfinite(loss)
    evaluations = 1
    iteration = 0
    for iteration in range(1, max_iterations + 1):
        if not bool(active.any()):
            iteration -= 1
            break
        with torch.no_grad():
            jac = jacobian(x, free, *rows) * row_free  # (B, R, n)
            jtj = jac.transpose(1, 2) @ jac
            gradient = (jac.transpose(1, 2) @ r[..., None]).squeeze(-1)
            diagonal = torch.diagonal(jtj, dim1=1, dim2=2)
            system = jtj + torch.diag_embed(lam[:, None] * diagonal + 1e-9)
            step = -torch.linalg.solve(system, gradient)
            trial = x.clone()
            trial[:, free] = x[:, free] + step * active[:, None]
            trial_r = residuals(trial, *rows)
        evaluations += 2
        trial_loss = trial_r.square().sum(-1)
        better = active & torch.isfinite(trial_loss) & (trial_loss < loss)
        small = better & (loss - trial_loss <= relative_tolerance * loss)
        x = torch.where(better[:, None], trial, x)
        r = torch.where(better[:, None], trial_r, r)
        loss = torch.where(better, trial_loss, loss)
        lam = torch.where(better, lam / 3.0, lam * 4.0)
        active = active & ~small & (lam < 1e10)
        if callback is not None:
            callback(iteration, loss)
    return LbfgsResult(x=x, loss=loss, converged=~active, iterations=iteration, evaluations=evaluations)
