"""The one error of the calibrate stage: bad input, said in one line naming the file and the field.

Every reader (run directories, other tools' JSON, law CSVs, profile and law files) and every
command-line check raises `InputError`; `python -m calibrate` prints it as `error: <message>` and
exits 2.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import ValidationError


class InputError(ValueError):
    """Input that cannot be used. str() is one line: "FILE: FIELD: problem" (either part may be absent)."""

    def __init__(self, path: str | Path | None, field_name: str | None, problem: str):
        self.path = None if path is None else str(path)
        self.field_name = field_name
        self.problem = problem
        where = ": ".join(x for x in (self.path, field_name) if x)
        super().__init__(f"{where}: {problem}" if where else problem)


def first_validation_error(exc: ValidationError) -> tuple[str, str]:
    """(dotted field, message) of a pydantic error's first problem, with a count of the others."""
    errors = exc.errors()
    err = errors[0]
    loc = ".".join(str(x) for x in err.get("loc", ())) or "(top level)"
    more = f" (and {len(errors) - 1} more problems)" if len(errors) > 1 else ""
    return loc, err.get("msg", "invalid") + more
