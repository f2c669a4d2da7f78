"""The batched L-BFGS: rows are independent problems solved to their own minima."""

from __future__ import annotations

import itertools

import torch

from smplx_capture_addon.devtools.reference_lbfgs import minimize_strong_wolfe
from smplx_capture_addon.solver import lbfgs, lm, optimisers


def rosenbrock(x: torch.Tensor) -> torch.Tensor:
    return (100.0 * (x[:, 1:] - x[:, :-1] ** 2) ** 2 + (1 - x[:, :-1]) ** 2).sum(-1)


def test_minimises_rosenbrock_rows_to_the_optimum():
    start = torch.tensor([[-1.2, 1.0], [2.0, 2.0], [0.0, 0.0]], dtype=torch.float64)  # 2-d: one minimum
    objective = lbfgs.value_and_grad(rosenbrock)
    result = lbfgs.minimize(
        objective, start, max_iterations=300, relative_tolerance=0.0, gradient_tolerance=1e-9
    )
    torch.testing.assert_close(result.x, torch.ones_like(start), atol=1e-5, rtol=0)
    assert result.converged.all()


def test_a_row_solved_in_a_batch_equals_the_row_solved_alone():
    generator = torch.Generator().manual_seed(0)
    start = torch.randn(5, 4, generator=generator, dtype=torch.float64)
    batch = lbfgs.minimize(lbfgs.value_and_grad(rosenbrock), start, max_iterations=25)
    for row in range(5):
        alone = lbfgs.minimize(lbfgs.value_and_grad(rosenbrock), start[row : row + 1], max_iterations=25)
        torch.testing.assert_close(batch.x[row : row + 1], alone.x, atol=1e-10, rtol=0)


def test_the_line_search_evaluates_only_the_rows_still_searching():
    """Each row has its own data (a shifted Rosenbrock valley): the objective gets the
    rows it is asked for with their own data, later trials of a line search only the rows
    that have not yet found a step, and every row ends at its own minimum, where it ends
    alone."""
    generator = torch.Generator().manual_seed(1)
    start = torch.randn(6, 2, generator=generator, dtype=torch.float64)  # 2-d: one minimum
    shifts = torch.linspace(-1.0, 1.0, 6, dtype=torch.float64)[:, None]
    asked = []

    def shifted(x: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
        asked.append(len(x))
        return rosenbrock(x - shift)

    def solve(rows: slice) -> lbfgs.LbfgsResult:
        objective = lbfgs.value_and_grad(shifted, rows=(shifts[rows],))
        return lbfgs.minimize(objective, start[rows], max_iterations=300, relative_tolerance=0.0,
                              gradient_tolerance=1e-9)  # fmt: skip

    batch = solve(slice(None))
    assert asked[0] == 6 and min(asked) < 6
    assert sum(asked) < 6 * len(asked)  # rows that found their step were not evaluated again
    torch.testing.assert_close(batch.x, (shifts + 1.0).expand(-1, 2), atol=1e-5, rtol=0)
    for row in range(6):
        torch.testing.assert_close(batch.x[row : row + 1], solve(slice(row, row + 1)).x, atol=1e-10, rtol=0)


def test_masked_coordinates_do_not_move():
    start = torch.full((2, 3), 3.0, dtype=torch.float64)
    mask = torch.tensor([1.0, 0.0, 1.0], dtype=torch.float64)
    result = lbfgs.minimize(
        lbfgs.value_and_grad(lambda x: x.square().sum(-1), mask), start, max_iterations=20
    )
    assert torch.equal(result.x[:, 1], start[:, 1])
    torch.testing.assert_close(result.x[:, [0, 2]], torch.zeros(2, 2, dtype=torch.float64), atol=1e-6, rtol=0)


def test_the_reference_optimiser_solves_the_batch_as_one_problem_and_keeps_the_mask():
    start = torch.tensor([[-1.2, 1.0, 3.0], [2.0, 2.0, 3.0]], dtype=torch.float64)
    mask = torch.tensor([1.0, 1.0, 0.0], dtype=torch.float64)

    def loss(x: torch.Tensor) -> torch.Tensor:
        return rosenbrock(x[:, :2]) + x[:, 2].square()

    result = minimize_strong_wolfe(loss, start, mask, max_iterations=300)
    torch.testing.assert_close(result.x[:, :2], torch.ones(2, 2, dtype=torch.float64), atol=1e-4, rtol=0)
    assert torch.equal(result.x[:, 2], start[:, 2])
    assert result.loss.shape == (2,) and result.evaluations >= result.iterations > 0


def test_callback_sees_every_iteration_and_its_loss_decreases():
    seen = []
    lbfgs.minimize(lbfgs.value_and_grad(rosenbrock), torch.tensor([[-1.2, 1.0]], dtype=torch.float64),
                   max_iterations=15, relative_tolerance=0.0,
                   callback=lambda iteration, loss: seen.append((iteration, float(loss[0]))))  # fmt: skip
    assert [i for i, _ in seen] == list(range(1, len(seen) + 1))
    losses = [loss for _, loss in seen]
    assert all(b <= a for a, b in itertools.pairwise(losses))


def test_levenberg_marquardt_fits_a_curve_per_row_exactly():
    t = torch.linspace(0, 2, 30, dtype=torch.float64)
    truth = torch.tensor([[2.0, -1.3, 0.5], [0.5, 0.7, -0.2]], dtype=torch.float64)

    def model(x: torch.Tensor) -> torch.Tensor:
        return x[:, :1] * torch.exp(x[:, 1:2] * t) + x[:, 2:3]

    observed = model(truth)

    def residuals(x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return model(x) - target

    start = torch.tensor([[1.0, 0.0, 0.0], [1.0, 0.0, 0.0]], dtype=torch.float64)
    mask = torch.ones(3, dtype=torch.float64)
    result = lm.minimize(residuals, (observed,), start, mask, max_iterations=50, relative_tolerance=0.0)
    torch.testing.assert_close(result.x, truth, atol=1e-8, rtol=0)
    alone = lm.minimize(
        residuals, (observed[1:],), start[1:], mask, max_iterations=50, relative_tolerance=0.0
    )
    torch.testing.assert_close(alone.x, result.x[1:], atol=1e-10, rtol=0)
    frozen = lm.minimize(residuals, (observed,), start, torch.tensor([1.0, 1.0, 0.0], dtype=torch.float64))
    assert torch.equal(frozen.x[:, 2], start[:, 2])


def _two_loop(grad: torch.Tensor, s: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The textbook two-loop recursion (Nocedal and Wright, algorithm 7.4) for one row:
    grad (N,); s, y (M, N) oldest first, all used."""
    rho = 1.0 / (s * y).sum(-1)
    q, alpha = grad.clone(), [0.0] * len(s)
    for i in reversed(range(len(s))):
        alpha[i] = rho[i] * (s[i] @ q)
        q = q - alpha[i] * y[i]
    r = (s[-1] @ y[-1]) / (y[-1] @ y[-1]) * q
    for i in range(len(s)):
        r = r + s[i] * (alpha[i] - rho[i] * (y[i] @ r))
    return -r


def test_search_direction_equals_the_two_loop_recursion_and_ignores_unused_slots():
    generator = torch.Generator().manual_seed(1)
    s = torch.randn(2, 6, 5, generator=generator, dtype=torch.float64)
    y = s + 0.3 * torch.randn(2, 6, 5, generator=generator, dtype=torch.float64)
    grad = torch.randn(2, 5, generator=generator, dtype=torch.float64)
    rho = 1.0 / (s * y).sum(-1)
    # Row 1 holds only its two newest pairs, in its first slots; three more slots unused.
    padded = [torch.cat([t, t.new_zeros(2, 3, *t.shape[2:])], 1) for t in (s, y, rho)]
    for t in padded:
        t[1, :2], t[1, 2:] = t[1, 4:6].clone(), 0.0
    direction = lbfgs.search_direction(grad, *padded)
    torch.testing.assert_close(direction[0], _two_loop(grad[0], s[0], y[0]), atol=1e-12, rtol=0)
    torch.testing.assert_close(direction[1], _two_loop(grad[1], s[1, 4:], y[1, 4:]), atol=1e-12, rtol=0)
    empty = lbfgs.search_direction(grad, torch.zeros_like(s), torch.zeros_like(y), torch.zeros_like(rho))
    torch.testing.assert_close(empty, -grad)  # no history: steepest descent


def test_the_history_keeps_each_rows_newest_pairs_oldest_first_in_its_first_slots():
    """Pairs kept row by row (a row that did not move, or whose pair has no positive
    curvature, keeps none): each row's pairs fill its first slots in order; a full row
    drops its oldest."""
    history = tuple(torch.zeros(2, 3, *shape, dtype=torch.float64) for shape in ((2,), (2,), ()))
    kept = {0: [], 1: []}
    for step in range(1, 6):
        s_new = torch.tensor([[step, 0.0], [0.0, step]], dtype=torch.float64)
        y_new = s_new.clone()
        y_new[1] *= -1.0 if step == 2 else 1.0  # row 1's second pair curves the wrong way
        moved = torch.tensor([True, step != 4])
        history = lbfgs._with_pair(history, moved, s_new, y_new)
        for row in (0, 1):
            if moved[row] and not (row == 1 and step == 2):
                kept[row] = (kept[row] + [step])[-3:]
    s_hist, _, rho = history
    assert kept == {0: [3, 4, 5], 1: [1, 3, 5]}
    for row in (0, 1):
        assert s_hist[row].abs().sum(-1).tolist() == [float(step) for step in kept[row]]
        expected = torch.tensor([1.0 / step**2 for step in kept[row]], dtype=torch.float64)
        torch.testing.assert_close(rho[row], expected)


def test_levenberg_marquardt_row_masks_equal_each_row_alone():
    t = torch.linspace(0, 2, 30, dtype=torch.float64)
    truth = torch.tensor([[2.0, -1.3, 0.5], [0.5, 0.7, -0.2]], dtype=torch.float64)

    def residuals(x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return x[:, :1] * torch.exp(x[:, 1:2] * t) + x[:, 2:3] - target

    observed = truth[:, :1] * torch.exp(truth[:, 1:2] * t) + truth[:, 2:3]
    start = torch.tensor([[1.0, 0.0, 0.0], [1.0, 0.0, 0.0]], dtype=torch.float64)
    masks = torch.tensor([[1.0, 1.0, 1.0], [1.0, 1.0, 0.0]], dtype=torch.float64)
    batch = lm.minimize(residuals, (observed,), start, masks, max_iterations=30, relative_tolerance=0.0)
    for row in range(2):
        alone = lm.minimize(residuals, (observed[row : row + 1],), start[row : row + 1], masks[row],
                            max_iterations=30, relative_tolerance=0.0)  # fmt: skip
        torch.testing.assert_close(batch.x[row : row + 1], alone.x, atol=1e-10, rtol=0)
    assert torch.equal(batch.x[1, 2], start[1, 2])


def test_levenberg_marquardt_leaves_a_row_with_nothing_free_alone_and_never_differentiates_it():
    t = torch.linspace(0, 2, 30, dtype=torch.float64)

    def residuals(x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return x[:, :1] * torch.exp(x[:, 1:2] * t) + x[:, 2:3] - target

    rows_seen = []

    def jacobian(x: torch.Tensor, free: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        rows_seen.append(len(x))
        grow = torch.exp(x[:, 1:2] * t)
        return torch.stack([grow, x[:, :1] * t * grow, torch.ones_like(grow)], -1)[..., free]

    observed = torch.stack([2.0 * torch.exp(-1.3 * t) + 0.5, 0.5 * torch.exp(0.7 * t) - 0.2])
    start = torch.tensor([[1.0, 0.0, 0.0], [1.0, 0.0, 0.0]], dtype=torch.float64)
    masks = torch.tensor([[1.0, 1.0, 1.0], [0.0, 0.0, 0.0]], dtype=torch.float64)
    result = lm.minimize(residuals, (observed,), start, masks, max_iterations=30, jacobian=jacobian)
    assert torch.equal(result.x[1], start[1]) and not torch.equal(result.x[0], start[0])
    assert set(rows_seen) == {1}  # only row 0 is ever differentiated
    start_loss = residuals(start, observed).square().sum(-1)
    assert bool(result.converged[1]) and float(result.loss[1]) == float(start_loss[1])
    # Nothing free anywhere: no iteration at all.
    idle = lm.minimize(residuals, (observed,), start, torch.zeros(3, dtype=torch.float64), jacobian=jacobian)
    assert idle.iterations == 0 and torch.equal(idle.x, start) and bool(idle.converged.all())


def test_levenberg_marquardt_differentiates_only_rows_that_moved():
    t = torch.linspace(0, 2, 30, dtype=torch.float64)
    truth = torch.tensor([[2.0, -1.3, 0.5], [0.5, 0.7, -0.2]], dtype=torch.float64)

    def curve(x: torch.Tensor) -> torch.Tensor:
        return x[:, :1] * torch.exp(x[:, 1:2] * t) + x[:, 2:3]

    def residuals(x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return curve(x) - target

    calls = []

    def jacobian(x: torch.Tensor, free: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        calls.append((x.clone(), target.clone()))
        grow = torch.exp(x[:, 1:2] * t)
        return torch.stack([grow, x[:, :1] * t * grow, torch.ones_like(grow)], -1)[..., free]

    observed = curve(truth)
    start = torch.tensor([[2.0, -1.3, 0.5], [1.0, 0.0, 0.0]], dtype=torch.float64)  # row 0 at its optimum
    mask = torch.ones(3, dtype=torch.float64)
    result = lm.minimize(residuals, (observed,), start, mask, max_iterations=40, relative_tolerance=0.0,
                         jacobian=jacobian)  # fmt: skip
    torch.testing.assert_close(result.x, truth, atol=1e-8, rtol=0)
    assert len(calls[0][0]) == 2
    # Row 0 never moves, so after the first call its Jacobian is never taken again, and
    # row 1 is never differentiated twice at the same point (its rejected steps reuse it).
    assert all(not torch.equal(target[0], observed[0]) for _, target in calls[1:])
    points = [x[-1] for x, _ in calls]
    assert len(points) > 3
    assert all(not torch.equal(a, b) for a, b in itertools.pairwise(points))


def test_damped_normal_equations_are_solved_in_batches_on_two_threads():
    # The size of the hands-face stage's batch (13 rows, 158 free columns): torch's
    # batched LU solve raised a RuntimeError there on two threads; a fit crashed with it.
    generator = torch.Generator().manual_seed(0)
    jacobian = torch.randn(13, 300, 158, generator=generator)
    system = jacobian.transpose(1, 2) @ jacobian + 1e-3 * torch.eye(158)
    right = torch.randn(13, 158, generator=generator)
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        solution = lm.solve_positive_definite(system, right)
    finally:
        torch.set_num_threads(threads)
    torch.testing.assert_close(system @ solution[..., None], right[..., None], atol=1e-3, rtol=1e-3)


def test_a_system_rounding_left_indefinite_is_still_solved():
    system = torch.tensor([[[2.0, 0.0], [0.0, 3.0]], [[1.0, 2.0], [2.0, 1.0]]], dtype=torch.float64)
    right = torch.tensor([[2.0, 3.0], [3.0, 3.0]], dtype=torch.float64)
    solution = lm.solve_positive_definite(system, right)
    torch.testing.assert_close(solution, torch.tensor([[1.0, 1.0], [1.0, 1.0]], dtype=torch.float64))


class _CountsThreads:
    """An objective (a quadratic per row) that records torch's thread count at each call."""

    def __init__(self) -> None:
        self.seen: set[int] = set()

    def residuals(self, x: torch.Tensor) -> torch.Tensor:
        self.seen.add(torch.get_num_threads())
        return x - 1.0

    def loss(self, x: torch.Tensor) -> torch.Tensor:
        return self.residuals(x).square().sum(-1)

    jacobian = None  # forward mode


def test_small_fits_run_on_one_thread_and_large_levenberg_marquardt_batches_on_all():
    """Each parallel region wakes torch's other threads: L-BFGS, and Levenberg-Marquardt
    below PARALLEL_ROWS rows, run on one thread; the process' count is set back after."""
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        cases = ((optimisers.BatchedLbfgs(), 200, {1}), (optimisers.LevenbergMarquardt(), 8, {1}),
                 (optimisers.LevenbergMarquardt(), optimisers.PARALLEL_ROWS, {2}))  # fmt: skip
        for optimiser, rows, expected in cases:
            objective = _CountsThreads()
            x = torch.zeros(rows, 3, dtype=torch.float64)
            result = optimiser.minimize(objective, (), x, torch.ones_like(x), 5, lambda *_: None)
            torch.testing.assert_close(result.x, torch.ones_like(x))
            assert objective.seen == expected
            assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
