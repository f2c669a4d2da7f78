"""The staged schedule of SMPLify-X: which terms weigh how much in which stage.

The numbers are those of the reference implementation (vchoutas/smplify-x,
fit_single_frame defaults), used as the starting point: five stages that move from a
heavily regularised body fit to a loosely regularised fit of body, hands and face.
Weights enter the loss as in the reference: data, pose, shape, expression and hand
weights squared, the bending weight as is, the jaw weight per axis inside the square.
"""

from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True)
class StageWeights:
    name: str
    body_pose: float  # L2 body pose prior (in place of VPoser / GMM when none is given)
    shape: float
    expression: float
    jaw: tuple[float, float, float]  # per axis
    hand_pose: float  # L2 on the hand PCA coefficients
    hand_keypoints: float  # multiplies hand keypoint confidences
    face_keypoints: float  # multiplies face keypoint confidences
    collision: float
    max_iterations: int
    data: float = 1.0
    # The pull of the keypoints' depths relative to the hips toward the pose model's 3D
    # reading of them (objective.StageObjective), per metre; squared in the loss like `data`.
    world_depth: float = 0.0

    @property
    def bending(self) -> float:
        # The reference ties the elbow/knee bending prior to the pose prior weight.
        return 3.17 * self.body_pose


REFERENCE_STAGES: tuple[StageWeights, ...] = (
    StageWeights("body-1", 404.0, 100.0, 100.0, (4.04e3, 4.04e4, 4.04e4), 404.0, 0.0, 0.0, 0.0, 30),
    StageWeights("body-2", 404.0, 50.0, 50.0, (4.04e3, 4.04e4, 4.04e4), 404.0, 0.0, 0.0, 0.0, 30),
    StageWeights("body-3", 57.4, 10.0, 10.0, (574.0, 5740.0, 5740.0), 57.4, 0.0, 0.0, 0.0, 30),
    StageWeights("hands", 4.78, 5.0, 5.0, (47.8, 478.0, 478.0), 4.78, 0.1, 0.0, 0.01, 40),
    StageWeights("hands-face", 4.78, 5.0, 5.0, (47.8, 478.0, 478.0), 4.78, 2.0, 2.0, 1.0, 60),
)


# The world depth term's weight in each stage of the reference schedule (the reference
# has no such term), chosen on the rendered benchmark's training split (docs/solver_notes.md).
WORLD_DEPTH_WEIGHTS = (100.0, 100.0, 100.0, 100.0, 100.0)


def default_stages(collision: bool = True, iteration_scale: float = 1.0) -> tuple[StageWeights, ...]:
    """The reference schedule with the world depth term (WORLD_DEPTH_WEIGHTS); without the
    collision term when `collision` is False and with every stage's iteration budget
    scaled by `iteration_scale`."""
    return tuple(
        replace(
            stage,
            collision=stage.collision if collision else 0.0,
            max_iterations=max(1, round(stage.max_iterations * iteration_scale)),
            world_depth=weight,
        )
        for stage, weight in zip(REFERENCE_STAGES, WORLD_DEPTH_WEIGHTS, strict=True)
    )
