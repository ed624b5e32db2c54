"""How long a sweep will take, predicted from the device's operators before any model is served.

The main command must end within its time budget on the slowest host (issue 17: 15 minutes after
setup), and a ladder's sweep is most of it. Each closed-loop run is simulated as vLLM batches it
(calibrate.perfmodel.simulate, its warm-up requests included) with steps composed from the operator
table (calibrate.operators.stepmodel); a run also costs `RUN_FIXED_S` beyond its requests and each
model a server start, `SERVER_START_S`.

Before the first ladder of a device has been served, the engine's overheads are not known: the
defaults here are **assumed**, the larger of the two fits seen on this project's hosts (the AMX
Xeon's three-size ladder of 2026-12-07 23:33, 2.6M / 14.7M / 318M: 1.6 ms per step, 1.8 ms per
layer per step, 0.27 ms per sequence in the step, 8.2 ms per request; the five-size ladder of 21:56
that day fitted 2.9 ms + 1.1 ms per layer and 6.2 ms per request; the larger fit predicts that
ladder's runs 1.38x too long, so a plan errs long). Measured against the runs
(benchmarks/sweep_time.py): the requests of the 23:33 ladder predicted at 0.96x of their measured
595 s, per run 0.61-1.47x.

Pure: no I/O (the table comes in built).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

from calibrate.operators.interpolate import OperatorTable
from calibrate.operators.stepmodel import OperatorStepModel, Overheads
from calibrate.perfmodel.simulate import DEFAULT_MAX_BATCHED_TOKENS, simulate
from core.dims import ModelDims

ASSUMED_OVERHEADS = Overheads(engine=1.6e-3, layer=1.8e-3, sequence=0.27e-3, context=2.9e-7)
ASSUMED_REQUEST_S = 8.2e-3
ASSUMED_BASIS = ("assumed: engine overheads fitted on an AMX ladder of 2026-12-07, the larger of two fits "
                 "(1.6 ms/step + 1.8 ms/layer/step + 0.27 ms/sequence, 8.2 ms/request)")
# Measured on the AMX host (2026-12-07, docs/measurements.md "Sweep time, predicted"): a vLLM CPU
# server start with the hardware lookup 37-42 s; per run beyond its requests (metrics settle,
# prefix-cache reset, files) 0.1-0.5 s (the two three-size ladders of 2026-12-07/08: 140 s and 126 s
# beyond their requests for 3 starts and 42 runs each).
SERVER_START_S = 40.0
RUN_FIXED_S = 0.5


@dataclass(frozen=True)
class PlannedRun:
    """One closed-loop run of a sweep, as the predictor needs it."""

    label: str
    concurrency: int
    num_requests: int
    warmup_requests: int
    input_tokens: int
    output_tokens: int


@dataclass(frozen=True)
class RunTime:
    label: str
    seconds: float  # its requests (warm-up included) + RUN_FIXED_S
    num_requests: int  # measured requests (below the planned count where a cap cut it)
    measured_s: float = 0.0  # the measured phase alone
    planned_requests: int = 0  # before the cap


@dataclass(frozen=True)
class ModelSweepTime:
    """One model's predicted sweep: a server start and its runs."""

    dims: ModelDims
    runs: tuple[RunTime, ...]
    server_start_s: float

    @property
    def seconds(self) -> float:
        return self.server_start_s + sum(r.seconds for r in self.runs)


def phase_seconds(model: OperatorStepModel, run: PlannedRun, n: int, *, request_overhead_s: float,
                  max_num_seqs: int, max_num_batched_tokens: int = DEFAULT_MAX_BATCHED_TOKENS) -> float:
    """Predicted seconds of `n` requests of `run`'s closed loop (0 for none). OperatorGridError (one
    line) when the model's shape lies outside the operator grid."""
    if n <= 0:
        return 0.0
    return simulate(model, concurrency=run.concurrency, num_requests=n, lengths=[(run.input_tokens, run.output_tokens)],
                    request_overhead_s=request_overhead_s, max_num_seqs=max_num_seqs,
                    max_num_batched_tokens=max_num_batched_tokens).duration_s


def run_seconds(model: OperatorStepModel, run: PlannedRun, *, request_overhead_s: float, max_num_seqs: int,
                max_num_batched_tokens: int = DEFAULT_MAX_BATCHED_TOKENS) -> float:
    """Predicted wall seconds of one run: the warm-up phase and the measured phase simulated apart
    (as bench runs them, one after the other), plus RUN_FIXED_S."""
    kw = dict(request_overhead_s=request_overhead_s, max_num_seqs=max_num_seqs,
              max_num_batched_tokens=max_num_batched_tokens)
    return RUN_FIXED_S + phase_seconds(model, run, run.warmup_requests, **kw) + phase_seconds(model, run, run.num_requests, **kw)


def min_requests(concurrency: int) -> int:
    """The fewest measured requests a closed-loop run may have: 5 per client, so the steady-state
    window (C-th to (n - C)-th completion) holds 3 waves of the batch, the least a profile takes
    (calibrate.runs.window.MIN_RUN_CPU)."""
    return 5 * concurrency


def sweep_time(table: OperatorTable, dims: ModelDims, runs: Sequence[PlannedRun], *, max_num_seqs: int,
               overheads: Overheads = ASSUMED_OVERHEADS, request_overhead_s: float = ASSUMED_REQUEST_S,
               server_start_s: float = SERVER_START_S, run_cap_s: float | None = None) -> ModelSweepTime:
    """Predicted sweep of one model: every run of `runs` (replicates listed one by one). With
    `run_cap_s`, a run whose measured phase is predicted longer gets fewer requests, in proportion,
    but never fewer than `min_requests` nor more than planned."""
    model = OperatorStepModel(table, dims).set_overheads(overheads)
    kw = dict(request_overhead_s=request_overhead_s, max_num_seqs=max_num_seqs)
    memo: dict[tuple, RunTime] = {}
    times = []
    for r in runs:
        key = (r.concurrency, r.num_requests, r.warmup_requests, r.input_tokens, r.output_tokens)
        if key not in memo:
            n = r.num_requests
            measured = phase_seconds(model, r, n, **kw)
            if run_cap_s is not None and measured > run_cap_s:
                n = max(min(r.num_requests, min_requests(r.concurrency)), math.ceil(r.num_requests * run_cap_s / measured))
                measured = phase_seconds(model, r, n, **kw)
            total = RUN_FIXED_S + phase_seconds(model, r, r.warmup_requests, **kw) + measured
            memo[key] = RunTime(r.label, total, n, measured, r.num_requests)
        times.append(replace(memo[key], label=r.label))
    return ModelSweepTime(dims=dims, runs=tuple(times), server_start_s=server_start_s)
