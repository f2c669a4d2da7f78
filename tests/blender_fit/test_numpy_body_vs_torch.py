"""numpy_body (Blender's side) against the torch BodyModel the solver fits with: the
same vertices and joints for the same parameters. Needs torch, so Python 3.11 only."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from smplx_capture_addon.body_model import model_file, numpy_body
from smplx_capture_addon.body_model.model import BodyModel


@pytest.mark.parametrize("correctives", [True, False])
def test_numpy_forward_matches_the_torch_model(synthetic_model_dir, correctives):
    data = model_file.load_model(synthetic_model_dir, "male")
    if not correctives:
        data = model_file.BodyModelData(**{**data.__dict__, "posedirs": None})
    rng = np.random.default_rng(3)
    pose, betas, expression, transl = (rng.normal(scale=0.4, size=(55, 3)), rng.normal(size=10),
                                       rng.normal(size=10), rng.normal(size=3))  # fmt: skip
    model = BodyModel(data, hand_pca=None, flat_hand_mean=True, dtype=torch.float64)

    def tensor(array):
        return torch.as_tensor(np.asarray(array).reshape(1, -1))

    out = model(
        betas=tensor(betas), expression=tensor(expression), global_orient=tensor(pose[0]),
        body_pose=tensor(pose[1:22]), jaw_pose=tensor(pose[22]), leye_pose=tensor(pose[23]),
        reye_pose=tensor(pose[24]), left_hand_pose=tensor(pose[25:40]), right_hand_pose=tensor(pose[40:]),
        transl=tensor(transl),
    )  # fmt: skip
    posed = numpy_body.forward(data, pose, betas, expression, transl)
    np.testing.assert_allclose(posed.vertices, out.vertices[0].numpy(), atol=1e-9)
    np.testing.assert_allclose(posed.joints, out.joints[0].numpy(), atol=1e-9)
