"""The rendered benchmark (`bench-rendered`): people with known bodies rendered by
Blender, then the project's own detector and fit on the pictures, measured per case kind.

`cases` draws a case from its seed (people, poses from `poses`, props, camera,
background), `scene` renders it (Blender), `pictures` lays in the background and reads
the id map, `truth` says which keypoints are in view, occluded or outside the frame,
`cache` keeps each render under .cache/rendered_bench/, `metrics` compares a fit with
the truth and `bench` runs it all.

Two seed ranges are kept apart: seeds below TRAINING_SEED_START draw the benchmark's
cases (posed with `poses.BENCHMARK_CLIPS`); seeds from it on draw training cases for the
calibration of the detector's landmarks to the body (issue #29, part 2; posed with
`poses.TRAINING_CLIPS`), which the benchmark refuses to report. Training cases are made
the same way: `cache.render_or_load(cases.make_case(kind, TRAINING_SEED_START + s, i, model), model)`.

This module itself is standard library only, so the command line can offer the kinds
without importing torch.
"""

from __future__ import annotations

KINDS = ("full", "cut_legs", "cut_chest", "occluded_legs", "occluded_torso", "two_people", "three_people",
         "seated", "crouched", "lying")  # fmt: skip
TRAINING_SEED_START = 1_000_000
DEFAULT_COUNT = 2  # cases per kind


def split_of(seed: int) -> str:
    """"benchmark" or "training": the range a seed lies in."""
    return "training" if seed >= TRAINING_SEED_START else "benchmark"
