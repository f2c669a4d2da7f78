"""A motion (motion_format) built as one rig with an Action: the rig, mesh and camera as
`scene.build_fit` builds them for the clip's first frame, then every frame keyed: the
armature object's location and rotation (the root, as a still fit places it), each
bone's quaternion and the expression shape keys. The pose correctives follow the bones
through their drivers. Each frame is keyed on the clip's own frame number (a clip fitted
every few frames moves between its keys), the scene's frame range and rate become the
clip's, and the clip plays behind the rig, one clip frame per scene frame: a video as the
camera's background movie, a folder of numbered images as an image sequence.
"""

from __future__ import annotations

from pathlib import Path

import bpy
import numpy as np
from mathutils import Matrix

from ..body_model import numpy_body
from ..body_model.model_file import BodyModelData
from ..body_model.names import JOINT_NAMES
from ..motion_format import IMPORTED, GroundPlane, Motion, frame_as_result
from ..video.frames import numbered_images, renumbered
from ..video.smoothing import continuous
from . import placement, rig
from .scene import BuiltFit, BuiltPerson, build_fit, remove_objects

FIRST_FRAME = 1
PROP_MOTION = "smplx_capture_motion"  # on the collection: the number of frames of the motion it holds
PROP_PARTIAL = "smplx_capture_partial"  # on the collection: the motion of a cancelled fit (motion.partial)
PROP_GROUND = "smplx_capture_ground"  # on the armature: the motion's ground, world [normal x, y, z, offset]


def build_motion(motion: Motion, data: BodyModelData, *, name: str | None = None,
                 scene: bpy.types.Scene | None = None) -> BuiltFit:  # fmt: skip
    """Build `motion` into a new collection of `scene` (the current one by default): the rig
    of its first frame, each frame keyed on its scene frame (scene_frames), the scene's frame
    range and frame rate set from the clip, the clip behind the rig. A partial motion (a cancelled
    fit) is marked (PROP_PARTIAL) and its first warning says so."""
    scene = scene or bpy.context.scene
    name = name or Path(motion.video.path).stem or "motion"
    saved_view = scene.camera, scene.render.resolution_x, scene.render.resolution_y
    built = build_fit(frame_as_result(motion), data, name=name, scene=scene)
    built.warnings.clear()  # "no photo": the clip is the camera's background, added below
    built.collection[PROP_MOTION] = len(motion.frames)
    built.collection[PROP_PARTIAL] = motion.partial
    if motion.partial:
        built.warnings.append(f"The video fit was cancelled: '{built.collection.name}' holds only the "
                              f"{len(motion.frames)} frames fitted before the cancel.")  # fmt: skip
    if motion.ground is not None:
        built.people[0].armature[PROP_GROUND] = ground_in_world(motion.ground, built.camera)
    try:
        key_motion(built.people[0], motion, data)
        if any(frame.flag != IMPORTED for frame in motion.frames):  # another tool's motion has no video
            built.warnings += add_clip_background(built.camera, motion)
    except BaseException:
        remove_built(built)  # never half a motion in the scene
        scene.camera, scene.render.resolution_x, scene.render.resolution_y = saved_view
        raise
    clip_fps = motion.fps * motion.video.step
    scene.render.fps = max(1, round(clip_fps))
    scene.render.fps_base = scene.render.fps / clip_fps
    scene.frame_start, scene.frame_end = FIRST_FRAME, scene_frames(motion)[-1]
    scene.frame_set(FIRST_FRAME)
    return built


def ground_in_world(ground: GroundPlane, camera: bpy.types.Object) -> list[float]:
    """The motion's ground plane (camera space) in the world: [normal x, y, z, offset],
    the points x of the floor with normal . x = offset."""
    world_from_cam = np.array(camera.matrix_world) @ placement.rigid(placement.OPENCV_TO_BLENDER_CAMERA,
                                                                     np.zeros(3))  # fmt: skip
    normal = world_from_cam[:3, :3] @ np.asarray(ground.normal, dtype=np.float64)
    return [*normal.tolist(), float(ground.offset + normal @ world_from_cam[:3, 3])]


def remove_built(built: BuiltFit) -> None:
    """Remove what build_motion made: its collection, objects and Actions."""
    for person in built.people:
        for owner in (person.armature, person.mesh.data.shape_keys):
            animation = owner.animation_data if owner is not None else None
            if animation is not None and animation.action is not None:
                bpy.data.actions.remove(animation.action)
    remove_objects(list(built.collection.objects))
    bpy.data.collections.remove(built.collection)


def scene_frames(motion: Motion) -> list[int]:
    """The scene frame each motion frame is keyed on: the clip's own frame numbers, its
    first frame on FIRST_FRAME. A clip fitted every few frames keeps its pace (the rig
    moves between its keys) and plays behind the rig one clip frame per scene frame."""
    first = motion.frames[0].index
    return [FIRST_FRAME + frame.index - first for frame in motion.frames]


def clip_background_problem(motion: Motion) -> str | None:
    """Why the motion's clip cannot play behind its rig (None when it can)."""
    path = Path(motion.video.path)
    if path.is_dir():
        return _sequence_problem(path, motion)
    if not path.is_file():
        return f"The video {path} is not a video file here: the camera shows no clip behind the rig."
    return None


def clip_images(folder: Path, motion: Motion) -> list[tuple[int, Path]]:
    """The folder clip's numbered images from the motion's first frame to its last."""
    return numbered_images(folder)[motion.frames[0].index : motion.frames[-1].index + 1]


def _sequence_problem(folder: Path, motion: Motion) -> str | None:
    """Blender plays an image sequence by file name (the first's, its number counted up):
    the frames must be there, numbered one after another at one width."""
    span = clip_images(folder, motion)
    if len(span) < motion.frames[-1].index - motion.frames[0].index + 1:
        return (f"The folder {folder} holds fewer frames than the motion: the camera shows no clip "
                "behind the rig.")  # fmt: skip
    first_number, first_file = span[0]
    expected = [renumbered(first_file, first_number + k) for k in range(len(span))]
    if [file.name for _, file in span] != expected:
        return (f"The frames in {folder} are not numbered one after another from {first_file.name}, so "
                "Blender cannot play them as one sequence: the camera shows no clip behind the rig "
                "(renumber them for that).")  # fmt: skip
    return None


def add_clip_background(camera: bpy.types.Object, motion: Motion) -> list[str]:
    """The motion's clip behind what `camera` sees, its frame of the motion's first frame
    on FIRST_FRAME (a video as a movie clip, a folder as an image sequence); what could
    not be done, as warnings for the user."""
    problem = clip_background_problem(motion)
    if problem is not None:
        return [problem]
    path = Path(motion.video.path)
    try:
        background = (_sequence_background if path.is_dir() else _movie_background)(camera, motion)
    except RuntimeError as error:
        return [f"Blender cannot read the clip {path} ({error}): the camera shows no clip."]
    background.frame_method = "STRETCH"
    background.alpha = 1.0
    camera.data.show_background_images = True
    return []


def _movie_background(camera: bpy.types.Object, motion: Motion) -> bpy.types.CameraBackgroundImage:
    clip = bpy.data.movieclips.load(motion.video.path)
    # Scene frame f shows the file's frame f - frame_start + 1 + frame_offset (1-based).
    clip.frame_start, clip.frame_offset = FIRST_FRAME, motion.frames[0].index
    background = camera.data.background_images.new()
    background.source = "MOVIE_CLIP"
    background.clip = clip
    return background


def _sequence_background(camera: bpy.types.Object, motion: Motion) -> bpy.types.CameraBackgroundImage:
    span = clip_images(Path(motion.video.path), motion)
    first_number, first_file = span[0]
    image = bpy.data.images.load(str(first_file))
    image.source = "SEQUENCE"
    background = camera.data.background_images.new()
    background.source = "IMAGE"
    background.image = image
    user = background.image_user
    # Scene frame f shows the file numbered f - frame_start + 1 + frame_offset.
    user.frame_start, user.frame_offset, user.frame_duration = FIRST_FRAME, first_number - 1, len(span)
    user.use_auto_refresh = True  # the picture follows the scene's frame
    return background


def armature_matrices(motion: Motion, data: BodyModelData, first_matrix: np.ndarray) -> np.ndarray:
    """(F, 4, 4) the armature object's world matrix per frame, where the first frame's is
    `first_matrix` (as build_fit placed it): the camera stays, the body moves."""
    first = motion.frames[0]
    rest_pelvis = numpy_body.rest_joints(data, motion.betas, first.expression)[0]
    cam_from_first = placement.camera_from_model(first.global_orient, first.transl, rest_pelvis)
    armature_from_model = placement.rigid(placement.MODEL_TO_BLENDER, np.zeros(3))
    world_from_cam = first_matrix @ armature_from_model @ np.linalg.inv(cam_from_first)
    return np.stack([
        placement.armature_matrix(world_from_cam,
                                  placement.camera_from_model(f.global_orient, f.transl, rest_pelvis))
        for f in motion.frames
    ])  # fmt: skip


def bone_quaternions(motion: Motion, armature: bpy.types.Object) -> np.ndarray:
    """(F, 55, 4) each bone's quaternion per frame, each turned to the hemisphere of the
    frame before so that interpolation between keys takes the short way."""
    frames = rig.bone_frames_model(armature)
    rotations = numpy_body.axis_angle_to_matrix(np.stack([numpy_body.full_pose(f) for f in motion.frames]))
    return continuous(np.stack([rig.bone_quaternions(frames, r) for r in rotations]))


def expression_keys(mesh: bpy.types.Object) -> list[bpy.types.ShapeKey]:
    """The mesh's expression keys, in order: those that are neither the basis, a shape key
    nor a corrective."""
    blocks = mesh.data.shape_keys.key_blocks[1:]
    prefixes = (rig.SHAPE_KEY_PREFIX, rig.CORRECTIVE_PREFIX)
    return [key for key in blocks if not key.name.startswith(prefixes)]


def key_motion(person: BuiltPerson, motion: Motion, data: BodyModelData) -> None:
    """Key every frame of `motion` on the person's armature, bones and expression keys."""
    armature, mesh = person.armature, person.mesh
    matrices = armature_matrices(motion, data, np.array(armature.matrix_world))
    roots = continuous(np.stack([np.array(Matrix(m.tolist()).to_quaternion()) for m in matrices]))
    bones = bone_quaternions(motion, armature)
    expressions = expression_keys(mesh)
    armature.rotation_mode = "QUATERNION"
    pose_bones = [armature.pose.bones[name] for name in JOINT_NAMES]
    for number, (frame, at) in enumerate(zip(motion.frames, scene_frames(motion), strict=True)):
        armature.location = matrices[number][:3, 3]
        armature.rotation_quaternion = roots[number]
        armature.keyframe_insert("location", frame=at)
        armature.keyframe_insert("rotation_quaternion", frame=at)
        for pose_bone, quaternion in zip(pose_bones, bones[number], strict=True):
            pose_bone.rotation_quaternion = quaternion
            pose_bone.keyframe_insert("rotation_quaternion", frame=at)
        for key, value in zip(expressions, frame.expression, strict=False):
            key.value = value
            key.keyframe_insert("value", frame=at)
