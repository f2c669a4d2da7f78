"""Every file the package writes, written whole or not at all; outputs checked before any work.

`atomic_output(target)` gives a temporary file of ours in the target's folder; when the
block that writes it succeeds, the file is flushed to disk (fsync) and renamed over the
target in one step (os.replace). A reader sees the old file or the new one, never half of
one; writers of one target at the same time each have their own temporary file, and the
last rename wins whole. On any failure (a full disk, Ctrl-C, an exception of the writer)
the temporary file is removed and the old target is left as it was; a Ctrl-C during the
block is held back to its end (some writers, Blender's, would swallow it) and then
abandons the write the same way. `write_bytes` and `write_text` are the common cases.

Temporary names are `.STEM.smplx-tmp.PID.RANDOM.SUFFIX` (hidden, with the target's suffix,
which Blender's writers insist on). A writer that was killed mid-write leaves its
temporary file behind: the next write into that folder removes the temporary files whose
writing process is no longer running.

`scratch_file` is a temporary file of the same kind for a writer's intermediate output.
`check_output_folder` and `check_output_file` refuse, before any work, an output that
cannot be written: a folder without write permission, a file in the way, a parent
folder that cannot be made.

Standard library only: Blender's process, the worker and the command line all use it.
"""

from __future__ import annotations

import errno
import os
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from .errors import OutputError
from .interrupts import interrupts_deferred

_MARK = "smplx-tmp"
# Ours, from any target: ".STEM.smplx-tmp.PID.RANDOM" then the suffix (and anything a writer
# such as Blender appends to it, for its own temporary file of our temporary file).
_TEMPORARY = re.compile(rf"^\..*\.{_MARK}\.(\d+)\.")
_MAX_STEM = 80  # keeps temporary names well inside the usual 255-byte limit
_DISK_FULL = (errno.ENOSPC, errno.EFBIG, getattr(errno, "EDQUOT", errno.ENOSPC))
_NUMBERED_ERROR = re.compile(r"\[Errno (\d+)\] ([^\n]+)")


@contextmanager
def atomic_output(target: str | Path) -> Iterator[Path]:
    """A new temporary path beside `target` to write to; renamed over `target` when the
    block succeeds, removed when it fails. Makes the target's folder when it is missing.
    Raises OutputError (naming the file and what to do) when the disk refuses."""
    target = Path(target)
    folder = target.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(folder)
        temporary = _new_temporary(folder, target.stem, target.suffix)
    except OSError as error:
        raise OutputError(f"Cannot write in {folder} ({_reason(error)}): {_advice(error)}") from None
    replaced = False
    try:
        with interrupts_deferred():
            yield temporary
        _flush_to_disk(temporary)
        temporary.chmod(0o666 & ~_umask())  # mkstemp makes it private; an output is an ordinary file
        os.replace(temporary, target)
        replaced = True
    except OSError as error:
        raise OutputError(f"Cannot write {target} ({_reason(error)}): {_advice(error)}") from None
    finally:
        if not replaced:
            with suppress(OSError):
                temporary.unlink()
    _flush_folder(folder)


@contextmanager
def scratch_file(beside: str | Path) -> Iterator[Path]:
    """A temporary file of ours in the folder of the output `beside`, with its suffix, for
    a writer's intermediate file: removed when the block ends, or after a crash by the next
    write into that folder."""
    beside = Path(beside)
    try:
        beside.parent.mkdir(parents=True, exist_ok=True)
        temporary = _new_temporary(beside.parent, beside.stem, beside.suffix)
    except OSError as error:
        raise OutputError(f"Cannot write in {beside.parent} ({_reason(error)}): {_advice(error)}") from None
    try:
        yield temporary
    finally:
        with suppress(OSError):
            temporary.unlink()


def write_bytes(target: str | Path, data: bytes) -> Path:
    """Write `data` to `target` atomically (see `atomic_output`); returns the target."""
    with atomic_output(target) as temporary, open(temporary, "wb") as handle:
        handle.write(data)
    return Path(target)


def write_text(target: str | Path, text: str) -> Path:
    """Write `text` as UTF-8 to `target` atomically (see `atomic_output`); returns the target."""
    return write_bytes(target, text.encode("utf-8"))


def os_error_in(report: str) -> OSError | None:
    """The OSError that a writer reporting its failures as text (Blender's) met, when the
    text names one ("[Errno 28] No space left on device", "Error: File too large"), so that
    `atomic_output` can say what happened and what to do; None otherwise."""
    numbered = _NUMBERED_ERROR.search(report)
    if numbered:
        return OSError(int(numbered.group(1)), numbered.group(2).strip())
    for number in errno.errorcode:
        if os.strerror(number) in report:
            return OSError(number, os.strerror(number))
    return None


def is_temporary(name: str) -> bool:
    """Whether a file name is one of our temporary files."""
    return _TEMPORARY.match(name) is not None


def remove_stale_temporaries(folder: str | Path) -> None:
    """Remove the temporary files in `folder` whose writing process is gone (it was killed
    mid-write); those of running writers stay."""
    with suppress(OSError), os.scandir(folder) as entries:
        for entry in entries:
            match = _TEMPORARY.match(entry.name)
            if match is not None and not process_running(int(match.group(1))):
                with suppress(OSError):
                    os.unlink(entry.path)


def process_running(pid: int) -> bool:
    """Whether a process with this id is running now (ours or another user's)."""
    if pid == os.getpid():
        return True
    if pid <= 0:
        return False
    if os.name == "nt":
        return _windows_process_running(pid)
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, under another user
        return True
    return True


def check_output_folder(folder: str | Path) -> Path:
    """Refuse, before any work, an output folder that cannot be written or made: one line
    that names the path and says what to do (OutputError). Makes nothing."""
    folder = Path(folder)
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        if existing == folder:
            raise OutputError(f"{folder} is a file, not a folder: choose a folder for the output.")
        raise OutputError(
            f"Cannot make the folder {folder}: {existing} is a file in the way. Move it, or choose "
            "another folder."
        )
    try:
        _new_temporary(existing, "write-check", "").unlink()
    except OSError as error:
        where = f"write in {folder}" if existing == folder else f"make the folder {folder} in {existing}"
        raise OutputError(f"Cannot {where} ({_reason(error)}): {_advice(error)}") from None
    return folder


def check_output_file(path: str | Path) -> Path:
    """Refuse, before any work, an output file that cannot be written (see
    `check_output_folder`), or a folder where the file should go."""
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"{path} is a folder: give the name of the file to write.")
    check_output_folder(path.parent)
    return path


def _new_temporary(folder: Path, stem: str, suffix: str) -> Path:
    handle, name = tempfile.mkstemp(
        prefix=f".{stem[:_MAX_STEM]}.{_MARK}.{os.getpid()}.", suffix=suffix, dir=folder
    )
    os.close(handle)
    return Path(name)


def _flush_to_disk(path: Path) -> None:
    with open(path, "r+b") as handle:
        os.fsync(handle.fileno())


def _flush_folder(folder: Path) -> None:
    """Make the rename itself durable (POSIX; Windows cannot open a folder as a file)."""
    if os.name == "nt":
        return
    with suppress(OSError):
        handle = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(handle)
        finally:
            os.close(handle)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _reason(error: OSError) -> str:
    return error.strerror or str(error)


def _advice(error: OSError) -> str:
    if error.errno in _DISK_FULL:
        return "free some disk space, or choose another place to write to."
    return "choose a folder you can write to."


def _windows_process_running(pid: int) -> bool:
    import ctypes

    kernel32 = ctypes.WinDLL("kernel32", use_last_error=True)
    handle = kernel32.OpenProcess(0x1000, False, pid)  # PROCESS_QUERY_LIMITED_INFORMATION
    if not handle:
        return ctypes.get_last_error() == 5  # ERROR_ACCESS_DENIED: it exists, under another user
    try:
        code = ctypes.c_ulong()
        if not kernel32.GetExitCodeProcess(handle, ctypes.byref(code)):
            return True
        return code.value == 259  # STILL_ACTIVE
    finally:
        kernel32.CloseHandle(handle)
