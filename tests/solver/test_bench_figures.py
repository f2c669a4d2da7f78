"""The synthetic benchmark's per-stage time: every stage that ran, in order, averaged over
all fits (a stage only some fits ran, the restart, counts zero for the others)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from smplx_capture_addon.devtools.bench import stage_seconds_mean


def test_stage_seconds_are_averaged_over_every_fit_in_the_order_run():
    fits = [
        SimpleNamespace(stage_seconds=[("camera", 0.1), ("body-1", 0.3)]),
        SimpleNamespace(stage_seconds=[("camera", 0.3), ("body-1", 0.5), ("restart", 2.0)]),
    ]
    means = stage_seconds_mean(fits)
    assert list(means) == ["camera", "body-1", "restart"]
    assert means == pytest.approx({"camera": 0.2, "body-1": 0.4, "restart": 1.0})
