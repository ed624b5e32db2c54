"""The one error of the calibrate stage: bad input, said in one line naming the file and the field.

Every reader (run directories, other tools' JSON, law CSVs, profile and law files) and every
command-line check raises `InputError`; `python -m calibrate` prints it as `error: <message>` and
exits 2. It is a `bench.schema.SchemaError` (the stages' one error for a bad file), so a caller
catches both stages' bad input with one except clause; pydantic errors are worded by
`bench.schema.one_line`.
"""

from __future__ import annotations

from pathlib import Path

from bench.schema import SchemaError


class InputError(SchemaError):
    """Input that cannot be used. str() is one line: "FILE: FIELD: problem" (either part may be absent)."""

    def __init__(self, path: str | Path | None, field_name: str | None, problem: str):
        self.path = None if path is None else str(path)
        self.field_name = field_name
        self.problem = problem
        where = ": ".join(x for x in (self.path, field_name) if x)
        super().__init__(f"{where}: {problem}" if where else problem)

