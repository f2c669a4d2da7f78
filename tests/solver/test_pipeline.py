"""fit_photo end to end: keypoint files, the real detector on a real photo, the choice
of people, the result file round trip, the overlays, and the errors a user can meet; the
models a serving worker keeps between fits."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from smplx_capture_addon.body_model.model import BodyModel
from smplx_capture_addon.body_model.model_file import file_sha256
from smplx_capture_addon.body_model.names import JOINT_NAMES, KEYPOINT_NAMES_WITH_CONTOUR
from smplx_capture_addon.devtools.synthetic_model import write_model
from smplx_capture_addon.errors import Cancelled, ModelFileError
from smplx_capture_addon.fit_request import BOX, EVERYONE, NUMBER, FitRequest, PersonChoice
from smplx_capture_addon.keypoints.formats import write_keypoints
from smplx_capture_addon.keypoints.layouts import LAYOUTS
from smplx_capture_addon.keypoints.people import Detections, Person
from smplx_capture_addon.result_format import read_result, write_result
from smplx_capture_addon.solver.errors import FitError
from smplx_capture_addon.solver.overlay import paint_fit_over_photo
from smplx_capture_addon.solver.pipeline import (
    MAX_KEPT_BODIES,
    WarmModels,
    better_facings,
    choose_people,
    fit_photo,
    photo_path,
)


def _keypoint_file(path, cases, row=0, image_size=True):
    """The case's keypoints written in the project format, through the OpenPose layouts."""
    named = cases.keypoints[row].numpy()
    index = {name: k for k, name in enumerate(KEYPOINT_NAMES_WITH_CONTOUR)}
    sets = {}
    for set_name in ("openpose_body_25", "hand_21_left", "hand_21_right", "openpose_face_70"):
        layout = LAYOUTS[set_name]
        points = np.zeros((layout.size, 3))
        for point, name, _ in layout.mapping:
            points[point] = named[index[name]]
        sets[set_name] = points
    width, height = (int(v) for v in cases.image_size[row])
    write_keypoints(path, Detections("photo.png", (width, height) if image_size else None,
                                     [Person((0.0, 0.0, float(width), float(height)), sets)]))  # fmt: skip
    return path


def test_keypoint_file_to_result_file_round_trip(tmp_path, bench_model_path, clean_cases, monkeypatch):
    stages = []
    monkeypatch.chdir(tmp_path)
    (tmp_path / "keypoints").mkdir()
    keypoints = _keypoint_file(Path("keypoints") / "k.json", clean_cases)  # relative, naming "photo.png"
    request = FitRequest(keypoints=keypoints, model=bench_model_path, device="cpu",
                         focal_px=float(clean_cases.focal[0]))  # fmt: skip
    result = fit_photo(request, progress=lambda stage, fraction, message: stages.append(stage))
    assert result.camera.source == "user" and result.model.sha256 and result.device == "cpu"
    # The photo a keypoint file names lies beside it; the result names it absolutely, to be
    # found from wherever the result is read.
    assert result.image.path == str(tmp_path / "keypoints" / "photo.png")
    person = result.people[0]
    assert len(person.left_hand_pose) == 45 and len(person.residuals_px) == len(result.keypoint_names)
    errors = [np.hypot(*r) for r in person.residuals_px if r is not None]
    assert len(errors) > 60 and np.median(errors) < 15.0
    assert {"detect", "camera", "hands-face"} <= set(stages)
    back = read_result(write_result(result, tmp_path / "result.json"))
    assert back == result
    overlay = paint_fit_over_photo(back, None, tmp_path / "overlay.png")
    assert overlay.stat().st_size > 1000


def test_a_refit_starts_from_a_result_holds_its_joints_and_keeps_its_camera(
    tmp_path, bench_model_path, clean_cases
):
    """What Blender's Re-fit sends: the result's people as the start (an elbow turned by
    the artist and held), the result's keypoints as a keypoint file; the focal length is
    the start's. The result keeps the keypoints it was fitted to."""
    keypoints = _keypoint_file(tmp_path / "k.json", clean_cases)
    first = fit_photo(FitRequest(keypoints=keypoints, model=bench_model_path, device="cpu",
                                 focal_px=float(clean_cases.focal[0])))  # fmt: skip
    person = first.people[0]
    seen = [row[2] > 0 for row in person.keypoints_px]
    assert len(seen) == len(first.keypoint_names) and seen == [r is not None for r in person.residuals_px]
    elbow = slice(3 * (JOINT_NAMES.index("left_elbow") - 1), 3 * JOINT_NAMES.index("left_elbow"))
    person.body_pose[elbow] = [0.1, -0.9, 0.2]
    start = write_result(first, tmp_path / "start.json")

    stages = []
    request = FitRequest(keypoints=keypoints, model=bench_model_path, device="cpu", start=str(start),
                         fixed_joints=("left_elbow",))  # fmt: skip
    refit = fit_photo(request, progress=lambda stage, fraction, message: stages.append(stage))
    assert {"camera", "hands-face"} <= set(stages) and "body-1" not in stages  # the warm-start schedule
    np.testing.assert_allclose(refit.people[0].body_pose[elbow], [0.1, -0.9, 0.2], atol=1e-5)
    assert refit.camera == first.camera
    assert refit.solver["keypoints"] == str(keypoints)  # the corrected file the fit read

    first.people = [person, person]
    write_result(first, start)
    with pytest.raises(FitError, match="holds 2 people, but 1 are to be fitted: choose as many people"):
        fit_photo(request)


def test_one_reading_twice_in_a_keypoint_file_is_two_people_numbered_apart(tmp_path, bench_model_path,
                                                                          clean_cases):  # fmt: skip
    # Alike in every value (a file written by a tracker that repeats a person, say), they
    # are still two people: each fitted, each with its own number.
    path = _keypoint_file(tmp_path / "k.json", clean_cases)
    document = json.loads(path.read_text())
    document["people"] *= 2
    path.write_text(json.dumps(document))
    request = FitRequest(keypoints=path, model=bench_model_path, device="cpu", person=PersonChoice(EVERYONE),
                         focal_px=float(clean_cases.focal[0]))  # fmt: skip
    result = fit_photo(request)
    assert [person.number for person in result.people] == [1, 2]
    assert result.people[0].body_pose == pytest.approx(result.people[1].body_pose, abs=1e-3)


def test_mismatched_model_file_is_refused(tmp_path, clean_cases):
    smpl_like = write_model(tmp_path / "SMPL_NEUTRAL.npz", kintree_table=np.array([[2**32 - 1, 0], [0, 1]]))
    with pytest.raises(ModelFileError, match="kinematic tree"):
        fit_photo(FitRequest(keypoints=_keypoint_file(tmp_path / "k.json", clean_cases), model=smpl_like,
                             device="cpu"))  # fmt: skip


def test_keypoint_file_without_image_size_needs_the_photo(tmp_path, bench_model_path, clean_cases):
    with pytest.raises(FitError, match="image size"):
        fit_photo(FitRequest(keypoints=_keypoint_file(tmp_path / "k.json", clean_cases, image_size=False),
                             model=bench_model_path))  # fmt: skip


def test_cancel_before_fitting_writes_nothing(tmp_path, bench_model_path, clean_cases):
    import cv2

    width, height = (int(v) for v in clean_cases.image_size[0])
    photo = tmp_path / "photo.png"
    cv2.imwrite(str(photo), np.full((height, width, 3), 128, np.uint8))
    keypoints = _keypoint_file(tmp_path / "k.json", clean_cases)
    request = FitRequest(keypoints=keypoints, photo=photo, model=bench_model_path, overlay=True)
    with pytest.raises(Cancelled):
        fit_photo(request, cancel=lambda: True, out_dir=tmp_path / "out")
    assert not (tmp_path / "out").exists()  # the keypoints found are written only with a fit


def test_the_result_names_its_photo_absolutely(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    found = Detections("elsewhere.jpg", (640, 480), [])
    assert photo_path(FitRequest(photo="me.jpg"), found) == str(tmp_path / "me.jpg")
    assert photo_path(FitRequest(keypoints="sub/k.json"), found) == str(tmp_path / "sub" / "elsewhere.jpg")
    assert photo_path(FitRequest(keypoints="/data/k.json"), Detections("/photos/me.jpg", None, [])) == (
        "/photos/me.jpg"
    )
    # OpenPose files name no photo (their reader gives the file's own path): none is named.
    assert photo_path(FitRequest(keypoints="sub/k.json"), Detections("sub/k.json", None, [])) == ""


def test_real_photo_with_the_default_body(tmp_path, photo_dir):
    photo = photo_dir / "astronaut.png"
    result = fit_photo(FitRequest(photo=photo, device="cpu"))
    assert result.camera.source == "default-fov" and result.image.width == 512
    person = result.people[0]
    errors = [np.hypot(*r) for r in person.residuals_px if r is not None]
    # The detector sees head, shoulders, arms and hands of this portrait.
    assert len(errors) > 40 and np.median(errors) < 15.0
    # The body stands in front of the camera at a plausible distance for a portrait.
    assert 0.5 < person.transl[2] < 6.0
    # Legs below the frame were never seen (the detector's guesses there are not evidence),
    # nor her left elbow: the result says so. Torso, head and right upper arm were seen.
    inferred = set(person.inferred_joints)
    assert {"left_knee", "right_knee", "left_ankle", "right_ankle", "left_shoulder"} <= inferred
    assert not {"pelvis", "spine3", "neck", "head", "right_shoulder"} & inferred
    assert read_result(write_result(result, tmp_path / "result.json")).people[0] == person
    overlay = paint_fit_over_photo(result, photo, tmp_path / "overlay.png")
    import cv2

    drawn = cv2.imread(str(overlay))
    original = cv2.imread(str(photo))
    changed = np.abs(drawn.astype(int) - original.astype(int)).sum(-1) > 30
    # The mesh covers the person (the image centre), not the corners.
    assert changed[200:400, 180:330].mean() > 0.5
    assert changed[:60, :60].mean() < 0.05 and changed[:60, -60:].mean() < 0.05


def test_the_second_person_by_number_is_the_one_the_old_box_matching_chose(tmp_path, photo_dir):
    """zidane.jpg: `person` number 2 fits the second person found (the one the worker used
    to pick by handing their box back to the pipeline), and draws everyone found."""
    photo = photo_dir / "zidane.jpg"
    request = FitRequest(photo=photo, device="cpu", person=PersonChoice(NUMBER, number=2), overlay=True)
    result = fit_photo(request, out_dir=tmp_path)
    found = json.loads((tmp_path / "keypoints.json").read_text())["people"]
    assert len(found) >= 2 and (tmp_path / "keypoints.png").stat().st_size > 1000
    assert len(result.people) == 1
    assert result.people[0].box == pytest.approx(found[1]["box"], abs=0.01)  # the file rounds to 3 places
    assert result.people[0].box != pytest.approx(found[0]["box"], abs=10.0)
    # The result numbers the person and keeps everyone's box, so another can be picked.
    assert result.people[0].number == 2
    np.testing.assert_allclose(result.found_boxes, [person["box"] for person in found], atol=0.01)
    first = fit_photo(FitRequest(photo=photo, device="cpu", overlay=True), out_dir=tmp_path / "first")
    assert first.people[0].number == 1 and first.found_boxes == result.found_boxes
    # Only the chosen person's keypoints are kept, but the picture numbers everyone.
    assert len(json.loads((tmp_path / "first" / "keypoints.json").read_text())["people"]) == 1
    people = [Person(tuple(person["box"])) for person in found]
    assert choose_people(people, PersonChoice(BOX, box=tuple(found[1]["box"]))) == [people[1]]
    assert choose_people(people, PersonChoice(NUMBER, number=2)) == [people[1]]
    assert choose_people(people, PersonChoice()) == [people[0]]
    assert choose_people(people, PersonChoice(EVERYONE)) == people
    with pytest.raises(FitError, match=f"Person 9 was asked for, but {len(found)} people were found"):
        choose_people(people, PersonChoice(NUMBER, number=9))


def test_warm_models_keep_the_last_bodies_by_file_checksum_gender_and_device(synthetic_model_dir, tmp_path):
    folder = tmp_path / "models"
    shutil.copytree(synthetic_model_dir, folder)
    neutral_file = folder / "smplx" / "SMPLX_NEUTRAL.npz"
    warm = WarmModels()

    def body(gender: str) -> BodyModel:
        request = FitRequest(photo="p.jpg", model=str(folder), gender=gender, device="cpu")
        data, built, device = warm.body(request)
        assert device == "cpu" and data.sha256 == file_sha256(data.path)
        return built

    neutral, male = body("neutral"), body("male")
    assert neutral is not male and body("neutral") is neutral and body("male") is male
    assert MAX_KEPT_BODIES == 2
    female = body("female")  # a third: the one used least recently (neutral) goes
    assert body("male") is male and body("female") is female and body("neutral") is not neutral
    neutral = body("neutral")
    os.utime(neutral_file, ns=(1, 1))  # the same content at another time: the same checksum
    assert body("neutral") is neutral
    shutil.copyfile(folder / "smplx" / "SMPLX_FEMALE.npz", neutral_file)  # another content
    changed = body("neutral")
    assert changed is not neutral and changed is not female  # keyed by gender too
    assert changed.data.sha256 == female.data.sha256
    warm.close()


def test_the_facing_with_the_lower_loss_per_seen_keypoint_is_kept():
    # Rows 0-2: three people as found; rows 3 and 4: persons 2 and 0 read facing the other way.
    seen = np.zeros((5, 10, 3))
    for row, count in enumerate((10, 8, 10, 10, 4)):
        seen[row, :count, 2] = 1.0
    losses = np.array([100.0, 50.0, 100.0, 120.0, 30.0])
    # person 2: 12 > 10 per point, kept as found; person 0: 7.5 < 10 per point with fewer
    # points seen (a hand not found that way), taken from row 4
    assert better_facings(losses, seen, [2, 0]) == [4, 1, 2]
    assert better_facings(losses[:3], seen[:3], []) == [0, 1, 2]
