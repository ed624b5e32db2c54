"""File helpers every stage uses: atomic writes, content hashes, fresh names, slugs.

One home for each (the stages above import them from here): a result is written to a temporary
file in its own directory, fsynced and renamed, so a reader never sees half a file and a crash
never leaves one.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any


def write_atomic(path: str | os.PathLike, text: str) -> None:
    """Write `text` to `path` via a temp file in the same directory, fsync, os.replace (atomic on POSIX).

    The file gets the usual 0666 & ~umask mode (mkstemp's 0600 would hide results from others).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json_atomic(path: str | os.PathLike, data: Mapping[str, Any] | list) -> None:
    """`write_atomic` of `data` as indented JSON; non-finite floats are refused (not valid JSON)."""
    write_atomic(path, json.dumps(data, indent=2, allow_nan=False) + "\n")


def sha256_file(path: str | os.PathLike) -> str:
    """sha256 of a file's bytes (provenance of every input a result is built from)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def slug(text: str) -> str:
    """A lowercase path component: runs of anything but [a-z0-9.] become '-' ('AMD EPYC' -> 'amd-epyc')."""
    out = re.sub(r"[^a-z0-9.]+", "-", str(text).lower()).strip("-.")
    return out or "unnamed"


def safe_name(name: str) -> str:
    """A path component that keeps case: letters, digits, '.', '-', '_' kept; anything else becomes '-'."""
    out = "".join(c if (c.isalnum() or c in "._-") else "-" for c in str(name)).strip("-.")
    return out or "unnamed"


def free_path(path: str | os.PathLike) -> Path:
    """`path` if nothing is there, else `path-2`, `path-3`, ... (the first free one): never overwrite."""
    path = Path(path)
    if not path.exists():
        return path
    for n in range(2, 10_000):
        cand = path.with_name(f"{path.stem}-{n}{path.suffix}")
        if not cand.exists():
            return cand
    raise FileExistsError(f"no free name beside {path}")


def set_aside(path: str | os.PathLike) -> Path | None:
    """Rename an existing file to `<stem>.replaced-<UTC>.json` (then -2, -3, ... if taken) so a new one
    can take its name: nothing measured is lost. The new name, or None when there was no file."""
    import datetime as _dt

    path = Path(path)
    if not path.exists():
        return None
    stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    target = path.with_name(f"{path.stem}.replaced-{stamp}{path.suffix}")
    n = 2
    while target.exists():
        target = path.with_name(f"{path.stem}.replaced-{stamp}-{n}{path.suffix}")
        n += 1
    os.replace(path, target)
    return target
