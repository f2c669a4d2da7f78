"""Errors a user can act on. Every room raises a subclass of CaptureError with a
message that names what is wrong and what to do; the command line and the worker show
that message instead of a traceback."""

# The exit status of a command or a worker: done, failed with a message, cancelled.
EXIT_OK, EXIT_ERROR, EXIT_CANCELLED = 0, 2, 3


class CaptureError(Exception):
    """A failure with a message meant for the user."""


class ModelFileError(CaptureError):
    """A body model file is missing, unreadable or not of the expected layout."""


class OutputError(CaptureError):
    """An output file or folder cannot be written (no permission, a file in the way, a full disk)."""


class Cancelled(CaptureError):
    """The user cancelled the job; nothing was written."""
