"""A performance model of the hardware and engine: engine step time as a function of the batch.

One engine step (see `calibrate.runs.steps`) decodes `n` sequences holding `ctx` tokens of KV cache
between them and prefills `p` prompt tokens (`pairs` causal attention pairs). Candidate forms of
its duration, for a model shape with N matmul parameters, L layers and W weight bytes read per
step (all constants positive, fitted over the runs of a *ladder* of model sizes at once):

=============  =====================================================================================
form           step time
=============  =====================================================================================
compute        t0 + (n + p)·2N / F
additive       t0 + W / B + (n + p)·2N / F
roofline       t0 + max(W / B, (n + p)·2N / F)
split          t0 + W / B + n·2N / F_dec + p·2N / F_pre
layered        t0 + L·t_layer + W / B + n·2N / F_dec + p·2N / F_pre
full           layered + ctx·kv_bytes / B + (ctx + pairs)·a_attn / F_attn     (a_attn = 4·L·H·d_head)
tiled8         t0 + W / B + ⌈n⌉₈·2N / F_dec + p·2N / F_pre
tiled16        t0 + W / B + ⌈n⌉₁₆·2N / F_dec + p·2N / F_pre     (⌈n⌉_T: 1 stays 1, else T·ceil(n/T))
switch         t0 + W / B_v + 2N / F_dec                  one row (n + p = 1: the vector kernel)
               t0 + W / B_m + n·2N / F_dec + p·2N / F_pre  more rows (the blocked GEMM kernel)
=============  =====================================================================================

t0 is the engine's fixed per-step overhead (scheduler, sampling, Python), t_layer a per-layer
overhead (kernel dispatch in eager mode), B an effective memory bandwidth (in `switch`, B_v for a
one-row step, which the int8 kernel runs as a matrix-vector product, and B_m for a step of two rows
or more, where it runs a blocked GEMM whose cost per weight byte differs), F rates of useful
matmul work (paper convention, 2N per token) — separate for decode (skinny GEMMs at the batch
size) and prefill (GEMMs as tall as the prompt) in the split forms. Every parameter is a
hardware+engine constant: none depends on the model, which is what lets the model carry to a
size that was never run. A request also waits `request_overhead_s` outside the engine (HTTP, tokenising,
detokenising), fitted jointly from the time to first token of requests that had the engine to
themselves (= overhead + one prefill step).

Fitting: robust least squares (scipy `least_squares`, soft-L1 loss at 10 %) on log(predicted /
measured) step durations, parameters in log space (so they stay positive), each run weighted
equally whatever its number of steps. Which form is used is chosen by held-out error
(`calibrate.perfmodel.selection`), not by taste.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from calibrate.runs.steps import Steps
from core.physics import ModelShape as Shape  # the one shape-physics module

FORMS: dict[str, tuple[str, ...]] = {
    "compute": ("t0_s", "flop_per_s"),
    "additive": ("t0_s", "bandwidth_bytes_per_s", "flop_per_s"),
    "roofline": ("t0_s", "bandwidth_bytes_per_s", "flop_per_s"),
    "split": ("t0_s", "bandwidth_bytes_per_s", "decode_flop_per_s", "prefill_flop_per_s"),
    "layered": ("t0_s", "layer_s", "bandwidth_bytes_per_s", "decode_flop_per_s", "prefill_flop_per_s"),
    "full": ("t0_s", "layer_s", "bandwidth_bytes_per_s", "decode_flop_per_s", "prefill_flop_per_s",
             "attention_flop_per_s"),
    "tiled8": ("t0_s", "bandwidth_bytes_per_s", "decode_flop_per_s", "prefill_flop_per_s"),
    "tiled16": ("t0_s", "bandwidth_bytes_per_s", "decode_flop_per_s", "prefill_flop_per_s"),
    "switch": ("t0_s", "bandwidth_bytes_per_s", "gemm_bandwidth_bytes_per_s", "decode_flop_per_s",
               "prefill_flop_per_s"),
}  # fmt: skip
TILED = {"tiled8": 8, "tiled16": 16}


def padded_rows(n, tile: int) -> np.ndarray:
    """Decode rows as the GEMM kernel runs them: 1 stays 1 (a vector kernel), more are padded up to a
    multiple of `tile` (the blocked kernel's row block)."""
    n = np.asarray(n, float)
    return np.where(n <= 1.0, n, np.ceil(n / tile) * tile)

# Starting values (SI units) for the fit: a few ms of overhead, GB/s and tens of GFLOP/s; the
# fit is in log space and moves them by orders of magnitude where the data say so.
_START = {"t0_s": 5e-3, "layer_s": 2e-4, "bandwidth_bytes_per_s": 2e10, "flop_per_s": 1e11,
          "gemm_bandwidth_bytes_per_s": 2e10, "decode_flop_per_s": 5e10, "prefill_flop_per_s": 1e11, "attention_flop_per_s": 2e10, "request_overhead_s": 5e-3}  # fmt: skip


@dataclass(frozen=True)
class StepModel:
    """One fitted form: its parameters (SI units) and the per-request overhead outside the engine."""

    form: str
    params: Mapping[str, float]
    request_overhead_s: float = 0.0

    def __post_init__(self):
        if self.form not in FORMS:
            raise ValueError(f"form {self.form!r}: allowed {', '.join(FORMS)}")
        missing = set(FORMS[self.form]) - set(self.params)
        if missing:
            raise ValueError(f"form {self.form!r} needs {sorted(missing)}")

    def step_time_s(self, shape: Shape, decode_seqs, decode_context_tokens, prefill_tokens, prefill_pairs):
        """Step duration (s), vectorised over the step arrays."""
        return step_time_s(self.form, self.params, shape, decode_seqs, decode_context_tokens,
                           prefill_tokens, prefill_pairs)

    def scalar_fn(self, shape: Shape):
        """step_time_s at one shape as a plain-float function (n, ctx, pre, pairs) -> s, for the simulator."""
        p, flop_tok = self.params, 2.0 * shape.params_matmul
        if self.form == "roofline":
            t0, w, k = p["t0_s"], shape.weight_bytes_read / p["bandwidth_bytes_per_s"], flop_tok / p["flop_per_s"]
            return lambda n, ctx, pre, pairs: t0 + max(w, (n + pre) * k)
        if self.form in TILED:
            tile = TILED[self.form]
            c0 = p["t0_s"] + shape.weight_bytes_read / p["bandwidth_bytes_per_s"]
            kd, kp = flop_tok / p["decode_flop_per_s"], flop_tok / p["prefill_flop_per_s"]
            return lambda n, ctx, pre, pairs: c0 + (n if n <= 1 else math.ceil(n / tile) * tile) * kd + pre * kp
        if self.form == "switch":
            t0, w = p["t0_s"], shape.weight_bytes_read
            wv, wm = w / p["bandwidth_bytes_per_s"], w / p["gemm_bandwidth_bytes_per_s"]
            kd, kp = flop_tok / p["decode_flop_per_s"], flop_tok / p["prefill_flop_per_s"]
            return lambda n, ctx, pre, pairs: t0 + (wv if n + pre <= 1 else wm) + n * kd + pre * kp
        # every other form is linear in (n, ctx, pre, pairs): read its coefficients off once
        c0 = float(self.step_time_s(shape, 0.0, 0.0, 0.0, 0.0))
        cn, cctx, cpre, cpairs = (float(self.step_time_s(shape, *e)) - c0 for e in np.eye(4))
        return lambda n, ctx, pre, pairs: c0 + cn * n + cctx * ctx + cpre * pre + cpairs * pairs


def step_time_s(form: str, p: Mapping[str, float], shape: Shape, n, ctx, pre, pairs) -> np.ndarray:
    n, ctx, pre, pairs = (np.asarray(x, float) for x in (n, ctx, pre, pairs))
    flop_tok = 2.0 * shape.params_matmul
    t = np.full(np.broadcast(n, ctx, pre, pairs).shape, p["t0_s"], dtype=float)
    if form == "compute":
        return t + (n + pre) * flop_tok / p["flop_per_s"]
    weights = shape.weight_bytes_read / p["bandwidth_bytes_per_s"]
    if form == "additive":
        return t + weights + (n + pre) * flop_tok / p["flop_per_s"]
    if form == "roofline":
        return t + np.maximum(weights, (n + pre) * flop_tok / p["flop_per_s"])
    if form == "switch":
        weights = np.where(n + pre <= 1.0, weights, shape.weight_bytes_read / p["gemm_bandwidth_bytes_per_s"])
    if form in TILED:
        n = padded_rows(n, TILED[form])
    t = t + weights + n * flop_tok / p["decode_flop_per_s"] + pre * flop_tok / p["prefill_flop_per_s"]
    if form in ("split", "switch") or form in TILED:
        return t
    t = t + shape.num_layers * p["layer_s"]
    if form == "layered":
        return t
    kv = ctx * shape.kv_bytes_per_token / p["bandwidth_bytes_per_s"]
    return t + kv + (ctx + pairs) * shape.attention_flop_per_pair / p["attention_flop_per_s"]


@dataclass(frozen=True)
class RunEvidence:
    """The steps of one run with the shape of the model it served; `first_token_s` holds the time to
    first token of requests that found the engine idle (prompt `first_token_prompt`)."""

    shape: Shape
    steps: Steps
    first_token_s: np.ndarray
    first_token_prompt: np.ndarray
    model: str = ""
    run_id: str = ""


def _residuals(form: str, names: Sequence[str], evidence: Sequence[RunEvidence]):
    """log(predicted / measured) of every step (and of every alone TTFT), each run weighted 1."""

    def f(x: np.ndarray) -> np.ndarray:
        p = dict(zip(names, np.exp(x)))
        out = []
        for ev in evidence:
            s = ev.steps
            if len(s):
                pred = step_time_s(form, p, ev.shape, s.decode_seqs, s.decode_context_tokens,
                                   s.prefill_tokens, s.prefill_pairs)
                w = np.sqrt(s.weight / s.weight.sum())
                out.append(w * np.log(pred / s.duration_s))
            if ev.first_token_s.size:
                q = ev.first_token_prompt.astype(float)
                z = np.zeros_like(q)
                pred = p["request_overhead_s"] + step_time_s(form, p, ev.shape, z, z, q, q * (q + 1) / 2)
                out.append(np.log(pred / ev.first_token_s) / math.sqrt(q.size))
        return np.concatenate(out) if out else np.zeros(0)

    return f


# How far (a factor either way) a fitted parameter may move from its start. A term the runs do not
# identify (e.g. the weight read on steps that are all overhead) drifts towards 0 or infinity in log
# space; beyond 1e8x its share of any step is nil, and an overflowed exp() would write a profile that
# cannot be read back (a bootstrap refit did exactly that, CI 2026-12-07). Such a parameter stays at the
# bound, and its bootstrap interval says it is unidentified.
LOG_RANGE = math.log(1e8)


def params_from_log(names: Sequence[str], x) -> dict[str, float]:
    """{name: exp(x)} with each log-parameter held within LOG_RANGE of its start (finite by construction)."""
    start = np.log([_START[k] for k in names])
    if not np.all(np.isfinite(x)):
        raise ValueError(f"the fit did not converge (parameters {dict(zip(names, np.asarray(x).tolist()))} in log space)")
    x = np.clip(np.asarray(x, float), start - LOG_RANGE, start + LOG_RANGE)
    return {k: float(v) for k, v in zip(names, np.exp(x))}


def fit_step_model(evidence: Sequence[RunEvidence], form: str) -> StepModel:
    """Fit one form over the runs of all models at once (see the module docstring)."""
    from scipy.optimize import least_squares

    if form not in FORMS:
        raise ValueError(f"form {form!r}: allowed {', '.join(FORMS)}")
    names = FORMS[form] + ("request_overhead_s",)
    usable = [ev for ev in evidence if len(ev.steps) or ev.first_token_s.size]
    n_obs = sum(len(ev.steps) + ev.first_token_s.size for ev in usable)
    if n_obs < 2 * len(names):
        raise ValueError(f"too few engine steps to fit the {form!r} form ({n_obs} observations)")
    x0 = np.log([_START[k] for k in names])
    res = least_squares(_residuals(form, names, usable), x0, loss="soft_l1", f_scale=0.1,
                        x_scale=1.0, max_nfev=2000)
    params = params_from_log(names, res.x)
    overhead = params.pop("request_overhead_s")
    return StepModel(form, params, request_overhead_s=overhead)


def fixed_step_s(model: StepModel, shape: Shape) -> float:
    """The part of a step that splitting the model over devices does not shrink: t0 + L·t_layer."""
    return model.params["t0_s"] + shape.num_layers * model.params.get("layer_s", 0.0)


def parallel_step_time_s(model: StepModel, shape: Shape, n, ctx, pre, pairs, *, tensor_parallel: int = 1,
                         pipeline_parallel: int = 1, allreduce_latency_s: float = 0.0,
                         interconnect_bytes_per_s: float | None = None, activation_bytes: float = 2.0):
    """Time one token takes through a replica split `tensor_parallel` × `pipeline_parallel` ways.

    Tensor parallel divides the work (weights, KV, flop) but not the fixed part, and adds two
    ring all-reduces of the step's activations per layer: latency + 2(t−1)/t · tokens·d·bytes / link.
    Pipeline stages each pay the fixed part of their layers' share once per step, and a token passes
    through all of them in turn, so pipeline parallelism does not shorten a decode step (it lets
    `pipeline_parallel` micro-batches be in flight: see `solver.optimize.serving`).
    """
    total = np.asarray(model.step_time_s(shape, n, ctx, pre, pairs), float)
    fixed = fixed_step_s(model, shape)
    t = fixed + (total - fixed) / tensor_parallel + (pipeline_parallel - 1) * model.params["t0_s"]
    if tensor_parallel > 1:
        tokens = np.asarray(n, float) + np.asarray(pre, float)
        link = interconnect_bytes_per_s or math.inf
        per_layer = allreduce_latency_s + 2.0 * (tensor_parallel - 1) / tensor_parallel * tokens * shape.hidden_size \
            * activation_bytes / link
        t = t + 2.0 * shape.num_layers * per_layer
    return t
