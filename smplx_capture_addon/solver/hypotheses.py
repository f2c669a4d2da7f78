"""The alternatives a single photo leaves open, fitted as rows of one batch: each row is
one hypothesis of one person. `Rows` is what the fit keeps per row; at branch points a
row spawns variants (see `variants`), and after some stages only each person's best rows
go on. `Hypothesis` says which alternative each person's final fit came from.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import Tensor

from . import camera
from .packing import Packing

TURNED, MIRRORED = 1, 2  # orientation flags: turned around about the body's vertical; tilt mirrored
ORIENTATIONS = ("as estimated", "turned around", "tilt mirrored", "turned around and tilt mirrored")
ORIENTATION, LIMBS, RETRY = "orientation", "limbs", "retry"  # the roles of branch points


@dataclass(frozen=True)
class Hypothesis:
    """Where a person's fit came from: its `orientation` (one of ORIENTATIONS), the limb
    variant chosen after the body stages (`limbs`, None: the fit's own limbs), the variant
    each limb-retry round chose (`retries`, None: the fit it started from) and the turn in
    the image plane of the restart that won (`restart_turn_degrees`, None: the first fit)."""

    orientation: str = ORIENTATIONS[0]
    limbs: str | None = None
    retries: tuple[str | None, ...] = ()
    restart_turn_degrees: float | None = None

    def as_dict(self) -> dict:
        return {**asdict(self), "retries": list(self.retries)}


@dataclass(frozen=True)
class BranchPoint:
    """A point of the fit where rows spawn variants: `role` ORIENTATION, LIMBS or RETRY;
    `labels[k]` names variant k (label 0: the row itself)."""

    role: str
    labels: tuple[str | None, ...]


@dataclass
class Rows:
    """What the fit keeps per row: x (R, N), converged (R,), choices (R, P) the variant
    each row took at each of the fit's P branch points (0: none), person_of (R,), losses:
    (R,) per stage run so far, data: the rows' inputs of the stage residuals (see
    objective), still (R,): rows the limb retry leaves as they are (None: none)."""

    x: Tensor
    converged: Tensor
    choices: Tensor
    person_of: Tensor
    losses: list[Tensor]
    data: tuple[Tensor, ...]
    still: Tensor | None = None

    def take(self, index: Tensor) -> Rows:
        """The rows at `index` (R',), repeated or dropped."""
        return Rows(self.x[index], self.converged[index], self.choices[index], self.person_of[index],
                    [loss[index] for loss in self.losses], tuple(t[index] for t in self.data),
                    None if self.still is None else self.still[index])  # fmt: skip


def hypotheses_of(choices: Tensor, points: tuple[BranchPoint, ...]) -> list[Hypothesis]:
    """Each final row's Hypothesis from its choices (B, P) at the branch `points`."""
    found = []
    for row in choices.tolist():
        named = {ORIENTATION: ORIENTATIONS[0], LIMBS: None, RETRY: []}
        for point, choice in zip(points, row, strict=True):
            label = point.labels[choice]
            if point.role == RETRY:
                named[RETRY].append(label)
            else:
                named[point.role] = label
        found.append(Hypothesis(named[ORIENTATION], named[LIMBS], tuple(named[RETRY])))
    return found


def apply_orientations(x: Tensor, kind: Tensor, first: Tensor, packing: Packing) -> Tensor:
    """Start each hypothesis row from its person's camera-stage result (row `first`),
    turned around and/or tilt mirrored as its `kind` (TURNED | MIRRORED flags) says.
    x (R, N); kind, first (R,)."""
    x = x.clone()
    orient, transl = packing.block("global_orient"), packing.block("transl")
    base = x[first, orient]
    mirrored = torch.where((kind & MIRRORED > 0)[:, None], camera.tilt_mirrored(base), base)
    x[:, orient] = torch.where((kind & TURNED > 0)[:, None], camera.turned_around(mirrored), mirrored)
    x[:, transl] = x[first, transl]
    return x


def lowest_loss(loss: Tensor, person_of: Tensor, people: int) -> Tensor:
    """Each person's lowest loss over its rows. loss, person_of (R,) -> (people,)."""
    best = torch.full((people,), float("inf"), device=loss.device, dtype=loss.dtype)
    return best.scatter_reduce(0, person_of, loss, reduce="amin")


def best_rows(loss: Tensor, person_of: Tensor, people: int) -> Tensor:
    """Index of each person's lowest-loss row (the first one on ties). loss, person_of (R,)."""
    winner = loss == lowest_loss(loss, person_of, people)[person_of]
    rows = torch.where(winner, torch.arange(len(loss), device=loss.device), len(loss))
    first = torch.full((people,), len(loss), device=loss.device, dtype=rows.dtype)
    return first.scatter_reduce(0, person_of, rows, reduce="amin")


def rows_within(loss: Tensor, person_of: Tensor, people: int, ratio: float) -> Tensor:
    """Indices of the rows whose loss is at most `ratio` times their person's lowest, in
    order. loss, person_of (R,)."""
    return torch.nonzero(loss <= ratio * lowest_loss(loss, person_of, people)[person_of])[:, 0]
