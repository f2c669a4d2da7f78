"""A hand-pose basis in place of SMPL-X's learned hand PCA (which needs captured data).

SMPL-X fitters use the first few (12) rows of the file's hand basis. An identity basis
would then move only the index finger and the base of the middle finger, leaving the
thumb, ring and little fingers frozen. So the first rows are hand synergies (grasp,
thumb, spread, pointing, ...), made orthonormal in that order, and the remaining rows
complete the basis from the joint axes: every hand pose stays reachable with all 45
rows. The mean hand pose is zero (MakeHuman's relaxed rest hand).

Pose vectors are 15 finger joints x 3 (axis-angle, SMPL-X order: index, middle, pinky,
ring, thumb; joints 1-3 from the knuckle out), in the rest frame of the T-pose: fingers
along +x for the left hand, palm down.
"""

from __future__ import annotations

import numpy as np

FINGER_ORDER = ("index", "middle", "pinky", "ring", "thumb")
# Left-hand rotation axes: fingers curl towards the palm about -z, spread about -y (the
# index towards the front); the thumb, pointing forward and out, curls across the palm.
CURL = np.array([0.0, 0.0, -1.0])
SPREAD = np.array([0.0, -1.0, 0.0])
THUMB_CURL = np.array([1.0, 0.0, -1.0]) / np.sqrt(2.0)
LEVEL_CURL = (1.0, 1.0, 0.7)  # knuckle, middle and last joint of a curling finger


def _vector(parts: dict[tuple[str, int], np.ndarray]) -> np.ndarray:
    """(45,) pose from {(finger, level): axis-angle}."""
    pose = np.zeros((len(FINGER_ORDER), 3, 3))
    for (finger, level), rotation in parts.items():
        pose[FINGER_ORDER.index(finger), level - 1] = rotation
    return pose.reshape(-1)


def _curl(fingers: dict[str, float]) -> dict[tuple[str, int], np.ndarray]:
    """Curl of the given fingers (thumb included) by the given amounts."""
    parts = {}
    for finger, amount in fingers.items():
        axis = THUMB_CURL if finger == "thumb" else CURL
        for level, share in zip((1, 2, 3), LEVEL_CURL, strict=True):
            parts[(finger, level)] = axis * amount * share
    return parts


def synergies() -> list[np.ndarray]:
    """Left-hand synergies, most used first, each (45,)."""
    four = ("index", "middle", "ring", "pinky")
    knuckles_only = {(f, 1): CURL for f in four} | {(f, level): -CURL for f in four for level in (2, 3)}
    return [
        _vector(_curl({f: 1.0 for f in four} | {"thumb": 0.5})),  # grasp: a fist
        _vector(_curl({"thumb": 1.0})),  # thumb across the palm
        _vector(
            {
                ("index", 1): SPREAD,
                ("middle", 1): 0.3 * SPREAD,
                ("ring", 1): -0.4 * SPREAD,
                ("pinky", 1): -SPREAD,
            }
        ),
        _vector(_curl({"index": -1.0, "middle": 1.0, "ring": 1.0, "pinky": 1.0})),  # pointing
        _vector(_curl({"thumb": 1.0, "index": 1.0})),  # pinch
        _vector(knuckles_only),  # flat bend at the knuckles against curling the fingers
        _vector(_curl({"index": -1.0, "middle": -1.0, "ring": 1.0, "pinky": 1.0})),
        _vector({("thumb", 1): -SPREAD}),  # thumb out to the side
        _vector(_curl({"middle": 1.0})),
        _vector(_curl({"ring": 1.0})),
        _vector(_curl({"pinky": 1.0})),
        _vector(_curl({"index": 1.0})),
    ]


def orthonormal_basis(leading: list[np.ndarray], size: int = 45) -> np.ndarray:
    """(size, size) orthonormal rows: Gram-Schmidt over `leading`, then the unit axes."""
    rows: list[np.ndarray] = []
    for candidate in [*leading, *np.eye(size)]:
        residual = candidate - sum((row @ candidate) * row for row in rows)
        if np.linalg.norm(residual) > 1e-6 and len(rows) < size:
            rows.append(residual / np.linalg.norm(residual))
    return np.stack(rows)


def mirror(basis: np.ndarray) -> np.ndarray:
    """The right hand's basis from the left's: mirroring x flips the y and z of each axis."""
    return (basis.reshape(len(basis), -1, 3) * [1.0, -1.0, -1.0]).reshape(len(basis), -1)


def hand_bases() -> tuple[np.ndarray, np.ndarray]:
    """(45, 45) left and right bases, rows are components."""
    left = orthonormal_basis(synergies())
    return left, mirror(left)
