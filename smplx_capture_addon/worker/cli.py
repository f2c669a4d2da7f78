"""The worker process: fit a photo and report over the line protocol (see `protocol`).

Also the `worker` command of the command line. Protocol lines go to the original
standard output; everything else printed in this process (by Python code or by C
libraries) is sent to standard error, so it can never garble the protocol.
"""

from __future__ import annotations

import argparse
import os
import platform
import signal
import site
import sys
import threading
import traceback
from pathlib import Path

from ..body_model.model_file import resolve_model_path
from ..errors import Cancelled, CaptureError
from . import protocol, runner

_EXIF_ORIENTATION = 0x0112
HELP = "fit a photo in a worker process that reports progress as JSON lines (used by Blender)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("photo", help="the photo to fit")
    parser.add_argument("--out", required=True, help="folder for result.json (and overlay.png)")
    parser.add_argument("--keypoints", help="keypoints file to use instead of running the detector")
    parser.add_argument("--model", help="body model file or SMPL-X folder (default: the open default body)")
    parser.add_argument("--gender", default="neutral", choices=("neutral", "male", "female"))
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--focal-px", type=float, help="focal length in pixels (default: EXIF or a guess)")
    parser.add_argument("--box", type=float, nargs=4, metavar=("X0", "Y0", "X1", "Y1"),
                        help="fit the person inside this box (pixels)")  # fmt: skip
    parser.add_argument("--all-people", action="store_true", help="fit every person found")
    parser.add_argument("--person", type=int, metavar="N",
                        help="fit the N-th person found (1 = the most prominent)")  # fmt: skip
    parser.add_argument("--overlay", action="store_true", help="also draw the keypoints (keypoints.png)")
    parser.add_argument("--vposer", help="a VPoser v1 or v2 checkpoint (folder or file) as the pose prior")
    parser.add_argument("--gmm", help="SMPLify's GMM pose prior file (gmm_08.pkl) as the pose prior")
    parser.add_argument(
        "--stdin-control", action="store_true", help="stop when stdin says 'cancel' or closes (Blender's way)"
    )


class _Channel:
    """Protocol output on a private copy of stdout; fd 1 itself is pointed at stderr."""

    def __init__(self) -> None:
        sys.stdout.flush()
        self._stream = os.fdopen(os.dup(1), "w", encoding="utf-8", buffering=1)
        os.dup2(2, 1)
        sys.stdout = sys.stderr
        self._lock = threading.Lock()

    def send(self, line: str) -> None:
        with self._lock:
            self._stream.write(line)
            self._stream.flush()


def _watch_for_cancel(flag: threading.Event) -> None:
    """`cancel` on stdin, or stdin closing (Blender is gone), sets `flag`."""
    for line in sys.stdin:
        if line.strip() == protocol.CANCEL_LINE:
            break
    flag.set()


def run(args: argparse.Namespace) -> int:
    bundled = runner.extension_site_packages()  # the bundled wheels, also when started by hand
    if bundled.is_dir():
        site.addsitedir(str(bundled))  # also runs the wheels' .pth files
    channel = _Channel()
    cancel = threading.Event()
    if args.stdin_control:
        threading.Thread(target=_watch_for_cancel, args=(cancel,), daemon=True).start()
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, lambda *_: cancel.set())
    channel.send(protocol.encode("hello", protocol=protocol.PROTOCOL_VERSION, pid=os.getpid(),
                                 python=platform.python_version()))  # fmt: skip
    try:
        result_path, overlay_path, upright = fit(args, channel, cancel)
    except Cancelled:
        channel.send(protocol.cancelled())
        return protocol.EXIT_CANCELLED
    except CaptureError as error:
        channel.send(protocol.error(str(error)))
        return protocol.EXIT_ERROR
    except ImportError as error:
        channel.send(protocol.error(
            f"This Python ({sys.executable}) lacks a package the fit needs ({error.name or error}): "
            "install the extension's packages, or set a Python that has them in the add-on's "
            "preferences.", kind="ImportError"))  # fmt: skip
        return protocol.EXIT_ERROR
    except MemoryError:
        channel.send(protocol.error("The fit ran out of memory: close other programs or use a smaller photo.",
                                    kind="MemoryError"))  # fmt: skip
        return protocol.EXIT_ERROR
    except Exception as error:  # a bug: report it rather than dying silently
        traceback.print_exc()
        channel.send(protocol.error(f"Internal error in the fit ({type(error).__name__}: {error}).",
                                    kind="internal"))  # fmt: skip
        return protocol.EXIT_ERROR
    paths = [str(path) if path else None for path in (result_path, overlay_path, upright)]
    channel.send(protocol.result(*paths))
    return protocol.EXIT_OK


def fit(
    args: argparse.Namespace, channel: _Channel, cancel: threading.Event
) -> tuple[Path, Path | None, Path | None]:
    """Detect and fit (imports the solver, and so torch, only here)."""
    photo = Path(args.photo)
    if not photo.is_file():
        raise CaptureError(f"The photo {photo} does not exist.")
    # Fail fast, before the slow solver import, when the model cannot be found.
    resolve_model_path(args.model, args.gender)
    channel.send(protocol.progress("loading", 0.0, "loading the solver"))
    from ..result_format import write_result
    from ..solver.pipeline import fit_photo

    def progress(stage: str, fraction: float, message: str) -> None:
        channel.send(protocol.progress(stage, fraction, message))

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    keypoints, overlay_path, box = args.keypoints, None, args.box
    if (args.overlay or args.person) and keypoints is None:
        # Detect once, draw what was found, and fit from that same keypoint file.
        channel.send(protocol.progress("detect", 0.0, "detecting keypoints"))
        everyone = args.all_people or args.person is not None
        keypoints, overlay_path, detections = draw_keypoints(photo, out, box, everyone)
        if args.person is not None:
            box = person_box(detections, args.person)
        if cancel.is_set():
            raise Cancelled("Cancelled.")
    result = fit_photo(
        str(photo), keypoints, model=args.model, gender=args.gender, device=args.device,
        focal_px=args.focal_px, box=box, all_people=args.all_people, vposer=args.vposer, gmm=args.gmm,
        progress=progress, cancel=cancel.is_set,
    )  # fmt: skip
    return write_result(result, out / "result.json"), overlay_path, upright_photo(photo, out)


def upright_photo(photo: Path, out: Path) -> Path | None:
    """An upright copy of a photo that EXIF says to rotate (phones do), or None. The fit
    is in upright pixels, but Blender shows images as stored, ignoring EXIF."""
    from PIL import Image, ImageOps

    with Image.open(photo) as image:
        if image.getexif().get(_EXIF_ORIENTATION, 1) == 1:
            return None
        path = out / "photo_upright.png"
        ImageOps.exif_transpose(image).save(path)
    return path


def person_box(detections, number: int) -> tuple[float, float, float, float]:
    """The box of the `number`-th person found (1-based, most prominent first)."""
    people = detections.people
    if not 1 <= number <= len(people):
        found = "1 person was" if len(people) == 1 else f"{len(people)} people were"
        raise CaptureError(
            f"Person {number} was asked for, but {found} found in the photo: choose a number from 1 to "
            f"{len(people)}."
        )
    return tuple(people[number - 1].box)


def draw_keypoints(photo: Path, out: Path, box, all_people: bool) -> tuple[Path, Path, object]:
    """Detect keypoints into out/keypoints.json and draw them over the photo
    (out/keypoints.png). Returns both paths and the detections."""
    from ..keypoints.detect import Detector, detect
    from ..keypoints.formats import write_keypoints
    from ..keypoints.images import load_image
    from ..keypoints.overlay import write_overlay

    image = load_image(photo)
    with Detector() as detector:
        detections = detect(image, detector, box=tuple(box) if box else None, all_people=all_people)
    write_keypoints(out / "keypoints.json", detections)
    write_overlay(out / "keypoints.png", image.pixels, detections)
    return out / "keypoints.json", out / "keypoints.png", detections


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m smplx_capture_addon.worker", description=HELP)
    add_arguments(parser)
    return run(parser.parse_args(argv))
