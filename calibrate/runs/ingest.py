"""Other load generators' results as profile inputs: `vllm bench serve --save-result` JSON and
guidellm's `benchmarks.json`, converted to the same in-memory runs (`calibrate.runs.load.LoadedRun`,
a `core.schema.run.RunRecord` plus per-request arrays) that bench's run directories give, so they feed
the same fit. Pure apart from reading the given file.

Neither tool records the model's parameter count or the hardware, so both come from the command
line (`model_info`, `hardware_info`). What each field maps to:

vllm bench serve (vllm/benchmarks/serve.py, result JSON; several objects one per line with
`--append-result`):
    duration [s], completed, failed, total_input_tokens, total_output_tokens -> summary
    max_concurrency (closed loop when request_rate is "inf") -> concurrency; a finite request_rate
        -> open-loop "rate" mode (kept in the table, not in the per-concurrency fit)
    mean_/median_/p90_/p99_{ttft,tpot,itl,e2el}_ms -> summary percentiles (p90 only when the run
        used --metric-percentiles with 90)
    with --save-detailed: input_lens, output_lens, ttfts [s], itls [s], latencies [s],
        start_times [s], errors -> per-request records (then the summary is recomputed from them
        with core.metrics, exactly as for bench's own runs)
    input_lens are the client's prompt token counts (vLLM bench counts them with the tokenizer);
    output_lens are the server's usage counts when it reports them.

guidellm (GenerativeBenchmarksReport, `benchmarks.json`): for each entry of `benchmarks`:
    config.strategy.type_ "synchronous" -> concurrency 1; "concurrent" -> streams; others
        ("throughput", "constant", "poisson", ...) -> open-loop "rate" mode
    requests.successful[*]: prompt_tokens, output_tokens, request_start_time, request_end_time,
        time_to_first_token_ms -> per-request records; requests.errored / incomplete -> failures
    Refused when guidellm sampled the request list (scheduler_metrics.requests_made.successful larger
    than the list): token totals would be partial.
"""

from __future__ import annotations

import json
import math
from datetime import datetime
from pathlib import Path

from calibrate.runs.load import LoadedRun, request_arrays
from core.errors import BadFile
from core.files import safe_name, sha256_file
from core.gpus import get_device
from core.metrics import summarize
from core.schema.run import (
    Environment,
    HardwareInfo,
    ModelInfo,
    Percentiles,
    RequestRecord,
    RunConfig,
    RunRecord,
    Summary,
    Workload,
)

# --------------------------------------------------------------------------- command-line facts


def model_info(*, name: str, params_matmul: int, params_total: int | None = None,
               quantization: str = "unknown", matmul_dtype: str = "int8") -> ModelInfo:
    """A ModelInfo for a model known only by its parameter count (shape fields unknown -> 0)."""
    if not (isinstance(params_matmul, int) and params_matmul > 0):
        raise BadFile(None, "--params", f"{params_matmul!r} must be a positive integer")
    return ModelInfo(name=name, source="command line", quantization=quantization, matmul_dtype=matmul_dtype,
                     params_total=params_total or params_matmul, params_matmul=params_matmul,
                     num_layers=0, hidden_size=0, num_attention_heads=0, num_kv_heads=0, head_dim=0,
                     vocab_size=0)


def hardware_info(*, name: str, device_count: int = 1, peak_dtype: str = "int8",
                  peak_flop_per_s: float | None = None, usd_per_h: float | None = None,
                  kind: str | None = None) -> HardwareInfo:
    """HardwareInfo from the command line, filled from the GPU table (core.gpus, core/data/gpus.toml)
    when `name` is in it; explicit values override the table."""
    try:
        device = get_device(name)
    except ValueError:
        device = None  # not a table key: every value must come from the command line
    peaks: dict[str, float | None] = {}
    peak_source = "unknown"
    if device is not None:
        peaks = {k: v for k, v in device.peak_flop_per_s.items()}
        peak_source = device.peak_source
    if peak_flop_per_s is not None:
        if not (math.isfinite(peak_flop_per_s) and peak_flop_per_s > 0):
            raise BadFile(None, "--peak-flop-per-s", f"{peak_flop_per_s} must be > 0")
        peaks[peak_dtype] = peak_flop_per_s
        peak_source = "override (command line)"
    peaks.setdefault(peak_dtype, None)
    if usd_per_h is None and device is not None and device.usd_per_h is not None:
        price, price_source = device.usd_per_h, f"table: {device.usd_per_h_source}"
    elif usd_per_h is not None:
        price, price_source = usd_per_h, "override (command line)"
    else:
        raise BadFile(None, "--usd-per-hour",
                                f"hardware {name!r} has no price in the table: pass --usd-per-hour")
    if not (math.isfinite(price) and price > 0):
        raise BadFile(None, "--usd-per-hour", f"{price} must be > 0")
    return HardwareInfo(
        name=device.key if device is not None else name,
        kind=kind or ("gpu" if device is not None else "remote"),
        device_name=name, device_count=device_count, peak_flop_per_s=peaks, peak_source=peak_source,
        memory_bytes=None if device is None else device.memory_bytes,
        memory_bandwidth_bytes_per_s=None if device is None else device.memory_bandwidth_bytes_per_s,
        bandwidth_source=None if device is None else device.bandwidth_source,
        usd_per_h=price, usd_per_h_source=price_source)


# --------------------------------------------------------------------------- shared helpers


def _environment(hardware: HardwareInfo, tool: str, started_utc: str, vllm_version: str | None = None) -> Environment:
    return Environment(hardware=hardware, python="unknown", platform="unknown",
                       packages={"vllm": vllm_version}, git_commit=None, hostname="unknown",
                       telemetry=f"unavailable: imported from {tool}", started_utc=started_utc)


def infer_workload(input_lens: list[float], output_lens: list[float]) -> str:
    """prefill when every request produced one output token; decode when prompts are short (mean
    <= 16 tokens, like bench's decode workload, or under a tenth of the outputs); mixed when all
    lengths are equal; distribution otherwise. Override with --workload."""
    if not output_lens:
        return "mixed"
    if max(output_lens) <= 1:
        return "prefill"
    mean_in, mean_out = sum(input_lens) / len(input_lens), sum(output_lens) / len(output_lens)
    if mean_in <= max(16.0, 0.1 * mean_out):
        return "decode"
    if len(set(input_lens)) == 1 and len(set(output_lens)) == 1:
        return "mixed"
    return "distribution"


def _workload(kind: str, input_lens, output_lens) -> Workload:
    fixed = len(set(input_lens)) == 1 and len(set(output_lens)) == 1 and input_lens
    return Workload(kind=kind,
                    input_tokens=int(input_lens[0]) if fixed and input_lens[0] > 0 else None,
                    output_tokens=int(output_lens[0]) if fixed and output_lens[0] > 0 else None)


def _num(data: dict, key: str, path: str, *, required: bool = True, allow_none: bool = False):
    if key not in data or data[key] is None:
        if required and not allow_none:
            raise BadFile(path, key, "missing")
        return None
    value = data[key]
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
        raise BadFile(path, key, f"{value!r} is not a finite number")
    return value


def _loaded(path: str, sha: str, record: RunRecord, records: list[RequestRecord] | None, source: str) -> LoadedRun:
    return LoadedRun(path=path, sha256=sha, record=record,
                     requests=None if records is None else request_arrays(records), source=source)


def _read_json_objects(path: Path) -> list[dict]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise BadFile(path, None, f"cannot read: {exc.strerror or exc}") from None
    try:
        data = json.loads(text)
        objs = data if isinstance(data, list) else [data]
    except json.JSONDecodeError:
        objs = []  # --append-result writes one JSON object per line
        for lineno, line in enumerate(text.splitlines(), 1):
            if line.strip():
                try:
                    objs.append(json.loads(line))
                except json.JSONDecodeError as exc:
                    raise BadFile(f"{path}:{lineno}", None, f"not JSON: {exc.msg}") from None
    if not objs or not all(isinstance(o, dict) for o in objs):
        raise BadFile(path, None, "expected a JSON object (or one object per line)")
    return objs


# --------------------------------------------------------------------------- vllm bench serve


def _vllm_percentiles(data: dict, metric: str, path: str) -> Percentiles:
    def get(prefix):
        v = _num(data, f"{prefix}_{metric}_ms", path, required=False)
        return None if v is None else v / 1000.0

    return Percentiles(mean=get("mean"), p50=get("median"), p90=get("p90"), p99=get("p99"))


def _vllm_records(data: dict, path: str) -> list[RequestRecord] | None:
    keys = ("input_lens", "output_lens", "ttfts", "latencies", "start_times")
    if not all(isinstance(data.get(k), list) for k in keys):
        return None  # saved without --save-detailed: run-level only
    n = len(data["input_lens"])
    for k in keys + ("itls", "errors"):
        if k in data and isinstance(data[k], list) and len(data[k]) != n:
            raise BadFile(path, k, f"has {len(data[k])} entries, input_lens has {n}")
    t0 = min(data["start_times"]) if n else 0.0
    errors = data.get("errors") or [""] * n
    itls = data.get("itls") or [[] for _ in range(n)]
    records = []
    for i in range(n):
        err = errors[i] or None
        send = float(data["start_times"][i]) - t0
        ttft, lat = data["ttfts"][i], data["latencies"][i]
        for name, v in (("ttfts", ttft), ("latencies", lat), ("start_times", data["start_times"][i])):
            if not isinstance(v, (int, float)) or not math.isfinite(v):
                raise BadFile(path, f"{name}[{i}]", f"{v!r} is not a finite number")
        ok = err is None and data["output_lens"][i] > 0
        first = send + ttft if ok else None
        chunks, t = [], first
        if ok:
            chunks.append(first)
            for gap in itls[i]:
                t += gap
                chunks.append(t)
        records.append(RequestRecord(
            index=i, send_s=send, first_token_s=first, end_s=send + lat if ok else None, chunk_times_s=chunks,
            input_tokens=int(data["input_lens"][i]) if ok else None,
            output_tokens=int(data["output_lens"][i]) if ok else None,
            requested_input_tokens=int(data["input_lens"][i]),
            requested_output_tokens=max(int(data["output_lens"][i]), 1),
            error=err if err is not None else (None if ok else "no output")))
    return records


def _started(date: object) -> str:
    if isinstance(date, str):
        try:
            return datetime.strptime(date, "%Y%m%d-%H%M%S").strftime("%Y-%m-%dT%H:%M:%S")
        except ValueError:
            return date
    return "unknown"


def load_vllm_bench_json(path: str | Path, *, model: ModelInfo, hardware: HardwareInfo,
                         workload: str | None = None, concurrency: int | None = None) -> list[LoadedRun]:
    """Runs from a `vllm bench serve --save-result` file (one per JSON object)."""
    path = Path(path)
    sha = sha256_file(path)
    objs = _read_json_objects(path)
    runs = []
    for k, data in enumerate(objs):
        where = f"{path}#{k}" if len(objs) > 1 else str(path)
        duration = _num(data, "duration", where)
        completed = int(_num(data, "completed", where))
        failed = int(_num(data, "failed", where, required=False) or 0)
        tin = int(_num(data, "total_input_tokens", where))
        tout = int(_num(data, "total_output_tokens", where))
        rate = data.get("request_rate", "inf")
        max_c = _num(data, "max_concurrency", where, required=False)
        closed = rate in ("inf", None) or (isinstance(rate, float) and math.isinf(rate))
        conc = concurrency or (int(max_c) if max_c else (completed + failed if closed else None))
        records = _vllm_records(data, where)
        if records is not None:
            summary = summarize(records)
            ok = [r for r in records if r.error is None]
            in_lens = [r.input_tokens for r in ok]
            out_lens = [r.output_tokens for r in ok]
        else:
            total = completed + failed
            ff = failed / total if total else 1.0
            summary = Summary(
                num_ok=completed, num_failed=failed, failure_fraction=ff, valid=completed > 0 and ff <= 0.01,
                duration_s=duration, input_tokens_total=tin, output_tokens_total=tout,
                request_throughput_per_s=completed / duration if duration > 0 else 0.0,
                input_tokens_per_s=tin / duration if duration > 0 else 0.0,
                output_tokens_per_s=tout / duration if duration > 0 else 0.0,
                ttft_s=_vllm_percentiles(data, "ttft", where), tpot_s=_vllm_percentiles(data, "tpot", where),
                itl_s=_vllm_percentiles(data, "itl", where), e2e_s=_vllm_percentiles(data, "e2el", where))
            in_lens = [tin / completed] if completed else []
            out_lens = [tout / completed] if completed else []
        kind = workload or infer_workload(in_lens, out_lens)
        model_here = model
        if model.name in ("", "auto"):
            raw = str(data.get("model_id") or path.stem)
            model_here = model.model_copy(update={"name": safe_name(raw)})
        record = RunRecord(
            run_id=f"{path.stem}-{k}" if len(objs) > 1 else path.stem,
            status="complete",
            config=RunConfig(model=model_here, workload=_workload(kind, in_lens, out_lens),
                             mode="concurrency" if closed else "rate", concurrency=conc if closed else None,
                             request_rate_per_s=None if closed else float(rate),
                             num_requests=max(completed + failed, 1), endpoint=data.get("backend")),
            environment=_environment(hardware, "vllm bench serve", _started(data.get("date"))),
            summary=summary, derived=None)
        runs.append(_loaded(where, sha, record, records, "vllm-bench-serve"))
    return runs


# --------------------------------------------------------------------------- guidellm


def _g(data: dict, dotted: str, where: str):
    cur = data
    for part in dotted.split("."):
        if not isinstance(cur, dict) or part not in cur:
            raise BadFile(where, dotted, "missing (not a guidellm benchmarks.json of a supported version?)")
        cur = cur[part]
    return cur


def load_guidellm_json(path: str | Path, *, model: ModelInfo, hardware: HardwareInfo,
                       workload: str | None = None) -> list[LoadedRun]:
    """Runs from a guidellm `benchmarks.json` (one per benchmark of the report)."""
    path = Path(path)
    sha = sha256_file(path)
    objs = _read_json_objects(path)
    if len(objs) != 1:
        raise BadFile(path, None, "expected one guidellm report object")
    benchmarks = _g(objs[0], "benchmarks", str(path))
    if not isinstance(benchmarks, list) or not benchmarks:
        raise BadFile(path, "benchmarks", "empty or not a list")
    runs = []
    for k, bm in enumerate(benchmarks):
        where = f"{path}#benchmarks.{k}"
        strategy = _g(bm, "config.strategy", where)
        stype = strategy.get("type_")
        if stype == "synchronous":
            mode, conc, rate = "concurrency", 1, None
        elif stype == "concurrent":
            mode, conc, rate = "concurrency", int(_num(strategy, "streams", where + ".config.strategy")), None
        else:
            r = strategy.get("rate")
            mode, conc, rate = "rate", None, (float(r) if isinstance(r, (int, float)) and r > 0 else None)
        ok_list = _g(bm, "requests.successful", where) or []
        bad = len(bm.get("requests", {}).get("errored") or []) + len(bm.get("requests", {}).get("incomplete") or [])
        made = bm.get("scheduler_metrics", {}).get("requests_made", {}).get("successful")
        if isinstance(made, int) and made > len(ok_list):
            raise BadFile(where, "requests.successful",
                                    f"holds {len(ok_list)} of {made} requests (sampled): rerun guidellm without "
                                    "--sample-requests so token totals are complete")
        starts = []
        for i, rq in enumerate(ok_list):
            starts.append(_num(rq, "request_start_time", f"{where}.requests.successful.{i}"))
        t0 = min(starts) if starts else 0.0
        records = []
        for i, rq in enumerate(ok_list):
            w = f"{where}.requests.successful.{i}"
            start = _num(rq, "request_start_time", w) - t0
            end = _num(rq, "request_end_time", w) - t0
            ttft_ms = _num(rq, "time_to_first_token_ms", w, required=False)
            records.append(RequestRecord(
                index=i, send_s=start, first_token_s=start + (ttft_ms / 1000.0 if ttft_ms is not None else end - start),
                end_s=end, input_tokens=int(_num(rq, "prompt_tokens", w)),
                output_tokens=int(_num(rq, "output_tokens", w)),
                requested_input_tokens=int(_num(rq, "prompt_tokens", w)),
                requested_output_tokens=max(int(_num(rq, "output_tokens", w)), 1)))
        for j in range(bad):
            records.append(RequestRecord(index=len(ok_list) + j, send_s=0.0, requested_input_tokens=1,
                                         requested_output_tokens=1, error="guidellm: errored or incomplete"))
        if not ok_list:
            raise BadFile(where, "requests.successful", "no successful requests")
        summary = summarize(records)
        in_lens = [r.input_tokens for r in records if r.error is None]
        out_lens = [r.output_tokens for r in records if r.error is None]
        kind = workload or infer_workload(in_lens, out_lens)
        record = RunRecord(
            run_id=f"{path.stem}-{k}", status="complete",
            config=RunConfig(model=model, workload=_workload(kind, in_lens, out_lens), mode=mode,
                             concurrency=conc, request_rate_per_s=rate, num_requests=len(records)),
            environment=_environment(hardware, "guidellm", str(bm.get("start_time", "unknown"))),
            summary=summary, derived=None)
        runs.append(_loaded(where, sha, record, records, "guidellm"))
    return runs
