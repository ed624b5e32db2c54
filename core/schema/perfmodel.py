"""What a profile stores of the ladder's performance model (`Profile.performance_model`).

Everything the solver and `calibrate predict` need to predict any model size on this hardware:
the chosen step-time form and its fitted constants with 95 % intervals, the bootstrap parameter
sets behind those intervals, the shapes it was fitted on, the scheduler settings it assumes, the
held-out validation (leave one model out) and the comparison of the candidate forms.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from core.schema.base import Strict


class FittedParam(Strict):
    value: float
    low: float  # 95 % interval from refits on runs resampled within each model
    high: float
    unit: str
    provenance: Literal["fitted", "assumed"] = "fitted"
    source: str | None = None  # for an assumed value: where it comes from


class LadderModel(Strict):
    """One ladder size the model was fitted on."""

    name: str
    params_matmul: float
    num_layers: float
    hidden_size: float
    num_heads: float
    num_kv_heads: float
    head_dim: float
    vocab_size: float
    weight_bytes_read: float
    kv_bytes_per_token: float
    run_ids: list[str]
    steps: int  # engine-step observations from its runs


class Figures(Strict):
    output_tokens_per_s: float | None = None
    input_tokens_per_s: float | None = None
    ttft_s: float | None = None
    tpot_s: float | None = None
    usd_per_request: float | None = None


class HeldOutRun(Strict):
    """One run of a held-out size: measured, predicted by the model fitted without that size, error."""

    run_id: str
    model: str
    params_matmul: float
    input_tokens: int
    output_tokens: int
    concurrency: int
    measured: Figures
    predicted: Figures
    error: Figures  # predicted / measured − 1


class ErrorStat(Strict):
    max_abs: float | None
    mean_abs: float | None


class FormComparison(Strict):
    form: str
    parameters: list[str] = Field(default_factory=list)
    held_out: dict[str, ErrorStat] = Field(default_factory=dict)
    score: float | None = None  # worst held-out |error| on output tok/s and $/request
    chosen: bool = False
    error: str | None = None  # why the form could not be fitted


class ErrorSplit(Strict):
    """The held-out error beside the runs' own noise (calibrate.perfmodel.errorsplit): of one figure."""

    error_median: float | None
    error_max: float | None
    noise_median: float | None  # |replicate / point mean − 1|: what an ideal predictor of each point's mean misses
    noise_max: float | None
    bias_share: float | None  # share of the squared log error that is per-point bias (1: all bias)
    runs: int
    replicated_points: int


class SizeCheck(Strict):
    """A ladder size's predicted batch-1 decode step (operators + the median fitted overheads) and
    whether it can identify the size-dependent terms (calibrate.operators.plan): predicted, not measured."""

    model: str
    params_matmul: int
    layers: int
    hidden: int
    step_s: float
    operator_share: float  # the operators' (N-dependent work's) share of the step
    ticks: float  # step / the scheduler tick
    meets_ticks: bool
    meets_share: bool


class AnsweringSizes(Strict):
    """The smallest size of the shape family meeting both criteria on this device, and what a ladder
    spanning `span`x from it would hold (INT8 weights ~ 1 byte per matmul parameter): predicted."""

    tick_s: float
    min_ticks: float
    min_share: float
    smallest_params: float | None  # None: no size of the operator grid meets both
    span: float
    top_params: float | None
    top_weight_bytes: float | None
    checked_params: list[float]  # the sizes looked at


class OperatorCheck(Strict):
    """The ladder's sizes predicted from the device's measured operators (calibrate.operators.validate),
    each left out in turn: beside the step-time forms, what the operator path would give."""

    operator_profile: str  # results/hardware/operators/<hardware>.json
    sha256: str
    layer_term: bool  # a per-layer overhead fitted beside the per-step one
    engine_step_overhead_s: dict[str, float]  # fitted without each size (keyed by the size left out)
    layer_overhead_s: dict[str, float]
    # where the held-out size lies ("interpolated", "extrapolated (smallest)", "extrapolated (largest)", "all")
    # -> figure -> the split of its error
    error_split: dict[str, dict[str, ErrorSplit]]
    size_checks: list[SizeCheck] = Field(default_factory=list)  # absent in files before 2026-12-07 (2nd)
    answering: AnsweringSizes | None = None
    # the overhead terms (calibrate.operators.stepmodel.TERMS) besides the per-step one: how they were
    # chosen, those chosen without each size (the error above is of that nested procedure), the
    # inner scores on all sizes, and the choice and fit on all sizes (what predicts a new size)
    selection: str = ""
    terms_by_size: dict[str, list[str]] = Field(default_factory=dict)
    cv_scores: dict[str, float] = Field(default_factory=dict)  # "+"-joined terms ("" none) -> mean |log error|
    terms: list[str] = Field(default_factory=list)
    overheads_s: dict[str, float] = Field(default_factory=dict)  # engine, layer, sequence, context (fitted on all)
    request_overhead_s: float | None = None
    # per size left out: the overheads fitted without it (the same keys, and "request")
    overheads_by_size: dict[str, dict[str, float]] = Field(default_factory=dict)


class Scheduler(Strict):
    max_num_seqs: int
    max_num_batched_tokens: int
    source: str


class Parallelism(Strict):
    """Tensor/pipeline-parallel terms: assumed until a run with TP/PP > 1 measures them."""

    provenance: Literal["fitted", "assumed"]
    allreduce_latency_s: float
    interconnect_bytes_per_s: float | None
    source: str


class PerformanceModel(Strict):
    form: str
    formula: str
    params: dict[str, FittedParam]
    request_overhead_s: FittedParam
    # parameter sets (incl. request_overhead_s) of the refits; finite, so what is written can be read back
    bootstrap: list[dict[str, Annotated[float, Field(allow_inf_nan=False)]]]
    fitted_on: list[LadderModel]
    scheduler: Scheduler
    kv_dtype_bytes: int  # KV-cache bytes per element the ladder's servers used (activation dtype)
    parallelism: Parallelism
    forms: list[FormComparison]
    held_out: list[HeldOutRun]
    held_out_max_abs_error: dict[str, float | None]  # per figure, over every held-out run
    # per figure: the error beside the replicates' noise floor and the bias share (absent in older files)
    error_split: dict[str, ErrorSplit] = Field(default_factory=dict)
    operator_check: OperatorCheck | None = None  # with an operator profile of the hardware (calibrate profile)
    target_error: float
    meets_target: bool  # held-out |error| on output tok/s and $/request <= target for every run
    warning: str | None = None  # the profile's first line says it when the target is not met
    method: str
