"""The torch forward pass: shapes, rest pose, joints, hand PCA, gradients, and agreement
with the `smplx` package on the same file."""

from __future__ import annotations

import pytest
import smplx
import torch

from smplx_capture_addon.body_model import lbs, model_file
from smplx_capture_addon.body_model.model import BodyModel
from smplx_capture_addon.body_model.names import (
    FACE_LANDMARK_NAMES,
    KEYPOINT_NAMES,
    KEYPOINT_NAMES_WITH_CONTOUR,
    NUM_JOINTS,
)
from smplx_capture_addon.devtools import synthetic_model


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    return synthetic_model.write_model(tmp_path_factory.mktemp("m") / "SMPLX_NEUTRAL.npz")


@pytest.fixture(scope="module")
def data(model_path):
    return model_file.load_model(model_path)


def random_params(model: BodyModel, batch: int, seed: int = 0, scale: float = 0.3) -> dict:
    generator = torch.Generator().manual_seed(seed)
    return {k: torch.randn(v.shape, generator=generator) * scale for k, v in model.zeros(batch).items()}


def test_output_shapes(data):
    model = BodyModel(data, face_contour=True)
    out = model(**random_params(model, 3))
    assert out.vertices.shape == (3, data.num_vertices, 3)
    assert out.joints.shape == (3, NUM_JOINTS, 3)
    assert out.keypoints.shape == (3, len(KEYPOINT_NAMES_WITH_CONTOUR), 3)
    assert out.full_pose.shape == (3, NUM_JOINTS, 3)
    plain = BodyModel(data)
    assert plain(**random_params(plain, 2)).keypoints.shape == (2, len(KEYPOINT_NAMES), 3)


def test_rest_pose_reproduces_the_template(data):
    model = BodyModel(data, flat_hand_mean=True)
    out = model()
    torch.testing.assert_close(out.vertices[0], torch.as_tensor(data.v_template), atol=1e-6, rtol=0)


def test_joints_are_the_regressor_applied_to_the_shaped_vertices(data):
    model = BodyModel(data, flat_hand_mean=True)
    params = random_params(model, 2)
    shape_only = {"betas": params["betas"], "expression": params["expression"]}
    out = model(**shape_only)
    expected = torch.as_tensor(data.j_regressor) @ out.vertices
    torch.testing.assert_close(out.joints, expected, atol=1e-5, rtol=0)


def test_hand_pca_round_trip(data):
    full = BodyModel(data, hand_pca=None)
    pca = BodyModel(data, hand_pca=45)
    params = random_params(full, 2)
    components = torch.as_tensor(data.hand_components_left)
    mean = torch.as_tensor(data.hand_mean_left)
    # Absolute hand pose -> PCA coefficients -> the same vertices and pose.
    pca_params = dict(params)
    for side, comps, hand_mean in (("left", components, mean),
                                   ("right", torch.as_tensor(data.hand_components_right),
                                    torch.as_tensor(data.hand_mean_right))):  # fmt: skip
        absolute = params[f"{side}_hand_pose"] + hand_mean
        pca_params[f"{side}_hand_pose"] = (absolute - hand_mean) @ comps.T
    a, b = full(**params), pca(**pca_params)
    torch.testing.assert_close(a.full_pose, b.full_pose, atol=1e-5, rtol=0)
    torch.testing.assert_close(a.vertices, b.vertices, atol=1e-5, rtol=0)
    # 12 coefficients survive expansion and projection back.
    twelve = BodyModel(data, hand_pca=12)
    coefficients = torch.randn(4, 12)
    expanded = twelve.full_pose(*(torch.zeros(4, n) for n in (3, 63, 3, 3, 3)), coefficients, coefficients)
    recovered = (expanded[:, 25:40].reshape(4, 45) - mean) @ components[:12].T
    torch.testing.assert_close(recovered, coefficients, atol=1e-5, rtol=0)


def test_gradients_reach_every_parameter(data):
    model = BodyModel(data, face_contour=True)
    params = {k: v.requires_grad_() for k, v in random_params(model, 2).items()}
    out = model(**params)
    (out.vertices.square().sum() + out.keypoints.square().sum()).backward()
    for name, value in params.items():
        assert value.grad is not None and torch.isfinite(value.grad).all(), name
        assert value.grad.abs().sum() > 0, name


def test_keypoint_fast_path_equals_the_full_mesh(data):
    model = BodyModel(data, face_contour=True)
    params = random_params(model, 3, seed=4)
    torch.testing.assert_close(model(vertices=False, **params).keypoints, model(**params).keypoints)


@pytest.mark.parametrize(
    ("hand_pca", "flat_hand_mean", "face_contour"),
    [(12, False, False), (None, True, False), (6, True, True), (None, False, True)],
)
def test_agrees_with_the_smplx_package(model_path, data, hand_pca, flat_hand_mean, face_contour):
    ours = BodyModel(data, hand_pca=hand_pca, flat_hand_mean=flat_hand_mean, face_contour=face_contour)
    reference = smplx.SMPLX(
        str(model_path), ext="npz", num_betas=10, num_expression_coeffs=10, use_pca=hand_pca is not None,
        num_pca_comps=hand_pca or 6, flat_hand_mean=flat_hand_mean, use_face_contour=face_contour,
    )  # fmt: skip
    params = random_params(ours, 4, seed=1)
    # Turn the head both ways so several face-contour tables are used.
    params["global_orient"][:, 1] = torch.tensor([0.0, 0.6, -0.6, 1.2])
    ours_out, ref_out = ours(**params), reference(**params)
    torch.testing.assert_close(ours_out.vertices, ref_out.vertices, atol=2e-6, rtol=0)
    torch.testing.assert_close(ours_out.keypoints, ref_out.joints, atol=2e-6, rtol=0)


def test_agrees_with_smplx_on_the_2020_layout(tmp_path):
    path = synthetic_model.write_model(tmp_path / "SMPLX_MALE.npz", layout="2020")
    ours = BodyModel(model_file.load_model(path), num_betas=300, num_expression=100, hand_pca=6)
    reference = smplx.SMPLX(str(path), ext="npz", num_betas=300, num_expression_coeffs=100)
    params = random_params(ours, 2, seed=2, scale=0.2)
    torch.testing.assert_close(ours(**params).vertices, reference(**params).vertices, atol=3e-6, rtol=0)


def test_unknown_parameter_is_refused(data):
    with pytest.raises(TypeError, match="unknown body parameters: left_hand"):
        BodyModel(data)(left_hand=torch.zeros(1, 12))


def test_kinematic_tree_rejects_bad_trees():
    with pytest.raises(ValueError, match="before it"):
        lbs.kinematic_tree([-1, 2, 0])
    with pytest.raises(ValueError, match="one root"):
        lbs.kinematic_tree([-1, -1, 0])


def test_axis_angle_matches_known_rotations():
    quarter = lbs.axis_angle_to_matrix(torch.tensor([[0.0, 0.0, torch.pi / 2]]))[0]
    torch.testing.assert_close(quarter @ torch.tensor([1.0, 0.0, 0.0]), torch.tensor([0.0, 1.0, 0.0]))
    identity = lbs.axis_angle_to_matrix(torch.zeros(1, 3, requires_grad=True))
    identity.sum().backward()
    torch.testing.assert_close(identity[0], torch.eye(3))


def test_without_face_landmarks_the_keypoints_stop_before_them(data):
    model = BodyModel(data, face_contour=True)
    params = random_params(model, 2, seed=3)
    full = model(vertices=False, **params).keypoints
    short = model(vertices=False, face_landmarks=False, **params).keypoints
    first_landmark = KEYPOINT_NAMES.index(FACE_LANDMARK_NAMES[0])
    assert short.shape == (2, first_landmark, 3)
    torch.testing.assert_close(short, full[:, :first_landmark])
