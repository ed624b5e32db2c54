"""Hardware side by side: the same target and demand sized on each inference profile (pure).

`solve` of one profile gives its SLO-constrained, provisioned optimum (`solver.report.solve`); this
module turns a solved profile into what a buyer compares:

* `fleet_of(s)`: the whole-replica fleet that serves the peak at the SLO for the recommended model
  (replicas = ceil(peak / (replica requests/s × the utilisation its TTFT p90 allows))), its TPOT /
  TTFT p90 at the fleet's actual utilisation, $/request and $/1M tokens (busy devices), and energy per
  request where the profile measured power;
* `recommendation_of(s)`: the `recommendation` contract of solution.json, whose inference dollars are
  the provisioned fleet's: fleet_usd_per_h × lifetime_h;
* `row_of(s, label, provenance)`: one row of the comparison, and `section(s)` the report's `hardware`
  section, one row per profile (the report's own first, then each further --inference-profile) with the
  cheapest feasible choice. Each row is `row_of` of that profile solved alone, so it equals the
  single-hardware report of that profile (tests/test_report_sizing.py).

A profile may also be built from a datasheet (`datasheet_profile("a100-40gb:mfu_in=0.5,mfu_out=0.01")`):
the GPU table's peak, memory, bandwidth, interconnect and price (core/data/gpus.toml) with *stated*
efficiencies, as a constant-efficiency step model (`split` form: t0 + weights / (mbu · bandwidth) +
decode tokens · 2N / (mfu_out · peak) + prompt tokens · 2N / (mfu_in · peak)). Without `mbu` the weights
are read for free and mfu_out is all-in, as in the paper. Every number of such a profile is
**assumed**, and its rows say so.
"""

from __future__ import annotations

import math
from typing import Literal

from pydantic import Field

from calibrate.profile.curve import make_slo
from core.errors import BadValue
from core.gpus import get_device, peak_flop_per_s
from core.paper import PAPER, SECONDS_PER_HOUR
from core.schema.perfmodel import FittedParam, Parallelism, PerformanceModel, Scheduler
from core.schema.profile import Costs, Estimate, Profile, ProfileHardware, ProfileModel, ProfileProvenance, Slo
from solver.optimize import serving
from solver.report.records import Section
from solver.report.solve import Solved

MAX_REPLICAS = 1e15  # a fleet beyond this is not a deployment (and ceil() of it stops being exact)
ASSUMED = "assumed"


def _finite(x):
    return x if x is None or math.isfinite(x) else None


class Fleet(Section):
    """solution.json `fleet`: whole replicas serving the peak at the SLO for the recommended model.

    The fields marked (v3) are None in a report upgraded from version 1 or 2 (not computed then)."""

    params: float
    peak_requests_per_s: float
    peak_source: str
    mean_requests_per_s: float | None  # (v3)
    utilisation: float | None  # (v3) mean / peak
    replica_requests_per_s: float
    utilisation_at_peak: float | None  # (v3) the most a replica may be loaded with its TTFT p90 in the SLO
    fleet_utilisation_at_peak: float | None  # (v3) the whole fleet's at the peak
    replicas: int
    devices: int
    devices_per_replica: int
    usd_per_request: float  # devices busy
    usd_per_million_tokens: float  # devices busy
    provisioned_usd_per_request: float | None  # fleet $/h x lifetime / lifetime requests (None: no requests)
    provisioned_usd_per_million_tokens: float | None
    energy_j_per_request: float | None  # None: the profile measured no power
    power_w_per_device: float | None
    fleet_usd_per_h: float
    hardware: str
    tpot_p90_s: float | None  # at the fleet's utilisation at the peak; None: unbounded
    ttft_p90_s: float | None
    lifetime_h: float | None  # (v3)


class Recommendation(Section):
    """The plan to act on (a contract other tools read): the cheapest model size that meets the SLO,
    its provisioned fleet and lifetime cost. inference_usd = fleet_usd_per_h × lifetime_h exactly."""

    params: float = Field(gt=0)
    train_tokens: float = Field(gt=0)
    total_usd: float = Field(ge=0)
    train_usd: float = Field(ge=0)
    inference_usd: float = Field(ge=0)
    meets_slo: bool
    tpot_p90_s: float | None
    ttft_p90_s: float | None
    fleet_devices: int = Field(ge=0)
    fleet_usd_per_h: float = Field(ge=0)
    lifetime_h: float = Field(gt=0)


class HardwareRow(Section):
    """One hardware of the `hardware` section: its recommendation, fleet, unit prices and energy (None
    where it has none: see status and message)."""

    label: str
    hardware: str
    device_name: str
    profile: str | None  # the profile's path (datasheet:SPEC for a datasheet profile)
    provenance: str  # "measured (calibration profile)" or "assumed: ..."
    status: Literal["feasible", "infeasible", "no_performance_model"]
    message: str | None
    slo_tpot_p90_s: float | None
    slo_ttft_p90_s: float | None
    params: float | None
    train_tokens: float | None
    total_usd: float | None
    train_usd: float | None
    inference_usd: float | None
    meets_slo: bool | None
    tpot_p90_s: float | None
    ttft_p90_s: float | None
    fleet_devices: int | None
    fleet_usd_per_h: float | None
    usd_per_request: float | None  # provisioned
    usd_per_million_tokens: float | None  # provisioned
    busy_usd_per_request: float | None
    energy_j_per_request: float | None


class HardwareSection(Section):
    """solution.json `hardware`: one row per inference profile (the report's first) and the cheapest."""

    rows: list[HardwareRow]
    cheapest: str | None  # label of the cheapest feasible row; None: no row is feasible
    basis: str


def fleet_of(s: Solved) -> Fleet | None:
    """The fleet serving the peak at the SLO for the recommended model (None without a feasible N)."""
    z = s.sizing
    if z is None or z.constrained is None:
        return None
    point = s.model.point(z.constrained.params)
    peak = z.peak_requests_per_s
    rho = point.utilisation_at_peak
    capacity = point.requests_per_s * rho  # per replica, at the utilisation the TTFT p90 allows
    replicas = peak / capacity if peak > 0 else 0.0
    if not replicas <= MAX_REPLICAS:  # also catches inf/nan
        name = "peak_requests_per_s" if s.inputs.peak_requests_per_s is not None else "requests"
        value = peak if name == "peak_requests_per_s" else s.requests
        limit = value * MAX_REPLICAS / replicas if math.isfinite(replicas) else None
        why = f"the fleet would need more than {MAX_REPLICAS:g} replicas of {capacity:.3g} requests/s"
        raise BadValue(name, value, f"{why}; need {name} <= {limit:.3g}" if limit else why, why=why, limit=limit)
    power = serving.power_w_per_device_from_profile(s.profile)
    wl, hw = s.model.workload, s.model.hardware
    n_rep = 0 if peak <= 0 else max(1, math.ceil(replicas - 1e-9))
    at = peak / (n_rep * point.requests_per_s) if n_rep else 0.0  # the whole fleet's utilisation at the peak
    tpot90, ttft90 = serving.p90_at_utilisation(point, wl, at)
    devices = n_rep * point.devices_per_replica
    fleet_usd_per_h = devices * hw.usd_per_h
    return Fleet(**{
        "params": point.params_matmul, "peak_requests_per_s": peak, "peak_source": z.peak_source,
        "mean_requests_per_s": z.mean_requests_per_s, "utilisation": z.utilisation,
        "replica_requests_per_s": point.requests_per_s, "utilisation_at_peak": rho,
        "fleet_utilisation_at_peak": at, "replicas": n_rep, "devices": devices,
        "devices_per_replica": point.devices_per_replica, "usd_per_request": point.usd_per_request,
        "usd_per_million_tokens": point.usd_per_request / (wl.input_tokens + wl.output_tokens) * 1e6,
        "provisioned_usd_per_request": fleet_usd_per_h * z.lifetime_h / s.requests if s.requests else None,
        "provisioned_usd_per_million_tokens": (fleet_usd_per_h * z.lifetime_h * 1e6
                                               / (s.requests * (wl.input_tokens + wl.output_tokens)))
        if s.requests else None,
        "energy_j_per_request": None if power is None else power * point.device_s_per_request,
        "power_w_per_device": power, "fleet_usd_per_h": fleet_usd_per_h, "hardware": hw.name,
        "tpot_p90_s": _finite(tpot90), "ttft_p90_s": _finite(ttft90), "lifetime_h": z.lifetime_h,
    })


def recommendation_of(s: Solved) -> Recommendation | None:
    """The `recommendation` contract: the cheapest SLO-feasible plan with its provisioned fleet;
    inference_usd = fleet_usd_per_h × lifetime_h (whole replicas: the optimiser's continuous fleet
    differs by less than one replica's hours). None when no N is feasible or the profile has no
    performance model (`sizing.message` says which)."""
    f = fleet_of(s)
    if f is None:
        return None
    c = s.sizing.constrained
    inference = f.fleet_usd_per_h * f.lifetime_h
    return Recommendation(
        params=c.params, train_tokens=c.train_tokens, total_usd=c.train_usd + inference,
        train_usd=c.train_usd, inference_usd=inference, meets_slo=bool(s.model.feasible(c.params)),
        tpot_p90_s=f.tpot_p90_s, ttft_p90_s=f.ttft_p90_s, fleet_devices=int(f.devices),
        fleet_usd_per_h=f.fleet_usd_per_h, lifetime_h=f.lifetime_h,
    )


def _provenance_of(profile) -> str:
    method = profile.provenance.method
    if method.startswith("datasheet"):
        return f"{ASSUMED}: {method}"
    if profile.provenance.inputs == "synthetic":
        return f"{ASSUMED}: synthetic profile ({method})"
    return "measured (calibration profile)"


def row_of(s: Solved, label: str | None = None) -> HardwareRow:
    """One hardware's row: its recommendation, fleet, unit prices and energy (or why there is none)."""
    rec = recommendation_of(s)
    f = fleet_of(s)
    status = ("no_performance_model" if s.sizing is None else
              "infeasible" if s.sizing.constrained is None else "feasible")
    message = None
    if s.sizing is None:
        message = "the profile has no performance model: no serving cost of other model sizes"
    elif s.sizing.infeasible:
        message = s.sizing.infeasible
    keys = ("params", "train_tokens", "total_usd", "train_usd", "inference_usd", "meets_slo", "tpot_p90_s",
            "ttft_p90_s", "fleet_devices", "fleet_usd_per_h")
    wl = s.model.workload if s.model is not None else None
    return HardwareRow(**{
        "label": label or s.profile.hardware.name,
        "hardware": s.profile.hardware.name,
        "device_name": s.profile.hardware.device_name,
        "profile": s.profile_provenance.get("path"),
        "provenance": _provenance_of(s.profile),
        "status": status, "message": message,
        "slo_tpot_p90_s": None if wl is None else wl.tpot_slo_s,
        "slo_ttft_p90_s": None if wl is None else wl.ttft_slo_s,
        **{k: None if rec is None else getattr(rec, k) for k in keys},
        "usd_per_request": None if f is None else f.provisioned_usd_per_request,
        "usd_per_million_tokens": None if f is None else f.provisioned_usd_per_million_tokens,
        "busy_usd_per_request": None if f is None else f.usd_per_request,
        "energy_j_per_request": None if f is None else f.energy_j_per_request,
    })


def cheapest(rows: list[HardwareRow]) -> str | None:
    """Label of the feasible row with the lowest lifetime total (None when no row is feasible)."""
    ok = [r for r in rows if r.status == "feasible" and r.total_usd is not None]
    return min(ok, key=lambda r: r.total_usd).label if ok else None


def section(s: Solved) -> HardwareSection:
    """The report's `hardware` section: the report's profile, then each further one, and the cheapest."""
    rows = [row_of(x, label) for x, label in ((s, s.label), *((o, o.label) for o in s.others))]
    return HardwareSection(rows=rows, cheapest=cheapest(rows),
                           basis="same target, demand and training price on every hardware; each profile's own SLO unless "
                                 "--slo-tpot-p90-s/--slo-ttft-p90-s set one for all (each row shows its SLO); $/request and "
                                 "$/1M tokens are provisioned (fleet $/h x lifetime / lifetime requests)")


# --------------------------------------------------------------------------- datasheet profiles


def parse_datasheet_spec(text: str) -> tuple[str, dict[str, float]]:
    """'a100-40gb:mfu_in=0.5,mfu_out=0.01[,mbu=0.8,t0_s=0.005,usd_per_h=1.1]' -> (device, values).

    ValueError (one line naming the bad part and what is allowed) for anything else.
    """
    allowed = ("mfu_in", "mfu_out", "mbu", "t0_s", "usd_per_h")
    name, sep, rest = text.partition(":")
    if not name or not sep:
        raise ValueError(f"{text!r}: need DEVICE:mfu_in=X,mfu_out=Y[,mbu=Z,t0_s=S,usd_per_h=P]")
    values: dict[str, float] = {}
    for part in rest.split(","):
        key, eq, val = part.strip().partition("=")
        if key not in allowed or not eq:
            raise ValueError(f"{text!r}: {part.strip()!r} is not KEY=VALUE with KEY one of {', '.join(allowed)}")
        try:
            v = float(val)
        except ValueError:
            raise ValueError(f"{text!r}: {key}={val!r} is not a number") from None
        low_ok = v >= 0 if key == "t0_s" else v > 0
        if not math.isfinite(v) or not low_ok or (key in ("mfu_in", "mfu_out", "mbu") and v > 1):
            what = "a fraction in (0, 1]" if key in ("mfu_in", "mfu_out", "mbu") else \
                "a finite number >= 0" if key == "t0_s" else "a finite number > 0"
            raise ValueError(f"{text!r}: {key}={val}: need {what}")
        values[key] = v
    missing = [k for k in ("mfu_in", "mfu_out") if k not in values]
    if missing:
        raise ValueError(f"{text!r}: missing {', '.join(missing)} (the efficiencies must be stated)")
    return name, values


def datasheet_profile(text: str, *, template=None):
    """A `core.schema.profile.Profile` of a GPU from the datasheet table and stated efficiencies (all assumed).

    `template`: a measured profile whose model section, SLO and request overhead are reused (its model is
    only what the step model's shape is taken from when the report prints a decode curve); the paper's
    workload otherwise. ValueError for an unknown device or a bad spec.
    """

    name, v = parse_datasheet_spec(text)
    try:
        dev = get_device(name)
    except (KeyError, ValueError) as exc:
        raise ValueError(f"{text!r}: {exc}") from None
    peak = peak_flop_per_s(dev, "int8")
    price = v.get("usd_per_h", dev.usd_per_h)
    if price is None:
        raise ValueError(f"{text!r}: the GPU table has no price for {dev.key}; add usd_per_h=P")
    stated = ", ".join(f"{k}={x:g}" for k, x in v.items())
    method = f"datasheet {dev.key} (core/data/gpus.toml) with stated efficiencies {stated}"
    n = 7_000_000_000 if template is None else template.model.params_matmul
    a_in, a_out = v["mfu_in"] * peak, v["mfu_out"] * peak
    s_in, s_out = 2.0 * n / a_in, 2.0 * n / a_out
    usd_s = price / SECONDS_PER_HOUR

    def est(x):
        return Estimate(value=x, low=x, high=x, n_boot=0)

    def fp(x, unit):
        return FittedParam(value=x, low=x, high=x, unit=unit, provenance="assumed", source=method)

    bw = v["mbu"] * dev.memory_bandwidth_bytes_per_s if "mbu" in v else 1e30  # no mbu: weights read for free
    pm = PerformanceModel(
        form="split", formula="t0 + weights / (mbu * bandwidth) + decode 2N / (mfu_out * peak) + prompt 2N / "
                              "(mfu_in * peak)",
        params={"t0_s": fp(v.get("t0_s", 1e-12), "s"), "bandwidth_bytes_per_s": fp(bw, "bytes/s"),
                "decode_flop_per_s": fp(a_out, "flop/s"), "prefill_flop_per_s": fp(a_in, "flop/s")},
        request_overhead_s=fp(1e-9, "s"), bootstrap=[], fitted_on=[],
        scheduler=Scheduler(max_num_seqs=256, max_num_batched_tokens=8192, source="vLLM defaults (assumed)"),
        kv_dtype_bytes=2,
        parallelism=Parallelism(provenance="assumed", allreduce_latency_s=0.0,
                                interconnect_bytes_per_s=dev.interconnect_bytes_per_s,
                                source=dev.interconnect_source or "unknown"),
        forms=[], held_out=[], held_out_max_abs_error={}, target_error=0.15, meets_target=True, warning=None,
        method=method,
    )
    model = template.model if template is not None else ProfileModel(
        name="datasheet-7b (shape assumed)", quantization="w8a8-int8", params_matmul=n, params_total=n,
        num_layers=32, hidden_size=4096, num_kv_heads=8, head_dim=128, weight_bytes=n, bytes_per_param=1.0)
    slo = template.slo if template is not None else None
    if slo is None:
        slo = make_slo()
    return Profile(
        hardware=ProfileHardware(
            name=f"{dev.key} (datasheet, assumed)", kind="gpu", device_name=dev.key, device_count=1,
            peak_dtype="int8", peak_flop_per_s=peak, peak_source=dev.peak_source, memory_bytes=dev.memory_bytes,
            memory_bandwidth_bytes_per_s=dev.memory_bandwidth_bytes_per_s, bandwidth_source=dev.bandwidth_source,
            usd_per_h=price, usd_per_h_source="stated (usd_per_h=)" if "usd_per_h" in v else dev.usd_per_h_source,
        ),
        model=model, operating_concurrency=None,
        seconds_per_input_token=est(s_in), seconds_per_output_token=est(s_out),
        achieved_flop_per_s_input=est(a_in), achieved_flop_per_s_output=est(a_out),
        mfu_input=est(v["mfu_in"]), mfu_output=est(v["mfu_out"]), decode_curve=[],
        slo=Slo(ttft_p90_s=slo.ttft_p90_s, tpot_p90_s=slo.tpot_p90_s, source=slo.source),
        operating_point=None,
        costs=Costs(
            usd_per_request_paper_mix=est(usd_s * (PAPER.input_tokens_per_request * s_in
                                                   + PAPER.output_tokens_per_request * s_out)),
            usd_per_million_input_tokens=est(usd_s * s_in * 1e6),
            usd_per_million_output_tokens=est(usd_s * s_out * 1e6),
        ),
        provenance=ProfileProvenance(runs=[], dropped=[], vllm_version=None, created_utc="1970-01-01T00:00:00Z",
                                     tool="solver.report.hardware.datasheet_profile", inputs="synthetic",
                                     method=method),
        performance_model=pm,
    )


def datasheet_provenance(text: str, profile) -> dict:
    """The profile_provenance of a datasheet profile (no file: the spec and the GPU table instead)."""
    hw = profile.hardware
    return {"path": f"datasheet:{text}", "sha256": None, "hardware": hw.name, "kind": "gpu",
            "device_name": hw.device_name, "device_count": 1, "model": profile.model.name,
            "quantization": profile.model.quantization, "usd_per_h": hw.usd_per_h,
            "usd_per_h_source": hw.usd_per_h_source, "peak_flop_per_s": hw.peak_flop_per_s,
            "peak_dtype": hw.peak_dtype, "peak_source": hw.peak_source, "provenance": ASSUMED,
            "method": profile.provenance.method}
