"""The stages of a fit, as records, and the loop that runs them.

A `Stage` names what it minimises (its objective), which parameter blocks it frees, its
iteration budget and its optimiser, and what happens to the rows after it: each person's
best row goes on (`KeepBest`), or its rows close to the best (`KeepWithin`), and rows may
branch into variants (`Branch`, `Orient`). `plan_stages` lays out the SMPLify-X plan:

- the camera stage (global orientation and translation only, on the torso, with the
  depth held near its estimate), after which each person's rows take their orientation
  hypothesis (the camera stage's answer, its tilt mirror, and for side views both turned
  around);
- the reference's five stages (see `schedule`), each a batched L-BFGS run but the last,
  which Levenberg-Marquardt solves; after `FitOptions.choose_after` each person's best
  row goes on and branches into its limbs mirrored in depth (`variants.limb_variants`),
  those close to the best after LIMB_STAGE go on;
- a polish of the last stage's objective, after which the best row branches into the
  limb retry's variants (`variants.retry_variants`); each variant gets a few
  Levenberg-Marquardt iterations, those close to the best settle further and the lowest
  loss wins; people whose loss that lowered are retried once more;
- the release: fits that lie on their keypoints within a pixel or so get a few last
  iterations at the reference's pose prior weight, so the data has the last word.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace

import torch
from torch import Tensor

from ..body_model.model import BodyModel
from ..errors import Cancelled
from .errors import FitError
from .hypotheses import (
    LIMBS,
    ORIENTATION,
    ORIENTATIONS,
    RETRY,
    BranchPoint,
    Rows,
    apply_orientations,
    best_rows,
    rows_within,
)
from .lbfgs import LbfgsResult
from .objective import CameraObjective, StageObjective
from .optimisers import LevenbergMarquardt, Optimiser
from .options import FitOptions
from .packing import FACE_BLOCKS, HAND_BLOCKS, Packing, row_mask
from .reprojection import body_miss_beyond_typical_px, rows_projections, rows_reprojection_px
from .schedule import StageWeights
from .variants import Variant, apply_variants, limb_variants, retry_variants, without_fixed, witnessed

Progress = Callable[[str, float, str], None]

CAMERA, POLISH, LIMB_RETRY, SETTLE, RELEASE = "camera", "polish", "limb-retry", "settle", "release"
LIMB_STAGE = "hands"  # the stage after which the limb variants close to the best go on
LIMB_KEEP_RATIO = 2.0  # the hands stage often ranks the right variant second or third
SETTLE_KEEP_RATIO = 2.0  # the retry's variants within this of the best settle further
# A retry that lowered a person's loss by less than this found the same minimum again (a
# variant often settles back onto it, a hair lower): no further round for that person.
RETRY_AGAIN_GAIN = 0.01


@dataclass(frozen=True)
class FitContext:
    """What the stages of one fit share: `people` in the batch, and `held` (N,) 0 on the
    columns of joints held fixed, 1 elsewhere (None: none held)."""

    model: BodyModel
    packing: Packing
    people: int
    held: Tensor | None


@dataclass(frozen=True)
class Orient:
    """Each row takes its orientation hypothesis, `kind` (R,) TURNED | MIRRORED flags, from
    its person's first row `first` (R,) (see hypotheses.apply_orientations)."""

    kind: Tensor
    first: Tensor

    def apply(self, rows: Rows, context: FitContext) -> Rows:
        rows.x = apply_orientations(rows.x, self.kind, self.first, context.packing)
        return rows


@dataclass(frozen=True)
class KeepBest:
    """Each person's lowest-loss row goes on."""

    def apply(self, rows: Rows, context: FitContext) -> Rows:
        if len(rows.x) == context.people:
            return rows
        return rows.take(best_rows(rows.losses[-1], rows.person_of, context.people))


@dataclass(frozen=True)
class KeepWithin:
    """The rows within `ratio` of their person's lowest loss go on."""

    ratio: float

    def apply(self, rows: Rows, context: FitContext) -> Rows:
        if len(rows.x) == context.people:
            return rows
        return rows.take(rows_within(rows.losses[-1], rows.person_of, context.people, self.ratio))


@dataclass(frozen=True)
class Branch:
    """Each person's one row goes on with its `variants` beside it, those its keypoints
    can tell apart (variants.witnessed); their numbers (1..) are recorded at branch point
    `point`. With `again_since` (a stage's index), only the people whose loss dropped by
    RETRY_AGAIN_GAIN since that stage get variants. With `only_above_px`, only the people
    whose fit misses its trusted body keypoints by more than that beyond its typical miss
    (reprojection.body_miss_beyond_typical_px) get variants; the rows of the others are
    marked still (`Rows.still`)."""

    point: int
    variants: tuple[Variant, ...]
    again_since: int | None = None
    only_above_px: float | None = None

    def apply(self, rows: Rows, context: FitContext) -> Rows:
        people = context.people
        best = rows.x
        variants = apply_variants(context.model, context.packing, best, self.variants)
        count = 1 + len(variants)
        kept = torch.ones(people, count, dtype=torch.bool, device=best.device)
        kept[:, 1:] = witnessed(self.variants, rows.data[1])
        if self.again_since is not None:
            before = rows.losses[self.again_since]
            kept[:, 1:] &= (rows.losses[-1] < (1.0 - RETRY_AGAIN_GAIN) * before)[:, None]
        if self.only_above_px is not None:
            projections = rows_projections(context.model, context.packing, best, rows.data)
            missed = body_miss_beyond_typical_px(*projections) > self.only_above_px
            kept[:, 1:] &= missed[:, None]
            rows.still = ~missed
        rows = rows.take(torch.arange(people, device=best.device)[:, None].expand(-1, count)[kept])
        rows.x = torch.stack([best, *variants], 1)[kept]
        rows.choices[:, self.point] = torch.arange(count, device=best.device).expand(people, -1)[kept]
        return rows


AfterStage = Orient | KeepBest | KeepWithin | Branch


@dataclass(frozen=True)
class Stage:
    """One optimisation over every row. `data`: the objective's rows when they are not
    the rows' keypoint data (the camera stage's); `only_within_px`: rows whose fits lie
    farther from their keypoints (normalised px) are left as they are; `leaves_still`:
    so are the rows marked still (`Rows.still`)."""

    name: str
    objective: StageObjective | CameraObjective
    free: frozenset[str]
    iterations: int
    optimiser: Optimiser
    after: tuple[AfterStage, ...] = ()
    data: tuple[Tensor, ...] | None = None
    only_within_px: float | None = None
    leaves_still: bool = False


@dataclass(frozen=True)
class Plan:
    stages: list[Stage]
    branch_points: tuple[BranchPoint, ...]


def _free_blocks(weights: StageWeights) -> frozenset[str]:
    free = {"betas", "global_orient", "body_pose", "transl"}
    if weights.hand_keypoints > 0:
        free |= HAND_BLOCKS
    if weights.face_keypoints > 0:
        free |= FACE_BLOCKS
    return frozenset(free)


def _schedule_stages(
    context: FitContext, options: FitOptions, limits: tuple[Tensor, Tensor], size: float, limbs: Branch | None
) -> list[Stage]:
    """The reference's stages, the last one by Levenberg-Marquardt, then the polish."""
    stages = []
    for number, weights in enumerate(options.stages, start=1):
        last = number == len(options.stages)
        objective = StageObjective(context.model, context.packing, weights, options, limits, size, last)
        optimiser, iterations = options.lbfgs, weights.max_iterations
        if last and options.last_stage_lm_iterations > 0:
            optimiser, iterations = LevenbergMarquardt(), options.last_stage_lm_iterations
        after: tuple[AfterStage, ...] = ()
        if weights.name == options.choose_after:
            after = (KeepBest(), limbs) if limbs is not None else (KeepBest(),)
        elif weights.name == LIMB_STAGE:
            after = (KeepWithin(LIMB_KEEP_RATIO),)
        stages.append(Stage(weights.name, objective, _free_blocks(weights), iterations, optimiser, after))
    if options.polish_iterations > 0:
        stages.append(replace(stages[-1], name=POLISH, iterations=options.polish_iterations,
                              optimiser=LevenbergMarquardt(), after=()))  # fmt: skip
    return stages


def _add_retry_rounds(stages: list[Stage], points: list[BranchPoint], options: FitOptions,
                      variants: tuple[Variant, ...]) -> None:  # fmt: skip
    """Each round: the last stage's best row branches into `variants`, which the retry
    and the settle (Levenberg-Marquardt on the last stage's objective) bring down; a
    later round only for the people the round before it changed."""
    labels = (None, *(v.label for v in variants))
    round_start = None
    for round_ in range(options.limb_retry_rounds):
        suffix = "" if round_ == 0 else f"-{round_ + 1}"
        gate = options.limb_retry_above_px if round_ == 0 else None  # later rounds: only those moved
        branch = Branch(len(points), variants, again_since=round_start, only_above_px=gate)
        points.append(BranchPoint(RETRY, labels))
        round_start = len(stages) - 1
        stages[-1] = replace(stages[-1], after=(KeepBest(), branch))
        retry = replace(stages[-1], name=LIMB_RETRY + suffix, iterations=options.limb_retry_iterations,
                        optimiser=LevenbergMarquardt(), after=(KeepWithin(SETTLE_KEEP_RATIO),),
                        leaves_still=True)  # fmt: skip
        stages.append(retry)
        if options.settle_iterations > 0:
            stages.append(
                replace(retry, name=SETTLE + suffix, iterations=options.settle_iterations, after=())
            )


def plan_stages(
    context: FitContext,
    options: FitOptions,
    camera_rows: tuple[Tensor, ...],
    orient: Orient,
    limits: tuple[Tensor, Tensor],
    size: float,
    fixed_joints: set[int],
) -> Plan:
    """The stages of a fit (see the module docstring), up to `options.end_after` when it
    names a stage. Variants that would move one of `fixed_joints` (joint indices) are not
    tried."""
    points = [BranchPoint(ORIENTATION, ORIENTATIONS)]
    camera = Stage(CAMERA, CameraObjective(context.packing, options.depth_weight),
                   frozenset({"global_orient", "transl"}), options.camera_iterations, options.lbfgs,
                   after=(orient,), data=camera_rows)  # fmt: skip
    edits_pose = options.limb_hypotheses and context.packing.vposer is None
    limbs = None
    if edits_pose:
        variants = without_fixed(limb_variants(), fixed_joints)
        limbs = Branch(len(points), variants)
        points.append(BranchPoint(LIMBS, (None, *(v.label for v in variants))))
    stages = [camera, *_schedule_stages(context, options, limits, size, limbs)]
    ends_early = options.end_after is not None
    if ends_early:
        stages = stages[: [stage.name for stage in stages].index(options.end_after) + 1]
    elif edits_pose and options.limb_retry_iterations > 0:
        _add_retry_rounds(stages, points, options, without_fixed(retry_variants(), fixed_joints))
    # Each person's best row is its fit: no rows kept beside it, no variants branched off.
    stages[-1] = replace(stages[-1], after=(KeepBest(),))
    if ends_early:
        return Plan(stages, tuple(points))
    if options.release_iterations > 0 and options.gmm is None and context.packing.vposer is None:
        released = StageObjective(context.model, context.packing, options.stages[-1], options, limits, size,
                                  released=True)  # fmt: skip
        stages.append(Stage(RELEASE, released, stages[-1].free, options.release_iterations,
                            LevenbergMarquardt(), only_within_px=options.release_below_px))  # fmt: skip
    return Plan(stages, tuple(points))


class Reporter:
    """Progress and cancel for a run of stages: `progress(stage, fraction, message)` is
    told each iteration; `cancel()` is polled there, and True raises Cancelled."""

    def __init__(self, progress: Progress | None, cancel: Callable[[], bool] | None) -> None:
        self.progress, self.cancel = progress, cancel

    def callback(self, name: str, start: int, total: int) -> Callable[[int, Tensor | None], None]:
        def report(iteration: int, loss: Tensor | None) -> None:
            if self.cancel is not None and self.cancel():
                raise Cancelled("The fit was cancelled.")
            if self.progress is not None:
                message = f"{name}: starting" if loss is None else (
                    f"{name}: iteration {iteration}, loss {float(loss.mean()):.1f}")  # fmt: skip
                self.progress(name, (start + iteration) / total, message)

        return report


def _still_rows(stage: Stage, rows: Rows) -> Tensor | None:
    """(R,) the rows `stage` leaves as they are because they are marked still; None: none."""
    return rows.still if stage.leaves_still else None


def run_stage(stage: Stage, rows: Rows, context: FitContext, report: Callable) -> tuple[LbfgsResult, Tensor]:
    """Minimise `stage` over every row -> (the optimiser's result, the mask (R, N) of the
    coordinates it was free to move)."""
    mask = row_mask(context.packing, stage.free, rows.data[1])
    if context.held is not None:
        mask = mask * context.held
    if stage.only_within_px is not None:
        near = rows_reprojection_px(context.model, context.packing, rows.x, rows.data) < stage.only_within_px
        mask = mask * near[:, None]
    still = _still_rows(stage, rows)
    if still is not None:
        mask = mask * ~still[:, None]
    data = stage.data if stage.data is not None else rows.data
    result = stage.optimiser.minimize(stage.objective, data, rows.x, mask, stage.iterations, report)
    if not torch.isfinite(result.x).all() or not torch.isfinite(result.loss).all():
        raise FitError(f"The fit diverged in stage '{stage.name}' (non-finite values); nothing was written.")
    return result, mask


def run_stages(stages: list[Stage], rows: Rows, context: FitContext,
               reporter: Reporter) -> tuple[Rows, list[tuple[str, float]], int]:  # fmt: skip
    """Run `stages` in order from `rows` -> (the final rows, (name, seconds) per stage,
    evaluations of the objectives)."""
    total = sum(stage.iterations for stage in stages)
    done, seconds, evaluations = 0, [], 0
    for stage in stages:
        started = time.perf_counter()
        report = reporter.callback(stage.name, done, total)
        report(0, None)
        result, mask = run_stage(stage, rows, context, report)
        rows.x = result.x
        rows.converged = torch.where(mask.any(1), result.converged, rows.converged)  # nothing free: as it was
        still = _still_rows(stage, rows)
        # A still row keeps its loss: the same objective (the polish's) at the same x.
        rows.losses.append(result.loss if still is None else torch.where(still, rows.losses[-1], result.loss))
        evaluations += result.evaluations
        seconds.append((stage.name, time.perf_counter() - started))
        done += stage.iterations
        for step in stage.after:
            rows = step.apply(rows, context)
    return rows, seconds, evaluations
