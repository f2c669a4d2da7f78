"""The `detect` command end to end on a real photo (through its command module, so
that the test does not depend on the other rooms' commands)."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from smplx_capture_addon.keypoints import cli
from smplx_capture_addon.keypoints.errors import ImageError
from smplx_capture_addon.keypoints.formats import read_keypoints


def run_detect(arguments: list[str]) -> int:
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    return cli.run(parser.parse_args(arguments))


def test_detect_command_writes_keypoints_and_an_overlay(photo_dir, tmp_path, capsys, monkeypatch):
    output, overlay = tmp_path / "keypoints.json", tmp_path / "overlay.png"
    monkeypatch.chdir(photo_dir)
    assert run_detect(["astronaut.png", "-o", str(output), "--overlay", str(overlay)]) == 0
    detections = read_keypoints(output)
    assert detections.image_size == (512, 512) and len(detections.people) == 1
    # The file names its photo absolutely: the fit that reads it may run from another folder.
    named = Path(detections.image_path)
    assert named.is_absolute() and named.samefile(photo_dir / "astronaut.png")
    assert {"mediapipe_pose_33", "mediapipe_face_478"} <= set(detections.people[0].keypoint_sets)
    drawn = np.asarray(Image.open(overlay))
    original = np.asarray(Image.open(photo_dir / "astronaut.png").convert("RGB"))
    assert drawn.shape == original.shape and (drawn != original).any(axis=2).sum() > 500
    assert "1 person(s)" in capsys.readouterr().out


def test_detect_command_with_box_and_openpose_output(photo_dir, tmp_path):
    output = tmp_path / "openpose.json"
    box = ["200", "390", "380", "890"]
    assert run_detect([str(photo_dir / "bus.jpg"), "-o", str(output), "--box", *box, "--openpose"]) == 0
    (person,) = read_keypoints(output).people
    assert (
        person.keypoint_sets["hand_21_left"][:, 2].min() > 0
        and person.keypoint_sets["hand_21_right"][:, 2].min() > 0
    )
    assert 200 < person.keypoint_sets["openpose_body_25"][0, 0] < 380  # his nose


def test_detect_command_reports_a_missing_photo_as_a_capture_error(tmp_path):
    with pytest.raises(ImageError, match="no such file"):
        run_detect([str(tmp_path / "nope.jpg"), "-o", str(tmp_path / "k.json")])
    assert not (tmp_path / "k.json").exists()
