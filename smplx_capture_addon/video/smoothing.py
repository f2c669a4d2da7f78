"""Smoothing in time and bridging of gaps, on a clip's per-frame parameters.

Rotations are filtered as unit quaternions: each joint's quaternions are turned onto one
hemisphere along the clip (q and -q are one rotation), averaged with Gaussian weights
over neighbouring frames and normalised, which for the small turns between nearby frames
is the rotation average. Translations and expressions get the same weights. One pass over
the whole clip, the weights cut at its ends and renormalised: no seams. Gaps (frames
without a fit) are filled first by spherical interpolation between the fitted frames on
either side, or held from the nearest one at the clip's ends.
"""

from __future__ import annotations

import numpy as np

from ..body_model.numpy_body import axis_angle_to_quaternion, quaternion_to_axis_angle

SIGMA_FRAMES = 1.5  # the Gaussian's width in frames at the clip's own rate


def continuous(quaternions: np.ndarray) -> np.ndarray:
    """(F, ..., 4) with each frame's quaternion turned to the hemisphere of the one before."""
    out = quaternions.copy()
    for frame in range(1, len(out)):
        flip = np.sum(out[frame] * out[frame - 1], axis=-1, keepdims=True) < 0
        out[frame] = np.where(flip, -out[frame], out[frame])
    return out


def gaussian_average(values: np.ndarray, sigma: float) -> np.ndarray:
    """(F, ...) averaged along the first axis with Gaussian weights of `sigma` frames,
    cut at the clip's ends and renormalised (sigma 0: unchanged)."""
    if sigma <= 0 or len(values) < 2:
        return values.copy()
    reach = int(np.ceil(3 * sigma))
    offsets = np.arange(-reach, reach + 1)
    kernel = np.exp(-0.5 * (offsets / sigma) ** 2)
    frames = np.arange(len(values))
    out = np.zeros_like(values, dtype=np.float64)
    total = np.zeros(len(values))
    for offset, weight in zip(offsets, kernel, strict=True):
        source = frames + offset
        inside = (source >= 0) & (source < len(values))
        out[inside] += weight * values[source[inside]]
        total[inside] += weight
    return out / total.reshape(-1, *([1] * (values.ndim - 1)))


def smooth_rotations(axis_angle: np.ndarray, sigma: float = SIGMA_FRAMES) -> np.ndarray:
    """(F, J, 3) axis-angle rotations smoothed in time (see the module docstring)."""
    quaternions = continuous(axis_angle_to_quaternion(axis_angle))
    return quaternion_to_axis_angle(gaussian_average(quaternions, sigma))


def bridge(rotations: np.ndarray, vectors: np.ndarray, known: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Fill the frames not `known` (F,) bool: rotations (F, J, 3) axis-angle by spherical
    interpolation between the known frames on either side, vectors (F, D) linearly; before
    the first and after the last known frame, held. At least one frame must be known."""
    indices = np.flatnonzero(known)
    rotations, vectors = rotations.copy(), vectors.copy()
    quaternions = axis_angle_to_quaternion(rotations)
    for frame in np.flatnonzero(~known):
        after = indices[np.searchsorted(indices, frame)] if frame < indices[-1] else None
        before = indices[np.searchsorted(indices, frame) - 1] if frame > indices[0] else None
        if before is None or after is None:
            nearest = after if before is None else before
            rotations[frame], vectors[frame] = rotations[nearest], vectors[nearest]
            continue
        t = (frame - before) / (after - before)
        rotations[frame] = quaternion_to_axis_angle(slerp(quaternions[before], quaternions[after], t))
        vectors[frame] = (1 - t) * vectors[before] + t * vectors[after]
    return rotations, vectors


def slerp(a: np.ndarray, b: np.ndarray, t: float) -> np.ndarray:
    """(..., 4) unit quaternions a to b, the shorter way, at fraction t."""
    dot = np.sum(a * b, axis=-1, keepdims=True)
    b = np.where(dot < 0, -b, b)
    dot = np.clip(np.abs(dot), 0.0, 1.0)
    angle = np.arccos(dot)
    sine = np.sin(angle)
    near = sine < 1e-6
    wa = np.where(near, 1 - t, np.sin((1 - t) * angle) / np.where(near, 1.0, sine))
    wb = np.where(near, t, np.sin(t * angle) / np.where(near, 1.0, sine))
    out = wa * a + wb * b
    return out / np.linalg.norm(out, axis=-1, keepdims=True)
