"""The sections of a sizing report's solution: one small function each, run in order by
`solver.report.compute.compute_solution`
(which imports this module; the solved models come from `solver.report.solve`, below both).

Each entry of SECTIONS is (key, function(Solved) -> the section's model); the key is the section's
field in `solver.report.schema.Solution` and in solution.json (docs/report.md). Each section's model is
defined beside its function: here (inputs echoed, the three cost models, shift, assumptions,
provenance), in `solver.report.sizing` (sizing, provisioned, data_limit and the serving plan of a
size), `solver.report.curves` (crossover, maps, cost_curves, decode_curve), `solver.report.hardware`
(fleet, recommendation, hardware), `solver.report.front` and `solver.report.prediction`. To add a
section, write its model and function, append it here, add its field to `Solution` and (if it is
shown) a renderer to `solver.report.output.render.RENDERERS`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from typing import Any

from solver.optimize import serving
from solver.optimize.checks import TRAIN_FLOP_PER_PARAM_TOKEN
from solver.optimize.laws import chinchilla_params_for_loss, chinchilla_tokens_for_loss
from solver.optimize.schema import LawRecord, plan_record
from solver.report import front as report_front
from solver.report import hardware as hardware_compare
from solver.report import prediction as report_prediction
from solver.report.curves import (  # noqa: F401 (re-exported: the curves were sections of this module)
    DECODE_CURVE_WORKLOAD,
    cost_curves,
    crossover,
    crossover_requests,
    decode_curve,
    decode_curve_data,
    maps,
)
from solver.report.hardware import Fleet, Recommendation, fleet_of, recommendation_of
from solver.report.records import Comparison, Section, Sparse, comparison_of
from solver.report.records import f as _f
from solver.report.sizing import ServingPlan, data_limit_section, provisioned_section, serving_plan, sizing_section
from solver.report.solve import Solved

SECONDS_PER_DAY = 86400.0


# --------------------------------------------------------------------------- inputs echoed


class Target(Section):
    """solution.json `target`: the loss to reach, and the Chinchilla-style model of that loss."""

    loss: float
    chinchilla_params: float | None  # the --chinchilla-params it came from (None: --loss given)
    chinchilla_equivalent_params: float
    chinchilla_equivalent_train_tokens: float


def target(s: Solved) -> Target:
    return Target(
        loss=s.loss,
        chinchilla_params=s.inputs.chinchilla_params,
        chinchilla_equivalent_params=_f(chinchilla_params_for_loss(s.law, s.loss)),
        chinchilla_equivalent_train_tokens=_f(chinchilla_tokens_for_loss(s.law, s.loss)),
    )


class Demand(Section):
    """solution.json `demand`: lifetime requests and tokens."""

    requests: float
    input_tokens_per_request: float
    output_tokens_per_request: float
    inference_tokens: float


def demand(s: Solved) -> Demand:
    return Demand(
        requests=s.requests,
        input_tokens_per_request=s.inputs.input_tokens,
        output_tokens_per_request=s.inputs.output_tokens,
        inference_tokens=s.requests * (s.inputs.input_tokens + s.inputs.output_tokens),
    )


def law(s: Solved) -> LawRecord:
    return LawRecord(**s.law.as_dict())


class Train(Sparse):
    """solution.json `train`: training $ per useful FLOP and how it was obtained (ReportInputs.train_description):
    from a GPU (gpu .. formula: solver.optimize.cli.train_from_gpu) or a training profile (profile ..
    caution: solver.report.make); only the keys of the route taken are written."""

    SPARSE = frozenset({"gpu", "dtype", "peak_flop_per_s", "peak_source", "usd_per_h", "usd_per_h_source", "mfu",
                        "usd_per_useful_flop", "formula", "profile", "sha256", "assumption", "caution"})

    usd_per_flop: float
    gpu: str | None = None
    dtype: str | None = None
    peak_flop_per_s: float | None = None
    peak_source: str | None = None
    usd_per_h: float | None = None
    usd_per_h_source: str | None = None
    mfu: float | None = None
    usd_per_useful_flop: float | None = None
    formula: str | None = None
    profile: str | None = None
    sha256: str | None = None
    assumption: str | None = None
    caution: str | None = None


def train(s: Solved) -> Train:
    return Train(usd_per_flop=s.inputs.train_usd_per_flop, **s.inputs.train_description)


# --------------------------------------------------------------------------- the three cost models


class PaperConstants(Section):
    """Eq. 6's constants as the paper assumes them (core.paper.PAPER)."""

    train_usd_per_flop: float
    input_usd_per_flop: float
    output_usd_per_flop: float
    mfu_input: float
    mfu_output: float
    inference_gpu: str
    inference_dtype: str
    inference_usd_per_h: float
    inference_peak_flop_per_s: float
    source: str


class CalibratedConstants(Section):
    """Eq. 6's constants as the calibration profile measured them."""

    train_usd_per_flop: float
    input_usd_per_flop: float
    output_usd_per_flop: float
    mfu_input: float | None  # None: the hardware's peak is unknown
    mfu_output: float | None
    achieved_flop_per_s_input: float
    achieved_flop_per_s_output: float
    achieved_flop_per_s_input_interval: tuple[float, float]  # 95 % bootstrap interval
    achieved_flop_per_s_output_interval: tuple[float, float]
    n_boot: int
    inference_usd_per_h: float
    device_count: int
    peak_flop_per_s: float | None
    peak_dtype: str | None
    operating_concurrency: int | None
    source: str


class ConstantScenario(Comparison):
    """Eq. 6 with constant dollars per useful FLOP (the paper's, or a profile's)."""

    constants: PaperConstants | CalibratedConstants
    usd_per_request: float


class PaperScenario(ConstantScenario):
    constants: PaperConstants


class CalibratedScenario(ConstantScenario):
    constants: CalibratedConstants


class ServingScenario(Comparison):
    """The N-dependent serving cost (solver.optimize.serving: the profile's performance model) minimised by
    optimize_cost_general."""

    serving_optimal: ServingPlan
    serving_chinchilla: ServingPlan
    usd_per_request: float


class Scenarios(Section):
    """solution.json `scenarios`: the three cost models."""

    paper: PaperScenario
    calibrated: CalibratedScenario
    calibrated_n_dependent: ServingScenario | None  # None: the profile has no performance model


def _paper_scenario(s: Solved) -> PaperScenario:
    p, st = s.inputs.paper, s.s_paper
    constants = PaperConstants(
        train_usd_per_flop=st.train_usd_per_flop, input_usd_per_flop=st.input_usd_per_flop,
        output_usd_per_flop=st.output_usd_per_flop, mfu_input=p.mfu_input, mfu_output=p.mfu_output,
        inference_gpu=p.gpu, inference_dtype=p.dtype, inference_usd_per_h=p.usd_per_h,
        inference_peak_flop_per_s=p.peak_flop_per_s, source=p.source,
    )
    return PaperScenario(**comparison_of(s.paper), constants=constants,
                         usd_per_request=_f(s.paper.optimal.params) * st.inference_usd_per_param_request())


def _calibrated_scenario(s: Solved) -> CalibratedScenario:
    pc, st, prof = s.phase, s.s_cal, s.profile
    constants = CalibratedConstants(
        train_usd_per_flop=st.train_usd_per_flop, input_usd_per_flop=st.input_usd_per_flop,
        output_usd_per_flop=st.output_usd_per_flop, mfu_input=pc.mfu_input, mfu_output=pc.mfu_output,
        achieved_flop_per_s_input=pc.achieved_flop_per_s_input,
        achieved_flop_per_s_output=pc.achieved_flop_per_s_output,
        achieved_flop_per_s_input_interval=(prof.achieved_flop_per_s_input.low, prof.achieved_flop_per_s_input.high),
        achieved_flop_per_s_output_interval=(prof.achieved_flop_per_s_output.low,
                                             prof.achieved_flop_per_s_output.high),
        n_boot=prof.achieved_flop_per_s_output.n_boot, inference_usd_per_h=pc.usd_per_h,
        device_count=pc.device_count, peak_flop_per_s=pc.peak_flop_per_s, peak_dtype=pc.peak_dtype,
        operating_concurrency=pc.operating_concurrency,
        source="calibration profile (measured), usd_per_h x devices / 3600 / achieved_flop_per_s",
    )
    return CalibratedScenario(**comparison_of(s.calibrated), constants=constants,
                              usd_per_request=_f(s.calibrated.optimal.params) * st.inference_usd_per_param_request())


def _n_dependent_scenario(s: Solved) -> ServingScenario | None:
    if s.n_dependent is None:
        return None
    g, tokens = s.n_dependent, s.requests * (s.inputs.input_tokens + s.inputs.output_tokens)
    return ServingScenario(
        optimal=plan_record(g.params, g.train_tokens, g.loss, tokens, g.train_usd, g.inference_usd),
        chinchilla=plan_record(g.chinchilla_params, g.chinchilla_train_tokens, g.loss, tokens,
                               g.chinchilla_train_usd, g.chinchilla_inference_usd),
        saving_fraction=g.saving_fraction,
        saving_usd=g.saving_usd,
        serving_optimal=serving_plan(s.model.point(g.params)),
        serving_chinchilla=serving_plan(s.model.point(g.chinchilla_params)),
        usd_per_request=s.model.usd_per_request(g.params),
    )


def scenarios(s: Solved) -> Scenarios:
    return Scenarios(paper=_paper_scenario(s), calibrated=_calibrated_scenario(s),
                     calibrated_n_dependent=_n_dependent_scenario(s))


class Shift(Section):
    """solution.json `shift`: the N-dependent optimum against the constant-MFU calibrated one."""

    params_ratio: float
    train_tokens_ratio: float
    total_usd_ratio: float
    constant_mfu_plan_total_usd_under_n_dependent_costs: float
    penalty_of_constant_mfu_plan: float
    serving_constant_mfu_plan: ServingPlan


def shift(s: Solved) -> Shift | None:
    """How far the N-dependent optimum moves from the constant-MFU calibrated answer."""
    if s.n_dependent is None:
        return None
    gen, cal = s.n_dependent, s.calibrated
    n_const, d_const = _f(cal.optimal.params), _f(cal.optimal.train_tokens)
    const_under_ndep = (TRAIN_FLOP_PER_PARAM_TOKEN * s.inputs.train_usd_per_flop * n_const * d_const
                        + s.requests * s.model.usd_per_request(n_const))
    return Shift(
        params_ratio=gen.params / n_const,
        train_tokens_ratio=gen.train_tokens / d_const,
        total_usd_ratio=gen.total_usd / _f(cal.optimal.total_usd),
        constant_mfu_plan_total_usd_under_n_dependent_costs=const_under_ndep,
        penalty_of_constant_mfu_plan=const_under_ndep / gen.total_usd - 1.0,
        serving_constant_mfu_plan=serving_plan(s.model.point(n_const)),
    )


# --------------------------------------------------------------------------- fleet


def fleet(s: Solved) -> Fleet | None:
    """The serving fleet for the recommended model at the peak request rate (`hardware_compare.fleet_of`)."""
    return fleet_of(s)


def recommendation(s: Solved) -> Recommendation | None:
    """The `recommendation` contract (`hardware_compare.recommendation_of`)."""
    return recommendation_of(s)


def warnings_section(s: Solved) -> list[str]:
    """One line per plan whose tokens per parameter pass the paper's range (solver.optimize.data_limit)."""
    from solver.optimize.data_limit import tokens_per_param_warning

    plans = [("paper", s.paper.optimal), ("calibrated", s.calibrated.optimal)]
    out = []
    for name, p in plans:
        w = tokens_per_param_warning(_f(p.params), _f(p.train_tokens))
        if w:
            out.append(f"{name} optimum: {w}")
    for name, g in (("N-dependent optimum", s.n_dependent),
                    ("recommended (SLO-constrained) plan", s.sizing.constrained if s.sizing else None)):
        if g is not None:
            w = tokens_per_param_warning(g.params, g.train_tokens)
            if w:
                out.append(f"{name}: {w}")
    if s.sizing is not None and s.sizing.infeasible:
        out.insert(0, s.sizing.infeasible)
    return out


def prediction_check(s: Solved) -> report_prediction.PredictionCheck | None:
    return report_prediction.section(s.profile)


# --------------------------------------------------------------------------- assumptions and provenance


class ShapeRecord(Section):
    """How a model's shape is built from N (core.physics.ShapeAssumption) and the rule in words."""

    aspect_ratio: float
    head_dim: float
    kv_heads_max: float
    vocab_size: float
    matmul_bytes_per_param: float
    scale_bytes: float
    dense_bytes_per_param: float
    kv_dtype_bytes: float
    source: str


class HardwareRecord(Section):
    """One serving device as the serving model assumes it (solver.optimize.serving.ServingHardware).
    allreduce_latency_s is None in a report upgraded from version 1 (not modelled then)."""

    name: str
    usd_per_h: float
    memory_bytes: float | None  # None: unknown, not bounded
    peak_flop_per_s: float | None
    interconnect_bytes_per_s: float | None
    allreduce_latency_s: float | None
    memory_utilization: float
    activation_reserve_bytes: float
    max_num_seqs: int


class WorkloadRecord(Section):
    """The report's workload and SLO (solver.optimize.serving.Workload). The p90/mean ratios are None in a
    report upgraded from version 1 or 2 (the SLO was checked against means then)."""

    input_tokens: float
    output_tokens: float
    tpot_slo_s: float | None  # None: no latency limit
    ttft_slo_s: float | None
    tpot_p90_ratio: float | None
    ttft_p90_ratio: float | None


class Assumptions(Section):
    """solution.json `assumptions`: what the N-dependent serving cost assumes."""

    shape: ShapeRecord
    hardware: HardwareRecord | None  # None: the profile has no performance model
    workload: WorkloadRecord | None
    slo_source: str
    serving_model: str  # solver.optimize.serving's description of itself


def assumptions(s: Solved) -> Assumptions:
    i = s.inputs
    slo = ("--no-slo: no latency limit" if i.no_slo else
           "command line" if (i.slo_tpot_p90_s or i.slo_ttft_p90_s) else s.profile.slo.source)
    return Assumptions(
        shape=ShapeRecord(**asdict(i.shape), source=i.shape.describe()),
        hardware=None if s.model is None else HardwareRecord(**asdict(s.model.hardware)),
        workload=None if s.model is None else WorkloadRecord(**asdict(s.model.workload)),
        slo_source=slo,
        serving_model=(serving.__doc__ or "").strip(),
    )


_ECHOED = ("target_loss", "chinchilla_params", "requests", "peak_requests_per_s", "lifetime_days", "peak_to_mean",
           "demand_source", "demand_hours", "input_tokens", "output_tokens", "inference_usd_per_h", "slo_tpot_p90_s",
           "slo_ttft_p90_s", "no_slo", "max_train_tokens", "repeat_data")


class ProvenanceInputs(Section):
    """The report's inputs (solver.report.solve.ReportInputs) as given. Fields marked (v3) are None in a
    report upgraded from version 1 or 2."""

    target_loss: float
    chinchilla_params: float | None
    requests: float
    peak_requests_per_s: float | None
    lifetime_days: float
    peak_to_mean: float
    demand_source: str | None  # (v3)
    demand_hours: float | None
    input_tokens: float
    output_tokens: float
    inference_usd_per_h: float | None
    slo_tpot_p90_s: float | None
    slo_ttft_p90_s: float | None
    no_slo: bool
    max_train_tokens: float | None
    repeat_data: bool | None  # (v3)
    law: str


class Provenance(Section):
    """solution.json `provenance`."""

    # Extension point: the profile's own provenance as its loader wrote it, whose keys depend on where
    # the profile came from (a file: solver.optimize.costs.profile_provenance; a datasheet spec:
    # solver.report.hardware.datasheet_provenance; a test's stand-in) -- an open mapping.
    profile: dict[str, Any]
    tool: str
    inputs: ProvenanceInputs
    # Extension point: a glossary, section name -> what kind of numbers it holds (measured, predicted,
    # assumed, computed); a new section adds its entry here without a schema change.
    kinds: dict[str, str]


def provenance(s: Solved) -> Provenance:
    return Provenance(
        profile=s.profile_provenance,
        tool=s.tool,
        inputs=ProvenanceInputs(**{k: getattr(s.inputs, k) for k in _ECHOED}, law=s.law.name),
        kinds={
            "paper": "assumption (the paper's constants)",
            "calibrated": "measured (profile) + computed",
            "calibrated_n_dependent": "predicted (the profile's performance model, fitted on a ladder of model "
                                      "sizes; held-out errors in prediction_check) + computed + assumptions",
            "recommendation": "predicted (performance model; p90/mean ratios measured where the profile has "
                              "them, see sizing.p90) + computed (SLO-constrained optimum, whole-replica fleet) + "
                              "assumed (demand shape unless from a demand file, M/M/c queueing)",
            "provisioned": "Eq. 6 with inference $/FLOP / utilisation (utilisation assumed or from a demand file)",
            "hardware": "per row: measured profile, or assumed (datasheet / synthetic), see each row's provenance",
        },
    )


SectionEntry = tuple[str, Callable[[Solved], object]]

SECTIONS: list[SectionEntry] = [
    ("warnings", warnings_section), ("recommendation", recommendation), ("sizing", sizing_section),
    ("target", target), ("demand", demand), ("law", law), ("train", train), ("scenarios", scenarios),
    ("provisioned", provisioned_section), ("shift", shift), ("fleet", fleet),
    ("hardware", hardware_compare.section), ("data_limit", data_limit_section), ("crossover", crossover),
    ("maps", maps), ("cost_curves", cost_curves), ("decode_curve", decode_curve), ("front", report_front.front),
    ("prediction_check", prediction_check), ("assumptions", assumptions), ("provenance", provenance),
]
