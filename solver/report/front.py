"""The throughput-latency front: output tokens per second per device against tokens per second per user.

The plot serving engineers look at first. Batching more sequences raises what a device delivers
(throughput, y) and slows each stream (interactivity, x = 1 / TPOT); the front is the curve between
them, and the latency SLO is a vertical line at x = 1 / TPOT limit: only points right of it are
servable. Per hardware entry, every point says whether it was **measured** or **predicted** (or
**assumed**: the "runs" of a profile built from stated constants, a synthetic or datasheet profile):

x is 1 / TPOT p90 wherever a p90 is known, so the SLO line is exactly the TPOT verdict:

* measured, decode curve: the profile's decode-workload runs (`core.schema.profile.CurvePoint`):
  y = output tok/s / devices of the run, x = 1 / TPOT p90 as measured.
* measured, ladder runs: the runs of each ladder size the performance model was fitted on
  (`performance_model.held_out[].measured`, with their in/out tokens). They carry a mean TPOT only:
  x = 1 / mean TPOT, and a point is marked as missing the SLO when its mean is already above the
  p90 limit, else unknown (None).
* predicted, profiled model: the performance model's closed-form steady state
  (`solver.optimize.serving.steady_state`) of the profiled model at the decode-curve workload, over batch;
  TPOT p90 = the serving model's p90/mean ratio (`solver.optimize.serving.p90_ratios`) x the predicted mean,
  TTFT p90 likewise (no queueing).
* predicted, chosen model: the same for the report's chosen model at the report's workload, over
  batch 1 .. its KV-cache room, on its devices per replica. The chosen model is the recommended
  (SLO-constrained) size, else (no feasible size) the unconstrained N-dependent optimum. The
  **operating point** is the batch `solver.optimize.serving` picked for it, with its p90s (TTFT with the
  queueing wait at the planned utilisation) and its SLO verdict.

`front(s)` lists the report's profile and each further hardware it compares (`Solved.others`);
`front_for(entries)` takes `HardwareEntry`s (label, profile, serving model, chosen N) directly.
Pure: nothing here prints or writes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np

from solver.optimize import serving
from solver.report.records import Section, Sparse, finite
from solver.report.solve import ServingModel, Solved

DECODE_WORKLOAD = (8, 64)  # (input, output) tokens of the profiles' decode runs (solver.report.curves.DECODE_CURVE_WORKLOAD)


@dataclass(frozen=True)
class HardwareEntry:
    label: str  # how the report names this hardware (e.g. the profile's hardware name)
    profile: object  # core.schema.profile.Profile
    model: ServingModel | None  # None: the profile has no performance model (measured points only)
    chosen_params: float | None = None  # the chosen model on this hardware (None: no predicted front)
    chosen: str = "recommended (SLO-constrained) model"  # what the chosen model is


Kind = Literal["measured", "assumed", "predicted"]


class FrontSlo(Section):
    """The (p90) latency limits of one hardware entry (None: no limit)."""

    tpot_p90_s: float | None
    ttft_p90_s: float | None
    tokens_per_s_per_user_min: float | None  # 1 / the TPOT limit: the SLO line


class FrontPoint(Sparse):
    """One point of a series: y = tokens_per_s_per_device, x = tokens_per_s_per_user (None: no TPOT)."""

    SPARSE = frozenset({"tpot_mean_s"})

    kind: Kind
    concurrency: float
    tokens_per_s_per_device: float
    tokens_per_s_per_user: float | None
    tpot_s: float | None  # p90, or the mean for a ladder run (its series' tpot_statistic says which)
    ttft_s: float | None
    meets_slo: bool | None  # None: unknown (a limited figure is unknown) or no SLO
    tpot_mean_s: float | None = None  # predicted points only (absent on measured ones)


class FrontSeries(Sparse):
    """One curve of a hardware entry: measured runs (decode curve, a ladder size) or a prediction."""

    SPARSE = frozenset({"chosen"})

    kind: Kind
    model: str  # the model's name, or "chosen" for the report's chosen model
    chosen: str | None = None  # what the chosen model is (the "chosen" series only)
    params: float
    # as produced: the decode workload's integer tokens, or the report's workload (floats) for the
    # chosen model; kept so that solution.json does not change
    input_tokens: int | float
    output_tokens: int | float
    devices: int
    tpot_statistic: str  # "p90", "mean" (ladder runs) or how the predicted p90 is made
    source: str
    points: list[FrontPoint]


class FrontOperatingPoint(Section):
    """The chosen model's operating point (predicted): the batch solver.optimize.serving picked."""

    kind: Kind
    concurrency: float
    tokens_per_s_per_device: float
    tokens_per_s_per_user: float | None
    tpot_s: float | None  # p90
    ttft_s: float | None  # p90, with the queueing wait at the planned utilisation
    meets_slo: bool
    batch_limited_by: str
    params: float
    chosen: str
    devices_per_replica: int
    tpot_mean_s: float
    utilisation_at_peak: float | None
    queue_wait_p90_s: float | None  # None: unbounded


class MeasuredOperatingPoint(Section):
    """The profile's own operating point (measured, or assumed for a synthetic/datasheet profile)."""

    kind: Kind
    concurrency: int
    tokens_per_s_per_device: float
    meets_slo: bool


class FrontHardware(Section):
    label: str
    hardware: str
    device_name: str
    slo: FrontSlo
    series: list[FrontSeries]
    operating_point: FrontOperatingPoint | None  # None: no chosen model (no performance model)
    measured_operating_point: MeasuredOperatingPoint | None


class Front(Section):
    """solution.json `front`: the throughput-latency front of each hardware entry."""

    x: str
    y: str
    hardware: list[FrontHardware]


def _rate(x: float | None) -> float | None:
    """1 / x for a positive finite x, else None."""
    return 1.0 / x if x is not None and x > 0 and math.isfinite(x) else None


def _meets(tpot_s: float | None, ttft_s: float | None, slo: dict, p90: bool = True) -> bool | None:
    """Against the (p90) SLO limits; None when a limited figure is unknown or there is no SLO. With
    mean figures (p90=False) only a miss is certain (the p90 is at least the mean)."""
    if slo["tpot_p90_s"] is None and slo["ttft_p90_s"] is None:
        return None
    verdict = True
    for value, limit in ((tpot_s, slo["tpot_p90_s"]), (ttft_s, slo["ttft_p90_s"])):
        if limit is not None:
            if value is None or not math.isfinite(value):
                verdict = None
            elif value > limit:
                return False
    return verdict if p90 else (None if verdict else verdict)


def _point(kind: str, concurrency: float, per_device: float, tpot_s: float | None, ttft_s: float | None,
           slo: dict, p90: bool = True) -> dict:
    return {"kind": kind, "concurrency": float(concurrency), "tokens_per_s_per_device": float(per_device),
            "tokens_per_s_per_user": _rate(tpot_s), "tpot_s": tpot_s, "ttft_s": ttft_s,
            "meets_slo": _meets(tpot_s, ttft_s, slo, p90)}


def _slo(profile, model: ServingModel | None, no_slo: bool = False) -> dict:
    if model is not None:
        tpot, ttft = model.workload.tpot_slo_s, model.workload.ttft_slo_s
    elif no_slo:
        tpot = ttft = None
    else:
        tpot, ttft = profile.slo.tpot_p90_s, profile.slo.ttft_p90_s
    return {"tpot_p90_s": tpot, "ttft_p90_s": ttft, "tokens_per_s_per_user_min": _rate(tpot)}


def run_kind(profile) -> str:
    """"measured" for a profile of real runs; "assumed" for one built from stated constants (a synthetic
    profile, or one from a datasheet with stated efficiencies), whose "runs" were never run."""
    prov = profile.provenance
    return "assumed" if prov.inputs == "synthetic" or prov.method.startswith("datasheet") else "measured"


def measured_decode_curve(profile, slo: dict) -> dict:
    devices, kind = profile.hardware.device_count, run_kind(profile)
    return {
        "kind": kind, "model": profile.model.name, "params": float(profile.model.params_matmul),
        "input_tokens": DECODE_WORKLOAD[0], "output_tokens": DECODE_WORKLOAD[1], "devices": devices,
        "tpot_statistic": "p90",
        "source": "the profile's decode curve (decode-workload runs), output tok/s / devices, 1 / TPOT p90",
        "points": [_point(kind, p.concurrency, p.output_tokens_per_s / devices, p.tpot_p90_s, p.ttft_p90_s, slo)
                   for p in profile.decode_curve],
    }


def measured_ladder_runs(profile, slo: dict) -> list[dict]:
    """The ladder's runs with a TPOT (decode happened), one series per (size, input, output tokens)."""
    pm = getattr(profile, "performance_model", None)
    if pm is None:
        return []
    devices, kind = profile.hardware.device_count, run_kind(profile)
    groups: dict[tuple, dict] = {}
    for r in pm.held_out:
        m = r.measured
        if m.tpot_s is None or m.output_tokens_per_s is None:
            continue
        key = (r.model, r.input_tokens, r.output_tokens)
        g = groups.setdefault(key, {
            "kind": kind, "model": r.model, "params": float(r.params_matmul), "input_tokens": r.input_tokens,
            "output_tokens": r.output_tokens, "devices": devices, "tpot_statistic": "mean",
            "source": "ladder runs (performance_model.held_out measured), output tok/s / devices, 1 / mean TPOT",
            "points": []})
        g["points"].append(_point(kind, r.concurrency, m.output_tokens_per_s / devices, m.tpot_s, m.ttft_s, slo,
                                  p90=False))
    for g in groups.values():
        g["points"].sort(key=lambda p: p["concurrency"])
    return list(groups.values())


def _predicted(model: ServingModel, shape, wl: serving.Workload, batch: np.ndarray, tp: int, pp: int,
               devices: int, slo: dict) -> list[dict]:
    """Points at each batch: TPOT p90 and TTFT p90 = the workload's p90/mean ratios x the predicted means."""
    st = serving.steady_state(model.perf, shape, wl, batch, model.hardware, tp, pp)
    out_rate, tpot, ttft = (np.asarray(st[k], float) for k in ("output_tokens_per_s", "tpot_s", "ttft_s"))
    rt, rf = _ratios(model)
    return [_point("predicted", b, r / devices, float(rt * t), float(rf * f), slo) | {"tpot_mean_s": float(t)}
            for b, r, t, f in zip(batch, out_rate, tpot, ttft)]


def _ratios(model: ServingModel) -> tuple[float, float]:
    wl = model.workload
    return float(getattr(wl, "tpot_p90_ratio", 1.0)), float(getattr(wl, "ttft_p90_ratio", 1.0))


def _predicted_statistic(model: ServingModel) -> str:
    rt, rf = _ratios(model)
    return f"p90 (predicted mean x p90/mean ratio: TPOT {rt:.3g}, TTFT {rf:.3g}; TTFT without queueing)"


def predicted_profiled_model(profile, model: ServingModel, slo: dict) -> dict:
    """The performance model's steady state of the profiled model at the decode-curve workload."""
    cmax = max([p.concurrency for p in profile.decode_curve] + [profile.operating_concurrency or 1, 1])
    batch = np.unique(np.round(np.logspace(0, math.log10(max(2 * cmax, 4)), 24)))
    devices = profile.hardware.device_count
    wl = serving.Workload(*map(float, DECODE_WORKLOAD))
    return {
        "kind": "predicted", "model": profile.model.name, "params": float(profile.model.params_matmul),
        "input_tokens": DECODE_WORKLOAD[0], "output_tokens": DECODE_WORKLOAD[1], "devices": devices,
        "tpot_statistic": _predicted_statistic(model),
        "source": "performance model, closed-form steady state (solver.optimize.serving.steady_state)",
        "points": _predicted(model, serving.profile_model_shape(profile), wl, batch, 1, 1, devices, slo),
    }


def predicted_chosen_model(model: ServingModel, params: float, slo: dict, chosen: str = "chosen model") \
        -> tuple[dict, dict]:
    """(series over batch 1 .. KV room, operating point) of the chosen model at the report's workload."""
    pt = model.point(params)
    batch = np.arange(1, max(1, pt.max_batch_memory) + 1, dtype=float)
    if len(batch) > 64:  # a log grid keeps the section small; the operating batch is always on it
        batch = np.unique(np.concatenate([np.round(np.logspace(0, math.log10(batch[-1]), 48)), [pt.batch]]))
    wl = model.workload
    series = {
        "kind": "predicted", "model": "chosen", "chosen": chosen, "params": float(params),
        "input_tokens": wl.input_tokens, "output_tokens": wl.output_tokens, "devices": pt.devices_per_replica,
        "tpot_statistic": _predicted_statistic(model),
        "source": "performance model at the chosen size and the report's workload, per device of a replica",
        "points": _predicted(model, pt.shape, wl, batch, pt.tensor_parallel, pt.pipeline_parallel,
                             pt.devices_per_replica, slo),
    }
    rt, rf = _ratios(model)
    tpot90, ttft90 = getattr(pt, "tpot_p90_s", math.nan), getattr(pt, "ttft_p90_s", math.nan)
    tpot90 = tpot90 if math.isfinite(tpot90) else rt * pt.tpot_s
    ttft90 = ttft90 if math.isfinite(ttft90) else rf * pt.ttft_s
    op = _point("predicted", pt.batch, pt.output_tokens_per_s / pt.devices_per_replica, tpot90, ttft90, slo)
    op |= {"meets_slo": pt.meets_slo, "batch_limited_by": pt.batch_limited_by, "params": float(params),
           "chosen": chosen, "devices_per_replica": pt.devices_per_replica, "tpot_mean_s": pt.tpot_s,
           "utilisation_at_peak": finite(getattr(pt, "utilisation_at_peak", None)),
           "queue_wait_p90_s": finite(getattr(pt, "queue_wait_p90_s", None))}
    return series, op


def front_entry(e: HardwareEntry, no_slo: bool = False) -> dict:
    slo = _slo(e.profile, e.model, no_slo)
    series = [measured_decode_curve(e.profile, slo)] if e.profile.decode_curve else []
    series += measured_ladder_runs(e.profile, slo)
    op = None
    if e.model is not None:
        series.append(predicted_profiled_model(e.profile, e.model, slo))
        if e.chosen_params is not None:
            chosen, op = predicted_chosen_model(e.model, e.chosen_params, slo, e.chosen)
            series.append(chosen)
    mop = e.profile.operating_point
    return {
        "label": e.label, "hardware": e.profile.hardware.name, "device_name": e.profile.hardware.device_name,
        "slo": slo, "series": series, "operating_point": op,
        "measured_operating_point": None if mop is None else {
            "kind": run_kind(e.profile), "concurrency": mop.concurrency,
            "tokens_per_s_per_device": mop.output_tokens_per_s / e.profile.hardware.device_count,
            "meets_slo": mop.meets_slo},
    }


def front_for(entries: list[HardwareEntry], no_slo: bool = False) -> Front | None:
    """The front of each hardware entry (None for no entries)."""
    if not entries:
        return None
    return Front.model_validate({
        "x": "tokens per second per user: 1 / TPOT p90 (ladder runs: 1 / mean TPOT, the only TPOT they carry)",
        "y": "output tokens per second per device",
        "hardware": [front_entry(e, no_slo) for e in entries],
    })


def entry_of(s: Solved) -> HardwareEntry:
    """The hardware entry of one solved profile: its recommended (SLO-constrained) model, else its
    unconstrained N-dependent optimum."""
    sizing = getattr(s, "sizing", None)
    if sizing is not None and sizing.constrained is not None:
        chosen, what = sizing.constrained.params, "recommended (SLO-constrained) model"
    elif s.n_dependent is not None:
        chosen, what = s.n_dependent.params, "N-dependent optimum (no model size meets the SLO)" \
            if sizing is not None else "N-dependent optimum"
    else:
        chosen, what = None, ""
    label = getattr(s, "label", None) or s.profile.hardware.name
    return HardwareEntry(label, s.profile, s.model, chosen, what)


def front(s: Solved) -> Front | None:
    """The report's section: the front of the report's profile and of each further hardware (`s.others`)."""
    return front_for([entry_of(x) for x in (s, *getattr(s, "others", ()))], s.inputs.no_slo)
