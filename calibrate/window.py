"""The token and device-time totals of one run, over its steady-state window.

A closed-loop run at concurrency C holds C requests in flight only until its last request is sent;
before its first completion every prompt is queued at once, after the last send the loop drains.
The totals are taken over the window bench computes for run.json (`bench.metrics.steady_window`,
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
prompt (see calibrate.tokencost).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bench.metrics import WindowTotals, steady_window
from calibrate.runs import LoadedRun, RequestArrays

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
    """bench.metrics.steady_window of a run's ok requests."""
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
