"""Adaptive stopping: extend a sweep point with more replicates until its interval is narrow enough.

    python -m bench sweep --config bench/data/sweep_cpu.toml --until-width 0.05 [--max-repeats 8] [--max-extend-s 600]

After the configured replicates, every closed-loop point whose 95 % confidence interval of the mean
device-seconds per request (over its replicates; the run's completion window, as calibrate prices
it) is wider than +- `until_width` of the mean gets one more replicate, in rounds, until every point
is narrow enough, has `max_repeats` runs, or `max_extend_s` seconds of extension have passed. The
half-width is t(0.975, m - 1) s / sqrt(m) over the m complete replicates (a point with one run has
none: it gets a second). guidellm and AIPerf stop a benchmark on a similar convergence rule; this
one works on whole runs, because runs, not requests, are what vary from one measurement to the next
on a shared machine (docs/calibrate-profile.md). Open-loop (rate) points are not extended.

Pure: `PointState`, `half_width`, `plan` decide; bench.run.sweep runs what they ask for.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from core.schema.run import RunRecord

if TYPE_CHECKING:
    from bench.config import RunSpec


@dataclass(frozen=True)
class StopRule:
    until_width: float  # target relative half-width of the 95 % interval, e.g. 0.05
    max_repeats: int = 8  # runs of one point at most (the configured ones included)
    max_extend_s: float = 600.0  # seconds of extension at most

    def __post_init__(self):
        if not 0 < self.until_width < 1:
            raise ValueError(f"until_width={self.until_width!r}: must be in (0, 1), a fraction of the mean")
        if self.max_repeats < 2:
            raise ValueError(f"max_repeats={self.max_repeats!r}: must be >= 2")
        if not self.max_extend_s > 0:
            raise ValueError(f"max_extend_s={self.max_extend_s!r}: must be > 0 seconds")


def device_s_per_request(rec: RunRecord) -> float | None:
    """Device-seconds per request of a complete closed-loop run: over its completion window when it
    has one (core.metrics.steady_window), else over the whole run; None for other runs."""
    s = rec.summary
    if rec.status != "complete" or s is None or not s.valid or rec.config.mode != "concurrency":
        return None
    devices = rec.derived.device_count if rec.derived is not None else 1
    if s.window is not None and s.window.requests > 0:
        return s.window.duration_s * devices / s.window.requests
    return s.duration_s * devices / s.num_ok if s.num_ok else None


def half_width(values: Sequence[float]) -> float | None:
    """Relative half-width of the 95 % t interval of the mean; None for fewer than 2 values."""
    from scipy.stats import t as student_t

    m = len(values)
    if m < 2:
        return None
    mean = sum(values) / m
    if mean <= 0:
        return None
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (m - 1))
    return float(student_t.ppf(0.975, m - 1) * sd / math.sqrt(m) / mean)


@dataclass
class PointState:
    """One sweep point (a spec without its replicate index) and what its runs gave."""

    spec: "RunSpec"  # of replicate 0
    values: list[float] = field(default_factory=list)  # device-seconds per request of complete runs
    attempts: int = 0  # runs tried (complete or not)
    next_replicate: int = 0

    @property
    def width(self) -> float | None:
        return half_width(self.values)

    def status(self, rule: StopRule) -> str:
        w = self.width
        if w is not None and w <= rule.until_width:
            return "met"
        if self.attempts >= rule.max_repeats:
            return "max repeats"
        return "open"


def points_of(specs: Sequence, records: Sequence[RunRecord | None]) -> dict[str, PointState]:
    """Closed-loop points of the specs run so far (spec i gave records[i], None when not run)."""
    out: dict[str, PointState] = {}
    for spec, rec in zip(specs, records):
        if spec.mode != "concurrency":
            continue
        key = dataclasses.replace(spec, replicate=0).key()
        st = out.setdefault(key, PointState(dataclasses.replace(spec, replicate=0)))
        st.attempts += 1
        st.next_replicate = max(st.next_replicate, spec.replicate + 1)
        v = device_s_per_request(rec) if rec is not None else None
        if v is not None:
            st.values.append(v)
    return out


def plan(points: dict[str, PointState], rule: StopRule) -> list:
    """The specs of the next round: one more replicate of every open point."""
    return [dataclasses.replace(p.spec, replicate=p.next_replicate) for p in points.values()
            if p.status(rule) == "open"]


def report_lines(points: dict[str, PointState], rule: StopRule, *, time_up: bool) -> list[str]:
    """One line per point: runs, the width reached, and why it stopped."""
    lines = []
    for p in points.values():
        w = p.width
        st = p.status(rule)
        why = "time limit" if st == "open" and time_up else st
        shown = "n/a (one run)" if w is None else f"+-{100 * w:.1f} %"
        lines.append(f"{p.spec.label()}: {len(p.values)} complete run(s) of {p.attempts}, 95 % interval of the "
                     f"mean {shown} (target +-{100 * rule.until_width:.1f} %): {why}")
    return lines
