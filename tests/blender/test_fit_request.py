"""The fit request: the same request back from JSON and from the `fit` and `worker`
command lines, for every field and every choice of person; bad or contradicting values
refused with a message that says what to give (in Python, on the command line, in JSON,
and from the real worker process over its protocol)."""

from __future__ import annotations

import json

import pytest

from smplx_capture_addon import fit_request as request
from smplx_capture_addon.cli import build_parser
from smplx_capture_addon.errors import CaptureError
from smplx_capture_addon.fit_request import BOX, EVERYONE, FIRST, NUMBER, FitRequest, PersonChoice
from smplx_capture_addon.worker import runner

CHOICES = [
    PersonChoice(),
    PersonChoice(NUMBER, number=2),
    PersonChoice(BOX, box=(10.25, 20.0, 300.125, 400.5)),
    PersonChoice(EVERYONE),
]


def requests() -> list[FitRequest]:
    """Every field set (a keypoint file with its photo, a model, ...), for each choice of
    person and each pose prior (with GMM, a re-fit's start and held joints); and the
    smallest requests of a photo or keypoints alone."""
    paths = {"photo": "/photos/me 1.jpg", "keypoints": "/job/k.json", "model": "/models/smplx"}
    full = [
        FitRequest(
            **paths,
            gender="female",
            device="cuda",
            focal_px=1234.56789012345,
            person=choice,
            overlay=True,
            **prior,
        )
        for choice in CHOICES
        for prior in (
            {"vposer": "/priors/V02_05"},
            {"gmm": "/priors/gmm_08.pkl", "start": "/job/s 1.json", "fixed_joints": ("left_elbow", "pelvis")},
        )
    ]
    return [*full, FitRequest(photo="me.png"), FitRequest(keypoints="k.json")]


@pytest.mark.parametrize("fit_request", requests(), ids=repr)
def test_a_request_comes_back_from_json_unchanged(fit_request):
    text = fit_request.to_json()
    assert FitRequest.from_json(text) == fit_request
    raw = json.loads(text)
    person = fit_request.person
    box = list(person.box) if person.box else None
    assert raw["person"] == {"kind": person.kind, "number": person.number, "box": box}
    assert raw["focal_px"] == fit_request.focal_px and raw["photo"] == fit_request.photo
    assert raw["start"] == fit_request.start and raw["fixed_joints"] == list(fit_request.fixed_joints)


@pytest.mark.parametrize("command", [["fit", "-o", "/out"], ["worker", "--out", "/out"]])
@pytest.mark.parametrize("fit_request", requests(), ids=repr)
def test_a_request_comes_back_from_the_command_line_unchanged(fit_request, command):
    args = build_parser().parse_args([command[0], *fit_request.to_arguments(), *command[1:]])
    assert request.from_arguments(args) == fit_request


def test_command_line_options_name_the_person():
    def person(*options: str) -> PersonChoice:
        args = build_parser().parse_args(["fit", "me.jpg", "-o", "out", *options])
        return request.from_arguments(args).person

    assert person() == PersonChoice(FIRST)
    assert person("--person", "3") == PersonChoice(NUMBER, number=3)
    assert person("--box", "1", "2", "30", "40.5") == PersonChoice(BOX, box=(1.0, 2.0, 30.0, 40.5))
    assert person("--all-people") == PersonChoice(EVERYONE)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: FitRequest(), "Nothing to fit: give a photo or a keypoint file."),
        (lambda: FitRequest(photo=""), "The photo must be the path of a file or folder, not ''."),
        (lambda: FitRequest(photo="a.jpg", model=3), "The model must be the path"),
        (lambda: FitRequest(photo="a.jpg", gender="other"), "Unknown gender 'other': use one of neutral,"),
        (lambda: FitRequest(photo="a.jpg", device="tpu"), "Unknown device 'tpu': use one of auto,"),
        (lambda: FitRequest(photo="a.jpg", focal_px=0.0), "positive number of pixels, not 0.0"),
        (lambda: FitRequest(photo="a.jpg", focal_px=float("nan")), "positive number of pixels, not nan"),
        (lambda: FitRequest(photo="a.jpg", focal_px="900"), "positive number of pixels, not '900'"),
        (lambda: FitRequest(photo="a.jpg", focal_px=True), "positive number of pixels, not True"),
        (lambda: FitRequest(photo="a.jpg", overlay="yes"), "The overlay setting must be true or false"),
        (lambda: FitRequest(keypoints="k.json", overlay=True), "give the photo too (--image PHOTO)"),
        (lambda: FitRequest(photo="a.jpg", vposer="v", gmm="g"), "Give one pose prior, VPoser or GMM,"),
        (lambda: FitRequest(photo="a.jpg", person=2), "The person to fit must be a PersonChoice, not 2."),
        (lambda: FitRequest(photo="a.jpg", start=""), "The start must be the path of a file or folder"),
        (lambda: FitRequest(photo="a.jpg", start="s.json", fixed_joints=("left_elbw",)),
         "Unknown joint 'left_elbw' to hold: use the SMPL-X bone names"),
        (lambda: FitRequest(photo="a.jpg", start="s.json", fixed_joints="pelvis"),
         "The held joints must be a list of joint names, not 'pelvis'."),
        (lambda: FitRequest(photo="a.jpg", fixed_joints=("pelvis",)), "give that fit too (--start RESULT)"),
        (lambda: FitRequest(photo="a.jpg", start="s.json", vposer="v"), "cannot use VPoser"),
        (lambda: PersonChoice("second"), "Unknown person choice 'second': use one of first, number, box,"),
        (lambda: PersonChoice(NUMBER), "The person number must be a whole number from 1"),
        (lambda: PersonChoice(NUMBER, number=0), "whole number from 1 (the most prominent person), not 0."),
        (lambda: PersonChoice(NUMBER, number=1.5), "whole number from 1"),
        (lambda: PersonChoice(NUMBER, number=True), "whole number from 1"),
        (lambda: PersonChoice(FIRST, number=2), "a number goes only with 'number', a box only with 'box'"),
        (lambda: PersonChoice(EVERYONE, box=(0, 0, 9, 9)), "a number goes only with 'number'"),
        (lambda: PersonChoice(NUMBER, number=2, box=(0, 0, 9, 9)), "a box only with 'box'"),
        (lambda: PersonChoice(BOX), "The box None is not a box: give X0 Y0 X1 Y1 in photo pixels"),
        (lambda: PersonChoice(BOX, box=(10, 0, 5, 9)), "with X0 < X1 and Y0 < Y1"),
        (lambda: PersonChoice(BOX, box=(0, 0, 9)), "is not a box"),
        (lambda: PersonChoice(BOX, box=(0, 0, 9, float("inf"))), "is not a box"),
        (lambda: PersonChoice(BOX, box="0 0 9 9"), "is not a box"),
    ],
)
def test_bad_values_are_refused_with_a_message(make, message):
    with pytest.raises(CaptureError) as raised:
        make()
    assert message in str(raised.value)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--person", "2", "--all-people"], "Choose the person one way: --person N, --box X0 Y0 X1 Y1 or"),
        (["--box", "0", "0", "9", "9", "--person", "1"], "not several"),
        (["--box", "0", "0", "9", "9", "--all-people"], "not several"),
        (["--person", "0"], "whole number from 1"),
        (["--focal", "-3"], "positive number of pixels, not -3.0"),
        (["--vposer", "v", "--gmm", "g"], "not both"),
        (["--image", "other.jpg"], "--image names the photo of a keypoint file, but me.jpg is a photo"),
        (["--fixed-joints", "left_elbow"], "give that fit too (--start RESULT)"),
        (["--start", "s.json", "--fixed-joints", "elbow"], "Unknown joint 'elbow' to hold"),
    ],
)
def test_contradicting_command_line_options_are_refused(options, message):
    args = build_parser().parse_args(["worker", "me.jpg", "--out", "job", *options])
    with pytest.raises(CaptureError, match=message.replace("(", r"\(").replace(")", r"\)")):
        request.from_arguments(args)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{not json", "The fit request is not valid JSON"),
        ("[1, 2]", "The fit request must be a JSON object, not [1, 2]."),
        ('{"photo": "a.jpg", "people": 2}', "Unknown field(s) in the fit request: people (known: photo,"),
        ('{"photo": "a.jpg", "person": {"kind": "number", "n": 2}}', "in the person choice: n (known"),
        ('{"photo": "a.jpg", "person": "everyone"}', "The person choice must be a JSON object"),
        ('{"photo": "a.jpg", "person": {"kind": "box", "box": [0, 0, 0, 0]}}', "with X0 < X1 and Y0 < Y1"),
        ('{"photo": "a.jpg", "focal_px": -1}', "positive number of pixels, not -1"),
        ('{"photo": "a.jpg", "start": "s.json", "fixed_joints": "neck"}', "must be a list of joint names"),
    ],
)
def test_bad_json_is_refused_with_a_message(text, message):
    with pytest.raises(CaptureError) as raised:
        FitRequest.from_json(text)
    assert message in str(raised.value)


def test_the_real_worker_reports_a_contradicting_request(tmp_path):
    """Over its protocol, before looking for the photo or loading the solver: not as a
    usage error or a traceback."""
    arguments = [str(tmp_path / "me.jpg"), "--person", "2", "--all-people", "--out", str(tmp_path / "job")]
    command = runner.worker_command(None, arguments)
    state = runner.WorkerJob(command, runner.worker_environment()).wait(interval=0.02)
    assert state.status == runner.FAILED
    assert state.error == (
        "Choose the person one way: --person N, --box X0 Y0 X1 Y1 or --all-people, not several."
    )
