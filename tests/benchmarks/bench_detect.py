"""Keypoint detection time per photo, single pass against two-pass.

    .venv/bin/python tests/benchmarks/bench_detect.py [--repeats N] [PHOTO ...]

A benchmark, not a test: it prints figures and asserts nothing. Without arguments it
times the photos build.py fetched into .cache/photos/. "single" runs each MediaPipe
model once on the whole photo; "two-pass" adds the tiles that find small people and the
crops around each person, hand and face (what `detect` does), its calls side by side on
the detector's lanes; "one lane" runs them one by one. Times are the median of the
repeats after one warm-up run, model loading excluded; image reading is included.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from smplx_capture_addon.keypoints.detect import Detector, detect  # noqa: E402
from smplx_capture_addon.keypoints.errors import KeypointError  # noqa: E402
from smplx_capture_addon.keypoints.images import load_image  # noqa: E402


def timed_detection(detector: Detector, photo: Path, repeats: int, **options) -> tuple[float, str]:
    """Median milliseconds and a summary of what was found."""
    times, summary = [], ""
    for _ in range(repeats + 1):
        start = time.perf_counter()
        try:
            detections = detect(load_image(photo), detector, **options)
            summary = found(detections.people)
        except KeypointError:
            summary = "no person"
        times.append(1000 * (time.perf_counter() - start))
    return statistics.median(times[1:]), summary


def found(people) -> str:
    hands = sum(name.startswith("hand") for person in people for name in person.keypoint_sets)
    faces = sum(name.endswith("face_478") for person in people for name in person.keypoint_sets)
    return f"{len(people)} people, {hands} hands, {faces} faces"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("photos", nargs="*", type=Path)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    photos = args.photos or sorted((ROOT / ".cache" / "photos").glob("*.*"))
    start = time.perf_counter()
    with Detector() as detector, Detector(lanes=1) as one_lane:
        print(f"models loaded in {1000 * (time.perf_counter() - start):.0f} ms (both detectors)")
        print(f"{'photo':<16}{'mode':<26}{'median ms':>10}  found")
        for photo in photos:
            for label, options in (
                ("single, best", {"two_pass": False}),
                ("two-pass, best", {}),
                ("single, all", {"two_pass": False, "all_people": True}),
                ("two-pass, all", {"all_people": True}),
            ):
                milliseconds, summary = timed_detection(detector, photo, args.repeats, **options)
                print(f"{photo.name:<16}{label:<26}{milliseconds:>10.0f}  {summary}")
            # The same detection with its calls one by one: what the lanes side by side save.
            alone, summary = timed_detection(one_lane, photo, args.repeats, all_people=True)
            print(f"{photo.name:<16}{'two-pass, all, one lane':<26}{alone:>10.0f}  {summary}; "
                  f"{alone / milliseconds:.2f}x the lanes' time")  # fmt: skip


if __name__ == "__main__":
    main()
