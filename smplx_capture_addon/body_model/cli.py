"""`model-info PATH`: what a body model file holds."""

from __future__ import annotations

import argparse
import json

HELP = "print what a body model file holds (kind, sizes, gender, correctives, face contour)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "path", help='model file, SMPL-X download folder, or "default" for the open default body'
    )
    parser.add_argument("--gender", default="neutral", choices=("neutral", "male", "female"),
                        help="which file to pick when PATH is a folder")  # fmt: skip
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def run(args: argparse.Namespace) -> int:
    from .model_file import load_model

    info = load_model(args.path, args.gender).summary()
    if args.json:
        print(json.dumps(info))
        return 0
    labels = {
        "path": "file",
        "kind": "kind",
        "gender": "gender",
        "vertices": "vertices",
        "faces": "faces",
        "joints": "joints",
        "shape_directions": "shape directions",
        "expression_directions": "expression directions",
        "pose_correctives": "pose correctives",
        "face_contour": "face-contour embedding",
        "sha256": "sha256",
    }
    for key, label in labels.items():
        value = info[key]
        shown = ("present" if value else "absent") if isinstance(value, bool) else value
        print(f"{label + ':':24} {shown}")
    return 0
