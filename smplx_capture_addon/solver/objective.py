"""What a stage minimises: the SMPLify-X objective as residuals whose sum of squares it
is (so that L-BFGS and Levenberg-Marquardt minimise the same function), with their exact
derivatives in closed form (the Jacobian for Levenberg-Marquardt, the loss's gradient for
L-BFGS); and the camera stage's loss. A new term (a temporal one, say) is one more block
of residuals here, with its slopes in both.

A stage's per-row data, `rows`: detected (R, K, 2) pixels, confidence (R, K), focal (R,),
centre (R, 2), scale (R,) = NORMALISED_HEIGHT / image height, world_depth (R, D) the pose
model's depths of keypoint_groups.DEPTH_POINTS relative to its hips' midpoint (metres)
and world_depth_weights (R, D) (0 where it gave none; see inputs.prepare_world_depths).
Every row's residuals depend on its own inputs only, so a batch is many independent
problems.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor

from ..body_model import lbs
from ..body_model.model import BodyModel
from ..body_model.names import KEYPOINT_NAMES_WITH_CONTOUR, NUM_JOINTS
from . import camera, collision, priors
from .keypoint_groups import DEPTH_POINTS, FACE, HANDS, HEAD, HIPS, TORSO, present
from .learned_priors import gmm_residuals, vposer_residuals
from .options import FitOptions
from .packing import Packing
from .schedule import StageWeights


def part_weights(stage: StageWeights, count: int, device: torch.device) -> Tensor:
    """(K,) multiplier of each keypoint's confidence in this stage."""
    weights = torch.ones(count, device=device)
    weights[torch.as_tensor(present(HANDS, count), device=device)] = stage.hand_keypoints
    weights[torch.as_tensor(present(FACE, count), device=device)] = stage.face_keypoints
    return weights * stage.data


_DEPTH_POINTS, _HIPS = torch.as_tensor(DEPTH_POINTS), torch.as_tensor(HIPS)


def relative_depths(keypoints: Tensor) -> Tensor:
    """Camera-space keypoints (B, K, 3, ...) -> (B, D, ...) the depths of DEPTH_POINTS less
    the depth of the hips' midpoint (of their derivatives too, with trailing columns)."""
    hips = keypoints[:, _HIPS.to(keypoints.device), 2].mean(1, keepdim=True)
    return keypoints[:, _DEPTH_POINTS.to(keypoints.device), 2] - hips


def relative_depths_pullback(grad: Tensor, count: int) -> Tensor:
    """The transpose of `relative_depths` on the depths: d loss / d relative depths (B, D)
    -> d loss / d the keypoints' depths (B, count)."""
    depths = grad.new_zeros(len(grad), count)
    depths.index_add_(1, _DEPTH_POINTS.to(grad.device), grad)
    hips = _HIPS.to(grad.device)
    depths.index_add_(1, hips, (-grad.sum(1, keepdim=True) / len(hips)).expand(-1, len(hips)))
    return depths


class StageObjective:
    """The objective of one stage of the schedule (its part weights applied to the
    confidences): the robust data term, the world depth term (with a stage weight), the
    pose prior (the user's GMM or VPoser, else L2 about the relaxed pose), the bending,
    joint-limit, shape, expression, jaw and hand priors and the collision term.

    The world depth term pulls the depths of the limbs' points relative to the hips
    toward the pose model's 3D reading of them: from one photo the 2D keypoints hardly
    tell which limb points toward the camera, which the pose model guesses better.

    The L2 pose prior weighs each body_pose entry by the stage's weight times the entry's
    stiffness (priors.pose_prior_stiffness), in the schedule's `last` stage times
    FitOptions.last_stage_l2_pose_scale too; `released`: the stage's weight alone.
    """

    def __init__(
        self,
        model: BodyModel,
        packing: Packing,
        stage: StageWeights,
        options: FitOptions,
        limits: tuple[Tensor, Tensor],
        size: float,
        last: bool = False,
        released: bool = False,
    ) -> None:
        self.model, self.packing, self.stage, self.options = model, packing, stage, options
        self.limits, self.size = limits, size
        pose_weight: float | Tensor = stage.body_pose
        if options.gmm is None and packing.vposer is None:
            scale = options.last_stage_l2_pose_scale if last else 1.0
            stiffness = priors.pose_prior_stiffness(
                *limits, 0.0 if released else options.pose_stiffness_power
            )
            pose_weight = pose_weight * scale * stiffness
        self.pose_weight = pose_weight
        self.pose_mean = priors.relaxed_body_pose().to(limits[0])
        jaw_weights = torch.tensor(stage.jaw, dtype=limits[0].dtype, device=limits[0].device)
        # The residuals' weights: square roots of the loss weights.
        self.bending_weight = stage.bending**0.5
        self.limit_weight = options.joint_limit_weight**0.5
        self.collision_weight = stage.collision**0.5
        self.world_depth_weight = stage.world_depth
        # Stages that give the face landmarks no weight leave them out of the model's pass.
        self.weighs_face = stage.face_keypoints > 0
        self.keypoint_weights = part_weights(stage, len(KEYPOINT_NAMES_WITH_CONTOUR), limits[0].device)
        # The L2 priors on parameter blocks other than the body pose, with their weights.
        self.weighted = {"betas": stage.shape, "expression": stage.expression, "jaw_pose": jaw_weights,
                         "left_hand_pose": stage.hand_pose, "right_hand_pose": stage.hand_pose}  # fmt: skip
        self._prior_columns, self._weighted_slopes = self._prior_layout(jaw_weights)

    def _prior_layout(self, like: Tensor) -> tuple[Tensor, Tensor]:
        """Every prior residual but a GMM's depends on one coordinate of x: its column, in
        the order of `regularisers`; and the slopes of the L2 priors on blocks other than
        the body pose, in their order."""

        def columns(name: str) -> list[int]:
            return list(range(self.packing.block(name).start, self.packing.block(name).stop))

        body = columns("body_pose")
        prior_columns = torch.tensor([*body, *(body[i] for i in priors.BENDING_INDEX), *body,
                                      *(c for name in self.weighted for c in columns(name))],
                                     device=like.device)  # fmt: skip
        weights = {name: torch.as_tensor(weight, dtype=like.dtype, device=like.device)
                   for name, weight in self.weighted.items()}  # fmt: skip
        slopes = torch.cat([weight.expand(len(columns(name))) for name, weight in weights.items()])
        return prior_columns, slopes

    def _data_terms(
        self, keypoints: Tensor, detected: Tensor, confidence: Tensor, focal: Tensor, centre: Tensor,
        scale: Tensor, *_world_depth: Tensor,
    ) -> tuple[Tensor, Tensor, Tensor, Tensor, float]:  # fmt: skip
        """priors.keypoint_residuals' arguments for the model's keypoints (B, K', 3), K' <= K
        the first ones."""
        count = keypoints.shape[1]
        weights = confidence[:, :count] * self.keypoint_weights[:count]
        return camera.project(keypoints, focal, centre), detected[:, :count], weights, scale, self.options.rho

    def _world_depth_terms(self, keypoints: Tensor, *rows: Tensor) -> tuple[Tensor, Tensor, Tensor, float]:
        """priors.depth_residuals' arguments for the model's keypoints (B, K', 3)."""
        *_, world_depth, world_depth_weights = rows
        weights = self.world_depth_weight * world_depth_weights
        return relative_depths(keypoints), world_depth, weights, self.options.world_depth_rho

    def _pose_prior_residuals(self, x: Tensor, body_pose: Tensor) -> Tensor:
        """The body pose prior before the stage's weight: the user's GMM (max-mixture
        energy), else VPoser (L2 on the latent code the pose is decoded from), else L2
        around the relaxed pose. x (B, N); body_pose (B, 63) -> (B, R)."""
        if self.options.gmm is not None:
            return gmm_residuals(body_pose, self.options.gmm)
        if self.packing.vposer is not None:
            return vposer_residuals(self.packing.latent(x))
        return body_pose - self.pose_mean

    def regularisers(self, x: Tensor) -> Tensor:
        """The priors' residuals (B, R')."""
        p = self.packing.unpack(x)
        body_pose = p["body_pose"]
        parts = [
            self.pose_weight * self._pose_prior_residuals(x, body_pose),
            self.bending_weight * priors.bending_residuals(body_pose),
            self.limit_weight * priors.joint_limit_residuals(body_pose, *self.limits),
            *(weight * p[name] for name, weight in self.weighted.items()),
        ]
        return torch.cat(parts, dim=1)

    def _prior_slopes(self, x: Tensor) -> Tensor:
        """d regularisers / d x (B, R') with the L2 pose prior: each residual's slope in its
        one column (`_prior_columns`)."""
        body_pose = self.packing.unpack(x)["body_pose"]
        return torch.cat([
            self.pose_weight.expand_as(body_pose),
            self.bending_weight * priors.bending_slopes(body_pose),
            self.limit_weight * priors.joint_limit_slopes(body_pose, *self.limits),
            self._weighted_slopes.expand(len(x), -1),
        ], dim=1)  # fmt: skip

    def _prior_jacobian(self, x: Tensor, free: Tensor) -> Tensor:
        """d regularisers / d x[:, free] (B, R', n) with the L2 pose prior."""
        return self._prior_slopes(x)[..., None] * (self._prior_columns[:, None] == free)

    def residuals(self, x: Tensor, *rows: Tensor) -> Tensor:
        """x (B, N) -> (B, R)."""
        keypoints = self.model(
            vertices=False, face_landmarks=self.weighs_face, **self.packing.unpack(x)
        ).keypoints
        parts = [priors.keypoint_residuals(*self._data_terms(keypoints, *rows)), self.regularisers(x)]
        if self.world_depth_weight > 0:
            parts.append(priors.depth_residuals(*self._world_depth_terms(keypoints, *rows)))
        if self.stage.collision > 0:
            segments = collision.pair_segments(keypoints[:, :NUM_JOINTS])
            parts.append(self.collision_weight * collision.segment_residuals(segments, self.size))
        return torch.cat(parts, dim=1)

    def loss(self, x: Tensor, *rows: Tensor) -> Tensor:
        """Each row's loss (B,): the sum of its squared residuals."""
        return self.residuals(x, *rows).square().sum(-1)

    @property
    def gradient(self) -> Callable[..., tuple[Tensor, Tensor]] | None:
        """gradient(x (B, N), *rows) -> (loss (B,) as `loss`, d loss / d x (B, N)) in closed
        form; None with VPoser (automatic differentiation then)."""
        return self._closed_form_gradient if self.packing.vposer is None else None

    def _closed_form_gradient(self, x: Tensor, *rows: Tensor) -> tuple[Tensor, Tensor]:
        # The residuals as `residuals` forms them; their slopes pulled back to the keypoints,
        # then through the body model (model.keypoint_vjp) and, for the priors, to x.
        out, pull_back = self.model.keypoint_vjp(face_landmarks=self.weighs_face, **self.packing.unpack(x))
        keypoints = out.keypoints
        data = self._data_terms(keypoints, *rows)
        residuals = priors.keypoint_residuals(*data)
        pulls = 2 * residuals.view(*keypoints.shape[:2], 2) * priors.keypoint_residual_slopes(*data)
        keypoint_grad = camera.projection_pullback(keypoints, rows[2], pulls)  # (B, K, 3)
        prior = self.regularisers(x)
        parts = [residuals, prior]
        if self.world_depth_weight > 0:
            terms = self._world_depth_terms(keypoints, *rows)
            parts.append(priors.depth_residuals(*terms))
            depth_pulls = 2 * parts[-1] * priors.depth_residual_slopes(*terms)
            keypoint_grad[..., 2] += relative_depths_pullback(depth_pulls, keypoints.shape[1])
        if self.stage.collision > 0:
            segments = collision.pair_segments(keypoints[:, :NUM_JOINTS])
            overlaps, slopes = collision.segment_residuals_and_derivatives(segments, self.size)
            parts.append(self.collision_weight * overlaps)
            segment_pulls = (2 * self.collision_weight * parts[-1])[..., None, None] * slopes
            keypoint_grad[:, :NUM_JOINTS] += collision.pair_segments_pullback(segment_pulls)
        blocks = pull_back(keypoint_grad)
        grad = torch.cat([blocks[name] for name in self.packing.names], dim=1)
        if self.options.gmm is None:
            grad.index_add_(1, self._prior_columns, 2 * prior * self._prior_slopes(x))
        else:
            grad = grad + torch.func.vjp(self.regularisers, x)[1](2 * prior)[0]
        return torch.cat(parts, dim=1).square().sum(-1), grad

    @property
    def jacobian(self) -> Callable[..., Tensor] | None:
        """jacobian(x (B, N), free (n,) ascending columns, *rows) -> (B, R, n): the exact
        derivatives of the residuals; None with VPoser (forward-mode differentiation then)."""
        return self._closed_form_jacobian if self.packing.vposer is None else None

    def _closed_form_jacobian(self, x: Tensor, free: Tensor, *rows: Tensor) -> Tensor:
        # The keypoints' derivatives come from the body model in closed form; each data
        # residual depends on one keypoint coordinate, each collision residual on its
        # pair's segments and each prior residual (but a GMM's) on one coordinate of x.
        out, blocks = self.model.keypoint_jacobian(face_landmarks=self.weighs_face, **self.packing.unpack(x))

        def free_columns(derivatives: Tensor) -> Tensor:
            # Gathering copies the largest tensor here: skipped when every column is free.
            return derivatives if len(free) == x.shape[1] else derivatives[..., free]

        columns = free_columns(
            torch.cat([blocks[name] for name in self.packing.names], dim=-1)
        )  # (B, K, 3, n)
        slopes = priors.keypoint_residual_slopes(*self._data_terms(out.keypoints, *rows))  # (B, K, 2)
        per_keypoint = slopes[..., None] * camera.projection_jacobian(out.keypoints, rows[2])  # (B, K, 2, 3)
        if self.options.gmm is None:
            prior = self._prior_jacobian(x, free)
        else:
            prior = free_columns(backward_jacobian(self.regularisers, x))
        parts = [(per_keypoint @ columns).flatten(1, 2), prior]
        if self.world_depth_weight > 0:
            depth_slopes = priors.depth_residual_slopes(*self._world_depth_terms(out.keypoints, *rows))
            parts.append(depth_slopes[..., None] * relative_depths(columns))  # (B, D, n)
        if self.stage.collision > 0:
            segments = collision.pair_segments(out.keypoints[:, :NUM_JOINTS])
            per_segment = self.collision_weight * collision.segment_residual_derivatives(segments, self.size)
            per_joint = collision.joint_derivatives(per_segment)  # (B, P, 55, 3)
            parts.append(per_joint.flatten(2) @ columns[:, :NUM_JOINTS].flatten(1, 2))
        return torch.cat(parts, dim=1)


def backward_jacobian(function: Callable[[Tensor], Tensor], primal: Tensor) -> Tensor:
    """The derivatives of function(primal (B, N)) -> (B, R) by reverse mode, one backward
    pass per output column, every row at once: each row's outputs must depend on its
    own inputs only. -> (B, R, N)."""
    out, pullback = torch.func.vjp(function, primal)
    count = out.shape[1]
    unit = torch.eye(count, dtype=out.dtype, device=out.device)[:, None, :]
    (derivatives,) = torch.func.vmap(pullback)(unit.expand(count, *out.shape))
    return derivatives.movedim(0, 1)


class CameraObjective:
    """The camera stage's loss: the torso keypoints (and, without hips, the head's) of a
    body moved rigidly about its root joint, and the depth held near its estimate.

    Its rows: detected (R, P, 2), weights (R, P), points (R, P, 3) the keypoints of the
    unturned body about its root, root (R, 1, 3), depth (R,) estimate, focal (R,),
    centre (R, 2), scale (R,)."""

    def __init__(self, packing: Packing, depth_weight: float) -> None:
        self.packing, self.depth_weight = packing, depth_weight

    def loss(self, x: Tensor, detected: Tensor, weights: Tensor, points: Tensor, root: Tensor, depth: Tensor,
             focal: Tensor, centre: Tensor, scale: Tensor) -> Tensor:  # fmt: skip
        """Each row's loss (R,) from its own rows."""
        p = self.packing.unpack(x)
        turned = points @ lbs.axis_angle_to_matrix(p["global_orient"]).transpose(1, 2)
        projected = camera.project(turned + root + p["transl"][:, None], focal, centre)
        residual = (detected - projected) * scale[:, None, None]
        data = (weights[..., None] * residual).square().sum((1, 2))
        return data + self.depth_weight**2 * (p["transl"][:, 2] - depth).square()

    @staticmethod
    def rows(model: BodyModel, packing: Packing, x: Tensor, detected: Tensor, confidence: Tensor,
             depth: Tensor, focal: Tensor, centre: Tensor, scale: Tensor) -> tuple[Tensor, ...]:  # fmt: skip
        """The loss's rows for bodies x (R, N) and their keypoints detected (R, K, 2),
        confidence (R, K): the torso's keypoints, and without hips the head's, which then
        help to fix the orientation. The body moves rigidly about its root joint in this
        stage, so its keypoints are those of the unturned body, turned (one pose of the
        model instead of one per evaluation; the same numbers up to rounding)."""
        torso = torch.as_tensor(np.concatenate([TORSO, HEAD]), device=x.device)
        hips_seen = (confidence[:, torch.as_tensor(HIPS, device=x.device)] > 0).any(-1)
        use_head = torch.cat([torch.zeros(len(TORSO), device=x.device)[None].expand(len(x), -1),
                              (~hips_seen).to(x.dtype)[:, None].expand(-1, len(HEAD))], 1)  # fmt: skip
        weights = confidence[:, torso] * torch.where(
            torch.arange(len(torso), device=x.device) < len(TORSO), torch.ones_like(use_head), use_head
        )
        with torch.no_grad():
            unturned = model(vertices=False, **{**packing.unpack(x), "global_orient": None, "transl": None})
        root = unturned.joints[:, :1]
        return (
            detected[:, torso],
            weights,
            unturned.keypoints[:, torso] - root,
            root,
            depth,
            focal,
            centre,
            scale,
        )
