"""The staged SMPLify-X fit of a batch of people to their 2D keypoints: the solver's entry.

Input per person: keypoints (K, 3) = (x, y, confidence) in pixels in the order of
`names.KEYPOINT_NAMES_WITH_CONTOUR` (confidence 0 where absent), the focal length and
the image size. Everything else is a pure function of those (and of a starting fit and
the joints to hold, when given); no state survives a call. The stages are laid out in
`stages`, the alternatives they try in `hypotheses` and `variants`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np
import torch
from torch import Tensor

from ..body_model.model import BodyModel
from ..body_model.names import JOINT_NAMES, NUM_JOINTS
from . import camera, collision, priors
from .errors import FitError
from .fit_result import BatchFit
from .hypotheses import MIRRORED, TURNED, Rows, hypotheses_of
from .inputs import NORMALISED_HEIGHT, prepare_keypoints, prepare_world_depths
from .keypoint_groups import DEPTH_POINTS
from .objective import CameraObjective
from .options import FitOptions, carry_on_options, restart_options, without_world_depth
from .packing import UNFITTED, Packing
from .reprojection import TRUSTED_BODY, body_reprojection_px
from .restart import RESTART, restart_failed
from .stages import FitContext, Orient, Progress, Reporter, plan_stages, run_stages
from .start import facing, initial_parameters
from .variants import turned_about_root

ROOT = JOINT_NAMES[0]
IMAGE_AXIS = (0.0, 0.0, 1.0)  # the camera's viewing axis: a turn about it is a turn in the image plane


def fit_keypoints(
    model: BodyModel,
    keypoints: Tensor,
    focal: Tensor,
    image_size: Tensor,
    options: FitOptions | None = None,
    progress: Progress | None = None,
    cancel: Callable[[], bool] | None = None,
    *,
    start: dict[str, Tensor] | None = None,
    fixed_joints: Iterable[str] = (),
    world_depths: Tensor | None = None,
) -> BatchFit:
    """Fit every person of the batch.

    keypoints (B, K, 3) pixels and confidence, K = 127 or 144 (with the face contour);
    focal (B,) pixels; image_size (B, 2) width, height. The principal point is the image
    centre. Tensors may live on any device; the model must be on the same one.
    `start`: the parameters (B, ...) to start from instead of the first guess (an earlier
    fit's `params`, or `start.start_from_result`): a video frame's neighbour, or the pose
    an artist set; `options.warm_start_options` leaves out the search for other minima.
    `fixed_joints`: names of JOINT_NAMES whose rotations stay as they start (as `start`
    has them, else as the first guess has them): bones an artist set.
    `world_depths` (B, K) metres: the pose model's depth of each keypoint (keypoints.people.
    body_depths, NaN where it gave none), which the stages' world depth term pulls the fit's
    depths toward (see objective.StageObjective); None: no such term.
    Raises FitError for unusable input or a diverged fit, Cancelled when `cancel()`
    returns True.
    """
    options = options or FitOptions()
    keypoints = prepare_keypoints(model, keypoints, image_size, options.outside_margin)
    world = prepare_world_depths(keypoints, world_depths)
    device, dtype = model.full_template.device, model.full_template.dtype
    focal = focal.to(device=device, dtype=dtype)
    image_size = image_size.to(device=device, dtype=dtype)
    fixed_joints = tuple(fixed_joints)
    start = _checked_start(model, options, start, len(keypoints))
    reporter = Reporter(progress, cancel)
    fit = fit_from(model, keypoints, focal, image_size, options, reporter, start, fixed_joints, world=world)

    def report(stage: str, fraction: float, message: str) -> None:
        if progress is not None:  # past the first fit's end: the bar stays full
            progress(RESTART, 1.0, f"{RESTART}: {message}")

    def rows_of(values: dict[str, Tensor] | None, rows: Tensor) -> dict[str, Tensor] | None:
        return None if values is None else {name: value[rows] for name, value in values.items()}

    def world_of(rows: Tensor) -> tuple[Tensor, Tensor] | None:
        return None if world is None else (world[0][rows], world[1][rows])

    def refit(rows: Tensor, roll_offset: Tensor) -> BatchFit:
        return fit_from(model, keypoints[rows], focal[rows], image_size[rows], restart_options(options),
                        Reporter(report, cancel), rows_of(start, rows), fixed_joints,
                        roll_offset, world_of(rows))  # fmt: skip

    def carry_on(rows: Tensor, params: dict[str, Tensor]) -> BatchFit:
        return fit_from(model, keypoints[rows], focal[rows], image_size[rows], carry_on_options(options),
                        Reporter(report, cancel), params, fixed_joints, world=world_of(rows))  # fmt: skip

    off_px = body_reprojection_px(fit.projected, keypoints, image_size, TRUSTED_BODY)
    missed = off_px > options.restart_above_px
    turns = () if ROOT in fixed_joints else options.restart_turns
    fit = restart_failed(fit, missed, turns, refit, carry_on, options.choose_after)
    if progress is not None:
        progress("done", 1.0, "fit finished")
    check_plausible(fit.params, fit.keypoints)
    return fit


def _checked_start(
    model: BodyModel, options: FitOptions, start: dict[str, Tensor] | None, people: int
) -> dict[str, Tensor] | None:
    """`start` on the model's device and dtype, refused with a message when it does not
    fit the model or the batch."""
    if start is None:
        return None
    if options.vposer is not None:
        raise FitError("A fit with VPoser cannot start from given parameters: its unknown is VPoser's code.")
    device, dtype = model.full_template.device, model.full_template.dtype
    checked = {}
    for name, size in model.parameter_sizes.items():
        if name in UNFITTED:
            continue
        if name not in start:
            raise FitError(f"The starting fit has no '{name}'; give every parameter of the body model.")
        value = torch.as_tensor(start[name]).to(device=device, dtype=dtype)
        if value.shape != (people, size):
            raise FitError(f"The starting fit's '{name}' has shape {tuple(value.shape)}; this fit needs "
                           f"({people}, {size}).")  # fmt: skip
        checked[name] = value
    return checked


def fit_from(
    model: BodyModel,
    keypoints: Tensor,
    focal: Tensor,
    image_size: Tensor,
    options: FitOptions,
    reporter: Reporter,
    start: dict[str, Tensor] | None = None,
    fixed_joints: tuple[str, ...] = (),
    roll_offset: Tensor | None = None,
    world: tuple[Tensor, Tensor] | None = None,
) -> BatchFit:
    """The staged fit of every person from its first guess (or from `start`), turned in
    the image plane by `roll_offset` (B,) radians when given. keypoints (B, K, 3) with
    the confidence of points far outside the image zeroed; focal (B,); image_size (B, 2);
    `world`: the world depth term's rows (B, D) (inputs.prepare_world_depths), None: no
    such term; all on the model's device."""
    device, dtype = model.full_template.device, model.full_template.dtype
    people = keypoints.shape[0]
    if world is None:
        options = without_world_depth(options)
        none = keypoints.new_zeros(people, len(DEPTH_POINTS))
        world = (none, none)
    vposer = options.vposer.to(device=device, dtype=dtype) if options.vposer is not None else None
    packing = Packing(model, vposer)
    held = _held_columns(packing, fixed_joints, options.hold_shape, device, dtype)
    scale = NORMALISED_HEIGHT / image_size[:, 1]
    facing_away, side_view, roll = facing(
        keypoints[..., :2], keypoints[..., 2], scale, options.side_view_threshold
    )
    if roll_offset is not None:
        roll = roll + roll_offset
    turns = ROOT not in fixed_joints
    kind, person_of, first = _orientation_rows(side_view, options.hypotheses and turns, turns)
    detected, confidence = keypoints[person_of, :, :2], keypoints[person_of, :, 2]
    focal, centre, scale = focal[person_of], image_size[person_of] / 2, scale[person_of]
    if start is None:
        params = initial_parameters(model, detected, confidence, focal, centre, facing_away[person_of],
                                    roll[person_of], vposer)  # fmt: skip
        x = packing.pack(params)
    else:
        x = packing.pack({name: value[person_of] for name, value in start.items()})
        if roll_offset is not None:
            axis = torch.tensor(IMAGE_AXIS, dtype=dtype, device=device)
            x = turned_about_root(x, packing, axis, roll_offset[person_of])
    limits = tuple(t.to(device=device, dtype=dtype) for t in priors.joint_limit_table())
    size = collision.body_size(model(vertices=False).joints[0].detach())
    depth_estimate = packing.unpack(x)["transl"][:, 2].clone()
    context = FitContext(model, packing, people, held)
    camera_rows = CameraObjective.rows(
        model, packing, x, detected, confidence, depth_estimate, focal, centre, scale
    )
    fixed = {JOINT_NAMES.index(name) for name in fixed_joints}
    plan = plan_stages(context, options, camera_rows, Orient(kind, first), limits, size, fixed)
    choices = torch.zeros(len(x), len(plan.branch_points), dtype=torch.long, device=device)
    choices[:, 0] = kind
    world_depth, world_depth_weights = world[0][person_of], world[1][person_of]
    rows = Rows(x, torch.ones(len(x), dtype=torch.bool, device=device), choices, person_of, [],
                (detected, confidence, focal, centre, scale, world_depth, world_depth_weights))  # fmt: skip
    rows, seconds, evaluations = run_stages(plan.stages, rows, context, reporter)
    return _batch_fit(
        model, packing, rows, seconds, hypotheses_of(rows.choices, plan.branch_points), evaluations
    )


def _held_columns(packing: Packing, joints: tuple[str, ...], shape: bool, device: torch.device,
                  dtype: torch.dtype) -> Tensor | None:  # fmt: skip
    """(N,) 0 on the columns of `joints` (and of the betas with `shape`), 1 elsewhere;
    None when nothing is held."""
    columns = packing.fixed_columns(joints)
    if shape:
        betas = packing.block("betas")
        columns += list(range(betas.start, betas.stop))
    if not columns:
        return None
    held = torch.ones(int(packing.offsets[-1]), device=device, dtype=dtype)
    held[columns] = 0.0
    return held


def _orientation_rows(side_view: Tensor, tilt: bool, turn: bool) -> tuple[Tensor, Tensor, Tensor]:
    """The rows of the orientation hypotheses, solved in the same batch: the camera
    stage's answer (kind 0) and, with `tilt`, its tilt mirror (MIRRORED, see
    camera.tilt_mirrored) for everyone, and with `turn`, for side views (B,), those
    turned around too (TURNED). -> kind (R,) flags, person_of (R,), first (R,): the row of
    each row's kind-0 sibling, whose camera-stage result the hypothesis starts from."""
    device = side_view.device
    kinds = [(0, MIRRORED) if tilt else (0,)] * len(side_view)
    kinds = [k + tuple(h | TURNED for h in k) if side and turn else k
             for side, k in zip(side_view.tolist(), kinds, strict=True)]  # fmt: skip
    person_of = torch.tensor([p for p, k in enumerate(kinds) for _ in k], device=device)
    kind = torch.tensor([h for k in kinds for h in k], device=device)
    first = torch.tensor([0, *np.cumsum([len(k) for k in kinds])[:-1]], device=device)[person_of]
    return kind, person_of, first


def _batch_fit(model: BodyModel, packing: Packing, rows: Rows, seconds: list[tuple[str, float]],
               found: list, evaluations: int) -> BatchFit:  # fmt: skip
    """The fit's result from its final rows (one per person)."""
    params = {k: v.detach() for k, v in packing.unpack(rows.x).items()}
    zeros = model.zeros(len(rows.x))
    params.update({name: zeros[name] for name in UNFITTED})
    with torch.no_grad():
        out = model(vertices=False, **params)
    return BatchFit(
        params=params,
        full_pose=out.full_pose,
        keypoints=out.keypoints,
        projected=camera.project(out.keypoints, rows.data[2], rows.data[3]),
        loss_per_stage=torch.stack(rows.losses, dim=1),
        stage_seconds=seconds,
        converged=rows.converged,
        hypotheses=found,
        evaluations=evaluations,
    )


def check_plausible(params: dict[str, Tensor], keypoints: Tensor) -> None:
    """A fit that ran off (behind the camera, absurd rotations) is an error, not a result."""
    behind = (keypoints[:, :NUM_JOINTS, 2].amin(1) <= 0.01).tolist()
    pose = torch.cat([params["global_orient"], params["body_pose"]], 1)
    wild = ((pose.abs().amax(1) > 4 * np.pi) | (params["transl"].abs().amax(1) > 1000.0)).tolist()
    for person, (is_behind, is_wild) in enumerate(zip(behind, wild, strict=True)):
        if is_behind:
            raise FitError(f"The fit of person {person} diverged: the body ended up behind the camera.")
        if is_wild:
            raise FitError(f"The fit of person {person} diverged: its pose or position is out of range.")
