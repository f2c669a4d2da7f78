"""A batched L-BFGS: many independent problems minimised in lock-step, each with its own
curvature history, step length and convergence test.

`torch.optim.LBFGS` treats a batch as one problem: one line search (one step length for
every person) and one curvature history mixing all of them, so a batch converges more
slowly than its people would alone and a person's result depends on who else is in the
batch. Here every row of `x` (B, N) is its own problem; one call of the objective
evaluates every row that needs it (that is where batching pays: a line search's later
trials only the rows still searching), and the line search (backtracking with the
Armijo condition and safeguarded quadratic interpolation) is done per row. A row's
result is the same whether it is solved alone or in a batch, up to float rounding.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

# objective(x (R, N), index (R,)) -> (loss (R,), gradient (R, N)), both detached: the
# rows at `index` of the batch, at x
Objective = Callable[[Tensor, Tensor], tuple[Tensor, Tensor]]


@dataclass
class LbfgsResult:
    """x (B, N) solution; loss (B,); converged (B,) bool; iterations and evaluations run
    (shared by the batch: rows that converge early stop moving, not being evaluated)."""

    x: Tensor
    loss: Tensor
    converged: Tensor
    iterations: int
    evaluations: int


def value_and_grad(
    loss_fn: Callable[..., Tensor], mask: Tensor | None = None, rows: tuple[Tensor, ...] = ()
) -> Objective:
    """Wrap loss_fn(x (R, N), *rows) -> (R,) into an objective returning the per-row
    gradients of any rows of the batch: `rows` are per-row tensors, batch first, of which
    loss_fn gets those of the rows asked for.

    Rows are independent, so the gradient of the sum is every row's own gradient.
    `mask` (N,) or (B, N) zeroes the gradient of frozen coordinates, so they never move.
    """

    def objective(x: Tensor, index: Tensor) -> tuple[Tensor, Tensor]:
        with torch.enable_grad():
            x = x.detach().requires_grad_(True)
            loss = loss_fn(x, *(row[index] for row in rows))
            (grad,) = torch.autograd.grad(loss.sum(), x)
        return loss.detach(), _masked(grad.detach(), mask, index)

    return objective


def with_gradient(
    gradient_fn: Callable[..., tuple[Tensor, Tensor]],
    mask: Tensor | None = None,
    rows: tuple[Tensor, ...] = (),
) -> Objective:
    """As `value_and_grad`, from gradient_fn(x (R, N), *rows) -> (loss (R,), gradient
    (R, N)) that gives each row's gradient itself (in closed form: no autograd graph)."""

    def objective(x: Tensor, index: Tensor) -> tuple[Tensor, Tensor]:
        with torch.no_grad():
            loss, grad = gradient_fn(x, *(row[index] for row in rows))
        return loss, _masked(grad, mask, index)

    return objective


def _masked(grad: Tensor, mask: Tensor | None, index: Tensor) -> Tensor:
    """grad (R, N) zeroed on the frozen columns of `mask` (N,) or (B, N) at rows `index`."""
    if mask is None:
        return grad
    return grad * (mask[index] if mask.dim() == 2 else mask)


def search_direction(grad: Tensor, s: Tensor, y: Tensor, rho: Tensor) -> Tensor:
    """The L-BFGS direction -H g per row, H the inverse Hessian estimate from the history
    with H0 = gamma I (gamma = s.y / y.y of the newest pair, else 1).

    In the compact form of Byrd, Nocedal and Schnabel (1994): H g = gamma g + S q -
    gamma Y p with p = R^-1 S^T g and q = R^-T ((D + gamma Y^T Y) p - gamma Y^T g), R the
    upper triangle of S^T Y and D its diagonal. The same direction as the two-loop
    recursion, in a dozen batched operations instead of four per stored pair (an eager
    solver pays per operation). grad (B, N); s, y (B, M, N) history, each row's pairs in
    its first slots, oldest first, the slots after them zero; rho (B, M) = 1 / (y . s),
    zero where unused. -> (B, N).
    """
    # Only the slots some row uses enter (early in a stage most of the history is empty).
    counts = (rho > 0).sum(-1)
    newest = int(counts.max())
    if newest == 0:
        return -grad
    s, y, rho = s[:, :newest], y[:, :newest], rho[:, :newest]
    sy = s @ y.transpose(1, 2)  # (B, M, M): s_i . y_j
    # A unit diagonal in unused slots: their rows and columns are zero, so p and q are too.
    upper = torch.triu(sy) + torch.diag_embed((rho <= 0).to(sy.dtype))
    last = (counts - 1).clamp(min=0)
    rows = torch.arange(len(grad), device=grad.device)
    y_last = y[rows, last]
    yy = (y_last * y_last).sum(-1)
    gamma = torch.where(counts > 0, 1.0 / (rho[rows, last] * yy).clamp(min=1e-30), torch.ones_like(yy))
    gamma = gamma[:, None, None]
    sg, yg = s @ grad[..., None], y @ grad[..., None]  # (B, M, 1)
    p = torch.linalg.solve_triangular(upper, sg, upper=True)
    yp = y.transpose(1, 2) @ p  # (B, N, 1)
    rhs = torch.diagonal(sy, dim1=1, dim2=2)[..., None] * p + gamma * (y @ yp - yg)
    q = torch.linalg.solve_triangular(upper.transpose(1, 2), rhs, upper=False)
    product = gamma * (grad[..., None] - yp) + s.transpose(1, 2) @ q
    return -product.squeeze(-1)


def minimize(
    objective: Objective,
    x0: Tensor,
    max_iterations: int = 30,
    history: int = 10,
    relative_tolerance: float = 1e-6,
    gradient_tolerance: float = 1e-7,
    max_line_search: int = 12,
    callback: Callable[[int, Tensor], None] | None = None,
) -> LbfgsResult:
    """Minimise every row of x0 (B, N).

    A row stops when its loss changes by less than `relative_tolerance` of its value,
    its gradient's largest entry falls below `gradient_tolerance`, or its line search
    fails to decrease the loss. `callback(iteration, loss)` runs after each iteration
    (progress reporting and cancellation).
    """
    batch, size = x0.shape
    x = x0.detach().clone()
    loss, grad = objective(x, torch.arange(batch, device=x.device))
    evaluations = 1
    pairs = (
        x.new_zeros(batch, history, size),
        x.new_zeros(batch, history, size),
        x.new_zeros(batch, history),
    )
    active = torch.isfinite(loss) & (grad.abs().amax(-1) > gradient_tolerance)
    iteration = 0
    for iteration in range(1, max_iterations + 1):
        if not bool(active.any()):
            iteration -= 1
            break
        direction, slope = _descent(grad, *pairs)
        first = pairs[2][:, 0] == 0  # no pair kept yet
        step = torch.where(
            first, (1.0 / grad.abs().sum(-1).clamp(min=1e-12)).clamp(max=1.0), torch.ones_like(loss)
        )
        step = torch.where(active, step, torch.zeros_like(step))
        (new_x, new_loss, new_grad), pending, trials = _line_search(
            objective, x, loss, grad, direction, slope, step, active, max_line_search
        )
        evaluations += trials
        moved = active & ~pending
        pairs = _with_pair(pairs, moved, new_x - x, new_grad - grad)
        change = (loss - new_loss).abs()
        small_change = change <= relative_tolerance * new_loss.abs().clamp(min=1.0)
        flat = new_grad.abs().amax(-1) <= gradient_tolerance
        x, loss, grad = new_x, new_loss, new_grad
        active = active & moved & ~small_change & ~flat
        if callback is not None:
            callback(iteration, loss)
    converged = ~active
    return LbfgsResult(x=x, loss=loss, converged=converged, iterations=iteration, evaluations=evaluations)


def _descent(grad: Tensor, s: Tensor, y: Tensor, rho: Tensor) -> tuple[Tensor, Tensor]:
    """The search direction (B, N) and the slope along it (B,); steepest descent for rows
    whose L-BFGS direction is not a descent direction (stale curvature)."""
    direction = search_direction(grad, s, y, rho)
    slope = (grad * direction).sum(-1)
    uphill = slope >= 0
    direction = torch.where(uphill[:, None], -grad, direction)
    slope = torch.where(uphill, -(grad * grad).sum(-1), slope)
    return direction, slope


def _line_search(
    objective: Objective, x: Tensor, loss: Tensor, grad: Tensor, direction: Tensor, slope: Tensor,
    step: Tensor, active: Tensor, max_line_search: int,
) -> tuple[tuple[Tensor, Tensor, Tensor], Tensor, int]:  # fmt: skip
    """Backtracking with the Armijo condition, per row, from `step` (B,) along
    `direction` (B, N) -> ((x, loss, grad) after it, pending (B,): the rows whose search
    failed, evaluations)."""
    pending = active.clone()
    new_x, new_loss, new_grad = x.clone(), loss.clone(), grad.clone()
    evaluations = 0
    for _ in range(max_line_search):
        # Only the rows still searching are evaluated: in a large batch some row
        # nearly always needs another trial, and the others would be evaluated again
        # for nothing (a batch of 400 rows took twice the evaluations of one row).
        rows = torch.nonzero(pending).flatten()
        row_step, row_slope = step[rows], slope[rows]
        trial_x = x[rows] + row_step[:, None] * direction[rows]
        trial_loss, trial_grad = objective(trial_x, rows)
        evaluations += 1
        decrease = trial_loss - loss[rows]
        ok = torch.isfinite(trial_loss) & (decrease <= 1e-4 * row_step * row_slope)
        accepted = rows[ok]
        new_x[accepted], new_grad[accepted] = trial_x[ok], trial_grad[ok]
        new_loss[accepted] = trial_loss[ok]
        pending[accepted] = False
        if not bool(pending.any()):
            break
        # Minimiser of the quadratic through loss, slope and the trial, kept within
        # [0.1, 0.5] of the step (a non-finite trial just quarters the step).
        curvature = 2.0 * (decrease - row_slope * row_step)
        quadratic = -row_slope * row_step * row_step / curvature.clamp(min=1e-30)
        shrunk = torch.minimum(torch.maximum(quadratic, 0.1 * row_step), 0.5 * row_step)
        shrunk = torch.where(torch.isfinite(trial_loss), shrunk, 0.25 * row_step)
        step[rows] = torch.where(ok, row_step, shrunk)
    return (new_x, new_loss, new_grad), pending, evaluations


def _with_pair(
    pairs: tuple[Tensor, Tensor, Tensor], moved: Tensor, s_new: Tensor, y_new: Tensor
) -> tuple[Tensor, Tensor, Tensor]:
    """The history (s (B, M, N), y (B, M, N), rho (B, M), as search_direction lays it out)
    with the newest pair added, in place, for the rows that `moved` (B,); a full row drops
    its oldest. A pair is kept only when its curvature is positive (the Armijo search does
    not guarantee it): otherwise the inverse Hessian estimate stops being positive."""
    s_hist, y_hist, rho = pairs
    sy = (s_new * y_new).sum(-1)
    keep = moved & (sy > 1e-10 * s_new.norm(dim=-1) * y_new.norm(dim=-1))
    rows = torch.nonzero(keep).flatten()
    if len(rows) == 0:
        return pairs
    slots = (rho[rows] > 0).sum(-1)
    full = slots == rho.shape[1]
    if bool(full.any()):
        rolled = rows[full]
        for history in pairs:
            history[rolled] = history[rolled].roll(-1, 1)
        slots = slots - full.long()
    s_hist[rows, slots], y_hist[rows, slots] = s_new[rows], y_new[rows]
    rho[rows, slots] = 1.0 / sy[rows].clamp(min=1e-30)
    return pairs
