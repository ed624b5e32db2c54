"""The sizing report's numbers: one pure function from inputs and a calibration profile to a dict.

`compute_solution(inputs, profile, profile_provenance)` returns the `solution` dict that
`solution.json` stores and `report_render` turns into Markdown, HTML and plots. Nothing here
prints or writes. Every figure comes from the solver:

* paper:      Eq. 6 (`solver.optimize.optimize_cost`) with the paper's constants: inference on
              A100-40GB INT8 at MFU 50 % (input) and 1 % (output), $1.10/h (Sec. 6, B.2, B.3).
* calibrated: Eq. 6 with the profile's dollars per useful FLOP of each phase
              (`solver.profile_input.phase_costs`), still constant in N.
* calibrated, N-dependent: `solver.optimize.optimize_cost_general` with the lifetime inference
              dollars of an N-parameter model from `solver.fleet` (devices, KV room, SLO batch, measured
              decode curve bounded by the roofline): goes beyond the paper's constant MFU.

Training is priced the same way in all three (train GPU and MFU, or a training profile), so the
differences are the inference constants alone.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace

import numpy as np

from solver import fleet as fl
from solver.law import (
    LossLaw,
    check_reachable,
    chinchilla_loss_for_params,
    chinchilla_params_for_loss,
    chinchilla_tokens_for_loss,
    tokens_for_loss,
)
from solver.optimize import CostSettings, optimize_cost, optimize_cost_general
from solver.profile_input import phase_costs

SOLUTION_SCHEMA_VERSION = 1
SECONDS_PER_DAY = 86400.0


@dataclass(frozen=True)
class PaperInference:
    """The paper's inference setting (Sec. 6, B.2, B.3): A100-40GB, INT8 peak, 50 % / 1 % MFU, $1.10/h."""

    gpu: str = "a100-40gb-sxm"
    dtype: str = "int8"
    usd_per_h: float = 1.10
    peak_flop_per_s: float = 624e12
    mfu_input: float = 0.5
    mfu_output: float = 0.01
    source: str = "Sardana et al. 2024, Sec. 6 and Appendix B.2/B.3 (A100-40GB $1.10/h, INT8 6.24e14 flop/s)"


@dataclass(frozen=True)
class ReportInputs:
    target_loss: float
    requests: float
    train_usd_per_flop: float
    train_description: dict  # how the training price was obtained (GPU, dtype, MFU, $/h, or profile)
    law: LossLaw
    chinchilla_params: float | None = None  # when the target was given as a Chinchilla model size
    input_tokens: float = 70.0
    output_tokens: float = 215.0
    peak_requests_per_s: float | None = None  # None: mean rate over the lifetime x peak_to_mean
    lifetime_days: float = 365.0
    peak_to_mean: float = 2.0
    paper: PaperInference = field(default_factory=PaperInference)
    inference_usd_per_h: float | None = None  # overrides the profile's price
    extrapolation: str = "hold"
    slo_tpot_p90_s: float | None = None  # overrides the profile's SLO
    slo_ttft_p90_s: float | None = None
    no_slo: bool = False  # batch by memory and throughput only (e.g. where no batch can meet any SLO)
    shape: fl.ShapeAssumption = field(default_factory=fl.ShapeAssumption)
    map_points: int = 31  # per axis of the Figure-6-style maps
    map_requests_range: tuple[float, float] = (1e6, 1e13)
    map_chinchilla_params_range: tuple[float, float] = (1e9, 1e11)


# --------------------------------------------------------------------------- helpers


def _f(x) -> float:
    return float(np.asarray(x))


def _plan_dict(params, tokens, train_usd, inference_usd) -> dict:
    params, tokens = _f(params), _f(tokens)
    train_usd, inference_usd = _f(train_usd), _f(inference_usd)
    return {
        "params": params,
        "train_tokens": tokens,
        "tokens_per_param": tokens / params,
        "train_usd": train_usd,
        "inference_usd": inference_usd,
        "total_usd": train_usd + inference_usd,
    }


def _comparison_dict(cmp) -> dict:
    opt, ch = cmp.optimal, cmp.chinchilla
    return {
        "optimal": _plan_dict(opt.params, opt.train_tokens, opt.train_usd, opt.inference_usd),
        "chinchilla": _plan_dict(ch.params, ch.train_tokens, ch.train_usd, ch.inference_usd),
        "saving_fraction": _f(cmp.saving_fraction),
        "saving_usd": _f(cmp.saving),
    }


def _serving_dict(p: fl.ServingPoint) -> dict:
    d = {
        "params": p.params_matmul,
        "num_layers": p.shape.num_layers,
        "hidden_size": p.shape.hidden_size,
        "num_kv_heads": p.shape.num_kv_heads,
        "weight_bytes": p.shape.weight_bytes,
        "kv_bytes_per_token": p.shape.kv_bytes_per_token,
        "devices_per_replica": p.devices_per_replica,
        "max_batch_memory": p.max_batch_memory,
        "batch": p.batch,
        "batch_limited_by": p.batch_limited_by,
        "meets_slo": p.meets_slo,
        "decode_tokens_per_s": p.decode_tokens_per_s,
        "decode_bound": p.decode_bound,
        "decode_flop_per_s_per_device": p.decode_flop_per_s_per_device,
        "decode_mfu": p.decode_mfu,
        "tpot_s": p.tpot_s,
        "ttft_s": p.ttft_s,
        "replica_s_per_request": p.replica_s_per_request,
        "device_s_per_request": p.device_s_per_request,
        "usd_per_request": p.usd_per_request,
        "notes": list(p.notes),
    }
    return d


def cost_settings_paper(inputs: ReportInputs) -> CostSettings:
    c_inf = inputs.paper.usd_per_h / 3600.0 / inputs.paper.peak_flop_per_s
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


@dataclass(frozen=True)
class ServingModel:
    """The N-dependent serving cost model built from a profile."""

    hardware: fl.FleetHardware
    curve: fl.DecodeCurve
    workload: fl.Workload
    shape: fl.ShapeAssumption
    # $/request depends on N only, and optimize_cost_general scans the same N grid for every demand
    # at one loss: memoising makes the crossover root-find (one optimisation per demand) cheap.
    _cache: dict = field(default_factory=dict, compare=False, repr=False)

    def point(self, params: float) -> fl.ServingPoint:
        key = float(params)
        p = self._cache.get(key)
        if p is None:
            p = fl.serving_point(key, self.hardware, self.curve, self.workload, self.shape)
            if len(self._cache) < 200_000:
                self._cache[key] = p
        return p

    def usd_per_request(self, params: float) -> float:
        return self.point(params).usd_per_request


def serving_model(inputs: ReportInputs, profile) -> ServingModel:
    hw = fl.hardware_from_profile(profile, usd_per_h=inputs.inference_usd_per_h)
    wl = fl.with_slo_from_profile(fl.Workload(inputs.input_tokens, inputs.output_tokens), profile)
    if inputs.no_slo:
        wl = replace(wl, tpot_slo_s=None, ttft_slo_s=None)
    else:
        if inputs.slo_tpot_p90_s is not None:
            wl = replace(wl, tpot_slo_s=inputs.slo_tpot_p90_s)
        if inputs.slo_ttft_p90_s is not None:
            wl = replace(wl, ttft_slo_s=inputs.slo_ttft_p90_s)
    return ServingModel(hw, fl.curve_from_profile(profile, inputs.extrapolation), wl, inputs.shape)


def optimize_n_dependent(target_loss: float, requests: float, law: LossLaw, train_usd_per_flop: float,
                         model: ServingModel):
    """`optimize_cost_general` with lifetime inference $ = requests × $/request(N) from the fleet model."""
    return optimize_cost_general(
        target_loss, law, train_usd_per_flop, lambda n: requests * model.usd_per_request(n)
    )


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


# --------------------------------------------------------------------------- the solution


def compute_solution(inputs: ReportInputs, profile, profile_provenance: dict, *, tool: str = "solver") -> dict:
    """Every number of the report (pure). See the module docstring for the three scenarios."""
    law = inputs.law
    loss = float(check_reachable(law, inputs.target_loss))
    R = float(inputs.requests)
    if not (math.isfinite(R) and R >= 0):
        raise ValueError(f"requests={R!r}; need a finite number >= 0")
    tokens_per_request = inputs.input_tokens + inputs.output_tokens

    # --- the three optima -------------------------------------------------------------------
    s_paper = cost_settings_paper(inputs)
    s_cal = cost_settings_calibrated(inputs, profile)
    cmp_paper = optimize_cost(loss, R, s_paper, law)
    cmp_cal = optimize_cost(loss, R, s_cal, law)
    model = serving_model(inputs, profile)
    gen = optimize_n_dependent(loss, R, law, inputs.train_usd_per_flop, model)

    pc = phase_costs(profile, usd_per_h=inputs.inference_usd_per_h)
    scen_paper = _comparison_dict(cmp_paper) | {
        "constants": {
            "train_usd_per_flop": s_paper.train_usd_per_flop,
            "input_usd_per_flop": s_paper.input_usd_per_flop,
            "output_usd_per_flop": s_paper.output_usd_per_flop,
            "mfu_input": inputs.paper.mfu_input,
            "mfu_output": inputs.paper.mfu_output,
            "inference_gpu": inputs.paper.gpu,
            "inference_dtype": inputs.paper.dtype,
            "inference_usd_per_h": inputs.paper.usd_per_h,
            "inference_peak_flop_per_s": inputs.paper.peak_flop_per_s,
            "source": inputs.paper.source,
        },
        "usd_per_request": _f(cmp_paper.optimal.params) * s_paper.inference_usd_per_param_request(),
    }
    scen_cal = _comparison_dict(cmp_cal) | {
        "constants": {
            "train_usd_per_flop": s_cal.train_usd_per_flop,
            "input_usd_per_flop": s_cal.input_usd_per_flop,
            "output_usd_per_flop": s_cal.output_usd_per_flop,
            "mfu_input": pc.mfu_input,
            "mfu_output": pc.mfu_output,
            "achieved_flop_per_s_input": pc.achieved_flop_per_s_input,
            "achieved_flop_per_s_output": pc.achieved_flop_per_s_output,
            "achieved_flop_per_s_input_interval": [profile.achieved_flop_per_s_input.low,
                                                   profile.achieved_flop_per_s_input.high],
            "achieved_flop_per_s_output_interval": [profile.achieved_flop_per_s_output.low,
                                                    profile.achieved_flop_per_s_output.high],
            "n_boot": profile.achieved_flop_per_s_output.n_boot,
            "inference_usd_per_h": pc.usd_per_h,
            "device_count": pc.device_count,
            "peak_flop_per_s": pc.peak_flop_per_s,
            "peak_dtype": pc.peak_dtype,
            "operating_concurrency": pc.operating_concurrency,
            "source": "calibration profile (measured), usd_per_h x devices / 3600 / achieved_flop_per_s",
        },
        "usd_per_request": _f(cmp_cal.optimal.params) * s_cal.inference_usd_per_param_request(),
    }
    scen_ndep = {
        "optimal": _plan_dict(gen.params, gen.train_tokens, gen.train_usd, gen.inference_usd),
        "chinchilla": _plan_dict(gen.chinchilla_params, gen.chinchilla_train_tokens,
                                 gen.chinchilla_train_usd, gen.chinchilla_inference_usd),
        "saving_fraction": gen.saving_fraction,
        "saving_usd": gen.chinchilla_total_usd - gen.total_usd,
        "serving_optimal": _serving_dict(model.point(gen.params)),
        "serving_chinchilla": _serving_dict(model.point(gen.chinchilla_params)),
        "usd_per_request": model.usd_per_request(gen.params),
    }

    # --- how far the N-dependent optimum moves from the constant-MFU answer -------------------
    n_const = _f(cmp_cal.optimal.params)
    d_const = _f(cmp_cal.optimal.train_tokens)
    const_under_ndep = 6.0 * inputs.train_usd_per_flop * n_const * d_const + R * model.usd_per_request(n_const)
    shift = {
        "params_ratio": gen.params / n_const,
        "train_tokens_ratio": gen.train_tokens / d_const,
        "total_usd_ratio": gen.total_usd / _f(cmp_cal.optimal.total_usd),
        "constant_mfu_plan_total_usd_under_n_dependent_costs": const_under_ndep,
        "penalty_of_constant_mfu_plan": const_under_ndep / gen.total_usd - 1.0,
        "serving_constant_mfu_plan": _serving_dict(model.point(n_const)),
    }

    # --- the serving fleet for the chosen model (N-dependent optimum) -------------------------
    if inputs.peak_requests_per_s is not None:
        peak = float(inputs.peak_requests_per_s)
        peak_source = "command line"
    else:
        peak = R / (inputs.lifetime_days * SECONDS_PER_DAY) * inputs.peak_to_mean
        peak_source = (f"assumption: lifetime demand spread over {inputs.lifetime_days:g} days, "
                       f"peak = {inputs.peak_to_mean:g} x mean")
    fleet_out = None
    if peak > 0:
        power = fl.power_w_per_device_from_profile(profile)
        fleet = fl.fleet_for_peak(model.point(gen.params), model.hardware, model.workload, peak, power)
        fleet_out = {
            "params": gen.params,
            "peak_requests_per_s": peak,
            "peak_source": peak_source,
            "replica_requests_per_s": fleet.replica_requests_per_s,
            "replicas": fleet.replicas,
            "devices": fleet.devices,
            "devices_per_replica": fleet.point.devices_per_replica,
            "usd_per_request": fleet.usd_per_request,
            "usd_per_million_tokens": fleet.usd_per_million_tokens,
            "energy_j_per_request": fleet.energy_j_per_request,
            "power_w_per_device": power,
            "fleet_usd_per_h": fleet.fleet_usd_per_h,
            "hardware": model.hardware.name,
        }

    # --- crossover: lifetime demand where inference $ equals training $ ----------------------
    def const_fn(settings):
        def fn(r):
            c = optimize_cost(loss, r, settings, law)
            return _log_ratio(_f(c.optimal.inference_usd), _f(c.optimal.train_usd))
        return fn

    def ndep_fn(r):
        g = optimize_n_dependent(loss, r, law, inputs.train_usd_per_flop, model)
        return _log_ratio(g.inference_usd, g.train_usd)

    n_ch = _f(chinchilla_params_for_loss(law, loss))
    d_ch = _f(chinchilla_tokens_for_loss(law, loss))
    train_ch = 6.0 * inputs.train_usd_per_flop * n_ch * d_ch
    crossover = {
        "paper": {
            "chinchilla_requests": train_ch / (n_ch * s_paper.inference_usd_per_param_request()),
            "optimal_requests": crossover_requests(const_fn(s_paper)),
        },
        "calibrated": {
            "chinchilla_requests": train_ch / (n_ch * s_cal.inference_usd_per_param_request()),
            "optimal_requests": crossover_requests(const_fn(s_cal)),
        },
        "calibrated_n_dependent": {
            "chinchilla_requests": train_ch / model.usd_per_request(n_ch),
            "optimal_requests": crossover_requests(ndep_fn, points=21),
        },
    }

    # --- Figure-6-style maps (vectorised Eq. 6) ----------------------------------------------
    m = inputs.map_points
    lo_n, hi_n = inputs.map_chinchilla_params_range
    map_params = np.logspace(math.log10(lo_n), math.log10(hi_n), m)
    map_losses = chinchilla_loss_for_params(law, map_params)
    map_requests = np.logspace(math.log10(inputs.map_requests_range[0]),
                               math.log10(inputs.map_requests_range[1]), m)
    maps = {"chinchilla_params": map_params.tolist(), "losses": map_losses.tolist(),
            "requests": map_requests.tolist()}
    for key, settings in (("paper", s_paper), ("calibrated", s_cal)):
        c = optimize_cost(map_losses[:, None], map_requests[None, :], settings, law)
        maps[key] = {
            "cost_ratio": (c.optimal.total_usd / c.chinchilla.total_usd).tolist(),
            "params_ratio": (c.optimal.params / c.chinchilla.params).tolist(),
            "tokens_ratio": (c.optimal.train_tokens / c.chinchilla.train_tokens).tolist(),
        }

    # --- total cost against N at the target loss (the three cost models) ----------------------
    n_min = (law.A / (loss - law.E)) ** (1.0 / law.alpha)
    n_grid = np.logspace(math.log10(n_min * 1.02), math.log10(max(n_ch, gen.params, n_const) * 4.0), 121)
    d_grid = tokens_for_loss(law, loss, n_grid)
    train_grid = 6.0 * inputs.train_usd_per_flop * n_grid * d_grid
    curves = {
        "params": n_grid.tolist(),
        "train_tokens": d_grid.tolist(),
        "train_usd": train_grid.tolist(),
        "paper_total_usd": (train_grid + R * n_grid * s_paper.inference_usd_per_param_request()).tolist(),
        "calibrated_total_usd": (train_grid + R * n_grid * s_cal.inference_usd_per_param_request()).tolist(),
        "n_dependent_total_usd": [float(t + R * model.usd_per_request(n)) for n, t in zip(n_grid, train_grid)],
    }

    decode = decode_curve_data(profile, model, gen.params)

    return {
        "schema_version": SOLUTION_SCHEMA_VERSION,
        "kind": "sizing_report",
        "target": {
            "loss": loss,
            "chinchilla_params": inputs.chinchilla_params,
            "chinchilla_equivalent_params": n_ch,
            "chinchilla_equivalent_train_tokens": d_ch,
        },
        "demand": {
            "requests": R,
            "input_tokens_per_request": inputs.input_tokens,
            "output_tokens_per_request": inputs.output_tokens,
            "inference_tokens": R * tokens_per_request,
        },
        "law": law.as_dict(),
        "train": {"usd_per_flop": inputs.train_usd_per_flop, **inputs.train_description},
        "scenarios": {"paper": scen_paper, "calibrated": scen_cal, "calibrated_n_dependent": scen_ndep},
        "shift": shift,
        "fleet": fleet_out,
        "crossover": crossover,
        "maps": maps,
        "cost_curves": curves,
        "decode_curve": decode,
        "assumptions": {
            "shape": asdict(inputs.shape),
            "hardware": asdict(model.hardware),
            "workload": asdict(model.workload),
            "slo_source": ("--no-slo: no latency limit" if inputs.no_slo else
                           "command line" if (inputs.slo_tpot_p90_s or inputs.slo_ttft_p90_s) else profile.slo.source),
            "curve_extrapolation": inputs.extrapolation,
            "fleet_model": (fl.__doc__ or "").strip(),
        },
        "provenance": {
            "profile": profile_provenance,
            "tool": tool,
            "inputs": {
                "target_loss": inputs.target_loss,
                "chinchilla_params": inputs.chinchilla_params,
                "requests": inputs.requests,
                "peak_requests_per_s": inputs.peak_requests_per_s,
                "lifetime_days": inputs.lifetime_days,
                "peak_to_mean": inputs.peak_to_mean,
                "input_tokens": inputs.input_tokens,
                "output_tokens": inputs.output_tokens,
                "inference_usd_per_h": inputs.inference_usd_per_h,
                "extrapolation": inputs.extrapolation,
                "slo_tpot_p90_s": inputs.slo_tpot_p90_s,
                "slo_ttft_p90_s": inputs.slo_ttft_p90_s,
                "no_slo": inputs.no_slo,
                "law": law.name,
            },
            "kinds": {
                "paper": "assumption (the paper's constants)",
                "calibrated": "measured (profile) + computed",
                "calibrated_n_dependent": "measured (profile curve) + computed + assumptions (see assumptions)",
            },
        },
    }


def decode_curve_data(profile, model: ServingModel, chosen_params: float) -> dict:
    """Measured decode points, the interpolation used, the profile model's roofline, and the chosen model.

    Roofline of the profile's own model: rate(b) = b / max((W + b·kv·ctx)/BW, b·2N/peak) per device
    count of the profile; as MFU = rate·2N / (devices·peak).
    """
    hw = model.hardware
    pm = profile.model
    devices = profile.hardware.device_count
    n = float(pm.params_matmul)
    weight_bytes = pm.weight_bytes or (pm.params_total * (pm.bytes_per_param or 1.0))
    kv_per_token = 2.0 * pm.num_layers * pm.num_kv_heads * pm.head_dim * model.shape.kv_bytes
    own = fl.ModelShape(n, pm.num_layers, pm.hidden_size, pm.num_kv_heads, pm.head_dim, float(weight_bytes),
                        kv_per_token)
    cmax = max([p.concurrency for p in profile.decode_curve] + [profile.operating_concurrency or 1, 1])
    b = np.unique(np.round(np.logspace(0, math.log10(max(2 * cmax, 4)), 60)))
    t_roof = fl.roofline_step_time_s(own, hw, model.workload, devices, b)
    roof_flop = np.where(t_roof > 0, b * 2.0 * n / np.where(t_roof > 0, t_roof, 1.0), np.nan)
    interp_flop = model.curve.flop_per_s(b) * devices
    peak_total = hw.peak_flop_per_s * devices if hw.peak_flop_per_s else None
    chosen = fl.shape_for_params(chosen_params, model.shape)
    g = fl.devices_needed(chosen, hw, model.workload)
    b_ch = np.arange(1, max(1, fl.max_batch_memory(chosen, hw, model.workload, g)) + 1, dtype=float)
    rate_ch, _ = fl.decode_tokens_per_s(chosen, hw, model.curve, model.workload, g, b_ch)
    flop_ch = rate_ch * 2.0 * chosen_params  # all devices of the replica
    return {
        "measured": [
            {"concurrency": p.concurrency, "achieved_flop_per_s": p.achieved_flop_per_s, "mfu_output": p.mfu_output,
             "tpot_p90_s": p.tpot_p90_s, "output_tokens_per_s": p.output_tokens_per_s}
            for p in profile.decode_curve
        ],
        "operating_point": None if profile.operating_point is None else profile.operating_point.model_dump(),
        "batch": b.tolist(),
        "interpolated_flop_per_s": interp_flop.tolist(),
        "roofline_flop_per_s": [None if not math.isfinite(v) else float(v) for v in roof_flop],
        "peak_flop_per_s_total": peak_total,
        "profile_model_weight_bytes": float(weight_bytes),
        "chosen_params": chosen_params,
        "chosen_batch": b_ch.tolist(),
        "chosen_flop_per_s_per_device": (flop_ch / g).tolist(),
        "chosen_devices_per_replica": g,
    }
