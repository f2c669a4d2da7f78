"""Detection on real photos: the evidence must be where the body is."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from smplx_capture_addon.body_model.names import CONTOUR_NAMES, FACE_LANDMARK_NAMES, keypoint_index
from smplx_capture_addon.keypoints.association import LEFT_SHOULDER, RIGHT_SHOULDER
from smplx_capture_addon.keypoints.detect import WORLD, Detector, detect, find_people, person_box, pose_in_box
from smplx_capture_addon.keypoints.errors import KeypointError
from smplx_capture_addon.keypoints.images import load_image
from smplx_capture_addon.keypoints.people import body_keypoints

# By eye on astronaut.png (512 x 512): Eileen Collins' face from hairline to chin
ASTRONAUT_FACE = (165.0, 55.0, 290.0, 195.0)
# The man holding a phone in ultralytics' bus.jpg (810 x 1080), head to shoes
BUS_PHONE_MAN_BOX = (200.0, 390.0, 380.0, 890.0)


def point(keypoints: np.ndarray, name: str) -> np.ndarray:
    return keypoints[keypoint_index(name)]


def inside(xy: np.ndarray, box: tuple[float, float, float, float]) -> bool:
    return bool(box[0] <= xy[0] <= box[2] and box[1] <= xy[1] <= box[3])


@pytest.fixture(scope="module")
def astronaut(detections_of):
    return detections_of("astronaut.png")


def test_astronaut_face_landmarks_all_lie_in_her_face(astronaut):
    (person,) = astronaut.people
    keypoints = body_keypoints(person)
    for name in FACE_LANDMARK_NAMES + CONTOUR_NAMES + ("nose", "left_eye", "right_eye"):
        assert point(keypoints, name)[2] > 0.5, name
        assert inside(point(keypoints, name), ASTRONAUT_FACE), name


def test_astronaut_face_layout_is_anatomical(astronaut):
    keypoints = body_keypoints(astronaut.people[0])
    x = {
        name: point(keypoints, name)[0]
        for name in ("face_36", "face_39", "face_42", "face_45", "face_48", "face_54")
    }
    y = {
        name: point(keypoints, name)[1]
        for name in ("face_19", "face_30", "face_33", "face_51", "face_57", "face_08")
    }
    # facing the camera: her right (eye, mouth corner) is on the image's left
    assert x["face_36"] < x["face_39"] < x["face_42"] < x["face_45"]
    assert x["face_48"] < x["face_54"]
    assert y["face_19"] < y["face_30"] < y["face_33"] < y["face_51"] < y["face_57"] < y["face_08"]
    # the iris centres lie between the corners of their eye
    assert x["face_36"] < point(keypoints, "right_eye")[0] < x["face_39"]
    assert x["face_42"] < point(keypoints, "left_eye")[0] < x["face_45"]


def test_astronaut_left_and_right_are_her_own_in_body_and_face(astronaut):
    keypoints = body_keypoints(astronaut.people[0])
    for side_name in ("shoulder", "eye", "ear"):
        assert point(keypoints, f"left_{side_name}")[0] > point(keypoints, f"right_{side_name}")[0], side_name
    # Her left elbow is half hidden (visibility under 0.5, so not given to the fit): the
    # detector's own points tell its side.
    pose = astronaut.people[0].keypoint_sets["mediapipe_pose_33"]
    assert pose[13, 0] > pose[14, 0]  # left elbow, right elbow
    shoulders = point(keypoints, "left_shoulder")[0] - point(keypoints, "right_shoulder")[0]
    assert shoulders > 100  # she fills the frame: her shoulders are far apart, not a coin toss


def test_phone_man_in_bus_photo_has_both_hands_on_the_crop_and_none_on_the_whole_photo(detections_of):
    (person,) = detections_of("bus.jpg", box=BUS_PHONE_MAN_BOX).people
    assert {"hand_21_left", "hand_21_right", "mediapipe_face_478"} <= set(person.keypoint_sets)
    whole_photo = detections_of("bus.jpg", two_pass=False, all_people=True)
    assert not any(name.startswith("hand") for p in whole_photo.people for name in p.keypoint_sets)


def test_phone_man_hands_are_where_his_wrists_are_and_not_swapped(detections_of):
    (person,) = detections_of("bus.jpg", box=BUS_PHONE_MAN_BOX).people
    pose = person.keypoint_sets["mediapipe_pose_33"]
    left, right = person.keypoint_sets["hand_21_left"], person.keypoint_sets["hand_21_right"]
    # pose wrists 15 (left) and 16 (right) and hand wrists agree within a few pixels
    assert np.linalg.norm(left[0, :2] - pose[15, :2]) < 15
    assert np.linalg.norm(right[0, :2] - pose[16, :2]) < 15
    # by eye: his left hand rests on his right shoulder, his right hand holds the phone
    # low at his right hip (about x 270, y 680)
    assert left[:, 1].max() < 560 and inside(left[:, :2].mean(axis=0), (225, 480, 300, 560))
    assert inside(right[:, :2].mean(axis=0), (240, 630, 300, 700))
    # and both lie inside his box
    assert all(inside(xy, BUS_PHONE_MAN_BOX) for xy in np.vstack([left, right])[:, :2])


def test_in_the_mirrored_photo_his_hands_swap_sides(detector, detections_of, photo_dir, tmp_path):
    """A mirror image shows a person whose left and right are swapped: both the body's
    and the hands' sides must follow, so neither comes from a fixed convention."""
    Image.open(photo_dir / "bus.jpg").transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(tmp_path / "mirror.png")
    x0, y0, x1, y1 = BUS_PHONE_MAN_BOX
    (mirrored,) = detect(
        load_image(tmp_path / "mirror.png"), detector, box=(810 - x1, y0, 810 - x0, y1)
    ).people
    (original,) = detections_of("bus.jpg", box=BUS_PHONE_MAN_BOX).people
    for side, other in (("left", "right"), ("right", "left")):
        wrist = mirrored.keypoint_sets[f"hand_21_{side}"][0, :2]
        expected = original.keypoint_sets[f"hand_21_{other}"][0, :2] * (-1, 1) + (810, 0)
        assert np.linalg.norm(wrist - expected) < 15, side


def test_all_people_of_the_bus_photo_are_found_with_separate_boxes(detections_of):
    people = detections_of("bus.jpg", all_people=True).people
    assert len(people) >= 2
    noses = [person.keypoint_sets["mediapipe_pose_33"][0, :2] for person in people]
    # the man in the fleece coat (nose about 143, 446) and the man with the phone (about 290, 450)
    assert any(np.linalg.norm(nose - (143, 446)) < 20 for nose in noses)
    assert any(np.linalg.norm(nose - (290, 450)) < 20 for nose in noses)
    for person, nose in zip(people, noses, strict=True):
        assert inside(nose, person.box)
        assert sum(inside(nose, other.box) for other in people) <= 2


def largest_torso_seen(pose: np.ndarray) -> float:
    """The documented default rule (detect.prominence), written out: the torso's size
    (shoulder width or shoulders-to-hips length) squared times the mean visibility of
    the head (points 0-10), shoulders (11, 12) and hips (23, 24)."""
    shoulders = np.linalg.norm(pose[11, :2] - pose[12, :2])
    length = np.linalg.norm((pose[11, :2] + pose[12, :2]) / 2 - (pose[23, :2] + pose[24, :2]) / 2)
    return max(shoulders, length) ** 2 * pose[[*range(11), 11, 12, 23, 24], 2].mean()


@pytest.mark.parametrize(
    ("photo", "default_nose"),
    [
        ("bus.jpg", (143, 446)),  # the man in the fleece coat: nearer, larger than the phone man
        # Zidane, nearest the camera (his hips below the frame), not Carlo Ancelotti,
        # whose box (to his knees) is the larger
        ("zidane.jpg", (590, 365)),
    ],
)
def test_default_choice_is_the_largest_torso_seen_and_person_number_one(
    detector, detections_of, photo_dir, photo, default_nose
):
    (chosen,) = detections_of(photo).people
    everyone = detections_of(photo, all_people=True).people
    assert chosen.box == everyone[0].box == detections_of(photo).found_boxes[0]
    assert [person.box for person in everyone] == detections_of(photo, all_people=True).found_boxes
    assert np.linalg.norm(chosen.keypoint_sets["mediapipe_pose_33"][0, :2] - default_nose) < 40
    # The rule ranks the poses found on the whole photo and its tiles (a closer look at
    # the chosen person alone comes after the choice).
    ranks = [largest_torso_seen(pose) for pose in find_people(load_image(photo_dir / photo).pixels, detector)]
    assert ranks == sorted(ranks, reverse=True) and len(ranks) >= 2


def test_coordinates_are_original_pixels_for_downscaled_and_rotated_photos(
    detector, photo_dir, tmp_path, astronaut
):
    reference = body_keypoints(astronaut.people[0])
    # stored lying on its side with EXIF "rotate to display": the same upright pixels
    Image.open(photo_dir / "astronaut.png").transpose(Image.Transpose.ROTATE_270).save(
        tmp_path / "turned.png", exif=_orientation(8)
    )
    turned = detect(load_image(tmp_path / "turned.png"), detector)
    assert turned.image_size == (512, 512)
    assert np.allclose(body_keypoints(turned.people[0]), reference)
    # detected at half size, reported in full-size pixels: crisp face points agree
    small = detect(load_image(photo_dir / "astronaut.png", max_side=256), detector)
    assert small.image_size == (512, 512)
    keypoints = body_keypoints(small.people[0])
    for name in ("nose", "left_eye", "right_eye", "face_36", "face_45", "face_48", "face_54"):
        assert np.linalg.norm(point(keypoints, name)[:2] - point(reference, name)[:2]) < 6, name


def test_same_photo_gives_the_same_keypoints(detector, photo_dir, astronaut):
    again = detect(load_image(photo_dir / "astronaut.png"), detector)
    for name, points in astronaut.people[0].keypoint_sets.items():
        assert np.array_equal(points, again.people[0].keypoint_sets[name]), name


def test_one_lane_finds_the_same_people_as_two_side_by_side(photo_dir):
    """Two lanes run the tiles, the looks behind people and each person's closer look side
    by side; one lane runs them one by one. The bus photo's everyone must come out the same."""
    photo = load_image(photo_dir / "bus.jpg")
    with Detector(lanes=2) as two_lanes, Detector(lanes=1) as one_lane:
        side_by_side = detect(photo, two_lanes, all_people=True)
        one_by_one = detect(photo, one_lane, all_people=True)
    assert len(side_by_side.people) == len(one_by_one.people) >= 2
    assert side_by_side.found_boxes == one_by_one.found_boxes
    for person, again in zip(side_by_side.people, one_by_one.people, strict=True):
        assert person.keypoint_sets.keys() == again.keypoint_sets.keys()
        for name, points in person.keypoint_sets.items():
            assert np.array_equal(points, again.keypoint_sets[name]), name
        assert np.array_equal(person.world_landmarks, again.world_landmarks)


def test_run_all_keeps_the_calls_order_and_their_errors(detector):
    """Calls nested inside a lane's call run there one by one (the lanes are taken); an
    error in any call reaches the caller."""

    def nested(k: int) -> list[int]:
        return detector.run_all([lambda j=j: 10 * k + j for j in range(3)])

    assert detector.run_all([lambda k=k: nested(k) for k in range(4)]) == [[10 * k + j for j in range(3)]
                                                                         for k in range(4)]  # fmt: skip

    def broken() -> None:
        raise ValueError("this call failed")

    with pytest.raises(ValueError, match="this call failed"):
        detector.run_all([lambda: 1, broken, lambda: 3])


def test_photo_without_a_person_raises_a_keypoint_error(detector, tmp_path):
    Image.new("RGB", (640, 480), (120, 130, 140)).save(tmp_path / "wall.png")
    with pytest.raises(KeypointError, match="no person found"):
        detect(load_image(tmp_path / "wall.png"), detector)
    with pytest.raises(KeypointError, match="inside the given box"):
        detect(load_image(tmp_path / "wall.png"), detector, box=(10, 10, 300, 400))
    with pytest.raises(KeypointError, match="empty or outside"):
        detect(load_image(tmp_path / "wall.png"), detector, box=(300, 10, 10, 400))


def _orientation(value: int) -> Image.Exif:
    exif = Image.Exif()
    exif[0x0112] = value
    return exif


def test_guessed_legs_out_of_the_camera_photo_are_not_given_to_the_fit(detections_of):
    """camera.png shows the cameraman down to his coat: MediaPipe still places his legs,
    some with low visibility. Those guesses count as not seen; the points it is sure of
    (his shoulders, his hip) stay."""
    (person,) = detections_of("camera.png").people
    pose = person.keypoint_sets["mediapipe_pose_33"]
    keypoints = body_keypoints(person, weighted=False)
    legs = {"left_knee": 25, "right_knee": 26, "left_ankle": 27, "right_ankle": 28}
    guessed = [name for name, index in legs.items() if 0 < pose[index, 2] < 0.5]
    assert guessed  # the photo has such guesses to drop
    for name in guessed:
        assert point(keypoints, name)[2] == 0.0, name
    for name, index in (("left_shoulder", 11), ("right_shoulder", 12), ("left_hip", 23)):
        assert pose[index, 2] >= 0.5 and point(keypoints, name)[2] == pose[index, 2], name


def test_people_keep_the_pose_models_world_landmarks_in_metres_about_the_hips(detections_of):
    """Each person of bus.jpg (standing, facing the camera) carries the pose model's world
    landmarks: metres from the hips' midpoint, y down (shoulders above the hips, a
    shoulder width of a person), their left and right on the sides the image has them."""
    people = detections_of("bus.jpg", all_people=True).people
    assert len(people) >= 2
    for person in people:
        world, pose = person.world_landmarks, person.keypoint_sets["mediapipe_pose_33"]
        assert world.shape == (33, 3)
        assert np.linalg.norm(world[[23, 24]].mean(0)) < 0.05
        assert world[[11, 12], 1].max() < world[[23, 24], 1].min() - 0.3
        assert 0.2 < np.linalg.norm(world[11] - world[12]) < 0.6
        for left, right in ((11, 12), (23, 24)):
            assert np.sign(world[left, 0] - world[right, 0]) == np.sign(pose[left, 0] - pose[right, 0])


def test_the_mirrored_look_mirrors_the_world_landmarks_back_too(detector, photo_dir):
    """The look at the crop mirrored left to right swaps the person's sides back and
    mirrors x back, in the image and in the world landmarks alike: on astronaut.png both
    looks have her left shoulder on the same side in both."""
    pixels = load_image(photo_dir / "astronaut.png").pixels
    (pose,) = find_people(pixels, detector)
    for mirrored in (False, True):
        look = pose_in_box(pixels, detector, person_box(pose, pixels.shape), mirrored=mirrored)
        assert look.shape == (33, 6)
        shoulders = look[LEFT_SHOULDER] - look[RIGHT_SHOULDER]
        assert np.sign(shoulders[WORLD.start]) == np.sign(shoulders[0]) == np.sign(pose[11, 0] - pose[12, 0])
