"""The base of every file model: strict pydantic models, one-line errors, atomic load and save.

Each file model carries `schema_version` and is read and written through `load_file` / `save_file`
(bench's files) or `FileModel.load` / `.save` (calibrate's files); every problem is one line
"FILE: FIELD: problem" (`core.errors.SchemaError`, a ValueError). Every model rejects unknown keys, so
a typo in a config or a file is an error, not a silently ignored field.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from core.errors import BadFile, SchemaError
from core.files import write_atomic


class Strict(BaseModel):
    """Unknown keys are refused."""

    model_config = ConfigDict(extra="forbid", frozen=False)


class Finite(BaseModel):
    """Unknown keys and non-finite numbers are refused."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


M = TypeVar("M", bound=BaseModel)


def one_line(err: ValidationError) -> str:
    """The first problem of a pydantic ValidationError as `field: message` (+ how many more)."""
    errors = err.errors()
    first = errors[0]
    where = ".".join(str(x) for x in first["loc"]) or "(top level)"
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"{where}: {first['msg']}{more}"


def load_file(model: type[M], path: str | os.PathLike) -> M:
    """`model` validated from the JSON file at `path`; SchemaError (one line) when it is unreadable,
    not JSON, or does not match. FileNotFoundError passes through (a missing file is not a bad one)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise SchemaError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
    except UnicodeDecodeError:
        raise SchemaError(f"{path}: not a UTF-8 text file") from None
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise SchemaError(f"{path}: {one_line(exc)}") from None

def save_file(obj: BaseModel, path: str | os.PathLike) -> Path:
    """Write `obj` as indented JSON, atomically (core.files.write_atomic); returns the path."""
    write_atomic(path, obj.model_dump_json(indent=2) + "\n")
    return Path(path)


def read_json_object(path: str | Path) -> dict:
    """The JSON object in `path`, or InputError naming the file (unreadable, not JSON, not an object)."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise BadFile(p, None, "no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise BadFile(p, None, f"cannot read: {getattr(exc, 'strerror', None) or exc}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise BadFile(p, None, f"not JSON: {exc.msg} at line {exc.lineno}") from None
    if not isinstance(data, dict):
        raise BadFile(p, None, f"top level must be a JSON object, got {type(data).__name__}")
    return data


class FileModel(Strict):
    """A model written as one JSON file (`kind` says which): load and save in one place."""

    @classmethod
    def from_dict(cls, data: dict, path: str | Path):
        """Validate `data` read from `path`; InputError "FILE: FIELD: problem" on the first problem."""
        want = cls.model_fields["kind"].default
        if data.get("kind", want) != want:
            raise BadFile(path, "kind", f"{data.get('kind')!r} is not {want!r} (is this the right kind of file?)")
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise BadFile(path, None, one_line(exc)) from None

    @classmethod
    def load(cls, path: str | Path):
        return cls.from_dict(read_json_object(path), path)

    def to_json(self) -> str:
        """The file's text: indented JSON and a final newline."""
        return self.model_dump_json(indent=2) + "\n"

    def save(self, path: str | Path) -> None:
        """Atomic write (core.files.write_atomic); OSError is left to the caller to report."""
        write_atomic(path, self.to_json())
