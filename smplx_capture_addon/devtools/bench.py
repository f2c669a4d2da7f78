"""The synthetic benchmark: fit people whose true body is known, and measure.

Ground truth: poses of DeepMimic motion clips (see `motions`) on the benchmark model of
`synthetic_cases`, random shapes, hands, expressions and cameras. Reported: MPJPE and
PA-MPJPE (body joints, each hand's joints, face landmarks), PA vertex-to-vertex error
(whole mesh and per part) in mm; seconds per person fitted alone and people per second
fitted as one batch; the batch-versus-alone difference; the zero-noise reprojection
error; the collision term's effect on a forearm pushed into the torso; the same fits
with the reference's optimiser (torch.optim.LBFGS with strong-Wolfe line search) in
place of ours; peak memory.
"""

from __future__ import annotations

import os
import resource
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ..body_model.model import BodyModel
from ..body_model.model_file import load_model
from ..body_model.names import JOINT_NAMES, LEFT_HAND_JOINTS, RIGHT_HAND_JOINTS
from ..errors import CaptureError
from ..solver import collision, priors
from ..solver.keypoint_fit import fit_keypoints
from ..solver.keypoint_groups import BODY, FACE, HANDS
from ..solver.options import FitOptions
from ..solver.schedule import default_stages
from . import motions, synthetic_cases
from .reference_lbfgs import StrongWolfeLbfgs

_J = JOINT_NAMES.index
BODY_JOINTS = list(range(22))
HAND_JOINTS = {"left": [_J("left_wrist"), *range(55)[LEFT_HAND_JOINTS]],
               "right": [_J("right_wrist"), *range(55)[RIGHT_HAND_JOINTS]]}  # fmt: skip
FACE_LANDMARKS = list(range(76, 127))


def procrustes(pred: Tensor, true: Tensor) -> Tensor:
    """Align pred to true by the best similarity transform. (B, N, 3) each -> (B, N, 3)."""
    mu_p, mu_t = pred.mean(1, keepdim=True), true.mean(1, keepdim=True)
    p, t = pred - mu_p, true - mu_t
    u, s, vh = torch.linalg.svd(p.transpose(1, 2) @ t)
    sign = torch.sign(torch.det(u @ vh))
    d = torch.ones_like(s)
    d[:, -1] = sign
    rotation = u @ torch.diag_embed(d) @ vh
    scale = (s * d).sum(-1) / p.square().sum((1, 2))
    return scale[:, None, None] * p @ rotation + mu_t


def _mean_mm(a: Tensor, b: Tensor) -> Tensor:
    """(B, N, 3) -> (B,) mean distance in mm."""
    return (a - b).norm(dim=-1).mean(-1) * 1000.0


def errors_mm(model: BodyModel, fitted: dict[str, Tensor], truth: dict[str, Tensor]) -> dict[str, Tensor]:
    """Per-person errors (B,) in mm of a fit against the ground truth."""
    with torch.no_grad():
        fit_out, true_out = model(**fitted), model(**truth)
    fj, tj = fit_out.joints, true_out.joints
    result = {
        "body_mpjpe": _mean_mm(fj[:, BODY_JOINTS] - fj[:, :1], tj[:, BODY_JOINTS] - tj[:, :1]),
        "body_pa_mpjpe": _mean_mm(procrustes(fj[:, BODY_JOINTS], tj[:, BODY_JOINTS]), tj[:, BODY_JOINTS]),
    }
    hands_mpjpe, hands_pa = [], []
    for joints in HAND_JOINTS.values():
        f, t = fj[:, joints], tj[:, joints]
        hands_mpjpe.append(_mean_mm(f - f[:, :1], t - t[:, :1]))
        hands_pa.append(_mean_mm(procrustes(f, t), t))
    result["hands_mpjpe"] = torch.stack(hands_mpjpe).mean(0)
    result["hands_pa_mpjpe"] = torch.stack(hands_pa).mean(0)
    fl, tl = fit_out.keypoints[:, FACE_LANDMARKS], true_out.keypoints[:, FACE_LANDMARKS]
    result["face_mpjpe"] = _mean_mm(fl - fl.mean(1, keepdim=True), tl - tl.mean(1, keepdim=True))
    result["face_pa_mpjpe"] = _mean_mm(procrustes(fl, tl), tl)
    fv, tv = fit_out.vertices, true_out.vertices
    result["pa_v2v"] = _mean_mm(procrustes(fv, tv), tv)
    owner = model.full_weights.argmax(1)
    hand_owner = torch.isin(owner, torch.tensor([*HAND_JOINTS["left"], *HAND_JOINTS["right"]]))
    face_owner = torch.isin(owner, torch.tensor([_J("head"), _J("jaw"), _J("left_eye_smplhf"),
                                                 _J("right_eye_smplhf")]))  # fmt: skip
    for part, selected in (("body", ~hand_owner & ~face_owner), ("hands", hand_owner), ("face", face_owner)):
        result[f"{part}_pa_v2v"] = _mean_mm(procrustes(fv[:, selected], tv[:, selected]), tv[:, selected])
    return result


def reprojection_px(projected: Tensor, clean: Tensor, height: Tensor) -> Tensor:
    """(B,) mean distance of fitted projections to the noise-free ones, pixels at a
    1000-pixel image height."""
    return (projected - clean).norm(dim=-1).mean(-1) * 1000.0 / height


def _collision_pose() -> tuple[np.ndarray, np.ndarray]:
    """A relaxed pose with the left forearm and hand pushed deep into the torso: of a
    grid of shoulder and elbow rotations, the one whose forearm and hand overlap the
    abdomen and chest capsules most."""
    from .synthetic_model import rest_joints

    grid = np.array(np.meshgrid(np.linspace(-1.5, 1.5, 7), np.linspace(-1.5, 1.5, 7), (-1.2, -0.6, 0.0),
                                (-1.5, -2.0, -2.5), indexing="ij")).reshape(4, -1).T  # fmt: skip
    poses = np.repeat(priors.relaxed_body_pose().numpy().reshape(1, 21, 3), len(grid), axis=0)
    poses[:, _J("left_shoulder") - 1] = grid[:, :3]
    poses[:, _J("left_elbow") - 1] = np.stack([np.zeros(len(grid)), grid[:, 3], np.zeros(len(grid))], 1)
    rest = torch.as_tensor(rest_joints(), dtype=torch.float32)
    joints = _posed_skeleton(rest, torch.as_tensor(poses.reshape(len(grid), 63), dtype=torch.float32))
    pairs = [k for k, (a, b) in enumerate(collision.PAIRS)
             if a in ("left_forearm", "left_hand") and b in ("abdomen", "chest")]  # fmt: skip
    depth = collision.capsule_overlaps(joints)[:, pairs].sum(-1)
    return np.zeros((1, 3)), poses[int(depth.argmax())].reshape(1, 63)


def _posed_skeleton(rest: Tensor, body_pose: Tensor) -> Tensor:
    from ..body_model import lbs
    from ..body_model.names import JOINT_PARENTS

    pose = torch.zeros(body_pose.shape[0], 55, 3)
    pose[:, 1:22] = body_pose.view(-1, 21, 3)
    tree = lbs.kinematic_tree(list(JOINT_PARENTS))
    _, joints = lbs.forward_kinematics(
        lbs.axis_angle_to_matrix(pose), rest[None].expand(len(pose), -1, -1), tree
    )
    return joints


def stage_seconds_mean(fits: list) -> dict[str, float]:
    """Each stage's mean seconds over `fits` (BatchFit), by stage name in the order run;
    a stage that only some fits ran (the restart) counts 0 for the others."""
    names = list(dict.fromkeys(name for fit in fits for name, _ in fit.stage_seconds))
    spent = {name: 0.0 for name in names}
    for fit in fits:
        for name, seconds in fit.stage_seconds:
            spent[name] += seconds
    return {name: total / len(fits) for name, total in spent.items()}


def run_bench(count: int = 8, seed: int = 0, noise_px: float = 2.0, drop: float = 0.1, device: str = "cpu",
              log=print) -> dict:  # fmt: skip
    """Run the suite; returns the figures (see the module docstring)."""
    if not motions.available_clips():
        raise CaptureError(f"No motion clips in {motions.MOTION_CACHE}: run `python3 build.py setup` first.")
    with tempfile.TemporaryDirectory() as folder:
        data = load_model(synthetic_cases.write_bench_model(Path(folder) / "SMPLX_NEUTRAL.npz", seed=seed))
    model = BodyModel(data, face_contour=True).to(device)
    orient, pose = motions.sample_poses(count, np.random.default_rng(seed))
    cases = synthetic_cases.make_cases(model.cpu(), orient, pose, seed=seed + 1, noise_px=noise_px, drop=drop)
    model.to(device)
    figures: dict = {"people": count, "noise_px": noise_px, "dropped": drop, "device": device,
                     "threads": torch.get_num_threads(), "load_average": os.getloadavg()[0]}  # fmt: skip

    def fit(rows, keypoints=None, options=None):
        keypoints = cases.keypoints if keypoints is None else keypoints
        started = time.perf_counter()
        result = fit_keypoints(model, keypoints[rows], cases.focal[rows], cases.image_size[rows], options)
        return result, time.perf_counter() - started

    # The first fit of a process pays one-time set-up (torch.func tracing, allocator):
    # timed on its own, then every person is timed warm.
    _, figures["first_fit_seconds"] = fit([0])
    alone, seconds = [], []
    for person in range(count):
        result, took = fit([person])
        alone.append(result)
        seconds.append(took)
        log(f"person {person}: {took:.2f} s alone")
    figures["seconds_per_person"] = float(np.mean(seconds))
    figures["seconds_per_person_median"] = float(np.median(seconds))
    figures["seconds_per_person_p95"] = float(np.percentile(seconds, 95))
    figures["stage_seconds_per_person"] = stage_seconds_mean(alone)
    batch, took = fit(list(range(count)))
    figures["batch_seconds"] = took
    figures["people_per_second_batched"] = count / took
    log(f"batch of {count}: {took:.2f} s")
    alone_params = {k: torch.cat([r.params[k] for r in alone]) for k in batch.params}
    figures["batch_vs_alone_max_pose_difference_rad"] = float(
        (alone_params["body_pose"] - batch.params["body_pose"]).abs().max()
    )
    truth = {k: v.to(device) for k, v in cases.params.items()}
    cpu = {k: v.cpu() for k, v in truth.items()}
    model.cpu()
    errors = errors_mm(model, {k: v.cpu() for k, v in alone_params.items()}, cpu)
    figures.update({f"{k}_mm": float(v.mean()) for k, v in errors.items()})
    # A few people whose limbs the fit puts on the wrong side in depth dominate the means.
    figures["pa_v2v_median_mm"] = float(errors["pa_v2v"].median())
    figures["pa_v2v_under_30mm_fraction"] = float((errors["pa_v2v"] < 30.0).float().mean())
    height = cases.image_size[:, 1]
    projected = torch.cat([r.projected.cpu() for r in alone])
    for part, group in (("body", BODY), ("hands", HANDS), ("face", FACE)):
        figures[f"{part}_reprojection_px"] = float(reprojection_px(projected[:, group], cases.clean[:, group],
                                                                   height).mean())  # fmt: skip
    model.to(device)

    clean = torch.cat([cases.clean, torch.ones_like(cases.clean[..., :1])], -1)
    exact, _ = fit(list(range(count)), keypoints=clean)
    figures["zero_noise_reprojection_px"] = float(
        reprojection_px(exact.projected.cpu(), cases.clean, height).mean()
    )
    log(f"zero noise: {figures['zero_noise_reprojection_px']:.2f} px")
    figures.update(_collision_case(model, device, seed, noise_px))
    figures.update(_line_search_case(fit, model, cases, alone_params, seconds, device))
    figures["peak_memory_mb"] = (torch.cuda.max_memory_allocated() / 2**20 if device == "cuda"
                                 else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)  # fmt: skip
    return figures


def _line_search_case(fit, model: BodyModel, cases, alone_params: dict, seconds: list, device: str) -> dict:
    """The same people fitted with the reference's optimiser (torch.optim.LBFGS, strong
    Wolfe, one problem per batch) in place of the batched per-person L-BFGS: its time
    and error, and ours on the same people. Half the people (at least 2), fitted alone."""
    people = list(range(max(2, len(seconds) // 2)))
    options = replace(FitOptions(), lbfgs=StrongWolfeLbfgs())
    results, took = zip(*(fit([person], options=options) for person in people), strict=True)
    truth = {k: v[people].cpu() for k, v in cases.params.items()}
    model.cpu()

    def pa_v2v(params: dict) -> float:
        return float(errors_mm(model, {k: v.cpu() for k, v in params.items()}, truth)["pa_v2v"].mean())

    theirs = pa_v2v({k: torch.cat([r.params[k] for r in results]) for k in results[0].params})
    ours = pa_v2v({k: v[people] for k, v in alone_params.items()})
    model.to(device)
    return {
        "line_search_people": len(people),
        "strong_wolfe_seconds_per_person": float(np.mean(took)),
        "strong_wolfe_pa_v2v_mm": theirs,
        "batched_seconds_per_person": float(np.mean([seconds[p] for p in people])),
        "batched_pa_v2v_mm": ours,
    }


def _collision_case(model: BodyModel, device: str, seed: int, noise_px: float) -> dict:
    orient, pose = _collision_pose()
    cases = synthetic_cases.make_cases(model.cpu(), orient, pose, seed=seed + 2, noise_px=noise_px, drop=0.0)
    model.to(device)
    size = collision.body_size(model(vertices=False).joints[0].detach().cpu())
    figures = {}
    with torch.no_grad():
        truth = model(vertices=False, **{k: v.to(device) for k, v in cases.params.items()}).joints
    figures["collision_truth_overlap_mm"] = float(collision.capsule_overlaps(truth.cpu(), size).sum()) * 1000
    for label, enabled in (("without", False), ("with", True)):
        options = replace(FitOptions(), stages=default_stages(collision=enabled))
        started = time.perf_counter()
        result = fit_keypoints(model, cases.keypoints, cases.focal, cases.image_size, options)
        figures[f"collision_{label}_seconds"] = time.perf_counter() - started
        joints = model(vertices=False, **result.params).joints.detach().cpu()
        figures[f"collision_{label}_overlap_mm"] = (
            float(collision.capsule_overlaps(joints, size).sum()) * 1000
        )
        figures[f"collision_{label}_reprojection_px"] = float(
            reprojection_px(result.projected.cpu(), cases.clean, cases.image_size[:, 1]).mean()
        )
    return figures
