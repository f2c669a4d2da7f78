"""Feet on the ground in a fitted clip: the ground plane, the feet's contacts, and the
contact feet held still (no foot skating).

Each foot is followed by two points of the body's surface, the heel and the big toe (the
body model's keypoints of those names), in camera space.

- Ground (`fit_ground`): a plane fitted to the foot points at rest (slower than
  CONTACT_SPEED), robustly (points far from it dropped, three rounds), then again to
  those in the lowest band above that plane (a foot may rest off the ground). Along a
  straight walk the points lie near a line, which leaves the plane free to roll about
  it: the body's up direction (ankles to neck, over the clip) settles that, weighed as
  PLANE_PRIOR_M of spread would be. Speeds count the motion along the camera's line of
  sight at RAY_WEIGHT only (`point_speeds`): a fit's depth drifts where a foot stands.
- Contacts (`find_contacts`): a point comes into contact when it is within CONTACT_HEIGHT
  of the ground and slower than CONTACT_SPEED, and leaves it when it rises above
  RELEASE_HEIGHT or moves faster than RELEASE_SPEED: the gap between the two (hysteresis)
  keeps a noisy point from flickering in and out.
- Holding (`hold_feet`): each run of contact frames of a point pins it to one place, the
  run's mean position dropped onto the ground. A small optimisation moves the root's
  translation and the legs' rotations as little as it can to meet the pins: the body's
  projection is kept where the fit put it (depth, which the image does not see, is what
  gives), the changes vary smoothly from frame to frame (no seams at a run's ends), and no
  foot point goes below the ground. Deterministic on the CPU.
- Windows (`windows`): the optimisation runs over WINDOW_FRAMES frames at a time, windows
  overlapping by WINDOW_OVERLAP, so its memory and each solve's time are bounded whatever
  the clip's length. The pins are found over the whole clip first, so a contact run that
  crosses a window's edge is held to the same place in both windows; across an overlap the
  changes are cross-faded (weights ramping linearly), which leaves no seam. A clip no
  longer than a window is one solve.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
import torch

from ..body_model import numpy_body
from ..body_model.model import BodyModel
from ..body_model.model_file import BodyModelData
from ..body_model.names import JOINT_NAMES, NUM_BODY_JOINTS, keypoint_index
from ..errors import Cancelled
from ..motion_format import CONTACT_POINTS, GroundPlane, MotionFrame
from ..solver import camera

# The points followed, in the order of CONTACT_POINTS (the motion file's contact keys).
_FOOT_KEYPOINTS = [
    keypoint_index(name) for name in ("left_heel", "left_big_toe", "right_heel", "right_big_toe")
]
_LEG_JOINTS = [JOINT_NAMES.index(f"{side}_{part}") for side in ("left", "right")
               for part in ("hip", "knee", "ankle", "foot")]  # fmt: skip
_ANKLES = [JOINT_NAMES.index("left_ankle"), JOINT_NAMES.index("right_ankle")]
_NECK = JOINT_NAMES.index("neck")
_KEPT_IN_VIEW = list(range(1 + NUM_BODY_JOINTS))  # the body joints whose projection the hold keeps

CONTACT_HEIGHT = 0.03  # metres above the ground: a foot point standing on it
RELEASE_HEIGHT = 0.05
CONTACT_SPEED = 0.3  # metres per second: a foot point at rest (a walk's swing foot moves at 2 to 4)
RELEASE_SPEED = 0.6
RAY_WEIGHT = 0.25
GROUND_BAND = 0.05  # metres: the ground is fitted to the resting points this near the lowest
PLANE_PRIOR_M = 0.03
MIN_GROUND_POINTS = 6

# The hold's tolerances: how far each thing may be from what it is drawn to for one unit of loss.
PIN_TOLERANCE = 0.003  # metres, a contact point from its pin (and any point below the ground)
IMAGE_TOLERANCE_PX = 2.0  # a body joint's projection from the fit's
CHANGE_TOLERANCE = (0.3, 0.1)  # radians, metres: the changes themselves (only weakly held)
ACCELERATION_TOLERANCE = (0.01, 0.003)  # radians, metres per frame^2: the changes' bends in time
HOLD_ITERATIONS = 150  # per window
WINDOW_FRAMES = 96
WINDOW_OVERLAP = 16

# Told after each window is held: (the window's last frame, windows done, windows in all).
WindowDone = Callable[[int, int, int], None]


@dataclass(frozen=True)
class Ground:
    """A plane in camera space: the points x with normal . x = offset; the unit normal
    points from the ground towards the body."""

    normal: np.ndarray
    offset: float

    def heights(self, points: np.ndarray) -> np.ndarray:
        """(..., 3) points -> (...) signed heights above the plane, metres."""
        return points @ self.normal - self.offset

    def dropped(self, points: np.ndarray) -> np.ndarray:
        """(..., 3) points moved along the normal onto the plane."""
        return points - self.heights(points)[..., None] * self.normal


@dataclass
class ClipPose:
    """A clip's parameters as arrays: full_pose (F, 55, 3) axis-angle with the hands' mean
    included, transl (F, 3), expression (F, E), betas (S,): one shape."""

    full_pose: np.ndarray
    transl: np.ndarray
    expression: np.ndarray
    betas: np.ndarray

    def span(self, first: int, end: int) -> ClipPose:
        """Frames `first` to `end` (excluded) of the clip."""
        return ClipPose(self.full_pose[first:end], self.transl[first:end], self.expression[first:end],
                        self.betas)  # fmt: skip


@dataclass
class PlantedFeet:
    """What `plant_feet` found and did: the pose with the feet held, the ground (None when
    the feet never rest: then nothing is held) and the contacts (F, 4) in CONTACT_POINTS order."""

    pose: ClipPose
    ground: Ground | None
    contacts: np.ndarray


def motion_body(data: BodyModelData, num_betas: int, num_expression: int) -> BodyModel:
    """The body that takes a motion's parameters as they are (full hand poses, mean included)."""
    return BodyModel(data, num_betas=num_betas, num_expression=num_expression, hand_pca=None,
                     flat_hand_mean=True)  # fmt: skip


@dataclass(frozen=True)
class Windows:
    """How the hold splits a clip: `frames` a window, overlapping by `overlap`."""

    frames: int = WINDOW_FRAMES
    overlap: int = WINDOW_OVERLAP

    def __post_init__(self) -> None:
        if not 0 <= self.overlap < self.frames:
            raise ValueError(f"a window of {self.frames} frames cannot overlap the next by {self.overlap}")


DEFAULT_WINDOWS = Windows()


def plant_feet(
    body: BodyModel, clip: ClipPose, fps: float, focal: float, centre: tuple[float, float],
    split: Windows = DEFAULT_WINDOWS, window_done: WindowDone | None = None,
    cancel: Callable[[], bool] | None = None,
) -> PlantedFeet:  # fmt: skip
    """The clip's ground and contacts, and the clip with its contact feet held still
    (see the module docstring); `body` from `motion_body`, `focal` and `centre` the camera's
    focal length and principal point in pixels. `window_done` is told after each window;
    a `cancel()` that answers True (asked at every step of the solve) raises Cancelled."""
    joints, points = _joints_and_feet(body, clip, split.frames)
    speeds = point_speeds(points, fps)
    ground = fit_ground(points, speeds, body_up(joints))
    if ground is None:
        return PlantedFeet(clip, None, np.zeros(points.shape[:2], dtype=bool))
    contacts = find_contacts(ground.heights(points), speeds)
    targets = pin_targets(points, contacts, ground)
    held = hold_feet(body, clip, targets, ground, focal, centre, split, window_done, cancel)
    return PlantedFeet(held, ground, contacts)


def clip_pose(frames: list[MotionFrame], betas: list[float]) -> ClipPose:
    """A motion's frames as arrays."""
    return ClipPose(
        np.stack([numpy_body.full_pose(frame) for frame in frames]),
        np.array([frame.transl for frame in frames]),
        np.array([frame.expression for frame in frames]),
        np.asarray(betas, dtype=float),
    )


def planted_frames(frames: list[MotionFrame], planted: PlantedFeet) -> list[MotionFrame]:
    """`frames` with the legs and translation `planted` holds and its contacts (none where
    no ground was found)."""
    pose = planted.pose.full_pose
    return [
        replace(frame, body_pose=pose[number, 1 : 1 + NUM_BODY_JOINTS].reshape(-1).tolist(),
                transl=planted.pose.transl[number].tolist(),
                contacts=None if planted.ground is None
                else dict(zip(CONTACT_POINTS, map(bool, planted.contacts[number]), strict=True)))
        for number, frame in enumerate(frames)
    ]  # fmt: skip


def ground_plane(ground: Ground | None) -> GroundPlane | None:
    """The ground as the motion file holds it."""
    return None if ground is None else GroundPlane(ground.normal.tolist(), ground.offset)


def point_speeds(points: np.ndarray, fps: float) -> np.ndarray:
    """(F, P, 3) positions in camera space -> (F, P) speeds in metres per second (central
    differences, one-sided at the clip's ends; 0 for a single frame), the motion along
    the camera's line of sight counted at RAY_WEIGHT: the image does not see it, and a
    fit's depth drifts by centimetres a frame where the foot stands still."""
    if len(points) < 2:
        return np.zeros(points.shape[:2])
    velocity = np.gradient(points, axis=0) * fps
    ray = points / np.linalg.norm(points, axis=-1, keepdims=True)
    along = np.sum(velocity * ray, axis=-1)
    across = velocity - along[..., None] * ray
    return np.sqrt(np.sum(across**2, axis=-1) + (RAY_WEIGHT * along) ** 2)


def body_up(joints: np.ndarray) -> np.ndarray:
    """(F, 55, 3) joints -> the unit direction from the ankles to the neck over the clip."""
    up = (joints[:, _NECK] - joints[:, _ANKLES].mean(axis=1)).mean(axis=0)
    return up / np.linalg.norm(up)


def fit_ground(points: np.ndarray, speeds: np.ndarray, up: np.ndarray) -> Ground | None:
    """The ground plane under the resting foot points (see the module docstring), or None
    when fewer than MIN_GROUND_POINTS rest."""
    resting = points[speeds < CONTACT_SPEED]
    if len(resting) < MIN_GROUND_POINTS:
        return None
    heights = _robust_plane(resting, up).heights(resting)
    lowest = resting[heights <= np.percentile(heights, 10) + GROUND_BAND]
    return _robust_plane(lowest if len(lowest) >= MIN_GROUND_POINTS else resting, up)


def _robust_plane(points: np.ndarray, up: np.ndarray) -> Ground:
    """The plane of most of `points` (N, 3): those far from it are dropped, three rounds."""
    kept = points
    for _ in range(3):
        distances = np.abs(_plane(kept, up).heights(points))
        inside = distances <= max(3.0 * 1.4826 * np.median(distances), 0.01)  # 3 robust deviations
        if inside.sum() < MIN_GROUND_POINTS:
            break
        kept = points[inside]
    return _plane(kept, up)


def _plane(points: np.ndarray, up: np.ndarray) -> Ground:
    """The plane nearest `points` (N, 3) in the least squares, its roll held by `up`."""
    centre = points.mean(axis=0)
    spread = np.cov((points - centre).T, bias=True) - PLANE_PRIOR_M**2 * np.outer(up, up)
    normal = np.linalg.eigh(spread)[1][:, 0]
    normal = normal if normal @ up > 0 else -normal
    return Ground(normal, float(normal @ centre))


def find_contacts(heights: np.ndarray, speeds: np.ndarray) -> np.ndarray:
    """(F, P) heights above the ground and speeds -> (F, P) contact flags, with
    hysteresis (see the module docstring)."""
    contacts = np.zeros(heights.shape, dtype=bool)
    for frame in range(len(heights)):
        was = contacts[frame - 1] if frame else np.zeros(heights.shape[1], dtype=bool)
        stays = was & (heights[frame] < RELEASE_HEIGHT) & (speeds[frame] < RELEASE_SPEED)
        comes = ~was & (heights[frame] < CONTACT_HEIGHT) & (speeds[frame] < CONTACT_SPEED)
        contacts[frame] = stays | comes
    return contacts


def contact_runs(flags: np.ndarray) -> list[tuple[int, int]]:
    """(F,) bool -> the runs of True as (first, last) frames, last included."""
    edges = np.diff(np.concatenate([[0], flags.astype(np.int8), [0]]))
    return list(zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1) - 1, strict=True))


def pin_targets(points: np.ndarray, contacts: np.ndarray, ground: Ground) -> np.ndarray:
    """(F, P, 3) where each contact point is held: its run's mean position on the ground
    (NaN where a point is not in contact)."""
    targets = np.full(points.shape, np.nan)
    for point in range(points.shape[1]):
        for first, last in contact_runs(contacts[:, point]):
            targets[first : last + 1, point] = ground.dropped(points[first : last + 1, point].mean(axis=0))
    return targets


def windows(frames: int, split: Windows) -> list[tuple[int, int]]:
    """The windows over a clip of `frames` frames as (first, end) frames, end excluded: each
    `split.frames` long (the clip, when shorter), each starting `split.overlap` frames
    before the last one's end (the last one more, so it ends at the clip's end)."""
    if frames <= split.frames:
        return [(0, frames)]
    starts = list(range(0, frames - split.frames + 1, split.frames - split.overlap))
    if starts[-1] + split.frames < frames:
        starts.append(frames - split.frames)
    return [(start, start + split.frames) for start in starts]


def blend_weights(first: int, end: int, frames: int, overlap: int) -> np.ndarray:
    """The weights (end - first,) of a window's changes in the cross-fade: ramping linearly
    over `overlap` frames at an edge inside the clip, 1 elsewhere (so that, where two windows
    overlap by `overlap`, the weights add up to 1)."""
    position = np.arange(first, end)
    ramp = np.ones(end - first)
    if first > 0:
        ramp = np.minimum(ramp, (position - first + 1) / (overlap + 1))
    if end < frames:
        ramp = np.minimum(ramp, (end - position) / (overlap + 1))
    return ramp


def hold_feet(
    body: BodyModel, clip: ClipPose, targets: np.ndarray, ground: Ground, focal: float,
    centre: tuple[float, float], split: Windows = DEFAULT_WINDOWS, window_done: WindowDone | None = None,
    cancel: Callable[[], bool] | None = None,
) -> ClipPose:  # fmt: skip
    """`clip` with its leg rotations and translation moved to bring the foot points to
    `targets` (F, P, 3; NaN: free), window by window (see the module docstring)."""
    frames = len(clip.transl)
    spans = windows(frames, split)
    turn, shift = np.zeros((frames, len(_LEG_JOINTS), 3)), np.zeros((frames, 3))
    weight = np.zeros(frames)
    for done, (first, end) in enumerate(spans, start=1):
        window_turn, window_shift = _hold_window(body, clip.span(first, end), targets[first:end], ground,
                                                 focal, centre, cancel)  # fmt: skip
        blend = blend_weights(first, end, frames, split.overlap)
        turn[first:end] += blend[:, None, None] * window_turn
        shift[first:end] += blend[:, None] * window_shift
        weight[first:end] += blend
        if window_done is not None:
            window_done(end - 1, done, len(spans))
    full_pose = clip.full_pose.copy()
    full_pose[:, _LEG_JOINTS] += turn / weight[:, None, None]
    return ClipPose(full_pose, clip.transl + shift / weight[:, None], clip.expression, clip.betas)


def _hold_window(
    body: BodyModel, clip: ClipPose, targets: np.ndarray, ground: Ground, focal: float,
    centre: tuple[float, float], cancel: Callable[[], bool] | None,
) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """One window's solve: the changes to the legs' rotations (F, 8, 3) and to the
    translation (F, 3) that hold its foot points to `targets`."""
    frames = len(clip.transl)
    pinned = torch.as_tensor(~np.isnan(targets[..., 0]))
    if not pinned.any():
        return np.zeros((frames, len(_LEG_JOINTS), 3)), np.zeros((frames, 3))
    params = _parameters(clip)
    pose, transl = torch.as_tensor(clip.full_pose, dtype=torch.float32), params["transl"]
    fixed = {"betas": params["betas"], "expression": params["expression"]}
    goal = torch.as_tensor(np.nan_to_num(targets), dtype=torch.float32)
    normal = torch.as_tensor(ground.normal, dtype=torch.float32)
    focals = torch.full((frames,), float(focal))
    centres = torch.tensor([centre], dtype=torch.float32)
    turn = torch.zeros(frames, len(_LEG_JOINTS), 3, requires_grad=True)
    shift = torch.zeros(frames, 3, requires_grad=True)

    def posed(turn: torch.Tensor, shift: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        full = pose.index_add(1, torch.tensor(_LEG_JOINTS), turn)
        blocks = numpy_body.pose_blocks(full)
        out = body(vertices=False, face_landmarks=False, transl=transl + shift, **fixed, **blocks)
        return out.joints[:, _KEPT_IN_VIEW], out.keypoints[:, _FOOT_KEYPOINTS]

    with torch.no_grad():
        seen = camera.project(posed(turn, shift)[0], focals, centres)

    def loss() -> torch.Tensor:
        if cancel is not None and cancel():
            raise Cancelled("The video fit was cancelled.")
        optimiser.zero_grad()
        joints, feet = posed(turn, shift)
        below = torch.relu(ground.offset - feet @ normal)
        total = (((feet - goal)[pinned] ** 2).sum() + (below**2).sum()) / PIN_TOLERANCE**2
        total = total + ((camera.project(joints, focals, centres) - seen) ** 2).sum() / IMAGE_TOLERANCE_PX**2
        tolerances = zip(CHANGE_TOLERANCE, ACCELERATION_TOLERANCE, strict=True)
        for change, (still, smooth) in zip((turn, shift), tolerances, strict=True):
            total = total + (change**2).sum() / still**2
            if frames > 2:
                total = total + ((change[2:] - 2 * change[1:-1] + change[:-2]) ** 2).sum() / smooth**2
        total.backward()
        return total

    optimiser = torch.optim.LBFGS([turn, shift], max_iter=HOLD_ITERATIONS, history_size=20,
                                  line_search_fn="strong_wolfe")  # fmt: skip
    optimiser.step(loss)
    return turn.detach().double().numpy(), shift.detach().double().numpy()


def _joints_and_feet(body: BodyModel, clip: ClipPose, batch: int) -> tuple[np.ndarray, np.ndarray]:
    """The clip's joints (F, 55, 3) and foot points (F, 4, 3), float64, posed `batch`
    frames at a time."""
    joints, points = [], []
    for first in range(0, len(clip.transl), batch):
        with torch.no_grad():
            out = body(vertices=False, face_landmarks=False, **_parameters(clip.span(first, first + batch)))
        joints.append(out.joints.double().numpy())
        points.append(out.keypoints[:, _FOOT_KEYPOINTS].double().numpy())
    return np.concatenate(joints), np.concatenate(points)


def _parameters(clip: ClipPose) -> dict[str, torch.Tensor]:
    """The clip as the body model's parameters, a batch of its frames."""
    values = {**numpy_body.pose_blocks(clip.full_pose), "transl": clip.transl, "expression": clip.expression,
              "betas": np.broadcast_to(clip.betas, (len(clip.transl), len(clip.betas)))}  # fmt: skip
    return {name: torch.tensor(value, dtype=torch.float32) for name, value in values.items()}
