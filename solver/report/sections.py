"""The sections of a sizing report's solution: one small function each, run in order by
`solver.report.compute.compute_solution`
(which imports this module; the solved models come from `solver.report.solve`, below both).

Each entry of SECTIONS is (key, function(Solved) -> JSON-able value); the key is the section's field
in `solver.optimize.schema.Solution` and in solution.json (docs/report.md). To add a section, write its
function, append it here, add its field to `Solution` and (if it is shown) a renderer to
`solver.report.render.RENDERERS`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict

import numpy as np

from solver.optimize import serving
from solver.optimize.checks import TRAIN_FLOP_PER_PARAM_TOKEN
from solver.optimize.laws import (
    chinchilla_loss_for_params,
    chinchilla_params_for_loss,
    chinchilla_tokens_for_loss,
    tokens_for_loss,
)
from solver.optimize.schema import plan_of, plan_record
from solver.optimize.solve import GeneralCostResult, optimize_cost
from solver.report import front as report_front
from solver.report import hardware as hardware_compare
from solver.report import prediction as report_prediction
from solver.report.hardware import fleet_of, recommendation_of
from solver.report.solve import ServingModel, Solved, optimize_n_dependent, peak_source, utilisation

SECONDS_PER_DAY = 86400.0


def _f(x) -> float:
    return float(np.asarray(x))


def _finite(x):
    """JSON has no infinity: an unbounded figure (e.g. a queueing wait at utilisation 1) is None."""
    return x if x is None or math.isfinite(x) else None


def _serving_dict(p: serving.ServingPoint) -> dict:
    return {
        "params": p.params_matmul,
        "num_layers": p.shape.num_layers,
        "hidden_size": p.shape.hidden_size,
        "num_kv_heads": p.shape.num_kv_heads,
        "weight_bytes": p.shape.weight_bytes,
        "kv_bytes_per_token": p.shape.kv_bytes_per_token,
        "devices_per_replica": p.devices_per_replica,
        "tensor_parallel": p.tensor_parallel,
        "pipeline_parallel": p.pipeline_parallel,
        "max_batch_memory": p.max_batch_memory,
        "batch": p.batch,
        "batch_limited_by": p.batch_limited_by,
        "meets_slo": p.meets_slo,
        "output_tokens_per_s": p.output_tokens_per_s,
        "requests_per_s": p.requests_per_s,
        "decode_flop_per_s_per_device": p.decode_flop_per_s_per_device,
        "decode_mfu": p.decode_mfu,
        "tpot_s": p.tpot_s,
        "ttft_s": p.ttft_s,
        "tpot_p90_s": _finite(p.tpot_p90_s),
        "ttft_p90_s": _finite(p.ttft_p90_s),
        "queue_wait_p90_s": _finite(p.queue_wait_p90_s),
        "utilisation_at_peak": p.utilisation_at_peak,
        "device_s_per_request": p.device_s_per_request,
        "usd_per_request": p.usd_per_request,
        "usd_per_request_at_slo": _finite(p.usd_per_request_at_slo),
        "provenance": "predicted (the profile's performance model at this shape)",
        "notes": list(p.notes),
    }


# --------------------------------------------------------------------------- inputs echoed


def target(s: Solved) -> dict:
    return {
        "loss": s.loss,
        "chinchilla_params": s.inputs.chinchilla_params,
        "chinchilla_equivalent_params": _f(chinchilla_params_for_loss(s.law, s.loss)),
        "chinchilla_equivalent_train_tokens": _f(chinchilla_tokens_for_loss(s.law, s.loss)),
    }


def demand(s: Solved) -> dict:
    return {
        "requests": s.requests,
        "input_tokens_per_request": s.inputs.input_tokens,
        "output_tokens_per_request": s.inputs.output_tokens,
        "inference_tokens": s.requests * (s.inputs.input_tokens + s.inputs.output_tokens),
    }


def law(s: Solved) -> dict:
    return s.law.as_dict()


def train(s: Solved) -> dict:
    return {"usd_per_flop": s.inputs.train_usd_per_flop, **s.inputs.train_description}


# --------------------------------------------------------------------------- the three cost models


def _comparison_dict(cmp) -> dict:
    return {
        "optimal": plan_of(cmp.optimal, cmp.inference_tokens).model_dump(),
        "chinchilla": plan_of(cmp.chinchilla, cmp.inference_tokens).model_dump(),
        "saving_fraction": _f(cmp.saving_fraction),
        "saving_usd": _f(cmp.saving),
    }


def _paper_scenario(s: Solved) -> dict:
    p, st = s.inputs.paper, s.s_paper
    constants = {
        "train_usd_per_flop": st.train_usd_per_flop, "input_usd_per_flop": st.input_usd_per_flop,
        "output_usd_per_flop": st.output_usd_per_flop, "mfu_input": p.mfu_input, "mfu_output": p.mfu_output,
        "inference_gpu": p.gpu, "inference_dtype": p.dtype, "inference_usd_per_h": p.usd_per_h,
        "inference_peak_flop_per_s": p.peak_flop_per_s, "source": p.source,
    }
    return _comparison_dict(s.paper) | {
        "constants": constants,
        "usd_per_request": _f(s.paper.optimal.params) * st.inference_usd_per_param_request(),
    }


def _calibrated_scenario(s: Solved) -> dict:
    pc, st, prof = s.phase, s.s_cal, s.profile
    constants = {
        "train_usd_per_flop": st.train_usd_per_flop, "input_usd_per_flop": st.input_usd_per_flop,
        "output_usd_per_flop": st.output_usd_per_flop, "mfu_input": pc.mfu_input, "mfu_output": pc.mfu_output,
        "achieved_flop_per_s_input": pc.achieved_flop_per_s_input,
        "achieved_flop_per_s_output": pc.achieved_flop_per_s_output,
        "achieved_flop_per_s_input_interval": [prof.achieved_flop_per_s_input.low, prof.achieved_flop_per_s_input.high],
        "achieved_flop_per_s_output_interval": [prof.achieved_flop_per_s_output.low,
                                                prof.achieved_flop_per_s_output.high],
        "n_boot": prof.achieved_flop_per_s_output.n_boot, "inference_usd_per_h": pc.usd_per_h,
        "device_count": pc.device_count, "peak_flop_per_s": pc.peak_flop_per_s, "peak_dtype": pc.peak_dtype,
        "operating_concurrency": pc.operating_concurrency,
        "source": "calibration profile (measured), usd_per_h x devices / 3600 / achieved_flop_per_s",
    }
    return _comparison_dict(s.calibrated) | {
        "constants": constants,
        "usd_per_request": _f(s.calibrated.optimal.params) * st.inference_usd_per_param_request(),
    }


def _n_dependent_scenario(s: Solved) -> dict | None:
    if s.n_dependent is None:
        return None
    g, tokens = s.n_dependent, s.requests * (s.inputs.input_tokens + s.inputs.output_tokens)
    return {
        "optimal": plan_record(g.params, g.train_tokens, g.loss, tokens, g.train_usd, g.inference_usd).model_dump(),
        "chinchilla": plan_record(g.chinchilla_params, g.chinchilla_train_tokens, g.loss, tokens,
                                  g.chinchilla_train_usd, g.chinchilla_inference_usd).model_dump(),
        "saving_fraction": g.saving_fraction,
        "saving_usd": g.saving_usd,
        "serving_optimal": _serving_dict(s.model.point(g.params)),
        "serving_chinchilla": _serving_dict(s.model.point(g.chinchilla_params)),
        "usd_per_request": s.model.usd_per_request(g.params),
    }


def scenarios(s: Solved) -> dict:
    return {"paper": _paper_scenario(s), "calibrated": _calibrated_scenario(s),
            "calibrated_n_dependent": _n_dependent_scenario(s)}


def shift(s: Solved) -> dict | None:
    """How far the N-dependent optimum moves from the constant-MFU calibrated answer."""
    if s.n_dependent is None:
        return None
    gen, cal = s.n_dependent, s.calibrated
    n_const, d_const = _f(cal.optimal.params), _f(cal.optimal.train_tokens)
    const_under_ndep = (TRAIN_FLOP_PER_PARAM_TOKEN * s.inputs.train_usd_per_flop * n_const * d_const
                        + s.requests * s.model.usd_per_request(n_const))
    return {
        "params_ratio": gen.params / n_const,
        "train_tokens_ratio": gen.train_tokens / d_const,
        "total_usd_ratio": gen.total_usd / _f(cal.optimal.total_usd),
        "constant_mfu_plan_total_usd_under_n_dependent_costs": const_under_ndep,
        "penalty_of_constant_mfu_plan": const_under_ndep / gen.total_usd - 1.0,
        "serving_constant_mfu_plan": _serving_dict(s.model.point(n_const)),
    }


# --------------------------------------------------------------------------- fleet


def fleet(s: Solved) -> dict | None:
    """The serving fleet for the recommended model at the peak request rate (`hardware_compare.fleet_of`)."""
    return fleet_of(s)


def recommendation(s: Solved) -> dict | None:
    """The `recommendation` contract (`hardware_compare.recommendation_of`)."""
    return recommendation_of(s)


def _general_plan(s: Solved, g: GeneralCostResult | None) -> dict | None:
    if g is None:
        return None
    tokens = s.requests * (s.inputs.input_tokens + s.inputs.output_tokens)
    return plan_record(g.params, g.train_tokens, g.loss, tokens, g.train_usd, g.inference_usd).model_dump()


def sizing_section(s: Solved) -> dict:
    """SLO-constrained vs unconstrained optimum, provisioned and at full utilisation, and the SLO's cost."""
    z = s.sizing
    if z is None:
        return {"status": "no_performance_model", "message": "the profile has no performance model, so no model "
                "size's serving cost or latency can be predicted (build one from a ladder: python -m calibrate "
                "profile RUNS --ladder)", "constrained": None, "unconstrained": None}
    wl = s.model.workload
    con, unc = z.constrained, z.unconstrained
    cost = None if con is None else con.total_usd - unc.total_usd
    return {
        "status": "feasible" if con is not None else
        "data_unreachable" if z.without_data_limit is not None else "infeasible",
        "message": z.infeasible,
        "utilisation": z.utilisation, "peak_to_mean": 1.0 / z.utilisation,
        "mean_requests_per_s": z.mean_requests_per_s, "peak_requests_per_s": z.peak_requests_per_s,
        "demand_source": z.peak_source, "lifetime_h": z.lifetime_h,
        "slo": {"tpot_p90_s": wl.tpot_slo_s, "ttft_p90_s": wl.ttft_slo_s},
        "p90": {"tpot_ratio": wl.tpot_p90_ratio, "ttft_ratio": wl.ttft_p90_ratio,
                "source": serving.p90_ratios(s.profile).source if not s.inputs.no_slo else "--no-slo: not used"},
        "queueing": "M/M/c per replica (c = batch slots, random routing), p90 wait from Erlang C; conservative "
                    "for near-fixed service times (solver.optimize.serving)",
        "constrained": None if con is None else {
            "optimal": _general_plan(s, con), "serving": _serving_dict(s.model.point(con.params))},
        "unconstrained": {"optimal": _general_plan(s, unc), "serving": _serving_dict(z.free_model.point(unc.params))},
        "slo_cost_usd": cost,
        "slo_cost_fraction": None if cost is None else cost / unc.total_usd,
        "full_utilisation": {"constrained": _general_plan(s, z.full_constrained),
                             "unconstrained": _general_plan(s, z.full_unconstrained)},
        "provenance": "predicted (the profile's performance model) + computed; utilisation from the demand "
                      "shape (assumed or from the demand file)",
    }


def provisioned_section(s: Solved) -> dict:
    """Eq. 6 with each inference $/useful FLOP divided by the utilisation (solver.optimize.demand)."""
    u = utilisation(s.inputs)
    return {
        "utilisation": u, "peak_to_mean": 1.0 / u,
        "source": peak_source(s.inputs),
        "paper": _comparison_dict(s.provisioned_paper),
        "calibrated": _comparison_dict(s.provisioned_cal),
        "formula": "inference $/useful FLOP / utilisation (mean / peak); utilisation 1 is the paper's Eq. 6",
    }


def data_limit_section(s: Solved) -> dict | None:
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
        return base | {"message": "the profile has no performance model: no recommended plan to limit"}
    if z.without_data_limit is None:
        return base | {"message": z.infeasible}
    if z.data_limit is None:
        return base | {"message": z.infeasible, "without_limit": _general_plan(s, z.without_data_limit)}
    return base | limit_record(z.data_limit, i.max_train_tokens, i.repeat_data) | {
        "message": None, "without_limit": _general_plan(s, z.without_data_limit),
        "with_limit": _general_plan(s, z.constrained)}


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


# --------------------------------------------------------------------------- crossover


def _bracket_root(fn, lo: float, hi: float, points: int) -> tuple[float, float] | None:
    """First sign change of fn over a log grid of [lo, hi] (fn increasing in practice)."""
    xs = np.logspace(math.log10(lo), math.log10(hi), points)
    prev_x, prev_v = None, None
    for x in xs:
        v = fn(x)
        if prev_v is not None and prev_v < 0 <= v:
            return prev_x, x
        prev_x, prev_v = x, v
    return None


def crossover_requests(fn, lo: float = 1.0, hi: float = 1e20, points: int = 41) -> float | None:
    """Lifetime requests R where inference $ = training $: root of fn(R) = ln(inference/training)."""
    from scipy.optimize import brentq

    br = _bracket_root(fn, lo, hi, points)
    if br is None:
        return None
    return float(math.exp(brentq(lambda lr: fn(math.exp(lr)), math.log(br[0]), math.log(br[1]), xtol=1e-10)))


def _log_ratio(inf_usd: float, train_usd: float) -> float:
    if inf_usd <= 0:
        return -math.inf
    return math.log(inf_usd / train_usd)


def crossover(s: Solved) -> dict:
    """Lifetime demand where inference $ equals training $, per cost model."""
    law, loss = s.law, s.loss

    def const_fn(settings):
        def fn(r):
            c = optimize_cost(loss, r, settings, law)
            return _log_ratio(_f(c.optimal.inference_usd), _f(c.optimal.train_usd))
        return fn

    def ndep_fn(r):
        g = optimize_n_dependent(loss, r, law, s.inputs.train_usd_per_flop, s.model)
        return _log_ratio(g.inference_usd, g.train_usd)

    n_ch = _f(chinchilla_params_for_loss(law, loss))
    d_ch = _f(chinchilla_tokens_for_loss(law, loss))
    train_ch = TRAIN_FLOP_PER_PARAM_TOKEN * s.inputs.train_usd_per_flop * n_ch * d_ch
    return {
        "paper": {"chinchilla_requests": train_ch / (n_ch * s.s_paper.inference_usd_per_param_request()),
                  "optimal_requests": crossover_requests(const_fn(s.s_paper))},
        "calibrated": {"chinchilla_requests": train_ch / (n_ch * s.s_cal.inference_usd_per_param_request()),
                       "optimal_requests": crossover_requests(const_fn(s.s_cal))},
        "calibrated_n_dependent": None if s.model is None else {
            "chinchilla_requests": train_ch / s.model.usd_per_request(n_ch),
            "optimal_requests": crossover_requests(ndep_fn, points=21)},
    }


# --------------------------------------------------------------------------- maps and curves


def maps(s: Solved) -> dict:
    """Figure-6-style maps (vectorised Eq. 6) over quality x lifetime requests."""
    i, law = s.inputs, s.law
    lo_n, hi_n = i.map_chinchilla_params_range
    params = np.logspace(math.log10(lo_n), math.log10(hi_n), i.map_points)
    losses = chinchilla_loss_for_params(law, params)
    requests = np.logspace(math.log10(i.map_requests_range[0]), math.log10(i.map_requests_range[1]), i.map_points)
    out = {"chinchilla_params": params.tolist(), "losses": losses.tolist(), "requests": requests.tolist()}
    for key, settings in (("paper", s.s_paper), ("calibrated", s.s_cal)):
        c = optimize_cost(losses[:, None], requests[None, :], settings, law)
        out[key] = {
            "cost_ratio": (c.optimal.total_usd / c.chinchilla.total_usd).tolist(),
            "params_ratio": (c.optimal.params / c.chinchilla.params).tolist(),
            "tokens_ratio": (c.optimal.train_tokens / c.chinchilla.train_tokens).tolist(),
        }
    return out


def cost_curves(s: Solved) -> dict:
    """Total cost against N at the target loss, for the three cost models."""
    law, loss, R = s.law, s.loss, s.requests
    n_ch = _f(chinchilla_params_for_loss(law, loss))
    n_min = (law.A / (loss - law.E)) ** (1.0 / law.alpha)
    top = max(n_ch, s.n_dependent.params if s.n_dependent else 0.0, _f(s.calibrated.optimal.params)) * 4.0
    n_grid = np.logspace(math.log10(n_min * 1.02), math.log10(top), 121)
    d_grid = tokens_for_loss(law, loss, n_grid)
    train_grid = TRAIN_FLOP_PER_PARAM_TOKEN * s.inputs.train_usd_per_flop * n_grid * d_grid
    return {
        "params": n_grid.tolist(),
        "train_tokens": d_grid.tolist(),
        "train_usd": train_grid.tolist(),
        "paper_total_usd": (train_grid + R * n_grid * s.s_paper.inference_usd_per_param_request()).tolist(),
        "calibrated_total_usd": (train_grid + R * n_grid * s.s_cal.inference_usd_per_param_request()).tolist(),
        "n_dependent_total_usd": None if s.model is None else
        [float(t + R * s.model.usd_per_request(n)) for n, t in zip(n_grid, train_grid)],
    }


def decode_curve(s: Solved) -> dict:
    return decode_curve_data(s.profile, s.model, s.n_dependent.params if s.n_dependent else None)


DECODE_CURVE_WORKLOAD = (8, 64)  # (input, output) tokens of the profiles' decode runs (bench/data/*.toml)


def decode_curve_data(profile, model: ServingModel | None, chosen_params: float | None) -> dict:
    """The profile model's measured decode curve, the performance model's prediction of it, its
    roofline, and the chosen model's decode MFU per device against batch (predicted).

    Roofline of the profile's own model: rate(b) = b / max(W/BW, b·2N/peak) per device count.
    """
    hwp = profile.hardware
    pm = profile.model
    devices = hwp.device_count
    n = float(pm.params_matmul)
    weight_bytes = float(pm.weight_bytes or (pm.params_total * (pm.bytes_per_param or 1.0)))
    cmax = max([p.concurrency for p in profile.decode_curve] + [profile.operating_concurrency or 1, 1])
    b = np.unique(np.round(np.logspace(0, math.log10(max(2 * cmax, 4)), 60)))
    t_roof = np.zeros_like(b)
    if hwp.memory_bandwidth_bytes_per_s:
        t_roof = np.maximum(t_roof, weight_bytes / (devices * hwp.memory_bandwidth_bytes_per_s))
    if hwp.peak_flop_per_s:
        t_roof = np.maximum(t_roof, b * 2.0 * n / (devices * hwp.peak_flop_per_s))
    roof_flop = np.where(t_roof > 0, b * 2.0 * n / np.where(t_roof > 0, t_roof, 1.0), np.nan)
    out = {
        "measured": [
            {"concurrency": p.concurrency, "achieved_flop_per_s": p.achieved_flop_per_s, "mfu_output": p.mfu_output,
             "tpot_p90_s": p.tpot_p90_s, "output_tokens_per_s": p.output_tokens_per_s}
            for p in profile.decode_curve
        ],
        "operating_point": None if profile.operating_point is None else profile.operating_point.model_dump(),
        "batch": b.tolist(),
        "predicted_flop_per_s": None,
        "roofline_flop_per_s": [None if not math.isfinite(v) else float(v) for v in roof_flop],
        "peak_flop_per_s_total": hwp.peak_flop_per_s * devices if hwp.peak_flop_per_s else None,
        "profile_model_weight_bytes": weight_bytes,
        "chosen_params": chosen_params,
        "chosen_batch": None,
        "chosen_flop_per_s_per_device": None,
        "chosen_devices_per_replica": None,
    }
    if model is None:
        return out
    own = serving.profile_model_shape(profile)
    wl_dec = serving.Workload(*DECODE_CURVE_WORKLOAD)
    st = serving.steady_state(model.perf, own, wl_dec, b, model.hardware)
    out["predicted_flop_per_s"] = (np.asarray(st["output_tokens_per_s"]) * 2.0 * n).tolist()
    chosen = model.point(chosen_params)
    b_ch = np.arange(1, max(1, chosen.max_batch_memory) + 1, dtype=float)
    st_ch = serving.steady_state(model.perf, chosen.shape, model.workload, b_ch, model.hardware,
                                 chosen.tensor_parallel, chosen.pipeline_parallel)
    out |= {
        "chosen_batch": b_ch.tolist(),
        "chosen_flop_per_s_per_device": (np.asarray(st_ch["output_tokens_per_s"]) * 2.0 * chosen_params
                                         / chosen.devices_per_replica).tolist(),
        "chosen_devices_per_replica": chosen.devices_per_replica,
    }
    return out


def prediction_check(s: Solved) -> dict | None:
    return report_prediction.section(s.profile)


# --------------------------------------------------------------------------- assumptions and provenance


def assumptions(s: Solved) -> dict:
    i = s.inputs
    slo = ("--no-slo: no latency limit" if i.no_slo else
           "command line" if (i.slo_tpot_p90_s or i.slo_ttft_p90_s) else s.profile.slo.source)
    return {
        "shape": asdict(i.shape) | {"source": i.shape.describe()},
        "hardware": None if s.model is None else asdict(s.model.hardware),
        "workload": None if s.model is None else asdict(s.model.workload),
        "slo_source": slo,
        "serving_model": (serving.__doc__ or "").strip(),
    }


_ECHOED = ("target_loss", "chinchilla_params", "requests", "peak_requests_per_s", "lifetime_days", "peak_to_mean",
           "demand_source", "demand_hours", "input_tokens", "output_tokens", "inference_usd_per_h", "slo_tpot_p90_s",
           "slo_ttft_p90_s", "no_slo", "max_train_tokens", "repeat_data")


def provenance(s: Solved) -> dict:
    return {
        "profile": s.profile_provenance,
        "tool": s.tool,
        "inputs": {k: getattr(s.inputs, k) for k in _ECHOED} | {"law": s.law.name},
        "kinds": {
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
    }


Section = tuple[str, Callable[[Solved], object]]

SECTIONS: list[Section] = [
    ("warnings", warnings_section), ("recommendation", recommendation), ("sizing", sizing_section),
    ("target", target), ("demand", demand), ("law", law), ("train", train), ("scenarios", scenarios),
    ("provisioned", provisioned_section), ("shift", shift), ("fleet", fleet),
    ("hardware", hardware_compare.section), ("data_limit", data_limit_section), ("crossover", crossover),
    ("maps", maps), ("cost_curves", cost_curves), ("decode_curve", decode_curve), ("front", report_front.front),
    ("prediction_check", prediction_check), ("assumptions", assumptions), ("provenance", provenance),
]
