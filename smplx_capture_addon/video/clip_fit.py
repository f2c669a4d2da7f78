"""A clip's person fitted frame by frame with one shape, then bridged and smoothed in time.

The first frame where the person is found is fitted in full (every hypothesis and
retry of the single-photo fit); its shape is then held for the whole clip, and each later
frame starts from the last fitted frame's parameters with the warm-start schedule
(options.warm_start_options: no search for other minima). Frames where the track is lost,
or whose fit fails, keep no fit of their own: they are bridged between their fitted
neighbours (or held at the clip's ends) and flagged. Last, rotations, translation and
expression are smoothed in time (see `smoothing`). Deterministic on the CPU: the same clip
gives the same motion.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
import torch

from ..body_model.model import BodyModel
from ..body_model.numpy_body import pose_blocks
from ..keypoints.people import body_keypoints
from ..motion_format import BRIDGED, FITTED, LOST, MotionFrame
from ..solver.errors import FitError
from ..solver.fit_result import BatchFit
from ..solver.keypoint_fit import fit_keypoints
from ..solver.keypoint_groups import BODY
from ..solver.options import FitOptions, warm_start_options
from . import smoothing
from .tracks import TrackedFrame

Progress = Callable[[int, str], None]  # (frame index, what happened)


@dataclass
class FrameFit:
    """One frame's own fit (before bridging and smoothing), or None where there is none."""

    index: int
    full_pose: np.ndarray | None = None  # (55, 3) axis-angle, hand means included
    transl: np.ndarray | None = None
    expression: np.ndarray | None = None
    box: list[float] | None = None
    residual_px: dict[str, float] | None = None


class ClipFitter:
    """Fits one tracked frame after another (`fit_frame`), keeping the clip's shape and
    the last fit to start the next one from."""

    def __init__(self, body: BodyModel, focal: float, size: tuple[int, int], options: FitOptions) -> None:
        self.body, self.size = body, size
        self.focal = torch.tensor([focal])
        self.image_size = torch.tensor([size], dtype=torch.float32)
        self.first_options = options
        self.warm_options = replace(warm_start_options(options), hold_shape=True)
        self.last: dict[str, torch.Tensor] | None = None
        self.betas: np.ndarray | None = None

    def fit_frame(self, tracked: TrackedFrame, cancel: Callable[[], bool] | None = None) -> FrameFit:
        """The frame's fit, or an empty FrameFit where the track is lost or the fit fails;
        Cancelled when `cancel()` says so during the fit."""
        if tracked.person is None:
            return FrameFit(tracked.index)
        keypoints = torch.as_tensor(body_keypoints(tracked.person)[None], dtype=torch.float32)
        try:
            if self.last is None:
                fit = fit_keypoints(self.body, keypoints, self.focal, self.image_size, self.first_options,
                                    cancel=cancel)  # fmt: skip
            else:
                fit = fit_keypoints(self.body, keypoints, self.focal, self.image_size, self.warm_options,
                                    cancel=cancel, start=self.last)  # fmt: skip
        except FitError:
            return FrameFit(tracked.index)  # a diverged frame is a gap, not a wrong pose
        self.last = {name: value.clone() for name, value in fit.params.items()}
        if self.betas is None:
            self.betas = fit.params["betas"][0].cpu().numpy().astype(float)
        return FrameFit(
            tracked.index,
            full_pose=fit.full_pose[0].cpu().numpy().astype(float),
            transl=fit.params["transl"][0].cpu().numpy().astype(float),
            expression=fit.params["expression"][0].cpu().numpy().astype(float),
            box=[float(v) for v in tracked.person.box],
            residual_px=residual_summary(fit, keypoints[0].numpy()),
        )


def residual_summary(fit: BatchFit, keypoints: np.ndarray) -> dict[str, float]:
    """Mean and largest distance (px) of the seen body keypoints to the fit's projection
    (0 for a frame where none of them was seen)."""
    seen = [k for k in BODY if keypoints[k, 2] > 0]
    if not seen:
        return {"mean": 0.0, "max": 0.0}
    distances = np.linalg.norm(fit.projected[0, seen].cpu().numpy() - keypoints[seen, :2], axis=-1)
    return {"mean": round(float(distances.mean()), 3), "max": round(float(distances.max()), 3)}


def motion_frames(fits: list[FrameFit], sigma: float = smoothing.SIGMA_FRAMES) -> list[MotionFrame]:
    """The motion's frames from the frames' own fits: gaps bridged and flagged, everything
    smoothed in time with `sigma` frames (0: not smoothed). At least one frame must be fitted."""
    known = np.array([fit.full_pose is not None for fit in fits])
    if not known.any():
        raise FitError("The person was not found in any frame of the range: nothing to fit.")
    pose_shape = next(fit.full_pose.shape for fit in fits if fit.full_pose is not None)
    sizes = next((len(fit.transl), len(fit.expression)) for fit in fits if fit.transl is not None)
    rotations = np.stack(
        [fit.full_pose if fit.full_pose is not None else np.zeros(pose_shape) for fit in fits]
    )
    vectors = np.stack([np.concatenate([fit.transl, fit.expression]) if fit.transl is not None
                        else np.zeros(sum(sizes)) for fit in fits])  # fmt: skip
    rotations, vectors = smoothing.bridge(rotations, vectors, known)
    rotations = smoothing.smooth_rotations(rotations, sigma)
    vectors = smoothing.gaussian_average(vectors, sigma)
    first, last = np.flatnonzero(known)[[0, -1]]
    frames = []
    for number, fit in enumerate(fits):
        flag = FITTED if known[number] else (BRIDGED if first < number < last else LOST)
        frames.append(_motion_frame(fit, flag, rotations[number], vectors[number], sizes[0]))
    return frames


def _motion_frame(
    fit: FrameFit, flag: str, pose: np.ndarray, vector: np.ndarray, transl_size: int
) -> MotionFrame:
    return MotionFrame(
        index=fit.index,
        flag=flag,
        expression=vector[transl_size:].tolist(),
        **{name: block.tolist() for name, block in pose_blocks(pose).items()},
        transl=vector[:transl_size].tolist(),
        box=fit.box,
        residual_px=fit.residual_px,
    )
