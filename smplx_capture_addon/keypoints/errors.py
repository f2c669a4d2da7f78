"""Errors of the keypoint room, each with a message that says what to do."""

from __future__ import annotations

from ..errors import CaptureError


class ImageError(CaptureError):
    """The photo is missing, not an image, truncated or empty."""


class KeypointError(CaptureError):
    """Detection found nothing usable, or its models are not installed."""


class KeypointFileError(CaptureError):
    """A keypoint file is unreadable or not of a layout we know."""
