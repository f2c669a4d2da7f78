"""Keypoints: 2D evidence for the fit, from the detector or from files users have.

What the solver needs, and all it needs::

    from smplx_capture_addon.keypoints import body_keypoints, read_keypoints

    detections = read_keypoints("keypoints.json")  # ours, OpenPose or COCO-WholeBody
    width, height = detections.image_size            # None for OpenPose: pass image_size=
    for person in detections.people:                 # most prominent first when detected
        points = body_keypoints(person)              # (len(KEYPOINT_NAMES_WITH_CONTOUR), 3)

Row k of ``points`` is (x, y, confidence) of name k of
``body_model.names.KEYPOINT_NAMES_WITH_CONTOUR``: x to the right and y down in pixels of
the upright photo, from its top-left corner; confidence 0 where nothing was seen,
otherwise the detector's confidence times the layout's default weight (see
:mod:`.layouts` for the weights and the documented choices, such as detector hips
versus SMPL-X hip joints). The first ``len(KEYPOINT_NAMES)`` rows match the body
model's forward pass; the last 17 are the face contour. ``detections.focal_length_px``
is the focal length EXIF implies (``None`` when unknown).

Detecting (in the worker; imports mediapipe and OpenCV when called)::

    from smplx_capture_addon.keypoints.detect import Detector, detect
    from smplx_capture_addon.keypoints.images import load_image

    with Detector() as detector:
        detections = detect(load_image("photo.jpg"), detector, box=None, all_people=False)

Modules: :mod:`.layouts` (the one layout table), :mod:`.people` (Person, Detections,
body_keypoints), :mod:`.formats` (files), :mod:`.images` (photos, EXIF focal length),
:mod:`.detect` (MediaPipe), :mod:`.overlay` (drawing), :mod:`.cli` (``detect`` command).
This package never imports torch; importing it, :mod:`.people` or :mod:`.formats` needs
only numpy, so Blender's Python can read keypoint files.
"""

from .formats import read_keypoints, write_keypoints, write_openpose
from .people import Detections, Person, body_keypoints

__all__ = ["Detections", "Person", "body_keypoints", "read_keypoints", "write_keypoints", "write_openpose"]
