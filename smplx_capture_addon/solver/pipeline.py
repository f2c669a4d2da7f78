"""Photo (or keypoint file) in, result file content out: what the CLI and the Blender
worker call. Detection, model loading, fitting and the result's assembly; no Blender.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ..body_model.model_file import load_model
from ..body_model.names import (
    KEYPOINT_NAMES,
    KEYPOINT_NAMES_WITH_CONTOUR,
    LEFT_HAND_JOINTS,
    RIGHT_HAND_JOINTS,
)
from ..errors import Cancelled, CaptureError
from ..result_format import Camera, FitResult, ImageInfo, ModelIdentity, PersonFit, Stage
from . import camera
from .fitting import FitError, FitOptions

__all__ = ["fit_photo", "resolve_device"]

Progress = Callable[[str, float, str], None]
NUM_BETAS = 10
NUM_EXPRESSION = 10  # SMPL-X files; a body with named expressions (the default body) uses all
HAND_PCA = 12


def resolve_device(device: str) -> str:
    """ "auto" -> "cuda" when a GPU is usable, else "cpu"; "cuda" without one is an error."""
    import torch

    if device not in ("auto", "cpu", "cuda"):
        raise CaptureError(f"Unknown device {device!r}: use auto, cpu or cuda.")
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise CaptureError("--device cuda was asked for, but PyTorch sees no CUDA GPU here: use cpu or auto.")
    return device


def fit_photo(
    photo: str | Path | None,
    keypoints_file: str | Path | None = None,
    *,
    model: str | Path | None = None,
    gender: str = "neutral",
    device: str = "auto",
    focal_px: float | None = None,
    box: tuple[float, float, float, float] | None = None,
    all_people: bool = False,
    vposer: str | Path | None = None,
    gmm: str | Path | None = None,
    progress: Progress | None = None,
    cancel: Callable[[], bool] | None = None,
) -> FitResult:
    """Fit the body model to the person in `photo` (or to everyone, `all_people`).

    Keypoints come from `keypoints_file` when given (any format `keypoints.formats`
    reads; `photo` then only supplies the image size and EXIF focal length when the file
    lacks them), else from the detector run on `photo`. `box` picks the person. The focal
    length is `focal_px`, else the photo's EXIF, else the default field of view
    (`camera.DEFAULT_FOCAL_35MM`). `progress(stage, fraction, message)` is called along
    the way; `cancel()` is polled and True raises `errors.Cancelled`. `vposer` (a VPoser
    v1 or v2 checkpoint) or `gmm` (SMPLify's GMM pickle), the user's licensed files,
    replace the L2 body pose prior when given.
    Raises CaptureError subclasses with messages for the user.
    """
    if photo is None and keypoints_file is None:
        raise CaptureError("Nothing to fit: give a photo or a keypoint file.")

    def check_cancel() -> None:
        if cancel is not None and cancel():
            raise Cancelled("The fit was cancelled.")

    def report(stage: str, fraction: float, message: str) -> None:
        if progress is not None:
            progress(stage, fraction, message)

    stages: list[Stage] = []
    started = time.perf_counter()
    report("detect", 0.0, "reading keypoints" if keypoints_file else "detecting people")
    detections, image_focal = _detections(photo, keypoints_file, box, all_people)
    stages.append(
        Stage("detect" if keypoints_file is None else "read-keypoints", time.perf_counter() - started)
    )
    check_cancel()
    if detections.image_size is None:
        raise FitError(
            f"{keypoints_file}: the keypoint file does not give the image size; give the photo too "
            "(--image PHOTO)."
        )
    width, height = (int(v) for v in detections.image_size)
    people = _choose_people(detections.people, box, all_people)

    import torch

    from ..body_model.model import BodyModel
    from ..keypoints.people import body_keypoints
    from .fitting import fit_keypoints

    started = time.perf_counter()
    report("load-model", 0.0, "loading the body model")
    data = load_model(model, gender)
    device = resolve_device(device)
    num_expression = data.num_expression if data.expression_names else NUM_EXPRESSION
    body = BodyModel(data, num_betas=NUM_BETAS, num_expression=num_expression, hand_pca=HAND_PCA,
                     face_contour=data.has_face_contour).to(device)  # fmt: skip
    stages.append(Stage("load-model", time.perf_counter() - started))
    check_cancel()

    if focal_px is not None:
        if not (focal_px > 0 and np.isfinite(focal_px)):
            raise FitError(f"The focal length must be a positive number of pixels, not {focal_px}.")
        focal, source = float(focal_px), "user"
    elif image_focal is not None:
        focal, source = float(image_focal), "exif"
    else:
        focal, source = camera.default_focal(width, height), "default-fov"

    keypoints = np.stack([body_keypoints(person) for person in people])
    count = len(people)
    options, prior_name = _pose_prior_options(vposer, gmm, device)

    fit = fit_keypoints(
        body,
        torch.as_tensor(keypoints, dtype=torch.float32),
        torch.full((count,), focal),
        torch.tensor([[width, height]] * count, dtype=torch.float32),
        options,
        progress=report,
        cancel=cancel,
    )
    stages.extend(Stage(name, seconds) for name, seconds in fit.stage_seconds)
    names = KEYPOINT_NAMES_WITH_CONTOUR if body.face_contour else KEYPOINT_NAMES
    used = keypoints[:, : len(names)]
    residuals = fit.projected.cpu().numpy() - used[..., :2]
    fits = []
    for index, person in enumerate(people):
        params = {k: v[index].cpu().numpy().astype(float).tolist() for k, v in fit.params.items()}
        pose = fit.full_pose[index].cpu().numpy().astype(float)
        fits.append(PersonFit(
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
            box=[float(v) for v in person.box] if person.box is not None else None,
            residuals_px=[[round(float(dx), 3), round(float(dy), 3)] if used[index, k, 2] > 0 else None
                          for k, (dx, dy) in enumerate(residuals[index])],
            loss_per_stage=[float(v) for v in fit.loss_per_stage[index].cpu()],
            converged=bool(fit.converged[index]),
        ))  # fmt: skip
    return FitResult(
        model=ModelIdentity(
            kind=data.kind,
            file=Path(data.path).name,
            path=str(data.path),
            sha256=data.sha256,
            gender=data.gender,
        ),
        image=ImageInfo(
            path=str(photo) if photo is not None else detections.image_path, width=width, height=height
        ),
        camera=Camera(focal_length_px=focal, principal_point_px=[width / 2, height / 2], source=source),
        people=fits,
        keypoint_names=list(names),
        stages=stages,
        device=device,
        solver={
            "method": "SMPLify-X, staged, batched L-BFGS (Armijo line search per person)",
            "stages": ["camera", *(stage.name for stage in options.stages)],
            "pose_prior": f"{prior_name} + elbow/knee bending + joint limits",
            "collision": "capsule proxy",
            "num_betas": body.num_betas,
            "num_expression": body.num_expression,
            "hand_pca": HAND_PCA,
            "evaluations": fit.evaluations,
            # bits 0-1: orientation (1 turned around, 2 tilt mirrored); bits 2+: limb variants (see BatchFit)
            "hypothesis": [int(v) for v in fit.hypothesis.cpu()],
            "keypoints": str(keypoints_file) if keypoints_file is not None else detections.detector,
        },
    )


def _pose_prior_options(
    vposer: str | Path | None, gmm: str | Path | None, device: str
) -> tuple[FitOptions, str]:
    """The fit's options with the user's pose prior, and its name for the result."""
    from .learned_priors import load_gmm, load_vposer

    if vposer is not None and gmm is not None:
        raise CaptureError("Give one pose prior, VPoser or GMM, not both.")
    if vposer is not None:
        decoder = load_vposer(vposer, device)
        return FitOptions(vposer=decoder), f"VPoser {decoder.version} ({Path(vposer).name})"
    if gmm is not None:
        return FitOptions(gmm=load_gmm(gmm, device)), f"GMM ({Path(gmm).name})"
    return FitOptions(), "L2 about a relaxed pose"


def _detections(photo, keypoints_file, box, all_people):
    """(Detections, EXIF focal in pixels or None)."""
    from ..keypoints.images import load_image

    if keypoints_file is None:
        from ..keypoints.detect import Detector, detect

        image = load_image(photo)
        with Detector() as detector:
            return detect(image, detector, box=box, all_people=all_people), image.focal_length_px
    from ..keypoints.formats import read_keypoints

    image = load_image(photo) if photo is not None else None
    detections = read_keypoints(keypoints_file, image_size=image.original_size if image else None)
    if (
        image is not None
        and detections.image_size is not None
        and tuple(detections.image_size) != tuple(image.original_size)
    ):
        raise FitError(
            f"{keypoints_file} was made for a {detections.image_size[0]}x{detections.image_size[1]} image, "
            f"but {photo} is {image.original_size[0]}x{image.original_size[1]}: give the photo the "
            "keypoints belong to."
        )
    focal = detections.focal_length_px or (image.focal_length_px if image else None)
    return detections, focal


def _choose_people(people: list, box, all_people: bool) -> list:
    """Everyone, the person best matching `box`, or the first (most prominent) person."""
    if not people:
        raise FitError("The keypoint input holds no person.")
    if all_people:
        return list(people)
    if box is None or len(people) == 1:
        return [people[0]]

    def overlap(person) -> float:
        if person.box is None:
            return 0.0
        x0, y0 = max(box[0], person.box[0]), max(box[1], person.box[1])
        x1, y1 = min(box[2], person.box[2]), min(box[3], person.box[3])
        return max(0.0, x1 - x0) * max(0.0, y1 - y0)

    return [max(people, key=overlap)]
