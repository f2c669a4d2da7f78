"""Reading result files in Blender's Python (3.11 and 3.13): a bad field gets one
ResultFormatError naming the file and the field, never a traceback."""

from __future__ import annotations

import json
import math

import pytest
from blender_helpers import make_person

from smplx_capture_addon.cli import main
from smplx_capture_addon.result_format import (
    Camera,
    FitResult,
    ImageInfo,
    ModelIdentity,
    ResultFormatError,
    read_result,
    result_from_dict,
    write_result,
)


def valid_document() -> dict:
    person = make_person(seed=4)
    person.box = [10.0, 20.0, 300.0, 400.0]
    person.residuals_px, person.loss_per_stage = [[0.5, -1.0], None], [9.0]
    person.keypoints_px = [[100.0, 50.0, 0.9], [0.0, 0.0, 0.0]]
    result = FitResult(
        ModelIdentity("smplx", "SMPLX_NEUTRAL.npz", "/models/SMPLX_NEUTRAL.npz", "ab12", "neutral"),
        ImageInfo("/photos/bus.jpg", 810, 1080),
        Camera(1000.0, [405.0, 540.0], "default-fov"),
        [person],
        keypoint_names=["nose", "left_eye"],
    )
    return json.loads(json.dumps(result.to_dict()))


REMOVED = object()


def error_for(tmp_path, field: str, value: object) -> str:
    """The message for the valid document with `field` ("people.0.transl.2": keys and list
    positions by dots; one past a list's end appends) set to `value`, or REMOVED."""
    document = valid_document()
    *parents, last = (int(part) if part.isdigit() else part for part in field.split("."))
    container = document
    for part in parents:
        container = container[part]
    if value is REMOVED:
        del container[last]
    elif isinstance(container, list) and last == len(container):
        container.append(value)
    else:
        container[last] = value
    path = tmp_path / "result.json"
    path.write_text(json.dumps(document))
    with pytest.raises(ResultFormatError) as caught:
        read_result(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: ") and message.endswith("Fit the photo again, or correct the file.")
    return message


def test_a_valid_result_reads_back_as_written(tmp_path):
    document = valid_document()
    path = tmp_path / "result.json"
    path.write_text(json.dumps(document))
    assert read_result(path).to_dict() == document


@pytest.mark.parametrize("focal", ["1000", None, [1000.0], True, float("nan")])
def test_a_focal_length_that_is_not_a_number(tmp_path, focal):
    message = error_for(tmp_path, "camera.focal_length_px", focal)
    assert "camera.focal_length_px: must be a finite number" in message


@pytest.mark.parametrize("side", ["width", "height"])
@pytest.mark.parametrize("size", [0, -810, 810.5, "810"])
def test_a_zero_negative_or_non_whole_image_size(tmp_path, side, size):
    message = error_for(tmp_path, f"image.{side}", size)
    assert f"image.{side}: must be a whole number from 1 to 1,000,000" in message


# field, value, what the message says
WRONG_TYPES = [
    ("people.0.transl.1", "0.5", "people[0].transl[1]: must be a finite number, found the text '0.5'"),
    ("people.0.body_pose.7", [0.1], "people[0].body_pose[7]: must be a finite number, found a list of 1"),
    ("people.0.betas", 0.5, "people[0].betas: must be a list"),
    ("people.1", [1, 2], "people[1]: must be an object"),
    ("people", {"0": {}}, "people: must be a list"),
    ("model", "smplx", "model: must be an object"),
    ("model.path", 7, "model.path: must be a text, found 7"),
    ("image.path", None, "image.path: must be a text, found null"),
    ("camera.principal_point_px", [405.0], "camera.principal_point_px: must hold 2 values"),
    ("camera.source", REMOVED, "camera: the field 'source' is missing"),
    ("people.0.converged", "yes", "people[0].converged: must be true or false"),
    ("people.0.box", "all", "people[0].box: must be a list"),
    ("people.0.residuals_px.0", [1.0], "people[0].residuals_px[0]: must hold 2 values"),
    ("people.0.loss_per_stage.0", "low", "people[0].loss_per_stage[0]: must be a number"),
    ("people.0.inferred_joints", "left_knee", "people[0].inferred_joints: must be a list"),
    ("people.0.inferred_joints", ["left_knee", "knee"], "people[0].inferred_joints[1]: must name a joint"),
    ("people.0.keypoints_px.0", [1.0, 2.0], "people[0].keypoints_px[0]: must hold 3 values"),
    ("people.0.keypoints_px.2", [1.0, 2.0, 0.5], "people[0].keypoints_px: must have a row per name of"),
    ("people.0.pose", [], "people[0]: the field 'pose' is unknown"),
    ("people.0.jaw_pose.0", 10**400, "people[0].jaw_pose[0]: must be a finite number, found a number too"),
    ("keypoint_names", [1, 2], "keypoint_names[0]: must be a text"),
    ("stages", ["fit"], "stages[0]: must be an object"),
    ("stages", [{"name": "fit", "seconds": -1}], "stages[0].seconds: must be a number from 0"),
    ("solver", [], "solver: must be an object"),
]


@pytest.mark.parametrize("field, value, expected", WRONG_TYPES)
def test_wrong_types_anywhere_name_the_field(tmp_path, field, value, expected):
    assert expected in error_for(tmp_path, field, value)


IMPLAUSIBLE = [
    ("camera.focal_length_px", 1e30, "camera.focal_length_px: must be a number from 22.5 to 2.43e+07"),
    ("camera.focal_length_px", 1.0, "camera.focal_length_px: must be a number from 22.5"),
    ("camera.principal_point_px.1", 1e7, "camera.principal_point_px[1]: must be a number from -1080 to 2160"),
    ("people.0.transl.2", 1e9, "people[0].transl[2]: must be a number from -10000 to 10000"),
    ("people.0.global_orient", [1e5, 0.0, 0.0], "people[0].global_orient[0:3]: a turn of 100000 radians"),
    ("people.0.body_pose.52", 30.0, "people[0].body_pose[51:54]: a turn of"),
    ("people.0.betas.3", 1e6, "people[0].betas[3]: must be a number from -100 to 100"),
    ("people.0.keypoints_px.0.2", 1.5, "people[0].keypoints_px[0][2]: must be a number from 0 to 1"),
]


@pytest.mark.parametrize("field, value, expected", IMPLAUSIBLE)
def test_implausible_magnitudes_are_refused(tmp_path, field, value, expected):
    assert expected in error_for(tmp_path, field, value)


def test_blend_on_a_result_with_a_text_focal_length_says_so_and_writes_nothing(tmp_path, capsys):
    document = valid_document()
    document["camera"]["focal_length_px"] = "wide"
    (tmp_path / "result.json").write_text(json.dumps(document))
    assert main(["blend", str(tmp_path / "result.json"), "-o", str(tmp_path / "scene.blend")]) == 2
    error = capsys.readouterr().err
    expected = f"error: {tmp_path / 'result.json'}: camera.focal_length_px: must be a finite number"
    assert error.startswith(expected)
    assert "Traceback" not in error and not (tmp_path / "scene.blend").exists()


def test_what_would_not_read_back_is_not_written(tmp_path):
    """write_result runs the same checks: a result it writes is one read_result reads."""
    result = result_from_dict(valid_document())
    result.camera.focal_length_px = math.inf
    with pytest.raises(ResultFormatError) as caught:
        write_result(result, tmp_path / "result.json")
    assert "camera.focal_length_px: must be a finite number, found inf" in str(caught.value)
    assert not (tmp_path / "result.json").exists()
