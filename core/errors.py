"""The one error type of every stage: bad input, said in one line.

`InputError` is what every reader, check and command line raises for input that cannot be used;
a CLI prints it as `<prog>: error: <message>` and exits 2. Two ways to say it:

- `BadFile(path, field, problem)`: a file (run directory, profile, law, other tools' JSON) that cannot be
  used; str() is "FILE: FIELD: problem". `SchemaError` is the plain-message form of the same thing
  (bench's `load_file`).
- `BadValue(name, value, allowed, ...)`: a value an API refuses; str() is "name=value: allowed". Where
  the bound is a number, `why` says what it keeps in range, `limit` is the bound on `name` and `upper`
  whether it is an upper one, so a CLI can name the flag its user wrote and translate the bound into
  that flag's units (core.cli.flag_error).
"""

from __future__ import annotations

import math
from pathlib import Path


class InputError(ValueError):
    """Input that cannot be used; str() is one line."""


class SchemaError(InputError):
    """A file that does not match its schema: one line naming the file, the field and the problem."""


class BadFile(SchemaError):
    """A file that cannot be used. str() is one line: "FILE: FIELD: problem" (either part may be absent)."""

    def __init__(self, path: str | Path | None, field_name: str | None, problem: str):
        self.path = None if path is None else str(path)
        self.field_name = field_name
        self.problem = problem
        where = ": ".join(x for x in (self.path, field_name) if x)
        super().__init__(f"{where}: {problem}" if where else problem)


class BadValue(InputError):
    """A bad value of an API: `name` (the parameter), `value`, and `allowed` (what would work)."""

    def __init__(self, name: str, value, allowed: str, *, why: str | None = None, limit: float | None = None,
                 upper: bool = True):
        self.name, self.value, self.allowed = name, value, allowed
        self.why, self.limit, self.upper = why, limit, upper
        shown = repr(value) if name == "loss" else _show(value)  # a loss near E needs every digit
        super().__init__(f"{name}={shown}: {allowed}")


def _show(value) -> str:
    return f"{value:.6g}" if isinstance(value, float) and math.isfinite(value) else repr(value)
