"""A sweep: every spec of a config measured against one server, resuming where a crash stopped.

`run_from_config` is the whole `python -m bench run|sweep`: the model's shape, the hardware, the
server (vLLM started here, or an --endpoint), then `sweep`, which skips specs that already have a
complete run (bench.run.rundir) and measures the others one by one (bench.run.execute).
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.config import ConfigError, RunSpec, SweepConfig
from bench.hardware.device import detect_hardware
from bench.load.prompts import read_length_distribution
from bench.run.adaptive import StopRule, plan, points_of, report_lines
from bench.run.execute import RunResult, Target, execute_run, run_config_for
from bench.run.rundir import complete_run_of_spec, new_run_dir, series_dir, utc_stamp
from bench.server.process import DeadEndpointError, Endpoint, VllmServer
from core.physics import model_info_from_dir
from core.schema.run import RUN_FILE, HardwareInfo, ModelInfo, RequestRecord, RunRecord

# --------------------------------------------------------------------------- the model's prompt ids



def check_inputs(cfg: SweepConfig) -> None:
    """The checks that need the file system, made before any server starts or run directory exists:
    every distribution file is read (exists, has the columns, lengths >= 1). ConfigError, one line."""
    for i, e in enumerate(cfg.runs):
        if e.distribution_file:
            try:
                read_length_distribution(e.distribution_file)
            except ValueError as exc:
                raise ConfigError(f"--distribution-file / runs.{i}.distribution_file: {exc}") from None


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
    order_seed: int | None = None,
    reset_prefix_cache: bool = True,
) -> SweepOutcome:
    """Measure each spec against one running target, in the order given; skip specs that already
    have a complete run (`skip_complete`), measure a failed or crashed spec again in a NEW directory
    (the old is kept), and stop early when the server died (the remaining specs are returned in
    `not_run`). Before each measured run the server's prefix cache is reset where it allows
    (`reset_prefix_cache`; the outcome goes to run.json `config.prefix_cache_reset`); each run.json
    records its replicate, its place in the order and `order_seed` (the seed that made the order)."""
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
        reset = target.reset_prefix_cache() if reset_prefix_cache and hasattr(target, "reset_prefix_cache") else None
        cfg = cfg.model_copy(update={"sweep_order_seed": order_seed, "sweep_position": i,
                                     "prefix_cache_reset": reset})
        res = execute_run(spec, target=target, config=cfg, hardware=hardware, run_dir=run_dir,
                          token_ids=token_ids, log_start=first_log_start, on_record=on_record,
                          timeout_s=timeout_s)
        first_log_start = None
        out.append(res)
        if on_run_end:
            on_run_end(res)
        if res.dead_endpoint is not None:  # every further run would fail the same way

            raise DeadEndpointError(f"{res.dead_endpoint}; sweep stopped after run {res.run_dir.name} "
                                    f"({len(specs) - i - 1} not run)")
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

    path = Path(model)
    if not (path / "config.json").is_file():
        raise ValueError(
            f"--model {model!r}: not a directory with config.json (give a local model directory; "
            "with --endpoint, a directory holding at least the model's config.json)"
        )
    return model_info_from_dir(path, name=name or path.resolve().name), path


def hardware_overrides(hw) -> dict:
    """bench.config.HardwareSection -> the overrides dict of bench.hardware.device.detect_hardware."""
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
    specs = cfg.ordered_specs()  # seeded random order (bench.config), recorded in each run.json
    if not specs:
        raise ValueError("no runs: give --workload (and --concurrency) or [[runs]] in the config")
    srv = cfg.server
    check_specs_fit(specs, srv.max_model_len)
    check_inputs(cfg)  # distribution files: before any server starts or run directory exists
    info, model_dir = load_model_info(cfg.model, cfg.model_name)
    say(f"model {info.name}: {info.params_matmul:,} matmul parameters, {info.quantization}, "
        f"matmuls in {info.matmul_dtype}")

    say("detecting hardware (on a CPU this runs short matmul and bandwidth micro-benchmarks)")
    # devices of one deployment: tensor x pipeline x data parallel (what vLLM occupies; priced per device)
    hardware = detect_hardware(dtype_for_peak=info.matmul_dtype, tensor_parallel_size=srv.devices(),
                               overrides=hardware_overrides(cfg.hardware) or None,
                               endpoint=srv.endpoints[0] if srv.endpoints else None)
    token_ids = token_id_range(model_dir, info.vocab_size)
    served = srv.served_name or info.name
    base = series_dir(Path(cfg.results), hardware.name, info.name)
    config_kwargs = dict(server=srv, slo_ttft_s=cfg.slo_ttft_s, slo_tpot_s=cfg.slo_tpot_s)
    todo = [s for s in specs if not (skip_complete and complete_run_of_spec(base, s.key()))]
    if not todo:
        say(f"all {len(specs)} runs already complete under {base}")
        server = None
    elif srv.endpoints:
        server = Endpoint(srv.endpoints, served_name=served, api_key_env=srv.api_key_env)
    else:
        log = base / f"server-{utc_stamp()}.log"
        server = VllmServer(model_dir, srv, served_name=served, log_path=log, seed=cfg.seed)
        config_kwargs["server_dtype"] = server.dtype
        say(f"starting vLLM ({server.base_url}, --dtype {server.dtype}); log: {log}")
    if server is None:
        target = Target(server=_AlwaysAlive(), served_name=served)
    else:
        target = Target(server=server, served_name=served)
    host_cpus = getattr(server, "host_cpus", None)
    with server if server is not None else _nullcontext(), _on_cpus(host_cpus):
        for line in getattr(server, "stale_stopped", None) or []:
            say(line)
        if server is not None and not target.alive():
            raise ValueError(f"--endpoint {target.base_url}: does not answer GET /health")
        kw = dict(target=target, model=info, hardware=hardware, results=Path(cfg.results), token_ids=token_ids,
                  config_kwargs=config_kwargs, order_seed=cfg.run_order_seed, **sweep_callbacks)
        outcome = sweep(specs, skip_complete=skip_complete, **kw)
        if cfg.until_width is not None and outcome.ok:
            rule = StopRule(cfg.until_width, cfg.max_repeats, cfg.max_extend_s)
            outcome = extend_until_narrow(specs, outcome, rule, say=say, **kw)
        return outcome


@contextlib.contextmanager
def _on_cpus(cpu_ids):
    """This process (the load client) on `cpu_ids` while the block runs (None: unchanged)."""
    if not cpu_ids:
        yield
        return
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, cpu_ids)
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


def extend_until_narrow(specs: Sequence[RunSpec], outcome: SweepOutcome, rule, *, say: Callable[[str], None],
                        **sweep_kwargs) -> SweepOutcome:
    """Adaptive stopping (bench.run.adaptive): rounds of one more replicate of every closed-loop point
    whose interval is still wider than the rule allows, within its repeat and time limits; says the
    width each point reached. Returns the outcome with the extra runs appended."""
    import time

    t0 = time.monotonic()
    done_specs = list(specs[:len(outcome.results)])
    results, not_run = list(outcome.results), list(outcome.not_run)
    while True:
        points = points_of(done_specs, [r.record for r in results])
        extra = plan(points, rule)
        time_up = time.monotonic() - t0 >= rule.max_extend_s
        if not extra or time_up or not_run:
            break
        say(f"adaptive stopping: {len(extra)} point(s) wider than +-{100 * rule.until_width:.1f} %: one more replicate each")
        more = sweep(extra, skip_complete=True, **sweep_kwargs)
        done_specs += list(extra[:len(more.results)])
        results += more.results
        not_run = list(more.not_run)  # the server died: stop extending (the loop reports first)
    for line in report_lines(points, rule, time_up=time_up):
        say(line)
    return SweepOutcome(outcome.base, results, not_run)


class _AlwaysAlive:
    base_url = "(no server needed: every run is complete)"

    def alive(self) -> bool:
        return True


class _nullcontext:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return None
