"""The rendered benchmark: render people with known bodies, detect and fit them as a user
would, and measure per case kind.

Each case (see `cases`) is rendered once and cached (`cache`); then the project's own
detector and fit, unchanged, run on the rendered photo through `pipeline.fit_photo`,
everyone in it, with the true focal length given. The fits are compared with the truth
by `metrics`; the figures are means over the matched people of each kind (and over all
kinds), seconds per person are the detection's per person found and the fit's per
person fitted.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from ...body_model.model import BodyModel
from ...body_model.model_file import load_model
from ...body_model.names import JOINT_NAMES
from ...errors import CaptureError
from ...fit_request import EVERYONE, FitRequest, PersonChoice
from ...keypoints.errors import KeypointError
from ...keypoints.formats import read_keypoints, write_keypoints
from ...result_format import FitResult
from ...solver.overlay import paint_fit_over_photo
from ...solver.pipeline import KEYPOINTS_FILE, KEYPOINTS_PICTURE, WarmModels, find_keypoints, fit_photo
from . import DEFAULT_COUNT, KINDS, TRAINING_SEED_START, split_of
from .cache import CACHE, Rendered, render_or_load
from .cases import evaluation_model, make_case
from .metrics import association_errors, fitted_params, match_people, person_errors
from .oracle import with_truth_readings

_UNTIMED_STAGES = ("detect", "read-keypoints", "load-model")
READINGS_FILE = "readings.json"
_TORSO = [JOINT_NAMES.index(name) for name in ("left_shoulder", "right_shoulder")]


@dataclass
class CaseOutcome:
    """One case fitted: its kind, who was rendered and found, each matched person's
    figures, and the seconds spent."""

    kind: str
    rendered: int
    torso_in_view: list[bool]
    detected: int
    found: list[int] = field(default_factory=list)  # rendered people matched to a detection
    people: list[dict] = field(default_factory=list)
    detect_seconds: float = 0.0
    fit_seconds: float = 0.0
    render_seconds: float = 0.0
    stage_seconds: dict[str, float] = field(default_factory=dict)  # the fit's, by stage in the order run


def run_rendered_bench(
    count: int = DEFAULT_COUNT,
    seed: int = 0,
    kinds: tuple[str, ...] = KINDS,
    device: str = "cpu",
    overlays: Path | None = None,
    cache: Path = CACHE,
    log: Callable[[str], None] = print,
    truth_readings: frozenset[str] | None = None,
    warm: bool = False,
) -> dict:
    """Render (or load), fit and measure `count` cases of each kind; the figures.
    `truth_readings`: see fit_case. `warm`: the detector and the fit's body model stay
    loaded from case to case, as Blender's worker keeps them (otherwise each
    case opens the detector, and its detection seconds include that)."""
    if split_of(seed) != "benchmark":
        raise CaptureError(
            f"Seed {seed} is in the training range (from {TRAINING_SEED_START}), which the benchmark never "
            "reports: give a smaller seed."
        )
    unknown = sorted(set(kinds) - set(KINDS))
    if unknown:
        raise CaptureError(f"Unknown case kind(s) {', '.join(unknown)}: choose from {', '.join(KINDS)}.")
    started = time.perf_counter()
    model = evaluation_model(load_model("default"))
    outcomes = []
    warm_models = WarmModels() if warm else None
    try:
        for kind in kinds:
            for index in range(count):
                rendered = render_or_load(make_case(kind, seed, index, model), model, cache)
                outcome = fit_case(rendered, model, device, overlays, truth_readings, warm_models)
                outcomes.append(outcome)
                log(_case_line(rendered, outcome))
    finally:
        if warm_models is not None:
            warm_models.close()
    figures = {"seed": seed, "cases_per_kind": count, "device": device, "threads": torch.get_num_threads(),
               "warm": warm, "load_average": os.getloadavg()[0]}  # fmt: skip
    figures["kinds"] = {kind: summary([o for o in outcomes if o.kind == kind]) for kind in kinds}
    figures["all"] = summary(outcomes)
    figures["renders_made"] = sum(o.render_seconds > 0 for o in outcomes)
    figures["render_seconds"] = sum(o.render_seconds for o in outcomes)
    figures["seconds"] = time.perf_counter() - started
    return figures


def fit_case(
    rendered: Rendered,
    model: BodyModel,
    device: str = "cpu",
    overlays: Path | None = None,
    truth_readings: frozenset[str] | None = None,
    warm: WarmModels | None = None,
) -> CaseOutcome:
    """Detect and fit everyone in the rendered photo with the true focal length; match
    and measure. With `truth_readings` (of oracle.TRUTH_READINGS; may be empty) the
    detections are fitted from a keypoint file, those readings replaced by the truth's:
    an empty set is the same path as read, the baseline to compare with (a file keeps
    no second facing of a person, so it can differ from the photo's own fit). `warm`: the
    loaded models to fit with (see pipeline.WarmModels); None: loaded for this case."""
    case, truths = rendered.case, rendered.truths
    outcome = CaseOutcome(case.kind, len(truths), [bool(t.seen()[_TORSO].all()) for t in truths], 0,
                          render_seconds=rendered.render_seconds)  # fmt: skip
    request = FitRequest(photo=str(rendered.photo), focal_px=case.focal_px, person=PersonChoice(EVERYONE),
                         device=device, overlay=True)  # fmt: skip
    with tempfile.TemporaryDirectory() as folder:
        try:
            if truth_readings is not None:
                request = _with_readings_file(request, rendered, truth_readings, Path(folder))
            result = fit_photo(request, out_dir=folder, warm=warm)
        except KeypointError:  # nobody found
            return outcome
        detections = read_keypoints(Path(folder) / KEYPOINTS_FILE).people
        if overlays is not None:
            _save_overlays(result, rendered, Path(folder), overlays)
    outcome.detected = len(result.people)
    outcome.detect_seconds = sum(stage.seconds for stage in result.stages if stage.name == "detect")
    outcome.fit_seconds = sum(stage.seconds for stage in result.stages if stage.name not in _UNTIMED_STAGES)
    for stage in result.stages:
        if stage.name not in _UNTIMED_STAGES:
            outcome.stage_seconds[stage.name] = outcome.stage_seconds.get(stage.name, 0.0) + stage.seconds
    matches = match_people([truth.box for truth in truths], [person.box for person in result.people])
    for rendered_index, detected_index in sorted(matches.items()):
        figures = person_errors(model, fitted_params(result.people[detected_index]), truths[rendered_index])
        figures.update(association_errors(detections[detected_index], rendered_index, truths))
        outcome.found.append(rendered_index)
        outcome.people.append(figures)
    return outcome


def _with_readings_file(
    request: FitRequest, rendered: Rendered, truth_readings: frozenset[str], folder: Path
) -> FitRequest:
    """`request` fitting the photo's detections from a keypoint file in `folder`, with
    `truth_readings` replaced by the truth's."""
    found = find_keypoints(request)
    path = folder / READINGS_FILE
    write_keypoints(path, with_truth_readings(found.detections, rendered.truths, truth_readings))
    return replace(request, keypoints=str(path))


def _save_overlays(result: FitResult, rendered: Rendered, folder: Path, overlays: Path) -> None:
    name = f"{rendered.case.kind}-{rendered.case.index:03d}"
    paint_fit_over_photo(result, rendered.photo, overlays / f"{name}-fit.png")
    shutil.copyfile(folder / KEYPOINTS_PICTURE, overlays / f"{name}-keypoints.png")


def _case_line(rendered: Rendered, outcome: CaseOutcome) -> str:
    errors = " ".join(f"{person['pa_v2v']:.0f}" for person in outcome.people) or "-"
    made = f", rendered in {rendered.render_seconds:.1f} s" if rendered.render_seconds else ""
    return (f"{rendered.case.kind} {rendered.case.index}: found {len(outcome.found)}/{outcome.rendered} "
            f"(detected {outcome.detected}), PA-V2V {errors} mm, detect {outcome.detect_seconds:.1f} s, "
            f"fit {outcome.fit_seconds:.1f} s{made}")  # fmt: skip


def _mean(values: list[float]) -> float | None:
    return float(np.mean(values)) if values else None


def summary(outcomes: list[CaseOutcome]) -> dict:
    """The figures of a set of cases (see the module doc of `metrics`); None where no
    person had the figure."""
    people = [person for outcome in outcomes for person in outcome.people]
    unseen = [joint for person in people for joint in person["unseen"]]
    legs = [joint for joint in unseen if joint["leg"]]

    def mean_of(name: str) -> float | None:
        return _mean([person[name] for person in people if name in person])

    detected = sum(o.detected for o in outcomes)
    figures = {
        "cases": len(outcomes),
        "people_rendered": sum(o.rendered for o in outcomes),
        "people_found": sum(len(o.found) for o in outcomes),
        "torso_in_view": sum(sum(o.torso_in_view) for o in outcomes),
        "found_with_torso_in_view": sum(o.torso_in_view[i] for o in outcomes for i in o.found),
        "extra_detections": detected - sum(len(o.found) for o in outcomes),
        "pa_v2v_mm": mean_of("pa_v2v"),
        "pa_v2v_max_mm": max((person["pa_v2v"] for person in people), default=None),
        "body_pa_v2v_mm": mean_of("body_pa_v2v"),
        "hands_pa_v2v_mm": mean_of("hands_pa_v2v"),
        "face_pa_v2v_mm": mean_of("face_pa_v2v"),
        "mpjpe_in_view_mm": mean_of("mpjpe_in_view"),
        "pa_mpjpe_in_view_mm": mean_of("pa_mpjpe_in_view"),
        "pelvis_depth_error_mm": _mean([abs(person["pelvis_depth"]) for person in people]),
        "pelvis_depth_bias_mm": mean_of("pelvis_depth"),
        "hands_in_view": sum(len(person.get("hand_pa_mpjpe", [])) for person in people),
        "hand_pa_mpjpe_mm": _mean([e for person in people for e in person.get("hand_pa_mpjpe", [])]),
        "faces_in_view": sum("face_pa" in person for person in people),
        "face_pa_mm": mean_of("face_pa"),
        "hands_detected": sum(person["hands"] for person in people),
        "hands_wrong_person": sum(person["hands_wrong_person"] for person in people),
        "faces_detected": sum(person["faces"] for person in people),
        "faces_wrong_person": sum(person["faces_wrong_person"] for person in people),
        "unseen_joints": len(unseen),
        "unseen_from_truth_deg": _mean([joint["from_truth"] for joint in unseen]),
        "unseen_from_relaxed_deg": _mean([joint["from_relaxed"] for joint in unseen]),
        "unseen_leg_joints": len(legs),
        "unseen_legs_from_truth_deg": _mean([joint["from_truth"] for joint in legs]),
        "unseen_legs_from_relaxed_deg": _mean([joint["from_relaxed"] for joint in legs]),
        "detect_seconds_per_person": sum(o.detect_seconds for o in outcomes) / detected if detected else None,
        "fit_seconds_per_person": sum(o.fit_seconds for o in outcomes) / detected if detected else None,
        **_time_spread(outcomes),
    }
    return figures


def _time_spread(outcomes: list[CaseOutcome]) -> dict:
    """Seconds per person (a case's detection and fit shared by the people it found):
    median, 95th percentile and the largest; and each fit stage's seconds per person."""
    per_person = [(o.detect_seconds + o.fit_seconds) / o.detected
                  for o in outcomes for _ in range(o.detected)]  # fmt: skip
    detected = sum(o.detected for o in outcomes)
    stages: dict[str, float] = {}
    for outcome in outcomes:
        for name, seconds in outcome.stage_seconds.items():
            stages[name] = stages.get(name, 0.0) + seconds
    return {
        "seconds_per_person_median": float(np.median(per_person)) if per_person else None,
        "seconds_per_person_p95": float(np.percentile(per_person, 95)) if per_person else None,
        "seconds_per_person_max": max(per_person, default=None),
        "stage_seconds_per_person": {name: total / max(detected, 1) for name, total in stages.items()},
    }
