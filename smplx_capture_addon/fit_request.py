"""One fit request: what to fit and how, from the panel or the command line to the solver.

A `FitRequest` names the photo (or a keypoint file and its photo), the body model, the
gender, the device, a known focal length, the person to fit (one `PersonChoice`), whether
to draw the keypoints found, the user's pose prior files and, for a re-fit that keeps an
artist's edits, the fit to start from (`start`) and the joints to hold (`fixed_joints`).
It is checked when it is made: a bad or contradicting value raises a CaptureError that
says what to give instead.

Its two outside forms are defined here and nowhere else:
- JSON (`to_json` / `from_json`): the fields by name, the person as
  {"kind": "first" | "number" | "box" | "everyone", "number": N | null, "box": [4] | null},
  `start` a path or null, `fixed_joints` a list of joint names;
- command-line arguments (`add_arguments` adds them to a parser, `from_arguments` reads
  the parsed namespace, `to_arguments` writes them): the `fit` and `worker` commands
  take the same ones, and Blender starts the worker with those of its request.

Only the standard library (and the package's table of joint names): Blender's process
makes requests, the worker and the solver read them.
"""

from __future__ import annotations

import argparse
import json
import math
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from .body_model.names import JOINT_NAMES
from .errors import CaptureError

GENDERS = ("neutral", "male", "female")
DEVICES = ("auto", "cpu", "cuda")
KEYPOINT_SUFFIXES = (".json",)  # an input with one of these is a keypoint file, else a photo

FIRST, NUMBER, BOX, EVERYONE = "first", "number", "box", "everyone"
PERSON_KINDS = (FIRST, NUMBER, BOX, EVERYONE)

Box = tuple[float, float, float, float]


@dataclass(frozen=True)
class PersonChoice:
    """Who is fitted: the most prominent person (FIRST), the `number`-th found (NUMBER,
    1 = the most prominent), the person best overlapping `box` (BOX: x0, y0, x1, y1 in
    photo pixels), or everyone (EVERYONE)."""

    kind: str = FIRST
    number: int | None = None
    box: Box | None = None

    def __post_init__(self) -> None:
        if self.kind not in PERSON_KINDS:
            raise CaptureError(f"Unknown person choice {self.kind!r}: use one of {', '.join(PERSON_KINDS)}.")
        if (self.kind != NUMBER and self.number is not None) or (self.kind != BOX and self.box is not None):
            raise CaptureError(
                f"The person choice is {self.kind!r}, but a number ({self.number!r}) or a box ({self.box!r}) "
                "came with it: a number goes only with 'number', a box only with 'box'."
            )
        if self.kind == NUMBER and (type(self.number) is not int or self.number < 1):
            raise CaptureError(
                f"The person number must be a whole number from 1 (the most prominent person), "
                f"not {self.number!r}."
            )
        if self.kind == BOX:
            object.__setattr__(self, "box", _checked_box(self.box))

    @classmethod
    def from_dict(cls, raw: object) -> PersonChoice:
        check_keys(raw, [f.name for f in fields(cls)], "person choice")
        return cls(**raw)


def _checked_box(box: object) -> Box:
    """`box` as four floats x0 < x1, y0 < y1, or a CaptureError saying how to give it."""
    try:
        values = tuple(float(v) for v in box)
    except (TypeError, ValueError):
        values = ()
    valid = len(values) == 4 and all(math.isfinite(v) for v in values)
    if not (valid and values[0] < values[2] and values[1] < values[3]):
        raise CaptureError(
            f"The box {box!r} is not a box: give X0 Y0 X1 Y1 in photo pixels (left, top, right, "
            "bottom) with X0 < X1 and Y0 < Y1."
        )
    return values


@dataclass(frozen=True)
class FitRequest:
    """Everything a fit needs. `photo` is the photo to fit, or the photo of `keypoints`
    (a keypoint file to fit instead of detecting; the photo then gives the image size
    and EXIF focal length when the file lacks them, and the picture for `overlay`).
    `model` None is the open default body; `focal_px` None: EXIF, else a default field
    of view. `overlay` asks for the keypoints found, as keypoints.json and drawn over the
    photo as keypoints.png. `vposer` or `gmm`: the user's pose prior file (one at most).
    `start`: a result file whose people the fit starts from instead of its first guess,
    one per person fitted, in order (a re-fit; no search for other minima; its focal
    length unless `focal_px` is given). `fixed_joints`: names of body_model.names.JOINT_NAMES
    whose rotations stay as `start` has them (bones an artist set); they need `start`."""

    photo: str | None = None
    keypoints: str | None = None
    model: str | None = None
    gender: str = "neutral"
    device: str = "auto"
    focal_px: float | None = None
    person: PersonChoice = field(default_factory=PersonChoice)
    overlay: bool = False
    vposer: str | None = None
    gmm: str | None = None
    start: str | None = None
    fixed_joints: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for name in ("photo", "keypoints", "model", "vposer", "gmm", "start"):
            object.__setattr__(self, name, _checked_path(name, getattr(self, name)))
        if self.photo is None and self.keypoints is None:
            raise CaptureError("Nothing to fit: give a photo or a keypoint file.")
        if self.gender not in GENDERS:
            raise CaptureError(f"Unknown gender {self.gender!r}: use one of {', '.join(GENDERS)}.")
        if self.device not in DEVICES:
            raise CaptureError(f"Unknown device {self.device!r}: use one of {', '.join(DEVICES)}.")
        if self.focal_px is not None:
            object.__setattr__(self, "focal_px", _checked_focal(self.focal_px))
        if not isinstance(self.person, PersonChoice):
            raise CaptureError(f"The person to fit must be a PersonChoice, not {self.person!r}.")
        if not isinstance(self.overlay, bool):
            raise CaptureError(f"The overlay setting must be true or false, not {self.overlay!r}.")
        if self.overlay and self.photo is None:
            raise CaptureError(
                "The keypoint overlay is drawn over the photo: give the photo too (--image PHOTO)."
            )
        if self.vposer is not None and self.gmm is not None:
            raise CaptureError("Give one pose prior, VPoser or GMM, not both.")
        object.__setattr__(self, "fixed_joints", _checked_joints(self.fixed_joints))
        if self.fixed_joints and self.start is None:
            raise CaptureError(
                "Held joints keep the rotations of the fit a re-fit starts from: give that fit too "
                "(--start RESULT)."
            )
        if self.start is not None and self.vposer is not None:
            raise CaptureError(
                "A re-fit from a given fit cannot use VPoser (its unknown is VPoser's code, not the "
                "pose): leave VPoser out, or fit from scratch."
            )

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1)

    @classmethod
    def from_json(cls, text: str) -> FitRequest:
        """The request in `text` (as `to_json` writes it); a CaptureError when it is not one."""
        try:
            raw = json.loads(text)
        except json.JSONDecodeError as error:
            raise CaptureError(f"The fit request is not valid JSON ({error}).") from None
        return cls.from_dict(raw)

    @classmethod
    def from_dict(cls, raw: object) -> FitRequest:
        """The request in `raw`, the JSON form already parsed (a serving worker's requests
        carry it inside their own line); a CaptureError when it is not one."""
        check_keys(raw, [f.name for f in fields(cls)], "fit request")
        return cls(**{**raw, "person": PersonChoice.from_dict(raw.get("person", {}))})

    def to_arguments(self) -> list[str]:
        """The command-line arguments that `add_arguments` reads back as this request."""
        args = [self.photo] if self.keypoints is None else [self.keypoints]
        if self.keypoints is not None and self.photo is not None:
            args += ["--image", self.photo]
        if self.model is not None:
            args += ["--model", self.model]
        args += ["--gender", self.gender, "--device", self.device]
        if self.focal_px is not None:
            args += ["--focal", repr(self.focal_px)]  # repr: the float back exactly
        if self.person.kind == NUMBER:
            args += ["--person", str(self.person.number)]
        elif self.person.kind == BOX:
            args += ["--box", *(repr(v) for v in self.person.box)]
        elif self.person.kind == EVERYONE:
            args.append("--all-people")
        if self.overlay:
            args.append("--overlay")
        for name in ("vposer", "gmm", "start"):
            if getattr(self, name) is not None:
                args += [f"--{name}", getattr(self, name)]
        if self.fixed_joints:
            args += ["--fixed-joints", *self.fixed_joints]
        return args


def _checked_path(name: str, value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str | os.PathLike) or not os.fspath(value):
        raise CaptureError(f"The {name} must be the path of a file or folder, not {value!r}.")
    return os.fspath(value)


def _checked_joints(names: object) -> tuple[str, ...]:
    """`names` as a tuple of joint names, each once, or a CaptureError naming the bad one."""
    if isinstance(names, str) or not isinstance(names, list | tuple):
        raise CaptureError(f"The held joints must be a list of joint names, not {names!r}.")
    for name in names:
        if name not in JOINT_NAMES:
            raise CaptureError(
                f"Unknown joint {name!r} to hold: use the SMPL-X bone names (pelvis, left_hip, ..., "
                "right_thumb3)."
            )
    return tuple(dict.fromkeys(names))


def _checked_focal(value: object) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not (math.isfinite(value) and value > 0)
    ):
        raise CaptureError(f"The focal length must be a positive number of pixels, not {value!r}.")
    return float(value)


def check_keys(raw: object, known: list[str], what: str) -> None:
    """A CaptureError unless `raw` is a JSON object whose keys are all in `known`; `what` names it."""
    if not isinstance(raw, dict):
        raise CaptureError(f"The {what} must be a JSON object, not {raw!r}.")
    unknown = sorted(set(raw) - set(known))
    if unknown:
        raise CaptureError(
            f"Unknown field(s) in the {what}: {', '.join(unknown)} (known: {', '.join(known)})."
        )


def add_arguments(parser: argparse.ArgumentParser, input_required: bool = True) -> None:
    """The request's command-line arguments (the `fit` and `worker` commands share them).
    Without `input_required` the photo or keypoint file may be left out (`worker --serve`
    takes its requests on its standard input)."""
    parser.add_argument(
        "input",
        nargs=None if input_required else "?",
        metavar="PHOTO_OR_KEYPOINTS",
        help="a photo (detect, then fit) or a keypoint file (.json: project, OpenPose or COCO-WholeBody)",
    )
    parser.add_argument("--image", metavar="PHOTO", help="the photo of a keypoint file (size, EXIF, overlay)")
    parser.add_argument(
        "--model", metavar="PATH", help='SMPL-X model file or folder (default, or "default": the open body)'
    )
    parser.add_argument("--gender", default="neutral", choices=GENDERS)
    parser.add_argument("--device", default="auto", choices=DEVICES)
    parser.add_argument(
        "--focal", type=float, metavar="PX", help="known focal length in pixels (default: EXIF, else a guess)"
    )
    parser.add_argument(
        "--person", type=int, metavar="N", help="fit the N-th person found (1 = the most prominent)"
    )
    parser.add_argument(
        "--box",
        nargs=4,
        type=float,
        metavar=("X0", "Y0", "X1", "Y1"),
        help="fit the person in this box (pixels)",
    )
    parser.add_argument("--all-people", action="store_true", help="fit everyone found, in one batch")
    parser.add_argument(
        "--overlay",
        action="store_true",
        help="also write the keypoints found (keypoints.json) and drawn over the photo (keypoints.png)",
    )
    parser.add_argument("--vposer", metavar="PATH", help="your VPoser v1 or v2 checkpoint (folder or file)")
    parser.add_argument("--gmm", metavar="PATH", help="your SMPLify GMM pose prior (gmm_08.pkl)")
    parser.add_argument(
        "--start", metavar="RESULT", help="re-fit: start from the people of this result file (one per person)"
    )
    parser.add_argument(
        "--fixed-joints",
        nargs="+",
        default=[],
        metavar="JOINT",
        help="re-fit: joints (SMPL-X bone names) that keep the rotations --start gives them",
    )


def from_arguments(args: argparse.Namespace) -> FitRequest:
    """The request that arguments added by `add_arguments` describe."""
    is_keypoints = Path(args.input).suffix.lower() in KEYPOINT_SUFFIXES
    if args.image is not None and not is_keypoints:
        raise CaptureError(
            f"--image names the photo of a keypoint file, but {args.input} is a photo: leave --image out."
        )
    return FitRequest(
        photo=args.image if is_keypoints else args.input,
        keypoints=args.input if is_keypoints else None,
        model=args.model,
        gender=args.gender,
        device=args.device,
        focal_px=args.focal,
        person=_person_from_arguments(args.person, args.box, args.all_people),
        overlay=args.overlay,
        vposer=args.vposer,
        gmm=args.gmm,
        start=args.start,
        fixed_joints=tuple(args.fixed_joints),
    )


def _person_from_arguments(number: int | None, box: list[float] | None, everyone: bool) -> PersonChoice:
    present = {NUMBER: number is not None, BOX: box is not None, EVERYONE: everyone}
    chosen = [kind for kind, given in present.items() if given]
    if len(chosen) > 1:
        raise CaptureError(
            "Choose the person one way: --person N, --box X0 Y0 X1 Y1 or --all-people, not several."
        )
    if not chosen:
        return PersonChoice()
    kind = chosen[0]
    return PersonChoice(kind, number=number if kind == NUMBER else None, box=box if kind == BOX else None)
