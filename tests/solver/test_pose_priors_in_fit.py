"""The user's pose priors in the fit: a GMM or a VPoser decoder given to the solver
takes the place of the L2 body pose prior and pulls the pose where it says."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from test_pipeline import _keypoint_file

from smplx_capture_addon.body_model.lbs import axis_angle_to_matrix
from smplx_capture_addon.errors import CaptureError
from smplx_capture_addon.fit_request import FitRequest
from smplx_capture_addon.solver import keypoint_groups, pipeline
from smplx_capture_addon.solver.keypoint_fit import fit_keypoints
from smplx_capture_addon.solver.learned_priors import load_gmm, load_vposer
from smplx_capture_addon.solver.options import FitOptions
from smplx_capture_addon.solver.schedule import default_stages


def _quick(**kwargs) -> FitOptions:
    """A short schedule: these tests check where the prior pulls, not the fit's accuracy."""
    return FitOptions(stages=default_stages(collision=False, iteration_scale=0.3), polish_iterations=0,
                      hypotheses=False, limb_hypotheses=False, **kwargs)  # fmt: skip


def _fit_pose(model, cases, options: FitOptions) -> np.ndarray:
    fit = fit_keypoints(model, cases.keypoints[:1], cases.focal[:1], cases.image_size[:1], options)
    return fit.params["body_pose"][0].numpy().reshape(21, 3)


def _angle(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per joint rotation angle between two (21, 3) axis-angle poses."""
    ra, rb = (axis_angle_to_matrix(torch.as_tensor(p, dtype=torch.float64)) for p in (a, b))
    cos = ((ra.transpose(-1, -2) @ rb).diagonal(dim1=-2, dim2=-1).sum(-1) - 1) / 2
    return torch.arccos(cos.clamp(-1, 1)).numpy()


def _write_gmm(path: Path, mean: np.ndarray, variance: float) -> Path:
    data = {"means": mean.reshape(1, -1), "covars": variance * np.eye(63)[None], "weights": np.ones(1)}
    path.write_bytes(pickle.dumps(data, protocol=2))
    return path


def _write_constant_vposer(folder: Path, pose: np.ndarray) -> Path:
    """A VPoser v2 checkpoint whose decoder gives `pose` for every latent: zero output
    weights, the 6D rotations of `pose` as the output bias."""
    rotations = axis_angle_to_matrix(torch.as_tensor(pose, dtype=torch.float32))
    six = rotations[..., :2].reshape(-1)  # the first two columns, as a row-major 3x2
    torch.manual_seed(0)
    state = {
        "decoder_net.0.weight": torch.randn(512, 32) * 0.1, "decoder_net.0.bias": torch.zeros(512),
        "decoder_net.3.weight": torch.randn(512, 512) * 0.05, "decoder_net.3.bias": torch.zeros(512),
        "decoder_net.5.weight": torch.zeros(126, 512), "decoder_net.5.bias": six,
    }  # fmt: skip
    (folder / "snapshots").mkdir(parents=True)
    file = folder / "snapshots" / "V02_05_epoch=01.ckpt"
    torch.save({"state_dict": {f"vp_model.{k}": v for k, v in state.items()}}, file)
    return folder


@pytest.fixture(scope="module")
def l2_pose(bench_model, clean_cases) -> np.ndarray:
    return _fit_pose(bench_model, clean_cases, _quick())


@pytest.fixture(scope="module")
def prior_pose(clean_cases) -> np.ndarray:
    """(21, 3) a plausible pose that the keypoints of person 0 do not show: person 1's."""
    return clean_cases.params["body_pose"][1].numpy().reshape(21, 3).astype(np.float64)


def test_a_gmm_prior_pulls_the_pose_to_its_mean(bench_model, clean_cases, l2_pose, prior_pose, tmp_path):
    gmm = load_gmm(_write_gmm(tmp_path / "gmm.pkl", prior_pose, 1e-7))
    pose = _fit_pose(bench_model, clean_cases, _quick(gmm=gmm))
    assert _angle(pose, prior_pose).max() < 0.02, _angle(pose, prior_pose)
    assert _angle(l2_pose, prior_pose).max() > 0.2  # the L2 prior's fit is elsewhere


def test_with_vposer_the_pose_is_what_it_decodes(bench_model, clean_cases, l2_pose, prior_pose, tmp_path):
    decoder = load_vposer(_write_constant_vposer(tmp_path / "vposer", prior_pose))
    decoded = decoder.decode(torch.randn(3, 32)).numpy()
    np.testing.assert_allclose(decoded, np.tile(prior_pose.ravel(), (3, 1)), atol=1e-5)
    fit = fit_keypoints(bench_model, clean_cases.keypoints[:1], clean_cases.focal[:1],
                        clean_cases.image_size[:1], _quick(vposer=decoder))  # fmt: skip
    pose = fit.params["body_pose"][0].numpy().reshape(21, 3)
    assert _angle(pose, prior_pose).max() < 1e-3, _angle(pose, prior_pose)
    assert _angle(l2_pose, prior_pose).max() > 0.2
    # The rest of the body is still fitted: the torso lands on its keypoints.
    torso = keypoint_groups.TORSO
    error = (fit.projected[0, torso] - clean_cases.keypoints[0, torso, :2]).norm(dim=-1)
    assert float(error.mean()) < 0.05 * float(clean_cases.image_size[0, 1]), error


def test_fit_photo_uses_the_users_gmm_file_and_names_it(tmp_path, bench_model_path, clean_cases, prior_pose):
    keypoints = _keypoint_file(tmp_path / "k.json", clean_cases)
    gmm = _write_gmm(tmp_path / "gmm_08.pkl", prior_pose, 1e-7)
    request = FitRequest(keypoints=keypoints, model=bench_model_path, device="cpu", gmm=gmm)
    result = pipeline.fit_photo(request)
    assert result.solver["pose_prior"].startswith("GMM (gmm_08.pkl)")
    pose = np.asarray(result.people[0].body_pose).reshape(21, 3)
    assert _angle(pose, prior_pose).max() < 0.02
    with pytest.raises(CaptureError, match="not both"):
        pipeline.fit_photo(
            FitRequest(keypoints=keypoints, model=bench_model_path, device="cpu", vposer=tmp_path, gmm=gmm)
        )
