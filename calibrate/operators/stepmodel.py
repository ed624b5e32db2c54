"""An engine step model built from the device's operators: what the closed-loop simulation
(calibrate.perfmodel.simulate) steps with when a profile has an operator table.

step time(n, ctx, p, pairs) = Σ operators of the step (calibrate.operators.compose, interpolated from
                              the measured grid)
                            + engine + layers · layer + sequences · sequence + ctx · layers · context

The operators are measured on their own (bench operators); what they leave out is fitted from ladder
runs (`Overheads`): the engine's fixed cost per step (the model runner's Python, input preparation,
scheduling, output processing), and optionally a cost per layer (eager dispatch of the layer's
modules), per sequence in the step (the host's CPU time per streamed token, on cores it shares with
the engine) and per cached token per layer (the KV read beyond the isolated kernel's).
`fit_all_overheads_s` fits them by weighted least squares of (measured step − composed operators)
over the engine steps seen in the runs (each step counted once, calibrate.runs.steps), which keeps the
**arithmetic mean**, because a throughput is a mean of step times, not a geometric mean. Which
optional terms is chosen by calibrate.operators.validate (nested leave-one-size-out).

The simulator's step signature gives the decode count n, their summed context, the prefill tokens p
and their causal pairs; the prompts are taken as k equal ones, k = p²/(2·pairs) rounded (exact
for equal prompts, which is what a fixed-length workload schedules).
"""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

from calibrate.operators.compose import StepBatch, step_time
from calibrate.operators.interpolate import OperatorTable
from core.dims import ModelDims

CONTEXT_BUCKET = 16  # tokens: decode contexts within one bucket share a composed step (a cache key)


@dataclass
class OperatorStepModel:
    """Step time of one model shape from an operator table, plus the engine's per-step overhead."""

    table: OperatorTable
    dims: ModelDims
    engine_step_overhead_s: float = 0.0
    layer_overhead_s: float = 0.0  # per decoder layer per step: eager-mode dispatch of the layer's modules
    # per sequence in the step: the host's CPU time per streamed token (API server, detokenising,
    # streaming, the load client) that shares the cores with the engine and so lengthens its steps
    sequence_overhead_s: float = 0.0
    context_overhead_s: float = 0.0  # per cached token per layer: the KV read in the engine beyond the kernel's
    weight_dtype: str = "int8"
    _cache: dict = field(default_factory=dict, repr=False)
    _floor: dict = field(default_factory=dict, repr=False)

    def __post_init__(self):
        # Below the grid's smallest attention context / prompt, an attention call is all fixed cost:
        # held at the boundary point (the one extrapolation allowed; every other shape must be on the grid).
        for op, axis in (("attention_decode", "context"), ("attention_prefill", "tokens")):
            dtypes = self.table.dtypes(op)
            if dtypes:
                self._floor[axis] = int(math.ceil(self.table.ranges(op, dtypes[0])[axis][0]))

    def composed_s(self, n: float, ctx: float, pre: float, pairs: float) -> float:
        """Seconds of the step's operators alone (no overhead)."""
        n_i, pre_i = int(round(n)), int(round(pre))
        mean_ctx = max(self._floor.get("context", 1), int(round(ctx / n_i / CONTEXT_BUCKET)) * CONTEXT_BUCKET) if n_i else 0
        key = (n_i, mean_ctx, pre_i, int(round(pairs)))
        if key not in self._cache:
            prompts: tuple[int, ...] = ()
            if pre_i:
                k = prompt_count(pre_i, pairs)
                base, extra = divmod(pre_i, k)
                prompts = tuple(max(self._floor.get("tokens", 1), base + (1 if i < extra else 0)) for i in range(k))
            batch = StepBatch(decode_contexts=(mean_ctx,) * n_i, prefill_tokens=prompts)
            self._cache[key] = step_time(self.table, self.dims, batch, engine_step_overhead_s=0.0,
                                         weight_dtype=self.weight_dtype).total_s
        return self._cache[key]

    @property
    def overhead_s(self) -> float:
        """The step's fixed time beyond its operators: engine_step_overhead_s + layers · layer_overhead_s."""
        return self.engine_step_overhead_s + self.dims.layers * self.layer_overhead_s

    def __call__(self, n: float, ctx: float, pre: float, pairs: float) -> float:
        seqs = n + (prompt_count(int(round(pre)), pairs) if pre >= 0.5 else 0)
        return (self.composed_s(n, ctx, pre, pairs) + self.overhead_s + seqs * self.sequence_overhead_s
                + ctx * self.dims.layers * self.context_overhead_s)

    def set_overheads(self, o: Overheads) -> OperatorStepModel:
        """Set the overheads to `o` (the composed-step cache is kept); returns self."""
        self.engine_step_overhead_s, self.layer_overhead_s = o.engine, o.layer
        self.sequence_overhead_s, self.context_overhead_s = o.sequence, o.context
        return self


def prompt_count(pre: int, pairs: float) -> int:
    """How many equal prompts make `pre` prefill tokens with `pairs` causal pairs (k = p²/(2·pairs))."""
    return max(1, min(pre, int(round(pre * pre / (2.0 * pairs))) if pairs > 0 else 1))


def residuals_s(model: OperatorStepModel, steps) -> tuple[np.ndarray, np.ndarray]:
    """(measured − composed seconds, weight) of every observed step of a run (calibrate.runs.steps.Steps)."""
    composed = np.array([model.composed_s(n, c, p, q) for n, c, p, q in
                         zip(steps.decode_seqs, steps.decode_context_tokens, steps.prefill_tokens, steps.prefill_pairs)])
    return steps.duration_s - composed, steps.weight


def _sequences(steps) -> np.ndarray:
    """Sequences in each step: the decoding ones and the prompts being prefilled."""
    pre = np.asarray(steps.prefill_tokens, float)
    k = np.array([prompt_count(int(round(p)), q) if p >= 0.5 else 0 for p, q in zip(pre, steps.prefill_pairs)], float)
    return np.asarray(steps.decode_seqs, float) + k


def _pooled(models_and_steps: Sequence[tuple[OperatorStepModel, object]]):
    """(measured − composed seconds, step weight, layers, sequences, Σ decode context) of every step, pooled."""
    parts = [(*residuals_s(model, steps), model.dims.layers, _sequences(steps),
              np.asarray(steps.decode_context_tokens, float)) for model, steps in models_and_steps]
    r = np.concatenate([p[0] for p in parts]) if parts else np.zeros(0)
    wt = np.concatenate([p[1] for p in parts]) if parts else np.zeros(0)
    layers = np.concatenate([np.full(p[0].shape, float(p[2])) for p in parts]) if parts else np.zeros(0)
    seqs = np.concatenate([p[3] for p in parts]) if parts else np.zeros(0)
    ctx = np.concatenate([p[4] for p in parts]) if parts else np.zeros(0)
    if not r.size or not np.isfinite(r).all() or wt.sum() <= 0:
        raise ValueError("no engine steps to fit engine_step_overhead_s on")
    return r, wt, layers, seqs, ctx


class Overheads(NamedTuple):
    """What a step takes beyond its operators (seconds): per step, per layer, per sequence in the step,
    and per cached token per layer (the KV cache read in the engine beyond the isolated kernel's)."""

    engine: float = 0.0
    layer: float = 0.0
    sequence: float = 0.0
    context: float = 0.0


TERMS = ("layer", "sequence", "context")  # the optional terms beside the per-step one


def fit_all_overheads_s(models_and_steps: Sequence[tuple[OperatorStepModel, object]],
                        terms: Collection[str] = ()) -> Overheads:
    """The overheads by weighted least squares of measured − composed step time on
    a + layers · b + sequences · c + Σ context · layers · d, with the optional `terms` (of TERMS); a
    term fitted below 0 is dropped and the rest refitted (a least-squares fit keeps the arithmetic mean,
    as throughput needs)."""
    unknown = set(terms) - set(TERMS)
    if unknown:
        raise ValueError(f"overhead terms {sorted(unknown)}: allowed {', '.join(TERMS)}")
    r, wt, layers, seqs, ctx = _pooled(models_and_steps)
    if "layer" in terms and np.unique(layers).size < 2:
        raise ValueError("a per-layer overhead needs runs of at least two layer counts")
    columns = {"engine": np.ones_like(r), "layer": layers, "sequence": seqs, "context": ctx * layers}
    cols = {k: v for k, v in columns.items() if k == "engine" or k in terms}
    sw = np.sqrt(wt)
    while True:
        coef, *_ = np.linalg.lstsq(np.column_stack([sw * c for c in cols.values()]), sw * r, rcond=None)
        fitted = dict(zip(cols, (float(c) for c in coef)))
        negative = [k for k, v in fitted.items() if k != "engine" and v < 0]
        if not negative:
            break
        del cols[negative[0]]
    fitted["engine"] = max(0.0, fitted["engine"])
    return Overheads(**fitted)


def composed_share(model: OperatorStepModel, n: float = 1.0, ctx: float = 64.0) -> float:
    """The share of a decode step at batch `n` that its operators (the size-dependent work) make up."""
    op = model.composed_s(n, ctx * n, 0.0, 0.0)
    total = op + model.overhead_s
    return op / total if total > 0 and math.isfinite(total) else float("nan")
