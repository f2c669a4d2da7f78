"""Render a fit through its camera over the photo (Cycles on the CPU, few samples).

The body is rendered on a transparent film and laid over the photo with numpy rather
than with the compositor, whose Python API changed in Blender 5.0.
"""

from __future__ import annotations

from pathlib import Path

import bpy
import numpy as np

from ..atomic_files import atomic_output, os_error_in, scratch_file
from ..errors import OutputError
from .scene import BuiltFit, load_upright_image

BODY_OPACITY = 0.75
_RESTORED = ("engine", "film_transparent", "resolution_percentage", "filepath")


def render_scene_over_photo(
    built: BuiltFit,
    out_png: str | Path,
    photo: str | Path | None = None,
    max_size: int = 640,
    samples: int = 16,
    scene: bpy.types.Scene | None = None,
) -> Path:
    """Render `built` with Cycles through its camera to `out_png`, over `photo` when
    given, upright whatever its EXIF says (the solver's quick painter of the mesh is
    `solver.overlay.paint_fit_over_photo`). The scene's render settings are restored
    afterwards; a temporary light is removed."""
    scene = scene or bpy.context.scene
    render = scene.render
    saved = {name: getattr(render, name) for name in _RESTORED}
    saved_format = render.image_settings.file_format, render.image_settings.color_mode
    saved_camera = scene.camera
    light = _camera_light(built.camera, scene)
    width, height = render.resolution_x, render.resolution_y
    try:
        scene.camera = built.camera
        render.engine = "CYCLES"
        scene.cycles.device = "CPU"
        scene.cycles.samples = samples
        render.film_transparent = True
        render.resolution_percentage = max(1, min(100, int(100 * max_size / max(width, height))))
        render.image_settings.file_format = "PNG"
        render.image_settings.color_mode = "RGBA"
        with scratch_file(out_png) as body_png:  # the body alone, on a transparent film
            render.filepath = str(body_png)
            bpy.ops.render.render(write_still=True, scene=scene.name)
            body = _read_pixels(body_png)
    finally:
        for name, value in saved.items():
            setattr(render, name, value)
        render.image_settings.file_format, render.image_settings.color_mode = saved_format
        scene.camera = saved_camera
        bpy.data.objects.remove(light)
    size = body.shape[1], body.shape[0]
    background = _read_pixels(photo, size) if photo and Path(photo).is_file() else np.ones_like(body) * 0.2
    alpha = body[..., 3:4] * BODY_OPACITY
    composed = background.copy()
    composed[..., :3] = background[..., :3] * (1 - alpha) + body[..., :3] * alpha
    composed[..., 3] = 1.0
    return _write_png(composed, out_png)


def _camera_light(camera: bpy.types.Object, scene: bpy.types.Scene) -> bpy.types.Object:
    """A sun shining along the camera's view, so the body is lit as seen."""
    data = bpy.data.lights.new("smplx-capture render light", "SUN")
    data.energy = 3.0
    light = bpy.data.objects.new(data.name, data)
    light.matrix_world = camera.matrix_world
    scene.collection.objects.link(light)
    return light


def _read_pixels(path: str | Path, size: tuple[int, int] | None = None) -> np.ndarray:
    """(H, W, 4) float pixels of an image file, upright, top row first, resized to `size`."""
    image = load_upright_image(path, check_existing=False)
    try:
        if size is not None and tuple(image.size) != size:
            image.scale(*size)
        width, height = image.size
        pixels = np.empty(width * height * 4, dtype=np.float32)
        image.pixels.foreach_get(pixels)
    finally:
        bpy.data.images.remove(image)
    return pixels.reshape(height, width, 4)[::-1]


def _write_png(pixels: np.ndarray, path: str | Path) -> Path:
    height, width = pixels.shape[:2]
    image = bpy.data.images.new("smplx-capture overlay", width, height, alpha=True)
    try:
        image.pixels.foreach_set(np.ascontiguousarray(pixels[::-1]).ravel())
        image.file_format = "PNG"
        with atomic_output(path) as temporary:
            image.filepath_raw = str(temporary)
            try:
                image.save()
            except RuntimeError as error:  # as an OSError, atomic_output says what to do
                failure = os_error_in(str(error)) or OutputError(f"Blender could not write {path}: {error}")
                raise failure from None
    finally:
        bpy.data.images.remove(image)
    return Path(path)
