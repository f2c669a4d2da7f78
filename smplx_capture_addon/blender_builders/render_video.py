"""Render a motion's rig through its camera into a video file, the clip behind it.

Two passes, both Blender's own: Workbench (fast, no lights to set up) renders the rig on a
transparent film, frame by frame, into PNGs in a scratch folder; then the sequencer of a
scratch scene lays them over the clip's movie and writes the video through FFmpeg (H.264
in MP4). A scene strip of the rig's scene would save the PNGs, but the sequencer renders
Workbench scenes without their transparent film, hiding the clip. The rig's scene is left
as it was; the scratch scene and the PNGs are removed.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import bpy

from ..atomic_files import atomic_output, os_error_in
from ..errors import OutputError
from ..motion_format import Motion
from .animation import FIRST_FRAME, clip_background_problem, clip_images
from .scene import BuiltFit

_RESTORED = ("engine", "film_transparent", "resolution_x", "resolution_y", "resolution_percentage",
             "filepath")  # fmt: skip
BODY_FRAMES = "body_####.png"


def render_motion_video(
    built: BuiltFit,
    motion: Motion,
    out_path: str | Path,
    max_size: int = 640,
    scene: bpy.types.Scene | None = None,
) -> tuple[Path, list[str]]:
    """Render the scene's frame range through `built`'s camera into the video `out_path`
    (at most `max_size` pixels a side), over the motion's clip where it can play behind the
    rig (see animation.clip_background_problem). Returns the file and the warnings for the
    user (no clip behind the rig, and why)."""
    scene = scene or bpy.context.scene
    problem = clip_background_problem(motion)
    size = video_size(scene.render.resolution_x, scene.render.resolution_y, max_size)
    with tempfile.TemporaryDirectory(prefix="smplx-capture-video-") as folder:
        frames = _render_body_frames(built, scene, Path(folder), size)
        composite = bpy.data.scenes.new("smplx-capture video")
        try:
            _set_up_video(composite, scene, size, len(frames))
            editor = composite.sequence_editor_create()
            if problem is None:
                _add_clip(editor, motion)
            body = editor.strips.new_image("body", str(frames[0]), 2, FIRST_FRAME)
            for frame in frames[1:]:
                body.elements.append(frame.name)
            body.blend_type = "ALPHA_OVER"
            with atomic_output(out_path) as temporary:
                composite.render.filepath = str(temporary)
                _render(composite, out_path)
        finally:
            bpy.data.scenes.remove(composite)
    return Path(out_path), [problem] if problem else []


def _add_clip(editor: bpy.types.SequenceEditor, motion: Motion) -> None:
    """The motion's clip in the sequencer's first channel, its frame of the motion's first
    frame on FIRST_FRAME (as animation.scene_frames keys the rig)."""
    path = Path(motion.video.path)
    if path.is_dir():
        files = [file for _, file in clip_images(path, motion)]
        images = editor.strips.new_image("clip", str(files[0]), 1, FIRST_FRAME)
        for file in files[1:]:
            images.elements.append(file.name)
        return
    start = motion.frames[0].index  # the video's frames before it are cut
    movie = editor.strips.new_movie("clip", str(path), 1, FIRST_FRAME - start)
    movie.frame_offset_start = start


def video_size(width: int, height: int, max_size: int) -> tuple[int, int]:
    """The scene's frame size scaled to at most `max_size` a side, each side even (H.264's rule)."""
    scale = min(1.0, max_size / max(width, height))
    return max(2, round(width * scale / 2) * 2), max(2, round(height * scale / 2) * 2)


def _render_body_frames(
    built: BuiltFit, scene: bpy.types.Scene, folder: Path, size: tuple[int, int]
) -> list[Path]:
    """The rig alone on a transparent film, `size` pixels, one PNG per frame of the scene's range."""
    render = scene.render
    saved = {name: getattr(render, name) for name in _RESTORED}
    saved_format = render.image_settings.file_format, render.image_settings.color_mode
    saved_camera = scene.camera
    try:
        scene.camera = built.camera
        render.engine = "BLENDER_WORKBENCH"
        render.film_transparent = True
        (render.resolution_x, render.resolution_y), render.resolution_percentage = size, 100
        render.image_settings.file_format = "PNG"
        render.image_settings.color_mode = "RGBA"
        render.filepath = str(folder / BODY_FRAMES)
        _render(scene, folder)
    finally:
        for name, value in saved.items():
            setattr(render, name, value)
        render.image_settings.file_format, render.image_settings.color_mode = saved_format
        scene.camera = saved_camera
    return sorted(folder.glob("body_*.png"))


def _set_up_video(
    composite: bpy.types.Scene, scene: bpy.types.Scene, size: tuple[int, int], frames: int
) -> None:
    """The scratch scene: `size` pixels, the rig scene's rate, `frames` frames, H.264 in MP4."""
    render = composite.render
    (render.resolution_x, render.resolution_y), render.resolution_percentage = size, 100
    render.fps, render.fps_base = scene.render.fps, scene.render.fps_base
    composite.frame_start, composite.frame_end = FIRST_FRAME, FIRST_FRAME + frames - 1
    # The clip and the PNGs are pictures already: a film-like view transform would fade them again.
    composite.view_settings.view_transform = "Standard"
    settings = render.image_settings
    if hasattr(settings, "media_type"):  # Blender 5: a movie is a media type before it is a format
        settings.media_type = "VIDEO"
    settings.file_format = "FFMPEG"
    render.ffmpeg.format, render.ffmpeg.codec = "MPEG4", "H264"


def _render(scene: bpy.types.Scene, target: str | Path) -> None:
    try:
        bpy.ops.render.render(animation=True, scene=scene.name)
    except RuntimeError as error:  # Blender says why in words; an OSError lets atomic_output advise
        raise os_error_in(str(error)) or OutputError(f"Blender could not render {target}: {error}") from None
