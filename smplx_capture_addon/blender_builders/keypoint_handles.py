"""The keypoints a fit was made to, as handles the artist corrects in the camera view.

One empty per keypoint and person, in a collection of their own inside the fit's,
parented to the fit's camera and placed on a plane in front of it where it shows the
keypoint's pixel over the photo (so moving the camera takes them along). A handle keeps
its keypoint's name, person and confidence as properties; a confidence of 0 is "not
seen" (drawn as a cross, not a sphere). Dragging a handle moves its keypoint and makes
it sure (confidence 1: placed by hand), and places a keypoint the detector missed; the
hand's handles hang on the wrist's, so dragging a wrist takes its hand along;
`set_seen` marks handles seen or not (a handle marked not seen stays so when dragged).
The handles are saved with the scene, and a re-fit writes what they show as a keypoint
file (`write_keypoint_file`, the `smplx_keypoints_144` layout).
"""

from __future__ import annotations

from pathlib import Path

import bpy
import numpy as np

from ..body_model.names import JOINT_NAMES, KEYPOINT_NAMES_WITH_CONTOUR
from ..errors import CaptureError
from ..keypoints.formats import write_keypoints
from ..keypoints.layouts import SMPLX_KEYPOINTS
from ..keypoints.people import Detections, Person, box_of_points
from ..result_format import FitResult
from .edits import world_from_camera
from .scene import PROP_PERSON, PROP_ROLE

ROLE = "keypoint"
PROP_KEYPOINT = "smplx_capture_keypoint"  # the keypoint's name
PROP_CONFIDENCE = "smplx_capture_confidence"  # 0: not seen
PROP_PLACED = "smplx_capture_placed_px"  # where the handle was put, to tell it was dragged
PROP_UNSEEN = "smplx_capture_unseen"  # marked not seen by the artist: stays so when dragged
PROP_HANDLES = "smplx_capture_handles"  # on the handles' collection
HANDLE_SIZE_PX = 5.0
MOVED_PX = 0.5  # a not-seen handle dragged further than this has been placed


def handles_collection(fit: bpy.types.Collection) -> bpy.types.Collection | None:
    """The collection of the keypoint handles of the fit `fit`, if shown."""
    for child in fit.children:
        if child.get(PROP_HANDLES):
            return child
    return None


def show_handles(
    fit: bpy.types.Collection, result: FitResult, camera: bpy.types.Object, rigs: list[bpy.types.Object]
) -> bpy.types.Collection:
    """The keypoints of every person of `result` as handles in front of `camera` (made
    anew when shown already); a not-seen keypoint is put where the rig `rigs[person]` has
    its bone (or the nearest bone for a surface point)."""
    if not all(person.keypoints_px for person in result.people):
        raise CaptureError(
            "This fit keeps no keypoints (it was made by an earlier version): fit the photo again to "
            "correct its keypoints."
        )
    remove_handles(fit)
    collection = bpy.data.collections.new(f"{fit.name} keypoints")
    collection[PROP_HANDLES] = True
    fit.children.link(collection)
    focal, centre = result.camera.focal_length_px, result.camera.principal_point_px
    for index, person in enumerate(result.people):
        depth = max(float(person.transl[2]), 0.1)  # about the body's distance: the handles sit on it
        made = {}
        for name, (x, y, confidence) in zip(result.keypoint_names, person.keypoints_px, strict=True):
            pixel = (x, y) if confidence > 0 else _rig_pixel(rigs[index], name, camera, focal, centre)
            handle = bpy.data.objects.new(f"{fit.name} {index + 1} {name}", None)
            collection.objects.link(handle)
            handle.parent = camera
            handle.location = camera_point(pixel, depth, focal, centre)
            made[name] = handle
            handle.empty_display_size = HANDLE_SIZE_PX * depth / focal
            handle.show_in_front = True
            handle[PROP_ROLE] = ROLE
            handle[PROP_PERSON] = index
            handle[PROP_KEYPOINT] = name
            handle[PROP_CONFIDENCE] = float(confidence)
            handle[PROP_PLACED] = [float(v) for v in pixel]
            _show_seen(handle)
        _hang_hands_on_wrists(made)
    bpy.context.view_layer.update()  # the handles' world matrices, for what reads them next
    return collection


def _hang_hands_on_wrists(handles: dict[str, bpy.types.Object]) -> None:
    """Make each hand's handles children of its wrist's: dragging the wrist takes the hand
    along (a hand's points were found together), each finger still moves alone."""
    for name, handle in handles.items():
        side = name.split("_")[0]
        wrist = handles.get(f"{side}_wrist")
        if wrist is None or not _is_hand_point(name):
            continue
        handle.parent = wrist
        handle.location = handle.location - wrist.location  # both in the camera's axes, unrotated


def _is_hand_point(name: str) -> bool:
    side, _, rest = name.partition("_")
    return side in ("left", "right") and rest.startswith(("thumb", "index", "middle", "ring", "pinky"))


def remove_handles(fit: bpy.types.Collection) -> None:
    collection = handles_collection(fit)
    if collection is None:
        return
    for handle in list(collection.objects):
        bpy.data.objects.remove(handle)
    bpy.data.collections.remove(collection)


def set_seen(handles: list[bpy.types.Object], seen: bool) -> None:
    """Mark handles seen (confidence 1 where it was 0) or not seen (confidence 0)."""
    for handle in handles:
        if handle.get(PROP_ROLE) != ROLE:
            continue
        if not seen:
            handle[PROP_CONFIDENCE] = 0.0
            handle[PROP_UNSEEN] = True
        else:
            handle[PROP_CONFIDENCE] = handle[PROP_CONFIDENCE] or 1.0
            handle.pop(PROP_UNSEEN, None)
        _show_seen(handle)


def _show_seen(handle: bpy.types.Object) -> None:
    handle.empty_display_type = "SPHERE" if handle[PROP_CONFIDENCE] > 0 else "PLAIN_AXES"


def camera_point(pixel, depth: float, focal: float, centre) -> tuple[float, float, float]:
    """The point at `depth` in front of a Blender camera (its own axes) that shows `pixel`."""
    x = (pixel[0] - centre[0]) / focal * depth
    y = (pixel[1] - centre[1]) / focal * depth
    return x, -y, -depth  # OpenCV (x right, y down, z forward) in a Blender camera's axes


def handle_pixel(handle: bpy.types.Object, camera: bpy.types.Object, focal: float, centre) -> np.ndarray:
    """Where `handle` shows through the fitted camera, in photo pixels."""
    world = np.append(np.array(handle.matrix_world.translation), 1.0)
    point = np.linalg.inv(world_from_camera(camera)) @ world
    return focal * point[:2] / point[2] + np.asarray(centre, dtype=np.float64)


def _rig_pixel(rig: bpy.types.Object, name: str, camera: bpy.types.Object, focal: float, centre) -> tuple:
    """Where the rig shows keypoint `name` (its bone's head, else the nearest bone's)."""
    bone = rig.pose.bones[_bone_of(name)]
    world = np.array(rig.matrix_world) @ np.append(np.array(bone.head), 1.0)
    point = np.linalg.inv(world_from_camera(camera)) @ world
    return tuple(focal * point[:2] / point[2] + np.asarray(centre, dtype=np.float64))


def _bone_of(name: str) -> str:
    """The bone nearest a keypoint: itself for a joint; the head for the face; the foot for
    toes and heels; the finger's last bone for a finger tip."""
    if name in JOINT_NAMES:
        return name
    side = name.split("_")[0]
    if name.endswith("_tip"):
        return f"{side}_{name.split('_')[1]}3"
    if name.endswith(("_toe", "_heel")):
        return f"{side}_foot"
    return "head"


def corrected_keypoints(fit: bpy.types.Collection, result: FitResult, camera: bpy.types.Object) -> np.ndarray:
    """(people, 144, 3) the keypoints to re-fit to: what the handles show where they are,
    else the fit's own (the result's keypoints_px)."""
    names = {name: k for k, name in enumerate(KEYPOINT_NAMES_WITH_CONTOUR)}
    points = np.zeros((len(result.people), len(KEYPOINT_NAMES_WITH_CONTOUR), 3))
    for index, person in enumerate(result.people):
        for name, row in zip(result.keypoint_names, person.keypoints_px, strict=True):
            points[index, names[name]] = row
    collection = handles_collection(fit)
    handles = [] if collection is None else [o for o in collection.objects if o.get(PROP_ROLE) == ROLE]
    focal, centre = result.camera.focal_length_px, result.camera.principal_point_px
    bpy.context.view_layer.update()  # handles moved by a script have stale world matrices until then
    for handle in handles:
        pixel = handle_pixel(handle, camera, focal, centre)
        confidence = float(handle[PROP_CONFIDENCE])
        if not handle.get(PROP_UNSEEN) and np.linalg.norm(pixel - handle[PROP_PLACED]) > MOVED_PX:
            confidence = 1.0  # dragged: placed by hand, seen and sure
        points[handle[PROP_PERSON], names[handle[PROP_KEYPOINT]]] = (*pixel, confidence)
    return points


def write_keypoint_file(path: str | Path, points: np.ndarray, result: FitResult) -> Path:
    """Write the (people, 144, 3) keypoints as a keypoint file of the fit's photo."""
    for index, person in enumerate(points):
        if not np.any(person[:, 2] > 0):
            raise CaptureError(
                f"No keypoint of person {index + 1} is marked seen: mark some seen (or fit the photo again)."
            )
    people = [Person(box_of_points(person), {SMPLX_KEYPOINTS.name: person}) for person in points]
    size = (result.image.width, result.image.height)
    focal = result.camera.focal_length_px
    detections = Detections(result.image.path, size, people, "keypoint handles", focal)
    write_keypoints(path, detections)
    return Path(path)
