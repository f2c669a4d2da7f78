"""Synthetic fitting problems with ground truth, for the benchmark and the tests.

A case is a body with known parameters (a pose from a motion clip or random, random
shape, hands, expression), seen by a random camera; its keypoints are projected, given
pixel noise and partly dropped. Fitting them must bring back the body.

The SMPL-X-layout test model of `synthetic_model` picks its face landmarks and
surface keypoints at random places of the body (its nose may sit on a hand). For fitting
problems that look like real ones, `write_bench_model` writes such a file whose surface
keypoints and face landmarks lie on the parts they are named after.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ..body_model.model import BodyModel
from ..body_model.names import JOINT_NAMES, NUM_JOINTS, VERTEX_KEYPOINT_NAMES
from ..solver import camera
from . import synthetic_model

_J = JOINT_NAMES.index
# Surface keypoint -> joint whose vertices carry it.
_VERTEX_KEYPOINT_OWNERS = {
    "nose": "head", "right_eye": "right_eye_smplhf", "left_eye": "left_eye_smplhf", "right_ear": "head",
    "left_ear": "head", "left_big_toe": "left_foot", "left_small_toe": "left_foot", "left_heel": "left_ankle",
    "right_big_toe": "right_foot", "right_small_toe": "right_foot", "right_heel": "right_ankle",
    **{f"{side}_{finger}_tip": f"{side}_{finger}3" for side in ("left", "right")
       for finger in ("thumb", "index", "middle", "ring", "pinky")},
}  # fmt: skip


def _vertices_of(joint: int, count: int, start: int = 0) -> np.ndarray:
    """Vertices the synthetic model gives to `joint` (vertex v belongs to joint v % 55)."""
    return joint + NUM_JOINTS * np.arange(start, start + count)


def write_bench_model(path: str | Path, seed: int = 0) -> Path:
    """A synthetic 2019-layout SMPL-X file with surface keypoints and face landmarks on
    the right body parts: mouth landmarks on the jaw, the rest of the face on the head."""
    arrays = synthetic_model.make_model_arrays(seed=seed)
    faces = arrays["f"].astype(np.int64)
    ids = [int(_vertices_of(_J(_VERTEX_KEYPOINT_OWNERS[name]), 1, 2 + k)[0])
           for k, name in enumerate(VERTEX_KEYPOINT_NAMES)]  # fmt: skip
    landmark_faces = np.arange(51)
    for index in range(51):  # iBUG 17-67; 48-67 is the mouth
        owner = _J("jaw") if index + 17 >= 48 else _J("head")
        faces[index] = _vertices_of(owner, 3, 10 + 3 * index)
    for index in range(17):  # the contour: jaw line
        faces[51 + index] = _vertices_of(_J("jaw"), 3, 20 + index % 6 * 3)
    contour = np.broadcast_to(51 + np.arange(17), (79, 17)).copy()
    return synthetic_model.write_model(
        path,
        seed=seed,
        shapedirs=_body_like_directions(arrays["v_template"], np.random.default_rng(seed + 1)),
        f=faces.astype(np.uint32),
        vertex_keypoint_ids=np.array(ids),
        lmk_faces_idx=landmark_faces,
        dynamic_lmk_faces_idx=contour,
    )


def _body_like_directions(
    template: np.ndarray, rng: np.random.Generator, shape: int = 10, expression: int = 10
) -> np.ndarray:
    """(V, 3, shape + expression) blend directions that move whole parts coherently, as
    a real body's do: a shape direction shifts each joint's vertices together (so bone
    lengths change and keypoints see it) and scales the body about the pelvis; an
    expression direction moves only the vertices of the head and jaw."""  # fmt: skip
    owner = np.arange(len(template)) % NUM_JOINTS
    directions = np.zeros((len(template), 3, shape + expression))
    for k in range(shape):
        per_joint = rng.normal(scale=0.008, size=(NUM_JOINTS, 3))
        directions[:, :, k] = per_joint[owner] + 0.015 * rng.normal() * (
            template - template[owner == 0].mean(0)
        )
    face = np.isin(owner, [_J("head"), _J("jaw"), _J("left_eye_smplhf"), _J("right_eye_smplhf")])
    for k in range(expression):
        directions[face, :, shape + k] = rng.normal(scale=0.004, size=(int(face.sum()), 3))
    return directions


@dataclass
class Cases:
    """params: ground truth (B, ...) in the model's layout; keypoints (B, K, 3) pixels
    and confidence; clean (B, K, 2) projections without noise; focal (B,);
    image_size (B, 2)."""

    params: dict[str, Tensor]
    keypoints: Tensor
    clean: Tensor
    focal: Tensor
    image_size: Tensor


def make_cases(
    model: BodyModel,
    global_orient: np.ndarray,
    body_pose: np.ndarray,
    seed: int = 0,
    noise_px: float = 2.0,
    drop: float = 0.1,
    image_height: int = 1000,
    fixed_camera: tuple[float, int] | None = None,
) -> Cases:
    """Put each pose (N, 3) / (N, 63) in front of a random camera and detect it.

    Shape, expression, jaw and hands are random; the body turns to any heading; the lens
    is 24-85 mm equivalent (known to the fitter, as from EXIF); the person fills 45-85% of
    the image height; with `fixed_camera` (focal px, width), every image is that wide and
    seen through that lens (the reference SMPLify-X's inputs: 5000 px, 1000 x 1000). Noise
    is Gaussian, `noise_px` per coordinate at a 1000-pixel height; `drop` of the keypoints
    (and those outside the image) get confidence 0.
    """
    rng = np.random.default_rng(seed)
    count = len(body_pose)
    dtype = model.full_template.dtype
    params = model.zeros(count)

    def rand(*shape: int, scale: float = 1.0) -> Tensor:
        return torch.as_tensor(rng.normal(scale=scale, size=shape), dtype=dtype)

    params["betas"] = rand(count, model.num_betas)
    params["expression"] = rand(count, model.num_expression, scale=0.7)
    params["jaw_pose"] = torch.as_tensor(np.stack([rng.uniform(0, 0.25, count), np.zeros(count),
                                                   np.zeros(count)], 1), dtype=dtype)  # fmt: skip
    params["left_hand_pose"] = rand(count, model.num_hand_params, scale=0.7)
    params["right_hand_pose"] = rand(count, model.num_hand_params, scale=0.7)
    params["body_pose"] = torch.as_tensor(body_pose, dtype=dtype)
    heading = torch.stack([camera.rotation_y(angle) for angle in rng.uniform(0, 2 * math.pi, count)])
    tilt = torch.stack([camera.rotation_x(angle) for angle in rng.uniform(-0.2, 0.2, count)])
    root = torch.stack([_matrix(v) for v in global_orient])
    world = camera.FACING_CAMERA @ tilt @ heading @ root
    params["global_orient"] = camera.matrix_to_axis_angle(world).to(dtype)

    width = np.round(image_height * rng.choice([0.75, 1.0, 1.5], count)).astype(int)
    lenses = [camera.focal_from_35mm(rng.uniform(24, 85), w, image_height) for w in width]
    if fixed_camera is not None:
        lenses, width = [fixed_camera[0]] * count, np.full(count, fixed_camera[1])
    size = torch.as_tensor(np.stack([width, np.full(count, image_height)], 1), dtype=dtype)
    focal = torch.as_tensor(lenses, dtype=dtype)
    with torch.no_grad():
        posed = model(vertices=False, **params).keypoints
    extent = posed[:, :, 1].amax(1) - posed[:, :, 1].amin(1)
    depth = focal * extent / torch.as_tensor(rng.uniform(0.45, 0.85, count) * image_height, dtype=dtype)
    centre_shift = torch.as_tensor(rng.uniform(-0.1, 0.1, (count, 2)), dtype=dtype) * size
    middle = (posed.amax(1) + posed.amin(1)) / 2
    target = torch.stack([centre_shift[:, 0] * depth / focal, centre_shift[:, 1] * depth / focal, depth], 1)
    params["transl"] = target - middle
    with torch.no_grad():
        points = model(vertices=False, **params).keypoints
    clean = camera.project(points, focal, size / 2)
    noisy = clean + torch.as_tensor(
        rng.normal(scale=noise_px * image_height / 1000.0, size=clean.shape), dtype=dtype
    )
    confidence = torch.as_tensor(rng.uniform(size=clean.shape[:2]) >= drop, dtype=dtype)
    inside = (noisy >= 0).all(-1) & (noisy[..., 0] < size[:, None, 0]) & (noisy[..., 1] < size[:, None, 1])
    confidence = confidence * inside
    return Cases(params=params, keypoints=torch.cat([noisy, confidence[..., None]], -1), clean=clean,
                 focal=focal, image_size=size)  # fmt: skip


def _matrix(axis_angle: np.ndarray) -> Tensor:
    from ..body_model.lbs import axis_angle_to_matrix

    return axis_angle_to_matrix(torch.as_tensor(axis_angle, dtype=torch.float64))


def random_body_poses(count: int, seed: int = 0, scale: float = 0.25) -> tuple[np.ndarray, np.ndarray]:
    """Poses without a motion source (tests): upright root, small random joint angles,
    knees and elbows bent the natural way. -> (N, 3), (N, 63)."""
    rng = np.random.default_rng(seed)
    pose = rng.normal(scale=scale, size=(count, 21, 3))
    for joint, axis, sign in ((_J("left_knee"), 0, 1), (_J("right_knee"), 0, 1),
                              (_J("left_elbow"), 1, -1), (_J("right_elbow"), 1, 1)):  # fmt: skip
        pose[:, joint - 1, axis] = sign * np.abs(pose[:, joint - 1, axis]) * 2
    return np.zeros((count, 3)), pose.reshape(count, 63)
