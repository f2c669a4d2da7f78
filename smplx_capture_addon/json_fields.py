"""Checked reading of the fields of a JSON file the user gives us (keypoint files, results).

`JsonFields` checks one value at a time (an object, a list, a number in a range, a whole
number, a text) and raises the file's own error type with one message that names the file,
the field as a JSON path (``people[2].transl``), what was found there, and what to do. A
file from elsewhere may hold anything JSON can: a string where a number goes, NaN, an
integer of a thousand digits; none of that may reach the user as a traceback.

Only the standard library: Blender's process reads results too.
"""

from __future__ import annotations

import json
import math
from dataclasses import MISSING, fields
from pathlib import Path

from .errors import CaptureError


def as_float(value: object) -> float | None:
    """A JSON number as a float (infinite when it is an integer too large for one), or
    None for anything that is not a number (booleans and strings included)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        return float(value)
    except OverflowError:
        return math.inf if value > 0 else -math.inf


def shown(value: object) -> str:
    """A short description of a JSON value for a message."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f"the text {value[:40]!r}"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return f"a list of {len(value)}"
    number = as_float(value)
    if number is None:
        return type(value).__name__
    if isinstance(value, int) and not math.isfinite(number):
        return "a number too large for a float"
    return "NaN" if math.isnan(number) else f"{number:g}"


class JsonFields:
    """The checks of one file's fields: each raises `error` naming `path` and the field,
    and ends with `remedy` (what the user can do)."""

    def __init__(self, path: str | Path, error: type[CaptureError], remedy: str) -> None:
        self.path, self.error, self.remedy = str(path), error, remedy

    def fail(self, where: str, problem: str) -> CaptureError:
        """The error to raise for field `where`."""
        return self.error(f"{self.path}: {where}: {problem}. {self.remedy}")

    def mapping(self, where: str, value: object) -> dict:
        if not isinstance(value, dict):
            raise self.fail(where, f"must be an object {{...}}, found {shown(value)}")
        return value

    def fields(
        self, where: str, value: object, required: tuple[str, ...], optional: tuple[str, ...] | None = ()
    ) -> dict:
        """An object with all the `required` keys and no key outside `required` + `optional`
        (any other key when `optional` is None)."""
        value = self.mapping(where, value)
        missing = [key for key in required if key not in value]
        if missing:
            raise self.fail(where, f"{_fields_named(missing)} missing")
        if optional is None:
            return value
        unknown = [key for key in value if key not in required and key not in optional]
        if unknown:
            raise self.fail(where, f"{_fields_named(unknown)} unknown")
        return value

    def array(self, where: str, value: object, length: int | None = None) -> list:
        if not isinstance(value, list):
            raise self.fail(where, f"must be a list [...], found {shown(value)}")
        if length is not None and len(value) != length:
            raise self.fail(where, f"must hold {length} values, found {len(value)}")
        return value

    def number(self, where: str, value: object, low: float = -math.inf, high: float = math.inf) -> float:
        """A finite number from `low` to `high`."""
        number = as_float(value)
        if number is None or not math.isfinite(number):
            raise self.fail(where, f"must be a finite number, found {shown(value)}")
        if not low <= number <= high:
            raise self.fail(where, f"must be a number from {low:g} to {high:g}, found {shown(value)}")
        return number

    def numbers(
        self, where: str, value: object, length: int, low: float = -math.inf, high: float = math.inf
    ) -> list[float]:
        """A list of `length` finite numbers, each from `low` to `high`."""
        values = self.array(where, value, length)
        return [self.number(f"{where}[{index}]", item, low, high) for index, item in enumerate(values)]

    def whole(self, where: str, value: object, low: int, high: int) -> int:
        """A whole number from `low` to `high` (810 or 810.0)."""
        number = as_float(value)
        if number is None or not number.is_integer() or not low <= number <= high:
            raise self.fail(where, f"must be a whole number from {low:,} to {high:,}, found {shown(value)}")
        return int(number)

    def text(self, where: str, value: object) -> str:
        if not isinstance(value, str):
            raise self.fail(where, f"must be a text, found {shown(value)}")
        return value


def _fields_named(keys: list) -> str:
    names = ", ".join(map(repr, keys))
    return f"the field {names} is" if len(keys) == 1 else f"the fields {names} are"


def field_names(kind: type) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The fields of dataclass `kind`: those without a default, and those with one."""
    required = tuple(f.name for f in fields(kind) if f.default is MISSING and f.default_factory is MISSING)
    return required, tuple(f.name for f in fields(kind) if f.name not in required)


def dataclass_from(check: JsonFields, where: str, value: object, kind: type):
    """Dataclass `kind` made from the JSON object `value`, which must give every field
    without a default and no other."""
    required, optional = field_names(kind)
    return kind(**check.fields(where, value, required, optional))


def read_json_file(path: str | Path, what: str, error: type[CaptureError]) -> object:
    """The JSON in the `what` file (a "result", a "motion") at `path`, or `error` saying
    that it is missing or unreadable."""
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise error(f"{what.capitalize()} file not found: {path}") from None
    # ValueError: bad JSON, or an integer of over 4,300 digits; RecursionError: lists nested too deep
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as problem:
        raise error(f"{path}: not a readable {what} file ({problem}).") from None

