"""What `calibrate profile` writes: calibration profiles (`results/calibration/*.json`).
`Profile.load(path)` / `profile.save(path)`; every problem is one `core.errors.BadFile` line
"FILE: FIELD: problem". Unknown keys are rejected everywhere.

A profile is the per-hardware set of constants the solver consumes in place of the paper's
assumed 50 % / 1 % MFU: the achieved FLOP rate of each phase (paper convention, 2·N flop per
token) with a 95 % bootstrap interval, the peak it was divided by, the price, and the measured
decode curve. The solver needs only dollars per useful FLOP per phase = usd_per_h /
SECONDS_PER_HOUR / achieved_flop_per_s; MFU is kept beside it so a profile stays valid whatever peak table is right.

Bump the schema_version on any breaking change.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from core.schema.base import FileModel, Strict
from core.schema.perfmodel import PerformanceModel

# 2: optional performance_model; 3: replicates, coverage, measured_mix, `source` on estimates.
# Files of versions 1 and 2 (none of these fields) read as they are.
PROFILE_SCHEMA_VERSION = 3


class Estimate(Strict):
    """A point estimate with its 95 % bootstrap interval (low <= value <= high)."""

    value: float
    low: float
    high: float
    # bootstrap resamples behind the interval; for a measured mix's t interval (MeasuredMix) the
    # number of runs behind it (0: no interval could be computed)
    n_boot: int = 0
    # measured: read off runs at that point; fitted: from the joint fit; predicted: the performance
    # model. None in files before schema 3.
    source: Literal["measured", "fitted", "predicted"] | None = None


class ProfileHardware(Strict):
    name: str
    kind: Literal["gpu", "cpu", "remote"]
    device_name: str
    device_count: int = Field(gt=0)
    peak_dtype: str
    peak_flop_per_s: float | None  # per device; None when unknown (then MFU is None too)
    peak_source: str
    memory_bytes: int | None = None
    memory_bandwidth_bytes_per_s: float | None = None
    bandwidth_source: str | None = None
    usd_per_h: float = Field(gt=0)  # per device-hour
    usd_per_h_source: str


class ProfileModel(Strict):
    name: str
    quantization: str
    params_matmul: int
    params_total: int
    num_layers: int
    hidden_size: int
    num_kv_heads: int
    head_dim: int
    weight_bytes: int | None = None
    bytes_per_param: float | None = None  # weight_bytes / params_total, as served


class CurvePoint(Strict):
    """Decode measured at one concurrency (decode-workload runs)."""

    concurrency: int
    output_tokens_per_s: float
    achieved_flop_per_s: float  # paper convention, all devices
    mfu_output: float | None
    mbu_output: float | None = None
    tpot_p90_s: float | None = None
    ttft_p90_s: float | None = None
    itl_p90_s: float | None = None  # p90 over every gap between streamed chunks (schema 3)
    run_ids: list[str]


class Slo(Strict):
    ttft_p90_s: float = Field(gt=0)
    tpot_p90_s: float = Field(gt=0)
    source: str  # why these limits ("default: ...", "command line")


class OperatingPoint(Strict):
    """The highest-throughput measured concurrency that meets the SLO (mixed runs where measured)."""

    concurrency: int
    output_tokens_per_s: float
    mfu_output: float | None
    meets_slo: bool  # False when no measured point met it (then the lowest concurrency is used)
    # Schema 3: which runs chose it ("mixed" where there are mixed runs) and their latencies there.
    workload: str | None = None
    tpot_p90_s: float | None = None
    ttft_p90_s: float | None = None
    itl_p90_s: float | None = None


class Costs(Strict):
    usd_per_request_paper_mix: Estimate  # 70 input + 215 output tokens (the paper's LMSYS means)
    usd_per_request_measured_mix: Estimate | None = None
    measured_mix_input_tokens: float | None = None
    measured_mix_output_tokens: float | None = None
    usd_per_million_input_tokens: Estimate
    usd_per_million_output_tokens: Estimate
    energy_j_per_request: float | None = None  # where NVML measured energy


class ReplicatePoint(Strict):
    """One sweep point (concurrency, workload, lengths) and the spread of its replicate runs."""

    concurrency: int
    workload: str
    input_tokens: float  # per request, mean
    output_tokens: float
    runs: int
    device_s_per_request: list[float]  # per run, over its window (measured)
    usd_per_request: list[float]  # per run, over its window (measured)
    cv: float | None  # between-replicate coefficient of variation of device_s_per_request (None: one run)


class MixCoverage(Strict):
    """A measured mix: each replicate's directly measured $/request against the profile's interval."""

    concurrency: int
    input_tokens: float
    output_tokens: float
    interval_usd: tuple[float, float]
    interval_source: Literal["measured", "fitted", "predicted"]
    measured_usd: list[float]
    covered: float  # fraction of measured_usd inside interval_usd


class Coverage(Strict):
    mixes: list[MixCoverage]
    covered: float | None  # over every replicate of every measured mix (None: no mixed runs)
    note: str


class MeasuredMix(Strict):
    """The mixed workload measured at the operating concurrency: its figures come from those runs."""

    concurrency: int
    input_tokens: float
    output_tokens: float
    runs: int
    usd_per_request: Estimate  # mean over replicates; interval: a fresh run's (see provenance.method)
    ttft_p90_s: float | None
    tpot_p90_s: float | None  # p90 over requests of each request's TPOT
    itl_p90_s: float | None  # p90 over every inter-chunk gap (stalls a request's mean TPOT hides)
    source: Literal["measured"] = "measured"


class RunRef(Strict):
    path: str
    sha256: str  # of run.json
    run_id: str


class Dropped(Strict):
    path: str
    reason: str


class ProfileProvenance(Strict):
    runs: list[RunRef]
    dropped: list[Dropped]
    vllm_version: str | None
    created_utc: str
    tool: str  # "calibrate <version>" + git commit
    method: str  # how the constants were computed, in words
    inputs: Literal["bench", "vllm-bench-serve", "guidellm", "mixed", "synthetic"] = "bench"


class Profile(FileModel):
    # First key of the file: set when the performance model's held-out error is above its target.
    warning: str | None = None
    schema_version: Literal[1, 2, 3] = PROFILE_SCHEMA_VERSION
    kind: Literal["calibration_profile"] = "calibration_profile"
    hardware: ProfileHardware
    model: ProfileModel
    operating_concurrency: int | None  # the concurrency the per-token costs below are taken at
    seconds_per_input_token: Estimate  # device-seconds per token at that concurrency (joint fit)
    seconds_per_output_token: Estimate  # per output token after each request's first (that one comes out of prefill)
    achieved_flop_per_s_input: Estimate  # 2·N · device_count / seconds_per_input_token (all devices)
    achieved_flop_per_s_output: Estimate
    mfu_input: Estimate | None  # achieved / (peak * devices); None when the peak is unknown
    mfu_output: Estimate | None
    phase_isolated: dict[str, float | None] = Field(default_factory=dict)  # mfu from prefill-only / decode-only runs
    decode_curve: list[CurvePoint]
    slo: Slo
    operating_point: OperatingPoint | None
    costs: Costs
    provenance: ProfileProvenance
    # The hardware+engine performance model fitted to a ladder of model sizes (core.schema.perfmodel);
    # None for a profile of one model.
    performance_model: PerformanceModel | None = None
    # Schema 3 (issue 10): replicate spread per sweep point, the noisy-machine flag, the coverage
    # check and the measured mix at the operating point. Absent in older files.
    replicates: list[ReplicatePoint] = Field(default_factory=list)
    noisy_machine: bool | None = None  # some point's between-replicate CV > calibrate.profile.build.NOISY_CV
    coverage: Coverage | None = None
    measured_mix: MeasuredMix | None = None
