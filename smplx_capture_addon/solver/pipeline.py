"""A fit request in, the result file's content out: what the `fit` command and the
worker call. Its steps, each a function: read or detect the keypoints (and draw them when
asked), choose the people, load the body model, choose the focal length, fit, assemble
the result. No Blender.
"""

from __future__ import annotations

import os
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from ..body_model.evidence import inferred_joints
from ..body_model.model import BodyModel
from ..body_model.model_file import BodyModelData, file_sha256, load_model, resolve_model_path
from ..body_model.names import (
    KEYPOINT_NAMES,
    KEYPOINT_NAMES_WITH_CONTOUR,
    LEFT_HAND_JOINTS,
    RIGHT_HAND_JOINTS,
)
from ..errors import Cancelled, CaptureError
from ..fit_request import BOX, EVERYONE, NUMBER, FitRequest, PersonChoice
from ..keypoints.images import LoadedImage, load_image
from ..keypoints.people import Detections, Person, body_depths, body_keypoints
from ..result_format import Camera, FitResult, ImageInfo, ModelIdentity, PersonFit, Stage, read_result
from . import camera
from .errors import FitError
from .fit_result import BatchFit
from .inputs import outside_image
from .keypoint_fit import fit_keypoints
from .options import FitOptions, warm_start_options
from .start import start_from_result

if TYPE_CHECKING:
    from ..keypoints.detect import Detector

__all__ = [
    "KEYPOINTS_FILE", "KEYPOINTS_PICTURE", "WarmModels", "choose_people", "fit_photo", "resolve_device",
]  # fmt: skip

Progress = Callable[[str, float, str], None]
Cancel = Callable[[], bool]
KEYPOINTS_FILE, KEYPOINTS_PICTURE = "keypoints.json", "keypoints.png"  # written with `request.overlay`
NUM_BETAS = 10
NUM_EXPRESSION = 10  # SMPL-X files; a body with named expressions (the default body) uses all
HAND_PCA = 12
MAX_KEPT_BODIES = 2  # body models a serving worker keeps (an SMPL-X one holds a few hundred MB)


def resolve_device(device: str) -> str:
    """ "auto" -> "cuda" when a GPU is usable, else "cpu"; "cuda" without one is an error."""
    if device not in ("auto", "cpu", "cuda"):
        raise CaptureError(f"Unknown device {device!r}: use auto, cpu or cuda.")
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise CaptureError("--device cuda was asked for, but PyTorch sees no CUDA GPU here: use cpu or auto.")
    return device


@dataclass
class FoundKeypoints:
    """What the keypoint step found: the detections, the photo's size in pixels, the
    focal length its EXIF (or the keypoint file) gives, and the photo read (None for a
    keypoint file without one)."""

    detections: Detections
    width: int
    height: int
    exif_focal_px: float | None
    image: LoadedImage | None


class WarmModels:
    """What a serving worker keeps loaded from one fit to the next: the MediaPipe detector
    (opened at its first use) and the body models built last, at most MAX_KEPT_BODIES, each
    under its file's checksum, the gender and the device. `close()` frees them."""

    def __init__(self) -> None:
        self._detector: Detector | None = None
        self._bodies: OrderedDict[tuple[str, str, str], tuple[BodyModelData, BodyModel]] = OrderedDict()
        self._checksums: dict[tuple, str] = {}

    def detector(self) -> Detector:
        if self._detector is None:
            from ..keypoints.detect import Detector

            self._detector = Detector()
        return self._detector

    def body(self, request: FitRequest) -> tuple[BodyModelData, BodyModel, str]:
        """`load_body(request)`, built once while the file, gender and device stay the same."""
        device = resolve_device(request.device)
        key = (self._checksum(resolve_model_path(request.model, request.gender)), request.gender, device)
        if key in self._bodies:
            self._bodies.move_to_end(key)
            return *self._bodies[key], device
        data, body, device = load_body(request)
        self._bodies[key] = (data, body)
        while len(self._bodies) > MAX_KEPT_BODIES:
            self._bodies.popitem(last=False)  # the least recently used
        return data, body, device

    def prepare(self, request: FitRequest) -> None:
        """Open the detector (unless `request` reads a keypoint file) and build the body
        model `request` names, before its fit starts."""
        if request.keypoints is None:
            self.detector()
        self.body(request)

    def _checksum(self, path: Path) -> str:
        """The file's sha256, hashed again only when its size, time or inode changed
        (an SMPL-X file is hundreds of MB)."""
        stat = path.stat()
        identity = (str(path.resolve()), stat.st_size, stat.st_mtime_ns, stat.st_ino)
        if identity not in self._checksums:
            self._checksums[identity] = file_sha256(path)
        return self._checksums[identity]

    def close(self) -> None:
        if self._detector is not None:
            self._detector.close()
            self._detector = None
        self._bodies.clear()


def fit_photo(
    request: FitRequest,
    progress: Progress | None = None,
    cancel: Cancel | None = None,
    out_dir: str | Path | None = None,
    warm: WarmModels | None = None,
) -> FitResult:
    """Fit the body model to the person (or people) `request` chooses.

    Keypoints come from `request.keypoints` when given (any format `keypoints.formats`
    reads), else from the detector run on the photo. With `request.overlay` the keypoints
    found are written into `out_dir` as KEYPOINTS_FILE and drawn over the photo as
    KEYPOINTS_PICTURE, once the fit has succeeded (a failed or cancelled fit writes
    nothing). `progress(stage, fraction, message)` is called along the way; `cancel()` is
    polled and True raises `errors.Cancelled`. With `warm`, the detector and the body
    model come from it (and stay there for the next fit) instead of being loaded here.
    With `request.start` (a re-fit) the fit starts from that result's people, holding
    `request.fixed_joints`, and searches no other minima.
    Raises CaptureError subclasses with messages for the user.
    """
    if request.overlay and out_dir is None:
        raise ValueError("fit_photo: a request with `overlay` needs `out_dir`, the folder to draw into.")

    def report(stage: str, fraction: float, message: str) -> None:
        if progress is not None:
            progress(stage, fraction, message)

    stages: list[Stage] = []
    started = time.perf_counter()
    report("detect", 0.0, "reading keypoints" if request.keypoints else "detecting people")
    found = find_keypoints(request, warm)
    stages.append(Stage("read-keypoints" if request.keypoints else "detect", time.perf_counter() - started))
    _check_cancel(cancel)
    people = choose_people(found.detections.people, request.person)
    numbered = request.keypoints is not None  # a keypoint file's order numbers its people
    numbers = person_numbers(found.detections, people, numbered)

    started = time.perf_counter()
    report("load-model", 0.0, "loading the body model")
    data, body, device = load_body(request) if warm is None else warm.body(request)
    stages.append(Stage("load-model", time.perf_counter() - started))
    _check_cancel(cancel)

    options, prior_name = _pose_prior_options(request.vposer, request.gmm, device)
    start, kept_camera, boxes = None, None, found_boxes(found.detections, numbered)
    if request.start is not None:
        start, earlier = starting_fit(request.start, body, len(people))
        options = warm_start_options(options)
        # A re-fit is of the same people: their numbers and who else the photo showed stay.
        kept_camera, numbers, boxes = earlier.camera, [p.number for p in earlier.people], earlier.found_boxes
    focal, source = choose_focal(request.focal_px, found, kept_camera)
    # People a second look saw facing the other way are fitted both ways (not in a re-fit,
    # which keeps its people as they were).
    facings = [(k, p.other_facing) for k, p in enumerate(people) if p.other_facing and start is None]
    tried = people + [person for _, person in facings]
    keypoints = np.stack([body_keypoints(person) for person in tried])
    depths = np.stack([body_depths(person) for person in tried])
    fit = fit_people(body, keypoints, focal, (found.width, found.height), options, report, cancel,
                     start, request.fixed_joints, depths)  # fmt: skip
    if facings:
        kept = better_facings(fit.loss_per_stage[:, -1].cpu().numpy(), keypoints, [k for k, _ in facings])
        fit, keypoints = fit.take(kept), keypoints[kept]
        people = _keep_facings(found.detections, people, [tried[k] for k in kept])
    stages.extend(Stage(name, seconds) for name, seconds in fit.stage_seconds)
    names = KEYPOINT_NAMES_WITH_CONTOUR if body.face_contour else KEYPOINT_NAMES
    fitted = person_fits(people, keypoints[:, : len(names)], fit, data, names, (found.width, found.height),
                         options.outside_margin)  # fmt: skip
    if request.overlay:
        _draw_keypoints(found, Path(out_dir))
    return FitResult(
        model=model_identity(data),
        image=ImageInfo(path=photo_path(request, found.detections), width=found.width, height=found.height),
        camera=Camera(
            focal_length_px=focal, principal_point_px=[found.width / 2, found.height / 2], source=source
        ),
        people=[replace(person, number=number) for person, number in zip(fitted, numbers, strict=True)],
        keypoint_names=list(names),
        stages=stages,
        device=device,
        solver=solver_settings(request, found, body, options, prior_name, fit),
        found_boxes=[list(box) for box in boxes],
    )


def better_facings(losses: np.ndarray, keypoints: np.ndarray, facing_of: list[int]) -> list[int]:
    """Per person, the row of the batch whose fit to keep: rows 0..P-1 are the people as
    found, row P + j the other facing of person facing_of[j]. The lower final loss per
    keypoint seen wins (the two readings may see different hands and faces).
    losses (P + F,); keypoints (P + F, K, 3)."""
    per_point = losses / np.maximum((keypoints[..., 2] > 0).sum(-1), 1)
    kept = list(range(len(losses) - len(facing_of)))
    for row, person in enumerate(facing_of, start=len(kept)):
        if per_point[row] < per_point[person]:
            kept[person] = row
    return kept


def _keep_facings(detections: Detections, people: list[Person], chosen: list[Person]) -> list[Person]:
    """`chosen` in place of `people` among the detections too (the keypoint file and
    picture show what was fitted)."""
    for person, kept in zip(people, chosen, strict=True):
        if kept is not person:
            detections.people[detections.people.index(person)] = kept
    return chosen


def _check_cancel(cancel: Cancel | None) -> None:
    if cancel is not None and cancel():
        raise Cancelled("The fit was cancelled.")


def find_keypoints(request: FitRequest, warm: WarmModels | None = None) -> FoundKeypoints:
    """The request's keypoints: read from its keypoint file, or detected in its photo
    (everyone when the choice of person needs them all, inside the box for a box) by
    `warm`'s detector, or else by one opened for this photo."""
    image = load_image(request.photo) if request.photo is not None else None
    if request.keypoints is None:
        detections, focal = _detect(image, request.person, warm), image.focal_length_px
    else:
        detections = _read_keypoint_file(request.keypoints, image)
        focal = detections.focal_length_px or (image.focal_length_px if image else None)
    if detections.image_size is None:
        raise FitError(
            f"{request.keypoints}: the keypoint file does not give the image size; give the photo too "
            "(--image PHOTO)."
        )
    width, height = (int(v) for v in detections.image_size)
    return FoundKeypoints(detections, width, height, focal, image)


def photo_path(request: FitRequest, detections: Detections) -> str:
    """The photo the result names, absolute (a result is read from other folders later):
    the request's, else the one a keypoint file names, beside that file when relative."""
    if request.photo is not None:
        return os.path.abspath(request.photo)
    named = detections.image_path
    if not named or Path(named) == Path(request.keypoints):  # OpenPose files name no photo
        return ""
    return os.path.abspath(Path(request.keypoints).parent / named)


def _detect(image: LoadedImage, person: PersonChoice, warm: WarmModels | None) -> Detections:
    from ..keypoints.detect import Detector, detect

    all_people = person.kind in (NUMBER, EVERYONE)
    if warm is not None:
        return detect(image, warm.detector(), box=person.box, all_people=all_people)
    with Detector() as detector:
        return detect(image, detector, box=person.box, all_people=all_people)


def _read_keypoint_file(path: str, image: LoadedImage | None) -> Detections:
    """A keypoint file, checked against its photo's size when the photo is given."""
    from ..keypoints.formats import read_keypoints

    detections = read_keypoints(path, image_size=image.original_size if image else None)
    if (
        image is not None
        and detections.image_size is not None
        and (tuple(detections.image_size) != tuple(image.original_size))
    ):
        raise FitError(
            f"{path} was made for a {detections.image_size[0]}x{detections.image_size[1]} image, "
            f"but {image.path} is {image.original_size[0]}x{image.original_size[1]}: give the photo the "
            "keypoints belong to."
        )
    return detections


def _draw_keypoints(found: FoundKeypoints, out_dir: Path) -> None:
    from ..keypoints.formats import write_keypoints
    from ..keypoints.overlay import write_overlay

    write_keypoints(out_dir / KEYPOINTS_FILE, found.detections)
    write_overlay(out_dir / KEYPOINTS_PICTURE, found.image.pixels, found.detections)


def choose_people(people: list[Person], choice: PersonChoice) -> list[Person]:
    """The people `choice` picks from those found (most prominent first, see
    keypoints.detect.prominence; a keypoint file's in its order): the N-th, the one best
    overlapping the box, everyone, or else the first, person number 1."""
    if not people:
        raise FitError("The keypoint input holds no person.")
    if choice.kind == EVERYONE:
        return list(people)
    if choice.kind == NUMBER:
        if choice.number > len(people):
            found = "1 person was" if len(people) == 1 else f"{len(people)} people were"
            raise FitError(
                f"Person {choice.number} was asked for, but {found} found in the photo: choose a number "
                f"from 1 to {len(people)}."
            )
        return [people[choice.number - 1]]
    if choice.kind == BOX:
        return [max(people, key=lambda person: _overlap(person.box, choice.box))]
    return [people[0]]


def found_boxes(detections: Detections, numbered: bool) -> list[Sequence[float]]:
    """Everyone's box in person-number order: the detector's search of the whole photo,
    or a keypoint file's people (`numbered`: their order is the numbering); [] for a
    detection inside a given box, which looked for no one else."""
    if detections.found_boxes:
        return list(detections.found_boxes)
    return [person.box for person in detections.people] if numbered else []


def person_numbers(detections: Detections, chosen: list[Person], numbered: bool) -> list[int | None]:
    """Each chosen person's number among everyone found (1 = the most prominent)."""
    if not (numbered or detections.found_boxes):
        return [None] * len(chosen)
    return [detections.people.index(person) + 1 for person in chosen]


def _overlap(a: Sequence[float] | None, b: Sequence[float] | None) -> float:
    """Area shared by two boxes (x0, y0, x1, y1); 0 when one is missing."""
    if a is None or b is None:
        return 0.0
    width = min(a[2], b[2]) - max(a[0], b[0])
    height = min(a[3], b[3]) - max(a[1], b[1])
    return max(0.0, width) * max(0.0, height)


def load_body(request: FitRequest) -> tuple[BodyModelData, BodyModel, str]:
    """The model file's data, the PyTorch body and the device it is on ("cpu" or "cuda")."""
    data = load_model(request.model, request.gender)
    device = resolve_device(request.device)
    num_expression = data.num_expression if data.expression_names else NUM_EXPRESSION
    body = BodyModel(data, num_betas=NUM_BETAS, num_expression=num_expression, hand_pca=HAND_PCA,
                     face_contour=data.has_face_contour).to(device)  # fmt: skip
    return data, body, device


def choose_focal(
    focal_px: float | None, found: FoundKeypoints, kept: Camera | None = None
) -> tuple[float, str]:
    """The focal length in pixels and where it came from: the user's, else the `kept`
    camera's (a re-fit's), else the photo's EXIF, else the default field of view
    (`camera.DEFAULT_FOCAL_35MM`)."""
    if focal_px is not None:
        return float(focal_px), "user"
    if kept is not None:
        return kept.focal_length_px, kept.source
    if found.exif_focal_px is not None:
        return float(found.exif_focal_px), "exif"
    return camera.default_focal(found.width, found.height), "default-fov"


def starting_fit(path: str, body: BodyModel, people: int) -> tuple[dict[str, torch.Tensor], FitResult]:
    """The parameters a re-fit starts from (one person of the result at `path` per person
    fitted, in order) and that result, whose camera's focal length the re-fit keeps."""
    result = read_result(path)
    if len(result.people) != people:
        raise FitError(
            f"The fit to start from ({path}) holds {len(result.people)} people, but {people} are to be "
            "fitted: choose as many people as it holds."
        )
    return start_from_result(body, result.people), result


def fit_people(
    body: BodyModel,
    keypoints: np.ndarray,
    focal: float,
    size: tuple[int, int],
    options: FitOptions,
    progress: Progress,
    cancel: Cancel | None,
    start: dict[str, torch.Tensor] | None = None,
    fixed_joints: Sequence[str] = (),
    world_depths: np.ndarray | None = None,
) -> BatchFit:
    """Fit every person's (K, 3) keypoints as one batch, all seen by the same camera (from
    `start` when given, holding `fixed_joints`), with their (K,) world depths when given
    (keypoints.people.body_depths)."""
    count = len(keypoints)
    return fit_keypoints(
        body,
        torch.as_tensor(keypoints, dtype=torch.float32),
        torch.full((count,), focal),
        torch.tensor([size] * count, dtype=torch.float32),
        options,
        progress=progress,
        cancel=cancel,
        start=start,
        fixed_joints=fixed_joints,
        world_depths=None if world_depths is None else torch.as_tensor(world_depths, dtype=torch.float32),
    )


def model_identity(data: BodyModelData) -> ModelIdentity:
    return ModelIdentity(
        kind=data.kind, file=Path(data.path).name, path=str(data.path), sha256=data.sha256, gender=data.gender
    )


def person_fits(
    people: list[Person],
    used: np.ndarray,
    fit: BatchFit,
    data: BodyModelData,
    names: Sequence[str],
    size: tuple[int, int],
    outside_margin: float,
) -> list[PersonFit]:
    """Each person's fitted parameters, residuals to the `used` (P, K, 3) keypoints of
    `names`, and the joints no keypoint seen in the `size` (width, height) photo moved
    (up to `outside_margin` beyond it, as the fit counts them)."""
    residuals = fit.projected.cpu().numpy() - used[..., :2]
    fits = []
    for index, person in enumerate(people):
        seen = used[index, :, 2] > 0
        in_photo = seen & ~outside_image(used[index, :, :2], *size, outside_margin)
        inferred = inferred_joints(data, names, in_photo)
        fits.append(_person_fit(fit, index, person.box, residuals[index], used[index], inferred))
    return fits


def _person_fit(
    fit: BatchFit,
    index: int,
    box: Sequence[float] | None,
    residuals: np.ndarray,
    used: np.ndarray,
    inferred: list[str],
) -> PersonFit:
    seen = used[:, 2] > 0
    params = {k: v[index].cpu().numpy().astype(float).tolist() for k, v in fit.params.items()}
    pose = fit.full_pose[index].cpu().numpy().astype(float)
    return PersonFit(
        betas=params["betas"],
        expression=params["expression"],
        global_orient=params["global_orient"],
        body_pose=params["body_pose"],
        jaw_pose=params["jaw_pose"],
        leye_pose=params["leye_pose"],
        reye_pose=params["reye_pose"],
        left_hand_pose=pose[LEFT_HAND_JOINTS].reshape(-1).tolist(),
        right_hand_pose=pose[RIGHT_HAND_JOINTS].reshape(-1).tolist(),
        transl=params["transl"],
        box=[float(v) for v in box] if box is not None else None,
        residuals_px=[[round(float(dx), 3), round(float(dy), 3)] if seen[k] else None
                      for k, (dx, dy) in enumerate(residuals)],
        keypoints_px=[[round(float(v), 4) for v in row] for row in used],
        loss_per_stage=[float(v) for v in fit.loss_per_stage[index].cpu()],
        converged=bool(fit.converged[index]),
        inferred_joints=inferred,
    )  # fmt: skip


def solver_settings(
    request: FitRequest,
    found: FoundKeypoints,
    body: BodyModel,
    options: FitOptions,
    prior_name: str,
    fit: BatchFit,
) -> dict:
    """The result's free-form record of how the fit was made."""
    return {
        "method": "SMPLify-X, staged, batched L-BFGS (Armijo line search per person)",
        "stages": ["camera", *(stage.name for stage in options.stages)],
        "pose_prior": f"{prior_name} + elbow/knee bending + joint limits",
        "collision": "capsule proxy",
        "num_betas": body.num_betas,
        "num_expression": body.num_expression,
        "hand_pca": HAND_PCA,
        "evaluations": fit.evaluations,
        "hypotheses": [hypothesis.as_dict() for hypothesis in fit.hypotheses],
        "keypoints": request.keypoints if request.keypoints is not None else found.detections.detector,
    }


def _pose_prior_options(vposer: str | None, gmm: str | None, device: str) -> tuple[FitOptions, str]:
    """The fit's options with the user's pose prior (the request allows one at most), and
    its name for the result."""
    from .learned_priors import load_gmm, load_vposer

    if vposer is not None:
        decoder = load_vposer(vposer, device)
        return FitOptions(vposer=decoder), f"VPoser {decoder.version} ({Path(vposer).name})"
    if gmm is not None:
        return FitOptions(gmm=load_gmm(gmm, device)), f"GMM ({Path(gmm).name})"
    return FitOptions(), "L2 about a relaxed pose"
