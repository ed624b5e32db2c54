"""The calibration profile of one hardware + model: assembled from screened runs, the per-token
costs, the decode curve and the SLO point (`core.schema.profile.Profile`).

Where each part is computed (each module's docstring has the formulas):

    calibrate.runs.load       load run directories, one row per run, screening, one hardware and model
    calibrate.runs.window     a run's device time and token totals over its steady-state window
    calibrate.profile.tokencost  a, b = device-seconds per input / decode token (joint fit, phase-isolated
                         estimates, two-level bootstrap), energy per request
    calibrate.profile.curve      decode curve, SLO, operating point

With N = params_matmul and 2N flop per inference token (paper convention, Kaplan et al.),

    mfu_input  = 2N / (a * peak)                 mfu_output = 2N / (b * peak)
    achieved_flop_per_s_input  = 2N * devices / a   (all devices; = mfu_input * peak * devices)

where `peak` is the dense peak *per device* of the datatype the matmuls run in. `a` and `b` are
device-seconds, so a run on `devices` GPUs is billed for all of them and the MFU stays a per-device
fraction. Dollars: usd_per_h / SECONDS_PER_HOUR * (a * n_in + b * (n_out - 1)) per request.

Pure apart from the clock (created_utc); the CLI (`calibrate.profile.cli`) loads, prints and writes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timezone

import numpy as np

from calibrate.profile.curve import (
    DEFAULT_SLO_TPOT_P90_S,
    DEFAULT_SLO_TTFT_P90_S,
    _pooled_p90,
    decode_curve,
    make_slo,
    mixed_points,
    pooled_itl_p90,
    slo_point,
    target_concurrency,
)
from calibrate.profile.tokencost import (
    DEFAULT_BOOTSTRAP,
    TokenCosts,
    choose_token_costs,
    energy_per_request,
    estimate,
    mix_key,
)
from calibrate.runs.load import (
    DEFAULT_MIN_REQUESTS,
    DEFAULT_MIN_TOKENS,
    IDENTITY_FIELDS,
    LoadedRun,
    check_homogeneous,
    peak_of,
    screen_runs,
    vllm_version_of,
)
from calibrate.runs.window import WINDOW, default_min_run, run_totals, too_short, totals
from core.errors import BadFile
from core.paper import PAPER, SECONDS_PER_HOUR
from core.schema.profile import (
    Costs,
    Coverage,
    Dropped,
    Estimate,
    MeasuredMix,
    MixCoverage,
    Profile,
    ProfileHardware,
    ProfileModel,
    ProfileProvenance,
    ReplicatePoint,
    RunRef,
    Slo,
)

# A point whose replicates differ by more than this (coefficient of variation of device-seconds per
# request) marks the machine noisy: on a quiet machine replicates of one point agree to ~1-2 %.
NOISY_CV = 0.05
MIXED_KINDS = ("mixed", "distribution")

__all__ = ["build_profile"]


def _median_with_note(values: list[float], what: str) -> tuple[float, str]:
    med = float(np.median(values))
    if len(set(values)) > 1:
        return med, f" (median of {len(values)} runs' {what}, range {min(values):.4g}-{max(values):.4g})"
    return med, ""


def _mode_index(runs: Sequence[LoadedRun]) -> int:
    keys = [(r.record.environment.hardware.name, r.record.config.model.name) for r in runs]
    counts = {k: keys.count(k) for k in keys}
    best = max(counts, key=counts.get)
    return keys.index(best)


def _check_options(slo_tpot_p90_s: float, slo_ttft_p90_s: float, n_boot: int) -> None:
    for name, v in (("slo_tpot_p90_s", slo_tpot_p90_s), ("slo_ttft_p90_s", slo_ttft_p90_s)):
        if not (math.isfinite(v) and v > 0):
            raise BadFile(None, name, f"{v} must be a finite number > 0")
    if n_boot < 0:
        raise BadFile(None, "bootstrap", f"{n_boot} must be >= 0")


def _usable_runs(runs: Sequence[LoadedRun], dropped: Sequence[Dropped], *, min_requests: int, min_tokens: int,
                 allow_mixed: bool, min_run: dict | None = None
                 ) -> tuple[list[LoadedRun], list[Dropped], list[str]]:
    """(kept, all dropped, notes): screened runs of one hardware and model (or several, allowed),
    each long enough (calibrate.runs.window.too_short: the hardware kind's MinRunLength with the fields
    in `min_run` replaced)."""
    if not runs:
        raise BadFile(None, None, "no runs found (looked for run.json under the given paths)")
    kept, drops = screen_runs(runs, min_requests=min_requests, min_tokens=min_tokens)
    long_enough = []
    for r in kept:
        # other tools' results (calibrate.runs.ingest) were sized by whoever ran them: not checked here
        why = None if r.source != "bench" else too_short(r, replace(default_min_run(r.record.environment.hardware.kind), **(min_run or {})))
        if why is None:
            long_enough.append(r)
        else:
            drops.append(Dropped(path=r.path, reason=why))
    kept = long_enough
    if not kept:
        first = drops[0]
        raise BadFile(first.path, None, f"no usable runs: all {len(runs)} dropped, e.g. {first.reason}")
    notes: list[str] = []
    if allow_mixed:
        ids = {tuple(get(r.record) for _, get in IDENTITY_FIELDS.values()) for r in kept}
        if len(ids) > 1:
            notes.append(f"--allow-mixed: runs of {len(ids)} hardware/model combinations were combined; "
                         "metadata below are those of the most common one")
    else:
        check_homogeneous(kept)
    return kept, list(dropped) + drops, notes


@dataclass(frozen=True)
class PeakAndPrice:
    dtype: str
    peak: float | None  # dense flop/s per device of the matmul datatype; None when unknown
    peak_source: str
    usd_per_h: float  # per device-hour
    usd_per_h_source: str


def _peak_and_price(kept: Sequence[LoadedRun], hw, *, peak_flop_per_s: float | None, usd_per_h: float | None,
                    usd_per_h_source: str | None) -> PeakAndPrice:
    """The runs' peak and price (their median where they differ, said in the source), or the overrides."""
    peaks = [peak_of(r.record) for r in kept]
    peak_dtype = peaks[0][0]
    known = [p for d, p in peaks if p is not None and d == peak_dtype]
    if peak_flop_per_s is not None:
        if not (math.isfinite(peak_flop_per_s) and peak_flop_per_s > 0):
            raise BadFile(None, "peak_flop_per_s", f"{peak_flop_per_s} must be > 0")
        peak, peak_source = peak_flop_per_s, "override (command line)"
    elif known:
        peak, note = _median_with_note(known, f"{peak_dtype} peaks")
        peak_source = hw.peak_source + note
    else:
        peak, peak_source = None, hw.peak_source
    if usd_per_h is None:
        price, note = _median_with_note([r.record.environment.hardware.usd_per_h for r in kept], "prices")
        price_source = hw.usd_per_h_source + note
    else:
        price, price_source = usd_per_h, usd_per_h_source or "override (command line)"
    if not (price > 0):
        raise BadFile(None, "environment.hardware.usd_per_h", f"{price} must be > 0 (pass --usd-per-hour)")
    return PeakAndPrice(peak_dtype, peak, peak_source, price, price_source)


def _costs(costs: TokenCosts, kept: Sequence[LoadedRun], usd_per_h: float,
           energy_j_per_request: float | None) -> Costs:
    """Dollars per request (paper mix, measured mix) and per million tokens, with intervals."""
    a, b, ba, bb = costs.a, costs.b, costs.boot_a, costs.boot_b
    usd_per_device_s = usd_per_h / SECONDS_PER_HOUR

    def usd(n_in, n_out, per_request=True):
        # a request's first output token comes out of its prefill pass: n_out - 1 decode tokens
        n_dec = max(n_out - 1.0, 0.0) if per_request else n_out
        return estimate(usd_per_device_s * (a * n_in + b * n_dec), usd_per_device_s * (ba * n_in + bb * n_dec)
                        ).model_copy(update={"source": "fitted"})

    mixed = [r for r in kept if r.record.config.workload.kind in ("mixed", "distribution")]
    mix_in = mix_out = None
    if mixed:
        n_req = sum(r.record.summary.num_ok for r in mixed)
        mix_in = sum(r.record.summary.input_tokens_total for r in mixed) / n_req
        mix_out = sum(r.record.summary.output_tokens_total for r in mixed) / n_req
    return Costs(
        usd_per_request_paper_mix=usd(PAPER.input_tokens_per_request, PAPER.output_tokens_per_request),
        usd_per_request_measured_mix=None if mix_in is None else usd(mix_in, mix_out),
        measured_mix_input_tokens=mix_in,
        measured_mix_output_tokens=mix_out,
        usd_per_million_input_tokens=usd(1e6, 0.0, per_request=False),
        usd_per_million_output_tokens=usd(0.0, 1e6, per_request=False),
        energy_j_per_request=energy_j_per_request,
    )


def run_usd_per_request(run: LoadedRun, usd_per_device_s: float) -> float:
    """Directly measured $/request of one run: device-seconds of its window / requests completed in it."""
    t = totals(run)
    return usd_per_device_s * t.device_s / max(t.requests, 1)


def replicate_points(kept: Sequence[LoadedRun], usd_per_h: float) -> list[ReplicatePoint]:
    """Every (concurrency, mix) point with its replicates' measured cost per request and their CV."""
    groups: dict[tuple, list[LoadedRun]] = {}
    for r in kept:
        groups.setdefault((r.record.config.concurrency, mix_key(r)), []).append(r)
    out = []
    for (c, key), group in sorted(groups.items(), key=lambda kv: (kv[0][0], kv[0][1])):
        dev = [totals(r).device_s / max(totals(r).requests, 1) for r in group]
        cv = float(np.std(dev, ddof=1) / np.mean(dev)) if len(dev) >= 2 else None
        out.append(ReplicatePoint(concurrency=c, workload=key[0], input_tokens=key[1], output_tokens=key[2],
                                  runs=len(group), device_s_per_request=dev,
                                  usd_per_request=[usd_per_h / SECONDS_PER_HOUR * d for d in dev], cv=cv))
    return out


def fresh_run_interval(values: Sequence[float], fallback_rel: tuple[float, float]) -> tuple[float, float, float]:
    """(mean, low, high): where a fresh run is expected, 95 % prediction interval of m replicates,
    mean +- t(0.975, m - 1) s sqrt(1 + 1/m); one run: its value with the fit's relative interval."""
    from scipy.stats import t as student_t

    x = np.asarray(values, dtype=float)
    mean = float(x.mean())
    if len(x) < 2:
        return mean, mean * fallback_rel[0], mean * fallback_rel[1]
    half = float(student_t.ppf(0.975, len(x) - 1) * x.std(ddof=1) * np.sqrt(1 + 1 / len(x)))
    return mean, mean - half, mean + half


def measured_mix(kept: Sequence[LoadedRun], concurrency: int | None, usd_per_h: float,
                 fallback_rel: tuple[float, float]) -> MeasuredMix | None:
    """The mixed runs at the operating concurrency (the most common mix there), priced directly."""
    at = [r for r in kept if r.record.config.workload.kind in MIXED_KINDS and r.record.config.concurrency == concurrency]
    if not at:
        return None
    keys = [mix_key(r) for r in at]
    key = max(set(keys), key=keys.count)
    group = [r for r, k in zip(at, keys) if k == key]
    usd = [run_usd_per_request(r, usd_per_h / SECONDS_PER_HOUR) for r in group]
    mean, low, high = fresh_run_interval(usd, fallback_rel)
    return MeasuredMix(concurrency=concurrency, input_tokens=key[1], output_tokens=key[2], runs=len(group),
                       usd_per_request=Estimate(value=mean, low=min(low, mean), high=max(high, mean),
                                                n_boot=len(group), source="measured"),
                       ttft_p90_s=_pooled_p90(group, "ttft_s", "ttft_s"), tpot_p90_s=_pooled_p90(group, "tpot_s", "tpot_s"),
                       itl_p90_s=pooled_itl_p90(group))


def coverage_check(kept: Sequence[LoadedRun], mm: MeasuredMix | None, fitted_usd, usd_per_h: float) -> Coverage:
    """Each replicate's directly measured $/request of the measured mix against the profile's
    interval for it (the measured one, and the fitted one beside it for comparison)."""
    rows = []
    if mm is not None:
        group = [r for r in kept if r.record.config.workload.kind in MIXED_KINDS
                 and r.record.config.concurrency == mm.concurrency and mix_key(r)[1:] == (mm.input_tokens, mm.output_tokens)]
        usd = [run_usd_per_request(r, usd_per_h / SECONDS_PER_HOUR) for r in group]
        for src, e in (("measured", mm.usd_per_request), ("fitted", fitted_usd)):
            if e is None:
                continue
            inside = [e.low <= u <= e.high for u in usd]
            rows.append(MixCoverage(concurrency=mm.concurrency, input_tokens=mm.input_tokens,
                                    output_tokens=mm.output_tokens, interval_usd=(e.low, e.high), interval_source=src,
                                    measured_usd=usd, covered=float(np.mean(inside)) if inside else 0.0))
    published = [m for m in rows if m.interval_source == "measured"]
    return Coverage(mixes=rows, covered=published[0].covered if published else None,
                    note="fraction of replicates of the measured mix at the operating concurrency whose directly "
                    "measured $/request (window device-seconds / requests completed in the window) lies in the "
                    "profile's interval for that mix; in-sample (the replicates are also what the interval is made "
                    "of); the fitted interval's coverage is listed beside it")


def _peak_warnings(pp: PeakAndPrice, devices: int, flop_in: float, flop_out: float) -> list[str]:
    if pp.peak is None:
        return []
    out = []
    for phase_name, rate in (("mfu_input", flop_in), ("mfu_output", flop_out)):
        if rate / (pp.peak * devices) > 1:
            out.append(f"WARNING: {phase_name} = {rate / (pp.peak * devices):.3g} > 1: the achieved rate exceeds "
                       f"the peak ({pp.peak:.4g} flop/s per device, {pp.peak_source}); the peak is too low (e.g. "
                       "measured under load) or N too high: pass --peak-flop-per-s.")
    return out


def _method(*, how: str, n_window: int, n_kept: int, n_mm: int, pp: PeakAndPrice, n_boot: int, seed: int,
            slo: Slo, energy_how: str, notes: Sequence[str]) -> str:
    """provenance.method: how every constant was computed, in words."""
    return " ".join([
        f"Per-token device-seconds a (input), b (output) from {how}:",
        "duration_s x device_count ~= a x input_tokens + b x decode_tokens per run (decode tokens =",
        "output tokens after each request's first, which its prefill pass produces),",
        "least squares on relative residuals (calibrate/profile/tokencost.py);",
        "totals over the completion window (C-th completion, (n-C)-th completion],",
        "counting only prefills that ended and decode tokens that arrived in it (calibrate/runs/window.py),",
        f"for {n_window} of {n_kept} runs; over the whole run for the rest (no window: fewer than 3",
        "requests per slot, open loop, or no per-request records).",
        f"mfu = 2N / (seconds_per_token x peak) with N = params_matmul = {n_mm} (paper convention,",
        f"2N flop per token) and peak = {pp.peak} flop/s per device ({pp.dtype});",
        "achieved_flop_per_s = 2N x devices / seconds_per_token (all devices).",
        f"95 % intervals: percentile bootstrap, {n_boot} resamples, seed {seed}: whole runs resampled within",
        "each (concurrency, mix) stratum of >= 2 replicates (deviations scaled by sqrt(m/(m-1))), time blocks",
        "of the window where a stratum has one run, and the fit's misfit per stratum carried by a wild",
        "bootstrap (calibrate/profile/tokencost.py). Between-replicate CV per point in `replicates`; a mix measured at",
        "the operating concurrency is priced from its runs (source measured; interval: 95 % prediction",
        "interval of a fresh run, t with m-1 dof); `coverage` compares each replicate with it.",
        "Operating point = highest-throughput concurrency of the mixed runs (decode-only runs when there are",
        f"none) with TPOT p90 (over requests) <= {slo.tpot_p90_s} s and TTFT p90 <= {slo.ttft_p90_s} s;",
        "ITL p90 over streamed gaps reported beside it. Decode curve from decode-only runs.",
        f"$/request = {pp.usd_per_h} $/device-hour / 3600 x (a n_in + b (n_out - 1)). Energy: {energy_how}.",
        "phase_isolated: mfu_input from prefill-only runs (all device time billed to input tokens),",
        "mfu_output from decode-only runs (all device time billed to decode tokens); keys",
        "'@c<C>' per concurrency, 'joint_*@c<C>' the joint fit at each determined concurrency.",
        *notes,
    ])


def _hardware(hw, devices: int, pp: PeakAndPrice) -> ProfileHardware:
    return ProfileHardware(
        name=hw.name, kind=hw.kind, device_name=hw.device_name, device_count=devices,
        peak_dtype=pp.dtype, peak_flop_per_s=pp.peak, peak_source=pp.peak_source,
        memory_bytes=hw.memory_bytes, memory_bandwidth_bytes_per_s=hw.memory_bandwidth_bytes_per_s,
        bandwidth_source=hw.bandwidth_source, usd_per_h=pp.usd_per_h, usd_per_h_source=pp.usd_per_h_source)


def _model(model) -> ProfileModel:
    return ProfileModel(
        name=model.name, quantization=model.quantization, params_matmul=model.params_matmul,
        params_total=model.params_total, num_layers=model.num_layers, hidden_size=model.hidden_size,
        num_kv_heads=model.num_kv_heads, head_dim=model.head_dim, weight_bytes=model.weight_bytes,
        bytes_per_param=(model.weight_bytes / model.params_total
                         if model.weight_bytes and model.params_total else None))


def _provenance(kept: Sequence[LoadedRun], dropped: Sequence[Dropped], *, created_utc: str | None, tool: str,
                method: str) -> ProfileProvenance:
    versions = sorted({v for v in (vllm_version_of(r.record) for r in kept) if v})
    sources = {r.source for r in kept}
    return ProfileProvenance(
        runs=[RunRef(path=r.path, sha256=r.sha256, run_id=r.record.run_id) for r in kept],
        dropped=list(dropped),
        vllm_version=", ".join(versions) if versions else None,
        created_utc=created_utc or datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        tool=tool,
        method=method,
        inputs=(next(iter(sources)) if len(sources) == 1 else "mixed"),  # type: ignore[arg-type]
    )


def build_profile(
    runs: Sequence[LoadedRun],
    *,
    dropped: Sequence[Dropped] = (),
    slo_tpot_p90_s: float = DEFAULT_SLO_TPOT_P90_S,
    slo_ttft_p90_s: float = DEFAULT_SLO_TTFT_P90_S,
    slo_source: str | None = None,
    allow_mixed: bool = False,
    n_boot: int = DEFAULT_BOOTSTRAP,
    seed: int = 0,
    min_requests: int = DEFAULT_MIN_REQUESTS,
    min_tokens: int = DEFAULT_MIN_TOKENS,
    min_run: dict | None = None,
    usd_per_h: float | None = None,
    usd_per_h_source: str | None = None,
    peak_flop_per_s: float | None = None,
    created_utc: str | None = None,
    tool: str = "calibrate",
) -> Profile:
    """Calibration profile from loaded runs (see the module docstrings for every formula).

    Raises InputError when nothing usable remains or runs of different hardware/models are
    mixed without allow_mixed."""
    _check_options(slo_tpot_p90_s, slo_ttft_p90_s, n_boot)
    kept, dropped, notes = _usable_runs(runs, dropped, min_requests=min_requests, min_tokens=min_tokens,
                                        allow_mixed=allow_mixed, min_run=min_run)
    ref = kept[_mode_index(kept)].record
    hw, model = ref.environment.hardware, ref.config.model
    devices, n_mm = hw.device_count, model.params_matmul
    if n_mm <= 0:
        raise BadFile(None, "config.model.params_matmul", f"{n_mm} must be > 0")
    pp = _peak_and_price(kept, hw, peak_flop_per_s=peak_flop_per_s, usd_per_h=usd_per_h,
                         usd_per_h_source=usd_per_h_source)

    slo = make_slo(slo_tpot_p90_s, slo_ttft_p90_s, slo_source)
    curve = decode_curve(kept, n_mm, pp.peak, devices)
    op = slo_point(curve, mixed_points(kept), slo)

    rng = np.random.default_rng(seed)  # the order of the draws below is part of the result
    by_c: dict[int, list[LoadedRun]] = {}
    for r in kept:
        by_c.setdefault(r.record.config.concurrency, []).append(r)
    chosen = choose_token_costs(by_c, target_concurrency(by_c, op, slo), n_boot=n_boot, rng=rng, peak=pp.peak,
                                n_mm=n_mm)
    notes += chosen.notes
    energy, energy_how = energy_per_request(kept, chosen.concurrency, n_boot, rng)

    costs = chosen.costs
    with np.errstate(divide="ignore", invalid="ignore"):
        flop_in, flop_out = 2.0 * n_mm * devices / costs.a, 2.0 * n_mm * devices / costs.b
        boot_flop_in, boot_flop_out = 2.0 * n_mm * devices / costs.boot_a, 2.0 * n_mm * devices / costs.boot_b

    src = "fitted" if costs.method == "joint" else "measured"  # phase-isolated: ratios read off runs

    def est(value, samples) -> Estimate:
        return estimate(value, samples).model_copy(update={"source": src})

    def mfu(value, samples) -> Estimate | None:
        return None if pp.peak is None else est(value / (pp.peak * devices), samples / (pp.peak * devices))

    notes += _peak_warnings(pp, devices, flop_in, flop_out)
    cost_block = _costs(costs, kept, pp.usd_per_h, energy)
    reps = replicate_points(kept, pp.usd_per_h)
    cvs = [p.cv for p in reps if p.cv is not None]
    noisy = None if not cvs else bool(max(cvs) > NOISY_CV)
    if noisy:
        worst = max((p for p in reps if p.cv is not None), key=lambda p: p.cv)
        notes.append(f"WARNING: noisy machine: replicates of {worst.workload} at concurrency {worst.concurrency} "
                     f"differ by CV {worst.cv:.1%} > {NOISY_CV:.0%}; re-measure on a quiet machine.")
    fitted_mm = cost_block.usd_per_request_measured_mix
    rel = ((fitted_mm.low / fitted_mm.value, fitted_mm.high / fitted_mm.value) if fitted_mm is not None
           and fitted_mm.value > 0 else (1.0, 1.0))
    mm = measured_mix(kept, chosen.concurrency, pp.usd_per_h, rel)
    cover = coverage_check(kept, mm, fitted_mm, pp.usd_per_h)
    if mm is not None:
        # measured beats fitted: the mix measured at the operating point is priced from its runs
        cost_block = cost_block.model_copy(update={"usd_per_request_measured_mix": mm.usd_per_request,
                                                   "measured_mix_input_tokens": mm.input_tokens,
                                                   "measured_mix_output_tokens": mm.output_tokens})
        if (round(mm.input_tokens), round(mm.output_tokens)) == (PAPER.input_tokens_per_request,
                                                                 PAPER.output_tokens_per_request):
            cost_block = cost_block.model_copy(update={"usd_per_request_paper_mix": mm.usd_per_request})
    method = _method(how=chosen.how, n_window=sum(run_totals(r)[3] == WINDOW for r in kept),
                     n_kept=len(kept), n_mm=n_mm, pp=pp, n_boot=n_boot, seed=seed, slo=slo, energy_how=energy_how,
                     notes=notes)
    return Profile(
        hardware=_hardware(hw, devices, pp),
        model=_model(model),
        operating_concurrency=chosen.concurrency,
        seconds_per_input_token=est(costs.a, costs.boot_a),
        seconds_per_output_token=est(costs.b, costs.boot_b),
        achieved_flop_per_s_input=est(flop_in, boot_flop_in),
        achieved_flop_per_s_output=est(flop_out, boot_flop_out),
        mfu_input=mfu(flop_in, boot_flop_in),
        mfu_output=mfu(flop_out, boot_flop_out),
        phase_isolated=chosen.phase,
        decode_curve=curve,
        slo=slo,
        operating_point=op,
        costs=cost_block,
        provenance=_provenance(kept, dropped, created_utc=created_utc, tool=tool, method=method),
        replicates=reps,
        noisy_machine=noisy,
        coverage=cover,
        measured_mix=mm,
    )
