"""Per-request latency metrics and the run summary, defined once (pure: no I/O).

Every time below is on the client's monotonic clock (`time.perf_counter`), in seconds relative to
the run's start, as stored in `bench.schema.RequestRecord`.

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
Percentiles use linear interpolation between order statistics (numpy's default, as vLLM bench).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from bench.schema import Percentiles, RequestRecord, Summary

MAX_FAILURE_FRACTION = 0.01


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


def _per_s(count: float, dur_s: float) -> float:
    return count / dur_s if dur_s > 0 else 0.0


def summarize(
    records: Sequence[RequestRecord],
    *,
    slo_ttft_s: float | None = None,
    slo_tpot_s: float | None = None,
    max_failure_fraction: float = MAX_FAILURE_FRACTION,
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
    )
