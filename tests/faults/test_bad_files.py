"""Fault injection on the readers of the files users give us: keypoint files, result files,
body model files (.npz and .pkl). Each starts from a valid file and reads many damaged
copies of it (keys dropped, types swapped, NaN, infinities, huge and negative numbers,
lists resized, the file truncated or its bytes flipped), with fixed seeds.

Invariants checked for every case: the outcome is a valid result or our own error with a
message that names the file (no other exception escapes); a valid outcome is sound (every
number finite and in range, every index inside what it indexes); a truncated file never
reads as valid; reading leaves the folder as it was. A sample of the refused files also
goes through the command that reads it (`fit`, `blend`, `model-info`): exit status 2, one
line that names the file, no traceback, nothing written, Blender's scene unchanged.

Each test prints its counts (pytest -s): cases run, refused, read as valid, invariants held.
"""

from __future__ import annotations

import copy
import json
import math
import pickle
import random
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from smplx_capture_addon.body_model import model_file
from smplx_capture_addon.cli import main
from smplx_capture_addon.devtools import synthetic_model
from smplx_capture_addon.errors import CaptureError, ModelFileError
from smplx_capture_addon.keypoints.errors import KeypointFileError
from smplx_capture_addon.keypoints.formats import read_keypoints
from smplx_capture_addon.keypoints.layouts import LAYOUTS
from smplx_capture_addon.result_format import (
    Camera,
    FitResult,
    ImageInfo,
    ModelIdentity,
    PersonFit,
    ResultFormatError,
    read_result,
    write_result,
)

SWAPPED_IN = ["text", "12.5", None, True, [], {}, [1, 2], {"a": 1}]
NUMBERS_IN = [math.nan, math.inf, -math.inf, 1e308, -1e9, 10**400, -5, 0, 1e9, 2.5, -0.0]
CLI_SAMPLE = 8  # every n-th refused file also goes through its command


class Tally:
    """What a fuzz test saw: outcomes and invariants checked."""

    def __init__(self, name: str) -> None:
        self.name, self.outcomes, self.invariants, self.commands = name, Counter(), 0, 0

    def held(self, condition: bool, what: str) -> None:
        assert condition, what
        self.invariants += 1

    def report(self) -> str:
        cases = sum(self.outcomes.values())
        refused, valid = self.outcomes["refused"], self.outcomes["valid"]
        return (f"{self.name}: {cases} cases ({refused} refused with a message, {valid} read as valid; "
                f"{self.commands} refused ones also through the command), {self.invariants} invariants "
                "checked, all held")  # fmt: skip


# --- mutations of a JSON document -------------------------------------------------------


def json_paths(node: object, prefix: tuple = ()) -> list[tuple]:
    """The path of every value under `node` (keys and list positions)."""
    children = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    paths = []
    for key, child in children:
        paths.append((*prefix, key))
        paths += json_paths(child, (*prefix, key))
    return paths


def mutated_json(document: object, rng: random.Random) -> tuple[str, str]:
    """(kind of damage, the damaged file's text) for one random mutation of `document`."""
    kind = rng.choice(["drop", "swap", "number", "number", "resize", "truncate"])
    if kind == "truncate":
        text = json.dumps(document)
        return kind, text[: rng.randrange(len(text))]
    damaged = copy.deepcopy(document)
    paths = json_paths(damaged)
    if kind == "resize":
        paths = [path for path in paths if isinstance(_at(damaged, path), list)] or paths
    path = rng.choice(paths)
    parent, key = _at(damaged, path[:-1]), path[-1]
    if kind == "drop":
        del parent[key]
    elif kind == "swap":
        parent[key] = copy.deepcopy(rng.choice(SWAPPED_IN))
    elif kind == "number":
        parent[key] = rng.choice(NUMBERS_IN)
    elif isinstance(parent[key], list) and parent[key] and rng.random() < 0.5:
        del parent[key][rng.randrange(len(parent[key]))]
    elif isinstance(parent[key], list):
        parent[key].append(copy.deepcopy(parent[key][-1]) if parent[key] else 0)
    return kind, json.dumps(damaged)


def _at(node, path: tuple):
    for key in path:
        node = node[key]
    return node


def read_outcome(tally: Tally, path: Path, read, error_type: type[CaptureError], kind: str):
    """Read `path`: the value read, or None when refused; the invariants of both checked."""
    before = files_under(path.parent)
    value = escaped = None
    try:
        value = read(path)
    except error_type as error:
        tally.held(str(path) in str(error) and len(str(error)) > len(str(path)) + 10, f"vague: {error}")
    except Exception as error:  # the failure this suite exists to find
        escaped = error
    tally.held(escaped is None, f"{kind} damage to {path.name} raised {type(escaped).__name__}: {escaped}")
    tally.held(files_under(path.parent) == before, "reading changed the folder")
    if kind in ("truncate", "truncate bytes"):
        tally.held(value is None, f"a truncated {path.name} read as valid")
    tally.outcomes["refused" if value is None else "valid"] += 1
    return value


def refused_by_command(tally: Tally, argv: list[str], path: Path, capsys) -> None:
    """The command that reads `path` exits 2 with one line naming it, writes no file
    beside it and leaves Blender's scene as it was (`blend` empties the scene only after
    reading its result: a marker object shows whether it got that far)."""
    import bpy

    if "fault marker" not in bpy.data.objects:
        bpy.context.scene.collection.objects.link(bpy.data.objects.new("fault marker", None))
    objects = sorted(o.name for o in bpy.data.objects)
    files = files_under(path.parent)
    capsys.readouterr()
    tally.commands += 1
    status = main(argv)
    error = capsys.readouterr().err
    tally.held(status == 2, f"{argv[0]} exited {status}")
    last = error.splitlines()[-1] if error else ""  # after fit's progress lines
    said = last.startswith(f"error: {path}: ") and error.count("error:") == 1
    tally.held(said, f"{argv[0]} said {error!r}")
    tally.held("Traceback" not in error, "a traceback")
    tally.held(files_under(path.parent) == files, f"{argv[0]} wrote beside {path}")
    tally.held(sorted(o.name for o in bpy.data.objects) == objects, "Blender's scene changed")


def files_under(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


# --- keypoint files ---------------------------------------------------------------------


def keypoint_documents() -> dict[str, object]:
    """One valid file of each layout the readers know."""
    rng = np.random.default_rng(0)

    def rows(layout: str) -> np.ndarray:
        size = LAYOUTS[layout].size
        return np.round(np.column_stack([rng.uniform(0, 800, (size, 2)), rng.uniform(0, 1, size)]), 2)

    first = {"box": [1.0, 2.0, 300.0, 400.0], "score": 0.9,
             "keypoints": {name: rows(name).tolist() for name in ("mediapipe_pose_33", "hand_21_left")}}
    second = {"box": [5.0, 6.0, 7.0, 8.0],
              "keypoints": {"openpose_body_25": rows("openpose_body_25").tolist()}}
    image = {"path": "bus.jpg", "width": 810, "height": 1080, "focal_length_px": 900.0}
    project = {"format": "smplx-capture-keypoints", "version": 1, "detector": "test", "image": image,
               "people": [first, second]}  # fmt: skip
    openpose = {"version": 1.3, "people": [{
        key: rows(layout).ravel().tolist() for key, layout in (
            ("pose_keypoints_2d", "openpose_body_25"), ("hand_left_keypoints_2d", "hand_21_left"),
            ("face_keypoints_2d", "openpose_face_70"))}]}  # fmt: skip
    coco = rows("coco_wholebody_133")
    flags = np.column_stack([coco[:, :2], np.where(coco[:, 2] > 0.5, 2.0, 0.0)])
    parts = {"keypoints": flags[:17], "foot_kpts": flags[17:23], "face_kpts": flags[23:91],
             "lefthand_kpts": flags[91:112], "righthand_kpts": flags[112:]}  # fmt: skip
    return {
        "project": project,
        "openpose": openpose,
        "coco results": [{"image_id": 1, "keypoints": coco.ravel().tolist(), "score": 0.8}],
        "mmpose": [{"keypoints": coco[:, :2].tolist(), "keypoint_scores": coco[:, 2].tolist()}],
        "coco annotations": {
            "images": [{"id": 1, "file_name": "bus.jpg", "width": 810, "height": 1080}],
            "annotations": [{"image_id": 1, **{name: part.ravel().tolist() for name, part in parts.items()}}],
        },
    }


def sound_detections(detections) -> bool:
    size = detections.image_size
    people_sound = all(
        len(person.box) == 4
        and all(math.isfinite(v) for v in person.box)
        and all(
            points.shape == (LAYOUTS[name].size, 3)
            and np.isfinite(points).all()
            and ((points[:, 2] >= 0) & (points[:, 2] <= 1)).all()
            for name, points in person.keypoint_sets.items()
        )
        for person in detections.people
    )
    focal = detections.focal_length_px
    return (
        people_sound
        and (size is None or (len(size) == 2 and all(isinstance(v, int) and v > 0 for v in size)))
        and (focal is None or (math.isfinite(focal) and focal > 0))
    )


def test_damaged_keypoint_files_give_detections_or_one_message(tmp_path, capsys):
    tally = Tally("keypoint files")
    rng = random.Random(33)
    for layout, document in keypoint_documents().items():
        refused = 0
        for case in range(70):
            kind, text = mutated_json(document, rng)
            path = tmp_path / layout.replace(" ", "_") / f"case{case}" / "keypoints.json"
            path.parent.mkdir(parents=True)
            path.write_text(text)
            detections = read_outcome(tally, path, read_keypoints, KeypointFileError, kind)
            if detections is not None:
                tally.held(sound_detections(detections), f"{layout} {kind}: unsound detections")
            else:
                refused += 1
                if refused % CLI_SAMPLE == 1:
                    command = ["fit", str(path), "-o", str(path.parent / "out")]
                    refused_by_command(tally, command, path, capsys)
    print(tally.report())
    assert tally.outcomes["refused"] >= 150 and tally.outcomes["valid"] >= 20  # the fuzz reaches both


# --- result files -----------------------------------------------------------------------


def result_document() -> dict:
    rng = np.random.default_rng(1)

    def values(count: int, scale: float = 0.3) -> list[float]:
        return rng.normal(scale=scale, size=count).round(4).tolist()

    person = PersonFit(values(10), values(10), [3.0, 0.1, 0.2], values(63), values(3), values(3), values(3),
                       values(45), values(45), [0.1, -0.2, 4.0], [1.0, 2.0, 300.0, 400.0],
                       [[0.5, -1.0], None], [9.0, 3.0], True)  # fmt: skip
    result = FitResult(
        ModelIdentity("smplx", "SMPLX_NEUTRAL.npz", "/models/SMPLX_NEUTRAL.npz", "ab12", "neutral"),
        ImageInfo("/photos/bus.jpg", 810, 1080),
        Camera(1000.0, [405.0, 540.0], "default-fov"),
        [person],
        keypoint_names=["nose", "neck"],
        stages=[],
        solver={"stages": 5},
    )
    return result.to_dict()


def test_damaged_result_files_give_a_result_or_one_message(tmp_path, capsys):
    tally = Tally("result files")
    rng = random.Random(34)
    document, refused = result_document(), 0
    for case in range(300):
        kind, text = mutated_json(document, rng)
        path = tmp_path / f"case{case}" / "result.json"
        path.parent.mkdir()
        path.write_text(text)
        result = read_outcome(tally, path, read_result, ResultFormatError, kind)
        if result is not None:  # sound: what was read writes and reads back the same
            again = read_result(write_result(result, tmp_path / f"case{case}" / "again" / "result.json"))
            tally.held(again.to_dict() == result.to_dict(), f"{kind}: does not read back")
        else:
            refused += 1
            if refused % CLI_SAMPLE == 1:
                command = ["blend", str(path), "-o", str(path.parent / "scene.blend")]
                refused_by_command(tally, command, path, capsys)
    print(tally.report())
    assert tally.outcomes["refused"] >= 150 and tally.outcomes["valid"] >= 30


# --- body model files -------------------------------------------------------------------

SMALL = {"num_vertices": 110, "vertex_keypoint_ids": np.arange(21) * 5}
INJECTED = [np.nan, np.inf, -1.0, 1e30, 2.0**40, 0.5, -(2.0**63)]


def mutated_arrays(rng: random.Random, suffix: str) -> tuple[str, dict]:
    """(kind of damage, overrides for write_model) for one random array-level mutation."""
    arrays = synthetic_model.make_model_arrays(num_vertices=110, seed=0)
    arrays["vertex_keypoint_ids"] = SMALL["vertex_keypoint_ids"]
    key = rng.choice(sorted(arrays))
    value = np.asarray(arrays[key])
    kinds = ["drop", "text", "shape", "inject", "inject", "scalar", "dtype"]
    kind = rng.choice([*kinds, "ragged"] if suffix == ".pkl" else kinds)  # .npz cannot hold a ragged list
    if kind == "ragged":
        return kind, {key: [value.ravel()[:3].tolist(), [0.0]]}
    if kind == "drop":
        return kind, {key: None}
    if kind == "text":
        return kind, {key: np.full(value.shape, "x")}
    if kind == "shape":
        return kind, {key: value[:-1] if rng.random() < 0.5 else value[None]}
    if kind == "scalar":
        return kind, {key: np.array(rng.choice(INJECTED))}
    if kind == "dtype":
        return kind, {key: value.astype(rng.choice([np.float16, np.int8, np.uint64, np.bool_]))}
    damaged = value.astype(np.float64).copy()
    damaged.ravel()[rng.randrange(damaged.size)] = rng.choice(INJECTED)
    return kind, {key: damaged}


SPARSE_DAMAGE = [
    {"_shape": (10**9, 10**9)}, {"_shape": (-55, 110)}, {"_shape": (55, 110, 1)}, {"_shape": "big"},
    {"_shape": None}, {"_shape": (55.5, 110)}, {"format": "coo"}, {"format": 5},
    {"indices": np.arange(110) + 55}, {"indices": -np.ones(110, np.int64)},
    {"indices": np.zeros(3, np.int64)}, {"indptr": np.arange(111)[::-1].copy()},
    {"indptr": np.zeros(5, np.int64)}, {"indptr": np.full(111, 0.5)},
    {"data": np.full(110, "x")}, {"data": np.zeros(3)}, {"data": None},
]  # fmt: skip


def sound_model(data: model_file.BodyModelData) -> bool:
    floats = [data.v_template, data.weights, data.j_regressor, data.shapedirs, data.exprdirs,
              data.hand_components_left, data.hand_mean_left, data.landmark_bary]  # fmt: skip
    indices = [(data.faces, data.num_vertices), (data.vertex_keypoint_ids, data.num_vertices),
               (data.landmark_faces, len(data.faces))]  # fmt: skip
    if data.contour_faces is not None:
        indices.append((data.contour_faces, len(data.faces)))
    return (
        all(np.isfinite(a).all() for a in floats)
        and all(0 <= index.min() and index.max() < count for index, count in indices)
        and data.weights.shape == (data.num_vertices, data.num_joints)
    )


def damaged_bytes(path: Path, rng: random.Random) -> str:
    """Truncate the file or flip a few of its bytes, in place; the kind of damage."""
    content = bytearray(path.read_bytes())
    if rng.random() < 0.4:
        path.write_bytes(content[: rng.randrange(len(content))])
        return "truncate bytes"
    for _ in range(rng.randint(1, 8)):
        content[rng.randrange(len(content))] = rng.randrange(256)
    path.write_bytes(content)
    return "flip bytes"


@pytest.mark.parametrize("suffix", [".npz", ".pkl"])
def test_damaged_model_files_give_a_model_or_one_message(tmp_path, capsys, suffix):
    tally = Tally(f"model files ({suffix})")
    rng = random.Random(35)
    refused = 0
    for case in range(90):
        path = tmp_path / f"case{case}" / f"SMPLX_NEUTRAL{suffix}"
        if case % 3 == 2:
            synthetic_model.write_model(path, **SMALL)
            kind = damaged_bytes(path, rng)
        elif suffix == ".pkl" and case % 3 == 1:
            kind = "sparse"
            synthetic_model.write_model(path, sparse_state=rng.choice(SPARSE_DAMAGE), **SMALL)
        else:
            kind, overrides = mutated_arrays(rng, suffix)
            synthetic_model.write_model(path, **{**SMALL, **overrides})
        data = read_outcome(tally, path, model_file.load_model, ModelFileError, kind)
        if data is not None:
            tally.held(sound_model(data), f"{kind}: unsound model")
        else:
            refused += 1
            if refused % CLI_SAMPLE == 1:
                refused_by_command(tally, ["model-info", str(path)], path, capsys)
    print(tally.report())
    assert tally.outcomes["refused"] >= 50 and tally.outcomes["valid"] >= 5


def test_a_pickle_naming_code_is_refused_in_every_damaged_form(tmp_path):
    """Damage never turns a refused pickle into one that runs: the bytes flipped around a
    global that names os.system still load nothing."""
    marker = tmp_path / "ran"
    evil = pickle.dumps({"v_template": _Exploit(str(marker))}, protocol=2)
    rng = random.Random(36)
    for case in range(60):
        content = bytearray(evil)
        for _ in range(rng.randint(0, 3)):
            content[rng.randrange(len(content))] = rng.randrange(256)
        path = tmp_path / f"evil{case}.pkl"
        path.write_bytes(content)
        with pytest.raises(ModelFileError):
            model_file.load_model(path)
    assert not marker.exists()
    print(f"pickles naming code: {case + 1} damaged copies, each refused with a message, none ran")


class _Exploit:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.marker}",))
