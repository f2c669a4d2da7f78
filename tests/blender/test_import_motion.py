"""`import-motion`: AMASS-style SMPL-X .npz files and SMPLify-X result .pkl files (one, or a
folder of them) written here from known parameters, read back as a motion whose frames hold
those parameters (AMASS's turned into the camera's frame as motion_import documents), bad
files refused with one message and nothing written, and the .blend built from an import
posed as numpy_body poses the imported parameters."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import bpy
import numpy as np
import pytest
from blender_helpers import posed_joints_world, world_to_opencv
from test_export import MM, keyed_frames

from smplx_capture_addon.body_model import numpy_body
from smplx_capture_addon.cli import main
from smplx_capture_addon.motion_format import IMPORTED, frame_as_result, read_motion
from smplx_capture_addon.motion_import import (
    DEFAULT_FOCAL_PX,
    DISTANCE_M,
    FOCAL_PX,
    MotionImportError,
    import_motion,
)

FRAMES = 7
FPS = 60.0
BLOCKS = ("global_orient", "body_pose", "jaw_pose", "leye_pose", "reye_pose", "left_hand_pose",
          "right_hand_pose")  # fmt: skip
Z_UP_FROM_Y_UP = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])  # SMPL-X's y up -> AMASS's z


def amass_clip(seed: int = 0) -> dict[str, np.ndarray]:
    """A person turning and walking in AMASS's Z-up world: (FRAMES, 165) poses, trans, 16 betas."""
    rng = np.random.default_rng(seed)
    poses = rng.normal(scale=0.25, size=(FRAMES, 55, 3))
    for k in range(FRAMES):  # upright, facing -y then turning a little each frame
        heading = np.array([0.0, 0.0, 0.15 * k + np.pi])
        upright = numpy_body.axis_angle_to_matrix(heading) @ Z_UP_FROM_Y_UP
        turned = upright @ numpy_body.axis_angle_to_matrix(0.1 * poses[k, 0])
        poses[k, 0] = numpy_body.matrix_to_axis_angle(turned)
    walk = [np.linspace(0.3, 1.5, FRAMES), np.linspace(-0.2, 0.4, FRAMES), np.full(FRAMES, 0.95)]
    trans = np.stack(walk, axis=1)
    return {"poses": poses.reshape(FRAMES, 165), "trans": trans, "betas": rng.normal(size=16)}


def write_npz(path: Path, **arrays) -> Path:
    np.savez(path, **arrays)
    return path


def amass_world_joints(data, clip: dict, frame: int) -> np.ndarray:
    pose = clip["poses"][frame].reshape(55, 3)
    return numpy_body.forward(data, pose, clip["betas"], None, clip["trans"][frame]).joints


def test_an_amass_npz_keeps_its_poses_and_rate_seen_by_a_camera_in_front(small_model, tmp_path):
    clip = amass_clip()
    path = write_npz(tmp_path / "walk_poses.npz", mocap_frame_rate=np.array(FPS), gender=np.array("neutral"),
                     **clip)  # fmt: skip
    motion = import_motion(path, small_model)
    assert motion.fps == FPS and len(motion.frames) == FRAMES
    assert [f.index for f in motion.frames] == list(range(FRAMES))
    assert {f.flag for f in motion.frames} == {IMPORTED} and all(f.residual_px is None for f in motion.frames)
    np.testing.assert_allclose(motion.betas, clip["betas"])
    assert motion.camera.focal_length_px == pytest.approx(FOCAL_PX)
    # Everything but the root is the file's, in its layout (root 3, body 63, jaw 3, eyes 6, hands 90).
    for frame, poses in zip(motion.frames, clip["poses"], strict=True):
        ours = np.concatenate([getattr(frame, name) for name in BLOCKS])
        np.testing.assert_allclose(ours[3:], poses[3:], atol=1e-12)
        assert frame.expression == []
    # One rotation turns the whole clip into the camera's frame: world up becomes the image's up.
    roots = numpy_body.axis_angle_to_matrix([f.global_orient for f in motion.frames])
    files = numpy_body.axis_angle_to_matrix(clip["poses"][:, :3])
    turns = roots @ np.transpose(files, (0, 2, 1))
    np.testing.assert_allclose(turns, np.broadcast_to(turns[0], turns.shape), atol=1e-9)
    np.testing.assert_allclose(turns[0] @ [0.0, 0.0, 1.0], [0.0, -1.0, 0.0], atol=1e-9)
    # ... and the body faces the camera (its front, SMPL-X's +z, points back at it).
    assert (roots[0] @ [0.0, 0.0, 1.0])[2] < -0.9
    # Each frame's posed joints are the file's world joints moved rigidly; frame 0's pelvis
    # lies on the optical axis at DISTANCE_M.
    first = numpy_body.forward(small_model, numpy_body.full_pose(motion.frames[0]), motion.betas, None,
                               motion.frames[0].transl).joints  # fmt: skip
    np.testing.assert_allclose(first[0], [0.0, 0.0, DISTANCE_M], atol=1e-9)
    shift = first[0] - turns[0] @ amass_world_joints(small_model, clip, 0)[0]
    for k, frame in enumerate(motion.frames):
        ours = numpy_body.forward(small_model, numpy_body.full_pose(frame), motion.betas, None, frame.transl)
        expected = amass_world_joints(small_model, clip, k) @ turns[0].T + shift
        np.testing.assert_allclose(ours.joints, expected, atol=1e-9)


def test_separate_blocks_and_missing_keys_read_as_zeros(small_model, tmp_path):
    clip = amass_clip(seed=1)
    blocks = {"root_orient": clip["poses"][:, :3], "pose_body": clip["poses"][:, 3:66]}
    path = write_npz(tmp_path / "pose.npz", mocap_framerate=np.array(120.0), **blocks)
    motion = import_motion(path, small_model)
    assert motion.fps == 120.0 and motion.betas == [0.0] * 10
    for frame, poses in zip(motion.frames, clip["poses"], strict=True):
        np.testing.assert_allclose(frame.body_pose, poses[3:66], atol=1e-12)
        for name in BLOCKS[2:]:
            assert not np.any(getattr(frame, name))
    assert import_motion(path, small_model, fps=24.0).fps == 24.0  # --fps wins over the file's


def reference_result(rng: np.random.Generator, hand_width: int = 45) -> dict[str, np.ndarray]:
    """A result as SMPLify-X pickles it: each parameter a (1, n) float32 array."""
    sizes = {"global_orient": 3, "body_pose": 63, "jaw_pose": 3, "leye_pose": 3, "reye_pose": 3,
             "left_hand_pose": hand_width, "right_hand_pose": hand_width, "expression": 10, "betas": 10,
             "camera_translation": 3}  # fmt: skip
    result = {key: rng.normal(scale=0.3, size=(1, size)).astype(np.float32) for key, size in sizes.items()}
    result["global_orient"][0] = [np.pi, 0.1, 0.0]
    result["camera_translation"][0] = [0.05, 0.2, 9.0]
    result["camera_rotation"] = np.eye(3, dtype=np.float32)[None]
    return result


def write_pickle(path: Path, content: dict) -> Path:
    path.write_bytes(pickle.dumps(content, protocol=2))
    return path


def test_a_smplify_result_pkl_is_one_frame_with_the_models_mean_hand_added(small_model, tmp_path):
    result = reference_result(np.random.default_rng(0))
    motion = import_motion(write_pickle(tmp_path / "000.pkl", result), small_model)
    (frame,) = motion.frames
    for name in ("global_orient", "body_pose", "jaw_pose", "leye_pose", "reye_pose", "expression"):
        np.testing.assert_allclose(getattr(frame, name), result[name][0], atol=1e-7)
    left, right = result["left_hand_pose"][0], result["right_hand_pose"][0]
    np.testing.assert_allclose(frame.left_hand_pose, left + small_model.hand_mean_left, atol=1e-6)
    np.testing.assert_allclose(frame.right_hand_pose, right + small_model.hand_mean_right, atol=1e-6)
    np.testing.assert_allclose(frame.transl, result["camera_translation"][0], atol=1e-7)
    np.testing.assert_allclose(motion.betas, result["betas"][0], atol=1e-7)
    assert motion.fps == 30.0 and motion.camera.focal_length_px == DEFAULT_FOCAL_PX


def test_pca_hands_are_expanded_with_the_given_models_components_or_refused(small_model, tmp_path):
    result = reference_result(np.random.default_rng(1), hand_width=12)
    path = write_pickle(tmp_path / "000.pkl", result)
    (frame,) = import_motion(path, small_model).frames
    components, mean = small_model.hand_components_left[:12], small_model.hand_mean_left
    expected = result["left_hand_pose"][0] @ components + mean
    np.testing.assert_allclose(frame.left_hand_pose, expected, atol=1e-6)
    with pytest.raises(MotionImportError, match="left_hand_pose: holds 12 PCA coefficients: give the SMPL-X"):
        import_motion(path, small_model, expand_hand_pca=False)


def test_a_folder_of_numbered_pkl_files_is_a_clip_in_number_order(small_model, tmp_path):
    rng = np.random.default_rng(2)
    results = [reference_result(rng) for _ in range(3)]
    for number, result in zip((2, 10, 1), results, strict=True):  # 10 after 2: by number, not by name
        write_pickle(tmp_path / f"frame_{number}.pkl", result)
    (tmp_path / "notes.txt").write_text("not a frame")
    motion = import_motion(tmp_path, small_model, fps=12.0)
    in_order = [results[2], results[0], results[1]]
    assert motion.fps == 12.0 and len(motion.frames) == 3
    for frame, result in zip(motion.frames, in_order, strict=True):
        np.testing.assert_allclose(frame.body_pose, result["body_pose"][0], atol=1e-7)
    np.testing.assert_allclose(motion.betas, np.mean([r["betas"][0] for r in results], axis=0), atol=1e-6)


class RunsCode:
    def __reduce__(self):
        return os.system, ("touch ran",)


def bad_files(folder: Path) -> dict[str, tuple[Path, str]]:
    clip = amass_clip()
    rate = {"mocap_frame_rate": np.array(FPS)}
    vposer = reference_result(np.random.default_rng(3))
    vposer["body_pose"] = np.zeros((1, 32), np.float32)
    latent = reference_result(np.random.default_rng(3))
    latent["pose_embedding"] = latent.pop("body_pose")[:, :32]
    return {
        "no poses": (write_npz(folder / "a.npz", trans=clip["trans"], **rate), "poses: is missing"),
        "wide poses": (write_npz(folder / "b.npz", **{**clip, "poses": clip["poses"][:, :156]}, **rate),
                       "poses: must be numbers of shape (frames, 165), found float64 of shape (7, 156)"),
        "short trans": (write_npz(folder / "c.npz", **{**clip, "trans": clip["trans"][:3]}, **rate),
                        "trans: holds 3 frames where the poses hold 7"),
        "no rate": (write_npz(folder / "d.npz", **clip), "mocap_frame_rate: is missing"),
        "code": (write_pickle(folder / "e.pkl", {"body_pose": RunsCode()}), "refusing to load posix.system"),
        "vposer": (write_pickle(folder / "f.pkl", vposer), "body_pose: holds a VPoser code (32 values)"),
        "latent only": (write_pickle(folder / "g.pkl", latent), "decode it with VPoser into body_pose"),
        "bad shape": (write_pickle(folder / "h.pkl", {**vposer, "body_pose": np.zeros((1, 60))}),
                      "body_pose: must hold 63 values, found 60"),
    }  # fmt: skip


@pytest.mark.parametrize("case", ["no poses", "wide poses", "short trans", "no rate", "code", "vposer",
                                  "latent only", "bad shape"])  # fmt: skip
def test_a_bad_file_gets_one_message_and_nothing_is_written(small_model, tmp_path, capsys, monkeypatch, case):
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    path, message = bad_files(inputs)[case]
    monkeypatch.chdir(inputs)  # where the pickle's command would leave its file
    out = tmp_path / "out"
    out.mkdir()
    argv = ["import-motion", str(path), "-o", str(out / "scene.blend"), "--model", small_model.path,
            "--motion-out", str(out / "motion.json")]  # fmt: skip
    assert main(argv) == 2
    error = capsys.readouterr().err
    assert error.startswith(f"error: {path}: ") and message in error and error.count("\n") == 1
    assert list(out.iterdir()) == [] and not (inputs / "ran").exists()


def test_import_motion_builds_a_blend_posed_as_the_imported_parameters(small_model, tmp_path):
    path = write_npz(tmp_path / "walk.npz", mocap_frame_rate=np.array(FPS), **amass_clip())
    blend, json_path = tmp_path / "scene.blend", tmp_path / "motion.json"
    argv = ["import-motion", str(path), "-o", str(blend), "--model", small_model.path, "--motion-out",
            str(json_path)]  # fmt: skip
    assert main(argv) == 0
    motion = read_motion(json_path)
    assert motion == import_motion(path, small_model)
    bpy.ops.wm.open_mainfile(filepath=str(blend))
    scene = bpy.context.scene
    (armature,) = [o for o in bpy.data.objects if o.type == "ARMATURE"]
    (camera,) = [o for o in bpy.data.objects if o.type == "CAMERA"]
    assert keyed_frames(armature) == set(map(float, range(1, FRAMES + 1)))
    assert (scene.frame_start, scene.frame_end) == (1, FRAMES)
    assert scene.render.fps / scene.render.fps_base == pytest.approx(FPS)
    for number in (0, 3, FRAMES - 1):
        scene.frame_set(1 + number)
        person = frame_as_result(motion, number).people[0]
        expected = numpy_body.forward(small_model, numpy_body.full_pose(person), person.betas,
                                      person.expression, person.transl).joints  # fmt: skip
        joints = world_to_opencv(camera, posed_joints_world(armature))
        np.testing.assert_allclose(joints, expected, atol=MM)


def test_an_output_that_cannot_be_written_is_refused_before_the_file_is_read(small_model, tmp_path, capsys):
    in_the_way = tmp_path / "a file"
    in_the_way.write_text("a file, not a folder")
    missing = tmp_path / "no such motion.npz"  # never read: the output is refused first
    blocked_json = ["-o", str(tmp_path / "scene.blend"), "--motion-out", str(in_the_way / "motion.json")]
    for argv in (["-o", str(in_the_way / "scene.blend")], blocked_json):
        assert main(["import-motion", str(missing), *argv, "--model", small_model.path]) == 2
        assert f"{in_the_way} is a file, not a folder: choose a folder" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a file"]
