"""A fit that starts from an earlier one (the next video frame, a refit) and one that holds
joints an artist set: fit_keypoints' `start` and `fixed_joints`."""

from __future__ import annotations

import pytest
import torch

from smplx_capture_addon.body_model.names import JOINT_NAMES, LEFT_HAND_JOINTS, RIGHT_HAND_JOINTS
from smplx_capture_addon.devtools import bench
from smplx_capture_addon.result_format import PersonFit
from smplx_capture_addon.solver import camera
from smplx_capture_addon.solver.errors import FitError
from smplx_capture_addon.solver.keypoint_fit import fit_keypoints
from smplx_capture_addon.solver.options import FitOptions, warm_start_options
from smplx_capture_addon.solver.start import start_from_result
from smplx_capture_addon.solver.variants import WHOLE, limb_variants, retry_variants, without_fixed

J = JOINT_NAMES.index


def _exact_keypoints(model, params, focal, size):
    """Every keypoint of the bodies `params`, projected, fully confident."""
    with torch.no_grad():
        points = camera.project(model(vertices=False, **params).keypoints, focal, size / 2)
    return torch.cat([points, torch.ones_like(points[..., :1])], -1)


@pytest.fixture(scope="module")
def first_frame(bench_model, clean_cases):
    """Person 0 of the clean cases fitted from scratch: the frame before."""
    rows = [0]
    return fit_keypoints(bench_model, clean_cases.keypoints[rows], clean_cases.focal[rows],
                         clean_cases.image_size[rows])  # fmt: skip


@pytest.fixture(scope="module")
def next_frame(clean_cases):
    """Person 0 a moment later: every body angle moved by about 0.1 rad, 6 cm moved."""
    truth = {name: value[:1].clone() for name, value in clean_cases.params.items()}
    generator = torch.Generator().manual_seed(1)
    truth["body_pose"] += 0.1 * torch.randn(truth["body_pose"].shape, generator=generator)
    truth["transl"] += torch.tensor([[0.04, -0.01, 0.05]])
    return truth


def test_a_warm_start_from_the_frame_before_finds_the_next_frame_in_a_fraction_of_the_work(
    bench_model, clean_cases, first_frame, next_frame
):
    """Started from the frame before (66 mm from the new pose), the warm-start schedule
    (camera stage, last stage, polish, release; no search) lands on the new pose as
    closely as a fit from scratch does, with under a third of its evaluations."""
    focal, size = clean_cases.focal[:1], clean_cases.image_size[:1]
    keypoints = _exact_keypoints(bench_model, next_frame, focal, size)
    warm = fit_keypoints(bench_model, keypoints, focal, size, warm_start_options(), start=first_frame.params)
    assert [name for name, _ in warm.stage_seconds] == ["camera", "hands-face", "polish", "release"]
    scratch = fit_keypoints(bench_model, keypoints, focal, size)
    errors = {name: bench.errors_mm(bench_model, fit.params, next_frame)["body_pa_mpjpe"]
              for name, fit in (("start", first_frame), ("warm", warm), ("scratch", scratch))}  # fmt: skip
    assert float(errors["start"]) > 30.0, errors  # the frame before is far from this pose
    assert float(errors["warm"]) < float(errors["scratch"]) + 1.0 and float(errors["warm"]) < 5.0, errors
    assert warm.evaluations < scratch.evaluations / 3, (warm.evaluations, scratch.evaluations)
    assert warm.hypotheses[0].limbs is None and warm.hypotheses[0].retries == ()


def test_a_result_files_people_are_a_start_in_the_models_own_parameters(bench_model, first_frame):
    """A result file keeps full 45-d hand poses with the mean included; start_from_result
    projects them back onto the model's hand PCA and gives the fit's own parameters."""
    params = {name: value[0].tolist() for name, value in first_frame.params.items()}
    pose = first_frame.full_pose[0]
    person = PersonFit(**{name: params[name] for name in ("betas", "expression", "global_orient", "body_pose",
                                                          "jaw_pose", "leye_pose", "reye_pose", "transl")},
                       left_hand_pose=pose[LEFT_HAND_JOINTS].reshape(-1).tolist(),
                       right_hand_pose=pose[RIGHT_HAND_JOINTS].reshape(-1).tolist())  # fmt: skip
    assert bench_model.hand_pca == 12 and len(person.left_hand_pose) == 45
    start = start_from_result(bench_model, [person])
    assert start.keys() == bench_model.parameter_sizes.keys()
    for name, value in start.items():
        torch.testing.assert_close(value, first_frame.params[name], atol=1e-4, rtol=0)


def test_a_held_joint_keeps_the_rotation_it_started_with_and_the_rest_is_fitted(
    bench_model, clean_cases, next_frame
):
    """An artist bends the left elbow their way and holds it: the full fit (every
    hypothesis, retry and restart) from that start keeps the elbow's rotation exactly,
    never tries a variant that would move it, and fits the rest of the body to the
    keypoints (its loss far below the start's, its other joints near the truth)."""
    focal, size = clean_cases.focal[:1], clean_cases.image_size[:1]
    keypoints = _exact_keypoints(bench_model, next_frame, focal, size)
    start = {name: value.clone() for name, value in next_frame.items()}
    elbow = slice(3 * (J("left_elbow") - 1), 3 * J("left_elbow"))
    start["body_pose"][:, elbow] = torch.tensor([[0.2, -1.4, 0.1]])
    start["body_pose"][:, 3 * (J("right_knee") - 1)] += 0.5  # something for the fit to mend
    fit = fit_keypoints(bench_model, keypoints, focal, size, start=start, fixed_joints=["left_elbow"])
    assert torch.equal(fit.params["body_pose"][:, elbow], start["body_pose"][:, elbow])
    knee = 3 * (J("right_knee") - 1)
    assert abs(float(fit.params["body_pose"][0, knee] - next_frame["body_pose"][0, knee])) < 0.05
    moving_it = {v.label for v in (*limb_variants(), *retry_variants()) if J("left_elbow") in v.moves()}
    assert not {fit.hypotheses[0].limbs, *fit.hypotheses[0].retries} & moving_it
    unheld = fit_keypoints(bench_model, keypoints, focal, size, warm_start_options(), start=start)
    assert not torch.equal(unheld.params["body_pose"][:, elbow], start["body_pose"][:, elbow])


def test_holding_the_root_holds_the_orientation_and_tries_no_turn(bench_model, clean_cases, next_frame):
    focal, size = clean_cases.focal[:1], clean_cases.image_size[:1]
    keypoints = _exact_keypoints(bench_model, next_frame, focal, size)
    options = FitOptions(
        restart_above_px=0.0
    )  # every fit would be restarted, turned, unless the root is held
    fit = fit_keypoints(
        bench_model, keypoints, focal, size, options, start=next_frame, fixed_joints=["pelvis"]
    )
    assert torch.equal(fit.params["global_orient"], next_frame["global_orient"])
    hypothesis = fit.hypotheses[0]
    assert hypothesis.orientation == "as estimated" and hypothesis.restart_turn_degrees is None
    assert all(name is None or "turned" not in name for name in hypothesis.retries)
    assert "restart" not in [name for name, _ in fit.stage_seconds]


def test_variants_that_would_move_a_held_joint_are_left_out():
    held = {J("left_elbow")}
    kept = without_fixed(retry_variants(), held)
    left_out = set(retry_variants()) - set(kept)
    assert left_out and all(held & variant.moves() for variant in left_out)
    assert all(not held & variant.moves() for variant in kept)
    # The left arm mirrored whole moves its elbow; at the root it leaves the elbow's own rotation.
    whole_arm = [v for v in limb_variants() if v.kind == WHOLE and v.joints == (J("left_shoulder"),)]
    assert whole_arm and whole_arm[0] not in without_fixed(limb_variants(), held)
    assert len(without_fixed(retry_variants(), {J("pelvis")})) == len(retry_variants()) - 4  # the turns


@pytest.mark.parametrize(
    ("start", "joints", "message"),
    [
        (None, ["left_elbw"], "Unknown joints to hold fixed: left_elbw"),
        (None, ["left_index1"], "finger joints can only be held all together"),
        ({"betas": torch.zeros(1, 10)}, [], "has no 'expression'"),
        ("wrong shape", [], "has shape"),
    ],
)
def test_bad_starts_and_held_joints_are_refused_before_fitting(
    bench_model, clean_cases, start, joints, message
):
    if start == "wrong shape":
        start = {name: torch.zeros(2, size) for name, size in bench_model.parameter_sizes.items()}
    keypoints, focal, size = clean_cases.keypoints[:1], clean_cases.focal[:1], clean_cases.image_size[:1]
    with pytest.raises(FitError, match=message):
        fit_keypoints(bench_model, keypoints, focal, size, start=start, fixed_joints=joints,
                      cancel=lambda: pytest.fail("optimisation started"))  # fmt: skip


def test_a_whole_hand_can_be_held(bench_model, clean_cases, first_frame):
    """All 15 joints of a hand hold its PCA coefficients."""
    keypoints = clean_cases.keypoints[:1]
    hand = JOINT_NAMES[LEFT_HAND_JOINTS]
    fit = fit_keypoints(bench_model, keypoints, clean_cases.focal[:1], clean_cases.image_size[:1],
                        warm_start_options(), start=first_frame.params, fixed_joints=hand)  # fmt: skip
    assert torch.equal(fit.params["left_hand_pose"], first_frame.params["left_hand_pose"])
