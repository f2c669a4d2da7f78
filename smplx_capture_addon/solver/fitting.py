"""The staged SMPLify-X fit of a batch of people to their 2D keypoints.

Input per person: keypoints (K, 3) = (x, y, confidence) in pixels in the order of
`names.KEYPOINT_NAMES_WITH_CONTOUR` (confidence 0 where absent), the focal length and
the image size. Everything else is a pure function of those; no state survives a call.

Stages: the camera stage (global orientation and translation only, on the torso, with
the depth held near its similar-triangles estimate, or nearer where a limb seen at its
full length says so, the body leaning as its torso does in the image), then the
reference's five stages (see `schedule`), each a batched L-BFGS run (`lbfgs`) but the
last, which Levenberg-Marquardt solves (`lm`), then a polish of its objective, also
Levenberg-Marquardt.

Hypotheses, as extra rows of the same batch: after the camera stage, the tilt mirror of
its orientation (a flat torso leaning towards or away from the camera looks the same)
and, for side views, both turned around (the reference's flip); the best per person by
loss after `choose_after` goes on. Then each limb (and both arms, both legs) mirrored
in depth two ways, at its root or whole; those close to the best after LIMB_STAGE go on,
and the polish chooses. Last, LIMB_RETRY mirrors the limbs of each person's polished fit
once more (each forearm and shin too) and turns it a little as a whole (_body_turns),
and lets Levenberg-Marquardt settle every variant; those close to the best settle
further (SETTLE) and the lowest loss wins; the people whose loss that lowered are
retried once more from their new fit. The last stage and those after it weigh the
L2 pose prior more than the reference; for fits that lie on their keypoints within a
pixel or so (near-exact keypoints), a few last steps at its weight (RELEASE) let the
data have the last word. A person whose fit still misses its body keypoints is fitted
again from starts turned in the image plane, and the lowest loss wins (RESTART).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

from ..body_model import lbs
from ..body_model.model import BodyModel
from ..body_model.names import (
    JOINT_NAMES,
    JOINT_PARENTS,
    KEYPOINT_NAMES,
    KEYPOINT_NAMES_WITH_CONTOUR,
    NUM_BODY_JOINTS,
    NUM_JOINTS,
    keypoint_index,
)
from ..errors import Cancelled, CaptureError
from . import camera, collision, lbfgs, lm, priors
from .learned_priors import GmmPrior, VPoserDecoder, gmm_residuals, vposer_residuals
from .schedule import StageWeights, default_stages

Progress = Callable[[str, float, str], None]


class FitError(CaptureError):
    """Input that cannot be fitted, or a fit that went wrong."""


def _group(names: list[str]) -> np.ndarray:
    return np.array([keypoint_index(n) for n in names], dtype=np.int64)


_BODY_NAMES = [*KEYPOINT_NAMES[1:22], "nose", "right_eye", "left_eye", "right_ear", "left_ear",
               "left_big_toe", "left_small_toe", "left_heel",
               "right_big_toe", "right_small_toe", "right_heel",
               "pelvis"]  # fmt: skip
BODY = _group(_BODY_NAMES)
HANDS = _group([n for n in KEYPOINT_NAMES_WITH_CONTOUR if n.startswith(("left_", "right_"))
                and any(f in n for f in ("thumb", "index", "middle", "ring", "pinky"))])  # fmt: skip
FACE = _group([n for n in KEYPOINT_NAMES_WITH_CONTOUR if n.startswith("face_")]
              + ["jaw", "left_eye_smplhf", "right_eye_smplhf"])  # fmt: skip
TORSO = _group(["left_shoulder", "right_shoulder", "left_hip", "right_hip"])
HEAD = _group(["nose", "left_eye", "right_eye", "left_ear", "right_ear"])
TORSO_PAIRS = ((keypoint_index("left_shoulder"), keypoint_index("left_hip")),
               (keypoint_index("right_shoulder"), keypoint_index("right_hip")))  # fmt: skip
# Segments of fixed length in any pose (bones, the hips, the shoulders nearly): each
# bounds how far the body can be (camera.segment_depth_bound). The torso's estimate alone
# put 5% of the benchmark people 1.6-6 times too far (people lying or bent along the line
# of sight; 76 mm mean PA-V2V there); with the bound, 98% start within 0.78-1.10 of their
# depth. 384 people each on seeds 0-47 and 48-95, paired: -0.52 mm (95% interval 2.67)
# and -3.38 (3.38), people over 60 mm 40 -> 34 on the second.
RIGID_SEGMENTS = tuple((keypoint_index(a), keypoint_index(b)) for a, b in (
    ("left_shoulder", "right_shoulder"), ("left_hip", "right_hip"),
    ("left_shoulder", "left_hip"), ("right_shoulder", "right_hip"),
    ("left_shoulder", "left_elbow"), ("left_elbow", "left_wrist"),
    ("right_shoulder", "right_elbow"), ("right_elbow", "right_wrist"),
    ("left_hip", "left_knee"), ("left_knee", "left_ankle"),
    ("right_hip", "right_knee"), ("right_knee", "right_ankle")))  # fmt: skip
SHOULDERS = (keypoint_index("left_shoulder"), keypoint_index("right_shoulder"))
HIPS = (keypoint_index("left_hip"), keypoint_index("right_hip"))
MIN_BODY_KEYPOINTS = 5
SIDE_VIEW_RATIO = 0.4  # shoulder width / torso length in 2D below which both facings are tried
OUTSIDE_MARGIN = 0.25  # keypoints may lie this fraction of the image size outside it
NORMALISED_HEIGHT = 1000.0  # weights and rho are in pixels of a 1000-pixel-high image


@dataclass(frozen=True)
class FitOptions:
    stages: tuple[StageWeights, ...] = field(default_factory=default_stages)
    rho: float = 100.0  # Geman-McClure scale, normalised pixels
    camera_iterations: int = 30
    depth_weight: float = 100.0  # camera stage: holds the depth near its estimate
    joint_limit_weight: float = 1.0e4  # per rad^2 beyond a joint's range
    side_view_threshold: float = 25.0  # shoulders closer than this (normalised px): try both ways
    history: int = 60  # curvature pairs: about half the unknowns (measured: 10 -> 60 cuts 20% error)
    relative_tolerance: float = 1e-6
    # The last stage of the schedule is solved by Levenberg-Marquardt for this many
    # iterations instead of its L-BFGS budget (0: L-BFGS, as the reference). Its L-BFGS
    # run is far from converged after 60 iterations; 10 LM iterations cost about as much.
    last_stage_lm_iterations: int = 10
    # Levenberg-Marquardt iterations on the last stage's objective after it
    polish_iterations: int = 10
    # After the polish, each person's best fit is mirrored limb by limb once more (the
    # variants of _limb_flips) and every variant gets this many LM iterations; the lowest
    # loss wins (0: no retry). Measured over 192 benchmark people, paired: 15 instead of
    # 10 lowers the mean PA-V2V by 1.5 mm (standard error 0.8), with polish_iterations
    # 20 by 2.8 mm (1.1), for 0.3 and 0.6 s more per person alone: past the 2 s target
    # (measured again with the faster Jacobian: both together -1.1 mm (1.1)). Without the
    # retry: +4.1 mm (1.3); without any limb variants: +48 mm.
    limb_retry_iterations: int = 10
    # Then the people whose retry (and settle) lowered their loss by over RETRY_AGAIN_GAIN
    # are retried once more from their new fit: a fit mended at one limb is often wrong
    # at another, a second flip away (at most MAX_RETRY_ROUNDS). 384 benchmark people
    # each on seeds 0-47 and 48-95, paired against one round: mean PA-V2V -0.40 mm
    # (95% interval 1.08) and -0.87 (0.91), people over 60 mm 20 -> 14 and 32 -> 29, for
    # 16-20% more time batched. Retrying everyone again gains the same (-0.37, -0.80)
    # for 52% more time: a fit the first retry left alone has no new variants to try.
    limb_retry_rounds: int = 2
    # Then the retry's variants within SETTLE_KEEP_RATIO of their person's best get this
    # many more LM iterations (stage SETTLE) and the lowest loss wins (0: the retry
    # chooses). Ten iterations leave many a right variant short of its minimum, behind a
    # wrong one that was already close to its own (see SETTLE_KEEP_RATIO).
    settle_iterations: int = 10
    # The L2 pose prior (no GMM or VPoser given) weighs this many times the reference's
    # weight in the last stage and the LM stages after it, which share its objective: the
    # reference's weight is for VPoser's latent code, not for axis-angles. Over 384
    # benchmark people (seeds 0-47, batched), paired against 1.0: mean
    # PA-V2V -1.7 mm (standard error 1.1; -1.2 on seeds 0-23, -2.3 on 24-47), median 26.4 ->
    # 25.5, over 60 mm 40 -> 37, 155 people better by over 1 mm, 108 worse; 2.0:
    # PA-V2V -2.9 mm (standard error 1.2), median 26.4 -> 24.6, over 60 mm 40 -> 32, but
    # alone it pulls exact fits off by more than test_converges_on_exact_projections allows
    # (face landmarks 1.16 mm median; the neck and head left at 1.0: 1.15): RELEASE
    # gives the data the last word. 2.0 with the release against 1.5, the same 384 people
    # paired: mean PA-V2V 33.13 -> 32.15 mm (-1.0, standard error 0.9; seeds 0-23 -1.2,
    # 24-47 -0.8), median 26.4 -> 25.8, people over 60 mm 37 -> 30. Against 2.0, both
    # with the release: 2.5 +1.3 mm (1.0), over 60 mm 30 -> 37; 3.0 +1.9 mm (1.0), 39.
    last_stage_l2_pose_scale: float = 2.0
    # Then each person's chosen fit gets this many LM iterations of the last stage's
    # objective at the reference's weight (stage RELEASE; only with the L2 prior, which
    # alone is scaled). The stronger prior chooses among the variants; the release lets
    # exact keypoints pull the fit back onto them (the three exact people of the tests:
    # face landmarks 1.18 -> 0.95 mm mean PA-MPJPE, PA-V2V 5.2 -> 3.9 mm). Only fits
    # within release_below_px of their seen keypoints on average (all of them, in
    # normalised px) are released: the exact test people lie 0.7-1.0 px off before it,
    # the benchmark's (2 px of noise) 2.0-2.5 px. On noisy keypoints the release undoes
    # what pose_stiffness_power chose: LM from the truth ends 3.6 mm PA-V2V farther off
    # under the release's objective than under the stiff one (48 people). Against
    # releasing everyone, 384 people each on seeds 0-47, 48-95, 96-143 and 144-191,
    # paired: PA-V2V -1.23 mm (95% interval 0.49), -1.15 (0.64), -2.22 (0.83), -1.79
    # (0.60). 0: none.
    release_iterations: int = 5
    release_below_px: float = 1.5
    # The L2 pose prior holds joints that turn little nearer the relaxed pose: each
    # body_pose entry's weight is multiplied by priors.pose_prior_stiffness at this power
    # (0: every entry alike). 384 benchmark people (seeds 0-47, batched), paired against
    # 0: mean PA-V2V 32.08 -> 29.58 mm (-2.49, 95% interval 1.42), median 25.8 -> 23.3,
    # over 60 mm 29 -> 25. Held out (seeds 48-95): mean 34.72 -> 34.87 (+0.16, 3.63: the
    # mean there is ruled by the people over 60 mm, 42 -> 41), median 25.6 -> 23.2, 254
    # people better, 104 worse. RELEASE weighs every entry alike: with the stiffness there
    # too, seeds 0-47 gain 1.2 mm more (power 1: -1.59, 2: -1.98, 3: -3.66, 4: +1.80, more
    # limbs in wrong basins), but exact projections no longer converge (see the tests).
    # Power 3 without it on the collars and feet: +0.07. The benchmark's truth holds
    # collars and toes at zero, so part of the gain is the benchmark's; anatomically they
    # do turn little.
    pose_stiffness_power: float = 3.0
    # People whose seen body keypoints the fit misses by more than this many normalised
    # pixels on average are fitted again from starts turned in the image plane by each of
    # restart_turns degrees, and the lowest final loss wins (see _restart_failed; no
    # turns: never). With 2 px of noise a fit in the right minimum misses them by 2-3 px;
    # the 4-5 benchmark people in 384 above 5 px are off by 100-250 mm PA-V2V. 384 people
    # each on seeds 0-47 and 48-95, paired against no restart: -1.82 mm (95% interval
    # 1.65) and -1.11 (1.34), 5 and 4 people better, none worse, 3-5% more time batched.
    restart_above_px: float = 5.0
    restart_turns: tuple[float, ...] = (-40.0, -20.0, 20.0, 40.0)
    hypotheses: bool = True  # also try the tilt mirror of the camera stage's orientation
    limb_hypotheses: bool = True  # also try the limbs mirrored in depth after `choose_after`
    choose_after: str = "body-3"  # stage after which each person's best hypothesis goes on
    # Optional pose priors from the user's files (see learned_priors); None: the L2 prior.
    # With VPoser the body pose is decode(z) and z the unknown, as in the reference (the
    # limb depth hypotheses, which edit the pose itself, are then not tried).
    gmm: GmmPrior | None = None
    vposer: VPoserDecoder | None = None
    # "batched": lbfgs.minimize, per-person line search; "strong-wolfe": the reference's
    # torch.optim.LBFGS, kept for the benchmark's comparison.
    optimiser: str = "batched"

    def __post_init__(self) -> None:
        if not 0 <= self.limb_retry_rounds <= MAX_RETRY_ROUNDS:
            raise ValueError(f"limb_retry_rounds must lie in 0..{MAX_RETRY_ROUNDS}")


@dataclass
class BatchFit:
    """params: the model's parameters (B, ...) (hands as PCA coefficients when the model
    uses PCA); full_pose (B, 55, 3) with hand means; keypoints (B, K, 3) camera space;
    projected (B, K, 2) pixels; loss_per_stage (B, stages + 1) with the camera stage first;
    stage_seconds: (name, seconds) per stage; converged (B,); hypothesis (B,): the
    hypothesis that won, bits 0-1 the orientation (0: the camera stage's, TURNED: turned
    around about the body's vertical, MIRRORED: tilt mirrored), bits 2-5 the limb
    variant after `choose_after`, bits 6-11 that of LIMB_RETRY (0: none, else see
    _limb_flips, then _body_turns), bits 12-17 that of its second round and bits 18-20
    the start of RESTART (0: the first fit, else 1 + the index in
    FitOptions.restart_turns); evaluations of the objective."""

    params: dict[str, Tensor]
    full_pose: Tensor
    keypoints: Tensor
    projected: Tensor
    loss_per_stage: Tensor
    stage_seconds: list[tuple[str, float]]
    converged: Tensor
    hypothesis: Tensor
    evaluations: int


def check_keypoints(keypoints: np.ndarray, image_size: np.ndarray) -> None:
    """Refuse input that cannot be fitted, before any optimisation, with a message that
    says what is wrong. keypoints (B, K, 3); image_size (B, 2) width, height."""
    if (
        keypoints.ndim != 3
        or keypoints.shape[2] != 3
        or keypoints.shape[1] not in (len(KEYPOINT_NAMES), len(KEYPOINT_NAMES_WITH_CONTOUR))
    ):
        raise FitError(
            f"Keypoints have shape {tuple(keypoints.shape)}; expected (people, {len(KEYPOINT_NAMES)} or "
            f"{len(KEYPOINT_NAMES_WITH_CONTOUR)}, 3) as (x, y, confidence) per body-model keypoint."
        )
    if keypoints.shape[0] == 0:
        raise FitError("No person to fit: the keypoint input holds no person.")
    names = KEYPOINT_NAMES_WITH_CONTOUR
    for person, points in enumerate(keypoints):
        bad = ~np.isfinite(points).all(axis=1)
        if bad.any():
            raise FitError(
                f"Person {person}: keypoint '{names[int(np.argmax(bad))]}' has a NaN or infinite value "
                f"({int(bad.sum())} such keypoints): the keypoint file is corrupt."
            )
        confidence = points[:, 2]
        if (confidence < 0).any() or (confidence > 1.0 + 1e-6).any():
            raise FitError(f"Person {person}: confidences must lie in [0, 1].")
        width, height = image_size[person]
        seen = confidence > 0
        outside = seen & _outside(points[:, :2], width, height)
        # Detectors guess a few points beyond the frame (legs of a portrait): those are
        # ignored. Most points outside means coordinates of another image or not pixels.
        if outside.sum() > 0.5 * seen.sum():
            index = int(np.argmax(outside))
            raise FitError(
                f"Person {person}: {int(outside.sum())} of {int(seen.sum())} keypoints lie outside the "
                f"{width:.0f}x{height:.0f} image (e.g. '{names[index]}' at ({points[index, 0]:.0f}, "
                f"{points[index, 1]:.0f})): the keypoints belong to another image size or are not in pixels."
            )
        confidence = np.where(outside, 0.0, confidence)
        body_seen = int((confidence[BODY] > 0).sum())
        if body_seen < MIN_BODY_KEYPOINTS:
            raise FitError(
                f"Person {person}: only {body_seen} body keypoints were found; at least {MIN_BODY_KEYPOINTS} "
                "(e.g. shoulders, elbows, hips) are needed to fit a body. Use a photo showing more of "
                "the person."
            )
        body_points = points[BODY][confidence[BODY] > 0, :2]
        if np.sqrt(((body_points - body_points.mean(0)) ** 2).sum(1).mean()) < 2.0:
            raise FitError(f"Person {person}: the body keypoints all lie on one spot; nothing to fit.")


def _outside(points: np.ndarray | Tensor, width: float, height: float) -> np.ndarray | Tensor:
    """(..., 2) pixels -> (...) bool: beyond the image by more than OUTSIDE_MARGIN."""
    margin = OUTSIDE_MARGIN * max(float(width), float(height))
    x, y = points[..., 0], points[..., 1]
    return (x < -margin) | (x > width + margin) | (y < -margin) | (y > height + margin)


def part_weights(stage: StageWeights, count: int, device: torch.device) -> Tensor:
    """(K,) multiplier of each keypoint's confidence in this stage."""
    weights = torch.ones(count, device=device)
    weights[torch.as_tensor(HANDS[HANDS < count], device=device)] = stage.hand_keypoints
    weights[torch.as_tensor(FACE[FACE < count], device=device)] = stage.face_keypoints
    return weights * stage.data


LATENT = "pose_embedding"


class _Packing:
    """Flattens the model's parameter dict into one (B, N) tensor for L-BFGS and back.
    The eyes are not fitted (no keypoint measures them) and stay at zero."""

    def __init__(self, model: BodyModel, vposer: VPoserDecoder | None = None) -> None:
        zeros = model.zeros(1)
        self.names = [n for n in zeros if n not in ("leye_pose", "reye_pose")]
        self.sizes = [zeros[n].shape[1] for n in self.names]
        self.vposer = vposer
        if vposer is not None:  # VPoser's code, the unknown the body pose is decoded from
            self.names.append(LATENT)
            self.sizes.append(vposer.latent_dim)
        self.offsets = np.cumsum([0, *self.sizes])

    def pack(self, params: dict[str, Tensor]) -> Tensor:
        return torch.cat([params[n] for n in self.names], dim=1)

    def unpack(self, x: Tensor) -> dict[str, Tensor]:
        """The body model's parameters; with VPoser the body pose is decoded from the
        latent code (`latent(x)`), and x's own body pose block is unused."""
        params = {
            n: x[:, a:b]
            for n, a, b in zip(self.names, self.offsets[:-1], self.offsets[1:], strict=True)
            if n != LATENT
        }
        if self.vposer is not None:
            params["body_pose"] = self.vposer.decode(self.latent(x))
        return params

    def latent(self, x: Tensor) -> Tensor:
        return x[:, self.block(LATENT)]

    def block(self, name: str) -> slice:
        index = self.names.index(name)
        return slice(int(self.offsets[index]), int(self.offsets[index + 1]))

    def mask(self, free: set[str], like: Tensor) -> Tensor:
        mask = torch.zeros(self.offsets[-1], dtype=like.dtype, device=like.device)
        for name, a, b in zip(self.names, self.offsets[:-1], self.offsets[1:], strict=True):
            decoded = self.vposer is not None and name == "body_pose"
            if (name in free and not decoded) or (name == LATENT and "body_pose" in free):
                mask[a:b] = 1.0
        return mask


def _initial_parameters(
    model: BodyModel,
    detected: Tensor,
    confidence: Tensor,
    focal: Tensor,
    centre: Tensor,
    facing_away: Tensor,
    roll: Tensor,
    vposer: VPoserDecoder | None = None,
) -> dict[str, Tensor]:
    """The body facing the camera (or away), leaning as its torso does in the image, at
    the depth where its torso (else its visible body) has the detected size, centred on
    the detections. In the relaxed pose, or with VPoser its zero code's pose."""
    batch = detected.shape[0]
    params = model.zeros(batch)
    params["global_orient"] = camera.initial_orientation(facing_away, roll).to(detected)
    if vposer is not None:
        params[LATENT] = detected.new_zeros(batch, vposer.latent_dim)
        params["body_pose"] = vposer.decode(params[LATENT])
    else:
        params["body_pose"] = priors.relaxed_body_pose().to(detected).expand(batch, -1).clone()
    rest = model(
        vertices=False, global_orient=params["global_orient"], body_pose=params["body_pose"]
    ).keypoints
    body = torch.as_tensor(BODY, device=detected.device)
    seen = confidence[:, body] > 0
    weight = seen.to(detected.dtype)[..., None]

    def centroid(points: Tensor) -> Tensor:
        return (points[:, body] * weight).sum(1) / weight.sum(1)

    pairs = torch.as_tensor(TORSO_PAIRS, device=detected.device)  # (2, 2)
    pair_seen = (confidence[:, pairs] > 0).all(-1)
    torso_depth = camera.similar_triangles_depth(rest[:, pairs], detected[:, pairs], pair_seen, focal)
    # Fallback without a torso segment: spread of the visible body keypoints.
    rest_c, det_c = centroid(rest), centroid(detected)
    spread3d = torch.stack([rest[:, body], rest_c[:, None].expand(-1, len(BODY), -1)], 2)
    spread2d = torch.stack([detected[:, body], det_c[:, None].expand(-1, len(BODY), -1)], 2)
    spread_depth = camera.similar_triangles_depth(spread3d, spread2d, seen, focal)
    depth = torch.where(pair_seen.any(-1), torso_depth, spread_depth)
    # A torso turned towards the camera looks short, as if far away: the limbs then
    # tell the depth (people lying along the line of sight, bent over, seen from above).
    segments = torch.as_tensor(RIGID_SEGMENTS, device=detected.device)
    segments_seen = (confidence[:, segments] > 0).all(-1)
    depth = torch.minimum(
        depth, camera.segment_depth_bound(rest[:, segments], detected[:, segments], segments_seen, focal)
    )
    transl = torch.stack(
        [
            (det_c[:, 0] - centre[:, 0]) * depth / focal - rest_c[:, 0],
            (det_c[:, 1] - centre[:, 1]) * depth / focal - rest_c[:, 1],
            depth - rest_c[:, 2],
        ],
        dim=1,
    )
    params["transl"] = transl
    return params


def _mean_seen(points: Tensor, seen: Tensor) -> tuple[Tensor, Tensor]:
    """Mean of the seen points. points (B, P, 2); seen (B, P) -> (B, 2), any seen (B,)."""
    weight = seen.to(points.dtype)[..., None]
    return (points * weight).sum(1) / weight.sum(1).clamp(min=1), seen.any(-1)


def _image_up(detected: Tensor, confidence: Tensor) -> Tensor:
    """Direction (B, 2) from the hips to the shoulders in the image (else from the
    shoulders to the head, else straight up): the person's up on screen."""
    shoulders, shoulders_seen = _mean_seen(detected[:, list(SHOULDERS)], confidence[:, list(SHOULDERS)] > 0)
    hips, hips_seen = _mean_seen(detected[:, list(HIPS)], confidence[:, list(HIPS)] > 0)
    head, head_seen = _mean_seen(detected[:, HEAD], confidence[:, HEAD] > 0)
    up = torch.zeros_like(shoulders)
    up[:, 1] = -1.0
    up = torch.where((shoulders_seen & head_seen)[:, None], head - shoulders, up)
    up = torch.where((shoulders_seen & hips_seen)[:, None], shoulders - hips, up)
    return up / up.norm(dim=-1, keepdim=True).clamp(min=1e-6)


def _facing(
    detected: Tensor, confidence: Tensor, scale: Tensor, threshold: float
) -> tuple[Tensor, Tensor, Tensor]:
    """(facing_away, side_view, roll), each (B,): which way the person faces, whether it
    is seen from the side, and its lean in the image plane (radians, see
    camera.initial_orientation). Facing the camera, a person's left shoulder (else hip)
    is on the right of its up direction on screen.

    Side view: the shoulders closer than `threshold` normalised pixels (the reference's
    test) or, with the torso seen, closer than SIDE_VIEW_RATIO of its length: the
    reference's fixed 25 px misses people seen 15-30 degrees off the side, who then end
    up facing the wrong way.
    """
    up = _image_up(detected, confidence)
    facing_away = torch.zeros(detected.shape[0], dtype=torch.bool, device=detected.device)
    side_view = torch.ones_like(facing_away)
    for left, right in (HIPS, SHOULDERS):  # shoulders last: they decide when both are seen
        both = (confidence[:, left] > 0) & (confidence[:, right] > 0)
        across = detected[:, left] - detected[:, right]
        facing_away = torch.where(both, up[:, 0] * across[:, 1] - up[:, 1] * across[:, 0] < 0, facing_away)
        distance = (detected[:, left] - detected[:, right]).norm(dim=-1) * scale
        side_view = torch.where(both, distance < threshold, side_view)
    pairs = torch.as_tensor(TORSO_PAIRS, device=detected.device)
    torso_seen = (confidence[:, pairs] > 0).all(-1)  # (B, 2)
    torso = ((detected[:, pairs[:, 0]] - detected[:, pairs[:, 1]]).norm(dim=-1) * torso_seen).sum(-1)
    torso = torso / torso_seen.sum(-1).clamp(min=1)
    shoulders = (detected[:, SHOULDERS[0]] - detected[:, SHOULDERS[1]]).norm(dim=-1)
    narrow = (
        torso_seen.any(-1)
        & (confidence[:, list(SHOULDERS)] > 0).all(-1)
        & (shoulders < SIDE_VIEW_RATIO * torso)
    )
    roll = torch.atan2(up[:, 0], -up[:, 1])
    return facing_away, side_view | narrow, roll


def fit_keypoints(
    model: BodyModel,
    keypoints: Tensor,
    focal: Tensor,
    image_size: Tensor,
    options: FitOptions | None = None,
    progress: Progress | None = None,
    cancel: Callable[[], bool] | None = None,
) -> BatchFit:
    """Fit every person of the batch.

    keypoints (B, K, 3) pixels and confidence, K = 127 or 144 (with the face contour);
    focal (B,) pixels; image_size (B, 2) width, height. The principal point is the image
    centre. Tensors may live on any device; the model must be on the same one.
    Raises FitError for unusable input or a diverged fit, Cancelled when `cancel()`
    returns True.
    """
    options = options or FitOptions()
    given, sizes = keypoints.detach().cpu().numpy(), image_size.detach().cpu().numpy()
    check_keypoints(given, sizes)
    # On the host: a loop over people on the GPU would wait for it once per person.
    outside = np.stack([_outside(points[:, :2], *size) for points, size in zip(given, sizes, strict=True)])
    device, dtype = model.full_template.device, model.full_template.dtype
    count = len(KEYPOINT_NAMES_WITH_CONTOUR) if model.face_contour else len(KEYPOINT_NAMES)
    keypoints = keypoints.to(device=device, dtype=dtype)
    outside = torch.as_tensor(outside, device=device)
    keypoints = torch.cat([keypoints[..., :2], torch.where(outside, 0.0, keypoints[..., 2])[..., None]], -1)
    if keypoints.shape[1] < count:
        keypoints = torch.cat(
            [keypoints, keypoints.new_zeros(keypoints.shape[0], count - keypoints.shape[1], 3)], 1
        )
    keypoints = keypoints[:, :count]
    focal = focal.to(device=device, dtype=dtype)
    image_size = image_size.to(device=device, dtype=dtype)
    fit = _fit_from(model, keypoints, focal, image_size, options, progress, cancel)

    def refit(rows: Tensor, roll_offset: Tensor) -> BatchFit:
        def report(stage: str, fraction: float, message: str) -> None:
            if progress is not None:  # past the first fit's end: the bar stays full
                progress(RESTART, 1.0, f"{RESTART}: {message}")

        return _fit_from(model, keypoints[rows], focal[rows], image_size[rows], options, report, cancel,
                         roll_offset)  # fmt: skip

    missed = body_reprojection_px(fit, keypoints, image_size) > options.restart_above_px
    fit = _restart_failed(fit, missed, options.restart_turns, refit)
    if progress is not None:
        progress("done", 1.0, "fit finished")
    _check_plausible(fit.params, fit.keypoints)
    return fit


def _fit_from(
    model: BodyModel,
    keypoints: Tensor,
    focal: Tensor,
    image_size: Tensor,
    options: FitOptions,
    progress: Progress | None,
    cancel: Callable[[], bool] | None,
    roll_offset: Tensor | None = None,
) -> BatchFit:
    """The staged fit of every person from the initial guess of its keypoints, turned
    in the image plane by `roll_offset` (B,) radians when given. keypoints (B, K, 3) with
    the confidence of points far outside the image zeroed; focal (B,); image_size (B, 2),
    all on the model's device."""
    device, dtype = model.full_template.device, model.full_template.dtype
    people = keypoints.shape[0]
    scale = NORMALISED_HEIGHT / image_size[:, 1]
    facing_away, side_view, roll = _facing(
        keypoints[..., :2], keypoints[..., 2], scale, options.side_view_threshold
    )
    if roll_offset is not None:
        roll = roll + roll_offset
    # Orientation hypotheses, one row each, solved in the same batch: the camera
    # stage's answer (kind 0) and, from it, its tilt mirror (2, see camera.tilt_mirrored)
    # for everyone, and for side views both turned around (1 and 3). The best row of
    # each person after stage `options.choose_after` goes on.
    kinds = [HYPOTHESES] * people if options.hypotheses else [(0,)] * people
    kinds = [k + tuple(h | TURNED for h in k) if side else k
             for side, k in zip(side_view.tolist(), kinds, strict=True)]  # fmt: skip
    person_of = torch.tensor([p for p, k in enumerate(kinds) for _ in k], device=device)
    kind = torch.tensor([h for k in kinds for h in k], device=device)
    # Row of each row's kind-0 sibling (the camera stage result the hypothesis starts from).
    first = torch.tensor([0, *np.cumsum([len(k) for k in kinds])[:-1]], device=device)[person_of]
    rows = person_of
    detected, confidence = keypoints[rows, :, :2], keypoints[rows, :, 2]
    focal, image_size, scale = focal[rows], image_size[rows], scale[rows]
    facing_away, roll = facing_away[rows], roll[rows]
    centre = image_size / 2

    vposer = options.vposer.to(device=device, dtype=dtype) if options.vposer is not None else None
    packing = _Packing(model, vposer)
    params = _initial_parameters(model, detected, confidence, focal, centre, facing_away, roll, vposer)
    x = packing.pack(params)
    limits = tuple(t.to(device=device, dtype=dtype) for t in priors.joint_limit_table())
    size = collision.body_size(model(vertices=False).joints[0].detach())
    depth_estimate = params["transl"][:, 2].clone()

    # (name, objective or loss, free parameter blocks, iteration budget, optimiser)
    stages: list[tuple[str, _Objective | Callable[..., Tensor], set[str], int, str]] = []
    rows_data = (detected, confidence, focal, centre, scale)
    # The camera stage fits the torso, as the reference; without hips the head helps
    # to fix the orientation.
    torso = torch.as_tensor(np.concatenate([TORSO, HEAD]), device=device)
    hips_seen = (confidence[:, torch.as_tensor(HIPS, device=device)] > 0).any(-1)
    use_head = torch.cat([torch.zeros(len(TORSO), device=device)[None].expand(len(rows), -1),
                          (~hips_seen).to(dtype)[:, None].expand(-1, len(HEAD))], 1)  # fmt: skip
    camera_weights = confidence[:, torso] * torch.where(
        torch.arange(len(torso), device=device) < len(TORSO), torch.ones_like(use_head), use_head
    )

    # The camera stage moves the body rigidly about its root joint: its torso keypoints
    # are those of the unturned body, turned. (One pose of the model instead of one per
    # evaluation; the same numbers up to rounding.)
    with torch.no_grad():
        unturned = model(vertices=False, **{**packing.unpack(x), "global_orient": None, "transl": None})
    root = unturned.joints[:, :1]
    torso_points = unturned.keypoints[:, torso] - root

    camera_rows = (detected[:, torso], camera_weights, torso_points, root, depth_estimate, focal, centre,
                   scale)  # fmt: skip

    def camera_loss(x: Tensor, detected: Tensor, weights: Tensor, points: Tensor, root: Tensor, depth: Tensor,
                    focal: Tensor, centre: Tensor, scale: Tensor) -> Tensor:  # fmt: skip
        """Each row's loss (R,) from its own camera_rows."""
        p = packing.unpack(x)
        turned = points @ lbs.axis_angle_to_matrix(p["global_orient"]).transpose(1, 2)
        projected = camera.project(turned + root + p["transl"][:, None], focal, centre)
        residual = (detected - projected) * scale[:, None, None]
        data = (weights[..., None] * residual).square().sum((1, 2))
        return data + options.depth_weight**2 * (p["transl"][:, 2] - depth).square()

    stages.append(("camera", camera_loss, {"global_orient", "transl"}, options.camera_iterations, "loss"))
    for number, stage in enumerate(options.stages, start=1):
        free = {"betas", "global_orient", "body_pose", "transl"}
        if stage.hand_keypoints > 0:
            free |= HAND_BLOCKS
        if stage.face_keypoints > 0:
            free |= FACE_BLOCKS
        last = number == len(options.stages)
        objective = _stage_objective(model, packing, stage, options, limits, size, last)
        if last and options.last_stage_lm_iterations > 0:
            stages.append((stage.name, objective, free, options.last_stage_lm_iterations, "lm"))
        else:
            stages.append((stage.name, objective, free, stage.max_iterations, "lbfgs"))
    if options.polish_iterations > 0:
        stages.append(("polish", objective, free, options.polish_iterations, "lm"))
    limbs = options.limb_hypotheses and vposer is None
    # Stages after which each person's best row goes on, and those whose winners are then
    # mirrored limb by limb (see _limb_flips; the variant lands in `kind` at that shift).
    flip_after = {options.choose_after: VARIANT_SHIFT} if limbs else {}
    # The retry rounds' names; the stages after which only the people whose previous
    # round lowered their loss by over RETRY_AGAIN_GAIN are retried, with the index of the
    # stage that round started from; the index of each round's starting stage.
    retries, again_after, starts = [], {}, []
    for round_ in range(options.limb_retry_rounds if limbs and options.limb_retry_iterations > 0 else 0):
        suffix = "" if round_ == 0 else f"-{round_ + 1}"
        flip_after[stages[-1][0]] = RETRY_SHIFT + round_ * RETRY_BITS
        starts.append(len(stages) - 1)
        if round_ > 0:
            again_after[stages[-1][0]] = starts[-2]
        retries.append(LIMB_RETRY + suffix)
        stages.append((LIMB_RETRY + suffix, objective, free, options.limb_retry_iterations, "lm"))
        if options.settle_iterations > 0:
            stages.append((SETTLE + suffix, objective, free, options.settle_iterations, "lm"))
    pick_best = {options.choose_after, stages[-1][0], *flip_after}
    if options.release_iterations > 0 and options.gmm is None and vposer is None:
        released = _stage_objective(model, packing, options.stages[-1], options, limits, size, released=True)
        stages.append((RELEASE, released, free, options.release_iterations, "lm"))
    # Stages after which the variants close to each person's best go on (unless the
    # stage picks the best, as LIMB_RETRY does when nothing settles after it).
    keep_within = {LIMB_STAGE: LIMB_KEEP_RATIO, **{name: SETTLE_KEEP_RATIO for name in retries}}

    total_budget = sum(iterations for _, _, _, iterations, _ in stages)
    done = 0
    seconds = []
    state = _Rows(x, torch.ones(len(x), dtype=torch.bool, device=device), kind, person_of, [], rows_data)
    evaluations = 0
    for name, function, free, iterations, optimiser in stages:
        started = time.perf_counter()

        def report(iteration: int, loss: Tensor | None, name: str = name, start: int = done) -> None:
            if cancel is not None and cancel():
                raise Cancelled("The fit was cancelled.")
            if progress is not None:
                message = f"{name}: starting" if loss is None else (
                    f"{name}: iteration {iteration}, loss {float(loss.mean()):.1f}")  # fmt: skip
                progress(name, (start + iteration) / total_budget, message)

        report(0, None)
        x, rows_data = state.x, state.data
        mask = _row_mask(packing, free, rows_data[1])
        if name == RELEASE:
            near = _rows_reprojection_px(model, packing, x, rows_data) < options.release_below_px
            mask = mask * near[:, None]
        if optimiser == "lm":
            result = lm.minimize(function.residuals, rows_data, x, mask, max_iterations=iterations,
                                 callback=report, jacobian=function.jacobian)  # fmt: skip
        else:
            loss_fn, loss_rows = ((function, camera_rows) if optimiser == "loss"
                                  else (_sum_of_squares(function.residuals), rows_data))  # fmt: skip
            if options.optimiser == "strong-wolfe":
                result = lbfgs.minimize_strong_wolfe(lambda x: loss_fn(x, *loss_rows), x, mask,  # noqa: B023
                                                     max_iterations=iterations, history=options.history,
                                                     callback=report)  # fmt: skip
            else:
                result = lbfgs.minimize(
                    lbfgs.value_and_grad(loss_fn, mask, loss_rows),
                    x,
                    max_iterations=iterations,
                    history=options.history,
                    relative_tolerance=options.relative_tolerance,
                    callback=report,
                )
        if not torch.isfinite(result.x).all() or not torch.isfinite(result.loss).all():
            raise FitError(f"The fit diverged in stage '{name}' (non-finite values); nothing was written.")
        state.x = _apply_hypotheses(result.x, state.kind, first, packing) if name == "camera" else result.x
        if name != "camera":  # a row with nothing free here (see RELEASE) keeps its flag
            state.converged = torch.where(mask.any(1), result.converged, state.converged)
        evaluations += result.evaluations
        state.losses.append(result.loss)
        seconds.append((name, time.perf_counter() - started))
        done += iterations
        if len(state.x) > people and name in pick_best | keep_within.keys():
            # Keep each person's best hypothesis by this stage's loss, or the variants
            # close to it, decided later.
            if name in pick_best:
                state = state.take(_best_rows(result.loss, state.person_of, people))
            else:
                state = state.take(_rows_within(result.loss, state.person_of, people, keep_within[name]))
        if name in flip_after:  # one row per person here
            best = state.x
            if name == options.choose_after:
                variants = _limb_flips(model, packing, best, LIMB_SETS)
            else:
                variants = _limb_flips(model, packing, best, RETRY_LIMB_SETS, RETRY_BONE_SETS)
                variants += _body_turns(best, packing)
            count = 1 + len(variants)
            kept = torch.ones(people, count, dtype=torch.bool, device=device)
            if name in again_after:  # a fit the last retry left as it was has no new variants
                before = state.losses[again_after[name]]
                kept[:, 1:] = (state.losses[-1] < (1.0 - RETRY_AGAIN_GAIN) * before)[:, None]
            state = state.take(torch.arange(people, device=device)[:, None].expand(-1, count)[kept])
            state.x = torch.stack([best, *variants], 1)[kept]
            number = torch.arange(count, device=device).expand(people, -1)[kept]
            state.kind = state.kind | (number << flip_after[name])
    loss_per_stage = torch.stack(state.losses, dim=1)
    params = {k: v.detach() for k, v in packing.unpack(state.x).items()}
    zeros = model.zeros(people)
    params.update(leye_pose=zeros["leye_pose"], reye_pose=zeros["reye_pose"])
    with torch.no_grad():
        out = model(vertices=False, **params)
    projected = camera.project(out.keypoints, state.data[2], state.data[3])
    return BatchFit(
        params=params,
        full_pose=out.full_pose,
        keypoints=out.keypoints,
        projected=projected,
        loss_per_stage=loss_per_stage,
        stage_seconds=seconds,
        converged=state.converged,
        hypothesis=state.kind,
        evaluations=evaluations,
    )


def seen_reprojection_px(projected: Tensor, keypoints: Tensor, scale: Tensor) -> Tensor:
    """(B,) mean distance of each person's seen keypoints (B, K, 3) to their fitted
    projections (B, K, 2), times scale (B,): NORMALISED_HEIGHT / image height."""
    seen = (keypoints[..., 2] > 0).to(keypoints.dtype)
    distance = (projected - keypoints[..., :2]).norm(dim=-1)
    return (distance * seen).sum(1) / seen.sum(1).clamp(min=1) * scale


def body_reprojection_px(fit: BatchFit, keypoints: Tensor, image_size: Tensor) -> Tensor:
    """seen_reprojection_px of the body keypoints (B,). keypoints (B, K, 3)."""
    body = torch.as_tensor(BODY, device=keypoints.device)
    scale = NORMALISED_HEIGHT / image_size[:, 1]
    return seen_reprojection_px(fit.projected[:, body], keypoints[:, body], scale)


def _rows_reprojection_px(
    model: BodyModel, packing: _Packing, x: Tensor, rows_data: tuple[Tensor, ...]
) -> Tensor:
    """seen_reprojection_px (R,) of every keypoint of the rows x (R, N) with their
    stage inputs rows_data (detected, confidence, focal, centre, scale)."""
    detected, confidence, focal, centre, scale = rows_data
    with torch.no_grad():
        keypoints = model(vertices=False, **packing.unpack(x)).keypoints
    projected = camera.project(keypoints, focal, centre)
    return seen_reprojection_px(projected, torch.cat([detected, confidence[..., None]], -1), scale)


def _restart_failed(
    fit: BatchFit,
    failed: Tensor,
    turns_degrees: tuple[float, ...],
    refit: Callable[[Tensor, Tensor], BatchFit],
) -> BatchFit:
    """Fit again the people `failed` (B,) bool, from starts turned in the image plane by
    each of `turns_degrees`, and keep each person's lowest final loss. refit(rows (R,),
    roll_offset (R,) radians) fits those people (rows of the batch) from those starts.
    A fit that misses its body keypoints is lost in a wrong minimum (a body lying or bent
    along the line of sight, facing or leaning the wrong way); which one the search falls
    into can hinge on rounding, so other starts often find the right one, at the lower
    loss."""
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

    turn_number = torch.arange(len(rows), device=rows.device) % len(turns) + 1

    def merged(mine: Tensor, theirs: Tensor) -> Tensor:
        mine = mine.clone()
        mine[chosen] = theirs[source]
        return mine

    return BatchFit(
        params={name: merged(value, again.params[name]) for name, value in fit.params.items()},
        full_pose=merged(fit.full_pose, again.full_pose),
        keypoints=merged(fit.keypoints, again.keypoints),
        projected=merged(fit.projected, again.projected),
        loss_per_stage=merged(fit.loss_per_stage, again.loss_per_stage),
        stage_seconds=[*fit.stage_seconds, (RESTART, time.perf_counter() - started)],
        converged=merged(fit.converged, again.converged),
        hypothesis=merged(fit.hypothesis, again.hypothesis | turn_number << RESTART_SHIFT),
        evaluations=fit.evaluations + again.evaluations,
    )


HAND_BLOCKS = {"left_hand_pose", "right_hand_pose"}
FACE_BLOCKS = {"expression", "jaw_pose"}


@dataclass
class _Rows:
    """What fit_keypoints keeps per row (one hypothesis of one person): x (R, N),
    converged (R,), kind (R,) the hypothesis (see BatchFit.hypothesis), person_of (R,),
    losses: (R,) per stage run so far, data: the rows' inputs of the stage residuals."""

    x: Tensor
    converged: Tensor
    kind: Tensor
    person_of: Tensor
    losses: list[Tensor]
    data: tuple[Tensor, ...]

    def take(self, index: Tensor) -> _Rows:
        """The rows at `index` (R',), repeated or dropped."""
        return _Rows(self.x[index], self.converged[index], self.kind[index], self.person_of[index],
                     [loss[index] for loss in self.losses], tuple(t[index] for t in self.data))  # fmt: skip


def _row_mask(packing: _Packing, free: set[str], confidence: Tensor) -> Tensor:
    """(R, N): 1 where a row's coordinate is fitted. The blocks in `free`, less the hand
    (face) blocks of a row that sees no hand (face) keypoint: those only follow their
    priors, and freeing them because another person of the batch sees a hand would make
    a person's fit depend on the batch. confidence (R, K)."""
    count = confidence.shape[1]
    mask = packing.mask(free, confidence)[None].expand(len(confidence), -1)
    for group, blocks in ((HANDS, HAND_BLOCKS), (FACE, FACE_BLOCKS)):
        seen = (confidence[:, torch.as_tensor(group[group < count], device=confidence.device)] > 0).any(-1)
        mask = mask * torch.where(seen[:, None], 1.0, 1.0 - packing.mask(blocks & free, confidence))
    return mask


@dataclass(frozen=True)
class _Objective:
    """The SMPLify-X objective of one stage as residuals whose sum of squares it is, so
    that L-BFGS and Levenberg-Marquardt minimise the same function:
    residuals(x (B, N), *rows) -> (B, R) with rows = (detected (B, K, 2), confidences
    (B, K), focal (B,), centre (B, 2), scale (B,)); every row depends on its own inputs
    only. jacobian(x, free (n,), *rows) -> (B, R, n): their exact derivatives with respect
    to the columns `free` (ascending) of x (None with VPoser: then forward-mode differentiation)."""

    residuals: Callable[..., Tensor]
    jacobian: Callable[..., Tensor] | None


def _stage_objective(
    model: BodyModel,
    packing: _Packing,
    stage: StageWeights,
    options: FitOptions,
    limits: tuple[Tensor, Tensor],
    size: float,
    last: bool = False,
    released: bool = False,
) -> _Objective:
    """The objective of `stage` (its part weights applied to the confidences). Its L2 pose
    prior weighs each body_pose entry by the stage's weight times the entry's stiffness
    (priors.pose_prior_stiffness), in the schedule's `last` stage times
    FitOptions.last_stage_l2_pose_scale as well; `released`: the stage's weight alone."""
    pose_weight: float | Tensor = stage.body_pose
    if options.gmm is None and packing.vposer is None:
        scale = options.last_stage_l2_pose_scale if last else 1.0
        stiffness = priors.pose_prior_stiffness(*limits, 0.0 if released else options.pose_stiffness_power)
        pose_weight = pose_weight * scale * stiffness
    pose_mean = priors.relaxed_body_pose().to(limits[0])
    jaw_weights = torch.tensor(stage.jaw, dtype=limits[0].dtype, device=limits[0].device)

    # The residuals' weights (square roots of the loss weights).
    bending_weight = stage.bending**0.5
    limit_weight = options.joint_limit_weight**0.5
    collision_weight = stage.collision**0.5

    # Stages that give the face landmarks no weight leave them out of the model's pass.
    weighs_face = stage.face_keypoints > 0
    keypoint_weights = part_weights(stage, len(KEYPOINT_NAMES_WITH_CONTOUR), limits[0].device)

    def data_terms(keypoints: Tensor, detected: Tensor, confidence: Tensor, focal: Tensor, centre: Tensor,
                   scale: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor, float]:  # fmt: skip
        """priors.keypoint_residuals' arguments for the model's keypoints (B, K', 3), K' <= K
        the first ones."""
        count = keypoints.shape[1]
        weights = confidence[:, :count] * keypoint_weights[:count]
        return camera.project(keypoints, focal, centre), detected[:, :count], weights, scale, options.rho

    # The L2 priors on parameter blocks other than the body pose, with their weights.
    weighted = {"betas": stage.shape, "expression": stage.expression, "jaw_pose": jaw_weights,
                "left_hand_pose": stage.hand_pose, "right_hand_pose": stage.hand_pose}  # fmt: skip

    def regularisers(x: Tensor) -> Tensor:
        """The priors' residuals (B, R')."""
        p = packing.unpack(x)
        body_pose = p["body_pose"]
        parts = [
            pose_weight * _pose_prior_residuals(x, body_pose, pose_mean, packing, options),
            bending_weight * priors.bending_residuals(body_pose),
            limit_weight * priors.joint_limit_residuals(body_pose, *limits),
            *(weight * p[name] for name, weight in weighted.items()),
        ]
        return torch.cat(parts, dim=1)

    # Every prior residual but a GMM's depends on one coordinate of x: this column, in
    # the order of `regularisers`.
    def block_columns(name: str) -> list[int]:
        return list(range(packing.block(name).start, packing.block(name).stop))

    body = block_columns("body_pose")
    like = {"dtype": jaw_weights.dtype, "device": jaw_weights.device}
    prior_columns = torch.tensor([*body, *(body[i] for i in priors.BENDING_INDEX), *body,
                                  *(c for name in weighted for c in block_columns(name))],
                                 device=like["device"])  # fmt: skip
    weighted_slopes = torch.cat([torch.as_tensor(weight, **like).expand(len(block_columns(name)))
                                 for name, weight in weighted.items()])  # fmt: skip

    def prior_jacobian(x: Tensor, free: Tensor) -> Tensor:
        """d regularisers / d x[:, free] (B, R', n) with the L2 pose prior: each row one
        slope in its column."""
        body_pose = packing.unpack(x)["body_pose"]
        slopes = torch.cat([
            pose_weight.expand_as(body_pose),
            bending_weight * priors.bending_slopes(body_pose),
            limit_weight * priors.joint_limit_slopes(body_pose, *limits),
            weighted_slopes.expand(len(x), -1),
        ], dim=1)  # fmt: skip
        return slopes[..., None] * (prior_columns[:, None] == free)

    def contact(segments: Tensor) -> Tensor:
        """The collision residuals (B, P) of collision.pair_segments."""
        return collision_weight * collision.segment_residuals(segments, size)

    def residuals(x: Tensor, *rows: Tensor) -> Tensor:
        keypoints = model(vertices=False, face_landmarks=weighs_face, **packing.unpack(x)).keypoints
        parts = [priors.keypoint_residuals(*data_terms(keypoints, *rows)), regularisers(x)]
        if stage.collision > 0:
            parts.append(contact(collision.pair_segments(keypoints[:, :NUM_JOINTS])))
        return torch.cat(parts, dim=1)

    def jacobian(x: Tensor, free: Tensor, *rows: Tensor) -> Tensor:
        # The keypoints' derivatives come from the body model in closed form; each data
        # residual depends on one keypoint coordinate, each collision residual on its
        # pair's segments and each prior residual (but a GMM's) on one coordinate of x.
        out, blocks = model.keypoint_jacobian(face_landmarks=weighs_face, **packing.unpack(x))

        def free_columns(derivatives: Tensor) -> Tensor:
            # Gathering copies the largest tensor here: skipped when every column is free.
            return derivatives if len(free) == x.shape[1] else derivatives[..., free]

        columns = free_columns(torch.cat([blocks[name] for name in packing.names], dim=-1))  # (B, K, 3, n)
        slopes = priors.keypoint_residual_slopes(*data_terms(out.keypoints, *rows))  # (B, K, 2)
        per_keypoint = slopes[..., None] * camera.projection_jacobian(out.keypoints, rows[2])  # (B, K, 2, 3)
        if options.gmm is None:
            prior = prior_jacobian(x, free)
        else:
            prior = free_columns(_backward_jacobian(regularisers, x))
        parts = [(per_keypoint @ columns).flatten(1, 2), prior]
        if stage.collision > 0:
            segments = collision.pair_segments(out.keypoints[:, :NUM_JOINTS])
            per_segment = collision_weight * collision.segment_residual_derivatives(segments, size)
            per_joint = collision.joint_derivatives(per_segment)  # (B, P, 55, 3)
            parts.append(per_joint.flatten(2) @ columns[:, :NUM_JOINTS].flatten(1, 2))
        return torch.cat(parts, dim=1)

    return _Objective(residuals, jacobian if packing.vposer is None else None)


def _backward_jacobian(function: Callable[[Tensor], Tensor], primal: Tensor) -> Tensor:
    """The derivatives of function(primal (B, N)) -> (B, R) by reverse mode, one backward
    pass per output column, every row at once: each row's outputs must depend on its
    own inputs only. -> (B, R, N)."""
    out, pullback = torch.func.vjp(function, primal)
    count = out.shape[1]
    unit = torch.eye(count, dtype=out.dtype, device=out.device)[:, None, :]
    (derivatives,) = torch.func.vmap(pullback)(unit.expand(count, *out.shape))
    return derivatives.movedim(0, 1)


def _pose_prior_residuals(
    x: Tensor, body_pose: Tensor, pose_mean: Tensor, packing: _Packing, options: FitOptions
) -> Tensor:
    """The body pose prior as residuals, before the stage's weight: the user's GMM
    (max-mixture energy), else VPoser (L2 on the latent code the pose is decoded from),
    else L2 around the relaxed pose. x (B, N); body_pose (B, 63) -> (B, R)."""
    if options.gmm is not None:
        return gmm_residuals(body_pose, options.gmm)
    if packing.vposer is not None:
        return vposer_residuals(packing.latent(x))
    return body_pose - pose_mean


TURNED, MIRRORED = 1, 2
HYPOTHESES = (0, MIRRORED)


def _apply_hypotheses(x: Tensor, kind: Tensor, first: Tensor, packing: _Packing) -> Tensor:
    """Start each hypothesis row from its person's camera-stage result (row `first`),
    turned around and/or tilt mirrored as its `kind` says. x (R, N); kind, first (R,)."""
    x = x.clone()
    orient, transl = packing.block("global_orient"), packing.block("transl")
    base = x[first, orient]
    mirrored = torch.where((kind & MIRRORED > 0)[:, None], camera.tilt_mirrored(base), base)
    x[:, orient] = torch.where((kind & TURNED > 0)[:, None], camera.turned_around(mirrored), mirrored)
    x[:, transl] = x[first, transl]
    return x


def _lowest_loss(loss: Tensor, person_of: Tensor, people: int) -> Tensor:
    """Each person's lowest loss over its rows. loss, person_of (R,) -> (people,)."""
    best = torch.full((people,), float("inf"), device=loss.device, dtype=loss.dtype)
    return best.scatter_reduce(0, person_of, loss, reduce="amin")


def _best_rows(loss: Tensor, person_of: Tensor, people: int) -> Tensor:
    """Index of each person's lowest-loss row (the first one on ties). loss, person_of (R,)."""
    winner = loss == _lowest_loss(loss, person_of, people)[person_of]
    rows = torch.where(winner, torch.arange(len(loss), device=loss.device), len(loss))
    first = torch.full((people,), len(loss), device=loss.device, dtype=rows.dtype)
    return first.scatter_reduce(0, person_of, rows, reduce="amin")


def _rows_within(loss: Tensor, person_of: Tensor, people: int, ratio: float) -> Tensor:
    """Indices of the rows whose loss is at most `ratio` times their person's lowest, in
    order. loss, person_of (R,)."""
    return torch.nonzero(loss <= ratio * _lowest_loss(loss, person_of, people)[person_of])[:, 0]


# Roots of the limbs whose depth a photo leaves open (an arm swung forwards or backwards
# by the same angle looks alike): each limb alone, both arms, both legs, each mirrored two
# ways (see _limb_flips). The variants within LIMB_KEEP_RATIO of their person's best loss
# after LIMB_STAGE go on, and the polish chooses (the hands stage often ranks the right
# one second or third). Mean PA-V2V on the benchmark, 96 people (seeds 0-11, batched):
# mirrors at the root only, kept within 1.3: 52 mm; with the whole-limb mirrors: 47 mm;
# kept within 2.0: 42 mm (within 1.6: 43 mm; all kept: 42 mm at 25% more time); with
# the last stage solved by LM: 40.5 mm; with LIMB_RETRY: 36.5 mm (a second retry: 36.7).
# These means move by 2-3 mm with float rounding alone (a few people land in another
# minimum): compare variants person by person, over 192 people (seeds 0-23).
# LM from the true body settles at 20 mm on these people: most large errors are fits
# stuck in another minimum of higher loss, which the retry's variants reach.
_LIMB_ROOTS = tuple(
    JOINT_NAMES.index(n) for n in ("left_shoulder", "right_shoulder", "left_hip", "right_hip")
)
LIMB_SETS = (*((j,) for j in _LIMB_ROOTS), _LIMB_ROOTS[:2], _LIMB_ROOTS[2:])
# The retry also mirrors each forearm and shin alone and turns the whole body a little
# about its root (see _body_turns): a polished fit is often right but for one forearm or
# shin, or its orientation 20-40 degrees off. Over 192 people (seeds 0-23, batched),
# paired against the retry with LIMB_SETS alone (38.5 mm mean, 27.2 median): 36.5 mm
# mean, 25.8 median (-2.0 mm, standard error 1.0); the bench (2 threads): 1.72 -> 1.97 s
# per person alone, 7.7 -> 11.2 s for a batch of 8 (25 rows per person in the retry
# instead of 13). Measured and left out: the turns alone -1.3 (0.7), with roll turns as
# well the same, turns of 45 and 30 degrees -0.9 (0.4); forearms and shins after
# choose_after too -2.6 (1.4) for 40% more time (more rows through the hands stage's
# L-BFGS); 8 random pose perturbations (0.3 rad) -0.2 (0.2); LM in place of L-BFGS in
# body-3 +4.1 (2.5), in hands +10.1 (2.4): L-BFGS explores farther there; screening the
# retry's variants (keeping those within 1.5x of the best after 3 of its iterations, or
# 3x after 5) +2.8 (1.2) and +1.7 (0.9) against the full retry: the right variant often
# ranks low until it has settled; the whole body mirrored in depth about its root (every
# rotation R -> M R M) never won; spine1 mirrored as a limb -0.03 (0.03), spine1, spine3
# and neck -0.06 (0.13): the large errors left are spread over the spine and shoulders
# of people far from the camera (mean 60 mm beyond 7 m, 25 mm within 3 m), not one flip;
# fewer iterations for time, each worse: body-1 10 +1.0 (1.9), hands 30 +1.1 (1.9), the
# body stages 20 each +1.8 (2.4); the polish on the rows within 1.5x (1.2x) of the best
# after the last stage only +0.8 (0.6), +1.4 (1.1). Beyond 7 m no fit's loss is above
# 1.1x that of LM started from the truth, and 7 of those 23 fits are below 0.98x at 69 mm
# mean: there the objective itself barely tells the poses apart.
_HINGES = tuple(JOINT_NAMES.index(n) for n in ("left_elbow", "right_elbow", "left_knee", "right_knee"))
RETRY_LIMB_SETS = LIMB_SETS + tuple((j,) for j in _HINGES)
# And it mirrors each upper arm and thigh alone, the bones below keeping their directions
# (see _limb_flips): a fit whose forearm is right but whose upper arm lies on the wrong
# side in depth is mended neither at the root (the forearm turns with the upper arm) nor
# whole (the forearm is mirrored too).
# Over 384 people (seeds 0-47, batched), paired against the retry without them: mean
# PA-V2V -2.6 mm (standard error 1.0), people over 60 mm 50 -> 40; on seeds 24-47 alone,
# which none of the choices above was tuned on, -4.5 (1.7); the retry about 5% longer.
# Each forearm and shin alone too, the hand or foot keeping its direction (so its
# keypoints stay put; the at-root variant of an elbow or knee swings the hand along):
# 384 people each on seeds 0-47 and 48-95, paired: -0.37 mm (95% interval 0.60) and
# -0.23 (0.93), rescuing forearms mirrored by 80-110 degrees; the retry about 13% longer.
RETRY_BONE_SETS = tuple((j,) for j in _LIMB_ROOTS + _HINGES)
# (camera axis, degrees): turns towards and away from the camera about the image's
# vertical and horizontal axes.
RETRY_TURNS = (
    ((0.0, 1.0, 0.0), 25.0),
    ((0.0, 1.0, 0.0), -25.0),
    ((1.0, 0.0, 0.0), 20.0),
    ((1.0, 0.0, 0.0), -20.0),
)
LIMB_STAGE = "hands"
LIMB_KEEP_RATIO = 2.0
LIMB_RETRY = "limb-retry"  # the stage that mirrors the polished fits' limbs once more
SETTLE = "settle"  # the stage that lets the retry's close variants settle
# Over 192 people (seeds 0-23, batched), paired against the retry choosing alone: kept
# within 2x and settled for 10 iterations -3.5 mm mean PA-V2V (standard error 1.5),
# median 25.8 -> 24.8, people over 60 mm 24 -> 18, about 0.3-0.4 s more per person alone;
# within 1.5x -1.7 (1.0); within 3x -3.4 (1.5); within 2x for 20 iterations -3.9 (1.5);
# the retry cut to 6 iterations before a settle of 10 +0.9 (0.9). One person the settle
# recovers (seed 23, person 7): the right arm mirrored at the shoulder is at 1.9x the
# polished fit's loss after the retry's 10 iterations and below it, at the truth's
# minimum (85 -> 19 mm), after 15.
SETTLE_KEEP_RATIO = 2.0
RELEASE = "release"  # the chosen fits under the last stage's objective at the reference's weight
VARIANT_SHIFT = 2  # bits of BatchFit.hypothesis: the limb variant after choose_after
# and the variant of LIMB_RETRY, above the bits that variant numbers 0..2L need
RETRY_SHIFT = VARIANT_SHIFT + (2 * len(LIMB_SETS)).bit_length()
# The retry's variants are numbered 1.. (0: the polished fit).
RETRY_VARIANTS = 2 * len(RETRY_LIMB_SETS) + len(RETRY_BONE_SETS) + len(RETRY_TURNS)
RESTART = "restart"  # the failed fits started again, turned (see _restart_failed)
RETRY_BITS = RETRY_VARIANTS.bit_length()
MAX_RETRY_ROUNDS = 2
# A retry that lowered a person's loss by less than this found the same minimum again
# (a variant often settles back onto it, a hair lower): no second round for that person.
RETRY_AGAIN_GAIN = 0.01
RESTART_SHIFT = RETRY_SHIFT + MAX_RETRY_ROUNDS * RETRY_BITS  # bits of the restart's turn, 1..


def _body_joints_below(root: int) -> tuple[int, ...]:
    """The body joints (1..21) of the subtree under `root`, itself excluded."""

    def descends(joint: int) -> bool:
        while joint > 0:
            joint = JOINT_PARENTS[joint]
            if joint == root:
                return True
        return False

    return tuple(j for j in range(1, NUM_BODY_JOINTS + 1) if descends(j))


_BELOW = {root: _body_joints_below(root) for root in _LIMB_ROOTS + _HINGES}
_CHILDREN = {
    root: tuple(j for j in _BELOW[root] if JOINT_PARENTS[j] == root) for root in _LIMB_ROOTS + _HINGES
}


def _limb_flips(
    model: BodyModel,
    packing: _Packing,
    x: Tensor,
    sets: tuple[tuple[int, ...], ...],
    bone_sets: tuple[tuple[int, ...], ...] = (),
) -> list[Tensor]:
    """Two variants of x (B, N) per set of limbs (their root joints) in `sets` and one per
    set in `bone_sets`, each mirroring those limbs through the plane parallel to the image
    at their root (M: z -> -z) and keeping their image:
    - at the root: the root's world rotation G becomes M G M. Its first bone (which lies
      in the model's x-y plane) is mirrored; the bones below turn with it.
    - whole: every bone of the limb mirrored. The root's G becomes M G M T and each joint
      below it L -> T^T M L M T, T the half turn about the root's rest bone. Mirroring
      alone would bend the knee or elbow backwards; the half turn bends it forwards
      again, and M T leaves the plane of the bone and the depth axis in place, which holds
      a leg's (an arm's) rest bones when the limb is straight at rest (nearly so for other
      shapes; the stages after correct the rest).
    - the first bone alone (bone_sets): the root's G becomes M G M as at the root, and its
      children's local rotations undo that change, L -> (M G M)^T G L: the bones below
      keep their directions (the elbow or knee bends anew).
    -> 2L + L' rows (B, N): sets[k] at the root for k < L, then sets[k - L] whole, then
    bone_sets[k - 2L] by its first bone."""
    p = packing.unpack(x)
    zeros = torch.zeros_like(p["global_orient"])
    pose = model.full_pose(p["global_orient"], p["body_pose"], p["jaw_pose"], zeros, zeros,
                           p["left_hand_pose"], p["right_hand_pose"])  # fmt: skip
    rest = lbs.blend(
        torch.cat([p["betas"], p["expression"]], 1), model.joint_directions, model.joint_template
    ).view(len(x), -1, 3)
    local = lbs.axis_angle_to_matrix(pose)
    world, _ = lbs.forward_kinematics(local, rest, model.tree)
    mirror = torch.diag(torch.tensor([1.0, 1.0, -1.0], dtype=x.dtype, device=x.device))
    block = packing.block("body_pose")

    def set_rotation(rows: Tensor, joint: int, rotation: Tensor) -> None:
        start = block.start + 3 * (joint - 1)
        rows[:, start : start + 3] = camera.matrix_to_axis_angle(rotation)

    def at_root(joint: int) -> tuple[Tensor, Tensor]:
        """The joint's world rotation mirrored, M G M, and the local rotation giving it."""
        turned = mirror @ world[:, joint] @ mirror
        return turned, world[:, JOINT_PARENTS[joint]].transpose(1, 2) @ turned

    variants = []
    for whole in (False, True):
        for joints in sets:
            flipped = x.clone()
            for joint in joints:
                _, mirrored = at_root(joint)
                if not whole:
                    set_rotation(flipped, joint, mirrored)
                    continue
                bone = rest[:, JOINT_PARENTS.index(joint)] - rest[:, joint]
                half_turn = lbs.axis_angle_to_matrix(torch.pi * bone / bone.norm(dim=-1, keepdim=True))
                set_rotation(flipped, joint, mirrored @ half_turn)
                undo = half_turn.transpose(1, 2) @ mirror
                for below in _BELOW[joint]:
                    set_rotation(flipped, below, undo @ local[:, below] @ mirror @ half_turn)
            variants.append(flipped)
    for joints in bone_sets:
        flipped = x.clone()
        for joint in joints:
            turned, mirrored = at_root(joint)
            set_rotation(flipped, joint, mirrored)
            for child in _CHILDREN[joint]:
                set_rotation(flipped, child, turned.transpose(1, 2) @ world[:, child])
        variants.append(flipped)
    return variants


def _body_turns(x: Tensor, packing: _Packing) -> list[Tensor]:
    """x (B, N) turned as a whole by each of RETRY_TURNS about its root, which stays in
    place (the global orientation rotates the body about it): G -> R G, R in camera
    space. -> one (B, N) per turn."""
    block = packing.block("global_orient")
    orient = lbs.axis_angle_to_matrix(x[:, block])
    variants = []
    for axis, degrees in RETRY_TURNS:
        turn = torch.tensor(axis, dtype=x.dtype, device=x.device) * math.radians(degrees)
        turned = x.clone()
        turned[:, block] = camera.matrix_to_axis_angle(lbs.axis_angle_to_matrix(turn[None]) @ orient)
        variants.append(turned)
    return variants


def _sum_of_squares(residuals: Callable[..., Tensor]) -> Callable[..., Tensor]:
    return lambda x, *rows: residuals(x, *rows).square().sum(-1)


def _check_plausible(params: dict[str, Tensor], keypoints: Tensor) -> None:
    """A fit that ran off (behind the camera, absurd rotations) is an error, not a result."""
    behind = (keypoints[:, :NUM_JOINTS, 2].amin(1) <= 0.01).tolist()
    pose = torch.cat([params["global_orient"], params["body_pose"]], 1)
    wild = ((pose.abs().amax(1) > 4 * np.pi) | (params["transl"].abs().amax(1) > 1000.0)).tolist()
    for person, (is_behind, is_wild) in enumerate(zip(behind, wild, strict=True)):
        if is_behind:
            raise FitError(f"The fit of person {person} diverged: the body ended up behind the camera.")
        if is_wild:
            raise FitError(f"The fit of person {person} diverged: its pose or position is out of range.")
