"""A ladder of model sizes → one performance model of the hardware, validated on sizes it never saw.

* `load_ladder(paths)`: every complete closed-loop run under `paths` (several models of one
  hardware), with its per-step evidence (`calibrate.runs.steps`) and its model's shape (`core.physics`).
* `fit(runs, form)`: the step model of that form over all runs (`calibrate.perfmodel.forms`).
* `predict_run(model, shape, ...)`: the closed-loop figures of a workload at a concurrency, by
  simulating vLLM's continuous batching (`calibrate.perfmodel.simulate`) with the step model.
* `leave_one_model_out(runs, form)`: for each ladder size, refit without it and predict each of
  its runs; relative errors of output tok/s, TTFT, TPOT and $/request.
* `choose_form(runs)`: every candidate form's held-out errors; the one with the smallest worst
  error on output tok/s and $/request is used.
* `bootstrap(runs, form, n)`: refits on runs resampled with replacement within each model — the
  parameter sets behind every 95 % interval of a prediction.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from calibrate.perfmodel.forms import FORMS, RunEvidence, StepModel, fit_step_model
from calibrate.perfmodel.simulate import DEFAULT_MAX_BATCHED_TOKENS, SimResult, simulate
from calibrate.runs.load import find_run_dirs, load_run
from calibrate.runs.steps import alone_ttft, extract_steps
from core.paper import SECONDS_PER_HOUR
from core.physics import ModelShape, kv_dtype_bytes_for, shape_of
from core.schema.run import REQUESTS_FILE

TARGET_ERROR = 0.15  # held-out error above which a profile says so on its first line
MAX_STEPS_PER_RUN = 300  # step observations kept per run (evenly spaced): each fit stays well under a second


@dataclass(frozen=True)
class LadderRun:
    """One measured closed-loop run of one ladder model: its evidence and what it measured."""

    evidence: RunEvidence
    run_id: str
    path: str
    sha256: str
    model: str
    shape: ModelShape
    input_tokens: int
    output_tokens: int
    concurrency: int
    num_requests: int
    max_num_seqs: int
    devices: int
    usd_per_h: float | None
    requests_per_s: float = 0.0
    measured: dict[str, float | None] = field(default_factory=dict)


def _measured(summary, devices: int, usd_per_h: float | None) -> dict[str, float | None]:
    rps = summary.request_throughput_per_s
    return {
        "output_tokens_per_s": summary.output_tokens_per_s,
        "input_tokens_per_s": summary.input_tokens_per_s,
        "ttft_s": summary.ttft_s.mean,
        "tpot_s": summary.tpot_s.mean,
        "usd_per_request": (devices * usd_per_h / SECONDS_PER_HOUR / rps) if (usd_per_h and rps) else None,
    }


def load_ladder(paths: Iterable[str | Path]) -> tuple[list[LadderRun], list[dict]]:
    """Complete, valid closed-loop runs of fixed-length workloads under `paths`; (runs, dropped)."""

    dirs, crashed = find_run_dirs(paths)
    dropped = [{"path": d.path, "reason": d.reason} for d in crashed]
    runs: list[LadderRun] = []
    for d in dirs:
        lr = load_run(d)
        rec = lr.record
        cfg = rec.config
        why = None
        if rec.status != "complete" or not rec.summary.valid:
            why = f"status {rec.status}, valid {rec.summary.valid}"
        elif cfg.mode != "concurrency" or cfg.workload.kind == "distribution":
            why = "not a closed-loop run of fixed lengths"
        if why:
            dropped.append({"path": str(d), "reason": why})
            continue
        records = [json.loads(line) for line in (Path(d) / REQUESTS_FILE).read_text().splitlines() if line.strip()]
        shape = shape_of(cfg.model, kv_dtype_bytes_for(cfg.server_dtype))
        ft, fp = alone_ttft(records, cfg.concurrency)
        hw = rec.environment.hardware
        ev = RunEvidence(shape=shape, steps=extract_steps(records).thin(MAX_STEPS_PER_RUN), first_token_s=ft, first_token_prompt=fp,
                         model=cfg.model.name, run_id=rec.run_id)
        runs.append(LadderRun(
            evidence=ev, run_id=rec.run_id, path=str(d), sha256=lr.sha256, model=cfg.model.name, shape=shape,
            input_tokens=cfg.workload.input_tokens, output_tokens=cfg.workload.output_tokens,
            concurrency=cfg.concurrency, num_requests=cfg.num_requests, max_num_seqs=cfg.max_num_seqs or 256,
            devices=hw.device_count, usd_per_h=hw.usd_per_h, requests_per_s=rec.summary.request_throughput_per_s,
            measured=_measured(rec.summary, hw.device_count, hw.usd_per_h),
        ))  # fmt: skip
    return runs, dropped


def reprice(runs: Sequence[LadderRun], usd_per_h: float) -> list[LadderRun]:
    """The runs with $/request measured at another price per device-hour."""
    out = []
    for r in runs:
        usd = r.devices * usd_per_h / SECONDS_PER_HOUR / r.requests_per_s if r.requests_per_s else None
        out.append(replace(r, usd_per_h=usd_per_h, measured={**r.measured, "usd_per_request": usd}))
    return out


def models_of(runs: Sequence[LadderRun]) -> list[str]:
    """Ladder models, smallest N first."""
    size = {r.model: r.shape.params_matmul for r in runs}
    return sorted(size, key=size.get)


def fit(runs: Sequence[LadderRun], form: str) -> StepModel:
    return fit_step_model([r.evidence for r in runs], form)


def predict_run(model: StepModel, shape: ModelShape, *, input_tokens: int, output_tokens: int, concurrency: int,
                num_requests: int | None = None, max_num_seqs: int = 256,
                max_num_batched_tokens: int = DEFAULT_MAX_BATCHED_TOKENS) -> SimResult:
    """Closed-loop figures of one workload; `num_requests` None: a steady state of 8 waves."""
    n = num_requests if num_requests is not None else max(8 * concurrency, 32)
    fn = step_fn(model, shape)
    return simulate(fn, concurrency=concurrency, num_requests=n, lengths=[(input_tokens, output_tokens)],
                    request_overhead_s=model.request_overhead_s, max_num_seqs=max_num_seqs,
                    max_num_batched_tokens=max_num_batched_tokens)


def step_fn(model: StepModel, shape: ModelShape):
    """A scalar step-time function for the simulator (the step model at one shape)."""
    return model.scalar_fn(shape)


def figures(sim: SimResult, devices: int, usd_per_h: float | None) -> dict[str, float | None]:
    """The run.json-comparable figures of a simulated run (same definitions as `_measured`)."""
    return {
        "output_tokens_per_s": sim.output_tokens_per_s,
        "input_tokens_per_s": sim.input_tokens_per_s,
        "ttft_s": sim.ttft_mean_s,
        "tpot_s": sim.tpot_mean_s,
        "usd_per_request": (devices * usd_per_h / SECONDS_PER_HOUR / sim.request_throughput_per_s) if usd_per_h else None,
    }


def _rel(pred: float | None, meas: float | None) -> float | None:
    if pred is None or meas is None or not meas:
        return None
    return pred / meas - 1.0


def compare_run(model: StepModel, run: LadderRun) -> dict:
    """Predicted vs measured figures of one run, and their relative errors."""
    sim = predict_run(model, run.shape, input_tokens=run.input_tokens, output_tokens=run.output_tokens,
                      concurrency=run.concurrency, num_requests=run.num_requests, max_num_seqs=run.max_num_seqs)
    pred = figures(sim, run.devices, run.usd_per_h)
    return {
        "run_id": run.run_id, "model": run.model, "params_matmul": run.shape.params_matmul,
        "input_tokens": run.input_tokens, "output_tokens": run.output_tokens, "concurrency": run.concurrency,
        "measured": run.measured, "predicted": pred,
        "error": {k: _rel(pred[k], run.measured.get(k)) for k in pred},
    }  # fmt: skip


def leave_one_model_out(runs: Sequence[LadderRun], form: str) -> list[dict]:
    """For each ladder model: fit on the others, compare each of its runs (see `compare_run`)."""
    out = []
    for m in models_of(runs):
        train = [r for r in runs if r.model != m]
        if len({r.model for r in train}) < 1:
            continue
        model = fit(train, form)
        out.extend({**compare_run(model, r), "held_out": True} for r in runs if r.model == m)
    return out


def error_summary(rows: Sequence[dict], keys=("output_tokens_per_s", "usd_per_request", "ttft_s", "tpot_s")) -> dict:
    """Worst and mean absolute relative error per figure over `rows`."""
    out = {}
    for k in keys:
        e = np.array([abs(r["error"][k]) for r in rows if r["error"].get(k) is not None], float)
        out[k] = {"max_abs": float(e.max()) if e.size else None, "mean_abs": float(e.mean()) if e.size else None}
    return out


def choose_form(runs: Sequence[LadderRun], forms: Sequence[str] = tuple(FORMS)) -> tuple[str, list[dict]]:
    """(chosen form, one comparison row per form): smallest worst held-out error on throughput and $."""
    if len(models_of(runs)) < 2:
        raise ValueError(f"leaving one model out needs runs of at least 2 model sizes, got {models_of(runs)}")
    table = []
    for form in forms:
        try:
            rows = leave_one_model_out(runs, form)
        except ValueError as exc:
            table.append({"form": form, "error": str(exc)})
            continue
        s = error_summary(rows)
        worst = max(v["max_abs"] for k, v in s.items() if k in ("output_tokens_per_s", "usd_per_request")
                    and v["max_abs"] is not None)
        table.append({"form": form, "parameters": list(FORMS[form]), "held_out": s, "score": worst})
    scored = [t for t in table if "score" in t]
    if not scored:
        raise ValueError("no form could be fitted on these runs: " + "; ".join(t["error"] for t in table))
    best = min(scored, key=lambda t: (t["score"], len(t["parameters"])))
    for t in table:
        t["chosen"] = t is best
    return best["form"], table


def bootstrap(runs: Sequence[LadderRun], form: str, n: int, seed: int = 0) -> list[StepModel]:
    """`n` refits on runs resampled with replacement within each model (a model keeps its run count)."""
    rng = np.random.default_rng(seed)
    by_model = {m: [r for r in runs if r.model == m] for m in models_of(runs)}
    out = []
    for _ in range(n):
        sample = [rs[i] for rs in by_model.values() for i in rng.integers(0, len(rs), len(rs))]
        try:
            out.append(fit(sample, form))
        except ValueError:
            continue
    return out


def interval(values: Sequence[float]) -> tuple[float, float]:
    v = np.asarray([x for x in values if x is not None and math.isfinite(x)], float)
    if v.size == 0:
        return (math.nan, math.nan)
    return float(np.percentile(v, 2.5)), float(np.percentile(v, 97.5))
