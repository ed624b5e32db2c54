"""The token and device-time totals of one run, over its steady-state window.

A closed-loop run at concurrency C holds C requests in flight only until its last request is sent;
before its first completion every prompt is queued at once, after the last send the loop drains.
The totals are taken over the window bench computes for run.json (`core.metrics.steady_window`,
`summary.window`; the same definitions, so run.json and the profile price a run alike):

    W = (C-th completion, (n - C)-th completion]   (first wave done .. the completion releasing the last send)
    device_seconds = |W| * devices
    input tokens   = prompts whose first token (end of prefill) arrived in W
    decode tokens  = output tokens after each request's first whose streamed chunk arrived in W
    requests       = requests completed in W

Only work known to be done inside W is counted. The estimator this replaces credited each request
in flight at the window's edge with the elapsed share of its send-to-first-token interval; under a
concurrency cap that interval is mostly queueing, so prefill was over-credited (+20 % at C = 16 on
the CPU sweep; tests/window_synthetic.py keeps it as the failing case). When a run has no window
(open loop, fewer than 3C requests) the whole run is used
(`duration_s`, token totals); the returned basis says which.

Decode tokens are the output tokens after each request's first: the first output token is sampled
from the logits of the prefill pass (vLLM does no decode step for it), so it is billed with the
prompt (see calibrate.profile.tokencost).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from calibrate.runs.load import LoadedRun, RequestArrays
from core.metrics import WindowTotals, steady_window

WINDOW = "completion window"
WHOLE = "whole run"


def decode_tokens(req: RequestArrays) -> np.ndarray:
    """Output tokens after the first, per request: the first comes out of the prefill pass."""
    return np.maximum(req.output_tokens - 1.0, 0.0)


def decode_total(run: LoadedRun) -> int:
    """Decode tokens of a run: output tokens minus one per ok request."""
    s = run.record.summary
    return max(s.output_tokens_total - s.num_ok, 0)


@dataclass(frozen=True)
class Totals:
    """What a run is priced on: device-seconds, tokens and requests over its basis."""

    device_s: float
    input_tokens: float
    decode_tokens: float
    requests: int
    basis: str  # WINDOW | WHOLE
    start_s: float | None = None  # the window's edges (client clock), None for the whole run
    end_s: float | None = None


def request_window(req: RequestArrays | None, concurrency: int | None) -> WindowTotals | None:
    """core.metrics.steady_window of a run's ok requests."""
    if req is None or concurrency is None:
        return None
    return steady_window(req.send_s, req.first_token_s, req.end_s, req.input_tokens, req.output_tokens,
                         req.chunk_times_s, concurrency)


def totals(run: LoadedRun) -> Totals:
    """Totals over the run's steady-state window (from its requests, else run.json's summary.window),
    else over the whole run (module docstring)."""
    s = run.record.summary
    devices = run.record.environment.hardware.device_count
    win = request_window(run.requests, run.record.config.concurrency)
    if win is None and s.window is not None:
        w = s.window
        win = WindowTotals(w.start_s, w.end_s, w.input_tokens, w.decode_tokens, w.requests)
    if win is not None and win.duration_s > 0 and win.input_tokens + win.decode_tokens > 0:
        return Totals(win.duration_s * devices, win.input_tokens, win.decode_tokens, win.requests, WINDOW,
                      win.start_s, win.end_s)
    return Totals(s.duration_s * devices, float(s.input_tokens_total), float(decode_total(run)), s.num_ok, WHOLE)


def run_totals(run: LoadedRun) -> tuple[float, float, float, str]:
    """(device_seconds, input_tokens, decode_tokens, basis) of one run (`totals`)."""
    t = totals(run)
    return t.device_s, t.input_tokens, t.decode_tokens, t.basis


# --------------------------------------------------------------------------- minimum run length


@dataclass(frozen=True)
class MinRunLength:
    """The least a run's steady-state window must hold for the run to enter a fit."""

    duration_s: float
    requests: int  # completed inside the window
    waves: float  # window requests / concurrency: full turnovers of the batch

    def describe(self) -> str:
        return f">= {self.duration_s:g} s, >= {self.requests} requests and >= {self.waves:g} waves of the batch"


# GPU: MLPerf LoadGen's server scenario refuses runs under a minimum duration and query count (600 s
# and 270k queries for a submission); a profile needs less, but a window of 60 s and several hundred
# requests keeps a steady state's edge effects and clock/boost transients (GPU clocks settle within
# seconds) at the per-cent level. CPU (vLLM's CPU backend, tiny models): steps last milliseconds, so
# what matters is that the batch turned over several times inside the window: 3 waves (n >= 5C) and
# 1 s (~250 scheduler quanta of 4 ms). Both are overridable (`calibrate profile --min-run-*`).
MIN_RUN_GPU = MinRunLength(duration_s=60.0, requests=300, waves=3.0)
MIN_RUN_CPU = MinRunLength(duration_s=1.0, requests=0, waves=3.0)


def default_min_run(kind: str) -> MinRunLength:
    """MIN_RUN_CPU for a CPU, MIN_RUN_GPU otherwise (GPUs and remote endpoints)."""
    return MIN_RUN_CPU if kind == "cpu" else MIN_RUN_GPU


def too_short(run: LoadedRun, minimum: MinRunLength) -> str | None:
    """Why the run is too short for a fit (one line naming the measured length and the minimum), or
    None. All three minimums 0: no check (a run without a window is then priced on the whole run)."""
    if minimum.duration_s <= 0 and minimum.requests <= 0 and minimum.waves <= 0:
        return None
    t = totals(run)
    c = run.record.config.concurrency or 1
    if t.basis != WINDOW:
        n = run.record.summary.num_ok
        return (f"too short: no steady-state window ({n} requests at concurrency {c}; needs >= {3 * c}, and "
                f"{minimum.describe()} inside it)")
    dur = t.device_s / run.record.environment.hardware.device_count
    problems = []
    if dur < minimum.duration_s:
        problems.append(f"window {dur:.3g} s < {minimum.duration_s:g} s")
    if t.requests < minimum.requests:
        problems.append(f"{t.requests} requests in the window < {minimum.requests}")
    if t.requests / c < minimum.waves:
        problems.append(f"{t.requests / c:.3g} waves of the batch (concurrency {c}) < {minimum.waves:g}")
    return "too short: " + ", ".join(problems) if problems else None
