"""The learned pose priors of the SMPLify-X reference, read from files the user supplies.

Both priors are licensed data: they never ship with the add-on and are never downloaded,
so their absence is normal and every loader here fails with a `PriorFileError` (a
`CaptureError`) whose message names the file and what is wrong with it.

VPoser (human_body_prior): a VAE over the 21 body joints' rotations. The fit only needs
its decoder: the body pose is `decode(z)` for a latent z (B, 32) and the prior is |z|^2
(`vposer_residuals`). Two checkpoint layouts exist:

- v1 ("vposer_v1_0", loaded by the reference SMPLify-X): a folder with `snapshots/*.pt`,
  a plain state_dict with layers `bodyprior_dec_fc1` (32 -> 512), `bodyprior_dec_fc2`
  (512 -> 512), `bodyprior_dec_out` (512 -> 21 * 6), LeakyReLU(0.2) after the first two.
- v2 ("V02_05"): a folder with `snapshots/*.ckpt`, a PyTorch Lightning checkpoint whose
  `state_dict` keys carry the `vp_model.` prefix; the decoder is `decoder_net`, an
  nn.Sequential whose Linear layers sit at indices 0, 3 and 5, with nn.LeakyReLU() (its
  default slope 0.01) after the first two.

Both read each joint's 6 outputs as a 3x2 matrix (row-major) whose columns a, b give the
rotation by Gram-Schmidt: columns b1 = a/|a|, b2 = the unit part of b orthogonal to b1,
b3 = b1 x b2. Dropout is off, as in the reference (it decodes in eval mode).

GMM (SMPLify's `gmm_08.pkl`): a pickled dict of `means` (M, D), `covars` (M, D, D),
`weights` (M,), D = 69 (SMPL's 23 joints) or 63. The reference scores a pose by its best
component alone (the "max-mixture"): min_m 0.5 d_m^T C_m^-1 d_m - log(w_m * normaliser_m).
"""

from __future__ import annotations

import math
import pickle
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from ..body_model.names import NUM_BODY_JOINTS
from ..body_model.safe_pickle import RefusedPickle, unpickle_arrays
from ..errors import CaptureError
from .camera import matrix_to_axis_angle

LATENT_DIM = 32
BODY_POSE_DIM = 3 * NUM_BODY_JOINTS

# Decoder layers (first, second, output) of each layout, and the LeakyReLU slope each used.
V1_LAYERS = ("bodyprior_dec_fc1", "bodyprior_dec_fc2", "bodyprior_dec_out")
V2_LAYERS = ("decoder_net.0", "decoder_net.3", "decoder_net.5")
V1_SLOPE = 0.2  # F.leaky_relu(..., negative_slope=.2) in human_body_prior v1
V2_SLOPE = 0.01  # nn.LeakyReLU() with its default slope in human_body_prior v2

# Prefixes a saved state_dict may carry: the Lightning module's attribute holding the
# VPoser (v2), and nn.DataParallel's wrapper.
KEY_PREFIXES = ("vp_model.", "module.")


class PriorFileError(CaptureError):
    """A user-supplied prior file is missing, unreadable or not of the expected layout."""


# --------------------------------------------------------------------------- rotations


def rotation_6d_to_matrix(six: Tensor) -> Tensor:
    """VPoser's continuous rotation representation. (..., 6) -> (..., 3, 3).

    The 6 numbers are a 3x2 matrix in row-major order; its columns a, b become the first
    two columns of the rotation by Gram-Schmidt, the third is their cross product, so the
    result is orthonormal with det +1 for any input with a, b independent.
    """
    pairs = six.unflatten(-1, (3, 2))
    a, b = pairs[..., 0], pairs[..., 1]
    b1 = nn.functional.normalize(a, dim=-1)
    b2 = nn.functional.normalize(b - (b1 * b).sum(-1, keepdim=True) * b1, dim=-1)
    b3 = torch.linalg.cross(b1, b2, dim=-1)
    return torch.stack([b1, b2, b3], dim=-1)


# ----------------------------------------------------------------------------- VPoser


class VPoserDecoder(nn.Module):
    """The frozen decoder of a VPoser checkpoint: latent (B, 32) -> body pose (B, 63).

    Holds only the three Linear layers' weights (no gradients: the prior is fixed, the fit
    optimises z) and the LeakyReLU slope of the layout they came from.
    """

    def __init__(self, first: nn.Linear, second: nn.Linear, out: nn.Linear, slope: float, version: str):
        super().__init__()
        self.first, self.second, self.out = first, second, out
        self.slope = slope
        self.version = version
        self.requires_grad_(False)

    @property
    def latent_dim(self) -> int:
        return self.first.in_features

    def decode_matrices(self, z: Tensor) -> Tensor:
        """z (B, 32) -> local rotations (B, 21, 3, 3) of the body joints, SMPL-X order."""
        hidden = nn.functional.leaky_relu(self.first(z), self.slope)
        hidden = nn.functional.leaky_relu(self.second(hidden), self.slope)
        return rotation_6d_to_matrix(self.out(hidden).unflatten(-1, (NUM_BODY_JOINTS, 6)))

    def decode(self, z: Tensor) -> Tensor:
        """z (B, 32) -> body_pose (B, 63), axis-angle per joint, SMPL-X body joints 1..21."""
        return matrix_to_axis_angle(self.decode_matrices(z)).flatten(-2)

    def forward(self, z: Tensor) -> Tensor:
        return self.decode(z)


def vposer_residuals(z: Tensor) -> Tensor:
    """The VPoser prior |z|^2 as residuals: z (B, 32) -> (B, 32), z itself (a standard
    normal latent: its negative log-density is |z|^2 / 2 plus a constant)."""
    return z


def load_vposer(
    path: str | Path, device: torch.device | str | None = None, dtype: torch.dtype = torch.float32
) -> VPoserDecoder:
    """The decoder of a VPoser checkpoint, v1 or v2, from its folder (the one holding
    `snapshots/`), its `snapshots/` folder, or the .pt / .ckpt file itself."""
    file = _checkpoint_file(Path(path))
    state = _tensor_state(_read_checkpoint(file), file)
    version, layers, slope = _layout(state, file)
    linears = [_linear(state, name, file) for name in layers]
    _check_shapes(linears, file)
    return VPoserDecoder(*linears, slope=slope, version=version).to(device=device, dtype=dtype).eval()


def _checkpoint_file(path: Path) -> Path:
    if not path.exists():
        raise PriorFileError(f"VPoser checkpoint not found: {path}")
    if path.is_file():
        return path
    found = [
        file
        for folder in (path / "snapshots", path)
        for pattern in ("*.ckpt", "*.pt")
        for file in folder.glob(pattern)
        if file.is_file()
    ]
    if not found:
        raise PriorFileError(
            f"No VPoser checkpoint (snapshots/*.pt or snapshots/*.ckpt) in the folder {path}"
        )
    # The newest snapshot, as the reference loader picks; the name (epoch) breaks ties of
    # files unpacked from one archive.
    return max(found, key=lambda file: (file.stat().st_mtime, file.name))


# Modules whose names an opaque placeholder may stand for in a Lightning checkpoint's
# metadata (hyper-parameters, callback states, loop counters). Anything else is refused,
# not because a placeholder could run it (it cannot) but because a VPoser checkpoint has
# no reason to name it, so the file is not what it claims to be.
METADATA_MODULES = frozenset(
    {
        "omegaconf", "pytorch_lightning", "lightning", "lightning_fabric", "numpy", "pathlib",
        "argparse", "typing", "enum", "datetime", "collections", "copyreg", "_codecs",
        "human_body_prior", "torch", "torchmetrics", "yaml", "functools", "abc",
    }
)  # fmt: skip


class _Opaque:
    """Stands in for a class or function a checkpoint names in its metadata: built from
    any arguments and any state, it keeps none of them and runs nothing."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        pass

    def __setstate__(self, state: object) -> None:
        pass


def _read_checkpoint(file: Path) -> object:
    """torch.load of an untrusted file without running code from it.

    First weights_only=True (torch's restricted unpickler: tensors and plain containers).
    A Lightning checkpoint also pickles its hyper-parameters and callback states, whose
    classes (omegaconf, pytorch_lightning) that unpickler refuses and which are not
    installed here anyway. Then, still under weights_only=True, each such name is mapped to
    `_Opaque` through torch's safe-globals list: the weights load, the metadata becomes
    inert placeholders, and nothing named by the file is imported or called. We never
    fall back to weights_only=False.
    """
    try:
        return torch.load(file, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        if "Weights only load failed" not in str(error):
            raise PriorFileError(f"Not a PyTorch checkpoint: {file} ({_first_line(error)})") from None
    except Exception as error:
        raise PriorFileError(f"Not a PyTorch checkpoint: {file} ({_first_line(error)})") from None
    try:
        names = torch.serialization.get_unsafe_globals_in_checkpoint(file)
    except Exception as error:
        raise PriorFileError(
            f"The checkpoint {file} holds Python objects besides tensors and is not in the zip "
            f"format whose contents can be listed safely; refused ({_first_line(error)})"
        ) from None
    foreign = sorted(name for name in names if name.split(".")[0] not in METADATA_MODULES)
    if foreign:
        raise PriorFileError(
            f"The checkpoint {file} refers to {', '.join(foreign[:5])}, which a VPoser checkpoint "
            "does not contain; refused without running it"
        )
    try:
        with torch.serialization.safe_globals([(_Opaque, name) for name in names]):
            return torch.load(file, map_location="cpu", weights_only=True)
    except Exception as error:
        raise PriorFileError(f"Could not read the checkpoint {file} safely: {_first_line(error)}") from None


def _first_line(error: BaseException) -> str:
    """The error's kind and the first line of its text, for a one-line message."""
    lines = str(error).strip().splitlines()
    return f"{type(error).__name__}: {lines[0]}" if lines else type(error).__name__


def _tensor_state(checkpoint: object, file: Path) -> dict[str, Tensor]:
    """The checkpoint's tensors by name, without the Lightning / DataParallel prefixes. A
    Lightning checkpoint keeps them under `state_dict`; a v1 snapshot is the dict itself."""
    if isinstance(checkpoint, Mapping) and isinstance(checkpoint.get("state_dict"), Mapping):
        checkpoint = checkpoint["state_dict"]
    if not isinstance(checkpoint, Mapping):
        raise PriorFileError(
            f"The checkpoint {file} holds a {type(checkpoint).__name__}, not a VPoser state_dict"
        )
    state = {}
    for key, value in checkpoint.items():
        if isinstance(key, str) and isinstance(value, Tensor):
            for prefix in KEY_PREFIXES:
                key = key.removeprefix(prefix)
            state[key] = value
    return state


def _layout(state: Mapping[str, Tensor], file: Path) -> tuple[str, tuple[str, ...], float]:
    """Which VPoser version the keys are: (version, decoder layer names, LeakyReLU slope)."""
    for version, layers, slope in (("v1", V1_LAYERS, V1_SLOPE), ("v2", V2_LAYERS, V2_SLOPE)):
        if any(key.startswith(layers[0] + ".") for key in state):
            missing = [f"{layer}.{part}" for layer in layers for part in ("weight", "bias")]
            missing = [key for key in missing if key not in state]
            if missing:
                raise PriorFileError(
                    f"The VPoser {version} checkpoint {file} lacks the decoder weights {', '.join(missing)}"
                )
            return version, layers, slope
    sample = ", ".join(sorted(state)[:6]) or "no tensors"
    raise PriorFileError(
        f"Unknown checkpoint layout in {file}: neither VPoser v1 ({V1_LAYERS[0]}.weight) nor v2 "
        f"({V2_LAYERS[0]}.weight); it has {sample}"
    )


def _linear(state: Mapping[str, Tensor], name: str, file: Path) -> nn.Linear:
    weight, bias = state[f"{name}.weight"], state[f"{name}.bias"]
    if weight.ndim != 2 or bias.shape != weight.shape[:1] or not weight.is_floating_point():
        raise PriorFileError(
            f"Wrong shape in {file}: {name}.weight {tuple(weight.shape)} and {name}.bias "
            f"{tuple(bias.shape)} are not a linear layer's"
        )
    layer = nn.Linear(weight.shape[1], weight.shape[0])
    with torch.no_grad():
        layer.weight.copy_(weight)
        layer.bias.copy_(bias)
    return layer


def _check_shapes(linears: list[nn.Linear], file: Path) -> None:
    first, second, out = linears
    expected = (
        (first.in_features, LATENT_DIM, "the latent size"),
        (second.in_features, first.out_features, "the first layer's width"),
        (out.in_features, second.out_features, "the second layer's width"),
        (out.out_features, 6 * NUM_BODY_JOINTS, "6 numbers per body joint"),
    )
    for got, want, what in expected:
        if got != want:
            sizes = " -> ".join(
                str(n) for n in (first.in_features, *(layer.out_features for layer in linears))
            )
            raise PriorFileError(
                f"Wrong shape in the VPoser checkpoint {file}: decoder {sizes}, expected {want} "
                f"({what}) where it has {got}"
            )


# -------------------------------------------------------------------------------- GMM


@dataclass(frozen=True)
class GmmPrior:
    """The max-mixture pose prior, precomputed for residuals.

    means (M, 63); whiten (M, 63, 63) lower-triangular L_m^-1 where C_m = L_m L_m^T, so
    |whiten_m d|^2 = d^T C_m^-1 d; cost (M,) each component's constant
    -log w_m + 0.5 log det C_m + 31.5 log 2 pi (the negative log of its weighted
    normaliser); lowest its smallest entry.
    """

    means: Tensor
    whiten: Tensor
    cost: Tensor
    lowest: Tensor


def gmm_energies(body_pose: Tensor, prior: GmmPrior) -> Tensor:
    """Each component's weighted negative log-likelihood. body_pose (B, 63) -> (B, M),
    0.5 d_m^T C_m^-1 d_m + cost_m; the max-mixture energy is its minimum over m."""
    whitened = _whitened(body_pose, prior)
    return 0.5 * (whitened * whitened).sum(-1) + prior.cost


def gmm_residuals(body_pose: Tensor, prior: GmmPrior) -> Tensor:
    """The max-mixture prior as residuals: body_pose (B, 63) -> (B, 64).

    For the best component m (the lowest `gmm_energies`): its whitened offset
    L_m^-1 (x - mu_m) / sqrt(2), then sqrt(cost_m - lowest), so the sum of squares is
    min_m [0.5 d_m^T C_m^-1 d_m + cost_m] - lowest: the negative log of the best weighted
    component's density, up to the constant `prior.lowest`. The choice of m is not
    differentiated (nor is it in the reference's min).
    """
    whitened = _whitened(body_pose, prior)  # (B, M, 63)
    energies = 0.5 * (whitened * whitened).sum(-1) + prior.cost
    best = energies.argmin(-1)
    rows = torch.arange(len(body_pose), device=body_pose.device)
    offset = whitened[rows, best] / math.sqrt(2.0)
    weight_term = torch.sqrt((prior.cost - prior.lowest).clamp(min=0.0))[best]
    return torch.cat([offset, weight_term[:, None]], dim=-1)


def _whitened(body_pose: Tensor, prior: GmmPrior) -> Tensor:
    """L_m^-1 (x - mu_m) for every component: (B, 63) -> (B, M, 63)."""
    offsets = body_pose[:, None, :] - prior.means
    return torch.einsum("mij,bmj->bmi", prior.whiten, offsets)


def load_gmm(
    path: str | Path, device: torch.device | str | None = None, dtype: torch.dtype = torch.float32
) -> GmmPrior:
    """The max-mixture prior from SMPLify's `gmm_08.pkl` (or any pickle of a dict with
    `means`, `covars`, `weights`).

    A 69-dimensional (SMPL) mixture is reduced to its first 63 values, SMPL's joints 1..21,
    which are SMPL-X's body joints: the means' first 63 entries and the covariances'
    top-left 63x63 block, the exact marginal of each component (cutting the precision
    matrix instead would condition on the hands).
    """
    path = Path(path)
    if not path.is_file():
        raise PriorFileError(f"GMM pose prior file not found: {path}")
    try:
        with path.open("rb") as stream:
            data = unpickle_arrays(stream)
    except RefusedPickle as error:
        raise PriorFileError(
            f"The GMM prior {path} was refused without running anything ({error}): it must hold only "
            "numpy arrays and plain containers"
        ) from None
    except Exception as error:
        raise PriorFileError(f"Not a GMM prior pickle: {path} ({_first_line(error)})") from None
    means, covars, weights = _gmm_arrays(data, path)
    dim = BODY_POSE_DIM
    means, covars = means[:, :dim], covars[:, :dim, :dim]
    try:
        chol = np.linalg.cholesky(covars)
    except np.linalg.LinAlgError:
        raise PriorFileError(f"The GMM prior {path} has a covariance that is not positive definite") from None
    whiten = np.linalg.inv(chol)
    log_det = 2.0 * np.log(np.diagonal(chol, axis1=-2, axis2=-1)).sum(-1)
    cost = -np.log(weights) + 0.5 * log_det + 0.5 * dim * math.log(2.0 * math.pi)

    def tensor(array: np.ndarray) -> Tensor:
        return torch.as_tensor(array, dtype=dtype, device=device)

    return GmmPrior(tensor(means), tensor(whiten), tensor(cost), tensor(cost.min()))


def _gmm_arrays(data: object, path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """means (M, D), covars (M, D, D), weights (M,) as float64, checked."""
    if not isinstance(data, Mapping) or not all(key in data for key in ("means", "covars", "weights")):
        raise PriorFileError(f"The GMM prior {path} is not a dict of means, covars and weights")
    try:
        means, covars, weights = (
            np.asarray(data[key], dtype=np.float64) for key in ("means", "covars", "weights")
        )
    except (TypeError, ValueError):
        raise PriorFileError(f"The GMM prior {path} holds non-numeric means, covars or weights") from None
    count = len(weights) if weights.ndim == 1 else -1
    dim = means.shape[-1] if means.ndim == 2 else -1
    if count < 1 or means.shape != (count, dim) or covars.shape != (count, dim, dim) or dim < BODY_POSE_DIM:
        raise PriorFileError(
            f"Wrong shapes in the GMM prior {path}: means {means.shape}, covars {covars.shape}, weights "
            f"{weights.shape}; expected (M, D), (M, D, D), (M,) with D = 63 or 69"
        )
    if not (np.isfinite(means).all() and np.isfinite(covars).all() and (weights > 0).all()):
        raise PriorFileError(f"The GMM prior {path} has non-finite values or a weight that is not positive")
    return means, covars, weights
