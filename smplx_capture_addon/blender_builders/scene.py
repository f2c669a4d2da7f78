"""Build the whole scene of a fit: one collection with a camera and, per person, a
posed armature and its skinned mesh. Plain functions: the operator, the command line
and the tests call `build_fit` directly.

The scene needs no file of the fit beside it: the result itself is kept in the .blend
(`result_of` reads it back), and a photo Blender would show sideways (EXIF) becomes an
upright image packed into the .blend.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import bpy
import numpy as np
from mathutils import Matrix

from ..body_model import numpy_body
from ..body_model.model_file import BodyModelData
from ..keypoints.images import exif_orientation, upright_pixels
from ..result_format import FitResult, PersonFit, read_result, result_from_dict
from . import placement, rig

# Custom properties the builders leave on objects (the UI and re-fits read them).
PROP_ROLE = "smplx_capture_role"  # "camera" | "armature" | "mesh"
PROP_FIT = "smplx_capture_fit"  # on the collection: a fit the panel can refine
PROP_RESULT = "smplx_capture_result"  # the result's JSON, on the collection (see result_of)
PROP_PERSON = "smplx_capture_person"
PROP_IMAGE_SIZE = "smplx_capture_image_size"
PROP_PEOPLE_FOUND = "smplx_capture_people_found"  # on the collection: how many the photo showed
PROP_NUMBERS = "smplx_capture_numbers"  # on the collection: the fitted people's numbers (0: none)
DEFAULT_EXPRESSIONS = 10
DEFAULT_SHAPES = 10


@dataclass
class BuiltPerson:
    armature: bpy.types.Object
    mesh: bpy.types.Object
    corrective_keys: int


@dataclass
class BuiltFit:
    collection: bpy.types.Collection
    camera: bpy.types.Object
    people: list[BuiltPerson]
    warnings: list[str] = field(default_factory=list)  # one line each, for the user


def _expression_names(data: BodyModelData, count: int) -> list[str]:
    names = list(data.expression_names[:count])
    names += [f"expression_{i:03d}" for i in range(len(names), count)]
    return names


def build_fit(
    result: FitResult,
    data: BodyModelData,
    *,
    image_path: str | Path | None = None,
    name: str | None = None,
    num_expressions: int | None = None,
    num_shapes: int = DEFAULT_SHAPES,
    scene: bpy.types.Scene | None = None,
) -> BuiltFit:
    """Build a fit into a new collection of `scene` (the current one by default). Nothing
    existing is touched except the scene's camera and render size, which follow the fit.
    Expression keys: `num_expressions`, by default as many as the fit used (at least 10).
    A photo that is missing or that Blender cannot read leaves the camera without a
    background and says so in the BuiltFit's `warnings`."""
    scene = scene or bpy.context.scene
    photo = image_path or result.image.path
    image_path = Path(photo) if photo else None
    name = name or (image_path.stem if image_path else "") or "fit"
    people_params = []
    for person in result.people:
        rest_vertices = numpy_body.shaped_vertices(data, person.betas)
        rest_joints = numpy_body.rest_joints(data, person.betas, person.expression)
        cam_from_model = placement.camera_from_model(person.global_orient, person.transl, rest_joints[0])
        people_params.append((person, rest_vertices, rest_joints, cam_from_model))
    first = people_params[0]
    location = placement.floor_offset(first[1], first[2][0])
    world_from_cam = placement.world_from_camera(first[3], location)

    collection = bpy.data.collections.new(name)
    scene.collection.children.link(collection)
    collection[PROP_FIT] = True
    collection[PROP_RESULT] = json.dumps(result.to_dict())
    collection[PROP_PEOPLE_FOUND] = len(result.found_boxes)
    collection[PROP_NUMBERS] = [person.number or 0 for person in result.people]
    saved_view = scene.camera, scene.render.resolution_x, scene.render.resolution_y
    warnings = []
    try:
        camera = build_camera(f"{name} camera", result, image_path, world_from_cam, collection, warnings)
        set_scene_camera(scene, camera)
        built = []
        for index, (person, rest_vertices, rest_joints, cam_from_model) in enumerate(people_params):
            label = name if len(people_params) == 1 else f"{name} {index + 1}"
            built.append(
                _build_person(label, index, person, data, rest_vertices, rest_joints,
                              placement.armature_matrix(world_from_cam, cam_from_model),
                              collection, num_expressions, num_shapes)
            )  # fmt: skip
    except BaseException:
        # Never leave half a fit behind: remove what was made, restore the view.
        remove_objects(list(collection.objects))
        bpy.data.collections.remove(collection)
        scene.camera, scene.render.resolution_x, scene.render.resolution_y = saved_view
        raise
    bpy.context.view_layer.update()
    return BuiltFit(collection, camera, built, warnings)


def result_of(collection: bpy.types.Collection) -> FitResult:
    """The fit result a collection was built from, kept in the .blend."""
    kept = collection[PROP_RESULT]
    if not kept.lstrip().startswith("{"):  # scenes saved by earlier versions kept the file's path
        return read_result(kept)
    return result_from_dict(json.loads(kept), f"the fit '{collection.name}'")


def remove_objects(objects: list[bpy.types.Object]) -> None:
    """Delete objects, and their meshes, armatures and cameras when nothing else uses them."""
    for obj in objects:
        data = obj.data
        bpy.data.objects.remove(obj)
        if data is None or data.users:
            continue
        if isinstance(data, bpy.types.Mesh):
            bpy.data.meshes.remove(data)
        elif isinstance(data, bpy.types.Armature):
            bpy.data.armatures.remove(data)
        elif isinstance(data, bpy.types.Camera):
            bpy.data.cameras.remove(data)


def _build_person(
    label: str,
    index: int,
    person: PersonFit,
    data: BodyModelData,
    rest_vertices: np.ndarray,
    rest_joints: np.ndarray,
    matrix_world: np.ndarray,
    collection: bpy.types.Collection,
    num_expressions: int | None,
    num_shapes: int,
) -> BuiltPerson:
    armature = rig.build_armature(f"{label} rig", rest_joints, collection)
    armature.matrix_world = Matrix(matrix_world.tolist())
    armature[PROP_ROLE] = "armature"
    armature[PROP_PERSON] = index
    rotations = numpy_body.axis_angle_to_matrix(numpy_body.full_pose(person))
    rig.set_pose(armature, rig.bone_quaternions(rig.bone_frames_model(armature), rotations))
    rig.mark_inferred_bones(armature, person.inferred_joints)

    mesh = rig.build_mesh(f"{label} body", data, rest_vertices, armature, collection)
    mesh[PROP_ROLE] = "mesh"
    mesh[PROP_PERSON] = index
    shapes = min(num_shapes, data.num_shape)
    # Shape keys move away from the fitted shape (baked into the rest mesh): 0 = as fitted.
    shape_names = [f"{rig.SHAPE_KEY_PREFIX}{i:03d}" for i in range(shapes)]
    rig.add_blend_keys(mesh, data.shapedirs[:, :, :shapes], shape_names, np.zeros(shapes))
    if num_expressions is None:
        num_expressions = max(DEFAULT_EXPRESSIONS, len(person.expression))
    expressions = min(num_expressions, data.num_expression)
    values = np.zeros(expressions)
    values[: min(len(person.expression), expressions)] = person.expression[:expressions]
    rig.add_blend_keys(mesh, data.exprdirs[:, :, :expressions], _expression_names(data, expressions), values)
    count = rig.add_corrective_keys(mesh, data, armature)
    return BuiltPerson(armature, mesh, count)


def build_camera(
    name: str,
    result: FitResult,
    image_path: Path | None,
    world_from_cam: np.ndarray,
    collection: bpy.types.Collection,
    warnings: list[str],
) -> bpy.types.Object:
    """The fitted pinhole camera, with the photo as its background when it can be read
    (else a line in `warnings`)."""
    data = bpy.data.cameras.new(name)
    fitted = result.camera
    settings = placement.camera_intrinsics(
        fitted.focal_length_px, fitted.principal_point_px, result.image.width, result.image.height
    )
    for key, value in settings.items():
        setattr(data, key, value)
    data.clip_start, data.clip_end = 0.01, 1000.0
    obj = bpy.data.objects.new(name, data)
    collection.objects.link(obj)
    obj.matrix_world = Matrix(placement.blender_camera_matrix(world_from_cam).tolist())
    obj[PROP_ROLE] = "camera"
    obj[PROP_IMAGE_SIZE] = [result.image.width, result.image.height]
    if image_path is None:
        warnings.append("The fit names no photo: the camera shows no photo behind the body.")
        return obj
    if not image_path.is_file():
        warnings.append(
            f"The photo {image_path} is missing: the camera shows no photo behind the body (give the "
            "photo, or put it back)."
        )
        return obj
    try:
        add_camera_background(obj, image_path)
    except RuntimeError as error:
        warnings.append(f"Blender cannot read the photo {image_path} ({error}): the camera shows no photo.")
    return obj


def add_camera_background(camera: bpy.types.Object, image_path: str | Path) -> bpy.types.Image:
    """Show an image (the photo, or the keypoints drawn over it) upright behind what
    `camera` sees, stretched to its frame. Raises RuntimeError, adding nothing, when
    Blender cannot read the image."""
    image = load_upright_image(image_path)
    background = camera.data.background_images.new()
    background.image = image
    background.frame_method = "STRETCH"
    background.alpha = 1.0
    camera.data.show_background_images = True
    return image


def load_upright_image(path: str | Path, check_existing: bool = True) -> bpy.types.Image:
    """An image file as a viewer shows it. Blender ignores EXIF orientation: a photo
    stored sideways becomes a new upright image, packed into the .blend (the file is
    loaded as it is otherwise, as an image already loaded from it when `check_existing`).
    Raises RuntimeError when Blender cannot read the file."""
    orientation = exif_orientation(path)
    stored = bpy.data.images.load(str(path), check_existing=check_existing and orientation == 1)
    if orientation == 1:
        return stored
    try:
        width, height = stored.size
        pixels = np.empty(width * height * 4, dtype=np.float32)
        stored.pixels.foreach_get(pixels)
        # Blender lists rows bottom first; upright_pixels takes them top first.
        turned = upright_pixels(pixels.reshape(height, width, 4)[::-1], orientation)[::-1]
        upright = bpy.data.images.new(f"{Path(path).stem} (upright)", turned.shape[1], turned.shape[0],
                                      alpha=False)  # fmt: skip
        upright.pixels.foreach_set(np.ascontiguousarray(turned).ravel())
        upright.pack()
    finally:
        bpy.data.images.remove(stored)
    return upright


def set_scene_camera(scene: bpy.types.Scene, camera: bpy.types.Object) -> None:
    """Look through `camera`: the scene's render size is the photo's (Blender keeps one
    size per scene, so it follows the camera last chosen)."""
    width, height = camera[PROP_IMAGE_SIZE]
    scene.camera = camera
    scene.render.resolution_x, scene.render.resolution_y = int(width), int(height)
    scene.render.pixel_aspect_x = scene.render.pixel_aspect_y = 1.0
