"""The user-supplied learned priors: VPoser checkpoints (v1 and v2 layouts) and SMPLify's
GMM pickle, built here with the real key names and shapes and random weights."""

from __future__ import annotations

import math
import os
import pickle
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from smplx_capture_addon.errors import CaptureError
from smplx_capture_addon.solver import learned_priors
from smplx_capture_addon.solver.learned_priors import gmm_residuals, load_gmm, load_vposer

# ----------------------------------------------------------------- synthetic checkpoints


class _V1(nn.Module):
    """Parameter names and sizes of human_body_prior v1's VPoser (num_neurons 512,
    latentD 32, 21 joints; the encoder reads 21 rotation matrices)."""

    def __init__(self):
        super().__init__()
        self.bodyprior_enc_bn1 = nn.BatchNorm1d(21 * 9)
        self.bodyprior_enc_fc1 = nn.Linear(21 * 9, 512)
        self.bodyprior_enc_bn2 = nn.BatchNorm1d(512)
        self.bodyprior_enc_fc2 = nn.Linear(512, 512)
        self.bodyprior_enc_mu = nn.Linear(512, 32)
        self.bodyprior_enc_logvar = nn.Linear(512, 32)
        self.bodyprior_dec_fc1 = nn.Linear(32, 512)
        self.bodyprior_dec_fc2 = nn.Linear(512, 512)
        self.bodyprior_dec_out = nn.Linear(512, 21 * 6)


class _NormalDist(nn.Module):
    def __init__(self):
        super().__init__()
        self.mu = nn.Linear(512, 32)
        self.logvar = nn.Linear(512, 32)


class _V2(nn.Module):
    """Parameter names of human_body_prior v2's VPoser: two nn.Sequential, indices as there."""

    def __init__(self):
        super().__init__()
        self.encoder_net = nn.Sequential(
            nn.Flatten(),
            nn.BatchNorm1d(63),
            nn.Linear(63, 512),
            nn.LeakyReLU(),
            nn.BatchNorm1d(512),
            nn.Dropout(0.1),
            nn.Linear(512, 512),
            nn.Linear(512, 512),
            _NormalDist(),
        )
        self.decoder_net = nn.Sequential(
            nn.Linear(32, 512),
            nn.LeakyReLU(),
            nn.Dropout(0.1),
            nn.Linear(512, 512),
            nn.LeakyReLU(),
            nn.Linear(512, 21 * 6),
        )


def _v1_state(seed: int = 0) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    return _V1().state_dict()


def _v2_state(seed: int = 1) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    return {f"vp_model.{key}": value for key, value in _V2().state_dict().items()}


def _lightning(state: dict[str, torch.Tensor]) -> dict[str, object]:
    return {"epoch": 13, "global_step": 1000, "pytorch-lightning_version": "1.2.0", "state_dict": state}


def _write_v1(folder: Path, state: dict[str, torch.Tensor] | None = None) -> Path:
    (folder / "snapshots").mkdir(parents=True)
    (folder / "TR00_004_00_WO_accad.ini").write_text("[sample-setting]\nnum_neurons : 512\nlatentD : 32\n")
    file = folder / "snapshots" / "TR00_E096.pt"
    # The 2019 snapshots predate torch's zip format.
    torch.save(state if state is not None else _v1_state(), file, _use_new_zipfile_serialization=False)
    return file


def _write_v2(folder: Path, checkpoint: object | None = None) -> Path:
    (folder / "snapshots").mkdir(parents=True)
    (folder / "V02_05.yaml").write_text("model_params:\n  latentD: 32\n  num_neurons: 512\n")
    file = folder / "snapshots" / "V02_05_epoch=13_val_loss=0.03.ckpt"
    torch.save(checkpoint if checkpoint is not None else _lightning(_v2_state()), file)
    return file


# ----------------------------------------------------------- the independent decoder


def _gram_schmidt(six: np.ndarray) -> np.ndarray:
    """(21, 6) -> (21, 3, 3): the 6 numbers as a row-major 3x2 matrix [a b]; columns
    a/|a|, the unit part of b orthogonal to it, their cross product."""
    out = np.empty((len(six), 3, 3))
    for joint, values in enumerate(six):
        a, b = values.reshape(3, 2).T
        c1 = a / np.linalg.norm(a)
        c2 = b - (c1 @ b) * c1
        c2 /= np.linalg.norm(c2)
        out[joint] = np.column_stack([c1, c2, np.cross(c1, c2)])
    return out


def _rodrigues(axis_angle: np.ndarray) -> np.ndarray:
    angle = np.linalg.norm(axis_angle)
    if angle < 1e-12:
        return np.eye(3)
    x, y, z = axis_angle / angle
    skew = np.array([[0, -z, y], [z, 0, -x], [-y, x, 0]])
    return np.eye(3) + math.sin(angle) * skew + (1 - math.cos(angle)) * skew @ skew


def _reference_rotations(
    state: dict[str, torch.Tensor], layers: tuple[str, ...], slope: float, z: np.ndarray
):
    """(B, 32) -> (B, 21, 3, 3) by plain matrix products of the saved weights."""

    def linear(name: str, x: np.ndarray) -> np.ndarray:
        return x @ state[f"{name}.weight"].double().numpy().T + state[f"{name}.bias"].double().numpy()

    def leaky(x: np.ndarray) -> np.ndarray:
        return np.where(x > 0, x, slope * x)

    out = linear(layers[2], leaky(linear(layers[1], leaky(linear(layers[0], z)))))
    return np.stack([_gram_schmidt(row.reshape(21, 6)) for row in out])


V1_LAYERS = ("bodyprior_dec_fc1", "bodyprior_dec_fc2", "bodyprior_dec_out")
V2_LAYERS = ("vp_model.decoder_net.0", "vp_model.decoder_net.3", "vp_model.decoder_net.5")

# ----------------------------------------------------------------------------- VPoser


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_loads_from_the_folder_and_from_the_file(tmp_path: Path, version: str):
    file = (_write_v1 if version == "v1" else _write_v2)(tmp_path / "vposer")
    z = torch.randn(4, 32, generator=torch.Generator().manual_seed(5))
    poses = []
    for path in (tmp_path / "vposer", file.parent, file, str(file)):
        decoder = load_vposer(path, "cpu", torch.float64)
        assert decoder.version == version
        assert decoder.latent_dim == 32
        poses.append(decoder.decode(z.double()))
    for pose in poses:
        torch.testing.assert_close(pose, poses[0], rtol=0, atol=0)
    assert poses[0].shape == (4, 63)
    assert torch.isfinite(poses[0]).all()


@pytest.mark.parametrize(("version", "layers", "slope"), [("v1", V1_LAYERS, 0.2), ("v2", V2_LAYERS, 0.01)])
def test_decoding_matches_matrix_products_of_the_weights(tmp_path: Path, version, layers, slope):
    file = (_write_v1 if version == "v1" else _write_v2)(tmp_path / "vposer")
    state = _v1_state() if version == "v1" else _v2_state()
    decoder = load_vposer(file, "cpu", torch.float64)
    z = np.random.default_rng(3).normal(size=(5, 32)) * 2.0
    expected = _reference_rotations(state, layers, slope, z)
    # The reference's rotations are rotations: orthonormal with det +1.
    assert np.allclose(expected @ expected.transpose(0, 1, 3, 2), np.eye(3), atol=1e-12)
    assert np.allclose(np.linalg.det(expected), 1.0, atol=1e-12)

    matrices = decoder.decode_matrices(torch.from_numpy(z)).numpy()
    np.testing.assert_allclose(matrices, expected, atol=1e-10)
    # The axis-angles decode back (Rodrigues, written here) to the same rotations.
    axis_angles = decoder.decode(torch.from_numpy(z)).numpy().reshape(5, 21, 3)
    back = np.stack([[_rodrigues(aa) for aa in row] for row in axis_angles])
    np.testing.assert_allclose(back, expected, atol=1e-9)
    assert (np.linalg.norm(axis_angles, axis=-1) <= math.pi + 1e-9).all()


def test_the_two_layouts_differ_in_their_leaky_relu_slope(tmp_path: Path):
    # The same weights saved in both layouts decode alike only where no unit is negative:
    # v1 uses slope 0.2, v2 nn.LeakyReLU()'s 0.01.
    v1_state = _v1_state()
    v2_state = {
        f"vp_model.{v2}.{part}": v1_state[f"{v1}.{part}"]
        for v1, v2 in zip(V1_LAYERS, ("decoder_net.0", "decoder_net.3", "decoder_net.5"), strict=True)
        for part in ("weight", "bias")
    }
    v1 = load_vposer(_write_v1(tmp_path / "a", v1_state), "cpu", torch.float64)
    v2 = load_vposer(_write_v2(tmp_path / "b", _lightning(v2_state)), "cpu", torch.float64)
    assert (v1.slope, v2.slope) == (0.2, 0.01)
    z = torch.randn(3, 32, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    assert not torch.allclose(v1.decode(z), v2.decode(z))


def test_zero_latent_is_one_fixed_pose(tmp_path: Path):
    decoder = load_vposer(_write_v2(tmp_path / "vposer"))
    assert decoder.decode(torch.zeros(1, 32)).dtype == torch.float32
    once = decoder.decode(torch.zeros(3, 32))
    again = load_vposer(tmp_path / "vposer").decode(torch.zeros(1, 32))
    # Equal up to float32 rounding, which depends on the batch size's matmul kernel.
    torch.testing.assert_close(once, again.expand(3, -1))
    assert once.abs().sum() > 0  # a pose, not the rest pose


def test_gradients_reach_the_latent_and_not_the_weights(tmp_path: Path):
    decoder = load_vposer(_write_v1(tmp_path / "vposer"), "cpu", torch.float64)
    z = torch.zeros(2, 32, dtype=torch.float64, requires_grad=True)
    target = torch.full((2, 63), 0.1, dtype=torch.float64)
    loss = ((decoder.decode(z) - target) ** 2).sum() + (learned_priors.vposer_residuals(z) ** 2).sum()
    loss.backward()
    assert z.grad is not None and torch.isfinite(z.grad).all() and z.grad.abs().sum() > 0
    assert all(not parameter.requires_grad for parameter in decoder.parameters())
    assert learned_priors.vposer_residuals(z).shape == (2, 32)


def test_rotation_6d_is_a_rotation_for_any_input():
    six = torch.randn(100, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(2)) * 5
    matrices = learned_priors.rotation_6d_to_matrix(six)
    torch.testing.assert_close(matrices @ matrices.mT, torch.eye(3, dtype=torch.float64).expand(100, 3, 3))
    torch.testing.assert_close(torch.linalg.det(matrices), torch.ones(100, dtype=torch.float64))
    np.testing.assert_allclose(matrices.numpy(), _gram_schmidt(six.numpy()), atol=1e-12)


def test_lightning_metadata_loads_as_placeholders_without_importing_it(tmp_path: Path, monkeypatch):
    # A Lightning checkpoint pickles its hyper-parameters as omegaconf objects, which
    # torch's weights-only unpickler refuses and which are not installed. Saved here from a
    # stand-in module that is gone again when the file is read.
    package, module = types.ModuleType("omegaconf"), types.ModuleType("omegaconf.dictconfig")

    class DictConfig:
        def __init__(self, content: dict):
            self.content = content

    DictConfig.__module__, DictConfig.__qualname__ = module.__name__, "DictConfig"
    module.DictConfig = DictConfig
    with monkeypatch.context() as patch:
        patch.setitem(sys.modules, "omegaconf", package)
        patch.setitem(sys.modules, "omegaconf.dictconfig", module)
        checkpoint = _lightning(_v2_state()) | {"hyper_parameters": DictConfig({"latentD": 32})}
        file = _write_v2(tmp_path / "vposer", checkpoint)
    assert "omegaconf" not in sys.modules
    with pytest.raises(pickle.UnpicklingError):
        torch.load(file, weights_only=True)
    decoder = load_vposer(tmp_path / "vposer", "cpu", torch.float64)
    assert "omegaconf" not in sys.modules
    z = np.zeros((1, 32))
    expected = _reference_rotations(_v2_state(), V2_LAYERS, 0.01, z)
    np.testing.assert_allclose(decoder.decode_matrices(torch.from_numpy(z)).numpy(), expected, atol=1e-10)


class _Exploit:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_checkpoint_that_would_run_a_command_is_refused(tmp_path: Path):
    marker = tmp_path / "ran"
    file = _write_v2(tmp_path / "vposer", _lightning(_v2_state()) | {"callbacks": _Exploit(marker)})
    with pytest.raises(CaptureError, match=r"system.*refused"):
        load_vposer(file)
    assert not marker.exists()


def _error(path: Path) -> str:
    with pytest.raises(CaptureError) as caught:
        load_vposer(path)
    return str(caught.value)


def test_a_missing_path_is_named(tmp_path: Path):
    message = _error(tmp_path / "vposer_v1_0")
    assert "not found" in message and "vposer_v1_0" in message


def test_a_folder_without_snapshots_is_named(tmp_path: Path):
    (tmp_path / "empty").mkdir()
    assert "No VPoser checkpoint" in _error(tmp_path / "empty")


def test_a_text_file_is_not_a_checkpoint(tmp_path: Path):
    file = tmp_path / "vposer" / "snapshots" / "TR00_E096.pt"
    file.parent.mkdir(parents=True)
    file.write_text("this is not a checkpoint\n")
    for path in (file, tmp_path / "vposer"):
        message = _error(path)
        assert "Not a PyTorch checkpoint" in message and str(file) in message


def test_a_missing_decoder_key_is_named(tmp_path: Path):
    state = _v1_state()
    del state["bodyprior_dec_fc2.bias"]
    file = _write_v1(tmp_path / "vposer", state)
    message = _error(file)
    assert "bodyprior_dec_fc2.bias" in message and str(file) in message


def test_an_unknown_layout_is_named(tmp_path: Path):
    file = tmp_path / "other.pt"
    torch.save({"state_dict": {"backbone.conv1.weight": torch.zeros(3, 3)}}, file)
    message = _error(file)
    assert "Unknown checkpoint layout" in message and "backbone.conv1.weight" in message


@pytest.mark.parametrize(
    ("key", "shape", "words"),
    [
        ("bodyprior_dec_out.weight", (120, 512), "6 numbers per body joint"),
        ("bodyprior_dec_fc1.weight", (512, 16), "latent size"),
        ("bodyprior_dec_fc2.bias", (256,), "not a linear layer"),
    ],
)
def test_a_wrong_shape_is_named(tmp_path: Path, key: str, shape: tuple[int, ...], words: str):
    state = _v1_state()
    state[key] = torch.zeros(shape)
    if key == "bodyprior_dec_out.weight":
        state["bodyprior_dec_out.bias"] = torch.zeros(shape[0])
    file = _write_v1(tmp_path / "vposer", state)
    message = _error(file)
    assert "Wrong shape" in message and words in message and str(file) in message


# -------------------------------------------------------------------------------- GMM


def _gmm(count: int = 4, dim: int = 69, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    factors = rng.normal(size=(count, dim, dim)) * 0.1
    weights = rng.uniform(0.5, 2.0, size=count)
    return {
        "means": rng.normal(size=(count, dim)) * 0.3,
        "covars": factors @ factors.transpose(0, 2, 1) + 0.05 * np.eye(dim),
        "weights": weights / weights.sum(),
    }


def _write_gmm(path: Path, data: object) -> Path:
    with path.open("wb") as stream:
        pickle.dump(data, stream, protocol=2)  # SMPLify's files are Python 2 pickles
    return path


def _energy(x: np.ndarray, gmm: dict[str, np.ndarray]) -> tuple[float, np.ndarray]:
    """The max-mixture energy -log max_m w_m N(x; mu_m, C_m) of the 63 body values, and
    each component's constant -log w_m + log of its normaliser."""
    dim = 63
    costs, energies = [], []
    for mean, cov, weight in zip(gmm["means"], gmm["covars"], gmm["weights"], strict=True):
        mean, cov = mean[:dim], cov[:dim, :dim]
        _, log_det = np.linalg.slogdet(cov)
        cost = -math.log(weight) + 0.5 * log_det + 0.5 * dim * math.log(2 * math.pi)
        offset = x - mean
        energies.append(0.5 * offset @ np.linalg.solve(cov, offset) + cost)
        costs.append(cost)
    return min(energies), np.array(costs)


def _reference_energy(x: np.ndarray, gmm: dict[str, np.ndarray]) -> float:
    """SMPLify-X's merged max-mixture with its own constant: min_m 0.5 d^T P d -
    log(w_m / ((2 pi)^(69/2) sqrt(det_m) / sqrt(det_min)))."""
    dim = 63
    covs = gmm["covars"][:, :dim, :dim]
    sqrdets = np.sqrt(np.linalg.det(covs))
    nll_weights = gmm["weights"] / ((2 * np.pi) ** (69 / 2) * (sqrdets / sqrdets.min()))
    offsets = x - gmm["means"][:, :dim]
    quadratic = np.einsum("mi,mij,mj->m", offsets, np.linalg.inv(covs), offsets)
    return float(np.min(0.5 * quadratic - np.log(nll_weights)))


@pytest.mark.parametrize("dim", [69, 63])
def test_residuals_square_to_the_max_mixture_energy(tmp_path: Path, dim: int):
    gmm = _gmm(dim=dim)
    prior = load_gmm(_write_gmm(tmp_path / "gmm_08.pkl", gmm), "cpu", torch.float64)
    assert prior.means.shape == (4, 63) and prior.whiten.shape == (4, 63, 63)
    rng = np.random.default_rng(1)
    poses = np.concatenate([gmm["means"][:, :63] + rng.normal(size=(4, 63)) * 0.05, rng.normal(size=(6, 63))])
    residuals = gmm_residuals(torch.from_numpy(poses), prior)
    assert residuals.shape == (10, 64)
    sum_of_squares = (residuals**2).sum(-1).numpy()
    shifts = []
    for pose, value in zip(poses, sum_of_squares, strict=True):
        energy, costs = _energy(pose, gmm)
        # The documented constant: the lowest component constant.
        assert value == pytest.approx(energy - costs.min(), rel=1e-9, abs=1e-9)
        shifts.append(_reference_energy(pose, gmm) - value)
    # The reference's energy differs by one constant.
    np.testing.assert_allclose(shifts, shifts[0], rtol=0, atol=1e-6)
    energies = learned_priors.gmm_energies(torch.from_numpy(poses), prior).min(-1).values.numpy()
    np.testing.assert_allclose(energies, [_energy(pose, gmm)[0] for pose in poses], rtol=1e-10)


def test_the_prior_is_lowest_at_the_best_components_mean(tmp_path: Path):
    gmm = _gmm()
    prior = load_gmm(_write_gmm(tmp_path / "gmm_08.pkl", gmm), "cpu", torch.float64)
    best = int(prior.cost.argmin())
    mean = prior.means[best : best + 1]
    assert (gmm_residuals(mean, prior) ** 2).sum() == pytest.approx(0.0, abs=1e-18)
    nearby = mean + 0.02 * torch.randn(
        20, 63, dtype=torch.float64, generator=torch.Generator().manual_seed(0)
    )
    assert ((gmm_residuals(nearby, prior) ** 2).sum(-1) > 0).all()
    others = torch.cat([prior.means[:best], prior.means[best + 1 :]])
    assert ((gmm_residuals(others, prior) ** 2).sum(-1) > 1e-6).all()


def test_gmm_gradients_reach_the_pose(tmp_path: Path):
    prior = load_gmm(_write_gmm(tmp_path / "gmm_08.pkl", _gmm()))
    assert prior.means.dtype == torch.float32
    pose = torch.zeros(3, 63, requires_grad=True)
    (gmm_residuals(pose, prior) ** 2).sum().backward()
    assert pose.grad is not None and torch.isfinite(pose.grad).all() and pose.grad.abs().sum() > 0


def _gmm_error(path: Path) -> str:
    with pytest.raises(CaptureError) as caught:
        load_gmm(path)
    return str(caught.value)


class _Payload:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_malicious_gmm_pickle_is_refused_without_running(tmp_path: Path):
    marker = tmp_path / "ran"
    file = _write_gmm(tmp_path / "gmm_08.pkl", _gmm() | {"weights": _Payload(marker)})
    message = _gmm_error(file)
    assert "system" in message and "refused" in message and str(file) in message
    assert not marker.exists()


def test_bad_gmm_files_are_named(tmp_path: Path):
    assert "not found" in _gmm_error(tmp_path / "gmm_08.pkl")
    text = tmp_path / "text.pkl"
    text.write_text("not a pickle\n")
    assert "Not a GMM prior pickle" in _gmm_error(text)
    assert "not a dict" in _gmm_error(_write_gmm(tmp_path / "list.pkl", [1, 2, 3]))
    wrong = _gmm() | {"covars": np.zeros((4, 69, 68))}
    assert "Wrong shapes" in _gmm_error(_write_gmm(tmp_path / "shape.pkl", wrong))
    singular = _gmm() | {"covars": np.zeros((4, 69, 69))}
    assert "positive definite" in _gmm_error(_write_gmm(tmp_path / "singular.pkl", singular))
