"""numpy_body's rotation helpers (the torch comparison is in tests/blender_fit)."""

from __future__ import annotations

import numpy as np

from smplx_capture_addon.body_model import numpy_body


def test_quaternions_round_trip_rotations():
    rotations = numpy_body.axis_angle_to_matrix(np.random.default_rng(0).normal(scale=1.5, size=(200, 3)))
    q = numpy_body.matrix_to_quaternion(rotations)
    w, x, y, z = q.T
    rebuilt = np.stack([
        1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w),
        2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w),
        2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y),
    ], axis=-1).reshape(-1, 3, 3)  # fmt: skip
    np.testing.assert_allclose(rebuilt, rotations, atol=1e-12)
    assert (w >= 0).all()


def test_axis_angle_round_trips_through_matrices_and_quaternions():
    """Turns of at most pi come back as they went in, tiny ones too; a quaternion of any
    norm and sign gives the same turn."""
    rng = np.random.default_rng(1)
    axes = rng.normal(size=(300, 3))
    axes /= np.linalg.norm(axes, axis=1, keepdims=True)
    angles = np.concatenate([rng.uniform(0.0, np.pi - 1e-6, 297), [0.0, 1e-10, 1e-5]])
    turns = axes * angles[:, None]
    np.testing.assert_allclose(numpy_body.matrix_to_axis_angle(numpy_body.axis_angle_to_matrix(turns)), turns,
                               atol=1e-9)  # fmt: skip
    q = numpy_body.axis_angle_to_quaternion(turns)
    np.testing.assert_allclose(numpy_body.quaternion_to_axis_angle(-3.0 * q), turns, atol=1e-9)


def test_pose_blocks_undo_full_pose_for_one_person_and_for_frames():
    """A result's person (or a motion's frame) -> full_pose (55, 3) -> pose_blocks gives
    back each named block; on a stack of frames (F, 55, 3) each block is (F, size)."""
    from types import SimpleNamespace

    rng = np.random.default_rng(0)
    sizes = {"global_orient": 3, "body_pose": 63, "jaw_pose": 3, "leye_pose": 3, "reye_pose": 3,
             "left_hand_pose": 45, "right_hand_pose": 45}  # fmt: skip
    people = [{name: rng.normal(size=size) for name, size in sizes.items()} for _ in range(3)]
    poses = [numpy_body.full_pose(SimpleNamespace(**person)) for person in people]
    for person, pose in zip(people, poses, strict=True):
        blocks = numpy_body.pose_blocks(pose)
        assert blocks.keys() == sizes.keys()
        for name, values in person.items():
            np.testing.assert_array_equal(blocks[name], values)
    stacked = numpy_body.pose_blocks(np.stack(poses))
    for name, size in sizes.items():
        assert stacked[name].shape == (3, size)
        np.testing.assert_array_equal(stacked[name], np.stack([person[name] for person in people]))
