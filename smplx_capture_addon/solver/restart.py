"""Fits that miss their keypoints, fitted again from other starts.

A fit that misses its body keypoints is lost in a wrong minimum (a body lying or bent
along the line of sight, facing or leaning the wrong way); which one the search falls
into can hinge on rounding, so other starts often find the right one, at a lower loss.
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


def restart_failed(
    fit: BatchFit,
    failed: Tensor,
    turns_degrees: tuple[float, ...],
    refit: Callable[[Tensor, Tensor], BatchFit],
) -> BatchFit:
    """Fit again the people `failed` (B,) bool, from starts turned in the image plane by
    each of `turns_degrees`, and keep each person's lowest final loss. refit(rows (R,),
    roll_offset (R,) radians) fits those people (rows of the batch) from those starts."""
    if not turns_degrees or not bool(failed.any()):
        return fit
    people = torch.nonzero(failed).flatten()
    turns = fit.loss_per_stage.new_tensor([math.radians(t) for t in turns_degrees])
    rows = people.repeat_interleave(len(turns))

    started = time.perf_counter()
    try:
        again = refit(rows, turns.repeat(len(people)))
    except FitError:  # a start that diverges: the first fit stands
        return fit
    candidates = torch.cat(
        [fit.loss_per_stage[people, -1:], again.loss_per_stage[:, -1].view(len(people), -1)], 1
    )
    best = candidates.argmin(1)
    better = torch.nonzero(best > 0).flatten()
    chosen, source = people[better], (better * len(turns) + best[better] - 1)

    def merged(mine: Tensor, theirs: Tensor) -> Tensor:
        mine = mine.clone()
        mine[chosen] = theirs[source]
        return mine

    hypotheses = list(fit.hypotheses)
    for person, row in zip(chosen.tolist(), source.tolist(), strict=True):
        hypotheses[person] = replace(
            again.hypotheses[row], restart_turn_degrees=turns_degrees[row % len(turns)]
        )
    return BatchFit(
        params={name: merged(value, again.params[name]) for name, value in fit.params.items()},
        full_pose=merged(fit.full_pose, again.full_pose),
        keypoints=merged(fit.keypoints, again.keypoints),
        projected=merged(fit.projected, again.projected),
        loss_per_stage=merged(fit.loss_per_stage, again.loss_per_stage),
        stage_seconds=[*fit.stage_seconds, (RESTART, time.perf_counter() - started)],
        converged=merged(fit.converged, again.converged),
        hypotheses=hypotheses,
        evaluations=fit.evaluations + again.evaluations,
    )
