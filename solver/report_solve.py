"""The sizing report's inputs and its three cost models, solved once (pure).

`solve(inputs, profile, ...)` checks every input (`check_inputs`), then solves the three cost
models at the target and returns a `Solved`, which every section of `solver.report_sections` reads.

* paper:      Eq. 6 (`solver.optimize.optimize_cost`) with the paper's constants
              (`bench.paper_settings.PAPER`: A100-40GB INT8 at MFU 50 % input / 1 % output, $1.10/h).
* calibrated: Eq. 6 with the profile's dollars per useful FLOP of each phase
              (`solver.profile_input.phase_costs`), still constant in N.
* calibrated, N-dependent: `solver.optimize.optimize_cost_general` with the lifetime inference
              dollars of an N-parameter model from `solver.serving` (the profile's performance model,
              fitted on a ladder of sizes: devices, KV room, SLO batch, step time of that shape): goes
              beyond the paper's constant MFU. Only for a profile with a performance model; a profile of
              one model size cannot say how serving cost grows with N, so this scenario is then None.

Training is priced the same way in all three (train GPU and MFU, or a training profile), so the
differences are the inference constants alone.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from bench.paper_settings import PAPER
from bench.physics import ShapeAssumption
from solver import serving
from solver.law import LossLaw
from solver.checks import InputError, check_loss, check_totals
from solver.optimize import Comparison, CostSettings, GeneralCostResult, optimize_cost, optimize_cost_general
from solver.profile_input import PhaseCosts, phase_costs


@dataclass(frozen=True)
class PaperInference:
    """The paper's inference setting (`bench.paper_settings.PAPER`: Sec. 6, B.2, B.3)."""

    gpu: str = "a100-40gb-sxm"  # the GPU table's key for PAPER.inference.gpu
    dtype: str = PAPER.inference.dtype
    usd_per_h: float = PAPER.inference.usd_per_h
    peak_flop_per_s: float = PAPER.inference.peak_flop_per_s
    mfu_input: float = PAPER.mfu_input
    mfu_output: float = PAPER.mfu_output
    source: str = f"{PAPER.inference.source}; {PAPER.mfu_source}"


@dataclass(frozen=True)
class ReportInputs:
    target_loss: float
    requests: float
    train_usd_per_flop: float
    train_description: dict  # how the training price was obtained (GPU, dtype, MFU, $/h, or profile)
    law: LossLaw
    chinchilla_params: float | None = None  # when the target was given as a Chinchilla model size
    input_tokens: float = float(PAPER.input_tokens_per_request)
    output_tokens: float = float(PAPER.output_tokens_per_request)
    peak_requests_per_s: float | None = None  # None: mean rate over the lifetime x peak_to_mean
    lifetime_days: float = 365.0
    peak_to_mean: float = 2.0
    paper: PaperInference = field(default_factory=PaperInference)
    inference_usd_per_h: float | None = None  # overrides the profile's price
    slo_tpot_p90_s: float | None = None  # overrides the profile's SLO
    slo_ttft_p90_s: float | None = None
    no_slo: bool = False  # batch by memory and throughput only (e.g. where no batch can meet any SLO)
    shape: ShapeAssumption = field(default_factory=ShapeAssumption)
    map_points: int = 31  # per axis of the Figure-6-style maps
    map_requests_range: tuple[float, float] = (1e6, 1e13)
    map_chinchilla_params_range: tuple[float, float] = (1e9, 1e11)


_POSITIVE = ("train_usd_per_flop", "lifetime_days", "peak_to_mean")
_OPTIONAL_POSITIVE = ("peak_requests_per_s", "inference_usd_per_h", "slo_tpot_p90_s", "slo_ttft_p90_s")
_NON_NEGATIVE = ("requests", "input_tokens", "output_tokens")


def check_inputs(inputs: ReportInputs, profile=None) -> float:
    """InputError (naming the ReportInputs field) for a number that is not usable; returns the loss.

    With the profile, also the lifetime totals of both constant-cost models (`check_totals`), so a
    demand or price that would overflow is refused before anything is solved.
    """
    loss = float(check_loss(inputs.law, inputs.target_loss))
    for name in _POSITIVE + _OPTIONAL_POSITIVE + _NON_NEGATIVE:
        v = getattr(inputs, name)
        if v is None and name in _OPTIONAL_POSITIVE:
            continue
        ok = isinstance(v, (int, float)) and math.isfinite(v) and (v >= 0 if name in _NON_NEGATIVE else v > 0)
        if not ok:
            raise InputError(name, v, f"need a finite number {'>= 0' if name in _NON_NEGATIVE else '> 0'}")
    if inputs.input_tokens + inputs.output_tokens <= 0:
        raise InputError("input_tokens", inputs.input_tokens, "input + output tokens is 0; need at least one token "
                                                               "per request")
    if profile is not None:
        for settings in (cost_settings_paper(inputs), cost_settings_calibrated(inputs, profile)):
            check_totals(inputs.law, loss, float(inputs.requests), "requests", settings)
    return loss


# --------------------------------------------------------------------------- cost models


def cost_settings_paper(inputs: ReportInputs) -> CostSettings:
    from solver.optimize import usd_per_flop

    c_inf = usd_per_flop(inputs.paper.usd_per_h, inputs.paper.peak_flop_per_s)
    return CostSettings(
        train_usd_per_flop=inputs.train_usd_per_flop,
        input_usd_per_flop=c_inf / inputs.paper.mfu_input,
        output_usd_per_flop=c_inf / inputs.paper.mfu_output,
        input_tokens_per_request=inputs.input_tokens,
        output_tokens_per_request=inputs.output_tokens,
    )


def cost_settings_calibrated(inputs: ReportInputs, profile) -> CostSettings:
    pc = phase_costs(profile, usd_per_h=inputs.inference_usd_per_h)
    return CostSettings(
        train_usd_per_flop=inputs.train_usd_per_flop,
        input_usd_per_flop=pc.usd_per_flop_input,
        output_usd_per_flop=pc.usd_per_flop_output,
        input_tokens_per_request=inputs.input_tokens,
        output_tokens_per_request=inputs.output_tokens,
    )


ServingModel = serving.ServingModel


def serving_model(inputs: ReportInputs, profile) -> ServingModel | None:
    """The profile's N-dependent serving cost (None without a performance model)."""
    return serving.serving_model(
        profile, input_tokens=inputs.input_tokens, output_tokens=inputs.output_tokens,
        usd_per_h=inputs.inference_usd_per_h, tpot_slo_s=inputs.slo_tpot_p90_s, ttft_slo_s=inputs.slo_ttft_p90_s,
        no_slo=inputs.no_slo, assumption=inputs.shape)


def optimize_n_dependent(target_loss: float, requests: float, law: LossLaw, train_usd_per_flop: float,
                         model: ServingModel) -> GeneralCostResult:
    """`optimize_cost_general` with lifetime inference $ = requests × $/request(N) from the fleet model."""
    return optimize_cost_general(
        target_loss, law, train_usd_per_flop, lambda n: requests * model.usd_per_request(n)
    )


# --------------------------------------------------------------------------- the solution


@dataclass(frozen=True)
class Solved:
    """The three optima and what they were computed from: every section reads this."""

    inputs: ReportInputs
    profile: object  # calibrate.schema.Profile
    profile_provenance: dict
    tool: str
    loss: float
    requests: float
    s_paper: CostSettings
    s_cal: CostSettings
    paper: Comparison
    calibrated: Comparison
    model: ServingModel | None  # None: the profile has no performance model
    n_dependent: GeneralCostResult | None
    phase: PhaseCosts

    @property
    def law(self) -> LossLaw:
        return self.inputs.law


def solve(inputs: ReportInputs, profile, profile_provenance: dict, tool: str) -> Solved:
    """Check the inputs, then solve the paper, calibrated and N-dependent cost models at the target."""
    loss = check_inputs(inputs, profile)
    R = float(inputs.requests)
    law = inputs.law
    s_paper, s_cal = cost_settings_paper(inputs), cost_settings_calibrated(inputs, profile)
    model = serving_model(inputs, profile)
    return Solved(
        inputs=inputs, profile=profile, profile_provenance=profile_provenance, tool=tool, loss=loss, requests=R,
        s_paper=s_paper, s_cal=s_cal,
        paper=optimize_cost(loss, R, s_paper, law), calibrated=optimize_cost(loss, R, s_cal, law), model=model,
        n_dependent=None if model is None else optimize_n_dependent(loss, R, law, inputs.train_usd_per_flop, model),
        phase=phase_costs(profile, usd_per_h=inputs.inference_usd_per_h),
    )
