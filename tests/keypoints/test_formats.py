"""Round trips of every keypoint file format, and readers that agree with each other."""

from __future__ import annotations

import json

import numpy as np
import pytest

from smplx_capture_addon.body_model.names import KEYPOINT_NAMES_WITH_CONTOUR, keypoint_index
from smplx_capture_addon.keypoints.errors import KeypointFileError
from smplx_capture_addon.keypoints.formats import read_keypoints, write_keypoints, write_openpose
from smplx_capture_addon.keypoints.layouts import LAYOUTS
from smplx_capture_addon.keypoints.people import Detections, Person, body_depths, body_keypoints


def random_points(rng: np.random.Generator, layout: str, unseen: float = 0.2) -> np.ndarray:
    """Points of a layout, the fraction `unseen` of them with confidence 0 at (0, 0)."""
    size = LAYOUTS[layout].size
    points = np.column_stack(
        [rng.uniform(0, 800, size), rng.uniform(0, 1000, size), rng.uniform(0.01, 1, size)]
    )
    points[rng.random(size) < unseen] = 0.0
    return np.round(points, 3)


def test_project_format_round_trip_keeps_everything(tmp_path):
    rng = np.random.default_rng(4)
    people = [
        Person(
            (10.5, 20.25, 300.0, 900.0), {name: random_points(rng, name) for name in LAYOUTS}, score=0.875
        ),
        Person(
            (400.0, 30.0, 700.0, 980.0), {"mediapipe_pose_33": random_points(rng, "mediapipe_pose_33")},
            world_landmarks=rng.normal(0.0, 0.4, (33, 3)),
        ),
    ]
    original = Detections("photos/bus.jpg", (810, 1080), people, "mediapipe 1.2.2 two-pass", 1234.5)
    write_keypoints(tmp_path / "k.json", original)
    again = read_keypoints(tmp_path / "k.json")
    assert (again.image_path, again.image_size, again.detector, again.focal_length_px) == (
        "photos/bus.jpg", (810, 1080), "mediapipe 1.2.2 two-pass", 1234.5,
    )  # fmt: skip
    for before, after in zip(original.people, again.people, strict=True):
        assert after.box == before.box and after.score == before.score
        assert sorted(after.keypoint_sets) == sorted(before.keypoint_sets)
        for name, points in before.keypoint_sets.items():
            assert np.allclose(after.keypoint_sets[name], points, atol=1e-3)
    assert again.people[0].world_landmarks is None
    assert np.abs(again.people[1].world_landmarks - people[1].world_landmarks).max() <= 0.5e-4  # 0.1 mm
    # the file is plain JSON a Blender script can read with json alone
    document = json.loads((tmp_path / "k.json").read_text())
    assert document["format"] == "smplx-capture-keypoints" and document["version"] == 1
    assert len(document["people"][0]["keypoints"]["mediapipe_face_478"]) == 478
    assert "world_landmarks" not in document["people"][0]
    assert len(document["people"][1]["world_landmarks"]) == 33


def test_world_landmarks_give_the_depths_of_the_body_model_points_they_stand_for():
    """body_depths: each body-model keypoint a pose point stands for gets that point's
    world z; the rest, and everyone without world landmarks, NaN."""
    world = np.random.default_rng(8).normal(0.0, 0.4, (33, 3))
    pose = np.zeros((33, 3))
    depths = body_depths(Person((0.0, 0.0, 1.0, 1.0), {"mediapipe_pose_33": pose}, world_landmarks=world))
    for index, name in ((25, "left_knee"), (28, "right_ankle"), (11, "left_shoulder"), (0, "nose")):
        assert depths[keypoint_index(name)] == world[index, 2], name
    named = {name for _, name, _ in LAYOUTS["mediapipe_pose_33"].mapping}
    assert np.isfinite(depths).sum() == len(named) and np.isnan(depths[keypoint_index("pelvis")])
    assert np.isnan(body_depths(Person((0.0, 0.0, 1.0, 1.0), {"mediapipe_pose_33": pose}))).all()


def openpose_document(rng: np.random.Generator, unseen: float = 0.2) -> dict:
    sets = {
        "pose_keypoints_2d": "openpose_body_25",
        "hand_left_keypoints_2d": "hand_21_left",
        "hand_right_keypoints_2d": "hand_21_right",
        "face_keypoints_2d": "openpose_face_70",
    }
    person = {key: random_points(rng, layout, unseen).ravel().tolist() for key, layout in sets.items()}
    return {"version": 1.3, "people": [dict(person_id=[-1], **person)]}


def test_openpose_read_write_read_round_trip(tmp_path):
    (tmp_path / "op.json").write_text(json.dumps(openpose_document(np.random.default_rng(1))))
    first = read_keypoints(tmp_path / "op.json", image_size=(810, 1080))
    write_openpose(tmp_path / "again.json", first)
    second = read_keypoints(tmp_path / "again.json")
    assert first.image_size == (810, 1080)
    for name, points in first.people[0].keypoint_sets.items():
        assert np.allclose(second.people[0].keypoint_sets[name], points, atol=1e-3), name


def test_openpose_reader_places_points_at_their_body_model_names(tmp_path):
    document = openpose_document(np.random.default_rng(2), unseen=0.0)
    person = document["people"][0]
    (tmp_path / "op.json").write_text(json.dumps(document))
    keypoints = body_keypoints(read_keypoints(tmp_path / "op.json").people[0], weighted=False)
    body = np.reshape(person["pose_keypoints_2d"], (25, 3))
    face = np.reshape(person["face_keypoints_2d"], (70, 3))
    left_hand = np.reshape(person["hand_left_keypoints_2d"], (21, 3))
    assert np.allclose(keypoints[keypoint_index("pelvis")], body[8])
    assert np.allclose(keypoints[keypoint_index("right_knee")], body[10])
    assert np.allclose(keypoints[keypoint_index("face_30")], face[30])
    assert np.allclose(keypoints[keypoint_index("face_00")], face[0])
    assert np.allclose(keypoints[keypoint_index("left_index_tip")], left_hand[8])
    # the hand's wrist wins over the body's; the face's pupils over the body's eyes
    assert np.allclose(keypoints[keypoint_index("left_wrist")], left_hand[0])
    assert np.allclose(keypoints[keypoint_index("right_eye")], face[68])
    assert np.allclose(keypoints[keypoint_index("right_ear")], body[17])


def test_detections_written_as_openpose_keep_the_body_model_points(detections_of, tmp_path):
    detections = detections_of("bus.jpg", box=(200.0, 390.0, 380.0, 890.0))
    write_openpose(tmp_path / "op.json", detections)
    before = body_keypoints(detections.people[0], weighted=False)
    after = body_keypoints(read_keypoints(tmp_path / "op.json").people[0], weighted=False)
    carried = [name for name in KEYPOINT_NAMES_WITH_CONTOUR if after[keypoint_index(name), 2] > 0]
    assert {"left_wrist", "right_thumb_tip", "face_48", "left_big_toe", "nose"} <= set(carried)
    for name in carried:
        if name not in ("pelvis", "neck"):
            assert np.allclose(after[keypoint_index(name)], before[keypoint_index(name)], atol=2e-3), name
    # OpenPose MidHip is made from MediaPipe's two hips
    hips = before[[keypoint_index("left_hip"), keypoint_index("right_hip")], :2].mean(axis=0)
    assert np.allclose(after[keypoint_index("pelvis"), :2], hips, atol=2e-3)


@pytest.mark.parametrize("variant", ["results", "mmpose", "annotations"])
def test_coco_wholebody_variants_read_the_same_points(tmp_path, variant):
    rows = random_points(np.random.default_rng(3), "coco_wholebody_133", unseen=0.0)
    if variant == "results":
        document = [{"image_id": 1, "category_id": 1, "keypoints": rows.ravel().tolist(), "score": 0.9}]
    elif variant == "mmpose":
        document = [
            {
                "keypoints": rows[:, :2].tolist(),
                "keypoint_scores": rows[:, 2].tolist(),
                "bbox": [[0, 0, 9, 9]],
            }
        ]
    else:
        rows[:, 2] = np.where(rows[:, 2] > 0, 2.0, 0.0)  # annotations flag visibility 0/1/2
        parts = {"keypoints": rows[:17], "foot_kpts": rows[17:23], "face_kpts": rows[23:91],
                 "lefthand_kpts": rows[91:112], "righthand_kpts": rows[112:]}  # fmt: skip
        annotation = {name: part.ravel().tolist() for name, part in parts.items()}
        document = {"images": [{"id": 1, "file_name": "bus.jpg", "width": 810, "height": 1080}],
                    "annotations": [dict(image_id=1, bbox=[0, 0, 9, 9], **annotation)]}  # fmt: skip
        rows[:, 2] = rows[:, 2] > 0
    (tmp_path / "coco.json").write_text(json.dumps(document))
    detections = read_keypoints(tmp_path / "coco.json")
    (person,) = detections.people
    assert np.allclose(person.keypoint_sets["coco_wholebody_133"], rows)
    keypoints = body_keypoints(person, weighted=False)
    assert np.allclose(keypoints[keypoint_index("right_heel")], rows[22])
    assert np.allclose(keypoints[keypoint_index("face_17")], rows[40])
    assert np.allclose(keypoints[keypoint_index("right_pinky_tip")], rows[132])
    if variant == "annotations":
        assert detections.image_size == (810, 1080) and detections.image_path == "bus.jpg"


@pytest.mark.parametrize(
    "content, message",
    [
        ("{not json", "not valid JSON"),
        ('{"hello": 1}', "not a keypoint file"),
        ('{"people": [{"pose_keypoints_2d": [1, 2, 3]}]}', "must hold 25"),
        ('{"format": "smplx-capture-keypoints", "version": 99, "people": []}', "version 99"),
        ('[{"keypoints": [1, 2, 0.5]}]', "must hold 133"),
    ],
)
def test_bad_keypoint_files_raise_a_clear_error(tmp_path, content, message):
    (tmp_path / "bad.json").write_text(content)
    with pytest.raises(KeypointFileError, match=message):
        read_keypoints(tmp_path / "bad.json")


def _project_document(**image) -> dict:
    rows = random_points(np.random.default_rng(5), "mediapipe_pose_33").tolist()
    person = {"box": [10.0, 20.0, 300.0, 900.0], "score": 0.9, "keypoints": {"mediapipe_pose_33": rows}}
    image = {"width": 810, "height": 1080, **image}
    return {"format": "smplx-capture-keypoints", "version": 1, "image": image, "people": [person]}


def _openpose_with(change) -> dict:
    document = openpose_document(np.random.default_rng(6), unseen=0.0)
    change(document["people"][0])
    return document


def _project_with(change) -> dict:
    document = _project_document()
    change(document)
    return document


def _set_value(values: list, index: int, value) -> list:
    values[index] = value
    return values


# (malformed document, what its message must name): the person, then the point or field
BAD_STRUCTURES = {
    "five values per point (OpenPose)": (
        _openpose_with(lambda p: p.update(pose_keypoints_2d=[1.0] * 125)),
        ["people[0].pose_keypoints_2d", "must hold 25 points", "found 125 values"],
    ),
    "five values per point (project)": (
        _project_with(lambda d: d["people"][0]["keypoints"]["mediapipe_pose_33"][3].extend([1.0, 2.0])),
        ["people[0].keypoints.mediapipe_pose_33[3]", "must be [x, y, confidence]", "a list of 5"],
    ),
    "people not a list": ({"people": {"pose_keypoints_2d": []}}, ["people: must be a list", "an object"]),
    "strings as numbers": (
        _openpose_with(lambda p: _set_value(p["pose_keypoints_2d"], 13, "12.5")),
        ["people[0].pose_keypoints_2d, point 4 (right_wrist)", "y must be a number", "the text '12.5'"],
    ),
    "a person that is not an object (OpenPose)": (
        {"people": [[1, 2, 3]]}, ["people[0]", "must be an object", "a list of 3"],
    ),
    "a person that is not an object (project)": (
        _project_with(lambda d: d["people"].append("somebody")),
        ["people[1]", "must be an object", "the text 'somebody'"],
    ),
    "a project file without box": (
        _project_with(lambda d: d["people"][0].pop("box")),
        ["people[0]", "'box'", "is missing"],
    ),
    "width: wide": (_project_document(width="wide"), ["image.width", "whole number", "the text 'wide'"]),
    "a zero height": (_project_document(height=0), ["image.height", "whole number from 1", "found 0"]),
    "COCO without a width": (
        {"images": [{"file_name": "bus.jpg", "height": 1080}], "annotations": []},
        ["images[0]", "'width' is missing", "--image PHOTO"],
    ),
    "keypoints not an object": (
        _project_with(lambda d: d["people"][0].update(keypoints=[[1, 2, 0.5]])),
        ["people[0].keypoints", "must be an object"],
    ),
    "a box of three numbers": (
        _project_with(lambda d: d["people"][0].update(box=[1, 2, 3])),
        ["people[0].box", "must hold 4 values"],
    ),
    "a score that is text": (
        _project_with(lambda d: d["people"][0].update(score="high")),
        ["people[0].score", "the text 'high'"],
    ),
    "a focal length that is text": (
        _project_document(focal_length_px="35mm"), ["image.focal_length_px", "the text '35mm'"],
    ),
    "a point that is null": (
        _openpose_with(lambda p: _set_value(p["hand_left_keypoints_2d"], 0, None)),
        ["people[0].hand_left_keypoints_2d, point 0 (left_wrist)", "x must be a number, found null"],
    ),
    "MMPose scores of another length": (
        [{"keypoints": [[1.0, 2.0]] * 133, "keypoint_scores": [0.5] * 132}],
        ["[0].keypoint_scores", "must hold 133 values, found 132"],
    ),
    "annotations not a list": ({"annotations": {"keypoints": []}}, ["annotations: must be a list"]),
    "an annotation part of the wrong length": (
        {"annotations": [{"keypoints": [0.0] * 51, "foot_kpts": [0.0] * 15}]},
        ["annotations[0].foot_kpts", "must hold 18 values, found 15"],
    ),
    "a COCO visibility flag of 7": (
        {"annotations": [{"keypoints": [5.0, 6.0, 7.0] + [0.0] * 48, "foot_kpts": [0.0] * 18}]},
        ["annotations[0], point 0 (nose)", "visibility flag 7 is not 0, 1 or 2"],
    ),
    "world landmarks of 32 points": (
        _project_with(lambda d: d["people"][0].update(world_landmarks=[[0.0, 0.0, 0.0]] * 32)),
        ["people[0].world_landmarks", "must hold 33 values, found 32"],
    ),
    "a world landmark without z": (
        _project_with(lambda d: d["people"][0].update(world_landmarks=[[0.0, 0.0, 0.0]] * 32 + [[0.1, 0.2]])),
        ["people[0].world_landmarks[32]", "must be [x, y, z]"],
    ),
    "a world landmark 50 metres from the hips": (
        _project_with(lambda d: d["people"][0].update(
            world_landmarks=[[0.0, 0.0, 0.0]] * 4 + [[0.1, 50.0, 0.2]] + [[0.0, 0.0, 0.0]] * 28
        )),
        ["people[0].world_landmarks[4]", "from -10 to 10", "found 50"],
    ),
    "a coordinate of 1e12 pixels": (
        _openpose_with(lambda p: _set_value(p["face_keypoints_2d"], 3, 1e12)),
        ["people[0].face_keypoints_2d, point 1 (face_01)", "x = 1e+12 pixels"],
    ),
    "an integer of 400 digits": (
        _openpose_with(lambda p: _set_value(p["pose_keypoints_2d"], 0, 10**400)),
        ["people[0].pose_keypoints_2d, point 0 (nose)", "x is inf, not a finite number"],
    ),
}


@pytest.mark.parametrize("case", BAD_STRUCTURES)
def test_malformed_keypoint_files_name_the_file_the_person_and_the_field(tmp_path, case):
    document, expected = BAD_STRUCTURES[case]
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(document))
    with pytest.raises(KeypointFileError) as caught:
        read_keypoints(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: ")
    for fragment in expected:
        assert fragment in message
    assert message.endswith("Correct the file, or write it again with the tool that made it.")


@pytest.mark.parametrize("confidence", [-5.0, 1e9, 1.0001])
def test_confidences_outside_0_to_1_are_refused_naming_the_point(tmp_path, confidence):
    """Not clamped: a confidence outside [0, 1] means the file is not what it claims to be."""
    openpose = _openpose_with(lambda p: _set_value(p["pose_keypoints_2d"], 3 * 9 + 2, confidence))
    project = _project_document()
    project["people"][0]["keypoints"]["mediapipe_pose_33"][25] = [4.0, 5.0, confidence]
    for document, where in (
        (openpose, "people[0].pose_keypoints_2d, point 9 (right_hip)"),
        (project, "people[0].keypoints.mediapipe_pose_33, point 25 (left_knee)"),
    ):
        path = tmp_path / "bad.json"
        path.write_text(json.dumps(document))
        with pytest.raises(KeypointFileError) as caught:
            read_keypoints(path)
        expected = f"{path}: {where}: the confidence {confidence:g} is outside [0, 1]."
        assert str(caught.value).startswith(expected)


def test_nan_names_the_file_the_person_and_the_point(tmp_path):
    document = _openpose_with(lambda p: None)
    second = _openpose_with(lambda p: _set_value(p["hand_right_keypoints_2d"], 22, np.nan))["people"][0]
    document["people"].append(second)
    path = tmp_path / "nan.json"
    path.write_text(json.dumps(document))  # json writes the token NaN, which Python's reader accepts
    with pytest.raises(KeypointFileError) as caught:
        read_keypoints(path)
    assert str(caught.value).startswith(
        f"{path}: people[1].hand_right_keypoints_2d, point 7 (right_index3): y is NaN, not a finite number."
    )


def test_detector_scores_a_little_over_1_read_as_1_and_wild_ones_are_refused(tmp_path):
    """RTMW and DWPose (MMPose, SimCC) score points up to about 1.1: their files are read,
    the score capped at 1; a score past 2 is damage."""
    rows = random_points(np.random.default_rng(7), "coco_wholebody_133", unseen=0.0)
    scores = rows[:, 2].copy()
    scores[:3] = (1.08, 1.2, 1.0)
    document = [{"keypoints": rows[:, :2].tolist(), "keypoint_scores": scores.tolist()}]
    (tmp_path / "rtmw.json").write_text(json.dumps(document))
    points = read_keypoints(tmp_path / "rtmw.json").people[0].keypoint_sets["coco_wholebody_133"]
    assert points[:3, 2].tolist() == [1.0, 1.0, 1.0]
    assert np.array_equal(points[3:], np.column_stack([rows[3:, :2], scores[3:]]))
    document[0]["keypoint_scores"][5] = 7.5
    (tmp_path / "wild.json").write_text(json.dumps(document))
    with pytest.raises(KeypointFileError) as caught:
        read_keypoints(tmp_path / "wild.json")
    assert ": [0], point 5 (left_shoulder): the score 7.5 is outside [0, 2]." in str(caught.value)
