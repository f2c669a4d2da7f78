"""Pose-corrective shape keys driven by bone rotations through simple expressions.

SMPL-X adds posedirs @ (R_j - I) to the rest mesh, R_j being joint j's local rotation in
model space. In Blender a bone's local rotation R_bone lives in the bone's own rest
frame C_j (columns: the bone's axes in model space), so R_j = C_j R_bone C_j^T. Each
entry of R_bone is a quadratic form of the bone's quaternion q, hence so is each entry
of R_j - I:

    (R_j - I)[a, b] = q^T K q / (q . q)

Written out as arithmetic on four driver variables (w, x, y, z), that is a "simple
expression": Blender evaluates it natively, with no Python and no script auto-run, and
it stays right whenever the artist re-poses (dividing by q . q makes it independent of
the quaternion's length). Variables read the bone's evaluated local rotation, so
constraints such as IK are included; a fifth variable, the armature's rest-position
switch, turns the correctives off while the armature shows its rest pose.
"""

from __future__ import annotations

import numpy as np

# Homogeneous rotation matrix of a quaternion (w, x, y, z): R[c, d] = q^T Q[c, d] q / |q|^2.
_Q = np.zeros((3, 3, 4, 4))
W, X, Y, Z = range(4)


def _set(c: int, d: int, terms: list[tuple[float, int, int]]) -> None:
    for coefficient, i, j in terms:
        _Q[c, d, i, j] += coefficient / 2.0
        _Q[c, d, j, i] += coefficient / 2.0


_set(0, 0, [(1, W, W), (1, X, X), (-1, Y, Y), (-1, Z, Z)])
_set(0, 1, [(2, X, Y), (-2, W, Z)])
_set(0, 2, [(2, X, Z), (2, W, Y)])
_set(1, 0, [(2, X, Y), (2, W, Z)])
_set(1, 1, [(1, W, W), (-1, X, X), (1, Y, Y), (-1, Z, Z)])
_set(1, 2, [(2, Y, Z), (-2, W, X)])
_set(2, 0, [(2, X, Z), (-2, W, Y)])
_set(2, 1, [(2, Y, Z), (2, W, X)])
_set(2, 2, [(1, W, W), (-1, X, X), (-1, Y, Y), (1, Z, Z)])

VARIABLES = ("w", "x", "y", "z")
# The armature's pose_position (POSE = 0, REST = 1): bone variables keep reading the pose
# in rest position, so each expression is multiplied by (1 - rest).
REST_VARIABLE = "rest"
TRANSFORM_TYPES = ("ROT_W", "ROT_X", "ROT_Y", "ROT_Z")


def feature_forms(bone_frame: np.ndarray) -> np.ndarray:
    """(3, 3, 4, 4) symmetric K such that (C R(q) C^T - I)[a, b] = q^T K[a, b] q for unit q;
    `bone_frame` is C (3, 3), the bone's rest axes in model space."""
    c = np.asarray(bone_frame, dtype=np.float64)
    forms = np.einsum("ac,bd,cdij->abij", c, c, _Q)
    return forms - np.eye(3)[:, :, None, None] * np.eye(4)


def expression(form: np.ndarray, tolerance: float = 1e-7) -> str:
    """A simple expression in w, x, y, z for q^T form q / (q . q)."""
    terms = []
    for i in range(4):
        for j in range(i, 4):
            coefficient = form[i, j] if i == j else form[i, j] + form[j, i]
            if abs(coefficient) > tolerance:
                terms.append(f"{coefficient:+.8f}*{VARIABLES[i]}*{VARIABLES[j]}")
    if not terms:
        return "0.0"
    return f"(1-{REST_VARIABLE})*({' '.join(terms)})/(w*w+x*x+y*y+z*z)"


def evaluate(form: np.ndarray, quaternion) -> float:
    """What the expression of `form` gives for `quaternion` (for checks)."""
    q = np.asarray(quaternion, dtype=np.float64)
    return float(q @ form @ q / (q @ q))
