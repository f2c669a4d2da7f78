"""What a fit of a batch returns (the result file's people are made from it)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from torch import Tensor

from .hypotheses import Hypothesis


@dataclass
class BatchFit:
    """params: the model's parameters (B, ...) (hands as PCA coefficients when the model
    uses PCA); full_pose (B, 55, 3) with hand means; keypoints (B, K, 3) camera space;
    projected (B, K, 2) pixels; loss_per_stage (B, stages + 1) with the camera stage first;
    stage_seconds: (name, seconds) per stage; converged (B,); hypotheses: which
    alternative each person's fit came from; evaluations of the objectives."""

    params: dict[str, Tensor]
    full_pose: Tensor
    keypoints: Tensor
    projected: Tensor
    loss_per_stage: Tensor
    stage_seconds: list[tuple[str, float]]
    converged: Tensor
    hypotheses: list[Hypothesis]
    evaluations: int

    def take(self, people: Sequence[int]) -> BatchFit:
        """The fits of `people` (indices into the batch), in that order."""
        rows = list(people)
        return replace(
            self,
            params={name: value[rows] for name, value in self.params.items()},
            full_pose=self.full_pose[rows],
            keypoints=self.keypoints[rows],
            projected=self.projected[rows],
            loss_per_stage=self.loss_per_stage[rows],
            converged=self.converged[rows],
            hypotheses=[self.hypotheses[row] for row in rows],
        )
