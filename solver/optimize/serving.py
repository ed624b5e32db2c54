"""Serving cost of a model size that was never run, from the profile's performance model.

For a candidate N the solver needs what serving it costs on the profiled hardware. The profile's
performance model (`calibrate.perfmodel.forms`, fitted on a ladder of sizes and checked on sizes it did
not see) gives the engine's step time for any shape; this module turns it into a serving plan:

* **Shape.** From a real checkpoint's config when one is given, else from N by the stated
  assumption (`core.physics.ShapeAssumption`), with the KV-cache element size the ladder's
  servers used.
* **Devices per replica.** The smallest tensor-parallel group (1, 2, 4, 8) whose memory holds the
  weights and one full-length sequence; beyond 8 devices, whole 8-device nodes as pipeline stages.
  Memory: vLLM's gpu_memory_utilization 0.9 and a 1 GiB per-device activation reserve.
* **Batch.** Sequences whose KV cache fits beside the weights (full context each), at most
  max_num_seqs — the ladder's own server setting, so no batch beyond what was measured gets credit;
  the batch used is the one with the highest throughput *at the SLO* (requests/s × the utilisation at
  which its TTFT p90 still meets the limit, below) whose TPOT p90 meets the SLO.
* **p90, not mean.** The performance model predicts means; the SLO limits p90s. TPOT p90 =
  `tpot_p90_ratio` × predicted TPOT and the TTFT p90 = `ttft_p90_ratio` × the steady-state TTFT + the
  p90 queueing wait, the ratios being the measured p90 / mean of the profile's decode-curve runs
  (`p90_ratios`: the largest over those runs, floored at 1; 1 when no run has both, stated as assumed).
  Adding a p90 wait to a p90 service time over-states the p90 of their sum: conservative.
* **Queueing at the planned load (M/M/c per replica).** Requests are routed to replicas at random, so
  each replica sees Poisson arrivals; its c = batch sequence slots each hold a request for S = b /
  requests per s. With utilisation ρ (arrival rate / capacity) the Erlang-C probability of waiting is
  C(c, cρ) and P(wait > w) = C·exp(−c(1−ρ)w/S), so the p90 wait is S·ln(10·C)/(c(1−ρ)) when C > 0.1,
  else 0. M/M/c (exponential service) rather than M/D/c: service times here are close to fixed (G
  tokens), for which M/M/c over-states the wait (about 2× in heavy traffic), so the check errs on the
  safe side; M/D/c has no closed form for the tail. The step time is taken at the full batch at every
  utilisation (fewer sequences in flight would step faster): conservative again.
  `utilisation_at_peak` = the largest ρ at which TTFT p90 meets its limit (1 without a TTFT limit);
  the fleet is sized so the peak runs at that utilisation.
* **Steady state at batch b (closed form).** b sequences in flight, each spending one step in
  prefill and G − 1 in decode: per step b·(G−1)/G decode, b·P/G prompt tokens, the decoders holding
  P + G/2 tokens of context on average; a request spends `request_overhead_s` of each cycle
  outside the engine, so b·G·t/(G·t + overhead) of the b are inside it. Step time t from the performance model (tensor-parallel
  split and all-reduce terms included; pipeline stages do not shorten a step); requests per
  second = b / (G·t + overhead),
  TPOT = t, TTFT = overhead + t/2 (the wait for the next step) + the step that prefills it (an
  average step plus its P prompt tokens). Requests arrive spread out (a deployment), not in the
  synchronised waves of a fixed-length benchmark, which `calibrate predict` simulates instead.
  `tests/test_serving.py` checks this closed form against the step-by-step simulation of
  `calibrate.perfmodel.simulate` (the same that `calibrate predict` uses).
* **$ per request** = devices · $/h / 3600 / requests per second, at full utilisation;
  `usd_per_request_at_slo` divides it by `utilisation_at_peak` (the headroom the TTFT limit needs at
  the peak). A provisioned fleet divides it again by mean / peak (`solver.report.solve`).
* **Feasible.** `meets_slo`: some batch meets TPOT p90 and, at some utilisation > 0, TTFT p90. A model
  size for which none does is infeasible: `solver.report.solve` excludes it from the optimum.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np

from calibrate.perfmodel.build import step_models
from calibrate.perfmodel.forms import StepModel, parallel_step_time_s
from core.paper import PAPER, SECONDS_PER_HOUR
from core.physics import ModelShape, ShapeAssumption, shape_for_params

GIB = 1024**3


@dataclass(frozen=True)
class ServingHardware:
    """One device of the serving hardware (per-device figures; None = unknown, not bounded)."""

    name: str
    usd_per_h: float
    memory_bytes: float | None
    peak_flop_per_s: float | None
    interconnect_bytes_per_s: float | None = None
    allreduce_latency_s: float = 0.0
    memory_utilization: float = 0.9  # vLLM default gpu_memory_utilization
    activation_reserve_bytes: float = 1.0 * GIB
    max_num_seqs: int = 256  # vLLM default scheduler cap


@dataclass(frozen=True)
class Workload:
    input_tokens: float = float(PAPER.input_tokens_per_request)
    output_tokens: float = float(PAPER.output_tokens_per_request)
    tpot_slo_s: float | None = None  # limit on time per output token (p90); None: no latency limit
    ttft_slo_s: float | None = None  # limit on time to first token (p90)
    tpot_p90_ratio: float = 1.0  # p90 / mean of TPOT (measured from the profile's runs: p90_ratios)
    ttft_p90_ratio: float = 1.0

    @property
    def max_context_tokens(self) -> float:
        return self.input_tokens + self.output_tokens


@dataclass(frozen=True)
class PerformanceModel:
    """The profile's fitted step model, what it assumes, and the model's shape assumption."""

    model: StepModel
    kv_dtype_bytes: int
    max_num_batched_tokens: int
    assumption: ShapeAssumption = field(default_factory=ShapeAssumption)

    def shape(self, params_matmul: float) -> ModelShape:
        return shape_for_params(params_matmul, self.assumption)


def performance_model_from_profile(profile, assumption: ShapeAssumption | None = None) -> PerformanceModel:
    """The PerformanceModel of a `core.schema.profile.Profile`; ValueError when it has none."""
    pm = getattr(profile, "performance_model", None)
    if pm is None:
        raise ValueError("the profile has no performance model: build one from a ladder of model sizes "
                         "(python -m calibrate profile RUNS --ladder)")
    main, _ = step_models(pm)
    a = replace(assumption or ShapeAssumption(), kv_dtype_bytes=float(pm.kv_dtype_bytes))
    return PerformanceModel(main, pm.kv_dtype_bytes, pm.scheduler.max_num_batched_tokens, a)


def hardware_from_profile(profile, *, usd_per_h: float | None = None, **overrides) -> ServingHardware:
    hw = profile.hardware
    pm = getattr(profile, "performance_model", None)
    par = pm.parallelism if pm is not None else None
    return ServingHardware(
        name=hw.name,
        usd_per_h=hw.usd_per_h if usd_per_h is None else usd_per_h,
        memory_bytes=float(hw.memory_bytes) if hw.memory_bytes else None,
        peak_flop_per_s=hw.peak_flop_per_s,
        interconnect_bytes_per_s=par.interconnect_bytes_per_s if par else None,
        allreduce_latency_s=par.allreduce_latency_s if par else 0.0,
        # the ladder's server setting: batches beyond what was measured get no credit
        **({"max_num_seqs": pm.scheduler.max_num_seqs} if pm is not None else {}),
        **overrides,
    )


def usable_bytes_per_device(hw: ServingHardware) -> float | None:
    if hw.memory_bytes is None:
        return None
    return hw.memory_bytes * hw.memory_utilization - hw.activation_reserve_bytes


def layout(shape: ModelShape, hw: ServingHardware, wl: Workload) -> tuple[int, int]:
    """(tensor parallel, pipeline stages) of the smallest replica holding the weights + one sequence."""
    usable = usable_bytes_per_device(hw)
    if usable is None:
        return 1, 1
    if usable <= 0:
        raise ValueError(f"hardware {hw.name}: no memory left after the activation reserve")
    need = shape.weight_bytes + shape.kv_bytes_per_token * wl.max_context_tokens
    for g in (1, 2, 4, 8):
        if g * usable >= need:
            return g, 1
    return 8, math.ceil(need / (8 * usable))


def max_batch_memory(shape: ModelShape, hw: ServingHardware, wl: Workload, devices: int) -> int:
    """Sequences whose full-context KV cache fits beside the weights (at most max_num_seqs)."""
    usable = usable_bytes_per_device(hw)
    if usable is None:
        return hw.max_num_seqs
    room = devices * usable - shape.weight_bytes
    b = int(room // (shape.kv_bytes_per_token * wl.max_context_tokens))
    return max(0, min(b, hw.max_num_seqs))


def steady_state(perf: PerformanceModel, shape: ModelShape, wl: Workload, batch, hw: ServingHardware,
                 tp: int = 1, pp: int = 1) -> dict[str, np.ndarray]:
    """Closed-form steady state of a replica at `batch` sequences in flight (vectorised over batch)."""
    b = np.asarray(batch, float)
    p, g = float(wl.input_tokens), float(wl.output_tokens)
    over = perf.model.request_overhead_s
    inside = b  # sequences in the engine: a request spends `over` of each G·t + over cycle outside it
    for _ in range(3):  # fixed point; converges in 2-3 rounds since `over` is a small share
        n = inside * (g - 1) / g
        t = parallel_step_time_s(perf.model, shape, n / pp, n * (p + g / 2) / pp, inside * p / g / pp,
                                 inside * p * (p + 1) / 2 / g / pp, tensor_parallel=tp, pipeline_parallel=pp,
                                 allreduce_latency_s=hw.allreduce_latency_s,
                                 interconnect_bytes_per_s=hw.interconnect_bytes_per_s)
        inside = b * g * t / (g * t + over)
    rps = b / (g * t + over)
    # the step that prefills a request holds its P prompt tokens on top of the average step
    with_prompt = parallel_step_time_s(perf.model, shape, n / pp, n * (p + g / 2) / pp, (inside * p / g + p) / pp,
                                       (inside / g + 1) * p * (p + 1) / 2 / pp, tensor_parallel=tp,
                                       pipeline_parallel=pp, allreduce_latency_s=hw.allreduce_latency_s,
                                       interconnect_bytes_per_s=hw.interconnect_bytes_per_s)
    return {"step_s": t, "tpot_s": t, "ttft_s": over + 0.5 * t + with_prompt, "requests_per_s": rps,
            "output_tokens_per_s": rps * g, "input_tokens_per_s": rps * p}


@dataclass(frozen=True)
class ServingPoint:
    """How one replica of a candidate model serves the workload, and what a request costs."""

    params_matmul: float
    shape: ModelShape
    devices_per_replica: int
    tensor_parallel: int
    pipeline_parallel: int
    max_batch_memory: int
    batch: int
    batch_limited_by: str  # "memory" | "slo" | "max_num_seqs" | "throughput"
    meets_slo: bool
    output_tokens_per_s: float  # per replica at that batch (all slots busy)
    requests_per_s: float
    tpot_s: float  # predicted mean
    ttft_s: float  # predicted mean, steady state, no queueing
    usd_per_request: float  # at full utilisation
    decode_flop_per_s_per_device: float  # effective, paper convention (2N per output token)
    decode_mfu: float | None
    tpot_p90_s: float = math.nan  # tpot_p90_ratio x tpot_s
    ttft_p90_s: float = math.nan  # ttft_p90_ratio x ttft_s + the p90 queueing wait at utilisation_at_peak
    queue_wait_p90_s: float = 0.0
    utilisation_at_peak: float = 1.0  # largest utilisation meeting TTFT p90 (M/M/c per replica)
    notes: tuple[str, ...] = ()

    @property
    def device_s_per_request(self) -> float:
        return self.devices_per_replica / self.requests_per_s

    @property
    def usd_per_request_at_slo(self) -> float:
        """$/request of a fleet run at utilisation_at_peak: the TTFT limit's headroom paid for."""
        return self.usd_per_request / self.utilisation_at_peak if self.utilisation_at_peak > 0 else math.inf


P90_TAIL = 0.1  # P(wait > w90) = 10 %


def erlang_c(c, rho) -> np.ndarray:
    """Erlang-C probability that an arrival waits, M/M/c with c servers at utilisation rho (< 1).

    Erlang B = Poisson pmf(c; a) / cdf(c; a) with offered load a = c·rho; C = B / (1 − rho·(1 − B)).
    """
    from scipy.special import gammaln, pdtr

    c, rho = np.asarray(c, float), np.asarray(rho, float)
    a = c * rho
    with np.errstate(all="ignore"):
        b = np.exp(c * np.log(a) - a - gammaln(c + 1.0) - np.log(pdtr(c, a)))
        return np.where(rho <= 0, 0.0, b / (1.0 - rho * (1.0 - b)))


def queue_wait_p90_s(c, rho, service_s) -> np.ndarray:
    """p90 of the M/M/c wait (module docstring): S·ln(C/0.1)/(c(1−rho)) when C > 0.1, else 0."""
    c, rho, service_s = np.asarray(c, float), np.asarray(rho, float), np.asarray(service_s, float)
    pw = erlang_c(c, np.minimum(rho, 1.0 - 1e-15))
    with np.errstate(all="ignore"):
        w = service_s * np.log(np.maximum(pw, 1e-300) / P90_TAIL) / (c * (1.0 - rho))
    return np.where(pw > P90_TAIL, np.where(rho < 1.0, w, np.inf), 0.0)


def _p90(st: dict, wl: Workload, batch: np.ndarray, rho) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(TPOT p90, TTFT p90, p90 queueing wait) at utilisation rho."""
    service = batch / st["requests_per_s"]
    wait = queue_wait_p90_s(batch, rho, service)
    return wl.tpot_p90_ratio * st["tpot_s"], wl.ttft_p90_ratio * st["ttft_s"] + wait, wait


def max_utilisation(st: dict, wl: Workload, batch: np.ndarray) -> np.ndarray:
    """Largest utilisation at which TTFT p90 (with queueing) meets its limit: 1 without a limit, 0 if
    even an empty queue misses it (bisection, vectorised over batch; the wait grows with rho)."""
    batch = np.asarray(batch, float)
    if wl.ttft_slo_s is None:
        return np.ones_like(batch)
    slack = wl.ttft_slo_s - wl.ttft_p90_ratio * np.asarray(st["ttft_s"], float)
    service = batch / st["requests_per_s"]
    lo, hi = np.zeros_like(batch), np.ones_like(batch)
    for _ in range(40):  # 1e-12 in utilisation
        mid = 0.5 * (lo + hi)
        ok = queue_wait_p90_s(batch, mid, service) <= slack
        lo, hi = np.where(ok, mid, lo), np.where(ok, hi, mid)
    return np.where(slack >= 0, lo, 0.0)


def _meets(st: dict, wl: Workload, rho: np.ndarray) -> np.ndarray:
    ok = rho > 0
    if wl.tpot_slo_s is not None:
        ok &= wl.tpot_p90_ratio * st["tpot_s"] <= wl.tpot_slo_s
    return ok


def _pick(st: dict, ok: np.ndarray, rho: np.ndarray) -> tuple[int, bool]:
    """Index of the best batch: highest throughput at the SLO, rate × utilisation (smallest batch among
    equals); the lowest-TPOT batch when none meets the SLO."""
    rate = st["requests_per_s"] * rho
    if ok.any():
        cand = np.where(ok, rate, -np.inf)
        return int(np.argmax(cand >= cand.max() * (1.0 - 1e-9))), True
    return int(np.argmin(st["tpot_s"])), False


def serving_point(params_matmul: float, hw: ServingHardware, perf: PerformanceModel, wl: Workload,
                  shape: ModelShape | None = None) -> ServingPoint:
    """Best batch for a candidate N under memory and the SLO, and its $/request (module docstring)."""
    shape = shape or perf.shape(params_matmul)
    tp, pp = layout(shape, hw, wl)
    g = tp * pp
    b_mem = max_batch_memory(shape, hw, wl, g)
    notes = []
    if hw.memory_bytes is None:
        notes.append("memory unknown: weights assumed to fit, batch capped at max_num_seqs only")
    if b_mem < 1:
        notes.append("KV room for less than one full sequence beside the weights")
    b_max = max(1, b_mem)
    batches = np.arange(1, b_max + 1, dtype=float)
    st = steady_state(perf, shape, wl, batches, hw, tp, pp)
    rho_max = max_utilisation(st, wl, batches)
    ok = _meets(st, wl, rho_max)
    i, meets = _pick(st, ok, rho_max)
    rho = float(rho_max[i]) if meets else 1.0
    if not meets:
        notes.append(f"no batch meets the SLO (TPOT p90, TTFT p90 at any load); the lowest-latency batch "
                     f"({i + 1}) is used, at full utilisation")
    b = i + 1
    if not meets:
        limited = "slo"
    elif b == b_max:
        limited = "max_num_seqs" if b_mem >= hw.max_num_seqs else "memory"
    elif i + 1 < len(batches) and not ok[i + 1]:
        limited = "slo"
    else:
        limited = "throughput"
    rps = float(st["requests_per_s"][i])
    out_rate = float(st["output_tokens_per_s"][i])
    eff = out_rate * 2.0 * params_matmul / g
    # infeasible: the wait at full utilisation is unbounded, so its TTFT p90 is shown without queueing
    tpot90, ttft90, wait90 = (float(np.asarray(x)[i]) for x in _p90(st, wl, batches, rho if meets else 0.0))
    return ServingPoint(
        params_matmul=params_matmul, shape=shape, devices_per_replica=g, tensor_parallel=tp, pipeline_parallel=pp,
        max_batch_memory=b_mem, batch=b, batch_limited_by=limited, meets_slo=meets,
        output_tokens_per_s=out_rate, requests_per_s=rps, tpot_s=float(st["tpot_s"][i]),
        ttft_s=float(st["ttft_s"][i]), usd_per_request=g * hw.usd_per_h / SECONDS_PER_HOUR / rps,
        decode_flop_per_s_per_device=eff, decode_mfu=(eff / hw.peak_flop_per_s) if hw.peak_flop_per_s else None,
        tpot_p90_s=tpot90, ttft_p90_s=ttft90, queue_wait_p90_s=wait90, utilisation_at_peak=rho, notes=tuple(notes),
    )  # fmt: skip


def p90_at_utilisation(point: ServingPoint, wl: Workload, rho: float) -> tuple[float, float]:
    """(TPOT p90, TTFT p90) of a serving point run at utilisation rho (e.g. a whole-replica fleet's)."""
    wait = float(queue_wait_p90_s(point.batch, rho, point.batch / point.requests_per_s))
    return wl.tpot_p90_ratio * point.tpot_s, wl.ttft_p90_ratio * point.ttft_s + wait


def usd_per_request(params, hw: ServingHardware, perf: PerformanceModel, wl: Workload) -> np.ndarray:
    """$/request of each candidate N (vectorised over N by looping; each point is closed form)."""
    n = np.atleast_1d(np.asarray(params, float))
    return np.array([serving_point(float(x), hw, perf, wl).usd_per_request for x in n])


@dataclass(frozen=True)
class P90Ratios:
    tpot: float
    ttft: float
    source: str


def p90_ratios(profile) -> P90Ratios:
    """Measured p90 / mean of TPOT and TTFT: the profile's decode-curve runs (their p90s) matched by
    run id with the same runs' measured means in the performance model's held-out table; the largest
    ratio over those runs, floored at 1. Without such a pair: 1 for both, stated as an assumption."""
    pm = getattr(profile, "performance_model", None)
    means = {r.run_id: r.measured for r in (pm.held_out if pm is not None else [])}
    tpot, ttft, runs = [], [], []
    for point in profile.decode_curve:
        for rid in point.run_ids:
            m = means.get(rid)
            if m is None:
                continue
            if point.tpot_p90_s and m.tpot_s:
                tpot.append(point.tpot_p90_s / m.tpot_s)
            if point.ttft_p90_s and m.ttft_s:
                ttft.append(point.ttft_p90_s / m.ttft_s)
            runs.append(rid)
    if not tpot and not ttft:
        return P90Ratios(1.0, 1.0, "assumed: p90 = the predicted mean (the profile has no run with both a p90 "
                                   "and a mean)")
    return P90Ratios(max([1.0] + tpot), max([1.0] + ttft),
                     f"measured: largest p90 / mean over the profile's {len(set(runs))} decode-curve runs "
                     f"(decode_curve p90s / performance_model.held_out means), floored at 1")


def with_slo_from_profile(wl: Workload, profile) -> Workload:
    """The workload with the profile's latency SLO (TPOT p90, TTFT p90)."""
    return replace(wl, tpot_slo_s=profile.slo.tpot_p90_s, ttft_slo_s=profile.slo.ttft_p90_s)


@dataclass(frozen=True)
class ServingModel:
    """The N-dependent serving cost of a profile's hardware: $/request of any candidate N."""

    hardware: ServingHardware
    perf: PerformanceModel
    workload: Workload
    # $/request depends on N only and the optimiser probes the same N grid for every demand at one
    # loss: memoising makes root-finds over demand (one optimisation each) cheap.
    _cache: dict = field(default_factory=dict, compare=False, repr=False)

    def point(self, params: float) -> ServingPoint:
        key = float(params)
        p = self._cache.get(key)
        if p is None:
            p = serving_point(key, self.hardware, self.perf, self.workload)
            if len(self._cache) < 200_000:
                self._cache[key] = p
        return p

    def usd_per_request(self, params: float) -> float:
        return self.point(params).usd_per_request

    def usd_per_request_at_slo(self, params: float) -> float:
        return self.point(params).usd_per_request_at_slo

    def feasible(self, params: float) -> bool:
        return self.point(params).meets_slo

    def without_slo(self) -> "ServingModel":
        """The same hardware and model with no latency limit: batch by throughput, full utilisation."""
        return ServingModel(self.hardware, self.perf, replace(self.workload, tpot_slo_s=None, ttft_slo_s=None))


def serving_model(profile, *, input_tokens: float, output_tokens: float, usd_per_h: float | None = None,
                  tpot_slo_s: float | None = None, ttft_slo_s: float | None = None, no_slo: bool = False,
                  assumption: ShapeAssumption | None = None) -> ServingModel | None:
    """The ServingModel of a profile (None when it has no performance model: no N-dependent cost then)."""
    if getattr(profile, "performance_model", None) is None:
        return None
    r = p90_ratios(profile)
    wl = with_slo_from_profile(Workload(input_tokens, output_tokens, tpot_p90_ratio=r.tpot, ttft_p90_ratio=r.ttft),
                               profile)
    if no_slo:
        wl = replace(wl, tpot_slo_s=None, ttft_slo_s=None)
    else:
        wl = replace(wl, tpot_slo_s=tpot_slo_s or wl.tpot_slo_s, ttft_slo_s=ttft_slo_s or wl.ttft_slo_s)
    return ServingModel(hardware_from_profile(profile, usd_per_h=usd_per_h),
                        performance_model_from_profile(profile, assumption), wl)


# --------------------------------------------------------------------------- fleet for a demand


@dataclass(frozen=True)
class Fleet:
    point: ServingPoint
    peak_requests_per_s: float
    replica_requests_per_s: float
    replicas: int
    devices: int
    usd_per_request: float
    usd_per_million_tokens: float
    energy_j_per_request: float | None
    fleet_usd_per_h: float


def fleet_for_peak(point: ServingPoint, hw: ServingHardware, wl: Workload, peak_requests_per_s: float,
                   power_w_per_device: float | None = None) -> Fleet:
    """Replicas to serve the peak request rate at the SLO batch: ceil(peak / replica requests per s)."""
    if not (peak_requests_per_s > 0 and math.isfinite(peak_requests_per_s)):
        raise ValueError(f"peak request rate must be a finite number > 0, got {peak_requests_per_s!r}")
    need = peak_requests_per_s / point.requests_per_s
    if not need < 1e15:
        raise ValueError(f"a peak of {peak_requests_per_s:g} requests/s needs {need:.3g} replicas (more than 1e15)")
    replicas = max(1, math.ceil(need - 1e-9))
    energy = None if power_w_per_device is None else power_w_per_device * point.device_s_per_request
    return Fleet(
        point=point, peak_requests_per_s=peak_requests_per_s, replica_requests_per_s=point.requests_per_s,
        replicas=replicas, devices=replicas * point.devices_per_replica, usd_per_request=point.usd_per_request,
        usd_per_million_tokens=point.usd_per_request / (wl.input_tokens + wl.output_tokens) * 1e6,
        energy_j_per_request=energy, fleet_usd_per_h=replicas * point.devices_per_replica * hw.usd_per_h,
    )  # fmt: skip


def power_w_per_device_from_profile(profile) -> float | None:
    """Mean power per device while serving, from the profile's energy per 70/215 request (if measured):
    energy_j_per_request / device-seconds of that request (= $/request / ($/h / 3600))."""
    e = profile.costs.energy_j_per_request
    if e is None:
        return None
    device_s = profile.costs.usd_per_request_paper_mix.value / (profile.hardware.usd_per_h / SECONDS_PER_HOUR)
    return e / device_s if device_s > 0 else None


def profile_model_shape(profile) -> ModelShape:
    """The ModelShape of the profile's own model (from the profile's model section)."""
    pm = profile.model
    heads = pm.hidden_size / pm.head_dim
    weight = float(pm.weight_bytes or pm.params_total * (pm.bytes_per_param or 1.0))
    kv_bytes = profile.performance_model.kv_dtype_bytes if getattr(profile, "performance_model", None) else 2
    return ModelShape(
        params_matmul=float(pm.params_matmul), num_layers=float(pm.num_layers), hidden_size=float(pm.hidden_size),
        num_heads=heads, num_kv_heads=float(pm.num_kv_heads), head_dim=float(pm.head_dim),
        vocab_size=max((pm.params_total - pm.params_matmul) / pm.hidden_size, 0.0),
        weight_bytes=weight, weight_bytes_read=weight,
        kv_bytes_per_token=2.0 * pm.num_layers * pm.num_kv_heads * pm.head_dim * kv_bytes,
        source=f"profile model {pm.name}",
    )  # fmt: skip
