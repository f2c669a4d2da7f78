"""The worker's line protocol: how a fit running in another process talks to Blender.

Blender's process never imports torch or mediapipe: fits run in a worker process. Its
one-shot form (`python -m smplx_capture_addon.worker --stdin-control ARGUMENTS --out DIR`,
or the `worker` command) fits one request, where ARGUMENTS are the fit request's own
command-line form (`fit_request.FitRequest.to_arguments()`, read back by
`fit_request.from_arguments`: the same arguments as the `fit` command's); Blender runs
its serving form (below), which fits one request after another. Whoever started the
worker reads its standard output, where the worker writes one JSON object per line
(UTF-8, no other output: everything else the worker or its libraries print goes to
standard error):

    {"type": "hello", "protocol": 1, "pid": 1234, "python": "3.11.7"}
    {"type": "progress", "stage": "detect", "fraction": 0.25, "message": "finding people"}
    {"type": "result", "path": "/tmp/job/result.json", "overlay": "/tmp/job/keypoints.png" | null,
     "photo": "/tmp/job/photo_upright.png" | null}
    {"type": "result", "path": "/tmp/job/motion.json", "overlay": null, "photo": null, "partial": false}
    {"type": "error", "message": "No person found in photo.jpg.", "kind": "CaptureError"}
    {"type": "cancelled"}

`fraction` is the whole job's progress in [0, 1]. `overlay` is the photo with the
keypoints found drawn on it, DIR/keypoints.png beside DIR/keypoints.json (when the
request asks for them with `--overlay`, else null); `photo` an upright copy of a photo
whose EXIF says to rotate it (Blender ignores EXIF orientation; the fit is in upright
pixels). A video job's result (below) is its motion.json and says whether it is `partial`:
true when the job was cancelled after some frames were fitted, the motion then holding
those frames (complete and valid, marked partial in the file too); a photo's result has
no `partial` (read as false).
A run ends with exactly one of `result`, `error` or `cancelled`; the exit status is then
0, 2 or 3. A worker that exits without one of them has crashed; its standard error tells
why.

Until its final message the worker repeats its last `progress` at least every
HEARTBEAT_S seconds, also inside a long stage. Blender stops a worker it has not heard
from for INACTIVITY_TIMEOUT_S seconds (the job fails: the worker stopped responding).
Only valid messages count: a line that is not one (not JSON, an unknown type, a field of
the wrong type, longer than MAX_LINE_CHARS) is ignored, and named in the job's message if
the job then fails.

Started with `--stdin-control`, the worker listens on its standard input: the line
`cancel` asks it to stop at the next check; end of input (whoever started it went away)
means the same. A worker that does not stop within a few seconds is killed. SIGTERM also
asks a worker to stop.

Serving mode (`worker --serve [--idle-timeout S]`, how Blender runs it): one process
runs one fit after another and keeps what is slow to load between them (torch and the
solver imported, the MediaPipe detector open, the body models built last). It reads
requests on its standard input, one JSON object per line:

    {"type": "fit", "job": "7", "request": {...}, "out": "/tmp/job"}
    {"type": "fit-video", "job": "8", "request": {...}, "out": "/tmp/job"}
    {"type": "prepare", "request": {...}}
    {"type": "cancel", "job": "7"}
    {"type": "quit"}

where `request` is the fit request's JSON form (`fit_request.FitRequest.to_json()`), for
`fit-video` the video request's (`video.request.VideoRequest.to_dict()`: the video, the
frame range and step, the person, model and device), and `out` the job's folder (the
one-shot form's --out). A video job (serving form only; the `fit-video` command is its
one-shot form) writes OUT/motion.json; its progress has the stage "video", `fraction`
the frames done over the frames in the range (0 while a clip that states no frame count
runs) and a message "frame 12 of 80 (clip frame 23: fitted)"; a cancel after the first
frame was fitted ends it with a `result` marked `partial`, a cancel before with
`cancelled`. `prepare` (Blender sends it when a photo or video is picked) loads now what
a fit of `request` (a fit request's JSON form) would load at its start: the solver, the
detector (unless the request reads a keypoint file) and the body model; it is no job and
gets no answer, and a request it cannot prepare for (a missing model file, say) is only
named on standard error: the fit that follows reports it. The worker answers with the
messages above, `hello` once at its start (with "serve": true), and every `progress`,
`result`, `error` and `cancelled` with the "job" of the fit it belongs to. Fits run one
at a time, in the order sent; each ends with exactly one final message, and an error
ends the job, not the worker. `cancel` stops that job (running or still waiting) and the
worker serves on. The heartbeat and the inactivity timeout apply while a job runs;
between jobs the worker is silent. It exits with status 0 on `quit`, at the end of its
input, and after IDLE_TIMEOUT_S seconds without a job or a prepare (freeing its memory:
Blender starts a new one at the next fit); SIGTERM or Ctrl-C cancel the running job and
end it with status 3. A line that is not a valid request is ignored and named on
standard error.

Only the standard library, so both sides can use it.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field

from ..errors import EXIT_CANCELLED, EXIT_ERROR, EXIT_OK  # noqa: F401 (the worker's exit statuses)

PROTOCOL_VERSION = 1
CANCEL_LINE = "cancel"
FINAL_TYPES = ("result", "error", "cancelled")
FIT_VIDEO = "fit-video"
FIT_REQUESTS = ("fit", FIT_VIDEO)  # the requests that start a job
PREPARE = "prepare"  # loads what a fit needs before it is asked for: no job
HEARTBEAT_S = 5.0
# Twelve missed heartbeats: slack for a slow start (Python, then the bundled wheels) on a
# loaded machine, while a stuck worker is still noticed within a minute.
INACTIVITY_TIMEOUT_S = 60.0
MAX_LINE_CHARS = 64 * 1024  # far above any real message (paths and one error message)
# A serving worker without a job for this long exits: a few minutes keep it for the next
# click, and the memory it holds (torch, the detector, the body models) is not kept all session.
IDLE_TIMEOUT_S = 300.0


@dataclass
class Message:
    type: str
    fields: dict = field(default_factory=dict)

    def get(self, key: str, default=None):
        return self.fields.get(key, default)


def encode(message_type: str, **fields) -> str:
    """One protocol line (with its newline)."""
    return json.dumps({"type": message_type, **fields}, ensure_ascii=True) + "\n"


def decode(line: str) -> Message | None:
    """The message on `line`, or None for a line that is not a valid one: blank, longer
    than MAX_LINE_CHARS, not a JSON object, of an unknown type, or with a field of the
    wrong type (a fraction that is not a finite number, a result without a path, a job
    that is not a string...). A message returned has the fields its type promises."""
    return _parse(line, _valid_fields)


def decode_request(line: str) -> Message | None:
    """The request on a serving worker's input line, or None for a line that is not a
    valid one (as `decode`: a fit without its job, request or folder, a cancel without
    its job, an unknown type...)."""
    return _parse(line, _valid_request)


def _parse(line: str, valid) -> Message | None:
    line = line.strip()
    if not line.startswith("{") or len(line) > MAX_LINE_CHARS:
        return None
    try:
        raw = json.loads(line)
    except (ValueError, RecursionError):  # not JSON, a number too long to convert, deep nesting
        return None
    if not isinstance(raw, dict):
        return None
    message_type = raw.pop("type", None)
    if not valid(message_type, raw):
        return None
    return Message(message_type, raw)


def _valid_fields(message_type, fields: dict) -> bool:
    """Whether `fields` hold what a message of type `message_type` promises (False for a
    type this protocol does not have)."""
    if not isinstance(fields.get("job", ""), str):
        return False
    if message_type == "progress":
        return (
            isinstance(fields.get("stage"), str)
            and _is_fraction(fields.get("fraction"))
            and isinstance(fields.get("message", ""), str)
        )
    if message_type == "result":
        path, others = fields.get("path"), (fields.get("overlay"), fields.get("photo"))
        files = isinstance(path, str) and bool(path) and all(o is None or isinstance(o, str) for o in others)
        return files and isinstance(fields.get("partial", False), bool)
    if message_type == "error":
        return isinstance(fields.get("message"), str) and isinstance(fields.get("kind", ""), str)
    return message_type in ("hello", "cancelled")


def _valid_request(request_type, fields: dict) -> bool:
    job = fields.get("job")
    if request_type in FIT_REQUESTS:
        out = fields.get("out")
        valid_job = isinstance(job, str) and bool(job)
        return valid_job and isinstance(out, str) and bool(out) and isinstance(fields.get("request"), dict)
    if request_type == PREPARE:
        return isinstance(fields.get("request"), dict)
    if request_type == "cancel":
        return isinstance(job, str)
    return request_type == "quit"


def _is_fraction(value) -> bool:
    # bool is an int in Python, and json reads NaN and Infinity: none of them is a fraction.
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _with_job(job: str | None, **fields) -> dict:
    """`fields`, with the job they belong to when a serving worker sends them."""
    return fields if job is None else {**fields, "job": job}


def progress(stage: str, fraction: float, message: str = "", job: str | None = None) -> str:
    fraction = min(1.0, max(0.0, float(fraction)))
    return encode("progress", **_with_job(job, stage=stage, fraction=fraction, message=message))


def result(
    path: str,
    overlay: str | None = None,
    photo: str | None = None,
    job: str | None = None,
    partial: bool | None = None,
) -> str:
    """A job's result; `partial` (a video job's, True or False) is left out of a photo's."""
    extra = {} if partial is None else {"partial": partial}
    return encode("result", **_with_job(job, path=path, overlay=overlay, photo=photo, **extra))


def error(message: str, kind: str = "CaptureError", job: str | None = None) -> str:
    return encode("error", **_with_job(job, message=message, kind=kind))


def cancelled(job: str | None = None) -> str:
    return encode("cancelled", **_with_job(job))


def request_fit(job: str, request: dict, out: str) -> str:
    """A serving worker's request to fit `request` (the FitRequest's JSON form, as a
    dict) into the folder `out`."""
    return encode("fit", job=job, request=request, out=out)


def request_fit_video(job: str, request: dict, out: str) -> str:
    """A serving worker's request to fit the video request `request` (its JSON form, as a
    dict) into the folder `out`."""
    return encode(FIT_VIDEO, job=job, request=request, out=out)


def request_prepare(request: dict) -> str:
    """A serving worker's request to load what a fit of `request` (the FitRequest's JSON
    form, as a dict) needs, before that fit is asked for."""
    return encode(PREPARE, request=request)


def request_cancel(job: str) -> str:
    return encode("cancel", job=job)


def request_quit() -> str:
    return encode("quit")
