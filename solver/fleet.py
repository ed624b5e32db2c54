"""Serving cost as a function of model size: beyond the paper's constant decode MFU.

The paper's Eq. 6 prices every output token at one decode MFU whatever the model size. In a real
deployment decode MFU depends on N (FACTS.md, "Physics worth keeping in mind"):

* Decode at batch b reads all weights once per step, so step time ≳ (weight bytes + KV bytes read)
  / memory bandwidth and ≳ b·2N / peak (the roofline). MFU grows with the batch.
* The batch is bounded by the KV cache that fits beside the weights,
  KV room = devices·(memory·utilisation − activation reserve) − weight bytes, each sequence holding
  2·layers·kv_heads·head_dim·kv_bytes per token of context: bigger models leave room for fewer
  sequences. It is also bounded by the latency SLO: TPOT = b / decode rate(b) ≤ tpot limit.
* A model too big for one device is split over tensor-parallel devices.

For a candidate N this module builds an architecture (`shape_for_params`), the replica it needs
(`replica_for_shape`), the best batch under memory and SLO (`serving_point`) and the dollars per
request (`serving_point(...).usd_per_request`). The decode rate at batch b is the profile's measured
decode FLOP rate at concurrency b (per device, paper convention 2·N flop per token, transferred to
the candidate N at the same FLOP rate — exactly the paper's constant-MFU transfer when the curve is
flat), bounded by the roofline of the candidate model on this hardware.

Assumptions (each is written into the report):

* Shape: N ≈ 12·L·d² (attention 4d² + SwiGLU MLP 8d² per layer, Llama-style), with a fixed aspect
  ratio d/L = 128 (GPT-3 175B: 12288/96, Llama-2-7B: 4096/32, Llama-2-13B: 5120/40; Kaplan et al.
  2020, Fig. 5: loss is flat in d/L over ~20–200, so the choice is free and this is the common one).
  head_dim 128, grouped-query attention with at most 8 KV heads (Llama-2-70B, Llama-3), vocabulary
  32000 (Llama-2). L and d are kept continuous so the cost is smooth in N.
* Weights INT8: 1 byte per matmul parameter + one fp32 scale per output channel (4/d bytes per
  parameter); embedding and LM head kept in bf16 (2·vocab·d·2 bytes), as W8A8 checkpoints do.
  KV cache bf16 (2 bytes), vLLM's default even with INT8 weights.
* Devices per replica: the smallest power of two up to 8 (tensor parallel within a node) whose
  memory holds the weights plus one full-length sequence; beyond 8, whole 8-device nodes (pipeline
  stages). Scaling across devices is ideal (communication ignored: optimistic above one device).
* Memory: vLLM's gpu_memory_utilization 0.9 and a 1 GiB per-device activation reserve.
  A sequence reserves its full context (input + output tokens); KV bytes read per step use the
  mean context over a request's decode (input + output/2).
* The measured decode curve is interpolated as a power law between measured concurrencies (straight
  line in log–log); below the lowest measured concurrency the FLOP rate scales ∝ b (memory-bound
  decode: step time nearly constant at small batch); above the highest it is held constant (no
  credit for gains that were not measured), unless `extrapolation="loglog"`.
* Prefill runs at the profile's achieved input FLOP rate per device (compute-bound); prefill and
  decode share the replica's time (as in Eq. 6).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np

GIB = 1024**3
SECONDS_PER_HOUR = 3600.0


# --------------------------------------------------------------------------- model shape


@dataclass(frozen=True)
class ShapeAssumption:
    aspect_ratio: float = 128.0  # d_model / n_layers (GPT-3 175B, Llama-2 7B/13B)
    head_dim: int = 128
    kv_heads_max: int = 8  # GQA-8 (Llama-2-70B, Llama-3)
    vocab_size: int = 32000  # Llama-2
    weight_bytes_per_param: float = 1.0  # INT8 W8A8
    scale_bytes: float = 4.0  # one fp32 scale per output channel
    embedding_bytes_per_param: float = 2.0  # embedding + LM head stay bf16
    kv_bytes: float = 2.0  # bf16 KV cache
    source: str = (
        "N = 12·L·d², d/L = 128 (GPT-3 175B 12288/96; Llama-2-7B 4096/32), head_dim 128, "
        "≤8 KV heads (GQA, Llama-2-70B/Llama-3), vocab 32000, INT8 weights + fp32 per-channel "
        "scales, bf16 embeddings/LM head and KV cache"
    )


@dataclass(frozen=True)
class ModelShape:
    params_matmul: float
    num_layers: float
    hidden_size: float
    num_kv_heads: float
    head_dim: float
    weight_bytes: float
    kv_bytes_per_token: float  # 2 · layers · kv_heads · head_dim · kv_bytes


def shape_for_params(params_matmul: float, a: ShapeAssumption = ShapeAssumption()) -> ModelShape:
    """Architecture for N matmul parameters: d = (aspect·N/12)^(1/3), L = d/aspect (N = 12·L·d²)."""
    if not (params_matmul > 0 and math.isfinite(params_matmul)):
        raise ValueError(f"params_matmul must be a finite number > 0, got {params_matmul!r}")
    d = (a.aspect_ratio * params_matmul / 12.0) ** (1.0 / 3.0)
    layers = d / a.aspect_ratio
    heads = d / a.head_dim
    kv_heads = min(float(a.kv_heads_max), heads)
    weight_bytes = (
        params_matmul * (a.weight_bytes_per_param + a.scale_bytes / d)
        + 2.0 * a.vocab_size * d * a.embedding_bytes_per_param
    )
    kv_per_token = 2.0 * layers * kv_heads * a.head_dim * a.kv_bytes
    return ModelShape(params_matmul, layers, d, kv_heads, float(a.head_dim), weight_bytes, kv_per_token)


# --------------------------------------------------------------------------- hardware and curve


@dataclass(frozen=True)
class FleetHardware:
    """One device of the serving hardware (per device figures; None = unknown, not bounded)."""

    name: str
    usd_per_h: float
    memory_bytes: float | None
    bandwidth_bytes_per_s: float | None
    peak_flop_per_s: float | None
    prefill_flop_per_s: float  # achieved per device, paper convention
    memory_utilization: float = 0.9  # vLLM default gpu_memory_utilization
    activation_reserve_bytes: float = 1.0 * GIB
    max_num_seqs: int = 256  # vLLM default scheduler cap


@dataclass(frozen=True)
class DecodeCurve:
    """Measured decode FLOP rate per device (paper convention) against concurrency, sorted."""

    concurrency: tuple[float, ...]
    flop_per_s_per_device: tuple[float, ...]
    extrapolation: str = "hold"  # "hold" | "loglog" above the highest measured concurrency

    def __post_init__(self):
        if len(self.concurrency) == 0 or len(self.concurrency) != len(self.flop_per_s_per_device):
            raise ValueError("decode curve needs at least one (concurrency, flop rate) point")
        if self.extrapolation not in ("hold", "loglog"):
            raise ValueError(f"extrapolation must be 'hold' or 'loglog', got {self.extrapolation!r}")

    @staticmethod
    def from_points(concurrency, flop_per_s_per_device, extrapolation: str = "hold") -> "DecodeCurve":
        """Average repeated concurrencies, sort."""
        by_c: dict[float, list[float]] = {}
        for c, f in zip(concurrency, flop_per_s_per_device):
            by_c.setdefault(float(c), []).append(float(f))
        cs = sorted(by_c)
        return DecodeCurve(tuple(cs), tuple(float(np.mean(by_c[c])) for c in cs), extrapolation)

    def flop_per_s(self, batch) -> np.ndarray:
        """Interpolated decode FLOP rate per device at batch b (see module docstring)."""
        b = np.asarray(batch, dtype=float)
        c = np.asarray(self.concurrency)
        f = np.asarray(self.flop_per_s_per_device)
        lb, lc, lf = np.log(b), np.log(c), np.log(f)
        inside = np.exp(np.interp(lb, lc, lf))
        below = f[0] * b / c[0]
        if self.extrapolation == "loglog" and len(c) >= 2:
            slope = (lf[-1] - lf[-2]) / (lc[-1] - lc[-2])
            above = f[-1] * (b / c[-1]) ** slope
        else:
            above = np.full_like(b, f[-1])
        return np.where(b < c[0], below, np.where(b > c[-1], above, inside))


def hardware_from_profile(profile, *, usd_per_h: float | None = None, **overrides) -> FleetHardware:
    """FleetHardware from a `calibrate.schema.Profile` (per-device figures)."""
    hw = profile.hardware
    return FleetHardware(
        name=hw.name,
        usd_per_h=hw.usd_per_h if usd_per_h is None else usd_per_h,
        memory_bytes=float(hw.memory_bytes) if hw.memory_bytes else None,
        bandwidth_bytes_per_s=hw.memory_bandwidth_bytes_per_s,
        peak_flop_per_s=hw.peak_flop_per_s,
        prefill_flop_per_s=profile.achieved_flop_per_s_input.value / hw.device_count,
        **overrides,
    )


def curve_from_profile(profile, extrapolation: str = "hold") -> DecodeCurve:
    """The profile's measured decode curve, per device; the operating point alone if it has none."""
    devices = profile.hardware.device_count
    pts = profile.decode_curve
    if pts:
        return DecodeCurve.from_points(
            [p.concurrency for p in pts], [p.achieved_flop_per_s / devices for p in pts], extrapolation
        )
    c = profile.operating_concurrency or 1
    return DecodeCurve((float(c),), (profile.achieved_flop_per_s_output.value / devices,), extrapolation)


# --------------------------------------------------------------------------- replica and batch


@dataclass(frozen=True)
class Workload:
    input_tokens: float = 70.0  # the paper's LMSYS-Chat means
    output_tokens: float = 215.0
    tpot_slo_s: float | None = None  # p90 limit on time per output token; None: no latency limit
    ttft_slo_s: float | None = None

    @property
    def max_context_tokens(self) -> float:
        return self.input_tokens + self.output_tokens

    @property
    def mean_decode_context_tokens(self) -> float:
        return self.input_tokens + self.output_tokens / 2.0


def usable_bytes_per_device(hw: FleetHardware) -> float | None:
    if hw.memory_bytes is None:
        return None
    return hw.memory_bytes * hw.memory_utilization - hw.activation_reserve_bytes


def devices_needed(shape: ModelShape, hw: FleetHardware, wl: Workload) -> int:
    """Smallest replica (1, 2, 4, 8, then whole 8-device nodes) holding the weights and one full sequence.

    Closed form (no cap): the cost of any N stays finite, so a 1-D minimiser may probe huge N.
    """
    usable = usable_bytes_per_device(hw)
    if usable is None:
        return 1  # memory unknown: assume it fits (the report says memory is not bounded)
    if usable <= 0:
        raise ValueError(f"hardware {hw.name}: no memory left after the activation reserve")
    need = shape.weight_bytes + shape.kv_bytes_per_token * wl.max_context_tokens
    for g in (1, 2, 4, 8):
        if g * usable >= need:
            return g
    return 8 * math.ceil(need / (8 * usable))


def max_batch_memory(shape: ModelShape, hw: FleetHardware, wl: Workload, devices: int) -> int:
    """Sequences whose full-context KV cache fits beside the weights (capped at max_num_seqs)."""
    usable = usable_bytes_per_device(hw)
    if usable is None:
        return hw.max_num_seqs
    room = devices * usable - shape.weight_bytes
    b = int(room // (shape.kv_bytes_per_token * wl.max_context_tokens))
    return max(0, min(b, hw.max_num_seqs))


def roofline_step_time_s(shape: ModelShape, hw: FleetHardware, wl: Workload, devices: int, batch) -> np.ndarray:
    """Lower bound on a decode step: max((weights + KV read)/bandwidth, b·2N/peak), ideal over devices."""
    b = np.asarray(batch, dtype=float)
    t = np.zeros_like(b)
    if hw.bandwidth_bytes_per_s:
        read = shape.weight_bytes + b * shape.kv_bytes_per_token * wl.mean_decode_context_tokens
        t = np.maximum(t, read / (devices * hw.bandwidth_bytes_per_s))
    if hw.peak_flop_per_s:
        t = np.maximum(t, b * 2.0 * shape.params_matmul / (devices * hw.peak_flop_per_s))
    return t


def decode_tokens_per_s(shape, hw, curve: DecodeCurve, wl, devices: int, batch) -> tuple[np.ndarray, np.ndarray]:
    """(rate, bound) per replica at batch b: min(measured-curve rate, roofline rate).

    curve rate = flop_per_s_per_device(b) · devices / (2N); roofline rate = b / step time.
    `bound` is "curve" or "roofline" for which one set the rate.
    """
    b = np.asarray(batch, dtype=float)
    curve_rate = curve.flop_per_s(b) * devices / (2.0 * shape.params_matmul)
    t_roof = roofline_step_time_s(shape, hw, wl, devices, b)
    with np.errstate(divide="ignore"):
        roof_rate = np.where(t_roof > 0, b / np.where(t_roof > 0, t_roof, 1.0), np.inf)
    rate = np.minimum(curve_rate, roof_rate)
    bound = np.where(roof_rate < curve_rate, "roofline", "curve")
    return rate, bound


@dataclass(frozen=True)
class ServingPoint:
    """How one replica of a candidate model serves the workload, and what a request costs."""

    params_matmul: float
    shape: ModelShape
    devices_per_replica: int
    max_batch_memory: int
    batch: int
    batch_limited_by: str  # "memory" | "slo" | "max_num_seqs" | "throughput" (no gain beyond)
    meets_slo: bool
    decode_tokens_per_s: float  # per replica at that batch
    decode_bound: str  # "curve" | "roofline"
    tpot_s: float
    ttft_s: float  # prefill of one request alone (no queueing)
    prefill_replica_s_per_request: float
    decode_replica_s_per_request: float
    usd_per_request: float
    decode_flop_per_s_per_device: float  # effective, paper convention
    decode_mfu: float | None  # effective, at the hardware's peak
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def replica_s_per_request(self) -> float:
        return self.prefill_replica_s_per_request + self.decode_replica_s_per_request

    @property
    def device_s_per_request(self) -> float:
        return self.devices_per_replica * self.replica_s_per_request


def serving_point(
    params_matmul: float,
    hw: FleetHardware,
    curve: DecodeCurve,
    wl: Workload,
    shape_assumption: ShapeAssumption = ShapeAssumption(),
) -> ServingPoint:
    """Best batch for a candidate N under memory and the TPOT SLO, and its $/request.

    $/request = devices · usd_per_h / 3600 · (input·2N/(devices·prefill_flop_per_s)
                                             + output / decode_rate(b))
    which is Eq. 6's 2N·C_inf·(D_inp/MFU_inp + D_out/MFU_out) per request when the rates are
    constant in N.
    """
    shape = shape_for_params(params_matmul, shape_assumption)
    g = devices_needed(shape, hw, wl)
    b_mem = max_batch_memory(shape, hw, wl, g)
    notes = []
    if hw.memory_bytes is None:
        notes.append("memory unknown: weights assumed to fit, batch capped at max_num_seqs only")
    if not hw.bandwidth_bytes_per_s:
        notes.append("bandwidth unknown: no memory roofline")
    if not hw.peak_flop_per_s:
        notes.append("peak unknown: no compute roofline")
    b_max = max(1, b_mem)
    batches = np.arange(1, b_max + 1, dtype=float)
    rate, bound = decode_tokens_per_s(shape, hw, curve, wl, g, batches)
    tpot = batches / rate
    ok = np.ones_like(batches, dtype=bool) if wl.tpot_slo_s is None else tpot <= wl.tpot_slo_s
    if ok.any():
        # highest throughput meeting the SLO; among rates equal to it (within 1e-9) the smallest
        # batch, since a larger one only adds latency (flat curve, or beyond the measured range)
        cand = np.where(ok, rate, -np.inf)
        i = int(np.argmax(cand >= cand.max() * (1.0 - 1e-9)))
        meets = True
    else:
        # unservable within the SLO: serve at the lowest latency reachable (usually batch 1), which
        # prices the model as it would have to run, and say so
        i = int(np.argmin(tpot))
        meets = False
        notes.append(f"no batch meets the TPOT SLO; the lowest-TPOT batch ({int(batches[i])}) is used")
    b = int(batches[i])
    if not meets:
        limited = "slo"
    elif b == b_max and b_mem >= hw.max_num_seqs:
        limited = "max_num_seqs"
    elif b == b_max:
        limited = "memory"
    elif wl.tpot_slo_s is not None and i + 1 < len(batches) and not ok[i + 1]:
        limited = "slo"
    else:
        limited = "throughput"  # larger batches fit and meet the SLO but decode no faster
    if b_mem < 1:
        notes.append("KV room for less than one full sequence beside the weights")
    dec_rate = float(rate[i])
    n2 = 2.0 * params_matmul
    prefill_s = wl.input_tokens * n2 / (g * hw.prefill_flop_per_s)
    decode_s = wl.output_tokens / dec_rate
    ttft = prefill_s + float(tpot[i])
    if wl.ttft_slo_s is not None and ttft > wl.ttft_slo_s:
        notes.append(f"TTFT {ttft:.3g} s alone exceeds the {wl.ttft_slo_s:.3g} s SLO")
    usd = g * hw.usd_per_h / SECONDS_PER_HOUR * (prefill_s + decode_s)
    eff_flop = dec_rate * n2 / g
    return ServingPoint(
        params_matmul=params_matmul,
        shape=shape,
        devices_per_replica=g,
        max_batch_memory=b_mem,
        batch=b,
        batch_limited_by=limited,
        meets_slo=meets,
        decode_tokens_per_s=dec_rate,
        decode_bound=str(bound[i]),
        tpot_s=float(tpot[i]),
        ttft_s=ttft,
        prefill_replica_s_per_request=prefill_s,
        decode_replica_s_per_request=decode_s,
        usd_per_request=usd,
        decode_flop_per_s_per_device=eff_flop,
        decode_mfu=(eff_flop / hw.peak_flop_per_s) if hw.peak_flop_per_s else None,
        notes=tuple(notes),
    )


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


def fleet_for_peak(
    point: ServingPoint,
    hw: FleetHardware,
    wl: Workload,
    peak_requests_per_s: float,
    power_w_per_device: float | None = None,
) -> Fleet:
    """Replicas to serve the peak request rate at the SLO batch: ceil(peak × replica-s per request)."""
    if not (peak_requests_per_s > 0 and math.isfinite(peak_requests_per_s)):
        raise ValueError(f"peak request rate must be a finite number > 0, got {peak_requests_per_s!r}")
    cap = 1.0 / point.replica_s_per_request
    replicas = max(1, math.ceil(peak_requests_per_s / cap - 1e-9))
    energy = None if power_w_per_device is None else power_w_per_device * point.device_s_per_request
    return Fleet(
        point=point,
        peak_requests_per_s=peak_requests_per_s,
        replica_requests_per_s=cap,
        replicas=replicas,
        devices=replicas * point.devices_per_replica,
        usd_per_request=point.usd_per_request,
        usd_per_million_tokens=point.usd_per_request / (wl.input_tokens + wl.output_tokens) * 1e6,
        energy_j_per_request=energy,
        fleet_usd_per_h=replicas * point.devices_per_replica * hw.usd_per_h,
    )


def power_w_per_device_from_profile(profile) -> float | None:
    """Mean power per device while serving, from the profile's energy per request (if measured).

    energy_j_per_request / device-seconds of the paper-mix request, where device-seconds =
    usd_per_request_paper_mix / (usd_per_h / 3600). Assumes the energy figure is for that mix.
    """
    e = profile.costs.energy_j_per_request
    if e is None:
        return None
    device_s = profile.costs.usd_per_request_paper_mix.value / (profile.hardware.usd_per_h / SECONDS_PER_HOUR)
    return e / device_s if device_s > 0 else None


def with_slo_from_profile(wl: Workload, profile) -> Workload:
    """The workload with the profile's latency SLO (TPOT p90, TTFT p90)."""
    return replace(wl, tpot_slo_s=profile.slo.tpot_p90_s, ttft_slo_s=profile.slo.ttft_p90_s)
