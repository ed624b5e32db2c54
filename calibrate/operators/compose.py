"""A decoder step's time composed from the operator profile (pure: no torch, no I/O).

One step of vLLM's engine runs every scheduled token through every layer, then the LM head and the
sampler for each sequence that samples. With T tokens in the step (one per decoding sequence plus
every prefill token scheduled) and S sequences:

  per layer   gemm(qkv, m=T) + rotary(T) + attention + gemm(o, m=T)
              + 2 · rms_norm(T)                     (input and post-attention; the residual add is fused)
              + gemm(gate_up, m=T) + silu_and_mul(T) + gemm(down, m=T)
  attention   attention_decode(batch = decoding sequences, context = their mean context)
              + Σ over prefilling sequences attention_prefill(tokens = its prompt tokens)
  once        rms_norm(T) (final norm) + gemm(lm_head, m=S) + sampler(batch=S)
              + engine_step_overhead_s

Assumptions, stated once: every prefill is a whole prompt starting at position 0 (no cached
prefix, one chunk); every sequence in the step samples a token (so S = decoding + prefilling
sequences); decode attention at the batch's mean context is exact for a kernel whose time is
affine in Σ context (it reads each cached K and V once) and an approximation otherwise; decoding
and prefilling attention, which vLLM's CPU backend runs in one call, are timed and added apart.
What the operators leave out (the model runner's Python, input preparation, scheduling,
detokenising) is `engine_step_overhead_s`, a number the caller supplies (fitted later from ladder
runs; bench.operators.measure says what its `step_overhead` records do and do not bound).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, fields

from calibrate.operators.interpolate import OperatorGridError, OperatorTable
from core.dims import ModelDims


@dataclass(frozen=True)
class StepBatch:
    """What one engine step runs: the context of each decoding sequence (cached tokens including
    the one being decoded) and the prompt length of each sequence being prefilled."""

    decode_contexts: tuple[int, ...] = ()
    prefill_tokens: tuple[int, ...] = ()

    def __post_init__(self):
        object.__setattr__(self, "decode_contexts", tuple(self.decode_contexts))
        object.__setattr__(self, "prefill_tokens", tuple(self.prefill_tokens))
        for name in ("decode_contexts", "prefill_tokens"):
            for v in getattr(self, name):
                if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
                    raise ValueError(f"{name}: {v!r} is not a positive integer")
        if not self.decode_contexts and not self.prefill_tokens:
            raise ValueError("a step needs at least one decoding or prefilling sequence")

    @property
    def tokens(self) -> int:
        return len(self.decode_contexts) + sum(self.prefill_tokens)

    @property
    def sequences(self) -> int:
        return len(self.decode_contexts) + len(self.prefill_tokens)


@dataclass(frozen=True)
class StepBreakdown:
    """Seconds of one step per operator kind (all layers summed); `total_s` is their sum."""

    gemm_qkv_s: float
    gemm_o_s: float
    gemm_gate_up_s: float
    gemm_down_s: float
    gemm_lm_head_s: float
    attention_decode_s: float
    attention_prefill_s: float
    rms_norm_s: float
    rotary_s: float
    silu_and_mul_s: float
    sampler_s: float
    engine_step_overhead_s: float
    tokens: int
    sequences: int

    @property
    def gemm_s(self) -> float:
        return self.gemm_qkv_s + self.gemm_o_s + self.gemm_gate_up_s + self.gemm_down_s + self.gemm_lm_head_s

    @property
    def total_s(self) -> float:
        return sum(getattr(self, f.name) for f in fields(self) if f.name.endswith("_s"))

    def by_kind(self) -> dict[str, float]:
        """{field: seconds} of every time field, plus gemm_s and total_s."""
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name.endswith("_s")}
        out["gemm_s"] = self.gemm_s
        out["total_s"] = self.total_s
        return out


def _act_dtype(table: OperatorTable, weight_dtype: str, act_dtype: str | None) -> str:
    if act_dtype is not None:
        return act_dtype
    for op in ("rms_norm", "attention_decode", "attention_prefill", "sampler", "rotary", "silu_and_mul"):
        have = table.dtypes(op)
        if len(have) == 1:
            return have[0]
    others = [d for d in table.dtypes("gemm") if d != weight_dtype]
    if len(others) == 1:
        return others[0]
    raise OperatorGridError("cannot tell the activation dtype from the operator profile; pass act_dtype")


def step_time(
    table: OperatorTable, model: ModelDims, batch: StepBatch, *, engine_step_overhead_s: float,
    weight_dtype: str = "int8", act_dtype: str | None = None,
) -> StepBreakdown:
    """Seconds of one engine step of `model` running `batch`, per operator kind, from `table`.

    `weight_dtype` is the dtype of the layer GEMMs' records ("int8" for W8A8); the LM head and every
    other operator run in `act_dtype` (by default the one dtype the profile's other operators have).
    OperatorGridError (one line) when the profile lacks an operator or a shape is off its grid."""
    if not (isinstance(engine_step_overhead_s, (int, float)) and math.isfinite(engine_step_overhead_s)
            and engine_step_overhead_s >= 0):
        raise ValueError(f"engine_step_overhead_s={engine_step_overhead_s!r}: must be a finite number >= 0")
    act = _act_dtype(table, weight_dtype, act_dtype)
    d = model
    t, s = batch.tokens, batch.sequences
    shapes = d.gemm_shapes()
    cfg = {"heads": d.heads, "kv_heads": d.kv_heads, "head_dim": d.head_dim}

    def gemm(role: str, m: int) -> float:
        k, n = shapes[role]
        return table.time_s("gemm", weight_dtype if role != "lm_head" else act, m=m, k=k, n=n)

    attn_decode = 0.0
    if batch.decode_contexts:
        ctx = sum(batch.decode_contexts) / len(batch.decode_contexts)
        attn_decode = table.time_s("attention_decode", act, batch=len(batch.decode_contexts), context=ctx, **cfg)
    attn_prefill = sum(table.time_s("attention_prefill", act, tokens=p, **cfg) for p in batch.prefill_tokens)
    norm = table.time_s("rms_norm", act, tokens=t, hidden=d.hidden)
    L = d.layers
    return StepBreakdown(
        gemm_qkv_s=L * gemm("qkv", t),
        gemm_o_s=L * gemm("o", t),
        gemm_gate_up_s=L * gemm("gate_up", t),
        gemm_down_s=L * gemm("down", t),
        gemm_lm_head_s=gemm("lm_head", s),
        attention_decode_s=L * attn_decode,
        attention_prefill_s=L * attn_prefill,
        rms_norm_s=(2 * L + 1) * norm,
        rotary_s=L * table.time_s("rotary", act, tokens=t, **cfg),
        silu_and_mul_s=L * table.time_s("silu_and_mul", act, tokens=t, n=d.intermediate),
        sampler_s=table.time_s("sampler", act, batch=s, vocab=d.vocab),
        engine_step_overhead_s=float(engine_step_overhead_s),
        tokens=t,
        sequences=s,
    )


def decode_step_time(table: OperatorTable, model: ModelDims, contexts: Sequence[int], *,
                     engine_step_overhead_s: float, **kw) -> StepBreakdown:
    """`step_time` of a pure decode step (one new token for each sequence of `contexts`)."""
    return step_time(table, model, StepBatch(decode_contexts=tuple(contexts)),
                     engine_step_overhead_s=engine_step_overhead_s, **kw)
