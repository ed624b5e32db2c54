"""One measured run: send its requests, scrape the server's counters, sample NVML, write the run directory.

`execute_run` fills a run directory laid out as bench/run/rundir.py describes, writing run.json last.
Scrape points and FLOP counts (for `derived.flop_ratio_to_vllm`): metrics_before is scraped before
the warm-up, so vLLM's counter delta covers warm-up + measured requests; `bench.run.derive` counts the
same requests (every record in requests.jsonl that succeeded).
"""

from __future__ import annotations

import asyncio
import datetime as _dt
import json
import platform
import socket
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from bench.config import RunSpec
from bench.load.client import fail_fast_reason, make_prompts, run_load
from bench.run.derive import VLLM_FLOP_COUNTER, derive, window_energy_j
from bench.run.rundir import utc_now
from bench.run.telemetry import NvmlSampler, parse_metrics, scrape_metrics
from bench.server.process import copy_log_slice, is_interrupt, server_settings
from core.files import write_atomic
from core.metrics import summarize
from core.provenance import git_commit, package_versions
from core.schema.base import save_file
from core.schema.run import (
    FAILED_MARKER,
    METRICS_AFTER,
    METRICS_BEFORE,
    REQUESTS_FILE,
    RUN_FILE,
    SERVER_LOG,
    SPEC_FILE,
    TELEMETRY_FILE,
    Environment,
    HardwareInfo,
    ModelInfo,
    RequestRecord,
    RunConfig,
    RunRecord,
    SpecFile,
)

METRICS_SETTLE_S = 5.0  # longest wait for vLLM's counters to stop moving after the last response


# --------------------------------------------------------------------------- environment


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



# --------------------------------------------------------------------------- what a run talks to


@dataclass
class Target:
    """What a run sends requests to: a started server (bench.server.process.ServerProcess / VllmServer, or a
    fake one) or an `Endpoint`. Duck-typed: base_url, served_name, optional api_key, alive(),
    log_path / log_offset()."""

    server: object
    served_name: str

    @property
    def base_url(self) -> str:
        return self.server.base_url

    @property
    def base_urls(self) -> list[str]:
        """Every URL the load is split across (one, unless an Endpoint of several)."""
        return list(getattr(self.server, "base_urls", None) or [self.server.base_url])

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

    def reset_prefix_cache(self, timeout_s: float = 10) -> str:
        """POST <base>/reset_prefix_cache on every URL (vLLM; it serves it only with
        VLLM_SERVER_DEV_MODE=1): "reset", or why not. Fails soft: a run is never stopped by it."""
        return reset_prefix_cache(self.base_urls, self.api_key, timeout_s=timeout_s)


def reset_prefix_cache(base_urls: list[str], api_key: str | None = None, *, timeout_s: float = 10) -> str:
    """`Target.reset_prefix_cache` for plain URLs."""
    import urllib.error
    import urllib.request

    problems = []
    for url in base_urls:
        req = urllib.request.Request(url.rstrip("/") + "/reset_prefix_cache", data=b"", method="POST")
        if api_key:
            req.add_header("Authorization", f"Bearer {api_key}")
        try:
            with urllib.request.urlopen(req, timeout=timeout_s) as r:
                if r.status != 200:
                    problems.append(f"{url}: HTTP {r.status}")
        except urllib.error.HTTPError as exc:
            hint = " (vLLM serves it only with VLLM_SERVER_DEV_MODE=1)" if exc.code == 404 else ""
            problems.append(f"{url}: HTTP {exc.code}{hint}")
        except (OSError, ValueError) as exc:  # refused, timeout, bad URL
            problems.append(f"{url}: {getattr(exc, 'reason', None) or exc}")
    return "reset" if not problems else "not reset: " + "; ".join(problems)


@dataclass
class RunResult:
    run_dir: Path
    record: RunRecord
    server_alive: bool = True
    skipped: bool = False
    notes: list[str] = field(default_factory=list)
    dead_endpoint: str | None = None  # bench.load.client.fail_fast_reason: the sweep stops (DeadEndpointError)


def _scrape(base_url: str | list[str], api_key: str | None = None) -> tuple[str | None, dict[str, float] | None, str | None]:
    """(text, parsed, error) of GET /metrics. Several endpoints of one deployment: the texts one
    after the other (each after a `# endpoint: URL` line), the parsed values summed."""

    urls = [base_url] if isinstance(base_url, str) else list(base_url)
    texts, total = [], {}
    for url in urls:
        try:
            headers = {"Authorization": f"Bearer {api_key}"} if api_key else None
            text = scrape_metrics(url, headers=headers)
            parsed = parse_metrics(text)
        except Exception as exc:  # a dead server or no /metrics: recorded, not fatal
            return None, None, f"{url}: {type(exc).__name__}: {exc}" if len(urls) > 1 else f"{type(exc).__name__}: {exc}"
        if len(urls) == 1:
            return text, parsed, None
        texts.append(f"# endpoint: {url}\n{text}")
        for k, v in parsed.items():
            total[k] = total.get(k, 0.0) + v
    return "".join(texts), total, None


def _scrape_settled(base_url: str | list[str], api_key: str | None = None, settle_s: float = METRICS_SETTLE_S):
    """Scrape until vLLM's FLOP counter stops moving (its stats reach the API process a moment after
    the last streamed token), at most `settle_s` seconds."""

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


def _total_energy_j(sampler: NvmlSampler) -> float | None:
    """Joules over the run, all devices (NVML's cumulative counter; None without NVML)."""
    if not sampler.available:
        return None
    try:
        total, _method = sampler.total_energy_j()
    except Exception:  # noqa: BLE001 - telemetry must never stop a run
        return None
    return total


INTERRUPTED_MARKER_TEXT = "interrupted\n"  # first line of FAILED for a run stopped by SIGINT or SIGTERM


def execute_run(spec: RunSpec, **kwargs) -> RunResult:
    """Measure one spec into `run_dir` (already created, empty) and return its RunResult (keywords:
    see `_execute_run`). Stopped by a signal (bench.server.process.Interrupted, or KeyboardInterrupt) at any
    point before run.json is written: FAILED is written with the same first line for SIGINT and
    SIGTERM ("interrupted"), no run.json, and the interrupt goes on (the requests in flight are in
    requests.jsonl with bench.load.client.INTERRUPTED_ERROR)."""

    run_dir = Path(kwargs["run_dir"])
    try:
        return _execute_run(spec, **kwargs)
    except BaseException as exc:
        if is_interrupt(exc) and not (run_dir / RUN_FILE).exists():
            name = getattr(exc, "signal_name", "SIGINT")  # a bare KeyboardInterrupt is Python's SIGINT
            write_atomic(run_dir / FAILED_MARKER, INTERRUPTED_MARKER_TEXT +
                         f"stopped by {name} before the run finished; no run.json written; requests in "
                         "flight are in requests.jsonl as interrupted\n")
        raise


def _execute_run(
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

    started = utc_now()
    save_file(SpecFile(key=spec.key(), **spec.as_dict(), provenance="bench.run.execute: the sweep spec this run measures"),
              run_dir / SPEC_FILE)
    # measured prompts only: run_load derives the warm-up prompts from them (same shapes, other ids)
    prompts = make_prompts(spec.workload, spec.num_requests, seed=spec.seed,
                           token_id_low=token_ids[0], token_id_high=token_ids[1])
    log_begin = target.log_offset() if log_start is None else log_start

    text_before, metrics_before, scrape_err = _scrape(target.base_urls, target.api_key)
    if text_before is not None:
        write_atomic(run_dir / METRICS_BEFORE, text_before)

    sampler = NvmlSampler(interval_s=telemetry_interval_s)
    with sampler:
        # the load's clock zero, and where it sits on the sampler's clock (time.monotonic): the
        # energy over the steady-state window is read off the telemetry rows with it
        t0 = time.perf_counter()
        t0_monotonic = time.monotonic() - (time.perf_counter() - t0)
        records, error = _send_requests(spec, target, prompts, run_dir / REQUESTS_FILE,
                                        on_record=on_record, timeout_s=timeout_s, t0=t0)

    alive = target.alive()
    text_after, metrics_after, scrape_err_after = (
        _scrape_settled(target.base_urls, target.api_key) if alive else (None, None, "server not running")
    )
    if text_after is not None:
        write_atomic(run_dir / METRICS_AFTER, text_after)
    write_atomic(run_dir / TELEMETRY_FILE, "".join(json.dumps(s) + "\n" for s in sampler.rows()))
    energy_j = _total_energy_j(sampler)
    _write_server_log(target, run_dir / SERVER_LOG, log_begin)

    summary = summarize(records, slo_ttft_s=config.slo_ttft_s, slo_tpot_s=config.slo_tpot_s,
                        concurrency=config.concurrency)
    error, summary, dead_endpoint = _verdict(error, summary, records, alive=alive, urls=target.base_urls)
    derived, notes = None, []
    if scrape_err:
        notes.append(f"metrics before: {scrape_err}")
    if scrape_err_after:
        notes.append(f"metrics after: {scrape_err_after}")
    if summary.num_ok > 0 and summary.duration_s > 0:
        w = summary.window
        energy_window_j = None if w is None else window_energy_j(sampler.rows(), t0_monotonic + w.start_s,
                                                                 t0_monotonic + w.end_s)
        derived = derive(config, summary, hardware, records, metrics_before, metrics_after, energy_j,
                         energy_window_j=energy_window_j)
        derived.notes.extend(notes)

    status = "failed" if error else "complete"
    record = RunRecord(
        run_id=run_dir.name,
        status=status,
        error=error,
        config=config,
        environment=environment(hardware, sampler.status(), started),
        summary=summary,
        derived=derived,
    )
    if status == "failed":
        write_atomic(run_dir / FAILED_MARKER, error + "\n")
    save_file(record, run_dir / RUN_FILE)
    return RunResult(run_dir=run_dir, record=record, server_alive=alive, notes=notes, dead_endpoint=dead_endpoint)


def _send_requests(
    spec: RunSpec, target: Target, prompts, requests_file: Path, *,
    on_record: Callable[[RequestRecord], None] | None, timeout_s: float, t0: float | None = None,
) -> tuple[list[RequestRecord], str | None]:
    """(records, error): the load of one run, each finished request appended to requests.jsonl as it
    ends (a crash keeps every finished request); error says why the load generator gave up. The
    records' times are relative to `t0` (a time.perf_counter() value; default: run_load's start)."""

    records: list[RequestRecord] = []
    lock = threading.Lock()
    error: str | None = None
    with open(requests_file, "a", encoding="utf-8") as req_file:

        def record_cb(rec: RequestRecord) -> None:
            with lock:
                records.append(rec)
                req_file.write(rec.model_dump_json() + "\n")
                req_file.flush()
            if on_record is not None:
                on_record(rec)

        try:
            returned = asyncio.run(run_load(
                target.base_urls, target.served_name, prompts, mode=spec.mode,
                concurrency=spec.concurrency, request_rate_per_s=spec.request_rate_per_s,
                warmup_requests=spec.warmup_requests, seed=spec.seed, api_key=target.api_key,
                timeout_s=timeout_s, on_record=record_cb, t0=t0,
            ))  # fmt: skip
        except Exception as exc:  # noqa: BLE001 - the run is recorded as failed, the sweep goes on
            returned = None
            error = f"load generator raised {type(exc).__name__}: {exc}"
        if returned is not None and len(returned) > len(records):
            # run_load did not call on_record for every request: write the rest now
            seen = {r.index for r in records}
            for rec in returned:
                if rec.index not in seen:
                    records.append(rec)
                    req_file.write(rec.model_dump_json() + "\n")
    return records, error


def _write_server_log(target: Target, path: Path, log_begin: int | None) -> None:
    """server.log: the slice of the server's own log, or a note for a server bench did not start."""
    log_path = getattr(target.server, "log_path", None)
    if log_path is not None and Path(log_path).exists() and log_begin is not None:
        copy_log_slice(log_path, log_begin, None, path)
    else:
        write_atomic(path, f"# no server log: {target.base_url} was not started by bench\n")


def _verdict(error: str | None, summary, records: list[RequestRecord], *, alive: bool, urls: list[str]):
    """(error, summary, dead_endpoint): why the run failed (the first reason, in the order the load
    raised / an endpoint refused / the server died / > 1 % of requests failed), and the summary
    marked invalid when it did."""

    dead_endpoint = fail_fast_reason(records, urls[0] if len(urls) == 1 else f"{len(urls)} endpoints")
    if error is None and dead_endpoint is not None:
        error = dead_endpoint
    if error is None and not alive:
        error = "server died during the run"
    if error is None and not summary.valid:
        error = (f"{summary.num_failed} of {summary.num_ok + summary.num_failed} measured requests "
                 f"failed ({summary.failure_fraction:.1%} > 1 %)")
    if error is not None and summary.valid:
        summary = summary.model_copy(update={"valid": False})
    return error, summary, dead_endpoint


def run_config_for(spec: RunSpec, model: ModelInfo, *, server=None, slo_ttft_s: float | None = None,
                   slo_tpot_s: float | None = None, server_dtype: str | None = None, **server_fields) -> RunConfig:
    """The run's RunConfig. The server's settings come from `server` (the [server] section,
    bench.config.ServerSection) with `server_fields` (e.g. max_num_seqs=16) replacing its values."""

    srv = server_settings(server, **server_fields)
    urls = srv.endpoints
    return RunConfig(
        model=model, workload=spec.workload, mode=spec.mode, concurrency=spec.concurrency,
        request_rate_per_s=spec.request_rate_per_s, num_requests=spec.num_requests,
        warmup_requests=spec.warmup_requests, seed=spec.seed, replicate=spec.replicate,
        max_model_len=srv.max_model_len,
        max_num_seqs=srv.max_num_seqs, tensor_parallel_size=srv.tensor_parallel_size,
        pipeline_parallel_size=srv.pipeline_parallel_size, data_parallel_size=srv.data_parallel_size,
        distributed_executor_backend=srv.distributed_executor_backend,
        endpoint=urls[0] if urls else None, endpoints=urls if len(urls) > 1 else None,
        slo_ttft_s=slo_ttft_s, slo_tpot_s=slo_tpot_s, server_dtype=server_dtype,
        cpu_layout=None if urls else srv.cpu_layout,
    )  # fmt: skip
