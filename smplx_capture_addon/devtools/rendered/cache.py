"""Renders are made once: a case's folder under .cache/rendered_bench/ is named by a hash
of the case's parameters, the body model file and the renderer's source, so a re-run
finds it and only detects and fits, and any change to what decides the pixels renders
afresh. A folder holds photo.png (what the detector sees), ids.png (who is at each pixel)
and truth.json (the ground truth, `truth.truth_record`), and appears whole or not at all.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ...atomic_files import write_text
from ...body_model.model import BodyModel
from .cases import CaseSpec, posed
from .pictures import compose, read_labels
from .truth import PersonTruth, person_truths, truth_record

CACHE = Path(__file__).resolve().parents[3] / ".cache" / "rendered_bench"
# The files whose content decides a render's pixels (besides the case and the model file).
RENDERER_SOURCES = ("scene.py", "pictures.py")


@dataclass
class Rendered:
    """A case rendered: its photo, the truth per person, and the seconds its render took
    in this run (0 when it came from the cache)."""

    case: CaseSpec
    photo: Path
    truths: list[PersonTruth]
    render_seconds: float


def renderer_sha256() -> str:
    digest = hashlib.sha256()
    folder = Path(__file__).resolve().parent
    for name in RENDERER_SOURCES:
        digest.update(name.encode() + b"\0" + (folder / name).read_bytes())
    return digest.hexdigest()


def case_folder(case: CaseSpec, model: BodyModel, cache: Path = CACHE) -> Path:
    text = json.dumps({"case": case.to_dict(), "model": model.data.sha256, "renderer": renderer_sha256()},
                      sort_keys=True)  # fmt: skip
    key = hashlib.sha256(text.encode()).hexdigest()[:16]
    return cache / f"{case.kind}-{case.index:03d}-{key}"


def render_or_load(case: CaseSpec, model: BodyModel, cache: Path = CACHE) -> Rendered:
    """The case's render from the cache, or rendered now (Blender) and cached."""
    folder = case_folder(case, model, cache)
    seconds = 0.0
    if not (folder / "truth.json").is_file():
        started = time.perf_counter()
        _render_into(case, model, folder)
        seconds = time.perf_counter() - started
    truths = person_truths(case, model, read_labels(folder / "ids.png"))
    return Rendered(case, folder / "photo.png", truths, seconds)


def _render_into(case: CaseSpec, model: BodyModel, folder: Path) -> None:
    """Render in a scratch folder beside `folder`, then move it into place."""
    from .scene import face_regions, render_case  # Blender only where a render is needed

    folder.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
    try:
        faces = np.asarray(model.data.faces)
        owner = model.full_weights.argmax(1).numpy()
        vertices = [posed(model, person.params).vertices[0].numpy() for person in case.people]
        regions = [face_regions(faces, owner, person) for person in case.people]
        picture, ids = render_case(case, vertices, faces, regions, scratch)
        compose(picture, case.background, scratch / "photo.png")
        picture.unlink()
        truths = person_truths(case, model, read_labels(ids))
        record = {"case": case.to_dict(), **truth_record(case, truths)}
        write_text(scratch / "truth.json", json.dumps(record, indent=1))
        if folder.exists():  # made meanwhile by another run: theirs is the same
            shutil.rmtree(scratch)
        else:
            os.replace(scratch, folder)
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise
