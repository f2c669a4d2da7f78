"""The video fit request (Python 3.11 and 3.13: Blender's side makes it): the same request
back from its JSON form and from the `fit-video` command line, and made from the Fit a
Video panel's settings; bad or contradicting values refused with a message that says
what to give, in Python and in JSON."""

from __future__ import annotations

import json

import addon_utils
import bpy
import pytest

from smplx_capture_addon.blender_ui.operators import video_request_from_context
from smplx_capture_addon.cli import build_parser
from smplx_capture_addon.errors import CaptureError
from smplx_capture_addon.fit_request import BOX, EVERYONE, NUMBER, FitRequest, PersonChoice
from smplx_capture_addon.video.cli import request_from_arguments
from smplx_capture_addon.video.request import VideoRequest

CLIP = "/videos/walk 1.mp4"


def test_a_video_request_comes_back_from_json_and_from_the_command_line():
    fit = FitRequest(photo=CLIP, model="/models/smplx", gender="female", device="cpu", focal_px=512.25,
                     person=PersonChoice(BOX, box=(10.0, 20.0, 300.5, 400.0)))  # fmt: skip
    request = VideoRequest(fit, start=8, end=17, step=3, folder_fps=24.0, smooth=0.0, ground=False)
    assert VideoRequest.from_dict(json.loads(json.dumps(request.to_dict()))) == request
    assert request.frame_range().wants(11) and not request.frame_range().wants(12)

    arguments = ["fit-video", CLIP, "-o", "/out", "--start", "8", "--end", "17", "--step", "3", "--box", "10",
                 "20", "300.5", "400", "--model", "/models/smplx", "--gender", "female", "--device", "cpu",
                 "--focal", "512.25", "--fps", "24", "--smooth", "0", "--no-ground"]  # fmt: skip
    assert request_from_arguments(build_parser().parse_args(arguments)) == request
    parsed = build_parser().parse_args(["fit-video", CLIP, "-o", "/out", "--person", "2"])
    plain = request_from_arguments(parsed)
    assert plain == VideoRequest(FitRequest(photo=CLIP, person=PersonChoice(NUMBER, number=2)))
    assert (plain.start, plain.end, plain.step, plain.smooth, plain.ground) == (0, None, 1, 1.5, True)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"fit": FitRequest(photo=CLIP, person=PersonChoice(EVERYONE))}, "follows one person"),
        ({"fit": FitRequest(keypoints="/k.json")}, "not a keypoint file"),
        ({"fit": FitRequest(photo=CLIP, overlay=True)}, "leave the overlay"),
        ({"start": 9, "end": 3}, "empty or backwards"),
        ({"step": 0}, "empty or backwards"),
        ({"start": -1}, "empty or backwards"),
        ({"start": 1.5}, "frame start must be a whole number"),
        ({"end": True}, "frame end must be a whole number"),
        ({"folder_fps": 0.0}, "folder of images must be above 0"),
        ({"smooth": float("nan")}, "0 or more frames"),
        ({"ground": "yes"}, "Feet on the ground or not must be true or false"),
    ],
)
def test_a_bad_video_request_says_what_to_give(change, message):
    fields = {"fit": FitRequest(photo=CLIP), **change}
    with pytest.raises(CaptureError, match=message):
        VideoRequest(**fields)


def test_a_bad_json_video_request_names_the_field():
    good = VideoRequest(FitRequest(photo=CLIP)).to_dict()
    with pytest.raises(CaptureError, match=r"Unknown field\(s\) in the video fit request: speed"):
        VideoRequest.from_dict({**good, "speed": 2})
    with pytest.raises(CaptureError, match="must be a JSON object"):
        VideoRequest.from_dict(["clip.mp4"])
    with pytest.raises(CaptureError, match="The fit request must be a JSON object"):
        VideoRequest.from_dict({**good, "fit": CLIP})


def test_the_panel_settings_make_the_video_request(tmp_path):
    addon_utils.enable("smplx_capture_addon", default_set=True)
    try:
        settings = bpy.context.scene.smplx_capture
        with pytest.raises(CaptureError, match="Pick a video first"):
            video_request_from_context(bpy.context)
        settings.video, settings.gender, settings.device = str(tmp_path / "walk.mp4"), "female", "cpu"
        settings.video_start, settings.video_step, settings.video_person = 4, 2, 3
        assert video_request_from_context(bpy.context) == VideoRequest(
            FitRequest(photo=str(tmp_path / "walk.mp4"), gender="female", device="cpu",
                       person=PersonChoice(NUMBER, number=3)), start=4, end=None, step=2,
        )  # fmt: skip
        settings.video_end, settings.video_ground = 20, False
        request = video_request_from_context(bpy.context)
        assert (request.end, request.ground) == (20, False)
    finally:
        addon_utils.disable("smplx_capture_addon", default_set=True)
