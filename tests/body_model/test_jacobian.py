"""The closed-form keypoint derivatives against forward-mode differentiation of the
forward pass itself (and their pullback of a gradient against reverse mode), on a model
with pose correctives and the face contour (synthetic file) and on the open default body
(none of either), in float64."""

from __future__ import annotations

import pytest
import torch

from smplx_capture_addon.body_model import jacobian, lbs, model_file, pullback
from smplx_capture_addon.body_model.model import BodyModel
from smplx_capture_addon.devtools import synthetic_model


@pytest.fixture(scope="module")
def synthetic_data(tmp_path_factory):
    path = synthetic_model.write_model(tmp_path_factory.mktemp("m") / "SMPLX_NEUTRAL.npz")
    return model_file.load_model(path)


def _params(model: BodyModel, batch: int, seed: int) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    zeros = model.zeros(batch)
    params = {k: torch.randn(v.shape, generator=generator, dtype=v.dtype) * 0.4 for k, v in zeros.items()}
    params["transl"] = params["transl"] + torch.tensor([0.0, 0.0, 3.0], dtype=torch.float64)
    params["body_pose"][0, :6] = 0.0  # the zero rotation, where Rodrigues' formula has its limit
    return params


def _forward_mode(model: BodyModel, params: dict[str, torch.Tensor], name: str) -> torch.Tensor:
    """d keypoints / d params[name], (B, K, 3, size), by torch.func.jacfwd."""

    def keypoints(block: torch.Tensor) -> torch.Tensor:
        return model(vertices=False, **{**params, name: block}).keypoints

    full = torch.func.jacfwd(keypoints)(params[name])  # (B, K, 3, B, size)
    return torch.stack([full[b, :, :, b] for b in range(full.shape[0])])


@pytest.mark.parametrize("hand_pca", [12, None])
@pytest.mark.parametrize("which", ["synthetic", "open"])
def test_keypoint_jacobian_equals_forward_mode(synthetic_data, which, hand_pca):
    data = synthetic_data if which == "synthetic" else model_file.load_model(None)
    model = BodyModel(data, hand_pca=hand_pca, face_contour=data.has_face_contour, dtype=torch.float64)
    assert (model.kp_posedirs is not None) == (which == "synthetic")
    params = _params(model, 3, seed=1)
    out, blocks = model.keypoint_jacobian(**params)
    torch.testing.assert_close(out.keypoints, model(vertices=False, **params).keypoints)
    assert blocks.keys() == params.keys()
    for name, block in blocks.items():
        expected = _forward_mode(model, params, name)
        assert block.shape == expected.shape == (3, out.keypoints.shape[1], 3, params[name].shape[1])
        assert expected.abs().max() > 1e-3, name  # every block moves some keypoint
        torch.testing.assert_close(block, expected, atol=1e-10, rtol=1e-8, msg=name)


@pytest.mark.parametrize("face_landmarks", [True, False])
@pytest.mark.parametrize("hand_pca", [12, None])
@pytest.mark.parametrize("which", ["synthetic", "open"])
def test_keypoint_vjp_equals_reverse_mode(synthetic_data, which, hand_pca, face_landmarks):
    """The closed-form pullback of a gradient of the keypoints gives autograd's gradient
    of every parameter block, through the pose correctives, the face contour's triangles
    and the hand PCA (the eyes too, though the fit does not free them)."""
    data = synthetic_data if which == "synthetic" else model_file.load_model(None)
    model = BodyModel(data, hand_pca=hand_pca, face_contour=data.has_face_contour, dtype=torch.float64)
    params = _params(model, 3, seed=4)
    out, pull_back = model.keypoint_vjp(face_landmarks=face_landmarks, **params)
    leaves = {name: value.clone().requires_grad_() for name, value in params.items()}
    expected_out = model(vertices=False, face_landmarks=face_landmarks, **leaves)
    assert torch.equal(out.keypoints, expected_out.keypoints.detach())
    grad = torch.randn(out.keypoints.shape, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    expected = torch.autograd.grad((expected_out.keypoints * grad).sum(), list(leaves.values()))
    pulled = pull_back(grad)
    assert pulled.keys() == params.keys()
    # Without the face landmarks the face's blocks may move no keypoint of the open body.
    face = {"expression", "jaw_pose", "leye_pose", "reye_pose"}
    for name, block in zip(leaves, expected, strict=True):
        assert float(block.abs().max()) > 1e-3 or (not face_landmarks and name in face), name
        torch.testing.assert_close(pulled[name], block, atol=1e-10, rtol=1e-8, msg=name)


def test_keypoint_jacobian_without_face_landmarks_is_the_leading_rows(synthetic_data):
    model = BodyModel(synthetic_data, face_contour=True, dtype=torch.float64)
    params = _params(model, 2, seed=2)
    full_out, full = model.keypoint_jacobian(**params)
    out, blocks = model.keypoint_jacobian(face_landmarks=False, **params)
    count = model(vertices=False, face_landmarks=False, **params).keypoints.shape[1]
    assert out.keypoints.shape[1] == count < full_out.keypoints.shape[1]
    for name, block in blocks.items():
        torch.testing.assert_close(block, full[name][:, :count], msg=name)


def test_the_gpu_form_of_small_products_gives_the_same_pass_and_derivatives(synthetic_data, monkeypatch):
    """On a GPU the 3x3 products are broadcast and summed (lbs.small_matmul): forced here
    on the CPU, the forward pass, its gradients and the closed-form derivatives agree
    with the batched products' to float64 rounding."""
    model = BodyModel(synthetic_data, face_contour=True, dtype=torch.float64)
    params = {k: v.requires_grad_() for k, v in _params(model, 3, seed=3).items()}

    def everything() -> list[torch.Tensor]:
        out, blocks = model.keypoint_jacobian(**params)
        vertices = model(**params).vertices
        gradients = torch.autograd.grad(vertices.square().sum() + out.keypoints.sum(), list(params.values()))
        pulled = model.keypoint_vjp(**params)[1](out.keypoints.detach())
        return [vertices, out.keypoints, *blocks.values(), *gradients, *pulled.values()]

    batched = everything()
    original, calls = lbs.small_matmul, []

    def forced(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        calls.append(a.shape)
        return original(a, b, broadcast=True)

    monkeypatch.setattr(lbs, "small_matmul", forced)
    monkeypatch.setattr(jacobian, "small_matmul", forced)
    monkeypatch.setattr(pullback, "small_matmul", forced)
    broadcast = everything()
    assert len(calls) > 10
    assert len(batched) == len(broadcast) > 30
    for ours, theirs in zip(batched, broadcast, strict=True):
        assert ours.abs().max() > 0
        torch.testing.assert_close(theirs, ours, atol=1e-12, rtol=1e-10)


@pytest.mark.parametrize("angle", [0.0, 1e-6, 1e-3, 0.0999, 0.1001, 1.0, 3.0])
def test_rotation_derivatives_match_rodrigues_at_every_angle(angle):
    axis = torch.tensor([[0.3, -0.5, 0.8], [1.0, 0.2, 0.0]], dtype=torch.float64)
    axis = axis / axis.norm(dim=-1, keepdim=True)
    axis_angle = axis * angle
    expected = torch.func.vmap(torch.func.jacfwd(lbs.axis_angle_to_matrix))(axis_angle).permute(0, 3, 1, 2)
    rotation = lbs.axis_angle_to_matrix(axis_angle)
    derivative, axes = jacobian.rotation_derivatives(axis_angle, rotation)
    torch.testing.assert_close(derivative, expected, atol=1e-9, rtol=1e-7)
    # and in float32, where the closed forms alone would cancel to noise near zero
    derivative32, _ = jacobian.rotation_derivatives(axis_angle.float(), rotation.float())
    torch.testing.assert_close(derivative32.double(), expected, atol=2e-6, rtol=1e-5)
    torch.testing.assert_close(lbs.cross_matrix(axes) @ rotation[:, None], derivative)


def test_subtree_matrix_marks_each_joint_and_its_descendants():
    #     0
    #    / \
    #   1   2
    #   |
    #   3
    subtree = jacobian.subtree_matrix(torch.tensor([-1, 0, 0, 1]))
    expected = torch.tensor([[1, 1, 1, 1], [0, 1, 0, 1], [0, 0, 1, 0], [0, 0, 0, 1]], dtype=torch.float64)
    torch.testing.assert_close(subtree, expected)


def test_moving_pairs_are_each_keypoints_chain_and_the_joints_that_skin_its_points():
    # A chain 0 -> 1 -> 2 and a branch 0 -> 3; point 0 skinned by joint 1, point 1 by 3.
    subtree = jacobian.subtree_matrix(torch.tensor([-1, 0, 1, 0]))
    weights = torch.tensor([[0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 0.0, 1.0]], dtype=torch.float64)
    surface_points = torch.tensor([[True, False], [True, True]])  # one keypoint may lie on both
    pairs = jacobian.moving_pairs(subtree, weights, surface_points)
    assert pairs.T.tolist() == [[0, 0], [1, 0], [1, 1], [2, 0], [2, 1], [2, 2], [3, 0], [3, 3],
                                [4, 0], [4, 1], [5, 0], [5, 1], [5, 3]]  # fmt: skip
