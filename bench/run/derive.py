"""Derived figures of one run: FLOP per token, MFU per phase, MBU, roofline, energy and dollars.

Physics (why two MFUs). A prefill step pushes P tokens of one prompt through every matmul at once:
it is compute-bound, so its MFU can be high. A decode step pushes ONE token per running sequence
through every weight: it reads all weights (and the KV cache) once per step, so at small batch it is
bandwidth-bound and its MFU is tiny (roughly batch x 2N / (bytes read / bandwidth) / peak). The
paper (Sardana et al. 2024, Eq. 6) prices input and output tokens with separate MFUs for exactly
this reason; its defaults are 50 % (input) and 1 % (output). This module measures both.

FLOP conventions (see core/physics.py for the estimators):
  paper     2 N flop per token (Kaplan et al.; the paper's Eq. 6), N = matmul parameters.
  hardware  2 N + attention score/value flop at the token's actual context length c:
            attention_flop_per_token(c) = 4 * layers * heads * head_dim * c.
            Context per token: input token i (1-based) of a prompt of P attends to i positions
            (causal), so prefill tokens see P/2 on average ((P + 1)/2 exactly); output token k
            (k = 1..G) attends to P + k positions, so decode tokens see P + (G + 1)/2 on average.

MFU = achieved FLOP/s (paper convention) / (dense peak of the matmul datatype x devices).

Basis: when the summary has a steady-state window (core.metrics.steady_window, `summary.window`)
every rate, MFU and $/request below is over that window and `derived.basis` says so: D = window
duration, input tokens = prompts whose prefill ended in it, output tokens = decode tokens (after
each request's first) that arrived in it, requests = those completed in it. calibrate prices the
run on the same window. Without one (open loop, too few requests) the whole run is used.

Everything here is pure: no I/O, no printing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from core import physics as flops
from core.metrics import is_ok as _ok
from core.paper import SECONDS_PER_HOUR
from core.schema.run import Derived, HardwareInfo, RequestRecord, RunConfig, Summary

VLLM_FLOP_COUNTER = "vllm:estimated_flops_per_gpu_total"


# --------------------------------------------------------------------------- token / context sums


def attention_context_sum(input_tokens: int, output_tokens: int) -> float:
    """Sum over every token of one request of the context length it attends to (hardware convention).

    prefill: sum_{i=1..P} i = P (P + 1) / 2 ;  decode: sum_{k=1..G} (P + k) = G P + G (G + 1) / 2.
    """
    p, g = float(input_tokens), float(output_tokens)
    return p * (p + 1.0) / 2.0 + g * p + g * (g + 1.0) / 2.0


def request_flop_hardware(info, input_tokens: int, output_tokens: int) -> float:
    """Hardware-convention flop of one request: 2N per token + attention at each token's context.

    attention_flop_per_token is linear in the context, so the per-token attention summed over the
    request equals attention_flop_per_token(info, sum of contexts).
    """
    tokens = input_tokens + output_tokens
    return flops.flop_per_token_paper(info) * tokens + flops.attention_flop_per_token(
        info, attention_context_sum(input_tokens, output_tokens)
    )


def vllm_convention_flop(info, input_tokens: int, output_tokens: int) -> float:
    """What vLLM's `--enable-mfu-metrics` counter adds for one request (all devices), replicated.

    From vllm/v1/metrics/perf.py (0.32): each scheduled token goes through the layer matmuls
    (2 x layer matmul params); the LM head (2 x hidden x vocab) runs only for tokens that need
    logits: the last prompt token and each decode step; attention is 4 x layers x heads x head_dim
    x (tokens x context) with NO causal halving (a prompt of P counts P x P). The prompt's P tokens
    and G - 1 decode steps are scheduled (the first output token comes out of the prefill step).
    Assumes no prefix-cache hits and that `params_matmul` includes the LM head once.
    """
    p, g = int(input_tokens), int(output_tokens)
    lm_head = info.hidden_size * info.vocab_size
    layer_matmul = info.params_matmul - lm_head
    scheduled = p + max(g - 1, 0)
    logits_tokens = 1 + max(g - 1, 0)
    ctx_product = p * p + sum(p + k for k in range(1, g))
    attn = 4.0 * info.num_layers * info.num_attention_heads * info.head_dim * ctx_product
    return 2.0 * layer_matmul * scheduled + 2.0 * lm_head * logits_tokens + attn


def counted_vllm_delta(before: Mapping[str, float] | None, after: Mapping[str, float] | None,
                       device_count: int) -> float | None:
    """vLLM's counter over the run, all devices: (after - before) x devices of one engine (it counts
    per GPU; `device_count` is the devices behind one endpoint whose counter this is, or the sum of)."""
    if not before or not after or VLLM_FLOP_COUNTER not in after:
        return None
    return (after[VLLM_FLOP_COUNTER] - before.get(VLLM_FLOP_COUNTER, 0.0)) * device_count


# --------------------------------------------------------------------------- energy over the window


def window_energy_j(rows: Sequence[Mapping], start_s: float, end_s: float, *, clock: str = "monotonic_s"
                    ) -> float | None:
    """NVML energy over [start_s, end_s] (times on the rows' `clock`), all devices: each device's
    cumulative counter interpolated linearly at the two edges, end minus start (0.5 s samples
    against a window of tens of seconds); None when a device's counter readings do not span the
    window or any device lacks them (then J/request is over the whole run, said in the notes)."""
    import numpy as np

    per: dict[int, list[tuple[float, float]]] = {}
    for r in rows:
        c = r.get("energy_counter_j")
        if c is not None and r.get(clock) is not None:
            per.setdefault(int(r.get("device", 0)), []).append((float(r[clock]), float(c)))
    if not per or not end_s > start_s:
        return None
    total = 0.0
    for pts in per.values():
        pts.sort()
        t = np.array([p[0] for p in pts])
        e = np.array([p[1] for p in pts])
        if len(t) < 2 or t[0] > start_s or t[-1] < end_s or np.any(np.diff(e) < 0):
            return None  # not spanning the window, or a counter reset inside it
        total += float(np.interp(end_s, t, e) - np.interp(start_s, t, e))
    return total


# --------------------------------------------------------------------------- basis


@dataclass(frozen=True)
class Basis:
    """Duration, tokens and requests the derived figures are over (module docstring)."""

    name: str  # "completion window" | "whole run"
    duration_s: float
    input_tokens: float
    output_tokens: float  # decode tokens in the window; every output token over the whole run
    requests: int
    note: str


def basis_of(summary: Summary) -> Basis:
    """The steady-state window when the summary has one, else the whole run."""
    w = summary.window
    if w is not None and w.duration_s > 0:
        return Basis("completion window", w.duration_s, w.input_tokens, w.decode_tokens, w.requests,
                     f"basis: completion window ({w.start_s:.4g}-{w.end_s:.4g} s, {w.requests} requests completed, "
                     f"{w.input_tokens:.0f} input tokens prefilled, {w.decode_tokens:.0f} decode tokens): rates, "
                     "MFUs and $/request over it; output tokens there are decode tokens (after each request's first)")
    return Basis("whole run", summary.duration_s, float(summary.input_tokens_total),
                 float(summary.output_tokens_total), summary.num_ok,
                 "basis: whole run (no steady-state window: open loop, or fewer than 2 x concurrency requests)")


# --------------------------------------------------------------------------- derive


def derive(
    config: RunConfig,
    summary: Summary,
    hardware: HardwareInfo,
    records: Sequence[RequestRecord],
    vllm_metrics_before: Mapping[str, float] | None = None,
    vllm_metrics_after: Mapping[str, float] | None = None,
    energy_j: float | None = None,
    energy_window_j: float | None = None,
) -> Derived:
    """Derived figures of one run (run.json `derived`).

    energy_j: NVML energy over the whole run (stored); energy_window_j: over the steady-state window
    (then J/request is over the window's requests; without it over the whole run's).
    records: every record of the run INCLUDING warm-up ones (flagged `warmup`): the MFU uses the
    measured ones (through `summary`), the comparison with vLLM's counter uses all of them because
    the metrics are scraped before the warm-up and after the last request (bench.run.execute).

    Formulas (D, tokens, requests over the basis of the module docstring; dev = devices, peak per device):
      achieved_flop_per_s = 2N (input + output tokens) / D;  mfu = achieved / (peak dev)
      prefill: mfu_input  = 2N input tokens / D / (peak dev)     (paper Eq. 6 MFU_inp)
      decode:  mfu_output = 2N output tokens / D / (peak dev)    (paper Eq. 6 MFU_out)
      mbu_output = decode_bytes_per_step(batch, mean context) / TPOT / (bandwidth dev),
                   batch = output tokens/s x mean TPOT (tokens per step), capped at the concurrency
      roofline_fraction = achieved / min(peak dev, intensity x bandwidth dev)
      usd_per_request = usd_per_h dev D / 3600 / requests ; usd_per_million_tokens likewise per 1e6 tokens
    """
    info = config.model
    notes: list[str] = []
    dev = hardware.device_count
    measured = [r for r in records if not r.warmup and _ok(r)]
    bs = basis_of(summary)
    duration_s, in_tokens, out_tokens = bs.duration_s, bs.input_tokens, bs.output_tokens
    tokens = in_tokens + out_tokens
    notes.append(bs.note)

    fpt_paper = flops.flop_per_token_paper(info)
    # token-weighted mean context over the measured requests (hardware convention, see module doc)
    ctx_sum = sum(attention_context_sum(r.input_tokens, r.output_tokens) for r in measured)
    tok_sum = sum(r.input_tokens + r.output_tokens for r in measured)
    mean_context = ctx_sum / tok_sum if tok_sum else 0.0
    fpt_hardware = flops.flop_per_token_hardware(info, mean_context)
    mean_in = summary.input_tokens_total / len(measured) if measured else 0.0
    mean_out = summary.output_tokens_total / len(measured) if measured else 0.0
    notes.append(
        f"hardware convention: attention at the token-weighted mean context {mean_context:.1f} tokens "
        f"(prefill token i sees i positions, mean (P+1)/2; decode token k sees P+k, mean P+(G+1)/2; "
        f"mean P={mean_in:.1f}, G={mean_out:.1f})"
    )

    peak_dtype = info.matmul_dtype
    peak = hardware.peak_flop_per_s.get(peak_dtype)
    if peak is None:
        notes.append(f"no peak for dtype {peak_dtype!r} on {hardware.name}: MFU left null")
    total_peak = peak * dev if peak else None
    achieved = fpt_paper * tokens / duration_s if duration_s > 0 else 0.0
    phase = {"prefill": "input", "decode": "output"}.get(config.workload.kind, "mixed")
    ph = _phase_figures(phase, config, summary, bs, hardware, info, total_peak, bool(measured), mean_in, mean_out,
                        notes)
    # J/request and J/token over the same basis as the dollars: the window's energy over its
    # requests, or (whole-run basis) the run's energy over all its requests
    if bs.name == "completion window" and energy_window_j is None and energy_j is not None:
        notes.append("energy over the window not available (NVML counter does not span it): "
                     "J/request left null rather than dividing the whole run's energy by the window's requests")
        e_basis = None
    else:
        e_basis = energy_window_j if bs.name == "completion window" else energy_j
    money = _energy_and_dollars(bs, hardware, e_basis, tokens, notes)
    vllm_delta, ratio = _vllm_counter(config, hardware, records, vllm_metrics_before, vllm_metrics_after, notes)
    _check_peak(achieved, ph, total_peak, peak, hardware, notes)
    return Derived(
        params_matmul=info.params_matmul,
        flop_per_token_paper=fpt_paper,
        flop_per_token_hardware=fpt_hardware,
        peak_dtype=peak_dtype,
        peak_flop_per_s=peak,
        device_count=dev,
        achieved_flop_per_s=achieved,
        mfu=_frac(achieved, total_peak),
        phase=phase,
        basis=bs.name,
        **ph,
        energy_j=energy_j,
        energy_window_j=energy_window_j,
        **money,
        usd_per_h=hardware.usd_per_h,
        vllm_flop_delta=vllm_delta,
        flop_ratio_to_vllm=ratio,
        notes=notes,
    )


def _frac(rate: float | None, total_peak: float | None) -> float | None:
    return rate / total_peak if (rate is not None and total_peak) else None


def _phase_figures(phase: str, config: RunConfig, summary: Summary, bs: "Basis", hardware: HardwareInfo, info,
                   total_peak: float | None, have_measured: bool, mean_in: float, mean_out: float,
                   notes: list[str]) -> dict:
    """Per-phase achieved rates, MFU, MBU and roofline fraction of a prefill or decode run."""
    fpt_paper = flops.flop_per_token_paper(info)
    dev, duration_s = hardware.device_count, bs.duration_s
    in_tokens, out_tokens = bs.input_tokens, bs.output_tokens
    tokens = in_tokens + out_tokens
    out = dict(achieved_flop_per_s_input=None, achieved_flop_per_s_output=None, mfu_input=None, mfu_output=None,
               mbu_output=None, roofline_fraction=None)
    bw = hardware.memory_bandwidth_bytes_per_s
    batch = _mean_batch(config, summary)
    if duration_s > 0 and phase == "input":
        ach_in = fpt_paper * in_tokens / duration_s
        out.update(achieved_flop_per_s_input=ach_in, mfu_input=_frac(ach_in, total_peak))
        share = out_tokens / tokens if tokens else 0.0
        notes.append(
            f"prefill run: mfu_input counts input tokens only; the output tokens ({share:.2%} of "
            "tokens, one per request) are left out, their time is not"
        )
        if bw and have_measured:
            # one prefill step of `batch` prompts of mean length P reads the weights (+ the KV it writes)
            step_bytes = flops.decode_bytes_per_step(info, max(batch, 1.0), mean_in)
            intensity = fpt_paper * mean_in * max(batch, 1.0) / step_bytes
            out["roofline_fraction"] = _roofline(ach_in, total_peak, intensity, bw * dev)
    elif duration_s > 0 and phase == "output":
        ach_out = fpt_paper * out_tokens / duration_s
        out.update(achieved_flop_per_s_output=ach_out, mfu_output=_frac(ach_out, total_peak))
        share = in_tokens / tokens if tokens else 0.0
        notes.append(
            f"decode run: mfu_output counts output tokens only; the short prompts ({share:.2%} of "
            "tokens) are left out but their prefill time is in the duration (slight underestimate)"
        )
        tpot = summary.tpot_s.mean
        if bw and tpot and tpot > 0 and have_measured:
            ctx = mean_in + (mean_out + 1.0) / 2.0
            step_bytes = flops.decode_bytes_per_step(info, batch, ctx)
            out["mbu_output"] = step_bytes / tpot / (bw * dev)
            out["roofline_fraction"] = _roofline(ach_out, total_peak, fpt_paper * batch / step_bytes, bw * dev)
            notes.append(
                f"mbu_output: {step_bytes:.4g} bytes read per decode step (weights + KV at mean context "
                f"{ctx:.1f}, batch {batch:.2f} = output tokens/s x mean TPOT), one step per mean TPOT "
                f"{tpot * 1e3:.3f} ms"
            )
        elif not bw:
            notes.append("no memory bandwidth known: mbu_output and roofline_fraction left null")
    else:
        notes.append(
            "mixed run: one MFU over all tokens; input and output MFUs come from the joint fit in "
            "calibrate (time ~ a input tokens + b output tokens)"
        )
    return out


def _energy_and_dollars(bs: "Basis", hardware: HardwareInfo, energy_j: float | None, tokens: float,
                        notes: list[str]) -> dict:
    """Energy (NVML counter) and dollars per request and per million tokens, over the basis."""
    out = dict(energy_j_per_request=None, energy_j_per_token=None, usd_per_request=None, usd_per_million_tokens=None)
    if energy_j is not None and bs.requests > 0:
        out["energy_j_per_request"] = energy_j / bs.requests
        notes.append(f"energy per request: NVML energy over the {bs.name} / its {bs.requests} requests")
        out["energy_j_per_token"] = energy_j / tokens if tokens else None
    elif energy_j is None:
        notes.append("energy not measured (no NVML)")
    if hardware.usd_per_h is None:
        notes.append("no $/device-hour known for this hardware: usd_* left null (give --usd-per-hour)")
        return out
    cost_usd = hardware.usd_per_h * hardware.device_count * bs.duration_s / SECONDS_PER_HOUR
    out["usd_per_request"] = cost_usd / bs.requests if bs.requests > 0 else None
    out["usd_per_million_tokens"] = cost_usd / tokens * 1e6 if tokens else None
    notes.append(
        f"dollars: {hardware.usd_per_h} $/device-hour x {hardware.device_count} device(s) "
        f"({hardware.usd_per_h_source}) x duration; per million tokens counts input + output tokens"
    )
    return out


def _vllm_counter(config: RunConfig, hardware: HardwareInfo, records: Sequence[RequestRecord], before, after,
                  notes: list[str]) -> tuple[float | None, float | None]:
    """vLLM's own FLOP counter over the run, and our count of the same requests over it.

    Scraped before the warm-up and after the last request, so every request of the run (warm-up
    included) is in it. vLLM counts per GPU of one engine; with several endpoints (replicas) bench
    sums their /metrics, so the per-GPU sum is scaled by the devices of one endpoint."""
    info = config.model
    n_endpoints = len(config.endpoints) if config.endpoints else 1
    vllm_delta = counted_vllm_delta(before, after, max(1, hardware.device_count // n_endpoints))
    if vllm_delta is None:
        notes.append(f"{VLLM_FLOP_COUNTER} not available (server without --enable-mfu-metrics?)")
        return None, None
    if vllm_delta <= 0:
        return vllm_delta, None
    all_ok = [r for r in records if _ok(r)]
    ours = sum(request_flop_hardware(info, r.input_tokens, r.output_tokens) for r in all_ok)
    replica = sum(vllm_convention_flop(info, r.input_tokens, r.output_tokens) for r in all_ok)
    notes.append(
        f"flop_ratio_to_vllm over {len(all_ok)} requests (warm-up included): ours {ours:.6g} / "
        f"vLLM {vllm_delta:.6g}; vLLM's formula replicated gives {replica:.6g} "
        f"(expected ratio {ours / replica:.4f}: vLLM runs the LM head only for tokens needing "
        "logits and counts prompt attention as P x P, no causal halving)"
    )
    failed = sum(1 for r in records if not _ok(r))
    if failed:
        notes.append(f"{failed} failed request(s) may be in vLLM's count but not in ours")
    return vllm_delta, ours / vllm_delta


def _check_peak(achieved: float, ph: dict, total_peak: float | None, peak: float | None, hardware: HardwareInfo,
                notes: list[str]) -> None:
    """A note when an MFU is above 1: not clamped, since it says the peak is wrong (e.g. a CPU peak
    measured while other jobs loaded the machine); the achieved rate stays valid whatever the peak."""
    over = [n for n, v in (("mfu", _frac(achieved, total_peak)), ("mfu_input", ph["mfu_input"]),
                           ("mfu_output", ph["mfu_output"])) if v and v > 1]
    if over:
        notes.append(f"{', '.join(over)} > 1: the peak {peak:.4g} flop/s ({hardware.peak_source}) is below "
                     "what this run achieved; re-measure it on a quiet machine (python -m bench hardware --remeasure)")


def _mean_batch(config: RunConfig, summary: Summary) -> float:
    """Sequences per decode step: output tokens/s x mean TPOT (each running sequence gets one token
    per step), capped at the closed-loop concurrency; 1 when unknown."""
    tpot = summary.tpot_s.mean
    batch = summary.output_tokens_per_s * tpot if tpot else 1.0
    if config.concurrency:
        batch = min(batch, float(config.concurrency))
    return max(batch, 1.0)


def _roofline(achieved: float, total_peak: float | None, intensity_flop_per_byte: float,
              total_bw: float) -> float | None:
    """achieved / attainable, attainable = min(peak, arithmetic intensity x bandwidth) (Williams 2009)."""
    attainable = intensity_flop_per_byte * total_bw
    if total_peak:
        attainable = min(attainable, total_peak)
    return achieved / attainable if attainable > 0 else None
