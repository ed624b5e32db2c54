"""The report's sizing sections: the serving plan of a model size, the SLO as a constraint (`sizing`),
Eq. 6 with a provisioned fleet (`provisioned`) and the data limit (`data_limit`); each section's
model beside the function that fills it (run by `solver.report.sections.SECTIONS`).
"""

from __future__ import annotations

from typing import Literal

from solver.optimize import serving
from solver.optimize.schema import CostPlan, plan_record
from solver.optimize.solve import GeneralCostResult
from solver.report.records import Comparison, Section, Sparse, comparison_of, finite
from solver.report.solve import Solved, peak_source, utilisation

# --------------------------------------------------------------------------- one model size served


class ServingPlan(Section):
    """How one replica of a model of `params` parameters serves the report's workload (predicted by the
    profile's performance model, solver.optimize.serving.ServingPoint). Fields marked (v3) are None in a
    report upgraded from version 1 or 2 (not computed then)."""

    params: float
    num_layers: float
    hidden_size: float
    num_kv_heads: float
    weight_bytes: float
    kv_bytes_per_token: float
    devices_per_replica: int
    tensor_parallel: int
    pipeline_parallel: int
    max_batch_memory: int
    batch: int
    batch_limited_by: str  # "memory" | "slo" | "max_num_seqs" | "throughput"
    meets_slo: bool
    output_tokens_per_s: float
    requests_per_s: float
    decode_flop_per_s_per_device: float
    decode_mfu: float | None  # None: the hardware's peak is unknown
    tpot_s: float  # mean
    ttft_s: float  # mean, steady state, no queueing
    tpot_p90_s: float | None  # None: unbounded, or (v3)
    ttft_p90_s: float | None  # with the p90 queueing wait at utilisation_at_peak; None: unbounded, or (v3)
    queue_wait_p90_s: float | None
    utilisation_at_peak: float | None  # (v3)
    device_s_per_request: float
    usd_per_request: float  # at full utilisation
    usd_per_request_at_slo: float | None  # at utilisation_at_peak; None: unbounded, or (v3)
    provenance: str
    notes: list[str]


def serving_plan(p: serving.ServingPoint) -> ServingPlan:
    return ServingPlan(
        params=p.params_matmul,
        num_layers=p.shape.num_layers,
        hidden_size=p.shape.hidden_size,
        num_kv_heads=p.shape.num_kv_heads,
        weight_bytes=p.shape.weight_bytes,
        kv_bytes_per_token=p.shape.kv_bytes_per_token,
        devices_per_replica=p.devices_per_replica,
        tensor_parallel=p.tensor_parallel,
        pipeline_parallel=p.pipeline_parallel,
        max_batch_memory=p.max_batch_memory,
        batch=p.batch,
        batch_limited_by=p.batch_limited_by,
        meets_slo=p.meets_slo,
        output_tokens_per_s=p.output_tokens_per_s,
        requests_per_s=p.requests_per_s,
        decode_flop_per_s_per_device=p.decode_flop_per_s_per_device,
        decode_mfu=p.decode_mfu,
        tpot_s=p.tpot_s,
        ttft_s=p.ttft_s,
        tpot_p90_s=finite(p.tpot_p90_s),
        ttft_p90_s=finite(p.ttft_p90_s),
        queue_wait_p90_s=finite(p.queue_wait_p90_s),
        utilisation_at_peak=p.utilisation_at_peak,
        device_s_per_request=p.device_s_per_request,
        usd_per_request=p.usd_per_request,
        usd_per_request_at_slo=finite(p.usd_per_request_at_slo),
        provenance="predicted (the profile's performance model at this shape)",
        notes=list(p.notes),
    )


def general_plan(s: Solved, g: GeneralCostResult | None) -> CostPlan | None:
    if g is None:
        return None
    tokens = s.requests * (s.inputs.input_tokens + s.inputs.output_tokens)
    return plan_record(g.params, g.train_tokens, g.loss, tokens, g.train_usd, g.inference_usd)


# --------------------------------------------------------------------------- sizing


class SizedPlan(Section):
    """An N-dependent optimum and how its model is served."""

    optimal: CostPlan
    serving: ServingPlan


class SloLimits(Section):
    tpot_p90_s: float | None  # None: no limit
    ttft_p90_s: float | None


class P90Ratios(Section):
    tpot_ratio: float  # p90 / mean
    ttft_ratio: float
    source: str


class FullUtilisation(Section):
    """The same optima with every device busy (utilisation 1): the paper's pricing."""

    constrained: CostPlan | None  # None: no model size meets the SLO
    unconstrained: CostPlan


class Sizing(Section):
    """solution.json `sizing`: the SLO-constrained vs unconstrained N-dependent optimum, provisioned for
    the peak and at full utilisation, and what the SLO costs."""

    status: Literal["feasible", "infeasible", "data_unreachable"]
    message: str | None  # why there is no recommendation (None when feasible)
    utilisation: float  # mean / peak
    peak_to_mean: float
    mean_requests_per_s: float
    peak_requests_per_s: float
    demand_source: str
    lifetime_h: float
    slo: SloLimits
    p90: P90Ratios
    queueing: str
    constrained: SizedPlan | None  # None: no model size meets the SLO
    unconstrained: SizedPlan
    slo_cost_usd: float | None
    slo_cost_fraction: float | None
    full_utilisation: FullUtilisation
    provenance: str


class NoSizing(Section):
    """solution.json `sizing` of a profile without a performance model: nothing to size, and why."""

    status: Literal["no_performance_model"]
    message: str
    constrained: None
    unconstrained: None


def sizing_section(s: Solved) -> Sizing | NoSizing:
    """SLO-constrained vs unconstrained optimum, provisioned and at full utilisation, and the SLO's cost."""
    z = s.sizing
    if z is None:
        return NoSizing(status="no_performance_model", message="the profile has no performance model, so no model "
                        "size's serving cost or latency can be predicted (build one from a ladder: python -m "
                        "calibrate profile RUNS --ladder)", constrained=None, unconstrained=None)
    wl = s.model.workload
    con, unc = z.constrained, z.unconstrained
    cost = None if con is None else con.total_usd - unc.total_usd
    return Sizing(
        status="feasible" if con is not None else
        "data_unreachable" if z.without_data_limit is not None else "infeasible",
        message=z.infeasible,
        utilisation=z.utilisation, peak_to_mean=1.0 / z.utilisation,
        mean_requests_per_s=z.mean_requests_per_s, peak_requests_per_s=z.peak_requests_per_s,
        demand_source=z.peak_source, lifetime_h=z.lifetime_h,
        slo=SloLimits(tpot_p90_s=wl.tpot_slo_s, ttft_p90_s=wl.ttft_slo_s),
        p90=P90Ratios(tpot_ratio=wl.tpot_p90_ratio, ttft_ratio=wl.ttft_p90_ratio,
                      source=serving.p90_ratios(s.profile).source if not s.inputs.no_slo else "--no-slo: not used"),
        queueing="M/M/c per replica (c = batch slots, random routing), p90 wait from Erlang C; conservative "
                 "for near-fixed service times (solver.optimize.serving)",
        constrained=None if con is None else SizedPlan(
            optimal=general_plan(s, con), serving=serving_plan(s.model.point(con.params))),
        unconstrained=SizedPlan(optimal=general_plan(s, unc), serving=serving_plan(z.free_model.point(unc.params))),
        slo_cost_usd=cost,
        slo_cost_fraction=None if cost is None else cost / unc.total_usd,
        full_utilisation=FullUtilisation(constrained=general_plan(s, z.full_constrained),
                                         unconstrained=general_plan(s, z.full_unconstrained)),
        provenance="predicted (the profile's performance model) + computed; utilisation from the demand "
                   "shape (assumed or from the demand file)",
    )


# --------------------------------------------------------------------------- provisioned Eq. 6


class Provisioned(Section):
    """solution.json `provisioned`: Eq. 6 with each inference $/useful FLOP divided by the utilisation."""

    utilisation: float
    peak_to_mean: float
    source: str
    paper: Comparison
    calibrated: Comparison
    formula: str


def provisioned_section(s: Solved) -> Provisioned:
    """Eq. 6 with each inference $/useful FLOP divided by the utilisation (solver.optimize.demand)."""
    u = utilisation(s.inputs)
    return Provisioned(
        utilisation=u, peak_to_mean=1.0 / u,
        source=peak_source(s.inputs),
        paper=Comparison(**comparison_of(s.provisioned_paper)),
        calibrated=Comparison(**comparison_of(s.provisioned_cal)),
        formula="inference $/useful FLOP / utilisation (mean / peak); utilisation 1 is the paper's Eq. 6",
    )


# --------------------------------------------------------------------------- data limit


class DataLimit(Sparse):
    """solution.json `data_limit` (--max-train-tokens): the recommended plan with and without the limit.

    The keys from `binding` to `provenance` (solver.optimize.data_limit.limit_record) are present only
    when a limited plan was found; `without_limit` when an unlimited one was, `with_limit` with both.
    """

    SPARSE = frozenset({"binding", "unique_tokens_used", "epochs", "effective_train_tokens", "r_d_star",
                        "formula", "source", "provenance", "without_limit", "with_limit"})

    max_train_tokens: float
    repeat: bool
    applies_to: str
    binding: bool | None = None
    unique_tokens_used: float | None = None
    epochs: float | None = None
    effective_train_tokens: float | None = None
    r_d_star: float | None = None
    formula: str | None = None
    source: str | None = None
    provenance: str | None = None
    message: str | None  # why there is no limited plan (None when there is one)
    without_limit: CostPlan | None = None
    with_limit: CostPlan | None = None


def data_limit_section(s: Solved) -> DataLimit | None:
    """--max-train-tokens: the recommended plan with and without the data limit (solver.optimize.data_limit)."""
    from solver.optimize.data_limit import limit_record

    i, z = s.inputs, s.sizing
    if i.max_train_tokens is None:
        return None
    base = {"max_train_tokens": i.max_train_tokens, "repeat": i.repeat_data,
            "applies_to": "the recommended plan (SLO-constrained, provisioned N-dependent optimum); the "
                          "paper and calibrated Eq. 6 scenarios are shown without it (solver optimize "
                          "--max-train-tokens limits them)"}
    if z is None:
        return DataLimit(**base, message="the profile has no performance model: no recommended plan to limit")
    if z.without_data_limit is None:
        return DataLimit(**base, message=z.infeasible)
    if z.data_limit is None:
        return DataLimit(**base, message=z.infeasible, without_limit=general_plan(s, z.without_data_limit))
    return DataLimit(**(base | limit_record(z.data_limit, i.max_train_tokens, i.repeat_data)), message=None,
                     without_limit=general_plan(s, z.without_data_limit), with_limit=general_plan(s, z.constrained))
