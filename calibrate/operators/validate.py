"""Leave one ladder size out, predicting it from the device's measured operators.

For each size of a ladder: the overheads the operators do not cover are fitted on the *other* sizes'
runs (calibrate.operators.stepmodel: `engine_step_overhead_s`, with `layer_term` also
`layer_overhead_s`; `request_overhead_s` = arithmetic mean of TTFT alone − its composed prefill step),
then every run of the held-out size is simulated closed-loop (calibrate.perfmodel.simulate) with steps
composed from the operator table, and its figures set beside what was measured. Sizes inside the
ladder's range are "interpolated"; the smallest and the largest "extrapolated". The rows feed
calibrate.perfmodel.errorsplit (error, noise floor, bias share).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from calibrate.operators.interpolate import OperatorTable
from calibrate.operators.stepmodel import OperatorStepModel, composed_share, fit_engine_overhead_s, fit_overheads_s
from calibrate.perfmodel.errorsplit import error_split
from calibrate.perfmodel.selection import LadderRun, figures
from calibrate.perfmodel.simulate import simulate
from core.dims import dims_of
from core.files import sha256_file
from core.schema.operators import load_profile
from core.schema.perfmodel import ErrorSplit, OperatorCheck


@dataclass(frozen=True)
class HeldOut:
    """One run of a held-out size: measured and predicted figures, and what was fitted without it."""

    model: str
    input_tokens: int
    output_tokens: int
    concurrency: int
    where: str  # "interpolated" | "extrapolated (smallest)" | "extrapolated (largest)"
    measured: dict
    predicted: dict
    engine_step_overhead_s: float
    layer_overhead_s: float
    request_overhead_s: float
    operator_share: float  # the operators' share of the size's batch-1 decode step


def step_model(table: OperatorTable, run: LadderRun, engine_s: float = 0.0, layer_s: float = 0.0) -> OperatorStepModel:
    """The operator step model of a ladder run's model (its integer dims from the run's shape)."""
    s = run.shape
    dims = dims_of(num_layers=int(s.num_layers), hidden_size=int(s.hidden_size), num_attention_heads=int(s.num_heads),
                   num_kv_heads=int(s.num_kv_heads), head_dim=int(s.head_dim), vocab_size=int(s.vocab_size),
                   params_matmul=s.params_matmul)
    return OperatorStepModel(table, dims, engine_s, layer_s)


def fit_request_overhead_s(models_runs: Sequence[tuple[OperatorStepModel, LadderRun]]) -> float:
    """Arithmetic mean of (TTFT of a request alone − its composed prefill step) over concurrency-1 runs."""
    res = [t - m(0.0, 0.0, float(p), p * (p + 1) / 2)
           for m, r in models_runs for t, p in zip(r.evidence.first_token_s, r.evidence.first_token_prompt)]
    return max(0.0, float(np.mean(res))) if res else 0.0


def sizes_of(runs: Sequence[LadderRun]) -> list[str]:
    """The ladder's model names, smallest N first."""
    return sorted({r.model for r in runs}, key=lambda m: next(r.shape.params_matmul for r in runs if r.model == m))


def leave_one_size_out(table: OperatorTable, runs: Sequence[LadderRun], *, layer_term: bool = False) -> list[HeldOut]:
    """Every run predicted from the operators with the overheads fitted on the other sizes."""
    sizes = sizes_of(runs)
    if len(sizes) < (3 if layer_term else 2):
        raise ValueError(f"leaving a size out needs {3 if layer_term else 2} sizes or more; got {len(sizes)}")
    out = []
    for held in sizes:
        train = [(step_model(table, r), r) for r in runs if r.model != held]
        pairs = [(m, r.evidence.steps) for m, r in train]
        engine, layer = fit_overheads_s(pairs) if layer_term else (fit_engine_overhead_s(pairs), 0.0)
        for m, _ in train:
            m.engine_step_overhead_s, m.layer_overhead_s = engine, layer
        request = fit_request_overhead_s(train)
        where = ("extrapolated (largest)" if held == sizes[-1] else "extrapolated (smallest)" if held == sizes[0]
                 else "interpolated")
        for r in (r for r in runs if r.model == held):
            m = step_model(table, r, engine, layer)
            sim = simulate(m, concurrency=r.concurrency, num_requests=r.num_requests,
                           lengths=[(r.input_tokens, r.output_tokens)], request_overhead_s=request,
                           max_num_seqs=r.max_num_seqs)
            out.append(HeldOut(model=r.model, input_tokens=r.input_tokens, output_tokens=r.output_tokens,
                               concurrency=r.concurrency, where=where, measured=dict(r.measured),
                               predicted=figures(sim, r.devices, r.usd_per_h), engine_step_overhead_s=engine,
                               layer_overhead_s=layer, request_overhead_s=request, operator_share=composed_share(m)))
    return out


def operator_check(profile_path, runs: Sequence[LadderRun]):
    """core.schema.perfmodel.OperatorCheck of these ladder runs from the operator profile at `profile_path`
    (the per-layer term when there are 3 sizes or more)."""

    table = OperatorTable(load_profile(profile_path).records)
    layer_term = len(sizes_of(runs)) >= 3
    rows = leave_one_size_out(table, runs, layer_term=layer_term)
    flat = [vars(r) for r in rows]
    wheres = sorted({r.where for r in rows}) + ["all"]
    split = {w: {k: ErrorSplit(**v) for k, v in error_split([f for f in flat if w in ("all", f["where"])]).items()}
             for w in wheres}
    return OperatorCheck(
        operator_profile=str(profile_path), sha256=sha256_file(profile_path), layer_term=layer_term,
        engine_step_overhead_s={r.model: r.engine_step_overhead_s for r in rows},
        layer_overhead_s={r.model: r.layer_overhead_s for r in rows}, error_split=split)
