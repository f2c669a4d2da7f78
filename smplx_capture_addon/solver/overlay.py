"""Draw a fitted body over its photo: the check that a fit sits on the person.

The mesh is posed from the result file alone (hands are full 45-d poses with the mean
included, so no PCA basis is needed), projected with the result's camera and painted
back to front (painter's algorithm) with Lambert shading, then blended over the photo.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..atomic_files import write_bytes
from ..result_format import FitResult, model_for_result

MESH_COLOUR = np.array([235.0, 180.0, 120.0])  # BGR: light blue
OPACITY = 0.7


def posed_vertices(result: FitResult) -> tuple[np.ndarray, np.ndarray]:
    """Vertices (P, V, 3) of every fitted person in camera space and the faces (F, 3)."""
    import torch

    from ..body_model.model import BodyModel

    data = model_for_result(result)
    first = result.people[0]
    model = BodyModel(data, num_betas=len(first.betas), num_expression=len(first.expression), hand_pca=None,
                      flat_hand_mean=True)  # fmt: skip
    names = ("betas", "expression", "global_orient", "body_pose", "jaw_pose", "leye_pose", "reye_pose",
             "left_hand_pose", "right_hand_pose", "transl")  # fmt: skip
    params = {n: torch.tensor([getattr(p, n) for p in result.people], dtype=torch.float32) for n in names}
    with torch.no_grad():
        vertices = model(**params).vertices
    return vertices.numpy().astype(np.float64), data.faces


def paint_fit_over_photo(result: FitResult, photo: str | Path | None, out_png: str | Path) -> Path:
    """Write `out_png`: the photo (grey canvas when None) with every fitted body painted
    by this module's quick painter (Blender's own render of the scene over the photo is
    `blender_builders.render.render_scene_over_photo`)."""
    return write_png(out_png, paint_fit(result, photo))


def write_png(path: str | Path, bgr: np.ndarray) -> Path:
    """Write a (h, w, 3) uint8 BGR picture as PNG, atomically."""
    import cv2

    return write_bytes(path, cv2.imencode(".png", bgr)[1].tobytes())


def paint_fit(result: FitResult, photo: str | Path | None) -> np.ndarray:
    """The photo (grey canvas when None) upright, at the result's size, with every fitted
    body painted: (h, w, 3) uint8 BGR."""
    import cv2

    width, height = result.image.width, result.image.height
    if photo is not None:
        from ..keypoints.images import load_image

        image = load_image(photo)
        canvas = cv2.resize(image.pixels[:, :, ::-1], (width, height), interpolation=cv2.INTER_AREA)
    else:
        canvas = np.full((height, width, 3), 96, np.uint8)
    vertices, faces = posed_vertices(result)
    focal = result.camera.focal_length_px
    centre = np.asarray(result.camera.principal_point_px)
    painted = canvas.astype(np.float64).copy()
    mask = np.zeros((height, width), np.uint8)
    # All people's triangles together, farthest first, so nearer people cover farther ones.
    triangles = np.concatenate([v[faces] for v in vertices])  # (P * F, 3, 3)
    depth = triangles[:, :, 2].mean(1)
    in_front = triangles[:, :, 2].min(1) > 1e-3
    normals = np.cross(triangles[:, 1] - triangles[:, 0], triangles[:, 2] - triangles[:, 0])
    normals /= np.linalg.norm(normals, axis=1, keepdims=True) + 1e-12
    view = triangles.mean(1)
    view /= np.linalg.norm(view, axis=1, keepdims=True)
    shade = 0.25 + 0.75 * np.abs((normals * view).sum(1))  # two-sided: mesh winding may vary
    pixels = focal * triangles[:, :, :2] / np.maximum(triangles[:, :, 2:], 1e-3) + centre
    order = np.argsort(-depth)
    layer = np.zeros_like(painted)
    for index in order[in_front[order]]:
        polygon = np.round(pixels[index] * 4).astype(np.int32)  # 2 bits of sub-pixel precision
        colour = (MESH_COLOUR * shade[index]).tolist()
        cv2.fillConvexPoly(layer, polygon, colour, lineType=cv2.LINE_AA, shift=2)
        cv2.fillConvexPoly(mask, polygon, 255, shift=2)
    covered = (mask > 0)[..., None]
    painted = np.where(covered, (1 - OPACITY) * painted + OPACITY * layer, painted)
    return np.clip(painted, 0, 255).astype(np.uint8)
