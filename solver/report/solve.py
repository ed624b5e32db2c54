"""The sizing report's inputs and its three cost models, solved once (pure).

`solve(inputs, profile, ...)` checks every input (`check_inputs`), then solves the three cost
models at the target and returns a `Solved`, which every section of `solver.report.sections` reads.

* paper:      Eq. 6 (`solver.optimize.solve.optimize_cost`) with the paper's constants
              (`core.paper.PAPER`: A100-40GB INT8 at MFU 50 % input / 1 % output, $1.10/h).
* calibrated: Eq. 6 with the profile's dollars per useful FLOP of each phase
              (`solver.optimize.costs.phase_costs`), still constant in N.
* calibrated, N-dependent: `solver.optimize.solve.optimize_cost_general` with the lifetime inference
              dollars of an N-parameter model from `solver.optimize.serving` (the profile's performance model,
              fitted on a ladder of sizes: devices, KV room, SLO batch, step time of that shape): goes
              beyond the paper's constant MFU. Only for a profile with a performance model; a profile of
              one model size cannot say how serving cost grows with N, so this scenario is then None.

Training is priced the same way in all three (train GPU and MFU, or a training profile), so the
differences are the inference constants alone.

Beyond the three, `solve` also computes what a user acts on (`Sizing`):

* **provisioned fleet.** The fleet is sized for the peak request rate and paid for every hour of the
  lifetime, so it serves load a fraction u = mean / peak of the time (its utilisation; 1 / R for a
  peak-to-mean ratio R, from --peak-to-mean or an hourly demand CSV, `solver.optimize.demand`). Constant-MFU
  Eq. 6 then has each inference $/useful FLOP divided by u (`provisioned_paper`, `provisioned_cal`; u = 1
  gives back the paper's full-utilisation optimum exactly). In the N-dependent model the lifetime
  inference dollars are the fleet's device-hours: peak · lifetime seconds · $/request at the SLO
  (`solver.optimize.serving`: a request's device-seconds / the utilisation at which TTFT p90 still meets the
  limit), i.e. requests / u · $/request at the SLO.
* **the SLO as a constraint.** A model size no batch serves within TPOT p90 and TTFT p90 (with
  queueing at the planned utilisation) is infeasible; `constrained` is the cheapest feasible N
  (`optimize_cost_general(feasible=...)`), `unconstrained` the optimum with no latency limit at all
  (batch by throughput, devices busy at the peak), so constrained total - unconstrained total is what
  the SLO costs (never < 0: for every N the SLO price is at least the unconstrained one). No feasible N:
  `constrained` is None and `infeasible` says why.
* the same two at full utilisation (u = 1, devices always busy, no queueing headroom): the paper-style
  pricing, shown beside the provisioned one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from core.errors import BadValue
from core.paper import PAPER
from core.physics import ShapeAssumption
from solver.optimize import serving
from solver.optimize.checks import TRAIN_FLOP_PER_PARAM_TOKEN, check_loss, check_totals
from solver.optimize.costs import PhaseCosts, phase_costs
from solver.optimize.data_limit import DataLimitUnreachable, data_limited_optimum
from solver.optimize.demand import provisioned_settings
from solver.optimize.laws import LossLaw
from solver.optimize.solve import (
    Comparison,
    CostSettings,
    GeneralCostResult,
    NoFeasibleModel,
    optimize_cost,
    optimize_cost_general,
    usd_per_flop,
)


@dataclass(frozen=True)
class PaperInference:
    """The paper's inference setting (`core.paper.PAPER`: Sec. 6, B.2, B.3)."""

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
    demand_source: str = "--peak-to-mean"  # or the hourly demand CSV the ratio came from
    demand_hours: int | None = None  # 24 | 168 for a CSV
    max_train_tokens: float | None = None  # unique training tokens available (solver.optimize.data_limit)
    repeat_data: bool = True  # allow repeated epochs under max_train_tokens (Muennighoff et al. 2023)
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
_OPTIONAL_POSITIVE = ("peak_requests_per_s", "inference_usd_per_h", "slo_tpot_p90_s", "slo_ttft_p90_s",
                      "max_train_tokens")
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
            raise BadValue(name, v, f"need a finite number {'>= 0' if name in _NON_NEGATIVE else '> 0'}")
    if inputs.input_tokens + inputs.output_tokens <= 0:
        raise BadValue("input_tokens", inputs.input_tokens, "input + output tokens is 0; need at least one token "
                                                               "per request")
    if inputs.peak_to_mean < 1:
        raise BadValue("peak_to_mean", inputs.peak_to_mean, "need a ratio >= 1 (the peak is at least the mean)")
    mean, peak = rates(inputs)
    if peak < mean * (1 - 1e-12):
        why = f"below the mean rate {mean:.6g} requests/s of {inputs.requests:.6g} requests over the lifetime"
        raise BadValue("peak_requests_per_s", peak, f"{why}; need peak_requests_per_s >= {mean:.6g}", why=why,
                         limit=mean, upper=False)
    if profile is not None:
        for settings in (cost_settings_paper(inputs), cost_settings_calibrated(inputs, profile)):
            check_totals(inputs.law, loss, float(inputs.requests) / utilisation(inputs), "requests", settings)
    return loss


SECONDS_PER_DAY = 86400.0


def rates(inputs: ReportInputs) -> tuple[float, float]:
    """(mean, peak) request rate per second: mean = lifetime requests / lifetime; peak given, or R x mean."""
    mean = float(inputs.requests) / (inputs.lifetime_days * SECONDS_PER_DAY)
    peak = float(inputs.peak_requests_per_s) if inputs.peak_requests_per_s is not None else mean * inputs.peak_to_mean
    return mean, peak


def utilisation(inputs: ReportInputs) -> float:
    """mean / peak: the share of provisioned device-hours that serve load (1 without demand)."""
    mean, peak = rates(inputs)
    return mean / peak if peak > 0 and mean > 0 else 1.0


# --------------------------------------------------------------------------- cost models


def cost_settings_paper(inputs: ReportInputs) -> CostSettings:
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


def optimize_sized(target_loss: float, capacity_requests: float, law: LossLaw, train_usd_per_flop: float,
                   model: ServingModel, *, slo: bool) -> GeneralCostResult:
    """The N-dependent optimum of a fleet provisioned for `capacity_requests` (peak rate x lifetime).

    slo=True: $/request at the SLO (utilisation headroom for TTFT p90) and infeasible N excluded
    (NoFeasibleModel when none is feasible); slo=False: `model` without any latency limit.
    """
    if slo:
        return optimize_cost_general(target_loss, law, train_usd_per_flop,
                                     lambda n: capacity_requests * model.usd_per_request_at_slo(n),
                                     feasible=model.feasible)
    free = model.without_slo()
    return optimize_cost_general(target_loss, law, train_usd_per_flop,
                                 lambda n: capacity_requests * free.usd_per_request(n))


@dataclass(frozen=True)
class Sizing:
    """The SLO-constrained and unconstrained N-dependent optima, provisioned and at full utilisation."""

    utilisation: float
    mean_requests_per_s: float
    peak_requests_per_s: float
    peak_source: str
    lifetime_h: float
    constrained: GeneralCostResult | None  # None: no feasible N (infeasible says why)
    unconstrained: GeneralCostResult
    full_constrained: GeneralCostResult | None
    full_unconstrained: GeneralCostResult
    infeasible: str | None
    free_model: ServingModel  # the model without a latency limit (its cache kept for the sections)
    data_limit: object | None = None  # solver.optimize.data_limit.DataLimitedPlan of the constrained plan, with a limit
    without_data_limit: GeneralCostResult | None = None  # the constrained optimum before the data limit


def peak_source(inputs: ReportInputs) -> str:
    if inputs.peak_requests_per_s is not None:
        return "command line (--peak-requests-per-s)"
    shape = (f"peak-to-mean {inputs.peak_to_mean:g} from the hourly demand profile {inputs.demand_source}"
             if inputs.demand_hours else f"peak = {inputs.peak_to_mean:g} x mean (--peak-to-mean, assumed)")
    return f"lifetime demand spread over {inputs.lifetime_days:g} days, {shape}"


def infeasible_message(model: ServingModel, loss: float) -> str:
    wl, hw = model.workload, model.hardware
    limits = ", ".join(x for x in (f"TPOT p90 <= {wl.tpot_slo_s:g} s" if wl.tpot_slo_s else "",
                                   f"TTFT p90 <= {wl.ttft_slo_s:g} s" if wl.ttft_slo_s else "") if x)
    return (f"no model size reaching loss {loss:.6g} can be served within the SLO ({limits}) on {hw.name}: "
            f"every candidate N misses it at every batch (p90/mean ratios {wl.tpot_p90_ratio:.3g} TPOT, "
            f"{wl.ttft_p90_ratio:.3g} TTFT); relax the SLO (--slo-tpot-p90-s, --slo-ttft-p90-s), "
            f"choose faster hardware, or size without it (--no-slo)")


def sizing(inputs: ReportInputs, loss: float, law: LossLaw, model: ServingModel) -> Sizing:
    mean, peak = rates(inputs)
    lifetime_s = inputs.lifetime_days * SECONDS_PER_DAY
    capacity = peak * lifetime_s
    c_tr = inputs.train_usd_per_flop
    try:
        constrained = optimize_sized(loss, capacity, law, c_tr, model, slo=True)
        full_constrained = optimize_cost_general(loss, law, c_tr, lambda n: inputs.requests * model.usd_per_request(n),
                                                 feasible=model.feasible)
        why = None
    except NoFeasibleModel:
        constrained = full_constrained = None
        why = infeasible_message(model, loss)
    free = model.without_slo()
    limited = unlimited = None
    if inputs.max_train_tokens is not None and constrained is not None:
        try:
            limited, unlimited = _data_limited(inputs, loss, law, constrained, capacity, model), constrained
            constrained = _replan(constrained, limited, c_tr, capacity * model.usd_per_request_at_slo(limited.params))
        except DataLimitUnreachable as exc:
            why, constrained, unlimited = str(exc), None, constrained
    return Sizing(
        utilisation=utilisation(inputs), mean_requests_per_s=mean, peak_requests_per_s=peak,
        peak_source=peak_source(inputs), lifetime_h=lifetime_s / 3600.0, constrained=constrained,
        unconstrained=optimize_cost_general(loss, law, c_tr, lambda n: capacity * free.usd_per_request(n)),
        full_constrained=full_constrained,
        full_unconstrained=optimize_cost_general(loss, law, c_tr,
                                                 lambda n: inputs.requests * free.usd_per_request(n)),
        infeasible=why, free_model=free, data_limit=limited, without_data_limit=unlimited,
    )


def _data_limited(inputs: ReportInputs, loss: float, law: LossLaw, constrained: GeneralCostResult,
                  capacity: float, model: ServingModel):
    """The cheapest SLO-feasible (N, D) reaching the loss with at most max_train_tokens unique tokens
    (`solver.optimize.data_limit.data_limited_optimum`; infeasible N cost inf, so they are never chosen)."""

    def cost(n: float, d: float) -> float:
        if np.ndim(n) or np.ndim(d):
            raise TypeError("scalar N and D only")  # data_limited_optimum then calls point by point
        if not model.feasible(float(n)):
            return math.inf
        return (TRAIN_FLOP_PER_PARAM_TOKEN * inputs.train_usd_per_flop * float(n) * float(d)
                + capacity * model.usd_per_request_at_slo(float(n)))

    return data_limited_optimum(law, loss, cost, float(inputs.max_train_tokens), repeat=inputs.repeat_data,
                                unconstrained=(constrained.params, constrained.train_tokens))


def _replan(g: GeneralCostResult, plan, c_tr: float, inference_usd: float) -> GeneralCostResult:
    from dataclasses import replace

    train = TRAIN_FLOP_PER_PARAM_TOKEN * c_tr * plan.params * plan.train_tokens
    return replace(g, params=plan.params, train_tokens=plan.train_tokens, train_usd=train,
                   inference_usd=inference_usd, total_usd=train + inference_usd)


# --------------------------------------------------------------------------- the solution


@dataclass(frozen=True)
class Solved:
    """The three optima and what they were computed from: every section reads this."""

    inputs: ReportInputs
    profile: object  # core.schema.profile.Profile
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
    provisioned_paper: Comparison | None = None  # Eq. 6 with inference $/FLOP / utilisation
    provisioned_cal: Comparison | None = None
    sizing: Sizing | None = None  # None without a performance model
    label: str | None = None  # the profile's label in the hardware comparison (default: hardware name)
    others: tuple = ()  # further profiles solved alone with the same inputs (Solved each): hardware section

    @property
    def law(self) -> LossLaw:
        return self.inputs.law


def solve(inputs: ReportInputs, profile, profile_provenance: dict, tool: str, *, label: str | None = None,
          others: tuple = ()) -> Solved:
    """Check the inputs, then solve the paper, calibrated and N-dependent cost models at the target.

    `others`: (profile, provenance, label) of further hardware, each solved alone with the same inputs
    (for the `hardware` section; their rows are those of their own single-hardware reports).
    """
    loss = check_inputs(inputs, profile)
    R = float(inputs.requests)
    law = inputs.law
    s_paper, s_cal = cost_settings_paper(inputs), cost_settings_calibrated(inputs, profile)
    model = serving_model(inputs, profile)
    u = utilisation(inputs)
    return Solved(
        inputs=inputs, profile=profile, profile_provenance=profile_provenance, tool=tool, loss=loss, requests=R,
        s_paper=s_paper, s_cal=s_cal,
        paper=optimize_cost(loss, R, s_paper, law), calibrated=optimize_cost(loss, R, s_cal, law), model=model,
        n_dependent=None if model is None else optimize_n_dependent(loss, R, law, inputs.train_usd_per_flop, model),
        phase=phase_costs(profile, usd_per_h=inputs.inference_usd_per_h),
        provisioned_paper=optimize_cost(loss, R, provisioned(s_paper, u), law),
        provisioned_cal=optimize_cost(loss, R, provisioned(s_cal, u), law),
        sizing=None if model is None else sizing(inputs, loss, law, model),
        label=label or profile.hardware.name,
        others=tuple(solve(inputs, p, prov, tool, label=lab) for p, prov, lab in others),
    )


def provisioned(settings: CostSettings, u: float) -> CostSettings:
    """Eq. 6 constants of a fleet busy a fraction u of its hours: inference $/useful FLOP / u
    (`solver.optimize.demand.provisioned_settings` with R = 1/u; u = 1 returns `settings` itself)."""

    return provisioned_settings(settings, 1.0 / u)
