"""A motion's clip in Blender (Python 3.11 and 3.13): the video plays behind the rig as the
camera's background movie from the motion's first video frame, or a warning says why not;
a partial motion is marked; a motion whose keying fails leaves the scene as it was; and
`blend --render-video` writes a video Blender reads back with the scene's frame count and
size (tests/blender_fit/test_render_video.py reads one with OpenCV, frame by frame)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import bpy
import numpy as np
import pytest
from test_export import keyed_frames
from test_motion import FRAMES, make_motion

from smplx_capture_addon.blender_builders import animation
from smplx_capture_addon.cli import main
from smplx_capture_addon.motion_format import VideoInfo, write_motion
from smplx_capture_addon.result_format import Camera

WIDTH, HEIGHT, CLIP_FRAMES = 64, 48, 12


@pytest.fixture(scope="module")
def video(tmp_path_factory) -> Path:
    """A 12-frame clip (a cube moving), written by Blender's own FFmpeg output."""
    path = tmp_path_factory.mktemp("clip") / "walk.mp4"
    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    bpy.ops.mesh.primitive_cube_add()
    cube = bpy.context.active_object
    for frame in (1, CLIP_FRAMES):
        cube.location.x = frame * 0.2
        cube.keyframe_insert("location", frame=frame)
    camera = bpy.data.objects.new("camera", bpy.data.cameras.new("camera"))
    scene.collection.objects.link(camera)
    camera.location, camera.rotation_euler = (0.0, -10.0, 0.0), (1.5708, 0.0, 0.0)
    scene.camera = camera
    scene.render.engine = "BLENDER_WORKBENCH"
    scene.render.resolution_x, scene.render.resolution_y = WIDTH, HEIGHT
    scene.frame_start, scene.frame_end = 1, CLIP_FRAMES
    settings = scene.render.image_settings
    if hasattr(settings, "media_type"):
        settings.media_type = "VIDEO"
    settings.file_format = "FFMPEG"
    scene.render.ffmpeg.format, scene.render.ffmpeg.codec = "MPEG4", "H264"
    scene.render.filepath = str(path)
    bpy.ops.render.render(animation=True)
    bpy.ops.wm.read_factory_settings(use_empty=True)
    return path


def clip_motion(data, video: Path, start: int = 2, step: int = 1):
    """test_motion's motion, over `video` from its frame `start` every `step` frames."""
    motion = make_motion(data)
    frames = [replace(frame, index=start + step * number) for number, frame in enumerate(motion.frames)]
    return replace(motion, video=VideoInfo(str(video), WIDTH, HEIGHT, 30.0, start, step), frames=frames,
                   camera=Camera(70.0, [WIDTH / 2, HEIGHT / 2], "default-fov"), fps=30.0 / step)  # fmt: skip


def test_the_clip_plays_behind_the_rig_from_the_motions_first_video_frame(small_model, video):
    built = animation.build_motion(clip_motion(small_model, video, start=2), small_model)
    assert built.warnings == [] and not built.collection[animation.PROP_PARTIAL]
    (background,) = built.camera.data.background_images
    assert background.source == "MOVIE_CLIP" and built.camera.data.show_background_images
    movie = background.clip
    assert Path(movie.filepath) == video and movie.frame_duration == CLIP_FRAMES
    assert tuple(movie.size) == (WIDTH, HEIGHT)
    assert (movie.frame_start, movie.frame_offset) == (animation.FIRST_FRAME, 2)  # frame 1: video frame 2


def test_a_clip_fitted_every_other_frame_plays_behind_the_rig_at_its_pace(small_model, video):
    motion = clip_motion(small_model, video, start=1, step=2)
    built = animation.build_motion(motion, small_model)
    assert built.warnings == []
    scene_frames = [1 + frame.index - 1 for frame in motion.frames]  # the clip's own frame numbers
    assert keyed_frames(built.people[0].armature) == set(map(float, scene_frames))
    assert (bpy.context.scene.frame_start, bpy.context.scene.frame_end) == (1, scene_frames[-1])
    assert bpy.context.scene.render.fps / bpy.context.scene.render.fps_base == pytest.approx(30.0)
    (background,) = built.camera.data.background_images
    movie = background.clip
    # Scene frame f shows the movie's frame f - frame_start + frame_offset (from 0): the motion's.
    for frame, at in zip(motion.frames, scene_frames, strict=True):
        assert at - movie.frame_start + movie.frame_offset == frame.index


def _write_frames(folder: Path, numbers) -> list[Path]:
    """Numbered 4x4 PNGs, each its own grey."""
    folder.mkdir()
    paths = []
    for number in numbers:
        image = bpy.data.images.new(f"frame {number}", 4, 4)
        image.pixels.foreach_set(np.full(64, number / 40.0, dtype=np.float32))
        image.filepath_raw, image.file_format = str(folder / f"frame_{number:04d}.png"), "PNG"
        image.save()
        bpy.data.images.remove(image)
        paths.append(folder / f"frame_{number:04d}.png")
    return paths


def test_a_folder_of_frames_plays_behind_the_rig_as_an_image_sequence(small_model, tmp_path):
    files = _write_frames(tmp_path / "frames", range(5, 5 + 14))  # numbered from 5: index 0 is frame_0005
    motion = clip_motion(small_model, tmp_path / "frames", start=1, step=2)
    built = animation.build_motion(motion, small_model)
    assert built.warnings == []
    (background,) = built.camera.data.background_images
    assert background.source == "IMAGE" and background.image.source == "SEQUENCE"
    assert built.camera.data.show_background_images
    for frame, at in zip(motion.frames, [1 + frame.index - 1 for frame in motion.frames], strict=True):
        bpy.context.scene.frame_set(at)  # Blender picks the file the scene frame shows
        shown = background.image.filepath_from_user(image_user=background.image_user)
        assert Path(shown) == files[frame.index], (at, shown)


@pytest.mark.parametrize(
    ("where", "warning"),
    [
        ("missing", "is not a video file here: the camera shows no clip behind the rig"),
        ("gaps", "are not numbered one after another from frame_0006.png"),
        ("short", "holds fewer frames than the motion"),
    ],
)
def test_a_clip_that_is_missing_or_cannot_play_as_a_sequence_is_left_out_with_a_warning(
    small_model, tmp_path, where, warning
):
    numbers = {"missing": [], "gaps": range(0, 40, 3), "short": range(3)}[where]
    if numbers:
        _write_frames(tmp_path / "clip", numbers)
    built = animation.build_motion(clip_motion(small_model, tmp_path / "clip"), small_model)
    assert len(built.warnings) == 1 and warning in built.warnings[0]
    assert not built.camera.data.background_images and not bpy.data.movieclips


def test_a_partial_motion_is_marked_and_says_so(small_model, video):
    motion = replace(clip_motion(small_model, video), partial=True)
    built = animation.build_motion(motion, small_model, name="walk (partial)")
    assert built.collection[animation.PROP_PARTIAL]
    assert built.warnings == [
        f"The video fit was cancelled: 'walk (partial)' holds only the {FRAMES} frames fitted before the "
        "cancel."
    ]


def test_a_motion_whose_building_fails_leaves_the_scene_as_it_was(small_model, video, monkeypatch):
    bpy.ops.mesh.primitive_cube_add()
    scene = bpy.context.scene

    def state() -> tuple:
        kinds = ("objects", "collections", "actions", "meshes", "armatures", "cameras")
        names = {kind: sorted(item.name for item in getattr(bpy.data, kind)) for kind in kinds}
        size = scene.render.resolution_x, scene.render.resolution_y
        return names, scene.camera, size, scene.frame_start, scene.frame_end

    before = state()

    def broken_clip(camera, motion):
        raise RuntimeError("the clip broke")

    monkeypatch.setattr(animation, "add_clip_background", broken_clip)  # after every frame is keyed
    with pytest.raises(RuntimeError, match="the clip broke"):
        animation.build_motion(clip_motion(small_model, video), small_model)
    assert state() == before


def test_blend_renders_the_motion_to_a_video_blender_reads_back(small_model, video, tmp_path, capsys):
    motion = write_motion(clip_motion(small_model, video), tmp_path / "motion.json")
    out = tmp_path / "render.mp4"
    arguments = ["blend", str(motion), "-o", str(tmp_path / "scene.blend"), "--model", small_model.path,
                 "--render-video", str(out)]  # fmt: skip
    assert main(arguments) == 0
    assert "warning" not in capsys.readouterr().err
    assert len(bpy.data.scenes) == 1 and bpy.context.scene.render.engine != "BLENDER_WORKBENCH"  # as it was
    rendered = bpy.data.movieclips.load(str(out))
    assert rendered.frame_duration == FRAMES and tuple(rendered.size) == (WIDTH, HEIGHT)
    bpy.ops.wm.open_mainfile(filepath=str(tmp_path / "scene.blend"))
    (camera,) = [o for o in bpy.data.objects if o.type == "CAMERA"]
    assert camera.data.background_images[0].clip.frame_offset == 2  # the .blend keeps the clip behind the rig
