"""Fits that miss their keypoints, fitted again from other starts.

A fit that misses its body keypoints is lost in a wrong minimum (a body lying or bent
along the line of sight, facing or leaning the wrong way); which one the search falls
into can hinge on rounding, so other starts often find the right one, at a lower loss.
Only the keypoints detectors place where the model has them tell (reprojection.
TRUSTED_BODY): a right fit to detected keypoints misses the hips and the head's landmarks
too.

The other starts are fitted only up to where they are judged: against the first fit
after the last stage both ran alike (the body stages, before the limb hypotheses). The
best start that beats it there carries on through the later stages, the polish and the
limb retry (which mirrors the limbs too), and the lowest final loss wins. A restart
therefore costs four shortened fits and at most one finish.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import replace

import torch
from torch import Tensor

from .errors import FitError
from .fit_result import BatchFit

RESTART = "restart"  # the stage name the restart's time is recorded under

Refit = Callable[[Tensor, Tensor], BatchFit]  # (rows (R,), roll_offset (R,) radians) -> fits of those starts
CarryOn = Callable[[Tensor, dict[str, Tensor]], BatchFit]  # (rows (R,), parameters (R, ...)) -> finished fits


def restart_failed(
    fit: BatchFit,
    failed: Tensor,
    turns_degrees: tuple[float, ...],
    refit: Refit,
    carry_on: CarryOn | None = None,
    judged_after: str | None = None,
) -> BatchFit:
    """Fit again the people `failed` (B,) bool, from starts turned in the image plane by
    each of `turns_degrees`, and keep each person's lowest final loss.

    refit(rows, roll_offset) fits those people (rows of the batch) from those starts. When
    its fits take fewer branches than `fit`'s, `judged_after` names the last stage both ran
    alike (else: the end of their common run of stage names), and when its stages are not
    `fit`'s, carry_on(rows, params) finishes the starts that beat `fit` there, from their
    parameters."""
    if not turns_degrees or not bool(failed.any()):
        return fit
    people = torch.nonzero(failed).flatten()
    turns = fit.loss_per_stage.new_tensor([math.radians(t) for t in turns_degrees])
    started = time.perf_counter()
    try:
        again = refit(people.repeat_interleave(len(turns)), turns.repeat(len(people)))
    except FitError:  # a start that diverges: the first fit stands
        return fit
    compared = _judged_stage(fit, again, judged_after)
    losses = again.loss_per_stage[:, compared].view(len(people), -1)
    best = losses.argmin(1)
    ahead = losses.gather(1, best[:, None])[:, 0] < fit.loss_per_stage[people, compared]
    evaluations = fit.evaluations + again.evaluations
    if not bool(ahead.any()):
        return replace(fit, evaluations=evaluations, stage_seconds=_timed(fit, started))
    chosen = people[ahead]
    source = torch.nonzero(ahead).flatten() * len(turns) + best[ahead]
    candidates = _take(again, source)
    if carry_on is not None and _names(again) != _names(fit):
        try:
            finished = carry_on(chosen, candidates.params)
        except FitError:  # the first fit stands
            return replace(fit, evaluations=evaluations, stage_seconds=_timed(fit, started))
        evaluations += finished.evaluations
        candidates = _finished(candidates, finished, _names(fit))
    better = torch.nonzero(candidates.loss_per_stage[:, -1] < fit.loss_per_stage[chosen, -1]).flatten()
    turned = [turns_degrees[row % len(turns)] for row in source[better].tolist()]
    merged = _merged(fit, candidates, chosen[better], better, turned)
    return replace(merged, evaluations=evaluations, stage_seconds=_timed(fit, started))


def _judged_stage(first: BatchFit, again: BatchFit, name: str | None) -> int:
    """The index (into loss_per_stage) of the stage named `name` when both fits ran it at
    the same place, else the last of their common run of stages."""
    mine, theirs = _names(first), _names(again)
    if name in mine and name in theirs and mine.index(name) == theirs.index(name):
        return mine.index(name)
    return max(_common_run(mine, theirs) - 1, 0)


def _common_run(names: list[str], others: list[str]) -> int:
    """How many stage names the two lists share from the start."""
    shared = 0
    for a, b in zip(names, others, strict=False):
        if a != b:
            break
        shared += 1
    return shared


def _take(fit: BatchFit, rows: Tensor) -> BatchFit:
    """The fits of `rows` (R,) alone."""
    return BatchFit(
        params={name: value[rows] for name, value in fit.params.items()},
        full_pose=fit.full_pose[rows], keypoints=fit.keypoints[rows], projected=fit.projected[rows],
        loss_per_stage=fit.loss_per_stage[rows], stage_seconds=fit.stage_seconds,
        converged=fit.converged[rows], hypotheses=[fit.hypotheses[r] for r in rows.tolist()],
        evaluations=fit.evaluations,
    )  # fmt: skip


def _finished(begun: BatchFit, finished: BatchFit, names: list[str]) -> BatchFit:
    """`finished` (the carried-on fits of `begun`'s rows) with each row's orientation and
    limb choice from where it began, and its losses for the stages `names` (the first
    fit's): `begun`'s where it ran them alike, then `finished`'s last ones."""
    hypotheses = [replace(done, orientation=start.orientation, limbs=start.limbs)
                  for start, done in zip(begun.hypotheses, finished.hypotheses, strict=True)]  # fmt: skip
    shared = _common_run(names, _names(begun))
    rest = names[shared:]
    if _names(finished)[len(finished.stage_seconds) - len(rest) :] != rest:
        raise ValueError(f"The carried-on fits did not end with the stages {rest}.")
    losses = finished.loss_per_stage[:, finished.loss_per_stage.shape[1] - len(rest) :]
    return replace(finished, hypotheses=hypotheses,
                   loss_per_stage=torch.cat([begun.loss_per_stage[:, :shared], losses], 1))  # fmt: skip


def _merged(fit: BatchFit, again: BatchFit, people: Tensor, rows: Tensor, turns: list[float]) -> BatchFit:
    """`fit` with the people `people` (P,) replaced by `again`'s rows `rows` (P,), each
    marked with its restart's turn."""

    def merged(mine: Tensor, theirs: Tensor) -> Tensor:
        mine = mine.clone()
        mine[people] = theirs[rows]
        return mine

    hypotheses = list(fit.hypotheses)
    for person, row, turn in zip(people.tolist(), rows.tolist(), turns, strict=True):
        hypotheses[person] = replace(again.hypotheses[row], restart_turn_degrees=turn)
    return BatchFit(
        params={name: merged(value, again.params[name]) for name, value in fit.params.items()},
        full_pose=merged(fit.full_pose, again.full_pose),
        keypoints=merged(fit.keypoints, again.keypoints),
        projected=merged(fit.projected, again.projected),
        loss_per_stage=merged(fit.loss_per_stage, again.loss_per_stage),
        stage_seconds=list(fit.stage_seconds),
        converged=merged(fit.converged, again.converged),
        hypotheses=hypotheses,
        evaluations=fit.evaluations,
    )


def _names(fit: BatchFit) -> list[str]:
    return [name for name, _ in fit.stage_seconds]


def _timed(fit: BatchFit, started: float) -> list[tuple[str, float]]:
    return [*fit.stage_seconds, (RESTART, time.perf_counter() - started)]
