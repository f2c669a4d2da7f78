"""The solver's error: input that cannot be fitted, or a fit that went wrong."""

from __future__ import annotations

from ..errors import CaptureError


class FitError(CaptureError):
    """Input that cannot be fitted, or a fit that went wrong."""
