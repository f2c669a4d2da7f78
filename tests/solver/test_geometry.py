"""Camera helpers, priors and the capsule collision term."""

from __future__ import annotations

import math

import torch

from smplx_capture_addon.body_model.lbs import axis_angle_to_matrix
from smplx_capture_addon.body_model.names import JOINT_NAMES
from smplx_capture_addon.devtools.synthetic_model import rest_joints
from smplx_capture_addon.solver import camera, collision, priors


def test_matrix_to_axis_angle_round_trip_including_half_turns():
    generator = torch.Generator().manual_seed(1)
    axes = torch.nn.functional.normalize(torch.randn(64, 3, generator=generator, dtype=torch.float64), dim=-1)
    angles = torch.linspace(0.0, math.pi - 1e-6, 64, dtype=torch.float64)[:, None]
    vectors = axes * angles
    back = camera.matrix_to_axis_angle(axis_angle_to_matrix(vectors))
    torch.testing.assert_close(axis_angle_to_matrix(back), axis_angle_to_matrix(vectors), atol=1e-7, rtol=0)
    half_turn = camera.matrix_to_axis_angle(camera.FACING_CAMERA)
    torch.testing.assert_close(
        half_turn.abs(), torch.tensor([math.pi, 0, 0], dtype=torch.float64), atol=1e-7, rtol=0
    )


def test_default_focal_is_a_35mm_equivalent_lens():
    # 36x24 mm frame: a 35 mm lens on a 3600x2400 image is 3500 px.
    assert abs(camera.default_focal(3600, 2400) - 3500.0) < 1e-6
    assert camera.default_focal(1000, 1000) < 5000.0 / 4  # far wider than the reference's 5000 px


def test_similar_triangles_recover_the_depth():
    segment = torch.tensor([[[[0.0, 0.5, 0.0], [0.0, 0.0, 0.0]]]])  # 0.5 m upright
    focal = torch.tensor([1000.0])
    seen_at_4m = torch.tensor([[[[100.0, 100.0], [100.0, 225.0]]]])  # 1000 * 0.5 / 4 = 125 px
    depth = camera.similar_triangles_depth(segment, seen_at_4m, torch.tensor([[True]]), focal)
    torch.testing.assert_close(depth, torch.tensor([4.0]))


def test_segment_depth_bound_is_the_least_foreshortened_segment():
    """Three 0.5 m segments 4 m away: one across the image (125 px), one turned 60
    degrees towards the camera (62.5 px: alone it would say 8 m), one misplaced by the
    detector (200 px: 2.5 m); a fourth, unseen, would say 0.5 m."""
    upright = [[0.0, 0.5, 0.0], [0.0, 0.0, 0.0]]
    model = torch.tensor([[upright] * 4])
    image = torch.tensor([[[[0.0, 0.0], [0.0, 125.0]], [[0.0, 0.0], [62.5, 0.0]],
                           [[0.0, 0.0], [0.0, 200.0]], [[0.0, 0.0], [1000.0, 0.0]]]])  # fmt: skip
    seen = torch.tensor([[True, True, True, False]])
    focal = torch.tensor([1000.0])
    assert float(camera.segment_depth_bound(model, image, seen, focal, rank=0)) == 2.5
    assert float(camera.segment_depth_bound(model, image, seen, focal)) == 4.0  # one bad point
    assert float(camera.segment_depth_bound(model, image, seen, focal, rank=2)) == 8.0
    assert math.isinf(float(camera.segment_depth_bound(model, image, seen, focal, rank=3)))


def test_turned_around_faces_the_other_way():
    facing = camera.initial_orientation(torch.tensor([False, True]))
    forward = torch.tensor([0.0, 0.0, 1.0])  # the model's front
    fronts = axis_angle_to_matrix(facing) @ forward
    assert fronts[0, 2] < -0.99 and fronts[1, 2] > 0.99  # towards the camera, then away
    assert (axis_angle_to_matrix(camera.turned_around(facing)) @ forward)[0, 2] > 0.99


def test_bending_prior_penalises_knees_bent_forwards_only():
    pose = torch.zeros(2, 63)
    knee = (JOINT_NAMES.index("left_knee") - 1) * 3
    pose[0, knee] = 1.0  # natural bend
    pose[1, knee] = -1.0  # hyperextension

    def prior(p: torch.Tensor) -> torch.Tensor:
        return priors.bending_residuals(p).square().sum(-1)

    cost = prior(pose) - prior(torch.zeros(1, 63))
    assert cost[0] < 0 and cost[1] > 5.0  # exp(-1)^2 - 1 and exp(1)^2 - 1


def test_joint_limits_are_free_inside_and_grow_outside():
    low, high = priors.joint_limit_table()
    relaxed = priors.relaxed_body_pose()[None]
    assert float(priors.joint_limit_residuals(relaxed, low, high).abs().sum()) == 0.0
    bent_back = relaxed.clone()
    bent_back[0, (JOINT_NAMES.index("right_elbow") - 1) * 3 + 1] = -1.0  # right elbow bends +y
    excess = priors.joint_limit_residuals(bent_back, low, high)
    assert float(excess.square().sum()) > 0.5 and int((excess > 0).sum()) == 1


def test_pose_prior_stiffness_holds_joints_that_turn_little():
    low, high = priors.joint_limit_table()
    stiffness = priors.pose_prior_stiffness(low, high, 3.0).view(-1, 3)

    def of(name: str) -> torch.Tensor:
        return stiffness[JOINT_NAMES.index(name) - 1]

    assert float(stiffness.min()) == 1.0
    for free in ("left_shoulder", "right_shoulder", "left_wrist"):
        assert (of(free) == 1.0).all(), free
    assert (of("left_hip") < 1.1).all() and (of("right_hip") < 1.1).all()
    for held in ("left_collar", "right_collar", "spine2", "left_foot"):
        assert (of(held) > 2.0).all(), (held, of(held))
    assert (of("neck") > 1.0).all()
    assert of("left_knee")[2] > 10 * of("left_knee")[0]  # a knee twists far less than it bends
    torch.testing.assert_close(of("left_collar"), of("right_collar"))  # the ranges mirror
    assert (priors.pose_prior_stiffness(low, high, 0.0) == 1.0).all()


def test_segment_distance_matches_brute_force():
    generator = torch.Generator().manual_seed(2)
    p1, q1, p2, q2 = torch.randn(4, 200, 3, generator=generator, dtype=torch.float64)
    t = torch.linspace(0, 1, 201, dtype=torch.float64)
    a = p1[:, None] + (q1 - p1)[:, None] * t[None, :, None]
    b = p2[:, None] + (q2 - p2)[:, None] * t[None, :, None]
    brute = torch.cdist(a, b).amin((1, 2))
    exact = collision.segment_distance(p1, q1, p2, q2)
    assert (exact <= brute + 1e-9).all() and (brute - exact).max() < 5e-3


def test_segment_residual_derivatives_equal_reverse_mode_at_interior_and_clamped_minima():
    """The collision residuals' closed-form derivatives (the closest points' with the
    closest parameters held) are those of the residuals, pairs touching or apart."""
    generator = torch.Generator().manual_seed(4)
    segments = 0.1 * torch.randn(3, len(collision.PAIRS), 4, 3, generator=generator, dtype=torch.float64)
    s, t = collision.closest_parameters(*segments.unbind(2))
    interior = (s > 0) & (s < 1) & (t > 0) & (t < 1)
    clamped = (s == 0) | (s == 1) | (t == 0) | (t == 1)
    overlap = collision.segment_overlaps(segments)
    assert int(interior.sum()) > 5 and int(clamped.sum()) > 5
    assert int((overlap > 0).sum()) > 5 and int((overlap == 0).sum()) > 5

    def total(points: torch.Tensor) -> torch.Tensor:  # each pair's residual reads its own segments only
        return collision.segment_residuals(points).sum()

    expected = torch.autograd.functional.jacobian(total, segments)
    derivatives = collision.segment_residual_derivatives(segments)
    torch.testing.assert_close(derivatives, expected, atol=1e-9, rtol=1e-9)


def test_pair_segments_are_each_pairs_capsule_joints_with_trailing_dimensions():
    """Each pair's segments run from its capsules' start joints to the mean of their end
    joints, for joints (B, 55, 3) and for their derivatives (B, 55, 3, n) alike."""
    generator = torch.Generator().manual_seed(3)
    joints = torch.randn(2, len(JOINT_NAMES), 3, 4, generator=generator, dtype=torch.float64)
    for points in (joints, joints[..., 0]):
        segments = collision.pair_segments(points)
        assert segments.shape == (2, len(collision.PAIRS), 4, *points.shape[2:])
        for index, pair in enumerate(collision.PAIRS):
            for slot, name in zip((0, 2), pair, strict=True):
                start, ends, _ = collision.CAPSULES[name]
                torch.testing.assert_close(segments[:, index, slot], points[:, start])
                torch.testing.assert_close(segments[:, index, slot + 1], points[:, list(ends)].mean(1))
    # The averaged end is covered: the head's capsule ends between the eyes.
    assert ("left_hand", "head") in collision.PAIRS and len(collision.CAPSULES["head"][1]) == 2


def test_collision_penalty_is_zero_at_rest_and_pushes_a_penetrating_arm_out():
    joints = torch.as_tensor(rest_joints(), dtype=torch.float32)[None]

    def penalty(j: torch.Tensor) -> torch.Tensor:
        return collision.segment_residuals(collision.pair_segments(j)).square().sum()

    assert float(penalty(joints)) == 0.0
    inside = joints.clone()
    left_elbow, left_wrist, spine2 = (JOINT_NAMES.index(n) for n in ("left_elbow", "left_wrist", "spine2"))
    inside[0, left_elbow] = inside[0, spine2] + torch.tensor([0.15, 0.0, 0.05])
    inside[0, left_wrist] = inside[0, spine2] + torch.tensor([-0.05, 0.0, 0.05])
    inside.requires_grad_(True)
    cost = penalty(inside)
    assert float(cost.detach()) > 100.0
    cost.backward()
    moved = inside.detach() - 1e-6 * inside.grad
    assert float(penalty(moved)) < float(cost.detach())


def test_tilt_mirror_keeps_the_image_of_a_flat_torso():
    generator = torch.Generator().manual_seed(3)
    orient = torch.randn(8, 3, generator=generator, dtype=torch.float64)
    flat = torch.randn(8, 5, 3, generator=generator, dtype=torch.float64)
    flat[..., 2] = 0.0  # points in the body's own x-y plane, as shoulders and hips nearly are
    twin = camera.tilt_mirrored(orient)
    a = flat @ axis_angle_to_matrix(orient).transpose(1, 2)
    b = flat @ axis_angle_to_matrix(twin).transpose(1, 2)
    torch.testing.assert_close(a[..., :2], b[..., :2], atol=1e-9, rtol=0)  # same image (orthographic)
    torch.testing.assert_close(a[..., 2], -b[..., 2], atol=1e-9, rtol=0)  # opposite lean
