"""Fixtures of the video tests: the rendered walking clip with its ground truth
(devtools/video_clip.py renders it once into .cache/video_clips/)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from smplx_capture_addon.devtools import video_clip


@pytest.fixture(scope="session", autouse=True)
def _one_thread():
    # One thread count for every fit: another count changes float rounding, and a fit's end point.
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="session")
def clip_folder() -> Path:
    return video_clip.clip()
