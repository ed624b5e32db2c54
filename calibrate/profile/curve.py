"""The decode curve and the SLO operating point.

Decode MFU vs concurrency is read from decode-only runs: decode tokens per second (steady-state
window, calibrate.runs.window; replicates pooled) * 2N / (peak * devices) at each concurrency. The
operating point is the highest-throughput measured concurrency whose p90 TPOT (over requests) and
p90 TTFT meet the SLO, read from the mixed-workload runs where there are any (there prefill
interrupts decode as in service; decode-only runs with 8-token prompts hide that) and from the
decode curve otherwise; ITL p90 over every streamed gap is reported beside it (stalls a request's
mean TPOT averages away). The per-token costs are taken at that concurrency (or the nearest
measured one below it, calibrate.profile.tokencost.nearest).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from calibrate.runs.load import LoadedRun
from calibrate.runs.window import run_totals
from core.schema.profile import CurvePoint, OperatingPoint, Slo

# TPOT p90 <= 100 ms: 10 tokens/s per stream, faster than people read (~4-5 words/s ~ 5-7 tokens/s),
# the usual interactive-chat target. TTFT p90 <= 2 s: the wait before text appears stays within
# what chat users tolerate (response-time studies put the limit of "flow" at about 1-2 s).
DEFAULT_SLO_TPOT_P90_S = 0.100
DEFAULT_SLO_TTFT_P90_S = 2.0
DEFAULT_SLO_SOURCE = (
    "default: TPOT p90 <= 0.1 s (10 tokens/s per stream, above reading speed of ~5-7 tokens/s); "
    "TTFT p90 <= 2 s (interactive chat response-time limit)"
)


def make_slo(tpot_p90_s: float = DEFAULT_SLO_TPOT_P90_S, ttft_p90_s: float = DEFAULT_SLO_TTFT_P90_S,
        source: str | None = None) -> Slo:
    """The SLO, its source "default: ..." when both limits are the defaults, else "command line"."""
    default = (tpot_p90_s, ttft_p90_s) == (DEFAULT_SLO_TPOT_P90_S, DEFAULT_SLO_TTFT_P90_S)
    return Slo(ttft_p90_s=ttft_p90_s, tpot_p90_s=tpot_p90_s,
               source=source or (DEFAULT_SLO_SOURCE if default else "command line"))


def _pooled_p90(runs: Sequence[LoadedRun], attr: str, summary_attr: str) -> float | None:
    """p90 over the pooled requests of replicate runs; the worst run's p90 when records are absent."""
    if all(r.requests is not None for r in runs):
        values = np.concatenate([getattr(r.requests, attr) for r in runs])
        values = values[np.isfinite(values)]
        return float(np.percentile(values, 90)) if len(values) else None
    p90s = [getattr(r.record.summary, summary_attr).p90 for r in runs]
    p90s = [p for p in p90s if p is not None]
    return max(p90s) if p90s else None


def pooled_itl_p90(runs: Sequence[LoadedRun]) -> float | None:
    """p90 over every gap between streamed chunks of the runs' requests (ITL, core.metrics)."""
    gaps = [np.diff(t) for r in runs if r.requests is not None and r.requests.chunk_times_s
            for t in r.requests.chunk_times_s if len(t) > 1]
    if not gaps:
        return None
    return float(np.percentile(np.concatenate(gaps), 90))


def mixed_points(runs: Sequence[LoadedRun]) -> list[CurvePoint]:
    """Mixed-workload runs by concurrency (replicates pooled): decode tokens/s over the window,
    TPOT p90 over requests, TTFT p90, ITL p90 over chunk gaps. MFU is left None (a mix has no
    single phase)."""
    by_c: dict[int, list[LoadedRun]] = {}
    for r in runs:
        if r.record.config.workload.kind in ("mixed", "distribution"):
            by_c.setdefault(r.record.config.concurrency, []).append(r)
    points = []
    for c in sorted(by_c):
        group = by_c[c]
        totals = [run_totals(r) for r in group]
        dur = sum(t[0] / r.record.environment.hardware.device_count for t, r in zip(totals, group))
        points.append(CurvePoint(
            concurrency=c, output_tokens_per_s=sum(t[2] for t in totals) / dur, achieved_flop_per_s=0.0,
            mfu_output=None, tpot_p90_s=_pooled_p90(group, "tpot_s", "tpot_s"),
            ttft_p90_s=_pooled_p90(group, "ttft_s", "ttft_s"), itl_p90_s=pooled_itl_p90(group),
            run_ids=[r.record.run_id for r in group]))
    return points


def slo_point(decode: Sequence[CurvePoint], mixed: Sequence[CurvePoint], slo: Slo) -> OperatingPoint | None:
    """The operating point from the mixed runs where there are any (prefill and decode interfere
    there, as in service), else from the decode curve (`operating_point`)."""
    op = operating_point(mixed if mixed else decode, slo)
    if op is None:
        return None
    src = mixed if mixed else decode
    p = next(q for q in src if q.concurrency == op.concurrency)
    mfu = next((q.mfu_output for q in decode if q.concurrency == op.concurrency), None) if mixed else op.mfu_output
    return op.model_copy(update={"workload": "mixed" if mixed else "decode", "mfu_output": mfu,
                                 "tpot_p90_s": p.tpot_p90_s, "ttft_p90_s": p.ttft_p90_s, "itl_p90_s": p.itl_p90_s})


def decode_curve(runs: Sequence[LoadedRun], params_matmul: int, peak: float | None, devices: int
                 ) -> list[CurvePoint]:
    """Decode-only runs by concurrency: output tokens/s pooled over replicates, 2N x that, MFU."""
    by_c: dict[int, list[LoadedRun]] = {}
    for r in runs:
        if r.record.config.workload.kind == "decode":
            by_c.setdefault(r.record.config.concurrency, []).append(r)
    points = []
    for c in sorted(by_c):
        group = by_c[c]
        totals = [run_totals(r) for r in group]  # device-seconds, in, out (steady-state window)
        out_tok = sum(t[2] for t in totals)
        dur = sum(t[0] / r.record.environment.hardware.device_count for t, r in zip(totals, group))
        rate = out_tok / dur
        achieved = 2.0 * params_matmul * rate
        mbus = [r.record.derived.mbu_output for r in group if r.record.derived is not None]
        mbu = float(np.mean(mbus)) if mbus and all(m is not None for m in mbus) else None
        points.append(CurvePoint(
            concurrency=c, output_tokens_per_s=rate, achieved_flop_per_s=achieved,
            mfu_output=None if peak is None else achieved / (peak * devices), mbu_output=mbu,
            tpot_p90_s=_pooled_p90(group, "tpot_s", "tpot_s"),
            ttft_p90_s=_pooled_p90(group, "ttft_s", "ttft_s"), itl_p90_s=pooled_itl_p90(group),
            run_ids=[r.record.run_id for r in group]))
    return points


def meets(tpot_p90_s: float | None, ttft_p90_s: float | None, slo: Slo) -> bool:
    """Both p90 limits met; an unknown latency cannot be shown to meet its limit."""
    return (tpot_p90_s is not None and tpot_p90_s <= slo.tpot_p90_s
            and ttft_p90_s is not None and ttft_p90_s <= slo.ttft_p90_s)


def operating_point(curve: Sequence[CurvePoint], slo: Slo) -> OperatingPoint | None:
    """Highest-throughput measured concurrency meeting the SLO; the lowest concurrency (marked
    meets_slo=False) when none does; None without decode runs."""
    if not curve:
        return None
    good = [p for p in curve if meets(p.tpot_p90_s, p.ttft_p90_s, slo)]
    if good:
        best = max(good, key=lambda p: p.output_tokens_per_s)
        return OperatingPoint(concurrency=best.concurrency, output_tokens_per_s=best.output_tokens_per_s,
                              mfu_output=best.mfu_output, meets_slo=True)
    low = min(curve, key=lambda p: p.concurrency)
    return OperatingPoint(concurrency=low.concurrency, output_tokens_per_s=low.output_tokens_per_s,
                          mfu_output=low.mfu_output, meets_slo=False)


def target_concurrency(runs_by_c: dict[int, list[LoadedRun]], op: OperatingPoint | None, slo: Slo) -> int | None:
    """The concurrency to take the per-token costs at: the operating point's."""
    if op is not None:
        return op.concurrency
    # No decode curve: the highest concurrency whose runs all meet the SLO (per-run p90s).
    ok = [c for c, group in runs_by_c.items()
          if all(meets(r.record.summary.tpot_s.p90 if r.record.summary.tpot_s.p90 is not None else 0.0,
                       r.record.summary.ttft_s.p90, slo) for r in group)]
    return max(ok) if ok else (min(runs_by_c) if runs_by_c else None)
