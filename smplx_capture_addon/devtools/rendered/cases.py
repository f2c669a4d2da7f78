"""The rendered benchmark's cases: people, props, camera and background, with ground truth.

A case is drawn from its seed alone (`make_case`). People stand (or sit, crouch, lie) on
a floor at y = 0 of a world with y up; the camera looks at them from the +z side with a
drawn lens, pitch and roll, and is placed so that the people fill the frame, or so that
the frame cuts them. Everything is then expressed in the camera's space (OpenCV: x
right, y down, z forward), where the ground truth lives: each person's SMPL-X parameters
(the open default body; hands as full 15 x 3 poses) pose that person exactly where the
renderer draws them.

Case kinds (`KINDS`): "full" (one person, all in the frame), "cut_legs" (the frame's lower
edge crosses the thighs), "cut_chest" (it crosses the chest), "occluded_legs" (a table
between the camera and the legs), "occluded_torso" (a box in front of the torso),
"two_people" and "three_people" (side by side at different depths, overlapping in the
image), "seated" (on a box), "crouched" (squatting or kneeling) and "lying" (on the floor,
seen from above).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import torch

from ...body_model.model import BodyModel
from ...body_model.names import JOINT_NAMES
from ...body_model.numpy_body import axis_angle_to_matrix
from ...solver.camera import focal_from_35mm
from .. import motions
from . import KINDS, poses, split_of

PEOPLE_PER_KIND = {"two_people": 2, "three_people": 3}
IMAGE_HEIGHT = 720
ASPECTS = (0.75, 1.0, 4 / 3)  # width / height
BACKGROUND_PHOTOS = ("coffee.png", "rocket.jpg", "brick.png", "gravel.png", "grass.png")
NUM_BETAS = 10
MAX_DRAWS = 50  # people and camera drawn again until the frame shows what the kind wants
FRAME_MARGIN = 0.03  # of the image's width and height
_J = JOINT_NAMES.index

# sRGB colours: skin tones from light to dark, clothes, props.
SKIN_TONES = ((0.94, 0.78, 0.67), (0.87, 0.67, 0.53), (0.76, 0.56, 0.42), (0.6, 0.42, 0.3),
              (0.42, 0.28, 0.19), (0.3, 0.2, 0.14))  # fmt: skip
CLOTH_COLOURS = ((0.12, 0.14, 0.2), (0.8, 0.8, 0.78), (0.55, 0.1, 0.1), (0.15, 0.35, 0.6), (0.2, 0.4, 0.25),
                 (0.85, 0.7, 0.3), (0.35, 0.3, 0.28), (0.6, 0.45, 0.65), (0.9, 0.45, 0.2),
                 (0.05, 0.05, 0.05))  # fmt: skip
_GARMENTS = ("shirt", "trousers", "shoes")
PROP_COLOURS = ((0.45, 0.3, 0.18), (0.6, 0.5, 0.4), (0.3, 0.3, 0.32), (0.7, 0.68, 0.6))


@dataclass
class PersonSpec:
    """params: ground truth in camera space, name -> list of floats (SMPL-X layout,
    hands full 45-d); colours sRGB; `pose` says where the pose came from."""

    params: dict[str, list[float]]
    skin: tuple[float, float, float]
    shirt: tuple[float, float, float]
    trousers: tuple[float, float, float]
    shoes: tuple[float, float, float]
    long_sleeves: bool
    long_trousers: bool
    pose: str


@dataclass
class BoxSpec:
    """A box in camera space: centre (3,), half extents along its own axes (3,), the
    rotation whose columns are those axes (3 x 3 rows), sRGB colour, role."""

    centre: list[float]
    half_size: list[float]
    rotation: list[list[float]]
    colour: tuple[float, float, float]
    role: str

    def corners(self) -> np.ndarray:
        """(8, 3) corners, camera space."""
        signs = np.array([[x, y, z] for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)], dtype=np.float64)
        return np.asarray(self.centre) + (signs * self.half_size) @ np.asarray(self.rotation).T


@dataclass
class CaseSpec:
    """Everything that decides a render (camera space; the principal point is the image
    centre). background: {"photo": file name, "crop": [x0, y0, x1, y1] fractions} or
    {"colour": sRGB}; light: {"direction": unit vector the sun shines along, "energy",
    "ambient"}; camera: how it was placed (lens, pitch, roll, height, distance)."""

    kind: str
    seed: int
    index: int
    width: int
    height: int
    focal_px: float
    camera: dict
    background: dict
    light: dict
    people: list[PersonSpec]
    boxes: list[BoxSpec] = field(default_factory=list)

    @property
    def principal_point(self) -> tuple[float, float]:
        return self.width / 2.0, self.height / 2.0

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: dict) -> CaseSpec:
        people = [PersonSpec(**{k: tuple(v) if isinstance(v, list) and k != "params" else v
                                for k, v in person.items()}) for person in raw["people"]]  # fmt: skip
        boxes = [BoxSpec(**{**box, "colour": tuple(box["colour"])}) for box in raw["boxes"]]
        return cls(**{**raw, "people": people, "boxes": boxes})


def evaluation_model(data) -> BodyModel:
    """The body the truth and the fits are posed with: full hand poses, every expression."""
    return BodyModel(data, num_betas=NUM_BETAS, num_expression=data.num_expression, hand_pca=None,
                     flat_hand_mean=True, dtype=torch.float64)  # fmt: skip


def posed(model: BodyModel, params: dict[str, list[float]] | dict[str, np.ndarray]):
    """BodyOutput of one person's parameters (batch of one)."""
    tensors = {k: torch.as_tensor(np.asarray(v, dtype=np.float64))[None] for k, v in params.items()}
    with torch.no_grad():
        return model(**tensors)


def make_case(kind: str, seed: int, index: int, model: BodyModel) -> CaseSpec:
    """Case `index` of `kind` drawn from `seed` (the split follows the seed's range)."""
    rng = np.random.default_rng([seed, KINDS.index(kind), index])
    split = split_of(seed)
    for _ in range(MAX_DRAWS):
        people = [_draw_person(kind, rng, split, model) for _ in range(PEOPLE_PER_KIND.get(kind, 1))]
        _place_on_floor(people, rng)
        view = _draw_view(kind, rng)
        rotation, centre = _frame(kind, people, view, rng)
        if _framed_as_meant(kind, people[0].joints, rotation, centre, view):
            break
    else:
        raise RuntimeError(f"No framing of case {index} of {kind} (seed {seed}) in {MAX_DRAWS} draws.")
    owner = model.full_weights.argmax(1).numpy()
    boxes = [_seat_under(people[0], owner, rng)] if kind == "seated" else []
    if kind == "occluded_legs":
        boxes.append(_table_in_front(people[0], centre, rng))
    elif kind == "occluded_torso":
        boxes.append(_box_in_front_of_torso(people[0], centre, rng))
    return CaseSpec(
        kind=kind, seed=seed, index=index, width=view["width"], height=view["height"],
        focal_px=view["focal_px"],
        camera={"focal_35mm": view["focal_35mm"], "pitch_deg": float(np.degrees(view["pitch"])),
                "roll_deg": float(np.degrees(view["roll"])), "height_m": float(centre[1]),
                "distance_m": float(np.linalg.norm(centre - people[0].pelvis))},
        background=_draw_background(rng, view["width"] / view["height"]),
        light=_draw_light(rng, rotation),
        people=[person.in_camera(rotation, centre, model) for person in people],
        boxes=[_box_in_camera(box, rotation, centre) for box in boxes],
    )  # fmt: skip


@dataclass
class _WorldPerson:
    """A person while the case is drawn: parameters with the root in the world, and
    where they stand (transl), their vertices and joints there."""

    params: dict[str, np.ndarray]
    looks: dict
    vertices: np.ndarray = None
    joints: np.ndarray = None

    @property
    def pelvis(self) -> np.ndarray:
        return self.joints[0]

    def move(self, offset: np.ndarray) -> None:
        self.params["transl"] = self.params["transl"] + offset
        self.vertices = self.vertices + offset
        self.joints = self.joints + offset

    def in_camera(self, rotation: np.ndarray, centre: np.ndarray, model: BodyModel) -> PersonSpec:
        """The truth in camera space: p_cam = rotation (p_world - centre). SMPL-X turns
        the body about its rest pelvis j0, so transl_cam = rotation (j0 + t - centre) - j0."""
        params = dict(self.params)
        rest = posed(model, {k: v for k, v in params.items() if k in ("betas", "expression")})
        j0 = rest.joints[0, 0].numpy()
        orient = rotation @ axis_angle_to_matrix(params["global_orient"])
        params["global_orient"] = motions.matrix_to_axis_angle(orient)
        params["transl"] = rotation @ (j0 + params["transl"] - centre) - j0
        return PersonSpec(params={k: [float(x) for x in v] for k, v in params.items()}, **self.looks)


def _draw_person(kind: str, rng: np.random.Generator, split: str, model: BodyModel) -> _WorldPerson:
    orient, body_pose, source = poses.draw(kind, rng, split)
    heading = rng.uniform(0, 2 * np.pi) if kind == "lying" else rng.uniform(-1.0, 1.0) * np.radians(100)
    root = axis_angle_to_matrix(np.array([0.0, heading, 0.0])) @ axis_angle_to_matrix(orient)
    params = {
        "betas": _draw_betas(rng),
        "expression": _draw_expression(rng, model.num_expression),
        "global_orient": motions.matrix_to_axis_angle(root),
        "body_pose": body_pose,
        "jaw_pose": np.array([rng.uniform(0.0, 0.2), 0.0, 0.0]),
        "leye_pose": np.zeros(3),
        "reye_pose": np.zeros(3),
        "left_hand_pose": _draw_hand(rng, model.data.hand_components_left),
        "right_hand_pose": _draw_hand(rng, model.data.hand_components_right),
        "transl": np.zeros(3),
    }
    clothes = {part: CLOTH_COLOURS[rng.integers(len(CLOTH_COLOURS))] for part in _GARMENTS}
    looks = {"skin": SKIN_TONES[rng.integers(len(SKIN_TONES))], "pose": source, **clothes,
             "long_sleeves": bool(rng.random() < 0.5), "long_trousers": bool(rng.random() < 0.7)}  # fmt: skip
    output = posed(model, params)
    return _WorldPerson(params, looks, output.vertices[0].numpy(), output.joints[0].numpy())


def _draw_betas(rng: np.random.Generator) -> np.ndarray:
    """Shape coefficients within about two standard deviations of adults; age (one-sided
    in the open body: 0 is a young adult, 4 old) from young to middle-aged."""
    betas = np.clip(rng.normal(size=NUM_BETAS), -2.0, 2.0)
    betas[4] = rng.uniform(0.0, 2.0)
    return betas


def _draw_expression(rng: np.random.Generator, count: int) -> np.ndarray:
    expression = np.zeros(count)
    chosen = rng.choice(count, size=rng.integers(0, 4), replace=False)
    expression[chosen] = rng.uniform(0.2, 0.8, size=len(chosen))
    return expression


def _draw_hand(rng: np.random.Generator, components: np.ndarray) -> np.ndarray:
    """A full 45-d hand pose: a relaxed to half-closed grasp plus a little of the next
    synergies (the open body's hand basis puts the grasp first)."""
    coefficients = np.concatenate([[rng.uniform(-0.2, 0.9)], rng.normal(scale=0.3, size=5)])
    return coefficients @ np.asarray(components[:6], dtype=np.float64)


def _place_on_floor(people: list[_WorldPerson], rng: np.random.Generator) -> None:
    """Lowest point of each person on the floor; several people side by side along x,
    near enough to overlap in the image, at different depths."""
    x = 0.0
    for number, person in enumerate(people):
        if number:
            x += rng.uniform(0.35, 0.7)
        depth = rng.uniform(-1.0, 0.6) if number else 0.0
        person.move(np.array([x - person.pelvis[0], -person.vertices[:, 1].min(), depth - person.pelvis[2]]))


def _seat_under(person: _WorldPerson, owner: np.ndarray, rng: np.random.Generator) -> BoxSpec:
    """A box whose top meets the underside of the thighs and buttocks, as wide as the
    hips, reaching from behind the buttocks to mid-thigh (in the body's own heading).
    owner (V,): each vertex's joint of strongest skinning weight."""
    heading = _heading(person)
    to_body = axis_angle_to_matrix(np.array([0.0, -heading, 0.0]))
    thighs = np.isin(owner, [_J("pelvis"), _J("left_hip"), _J("right_hip")])
    seat = person.vertices[thighs] @ to_body.T
    pelvis = to_body @ person.pelvis
    top = float(np.percentile(seat[:, 1], 2))
    low, high = seat.min(0), seat.max(0)
    back, front = low[2] - rng.uniform(0.05, 0.15), pelvis[2] + 0.5 * (high[2] - pelvis[2])
    centre_body = np.array([(low[0] + high[0]) / 2, top / 2, (back + front) / 2])
    half = np.array([(high[0] - low[0]) / 2 + rng.uniform(0.02, 0.12), top / 2, (front - back) / 2])
    rotation = to_body.T
    return BoxSpec(list(rotation @ centre_body), list(half), rotation.tolist(),
                   PROP_COLOURS[rng.integers(len(PROP_COLOURS))], "seat")  # fmt: skip


def _heading(person: _WorldPerson) -> float:
    """The body's heading about the vertical: where its pelvis's front points."""
    front = axis_angle_to_matrix(person.params["global_orient"])[:, 2]
    return float(np.arctan2(front[0], front[2]))


def _draw_view(kind: str, rng: np.random.Generator) -> dict:
    aspect = ASPECTS[rng.integers(len(ASPECTS))]
    width, height = round(IMAGE_HEIGHT * aspect), IMAGE_HEIGHT
    # A head and chest filling the frame through a wide lens is a selfie at arm's length
    # or nearer: the chest cases take the longer lenses.
    focal_35mm = float(rng.uniform(35 if kind == "cut_chest" else 24, 85))
    pitch_range = {"lying": (20, 50), "seated": (-5, 25), "crouched": (-5, 25)}.get(kind, (-10, 20))
    return {
        "width": width, "height": height, "focal_35mm": focal_35mm,
        "focal_px": float(focal_from_35mm(focal_35mm, width, height)),
        "pitch": np.radians(rng.uniform(*pitch_range)),
        "roll": np.radians(float(np.clip(rng.normal(scale=5.0), -15, 15))),
    }  # fmt: skip


def camera_rotation(pitch: float, roll: float) -> np.ndarray:
    """World -> camera rotation of a camera on the +z side looking towards -z, tipped down
    by `pitch` and rolled by `roll` about its optical axis (rows: the camera's x right,
    y down, z forward, in world coordinates)."""
    s, c = np.sin(pitch), np.cos(pitch)
    forward = np.array([0.0, -s, -c])
    right = np.array([1.0, 0.0, 0.0])
    down = np.cross(forward, right)
    rows = np.stack([right, down, forward])
    cr, sr = np.cos(roll), np.sin(roll)
    return np.array([[cr, sr, 0.0], [-sr, cr, 0.0], [0.0, 0.0, 1.0]]) @ rows


def _project(points: np.ndarray, rotation: np.ndarray, centre: np.ndarray, view: dict) -> np.ndarray:
    cam = (points - centre) @ rotation.T
    principal = np.array([view["width"], view["height"]]) / 2.0
    return view["focal_px"] * cam[:, :2] / cam[:, 2:3] + principal


def _camera_centre(rotation: np.ndarray, target: np.ndarray, pixel: np.ndarray, depth: float,
                   view: dict) -> np.ndarray:  # fmt: skip
    """Where the camera must be for the world point `target` to appear at `pixel` at
    `depth` along the optical axis."""
    principal = np.array([view["width"], view["height"]]) / 2.0
    ray = np.append((pixel - principal) * depth / view["focal_px"], depth)
    return target - rotation.T @ ray


def _frame(kind: str, people: list[_WorldPerson], view: dict,
           rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """The camera's rotation and centre (world): the people fill the frame, or the
    frame's lower edge cuts through the thighs (cut_legs) or the chest (cut_chest)."""
    rotation = camera_rotation(view["pitch"], view["roll"])
    if kind in ("cut_legs", "cut_chest"):
        return rotation, _frame_cut(kind, people[0], rotation, view, rng)
    return rotation, _frame_whole(people, rotation, view, rng)


def _frame_whole(people: list[_WorldPerson], rotation: np.ndarray, view: dict,
                 rng: np.random.Generator) -> np.ndarray:  # fmt: skip
    """Camera centre with every vertex inside the frame: the people's extent fills 55-85%
    of the height (less where the width would not hold them), shifted off-centre a little."""
    points = np.concatenate([person.vertices for person in people])
    target = (points.max(0) + points.min(0)) / 2
    size = np.array([view["width"], view["height"]], dtype=np.float64)
    fill = rng.uniform(0.55, 0.85)
    shift = rng.uniform(-1.0, 1.0, size=2)
    depth = 3.0
    for _ in range(6):
        centre = _camera_centre(rotation, target, size / 2, depth, view)
        projected = _project(points, rotation, centre, view)
        extent = projected.max(0) - projected.min(0)
        depth *= max(extent[1] / (fill * size[1]), extent[0] / (0.9 * size[0]))
    pixel = size / 2
    projected = _project(points, rotation, _camera_centre(rotation, target, pixel, depth, view), view)
    room = np.maximum(size - (projected.max(0) - projected.min(0)), 0.0) / 2 * 0.8
    wanted = size / 2 + shift * room
    for _ in range(4):  # a sideways step moves near and far people apart: step again
        projected = _project(points, rotation, _camera_centre(rotation, target, pixel, depth, view), view)
        pixel = pixel + wanted - (projected.max(0) + projected.min(0)) / 2
    return _camera_centre(rotation, target, pixel, depth, view)


def _frame_cut(kind: str, person: _WorldPerson, rotation: np.ndarray, view: dict,
               rng: np.random.Generator) -> np.ndarray:  # fmt: skip
    """Camera centre with the frame's lower edge at mid-thigh (cut_legs) or at the chest
    (cut_chest), and the top of the head 5-18% (cut_legs) or 5-30% (cut_chest) of the
    height below the frame's top."""
    hips = (person.joints[_J("left_hip")] + person.joints[_J("right_hip")]) / 2
    if kind == "cut_legs":
        knees = (person.joints[_J("left_knee")] + person.joints[_J("right_knee")]) / 2
        cut = hips + rng.uniform(0.2, 0.6) * (knees - hips)
    else:
        cut = person.joints[_J("spine3")] + rng.uniform(-0.05, 0.03) * np.array([0.0, 1.0, 0.0])
    head_top = person.vertices[np.argmax(person.vertices[:, 1])]
    size = np.array([view["width"], view["height"]], dtype=np.float64)
    bottom = np.array([size[0] * rng.uniform(0.35, 0.65), size[1]])
    wanted_top = rng.uniform(0.05, 0.18 if kind == "cut_legs" else 0.3) * size[1]
    # With `cut` at `bottom` and depth d along the axis, the head sits at a + d b in camera
    # space (b the ray through `bottom`); its row f (a_y + d b_y) / (a_z + d) + c_y is
    # `wanted_top` for one d.
    a = rotation @ (head_top - cut)
    above = wanted_top - size[1] / 2
    depth = (above * a[2] - view["focal_px"] * a[1]) / (bottom[1] - size[1] / 2 - above)
    return _camera_centre(rotation, cut, bottom, depth, view)


def _framed_as_meant(kind: str, joints: np.ndarray, rotation: np.ndarray, centre: np.ndarray,
                     view: dict) -> bool:  # fmt: skip
    """Whether the first person's joints (world) fall where the kind wants them: the head
    and shoulders inside the frame (a margin from its edges), and for the cut kinds the
    knees (cut_legs) or the hips (cut_chest) below its lower edge, the hips (cut_legs)
    above it. A leaning or sideways body can defeat `_frame_cut`'s aim, hence the check."""
    size = np.array([view["width"], view["height"]], dtype=np.float64)
    pixels = _project(joints, rotation, centre, view)
    in_front = ((joints - centre) @ rotation[2]) > 0.1

    def inside(names: tuple[str, ...]) -> bool:
        rows, margin = [_J(name) for name in names], FRAME_MARGIN * size
        within = (pixels[rows] >= margin) & (pixels[rows] <= size - margin)
        return bool(in_front[rows].all() and within.all())

    def below(names: tuple[str, ...]) -> bool:
        return bool((pixels[[_J(name) for name in names], 1] > size[1]).all())

    if not inside(("head", "left_shoulder", "right_shoulder")):
        return False
    if kind == "cut_legs":
        return inside(("left_hip", "right_hip")) and below(("left_knee", "right_knee"))
    if kind == "cut_chest":
        return below(("pelvis", "left_hip", "right_hip"))
    return True


def _toward_camera(person: _WorldPerson, centre: np.ndarray) -> tuple[np.ndarray, float]:
    """Unit horizontal direction from the person's pelvis to the camera, and how far the
    body reaches that way from the pelvis."""
    direction = centre - person.pelvis
    direction[1] = 0.0
    direction /= np.linalg.norm(direction)
    reach = float(((person.vertices - person.pelvis) @ direction).max())
    return direction, reach


def _sight_height(centre: np.ndarray, point: np.ndarray, along: np.ndarray, distance: float) -> float:
    """Height at which the line of sight from the camera to `point` crosses the vertical
    plane `distance` from the camera along the horizontal direction `along`."""
    full = float((point - centre) @ along)
    return float(centre[1] + (point[1] - centre[1]) * distance / full)


def _facing_box(direction: np.ndarray, middle: np.ndarray, half: np.ndarray, colour, role: str) -> BoxSpec:
    """A box whose third axis points along `direction` (horizontal)."""
    third = direction
    first = np.cross(np.array([0.0, 1.0, 0.0]), third)
    rotation = np.stack([first, np.array([0.0, 1.0, 0.0]), third], axis=1)
    return BoxSpec(list(middle), list(half), rotation.tolist(), colour, role)


def _table_in_front(person: _WorldPerson, centre: np.ndarray, rng: np.random.Generator) -> BoxSpec:
    """A table between the camera and the person, its top edge hiding the legs up to
    about the hips in the image (the far edge when the camera looks down on the top)."""
    direction, reach = _toward_camera(person, centre)
    gap, depth = rng.uniform(0.05, 0.3), rng.uniform(0.4, 0.8)
    to_camera = float((centre - person.pelvis) @ direction)
    near, far = to_camera - (reach + gap + depth), to_camera - (reach + gap)
    hips = (person.joints[_J("left_hip")] + person.joints[_J("right_hip")]) / 2
    aim = hips + np.array([0.0, rng.uniform(-0.1, 0.05), 0.0])
    top = _sight_height(centre, aim, -direction, far)
    if top >= centre[1]:  # the camera is below the top: its near edge hides the legs
        top = _sight_height(centre, aim, -direction, near)
    across = np.cross(np.array([0.0, 1.0, 0.0]), direction)
    width = float(np.ptp((person.vertices - person.pelvis) @ across)) + rng.uniform(0.4, 0.9)
    middle = person.pelvis + direction * (reach + gap + depth / 2)
    middle[1] = top / 2
    return _facing_box(direction, middle, np.array([width / 2, top / 2, depth / 2]),
                       PROP_COLOURS[rng.integers(len(PROP_COLOURS))], "table")  # fmt: skip


def _box_in_front_of_torso(person: _WorldPerson, centre: np.ndarray, rng: np.random.Generator) -> BoxSpec:
    """A box hanging between the camera and the torso, covering it in the image from
    about the pelvis to the chest, 70-110% of the shoulders' width."""
    direction, reach = _toward_camera(person, centre)
    gap, depth = rng.uniform(0.1, 0.4), 0.25
    to_camera = float((centre - person.pelvis) @ direction)
    plane = to_camera - (reach + gap)
    chest = person.joints[_J("spine3")]
    up = np.array([0.0, 1.0, 0.0])
    low = _sight_height(centre, person.pelvis + rng.uniform(-0.1, 0.05) * up, -direction, plane)
    high = _sight_height(centre, chest + rng.uniform(0.0, 0.12) * up, -direction, plane)
    shoulders = np.linalg.norm(person.joints[_J("left_shoulder")] - person.joints[_J("right_shoulder")])
    scale = plane / to_camera
    middle = centre + (person.joints[_J("spine2")] - centre) * scale + direction * depth / 2
    middle[1] = (low + high) / 2
    half = np.array([rng.uniform(0.35, 0.55) * shoulders * scale, (high - low) / 2, depth / 2])
    return _facing_box(direction, middle, half, PROP_COLOURS[rng.integers(len(PROP_COLOURS))], "box")


def _box_in_camera(box: BoxSpec, rotation: np.ndarray, centre: np.ndarray) -> BoxSpec:
    return BoxSpec(list(rotation @ (np.asarray(box.centre) - centre)), [float(v) for v in box.half_size],
                   (rotation @ np.asarray(box.rotation)).tolist(), box.colour, box.role)  # fmt: skip


def _draw_background(rng: np.random.Generator, aspect: float) -> dict:
    """A photo without people (a crop of the aspect wanted), or a plain colour."""
    if rng.random() < 0.5:
        return {"colour": [float(v) for v in rng.uniform(0.15, 0.85, size=3)]}
    scale = rng.uniform(0.6, 1.0)
    return {"photo": BACKGROUND_PHOTOS[rng.integers(len(BACKGROUND_PHOTOS))], "aspect": aspect,
            "scale": float(scale), "position": [float(v) for v in rng.uniform(size=2)]}  # fmt: skip


def _draw_light(rng: np.random.Generator, rotation: np.ndarray) -> dict:
    """A sun 30-75 degrees high from the camera's side (within 70 degrees of the view),
    and grey ambient light; the direction in camera space."""
    elevation, azimuth = np.radians(rng.uniform(30, 75)), np.radians(rng.uniform(-70, 70))
    toward_sun = np.array([np.sin(azimuth) * np.cos(elevation), np.sin(elevation),
                           np.cos(azimuth) * np.cos(elevation)])  # fmt: skip
    return {"direction": [float(v) for v in rotation @ -toward_sun], "energy": float(rng.uniform(2.5, 4.5)),
            "ambient": float(rng.uniform(0.15, 0.35))}  # fmt: skip
