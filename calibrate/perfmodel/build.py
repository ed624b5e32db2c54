"""Build a profile's `performance_model` from ladder runs, and predict from a stored one.

`build_performance_model(runs)` compares the candidate forms by leave-one-model-out error, fits
the chosen one on every run, bootstraps it, and writes the validation. `predict_points(pm, shape,
...)` gives the closed-loop figures of a workload at each concurrency with 95 % intervals from the
stored bootstrap parameter sets. Both are pure functions of their inputs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from calibrate.perfmodel import selection as ladder
from calibrate.perfmodel.errorsplit import error_split
from calibrate.perfmodel.forms import FORMS, StepModel
from calibrate.perfmodel.forms import __doc__ as _PERF_DOC
from calibrate.perfmodel.simulate import DEFAULT_MAX_BATCHED_TOKENS
from core.physics import ModelShape
from core.schema.perfmodel import (
    ErrorSplit,
    ErrorStat,
    FittedParam,
    FormComparison,
    HeldOutRun,
    LadderModel,
    Parallelism,
    PerformanceModel,
    Scheduler,
)  # fmt: skip

DEFAULT_BOOTSTRAP = 100


def unit_of(name: str) -> str:
    """A fitted parameter's unit, from its name: ..._bytes_per_s, ..._flop_per_s, ..._s (every form's
    parameters follow it, so a new form needs no table; tests/test_perfmodel.py checks them all)."""
    for suffix, unit in (("bytes_per_s", "bytes/s"), ("flop_per_s", "flop/s"), ("_s", "s")):
        if name.endswith(suffix):
            return unit
    raise ValueError(f"parameter {name!r}: no unit (names end in _bytes_per_s, _flop_per_s or _s)")


# Tensor parallelism: two all-reduces per layer per step (after attention and after the MLP).
# Assumed until a TP > 1 run measures it: NCCL's small-message latency on NVLink is ~10 µs
# (NVIDIA NCCL tests, all_reduce_perf, 8-GPU DGX A100); bandwidth from the GPU table when known.
ASSUMED_ALLREDUCE_LATENCY_S = 10e-6


def _formula(form: str) -> str:
    for line in _PERF_DOC.splitlines():
        if line.startswith(form + " "):
            return line[len(form):].strip()
    return form


def _ladder_models(runs: Sequence[ladder.LadderRun]) -> list[LadderModel]:
    out = []
    for m in ladder.models_of(runs):
        rs = [r for r in runs if r.model == m]
        s = rs[0].shape
        out.append(LadderModel(
            name=m, params_matmul=s.params_matmul, num_layers=s.num_layers, hidden_size=s.hidden_size,
            num_heads=s.num_heads, num_kv_heads=s.num_kv_heads, head_dim=s.head_dim, vocab_size=s.vocab_size,
            weight_bytes_read=s.weight_bytes_read, kv_bytes_per_token=s.kv_bytes_per_token,
            run_ids=[r.run_id for r in rs], steps=int(sum(len(r.evidence.steps) for r in rs)),
        ))  # fmt: skip
    return out


def _param(name: str, value: float, samples: Sequence[float], unit: str) -> FittedParam:
    lo, hi = ladder.interval(samples) if len(samples) >= 2 else (value, value)
    if not (math.isfinite(lo) and math.isfinite(hi)):
        lo, hi = value, value
    return FittedParam(value=value, low=min(lo, value), high=max(hi, value), unit=unit)


def build_performance_model(runs: Sequence[ladder.LadderRun], *, n_boot: int = DEFAULT_BOOTSTRAP, seed: int = 0,
                            forms: Sequence[str] = tuple(FORMS), interconnect_bytes_per_s: float | None = None,
                            interconnect_source: str | None = None) -> PerformanceModel:
    """The performance model of these ladder runs (at least two model sizes)."""
    if len(ladder.models_of(runs)) < 2:
        raise ValueError(f"a performance model needs runs of at least 2 model sizes, got {ladder.models_of(runs)}")
    form, table = ladder.choose_form(runs, forms)
    model = ladder.fit(runs, form)
    boots = ladder.bootstrap(runs, form, n_boot, seed)
    held = ladder.leave_one_model_out(runs, form)
    worst = {k: v["max_abs"] for k, v in ladder.error_summary(held).items()}
    meets = all((worst[k] or 0.0) <= ladder.TARGET_ERROR for k in ("output_tokens_per_s", "usd_per_request"))
    warning = None
    if not meets:
        warning = (f"held-out error above {ladder.TARGET_ERROR:.0%}: output tok/s "
                   f"{worst['output_tokens_per_s']:.0%}, $/request {worst['usd_per_request'] or 0:.0%} "
                   "(worst ladder size predicted from the others)")
    params = {k: _param(k, v, [b.params[k] for b in boots], unit_of(k)) for k, v in model.params.items()}
    req = _param("request_overhead_s", model.request_overhead_s, [b.request_overhead_s for b in boots], "s")
    mns = max(r.max_num_seqs for r in runs)
    return PerformanceModel(
        form=form,
        formula=_formula(form),
        params=params,
        request_overhead_s=req,
        bootstrap=[{**b.params, "request_overhead_s": b.request_overhead_s} for b in boots],
        fitted_on=_ladder_models(runs),
        scheduler=Scheduler(max_num_seqs=mns, max_num_batched_tokens=DEFAULT_MAX_BATCHED_TOKENS,
                            source="runs' max_num_seqs; vLLM's default max_num_batched_tokens (chunked prefill)"),
        kv_dtype_bytes=int(round(runs[0].shape.kv_bytes_per_token / (2 * runs[0].shape.num_layers
                                                                        * runs[0].shape.num_kv_heads * runs[0].shape.head_dim))),
        parallelism=Parallelism(
            provenance="assumed", allreduce_latency_s=ASSUMED_ALLREDUCE_LATENCY_S,
            interconnect_bytes_per_s=interconnect_bytes_per_s,
            source=(interconnect_source or "no interconnect figure for this hardware")
            + "; 2 all-reduces per layer per step, ring all-reduce 2(t-1)/t of the activations; "
            "latency: NCCL all_reduce_perf small-message figure (~10 µs, NVLink); no TP > 1 run measured it",
        ),
        forms=[FormComparison(**{**t, "held_out": {k: ErrorStat(**v) for k, v in t.get("held_out", {}).items()}})
               for t in table],
        held_out=[HeldOutRun(**{k: v for k, v in row.items() if k != "held_out"}) for row in held],
        held_out_max_abs_error=worst,
        error_split={k: ErrorSplit(**v) for k, v in error_split(held).items()},
        target_error=ladder.TARGET_ERROR,
        meets_target=meets,
        warning=warning,
        method=(f"engine steps from per-token timestamps of {len(runs)} runs of {len(ladder.models_of(runs))} "
                f"model sizes; form chosen among {', '.join(forms)} by leave-one-model-out error; robust least "
                f"squares on log step time; intervals: {len(boots)} refits on runs resampled within each model; "
                "closed-loop figures by simulating vLLM's continuous batching"),
    )


def step_models(pm: PerformanceModel) -> tuple[StepModel, list[StepModel]]:
    """(the fitted step model, the bootstrap ones) of a stored performance model."""
    main = StepModel(pm.form, {k: p.value for k, p in pm.params.items()}, pm.request_overhead_s.value)
    boots = [StepModel(pm.form, {k: v for k, v in b.items() if k != "request_overhead_s"}, b["request_overhead_s"])
             for b in pm.bootstrap]
    return main, boots


POINT_KEYS = ("output_tokens_per_s", "input_tokens_per_s", "ttft_s", "tpot_s", "usd_per_request")


def predict_points(pm: PerformanceModel, shape: ModelShape, *, input_tokens: int, output_tokens: int,
                   concurrencies: Sequence[int], usd_per_h: float | None, devices: int = 1,
                   max_num_seqs: int | None = None, max_refits: int = 40) -> list[dict]:
    """Per concurrency: the predicted closed-loop figures and `<key>_interval: [low, high]` (95 %, from at
    most `max_refits` of the stored bootstrap refits, evenly spaced)."""
    main, boots = step_models(pm)
    if len(boots) > max_refits:  # evenly spaced refits: the interval in about a second, not ten
        boots = [boots[round(i)] for i in np.linspace(0, len(boots) - 1, max_refits)]
    mns = max_num_seqs or pm.scheduler.max_num_seqs
    out = []
    for c in concurrencies:
        kw = dict(input_tokens=input_tokens, output_tokens=output_tokens, concurrency=c, max_num_seqs=mns,
                  max_num_batched_tokens=pm.scheduler.max_num_batched_tokens)
        point = {"concurrency": c, **ladder.figures(ladder.predict_run(main, shape, **kw), devices, usd_per_h)}
        # 3 waves of requests reach the closed loop's steady state (measured: the figures agree with 8
        # waves to 1e-6 at concurrency 1, 16 and 64), so the refits run shorter than the point itself
        short = dict(kw, num_requests=max(3 * c, 12))
        samples = [ladder.figures(ladder.predict_run(b, shape, **short), devices, usd_per_h) for b in boots]
        for k in POINT_KEYS:
            vals = [s[k] for s in samples if s[k] is not None]
            if point[k] is None:
                point[f"{k}_interval"] = None
                continue
            lo, hi = ladder.interval(vals) if len(vals) >= 2 else (point[k], point[k])
            point[f"{k}_interval"] = [min(lo, point[k]), max(hi, point[k])]
        point["effective_batch"] = min(c, mns)
        out.append(point)
    return out

