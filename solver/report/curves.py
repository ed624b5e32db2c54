"""The report's curves: where inference cost equals training cost (`crossover`), the Figure-6-style
maps (`maps`), lifetime cost against N (`cost_curves`) and the profiled model's decode curve
(`decode_curve`); each section's model beside the function that fills it (run by
`solver.report.sections.SECTIONS`).
"""

from __future__ import annotations

import math

import numpy as np

from core.schema.profile import OperatingPoint
from solver.optimize import serving
from solver.optimize.checks import TRAIN_FLOP_PER_PARAM_TOKEN
from solver.optimize.laws import (
    chinchilla_loss_for_params,
    chinchilla_params_for_loss,
    chinchilla_tokens_for_loss,
    tokens_for_loss,
)
from solver.optimize.solve import optimize_cost
from solver.report.records import Section
from solver.report.records import f as _f
from solver.report.solve import ServingModel, Solved, optimize_n_dependent


class CrossoverDemand(Section):
    """Lifetime requests where inference $ equals training $ under one cost model."""

    chinchilla_requests: float  # for the equal-loss Chinchilla-style model
    optimal_requests: float | None  # for the cost-optimal model; None: not in [1, 1e20]


class Crossover(Section):
    """solution.json `crossover`."""

    paper: CrossoverDemand
    calibrated: CrossoverDemand
    calibrated_n_dependent: CrossoverDemand | None  # None: the profile has no performance model


class MapRatios(Section):
    """cost-optimal / Chinchilla-style, one row per quality (chinchilla_params), one column per requests."""

    cost_ratio: list[list[float]]
    params_ratio: list[list[float]]
    tokens_ratio: list[list[float]]


class Maps(Section):
    """solution.json `maps`: Figure-6-style maps over quality x lifetime requests (constant-MFU Eq. 6)."""

    chinchilla_params: list[float]
    losses: list[float]
    requests: list[float]
    paper: MapRatios
    calibrated: MapRatios


class CostCurves(Section):
    """solution.json `cost_curves`: lifetime cost against N at the target loss (D from the loss)."""

    params: list[float]
    train_tokens: list[float]
    train_usd: list[float]
    paper_total_usd: list[float]
    calibrated_total_usd: list[float]
    n_dependent_total_usd: list[float] | None  # None: the profile has no performance model


class DecodePoint(Section):
    """A measured point of the profile's decode curve."""

    concurrency: int
    achieved_flop_per_s: float
    mfu_output: float | None  # None: the hardware's peak is unknown
    tpot_p90_s: float | None
    output_tokens_per_s: float


class DecodeCurve(Section):
    """solution.json `decode_curve`: the profiled model's decode, measured, predicted and its roofline,
    and the chosen model's decode FLOP rate per device against batch (predicted)."""

    measured: list[DecodePoint]
    operating_point: OperatingPoint | None  # the profile's (core.schema.profile.OperatingPoint)
    batch: list[float]
    predicted_flop_per_s: list[float] | None  # None: no performance model
    roofline_flop_per_s: list[float | None]  # None where no roofline is known
    peak_flop_per_s_total: float | None
    profile_model_weight_bytes: float
    chosen_params: float | None
    chosen_batch: list[float] | None
    chosen_flop_per_s_per_device: list[float] | None
    chosen_devices_per_replica: int | None


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


def crossover(s: Solved) -> Crossover:
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
    return Crossover.model_validate({
        "paper": {"chinchilla_requests": train_ch / (n_ch * s.s_paper.inference_usd_per_param_request()),
                  "optimal_requests": crossover_requests(const_fn(s.s_paper))},
        "calibrated": {"chinchilla_requests": train_ch / (n_ch * s.s_cal.inference_usd_per_param_request()),
                       "optimal_requests": crossover_requests(const_fn(s.s_cal))},
        "calibrated_n_dependent": None if s.model is None else {
            "chinchilla_requests": train_ch / s.model.usd_per_request(n_ch),
            "optimal_requests": crossover_requests(ndep_fn, points=21)},
    })


# --------------------------------------------------------------------------- maps and curves


def maps(s: Solved) -> Maps:
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
    return Maps.model_validate(out)


def cost_curves(s: Solved) -> CostCurves:
    """Total cost against N at the target loss, for the three cost models."""
    law, loss, R = s.law, s.loss, s.requests
    n_ch = _f(chinchilla_params_for_loss(law, loss))
    n_min = (law.A / (loss - law.E)) ** (1.0 / law.alpha)
    top = max(n_ch, s.n_dependent.params if s.n_dependent else 0.0, _f(s.calibrated.optimal.params)) * 4.0
    n_grid = np.logspace(math.log10(n_min * 1.02), math.log10(top), 121)
    d_grid = tokens_for_loss(law, loss, n_grid)
    train_grid = TRAIN_FLOP_PER_PARAM_TOKEN * s.inputs.train_usd_per_flop * n_grid * d_grid
    return CostCurves.model_validate({
        "params": n_grid.tolist(),
        "train_tokens": d_grid.tolist(),
        "train_usd": train_grid.tolist(),
        "paper_total_usd": (train_grid + R * n_grid * s.s_paper.inference_usd_per_param_request()).tolist(),
        "calibrated_total_usd": (train_grid + R * n_grid * s.s_cal.inference_usd_per_param_request()).tolist(),
        "n_dependent_total_usd": None if s.model is None else
        [float(t + R * s.model.usd_per_request(n)) for n, t in zip(n_grid, train_grid)],
    })


def decode_curve(s: Solved) -> DecodeCurve:
    return decode_curve_data(s.profile, s.model, s.n_dependent.params if s.n_dependent else None)


DECODE_CURVE_WORKLOAD = (8, 64)  # (input, output) tokens of the profiles' decode runs (bench/data/*.toml)


def decode_curve_data(profile, model: ServingModel | None, chosen_params: float | None) -> DecodeCurve:
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
        "operating_point": profile.operating_point,
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
        return DecodeCurve.model_validate(out)
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
    return DecodeCurve.model_validate(out)
