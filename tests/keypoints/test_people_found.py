"""Everyone found, once: detection only, on rendered training cases of the benchmark
(devtools/rendered; from the cache under .cache/rendered_bench/, rendered there by
Blender when missing) whose people the detector used to merge with a neighbour."""

from __future__ import annotations

import pytest

from smplx_capture_addon.body_model.model_file import load_model
from smplx_capture_addon.body_model.names import JOINT_NAMES
from smplx_capture_addon.devtools.rendered import TRAINING_SEED_START
from smplx_capture_addon.devtools.rendered.cache import render_or_load
from smplx_capture_addon.devtools.rendered.cases import evaluation_model, make_case
from smplx_capture_addon.devtools.rendered.metrics import match_people
from smplx_capture_addon.keypoints.detect import detect
from smplx_capture_addon.keypoints.images import load_image

SHOULDERS = [JOINT_NAMES.index("left_shoulder"), JOINT_NAMES.index("right_shoulder")]

# (kind, index) of the training split, by what the detector did before looking at heads:
CASES = [
    ("two_people", 4),  # the second person beside the first, inside the first one's box
    ("two_people", 8),  # the first skeleton took the second person's legs, hiding them
    ("three_people", 0),  # a crouching person half behind a standing one's arm
]


@pytest.fixture(scope="module")
def model():
    return evaluation_model(load_model("default"))


@pytest.mark.parametrize(("kind", "index"), CASES)
def test_every_person_whose_torso_is_in_view_is_found_once(detector, model, kind, index):
    rendered = render_or_load(make_case(kind, TRAINING_SEED_START, index, model), model)
    people = detect(load_image(rendered.photo), detector, all_people=True).people
    truths = rendered.truths
    assert all(truth.seen()[SHOULDERS].all() for truth in truths)  # the case is what it says
    matches = match_people([truth.box for truth in truths], [person.box for person in people])
    assert sorted(matches) == list(range(len(truths)))
    assert len(people) == len(truths)  # no one twice, no made-up person
