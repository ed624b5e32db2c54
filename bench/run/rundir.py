"""Where a run is written: the run-directory layout and the status of what is already there.

Run directory: `<results>/<hardware>/<model>/<run_id>/`, run_id = `<spec key>-<UTC time>`.
Files, in the order they appear (names in core.schema.run):
    spec.json            the RunSpec and its key (written first: a sweep finds a spec's runs by it)
    metrics_before.prom  vLLM /metrics scraped BEFORE the warm-up requests
    requests.jsonl       one RequestRecord per line, appended as each request finishes (warm-up flagged)
    metrics_after.prom   /metrics after the last request (and after the counters settled)
    telemetry.jsonl      NVML samples (empty without NVML)
    server.log           the slice of the server's log written during the run (the sweep's first run
                         also gets the start-up part); a one-line note for an --endpoint server
    run.json             RunRecord, written LAST and atomically (temp file + fsync + rename)
    FAILED               only for a failed run: the reason (run.json then says status "failed")

A crashed process leaves a directory without run.json; a sweep treats it like a failed run: the
spec is measured again in a NEW directory and the old one is kept (nothing measured is overwritten).
"""

from __future__ import annotations

import datetime as _dt
import json
from pathlib import Path

from core.errors import SchemaError
from core.files import safe_name
from core.schema.base import load_file
from core.schema.run import RUN_FILE, SPEC_FILE, SpecFile


def utc_now() -> _dt.datetime:
    return _dt.datetime.now(_dt.timezone.utc)


def utc_stamp(now: _dt.datetime | None = None) -> str:
    """`20261123T153746Z`: the time part of run ids and log names."""
    return (now or utc_now()).strftime("%Y%m%dT%H%M%SZ")


def series_dir(results: Path, hardware_name: str, model_name: str) -> Path:
    return Path(results) / safe_name(hardware_name) / safe_name(model_name)


def new_run_dir(base: Path, key: str, now: _dt.datetime | None = None) -> Path:
    """Create (exclusively) `base/<key>-<UTC time>[-n]` and return it: never reuses a directory."""
    stamp = utc_stamp(now)
    base.mkdir(parents=True, exist_ok=True)
    for n in range(1, 1000):
        path = base / (f"{key}-{stamp}" if n == 1 else f"{key}-{stamp}-{n}")
        try:
            path.mkdir()
            return path
        except FileExistsError:
            continue
    raise RuntimeError(f"could not create a new run directory for {key} under {base}")


def run_status(run_dir: Path) -> str:
    """"complete" | "failed" | "incomplete" (no readable run.json: the process died mid-run)."""
    try:
        data = json.loads((run_dir / RUN_FILE).read_text())
        return data.get("status", "incomplete")
    except (FileNotFoundError, json.JSONDecodeError):
        return "incomplete"


def runs_of_spec(base: Path, key: str) -> list[Path]:
    """Run directories under `base` whose spec.json carries `key`, oldest first (a directory with
    no readable spec.json is no spec's run)."""
    found = []
    if not base.is_dir():
        return found
    for d in sorted(base.iterdir()):
        try:
            if load_file(SpecFile, d / SPEC_FILE).key == key:
                found.append(d)
        except (FileNotFoundError, NotADirectoryError, SchemaError):
            continue
    return found


def complete_run_of_spec(base: Path, key: str) -> Path | None:
    for d in runs_of_spec(base, key):
        if run_status(d) == "complete":
            return d
    return None
