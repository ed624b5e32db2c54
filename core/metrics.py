"""Per-request latency metrics and the run summary, defined once (pure: no I/O).

Every time below is on the client's monotonic clock (`time.perf_counter`), in seconds relative to
the run's start, as stored in `core.schema.run.RequestRecord`.

    TTFT  = first_token_s - send_s
            time to first token: from the moment the request was actually written to the socket
            (not when it was queued by the client) to the first streamed chunk carrying output.
    E2E   = end_s - send_s
            end-to-end latency; `end_s` is when the response was complete (the `[DONE]` line).
    TPOT  = (E2E - TTFT) / (output_tokens - 1)
            time per output token after the first, one number per request. `output_tokens` is the
            server's `usage.completion_tokens`, never a count of chunks. Undefined (None) for a
            request with fewer than 2 output tokens (e.g. a prefill run with max_tokens=1).
            This is vLLM bench's TPOT and AIPerf's "ITL" (the names differ between tools).
    ITL   = the gaps between consecutive streamed chunks carrying output, chunk_times_s[i+1] - chunk_times_s[i].
            A list per request, pooled over all requests for percentiles (as vLLM bench does).
            It is a *per-chunk* gap, not a per-token one: when the server packs k tokens into one
            chunk the gap covers k tokens, and two chunks read from the socket in the same read get
            a gap of 0. So mean ITL equals TPOT only when every chunk carries exactly one token;
            use TPOT for cost/throughput arguments and ITL for stream smoothness.

A request is *ok* when it has no error and carries a first-token time, an end time and the server's
token counts; everything else counts as failed and is excluded from the latencies and throughputs.
Warm-up records (`warmup=True`) are excluded from everything.

Summary over the measured (non warm-up) records:
    duration_s        = max(end_s) - min(send_s) over measured records (a failed record without an
                        end counts with its send time), i.e. first measured send to last measured end
    *_tokens_per_s    = token totals of ok requests / duration_s
    goodput           = ok requests with TTFT <= slo_ttft_s and TPOT <= slo_tpot_s, per second of
                        duration (a request without a TPOT, i.e. one output token, passes the TPOT limit);
                        None when no SLO is given. (Goodput as in DistServe, Zhong et al. 2024, and vLLM bench.)
    valid             = failure_fraction <= max_failure_fraction (default 1 %) and at least one ok request
    output_length_mismatch = ok requests whose output_tokens != requested_output_tokens; above
                        MAX_OUTPUT_MISMATCH_FRACTION of them the run is flagged (`flags`)
Percentiles use linear interpolation between order statistics (numpy's default, as vLLM bench).

Steady-state window (`steady_window`, `Summary.window`; calibrate prices runs on the same one).
A closed-loop run at concurrency C sends request C + k when request k completes; before the first
wave completes every prompt is queued at once, after the last send the loop drains. Device time is
billed over W = (W0, W1] with both edges at *completion instants*:
    W0 = the C-th measured completion (the first wave done),
    W1 = the (n - C)-th completion (the one that released the last send)
At both edges the C requests in flight are the ones sent at the previous C completions, so in a
steady state the work in progress at W0 and at W1 has the same distribution and cancels; in a
step-based engine an edge also closes a step. Only work *known to be done* inside W is counted:
    input tokens  = prompts whose first token (the end of their prefill) arrived in W
    decode tokens = output tokens after each request's first whose chunk arrived in W (a chunk of k
                    tokens counts k; a request streamed in fewer chunks than tokens spreads its decode
                    tokens evenly over its chunks after the first; a request with no chunk after its
                    first spreads them linearly from first token to end)
    requests      = requests that completed in W (n - 2C of them; for $/request and J/request)
Crediting the requests in flight at an edge by the elapsed share of their send-to-first-token
interval (the estimator before this one) over-credits prefill by the queueing share of that
interval: +20 % at concurrency 16 on the CPU sweep (docs/calibrate-profile.md). The window is used
when C is known and n >= 3C (at least one full wave inside); otherwise None and callers use the
whole run.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from core.schema.run import Percentiles, RequestRecord, Summary, Window

MAX_FAILURE_FRACTION = 0.01
# Above this share of ok requests with an output length other than the one asked for, the run is
# flagged: its $/request is not that of the mix it claims (ignore_eos makes a mismatch rare).
MAX_OUTPUT_MISMATCH_FRACTION = 0.01


def is_ok(rec: RequestRecord) -> bool:
    """True when the request succeeded and carries every field the metrics need."""
    return (
        rec.error is None
        and rec.first_token_s is not None
        and rec.end_s is not None
        and rec.output_tokens is not None
        and rec.input_tokens is not None
    )


def ttft_s(rec: RequestRecord) -> float | None:
    """Time to first token: first_token_s - send_s; None for a failed request."""
    if not is_ok(rec):
        return None
    return rec.first_token_s - rec.send_s


def e2e_s(rec: RequestRecord) -> float | None:
    """End-to-end latency: end_s - send_s; None for a failed request."""
    if not is_ok(rec):
        return None
    return rec.end_s - rec.send_s


def tpot_s(rec: RequestRecord) -> float | None:
    """Time per output token after the first: (E2E - TTFT) / (output_tokens - 1).

    output_tokens is the server's usage count (a chunk may carry several tokens). None for a failed
    request and for a request with fewer than 2 output tokens, where the ratio is undefined.
    """
    if not is_ok(rec) or rec.output_tokens < 2:
        return None
    return (rec.end_s - rec.first_token_s) / (rec.output_tokens - 1)


def itl_s(rec: RequestRecord) -> list[float]:
    """Gaps between consecutive streamed chunks carrying output (per chunk, not per token)."""
    if not is_ok(rec):
        return []
    t = rec.chunk_times_s
    return [b - a for a, b in zip(t, t[1:])]


def percentiles(values: Sequence[float] | np.ndarray) -> Percentiles:
    """Mean, p50, p90, p99 (linear interpolation); all None for no values."""
    arr = np.asarray(values, dtype=float)
    if arr.size == 0:
        return Percentiles(mean=None, p50=None, p90=None, p99=None)
    p50, p90, p99 = np.percentile(arr, [50, 90, 99])
    return Percentiles(mean=float(arr.mean()), p50=float(p50), p90=float(p90), p99=float(p99))


def meets_slo(rec: RequestRecord, *, slo_ttft_s: float | None, slo_tpot_s: float | None) -> bool:
    """True for an ok request within both limits (a missing limit always passes; so does a missing TPOT)."""
    if not is_ok(rec):
        return False
    if slo_ttft_s is not None and ttft_s(rec) > slo_ttft_s:
        return False
    tpot = tpot_s(rec)
    if slo_tpot_s is not None and tpot is not None and tpot > slo_tpot_s:
        return False
    return True


def duration_s(records: Iterable[RequestRecord]) -> float:
    """First measured send to last measured end (a record without an end counts with its send)."""
    measured = [r for r in records if not r.warmup]
    if not measured:
        return 0.0
    start = min(r.send_s for r in measured)
    end = max(r.end_s if r.end_s is not None else r.send_s for r in measured)
    return max(end - start, 0.0)


@dataclass(frozen=True)
class WindowTotals:
    """Work known done inside the steady-state window (module docstring)."""

    start_s: float
    end_s: float
    input_tokens: float
    decode_tokens: float
    requests: int  # completed inside the window

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s


def decode_tokens_in(lo: float, hi: float, first_s: float, end_s: float, output_tokens: float,
                     chunk_times_s: Sequence[float] | np.ndarray | None) -> float:
    """Decode tokens (output tokens after the first) of one request that arrived in (lo, hi]."""
    dec = max(float(output_tokens) - 1.0, 0.0)
    if dec == 0.0:
        return 0.0
    t = np.asarray(chunk_times_s if chunk_times_s is not None else (), dtype=float)
    if len(t) >= 2:
        rest = t[1:]
        return dec * float(((rest > lo) & (rest <= hi)).sum()) / len(rest)
    if not end_s > first_s:  # all at one instant
        return dec if lo < end_s <= hi else 0.0
    done = np.clip((np.array([lo, hi]) - first_s) / (end_s - first_s), 0.0, 1.0)
    return dec * float(done[1] - done[0])


def steady_window(send_s: np.ndarray, first_token_s: np.ndarray, end_s: np.ndarray, input_tokens: np.ndarray,
                  output_tokens: np.ndarray, chunk_times_s: Sequence[Sequence[float]] | None,
                  concurrency: int | None) -> WindowTotals | None:
    """Totals over the steady-state window of ok measured requests (module docstring), or None
    when the run has no such window (open loop, fewer than 3C requests)."""
    send_s, first_token_s, end_s = (np.asarray(x, dtype=float) for x in (send_s, first_token_s, end_s))
    n = len(send_s)
    if concurrency is None or concurrency < 1 or n < 3 * concurrency:
        return None
    ends = np.sort(end_s)
    lo, hi = float(ends[concurrency - 1]), float(ends[n - concurrency - 1])
    done = (end_s > lo) & (end_s <= hi)
    if not hi > lo or int(done.sum()) < 1:
        return None
    prefilled = (first_token_s > lo) & (first_token_s <= hi)
    inp = float(np.asarray(input_tokens, dtype=float)[prefilled].sum())
    out = np.asarray(output_tokens, dtype=float)
    chunks = chunk_times_s if chunk_times_s is not None else [None] * n
    dec = sum(decode_tokens_in(lo, hi, first_token_s[i], end_s[i], out[i], chunks[i]) for i in range(n))
    return WindowTotals(start_s=lo, end_s=hi, input_tokens=inp, decode_tokens=float(dec), requests=int(done.sum()))


def records_window(records: Sequence[RequestRecord], concurrency: int | None) -> WindowTotals | None:
    """`steady_window` of the ok measured records."""
    ok = [r for r in records if not r.warmup and is_ok(r)]
    if not ok:
        return None
    return steady_window(np.array([r.send_s for r in ok]), np.array([r.first_token_s for r in ok]),
                         np.array([r.end_s for r in ok]), np.array([r.input_tokens for r in ok]),
                         np.array([r.output_tokens for r in ok]), [r.chunk_times_s for r in ok], concurrency)


def _per_s(count: float, dur_s: float) -> float:
    return count / dur_s if dur_s > 0 else 0.0


def summarize(
    records: Sequence[RequestRecord],
    *,
    slo_ttft_s: float | None = None,
    slo_tpot_s: float | None = None,
    max_failure_fraction: float = MAX_FAILURE_FRACTION,
    concurrency: int | None = None,
) -> Summary:
    """Summary of the measured (non warm-up) records; see the module docstring for every formula.

    Works on a partial list too (a run that died): failures are counted, the run is then invalid.
    """
    for name, value in (("slo_ttft_s", slo_ttft_s), ("slo_tpot_s", slo_tpot_s)):
        if value is not None and not value > 0:
            raise ValueError(f"{name} must be a positive number of seconds or None, got {value!r}")
    if not 0 <= max_failure_fraction < 1:
        raise ValueError(f"max_failure_fraction must be in [0, 1), got {max_failure_fraction!r}")

    measured = [r for r in records if not r.warmup]
    ok = [r for r in measured if is_ok(r)]
    num_failed = len(measured) - len(ok)
    failure_fraction = num_failed / len(measured) if measured else 1.0
    dur = duration_s(measured)

    input_total = sum(r.input_tokens for r in ok)
    output_total = sum(r.output_tokens for r in ok)
    tpots = [t for t in (tpot_s(r) for r in ok) if t is not None]
    itls = [gap for r in ok for gap in itl_s(r)]

    goodput = None
    if slo_ttft_s is not None or slo_tpot_s is not None:
        good = sum(meets_slo(r, slo_ttft_s=slo_ttft_s, slo_tpot_s=slo_tpot_s) for r in ok)
        goodput = _per_s(good, dur)

    win = records_window(ok, concurrency)
    mismatch = sum(r.output_tokens != r.requested_output_tokens for r in ok)
    flags = []
    if ok and mismatch / len(ok) > MAX_OUTPUT_MISMATCH_FRACTION:
        flags.append(f"output length differs from the one asked in {mismatch} of {len(ok)} ok requests "
                     f"(> {MAX_OUTPUT_MISMATCH_FRACTION:.0%})")
    return Summary(
        num_ok=len(ok),
        num_failed=num_failed,
        failure_fraction=failure_fraction,
        valid=bool(ok) and failure_fraction <= max_failure_fraction,
        duration_s=dur,
        input_tokens_total=input_total,
        output_tokens_total=output_total,
        request_throughput_per_s=_per_s(len(ok), dur),
        input_tokens_per_s=_per_s(input_total, dur),
        output_tokens_per_s=_per_s(output_total, dur),
        ttft_s=percentiles([ttft_s(r) for r in ok]),
        tpot_s=percentiles(tpots),
        itl_s=percentiles(itls),
        e2e_s=percentiles([e2e_s(r) for r in ok]),
        goodput_requests_per_s=goodput,
        window=None if win is None else Window(start_s=win.start_s, end_s=win.end_s, duration_s=win.duration_s,
                                               input_tokens=win.input_tokens, decode_tokens=win.decode_tokens,
                                               requests=win.requests),
        output_length_mismatch=mismatch,
        flags=flags,
    )
