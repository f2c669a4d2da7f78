"""Every setting of the staged fit, with its default. The measurements behind the
defaults are in docs/solver_notes.md."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from .learned_priors import GmmPrior, VPoserDecoder
from .optimisers import BatchedLbfgs, Optimiser
from .schedule import StageWeights, default_stages

MAX_RETRY_ROUNDS = 2


@dataclass(frozen=True)
class FitOptions:
    stages: tuple[StageWeights, ...] = field(default_factory=default_stages)
    rho: float = 100.0  # Geman-McClure scale, normalised pixels
    # Geman-McClure scale of the world depth term (StageWeights.world_depth), metres.
    world_depth_rho: float = 0.4
    camera_iterations: int = 30
    depth_weight: float = 100.0  # camera stage: holds the depth near its estimate
    joint_limit_weight: float = 1.0e4  # per rad^2 beyond a joint's range
    side_view_threshold: float = 25.0  # shoulders closer than this (normalised px): try both ways
    # The optimiser of the L-BFGS stages (the camera stage and all but the schedule's last).
    lbfgs: Optimiser = field(default_factory=BatchedLbfgs)
    # The schedule's last stage is solved by this many Levenberg-Marquardt iterations
    # instead of its L-BFGS budget (0: L-BFGS, as the reference): LM converges there in few.
    last_stage_lm_iterations: int = 10
    # Levenberg-Marquardt iterations on the last stage's objective after it.
    polish_iterations: int = 10
    # Then each person's polished fit is mirrored limb by limb and turned a little
    # (variants.retry_variants), every variant gets this many LM iterations, and the lowest
    # loss wins (0: no retry).
    limb_retry_iterations: int = 10
    # Only people whose polished fit misses its trusted body keypoints by more than this
    # (normalised px) beyond its typical miss (reprojection.body_miss_beyond_typical_px)
    # are retried; the retry and the settle leave the others as they are. A wrong limb
    # shows as body keypoints missed beyond the detector's noise; where none is, the retry
    # mostly found the same minimum again, or a lower-loss wrong one (None: everyone).
    limb_retry_above_px: float | None = 0.5
    # The people whose retry lowered their loss are retried again from the new fit, up to
    # this many rounds in all: a fit mended at one limb can be wrong at another, but on
    # rendered photos a second round did not pay for its time.
    limb_retry_rounds: int = 1
    # Then the retry's variants close to their person's best settle for this many more LM
    # iterations (0: the retry chooses): the right variant often ranks low until it settles.
    settle_iterations: int = 10
    # The L2 pose prior (no GMM or VPoser given) weighs this many times the reference's
    # weight from the schedule's last stage on: the reference's weight is for VPoser's code.
    last_stage_l2_pose_scale: float = 2.0
    # Then fits within release_below_px of their seen keypoints on average (normalised px:
    # near-exact keypoints) get this many LM iterations at the reference's weight, so the
    # data has the last word; on noisier keypoints the stiffer prior is the better judge.
    release_iterations: int = 5
    release_below_px: float = 1.5
    # The L2 pose prior weighs each body_pose entry by priors.pose_prior_stiffness at this
    # power, holding joints that turn little (collarbones, vertebrae, toes) nearer the
    # relaxed pose (0: every entry alike).
    pose_stiffness_power: float = 3.0
    # People whose fit misses its seen trusted body keypoints (reprojection.TRUSTED_BODY:
    # not the hips or the head's landmarks, which detectors define unlike the model) by
    # more than this (normalised px on average) are fitted again from starts turned in the
    # image plane by each of restart_turns degrees; the lowest loss wins (no turns: never).
    # Such a fit is lost in a wrong minimum, and which one can hinge on rounding.
    restart_above_px: float = 5.0
    restart_turns: tuple[float, ...] = (-40.0, -20.0, 20.0, 40.0)
    # Keypoints beyond the image by more than this fraction of its long side are the
    # detector's guesses (legs below a portrait's frame) and are not fitted; a little
    # margin keeps a foot on the frame's edge.
    outside_margin: float = 0.02
    # The shape (betas) stays as the start gives it: a video's frames share the shape fitted once.
    hold_shape: bool = False
    hypotheses: bool = True  # also try the tilt mirror of the camera stage's orientation
    limb_hypotheses: bool = True  # also try the limbs mirrored in depth after `choose_after`
    choose_after: str = "body-3"  # stage after which each person's best hypothesis goes on
    # The fit ends after this stage of the schedule, with no polish, retry or release (None:
    # it runs them all): the restart's starts stop where they are judged.
    end_after: str | None = None
    # Optional pose priors from the user's files (see learned_priors); None: the L2 prior.
    # With VPoser the body pose is decode(z) and z the unknown, as in the reference (the
    # limb depth hypotheses, which edit the pose itself, are then not tried).
    gmm: GmmPrior | None = None
    vposer: VPoserDecoder | None = None

    def __post_init__(self) -> None:
        if not 0 <= self.limb_retry_rounds <= MAX_RETRY_ROUNDS:
            raise ValueError(f"limb_retry_rounds must lie in 0..{MAX_RETRY_ROUNDS}")
        if self.end_after is not None and self.end_after not in {stage.name for stage in self.stages}:
            raise ValueError(f"end_after names no stage of the schedule: {self.end_after!r}")


def warm_start_options(options: FitOptions | None = None) -> FitOptions:
    """`options` (the defaults when None) for a fit that starts from a near fit (the
    previous video frame, or the fit an artist refines): no search for other minima (no
    orientation or limb hypotheses, retries or restarts) and of the schedule only its last
    stage, after the camera stage, with the polish and the release."""
    options = options or FitOptions()
    return replace(options, stages=options.stages[-1:], hypotheses=False, limb_hypotheses=False,
                   limb_retry_iterations=0, restart_turns=())  # fmt: skip


def restart_options(options: FitOptions) -> FitOptions:
    """`options` for the restart's other starts: the schedule with its orientation
    hypotheses up to `choose_after`, where they are judged (see restart)."""
    # A VPoser fit cannot carry on from parameters (its unknown is VPoser's code): whole starts.
    end_after = options.choose_after if options.vposer is None else None
    return replace(options, limb_hypotheses=False, limb_retry_iterations=0, restart_turns=(),
                   end_after=end_after)  # fmt: skip


def carry_on_options(options: FitOptions) -> FitOptions:
    """`options` for a restart's start that beat the first fit: from its parameters, the
    schedule's stages after `choose_after` and the polish, then the limb retry and the
    release as the first fit had them."""
    names = [stage.name for stage in options.stages]
    later = options.stages[names.index(options.choose_after) + 1 :]
    return replace(options, stages=later, hypotheses=False, restart_turns=())


def without_world_depth(options: FitOptions) -> FitOptions:
    """`options` with no stage weighing the world depth term: for people the pose model
    gave no depths."""
    return replace(options, stages=tuple(replace(stage, world_depth=0.0) for stage in options.stages))
