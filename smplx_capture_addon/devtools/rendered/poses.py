"""Poses of the rendered benchmark: DeepMimic frames and poses made here by hand.

A pose is (global_orient (3,), body_pose (63,)), axis-angle in the SMPL-X layout (x: the
body's left, y: up, z: its front). The hand-made ones cover what the motion clips lack:
sitting on a box, crouching, kneeling, lying on the floor, and upper bodies that reach,
cross their arms or hold their hands near the face. Each is drawn with random variation
(every joint jittered, the head turned, the upper body picked from several), so no two
cases share a pose.

Rotations are written for the left side as turns about the parent's axes, applied in the
order given, and mirrored to the right (a mirror across the body's midplane keeps x and
negates y and z of an axis-angle).

The motion clips are split in two: the benchmark poses people with BENCHMARK_CLIPS, the
training cases of the landmark calibration with TRAINING_CLIPS, so the benchmark never
scores poses that calibration has seen.
"""

from __future__ import annotations

from functools import cache

import numpy as np

from ...body_model.names import JOINT_NAMES
from ...body_model.numpy_body import axis_angle_to_matrix
from ...errors import CaptureError
from .. import motions

BENCHMARK_CLIPS = ("walk", "run", "kick", "punch", "dance_a", "cartwheel")
TRAINING_CLIPS = ("jump", "dance_b")
SPLIT_CLIPS = {"benchmark": BENCHMARK_CLIPS, "training": TRAINING_CLIPS}

Pose = tuple[np.ndarray, np.ndarray, str]  # global_orient, body_pose, what it is
Joints = dict[str, np.ndarray]
_AXES = {"x": 0, "y": 1, "z": 2}
# A body whose pelvis-to-neck line leans less than this from the vertical counts as upright.
UPRIGHT_COS = np.cos(np.radians(35.0))


def turn(*steps: tuple[str, float]) -> np.ndarray:
    """Axis-angle of turns about the parent's x, y or z axis, the first applied first."""
    matrix = np.eye(3)
    for axis, angle in steps:
        vector = np.zeros(3)
        vector[_AXES[axis]] = angle
        matrix = axis_angle_to_matrix(vector) @ matrix
    return motions.matrix_to_axis_angle(matrix)


def mirrored(left: Joints) -> Joints:
    """The same turns on the right side: names swapped, axis-angle y and z negated."""
    right = {}
    for name, rotation in left.items():
        left_side = name.startswith("left_")
        other = name.replace("left_", "right_") if left_side else name.replace("right_", "left_")
        right[other] = rotation * np.array([1.0, -1.0, -1.0])
    return right


def both_sides(left: Joints) -> Joints:
    return {**left, **mirrored(left)}


def body_pose(joints: Joints) -> np.ndarray:
    """(63,) body_pose with the given joints turned, the others at rest."""
    pose = np.zeros((21, 3))
    for name, rotation in joints.items():
        pose[JOINT_NAMES.index(name) - 1] = rotation
    return pose.reshape(-1)


# Upper bodies, left side as written (see `_upper_body` for which get mirrored).
ARMS_RELAXED = {"left_shoulder": turn(("z", -1.2)), "left_elbow": turn(("y", -0.3))}
ARMS_CROSSED = {  # forearms folded across the belly, the upper arms turned inwards
    "left_shoulder": turn(("x", 1.3), ("z", -1.25), ("x", -0.7)),
    "left_elbow": turn(("y", -2.1)),
    "left_collar": turn(("y", -0.1)),
}
HANDS_AT_FACE = {  # elbows forward and down, hands up at the cheeks
    "left_shoulder": turn(("z", -1.1), ("x", -0.9), ("y", -0.35)),
    "left_elbow": turn(("y", -2.4)),
    "left_wrist": turn(("z", 0.3)),
}
HANDS_ON_KNEES = {"left_shoulder": turn(("z", -1.25), ("x", -0.5)), "left_elbow": turn(("y", -0.6))}
REACH_UP = {"left_shoulder": turn(("z", 1.3), ("x", -0.2)), "left_elbow": turn(("y", -0.15))}
REACH_FORWARD = {"left_shoulder": turn(("z", -0.2), ("y", -1.35)), "left_elbow": turn(("y", -0.15))}
REACH_SIDE = {"left_shoulder": turn(("z", 0.35), ("y", -0.3)), "left_elbow": turn(("y", -0.1))}

# Lower bodies.
LEGS_STANDING = {"left_hip": turn(("x", -0.05), ("z", 0.05)), "left_knee": turn(("x", 0.1))}
LEGS_SEATED = {"left_hip": turn(("x", -1.5), ("z", 0.1)), "left_knee": turn(("x", 1.5))}
LEGS_SQUAT = {
    "left_hip": turn(("x", -2.0), ("z", 0.35)),
    "left_knee": turn(("x", 2.3)),
    "left_ankle": turn(("x", -0.5)),
}
LEGS_KNEELING = {  # the left foot planted, the right knee on the floor
    "left_hip": turn(("x", -1.45)),
    "left_knee": turn(("x", 1.55)),
    "right_hip": turn(("x", 0.1)),
    "right_knee": turn(("x", 1.6)),
    "right_ankle": turn(("x", 0.7)),
}
LEGS_LYING_BENT = {"left_hip": turn(("x", -0.8)), "left_knee": turn(("x", 1.4))}
LEGS_LYING_SIDE = {"left_hip": turn(("x", -0.6)), "left_knee": turn(("x", 1.0))}


def _upper_body(rng: np.random.Generator, choices: tuple[str, ...]) -> tuple[Joints, str]:
    """An upper body and its name: an arm pose on both sides, or on one side (the other
    arm relaxed)."""
    name = choices[rng.integers(len(choices))]
    symmetric = {"relaxed": ARMS_RELAXED, "crossed": ARMS_CROSSED, "hands_at_face": HANDS_AT_FACE,
                 "hands_on_knees": HANDS_ON_KNEES}  # fmt: skip
    one_sided = {"reach_up": REACH_UP, "reach_forward": REACH_FORWARD, "reach_side": REACH_SIDE,
                 "one_hand_at_face": HANDS_AT_FACE}  # fmt: skip
    if name in symmetric:
        return both_sides(symmetric[name]), name
    arm, relaxed = one_sided[name], ARMS_RELAXED
    if rng.random() < 0.5:
        return {**arm, **mirrored(relaxed)}, name
    return {**relaxed, **mirrored(arm)}, name


def _jittered(joints: Joints, rng: np.random.Generator, scale: float) -> np.ndarray:
    """body_pose of `joints` with every joint turned by a little noise, the neck and
    head turned as a person looks about."""
    pose = body_pose(joints).reshape(21, 3) + rng.normal(scale=scale, size=(21, 3))
    for name, (yaw, pitch) in (("neck", (0.25, 0.1)), ("head", (0.3, 0.15))):
        pose[JOINT_NAMES.index(name) - 1] += (rng.normal(scale=pitch), rng.normal(scale=yaw), 0.0)
    return pose.reshape(-1)


def standing(rng: np.random.Generator) -> Pose:
    upper, name = _upper_body(rng, ("relaxed", "crossed", "hands_at_face", "reach_up", "reach_forward",
                                    "reach_side", "one_hand_at_face"))  # fmt: skip
    return np.zeros(3), _jittered({**both_sides(LEGS_STANDING), **upper}, rng, 0.06), f"standing, {name}"


def seated(rng: np.random.Generator) -> Pose:
    upper, name = _upper_body(rng, ("relaxed", "hands_on_knees", "crossed", "hands_at_face", "reach_forward",
                                    "one_hand_at_face"))  # fmt: skip
    lean = {"spine1": turn(("x", rng.uniform(-0.1, 0.25)))}
    return np.zeros(3), _jittered({**both_sides(LEGS_SEATED), **upper, **lean}, rng, 0.06), f"seated, {name}"


def crouched(rng: np.random.Generator) -> Pose:
    if rng.random() < 0.6:
        legs, way = both_sides(LEGS_SQUAT), "squatting"
    else:
        legs, way = (LEGS_KNEELING if rng.random() < 0.5 else mirrored(LEGS_KNEELING)), "kneeling"
    upper, name = _upper_body(rng, ("hands_on_knees", "relaxed", "crossed", "reach_forward",
                                    "one_hand_at_face"))  # fmt: skip
    lean = {"spine1": turn(("x", rng.uniform(0.2, 0.45))), "spine2": turn(("x", rng.uniform(0.0, 0.2)))}
    return np.zeros(3), _jittered({**legs, **upper, **lean}, rng, 0.05), f"{way}, {name}"


def lying(rng: np.random.Generator) -> Pose:
    """On the back, on a side or on the front propped on the elbows: the root turned so
    the body lies along the floor (the caller turns it about the vertical)."""
    way = ("on the back", "on a side", "on the front")[rng.integers(3)]
    if way == "on the back":
        legs = both_sides(LEGS_LYING_BENT) if rng.random() < 0.5 else both_sides(LEGS_STANDING)
        upper, name = _upper_body(rng, ("relaxed", "crossed", "reach_up", "hands_at_face"))
        root = turn(("x", -np.pi / 2))
    elif way == "on a side":
        legs = both_sides(LEGS_LYING_SIDE)
        upper, name = _upper_body(rng, ("relaxed", "reach_forward", "one_hand_at_face"))
        root = turn(("z", np.pi / 2 * rng.choice([-1.0, 1.0])))
    else:
        legs, name = both_sides(LEGS_STANDING), "on the elbows"
        upper = both_sides({"left_shoulder": turn(("z", -0.5), ("y", -1.2)), "left_elbow": turn(("y", -1.6))})
        upper |= {"spine2": turn(("x", -0.35)), "spine3": turn(("x", -0.3)), "neck": turn(("x", -0.4))}
        root = turn(("x", np.pi / 2))
    return root, _jittered({**legs, **upper}, rng, 0.05), f"lying {way}, {name}"


@cache
def _clip_frames(split: str) -> tuple[tuple[str, np.ndarray], ...]:
    paths = {clip: motions.MOTION_CACHE / f"humanoid3d_{clip}.txt" for clip in SPLIT_CLIPS[split]}
    missing = [path.name for path in paths.values() if not path.is_file()]
    if missing:
        raise CaptureError(
            f"Motion clips {', '.join(missing)} are missing in {motions.MOTION_CACHE}: run "
            "`python3 build.py setup` first."
        )
    return tuple((clip, motions.load_clip(path)) for clip, path in paths.items())


def motion_frame(rng: np.random.Generator, split: str, upright: bool) -> Pose:
    """A frame of the split's clips; with `upright`, only frames whose torso stands."""
    clips = _clip_frames(split)
    while True:
        clip, frames = clips[rng.integers(len(clips))]
        frame = int(rng.integers(len(frames)))
        orient, pose = motions.frame_to_smplx(frames[frame])
        if not upright or axis_angle_to_matrix(orient)[1, 1] >= UPRIGHT_COS:
            return orient, pose, f"{clip} frame {frame}"


def draw(kind: str, rng: np.random.Generator, split: str) -> Pose:
    """A pose for a person of a case `kind` (see cases.KINDS) and the split's motions:
    seated, crouched and lying kinds their own; the others mostly motion frames (upright
    but in "full") and the rest standing poses made here."""
    own = {"seated": seated, "crouched": crouched, "lying": lying}
    if kind in own:
        return own[kind](rng)
    return motion_frame(rng, split, upright=kind != "full") if rng.random() < 0.6 else standing(rng)
