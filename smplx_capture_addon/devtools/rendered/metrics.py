"""How a fit of a rendered case compares with its truth.

People: the detected people are matched to the rendered ones by their boxes (the box of
what is seen of each rendered person, from the id map, against the detector's box), the
pairing of largest total overlap with an intersection over union of at least MIN_IOU.

Per matched person, in mm, the bodies posed by the open default body:
- pa_v2v: mean vertex distance after the best similarity transform, the whole mesh and
  its body, hands and face parts (`bench.errors_mm`);
- mpjpe_in_view / pa_mpjpe_in_view: the body joints (pelvis to wrists) in view, after
  moving the fit onto the truth by their mean (MPJPE; the pelvis may be out of the
  frame) or by the best similarity transform (at least 4 joints);
- pelvis_depth: how much farther from the camera than the truth the fit's pelvis lies
  (negative: nearer), in mm; the PA figures above leave placement and scale out;
- hand: PA-MPJPE of the wrist and 15 finger joints, for each hand with most of them in
  view; face: PA error of the 51 face landmarks, when most are in view;
- unseen joints: a body joint whose turn shows nowhere in the image (the joints it
  carries, or itself when it carries none, all occluded or outside), with the angle of
  its fitted turn from the true one and from the solver's relaxed pose, in degrees;
- associations: a hand or a face the detector gave this person that lies nearer (mean
  pixel distance of its points) to another rendered person's hand or face than to this
  person's own.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np
import torch

from ...body_model.model import BodyModel
from ...body_model.names import JOINT_NAMES, JOINT_PARENTS, KEYPOINT_NAMES
from ...body_model.numpy_body import axis_angle_to_matrix
from ...keypoints.layouts import LAYOUTS
from ...keypoints.people import Person
from ...result_format import PersonFit
from ...solver.priors import relaxed_body_pose
from ..bench import FACE_LANDMARKS, HAND_JOINTS, errors_mm, procrustes
from .cases import posed
from .truth import PersonTruth

MIN_IOU = 0.3
BODY_JOINTS = list(range(22))
LEG_JOINTS = tuple(JOINT_NAMES.index(f"{side}_{part}") for side in ("left", "right")
                   for part in ("hip", "knee", "ankle", "foot"))  # fmt: skip
_PARAMS = ("betas", "expression", "global_orient", "body_pose", "jaw_pose", "leye_pose", "reye_pose",
           "left_hand_pose", "right_hand_pose", "transl")  # fmt: skip
_FACE_SET = "mediapipe_face_478"


Box = Sequence[float]


def iou(a: Box, b: Box) -> float:
    width = min(a[2], b[2]) - max(a[0], b[0])
    height = min(a[3], b[3]) - max(a[1], b[1])
    shared = max(width, 0.0) * max(height, 0.0)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - shared
    return shared / union if union > 0 else 0.0


def match_people(truth_boxes: list[Box | None], detected_boxes: list[Box]) -> dict[int, int]:
    """Rendered person -> detected person: the one-to-one pairing of largest summed IoU
    among pairs overlapping by at least MIN_IOU (a few people: every pairing is tried)."""
    def overlapping(truth: Box | None) -> list[int]:
        return [j for j, box in enumerate(detected_boxes) if truth is not None and iou(truth, box) >= MIN_IOU]

    options = [[None, *overlapping(truth)] for truth in truth_boxes]
    best, best_score = {}, 0.0
    for choice in itertools.product(*options):
        taken = [j for j in choice if j is not None]
        if len(taken) != len(set(taken)):
            continue
        score = sum(iou(truth_boxes[i], detected_boxes[j]) for i, j in enumerate(choice) if j is not None)
        if score > best_score:
            best, best_score = {i: j for i, j in enumerate(choice) if j is not None}, score
    return best


def fitted_params(person: PersonFit) -> dict[str, list[float]]:
    return {name: list(getattr(person, name)) for name in _PARAMS}


def person_errors(model: BodyModel, fitted: dict, truth: PersonTruth) -> dict[str, float | list]:
    """The figures of one matched person (see the module doc); a figure that does not
    apply (no hand in view, ...) is left out."""
    fit_out, true_out = posed(model, fitted), posed(model, truth.params)
    mesh = errors_mm(model, _batch_of_one(fitted), _batch_of_one(truth.params))
    figures: dict[str, float | list] = {f"{part}pa_v2v": float(mesh[f"{part}pa_v2v"][0])
                                        for part in ("", "body_", "hands_", "face_")}  # fmt: skip
    seen = truth.seen()
    figures.update(_in_view_joint_errors(fit_out.joints[0], true_out.joints[0], seen))
    # The camera looks down its +z axis: depth is a joint's z in camera space.
    figures["pelvis_depth"] = float(fit_out.joints[0, 0, 2] - true_out.joints[0, 0, 2]) * 1000.0
    hands = [_pa_mm(fit_out.joints[0, joints], true_out.joints[0, joints])
             for joints in HAND_JOINTS.values() if seen[joints].mean() > 0.5]  # fmt: skip
    if hands:
        figures["hand_pa_mpjpe"] = hands
    if seen[FACE_LANDMARKS].mean() > 0.5:
        face = FACE_LANDMARKS
        figures["face_pa"] = _pa_mm(fit_out.keypoints[0, face], true_out.keypoints[0, face])
    true_pose = np.asarray(truth.params["body_pose"])
    figures["unseen"] = unseen_joint_angles(np.asarray(fitted["body_pose"]), true_pose, seen)
    return figures


def _batch_of_one(params: dict) -> dict[str, torch.Tensor]:
    return {k: torch.as_tensor(np.asarray(v, dtype=np.float64))[None] for k, v in params.items()}


def _pa_mm(fit: torch.Tensor, true: torch.Tensor) -> float:
    return float((procrustes(fit[None], true[None])[0] - true).norm(dim=-1).mean() * 1000.0)


def _in_view_joint_errors(fit: torch.Tensor, true: torch.Tensor, seen: np.ndarray) -> dict[str, float]:
    joints = [j for j in BODY_JOINTS if seen[j]]
    if not joints:
        return {}
    f, t = fit[joints], true[joints]
    figures = {"mpjpe_in_view": float(((f - f.mean(0)) - (t - t.mean(0))).norm(dim=-1).mean() * 1000.0)}
    if len(joints) >= 4:
        figures["pa_mpjpe_in_view"] = _pa_mm(f, t)
    return figures


def unseen_body_joints(seen: np.ndarray) -> list[int]:
    """Body joints (1-21) whose turn nothing in view shows: every joint they carry (or,
    carrying none, the joint itself) out of view."""
    unseen = []
    for joint in range(1, 22):
        carried = [child for child, parent in enumerate(JOINT_PARENTS) if parent == joint] or [joint]
        if not seen[carried].any():
            unseen.append(joint)
    return unseen


def unseen_joint_angles(fit_pose: np.ndarray, true_pose: np.ndarray, seen: np.ndarray) -> list[dict]:
    """Per unseen body joint: its name and the angles (degrees) of its fitted turn from
    the true turn and from the relaxed pose."""
    relaxed = relaxed_body_pose().numpy().reshape(21, 3)
    fit, true = fit_pose.reshape(21, 3), true_pose.reshape(21, 3)
    return [{"joint": JOINT_NAMES[j], "leg": j in LEG_JOINTS,
             "from_truth": _angle_deg(fit[j - 1], true[j - 1]),
             "from_relaxed": _angle_deg(fit[j - 1], relaxed[j - 1])}
            for j in unseen_body_joints(seen)]  # fmt: skip


def _angle_deg(a: np.ndarray, b: np.ndarray) -> float:
    """Angle of the turn between two axis-angle rotations."""
    relative = axis_angle_to_matrix(a).T @ axis_angle_to_matrix(b)
    return float(np.degrees(np.arccos(np.clip((np.trace(relative) - 1.0) / 2.0, -1.0, 1.0))))


def association_errors(detected: Person, owner: int, truths: list[PersonTruth]) -> dict[str, int]:
    """Hands and face the detector gave one person (matched to rendered person `owner`):
    how many, and how many belong to another rendered person (see the module doc)."""
    counts = {"hands": 0, "hands_wrong_person": 0, "faces": 0, "faces_wrong_person": 0}
    for side in ("left", "right"):
        points = detected.keypoint_sets.get(f"hand_21_{side}")
        if points is not None:
            counts["hands"] += 1
            counts["hands_wrong_person"] += _nearest_other(points, LAYOUTS[f"hand_21_{side}"].mapping, owner,
                                                           truths, sides=True)  # fmt: skip
    face = detected.keypoint_sets.get(_FACE_SET)
    if face is not None:
        counts["faces"] += 1
        mapping = LAYOUTS[_FACE_SET].mapping
        counts["faces_wrong_person"] += _nearest_other(face, mapping, owner, truths, sides=False)
    return counts


def _nearest_other(points: np.ndarray, mapping, owner: int, truths: list[PersonTruth], sides: bool) -> bool:
    """Whether the detected points lie nearer another person's same part (either hand,
    for hands) than the owner's."""
    rows = [(index, name) for index, name, _ in mapping if name in KEYPOINT_NAMES and points[index, 2] > 0]
    if not rows:
        return False
    found = np.array([points[index, :2] for index, _ in rows])
    names = [name for _, name in rows]
    variants = [names]
    if sides:
        other = [n.replace("left_", "@").replace("right_", "left_").replace("@", "right_") for n in names]
        variants.append(other)

    def distance(person: PersonTruth) -> float:
        return min(float(np.linalg.norm(found - person.projected[[KEYPOINT_NAMES.index(n) for n in variant]],
                                         axis=1).mean()) for variant in variants)  # fmt: skip

    distances = [distance(person) for person in truths]
    return int(np.argmin(distances)) != owner
