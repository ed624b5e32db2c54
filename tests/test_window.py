"""The steady-state window (core.metrics.steady_window, calibrate.runs.window) on synthetic traces of a
step-based engine with known per-token costs and heavy queueing (tests/window_synthetic.py), and
the estimator it replaced as the failing case."""

from __future__ import annotations

import numpy as np
import pytest
from window_synthetic import closed_loop_trace, interpolated_totals

from bench.run.derive import basis_of, window_energy_j
from calibrate.runs.window import request_window
from core.metrics import decode_tokens_in, steady_window, summarize
from core.schema.run import RequestRecord

MIXES = {"prefill": (512, 1), "decode": (8, 64), "mixed": (70, 215)}
CONCURRENCIES = (1, 4, 16, 64)


def work_ratio(trace, seconds, n_in, n_dec):
    """True device time of the counted tokens over the window's length: 1 when unbiased."""
    return (trace.a * n_in + trace.b * n_dec) / seconds


@pytest.mark.parametrize("kind", sorted(MIXES))
@pytest.mark.parametrize("jitter", [0.0, 0.3])
def test_window_within_2_percent_at_every_concurrency(kind, jitter):
    n_in, n_out = MIXES[kind]
    for c in CONCURRENCIES:
        tr = closed_loop_trace(concurrency=c, n=max(8 * c, 16), n_in=n_in, n_out=n_out, jitter=jitter, seed=c)
        w = request_window(tr.req, c)
        assert w is not None and w.requests == len(tr.req.send_s) - 2 * c
        assert work_ratio(tr, w.duration_s, w.input_tokens, w.decode_tokens) == pytest.approx(1.0, abs=0.02), (kind, c)


@pytest.mark.parametrize("c", [16, 64])
def test_old_interpolating_estimator_over_credits_queued_prefill(c):
    """The motivating failure: under a concurrency cap the send-to-first-token interval is mostly
    queueing, so crediting its elapsed share over-counts prefill work (> 2 % here)."""
    tr = closed_loop_trace(concurrency=c, n=8 * c, n_in=512, n_out=1)
    seconds, n_in, n_dec = interpolated_totals(tr.req, c)
    assert work_ratio(tr, seconds, n_in, n_dec) > 1.02
    w = request_window(tr.req, c)
    assert abs(work_ratio(tr, w.duration_s, w.input_tokens, w.decode_tokens) - 1) < 0.005


def test_no_window_below_three_waves():
    tr = closed_loop_trace(concurrency=8, n=23, n_in=70, n_out=20)
    assert request_window(tr.req, 8) is None
    assert request_window(tr.req, None) is None


def test_window_edges_and_counts_by_hand():
    # C = 1, four requests back to back of 1 s each: prefill ends 0.5 s in, one decode chunk at the end
    send = np.array([0.0, 1.0, 2.0, 3.0])
    first, end = send + 0.5, send + 1.0
    chunks = [[f, e] for f, e in zip(first, end)]
    w = steady_window(send, first, end, np.full(4, 10.0), np.full(4, 3.0), chunks, 1)
    # W = (1st completion, 3rd completion] = (1, 3]: requests 1 and 2 prefilled, decoded and completed in it
    assert (w.start_s, w.end_s, w.requests) == (1.0, 3.0, 2)
    assert w.input_tokens == 20.0 and w.decode_tokens == 4.0


def test_decode_tokens_by_chunk_and_linear_fallback():
    # 5 output tokens in 3 chunks: 4 decode tokens over the 2 chunks after the first, 2 each
    assert decode_tokens_in(0.0, 1.5, 0.5, 2.0, 5, [0.5, 1.0, 2.0]) == 2.0
    # no chunk after the first: spread linearly from first token (0) to end (2)
    assert decode_tokens_in(0.0, 1.0, 0.0, 2.0, 5, [0.0]) == pytest.approx(2.0)
    assert decode_tokens_in(0.0, 1.0, 0.0, 2.0, 1, [0.0]) == 0.0


def rec(i, send, first, end, out, asked):
    return RequestRecord(index=i, send_s=send, first_token_s=first, end_s=end, chunk_times_s=[first, end],
                         input_tokens=10, output_tokens=out, requested_input_tokens=10,
                         requested_output_tokens=asked)


def test_summary_carries_the_window_and_flags_wrong_output_lengths():
    recs = [rec(i, float(i), i + 0.5, i + 1.0, 2 if i % 3 else 1, 2) for i in range(6)]
    s = summarize(recs, concurrency=1)
    assert s.window is not None and s.window.requests == 4 and s.window.duration_s == pytest.approx(4.0)
    assert s.output_length_mismatch == 2
    assert s.flags and "2 of 6" in s.flags[0]
    assert basis_of(s).name == "completion window" and basis_of(s).requests == 4
    whole = summarize(recs)  # no concurrency: no window
    assert whole.window is None and basis_of(whole).name == "whole run"


def test_energy_is_the_counter_delta_over_the_window_only():
    # two devices, counters at 0.5 s: 100 W on device 0, 200 W on device 1, from t = 10 s (a warm-up before)
    rows = [{"monotonic_s": 10 + 0.5 * k, "device": d, "energy_counter_j": 1000.0 + (100 + 100 * d) * 0.5 * k}
            for k in range(41) for d in (0, 1)]
    assert window_energy_j(rows, 12.25, 27.75) == pytest.approx(300.0 * 15.5)
    assert window_energy_j(rows, 9.0, 20.0) is None  # the samples do not span the window
    assert window_energy_j([], 12.0, 13.0) is None
