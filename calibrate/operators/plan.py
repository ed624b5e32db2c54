"""Which ladder sizes can answer, predicted from the device's operators before any of them is served.

A ladder identifies the size-dependent terms only where they show: a size whose decode step is one
or two scheduler ticks, or mostly the engine's fixed cost, says nothing about how the step grows
with N. Issue 17 asks of every size: a batch-1 decode step of at least `min_ticks` ticks, and its
operators (the work that grows with N) at least `min_share` of that step. Both are predicted here
from the operator table (calibrate.operators.stepmodel) with the engine's overheads fitted on an
earlier ladder of the same device (the profile's operator check), so the answer is known before
any size is built.

`scan` walks the shape family (core.dims.real_dims_for_params) up in N and returns the first size
that meets both, and what a ladder spanning `span`x from it would weigh (INT8 weights ~ N bytes):
on a small CPU host the smallest such size can lie far above what the host can hold or sweep in
the main command's time, and this says so with the numbers.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from calibrate.operators.interpolate import OperatorGridError, OperatorTable
from calibrate.operators.stepmodel import OperatorStepModel, Overheads
from core.dims import ModelDims, params_of, real_dims_for_params
from core.schema.perfmodel import AnsweringSizes, SizeCheck

# The Linux scheduler tick of the 2-core VMs seen (CONFIG_HZ=250): small sizes' steps come in whole
# ticks (measured: 2.6M and 14.7M both step at ~8 ms on the AVX2 EPYC, docs/measurements.md).
TICK_S = 4e-3
MIN_TICKS = 5
MIN_SHARE = 0.5
DECODE_CONTEXT = 64  # tokens cached per sequence at the predicted step (the ladder's decode runs: 8 + 32 .. 70 + 215)


@dataclass(frozen=True)
class PredictedSize:
    """One size's predicted batch-1 decode step and whether it meets the two criteria."""

    dims: ModelDims
    params_matmul: int
    step_s: float  # predicted: composed operators + the engine's overheads
    operator_share: float  # the operators' share of that step (the N-dependent work)
    ticks: float
    meets_ticks: bool
    meets_share: bool

    @property
    def ok(self) -> bool:
        return self.meets_ticks and self.meets_share

    def line(self) -> str:
        mark = "meets both" if self.ok else "misses " + " and ".join(
            w for w, ok in ((f"{MIN_TICKS} ticks", self.meets_ticks), (f"{MIN_SHARE:.0%} N-dependent", self.meets_share))
            if not ok)
        return (f"{self.params_matmul / 1e6:9.1f}M  L={self.dims.layers:<3d} d={self.dims.hidden:<5d} "
                f"step {self.step_s * 1e3:7.2f} ms = {self.ticks:5.1f} ticks, operators {self.operator_share:4.0%}: {mark}")


def check_size(table: OperatorTable, dims: ModelDims, overheads: Overheads, *, tick_s: float = TICK_S,
               min_ticks: float = MIN_TICKS, min_share: float = MIN_SHARE) -> PredictedSize:
    """The predicted batch-1 decode step of `dims` and the two criteria (OperatorGridError outside the grid)."""
    model = OperatorStepModel(table, dims).set_overheads(overheads)
    step = model(1.0, float(DECODE_CONTEXT), 0.0, 0.0)
    share = model.composed_s(1.0, float(DECODE_CONTEXT), 0.0, 0.0) / step
    return PredictedSize(dims, params_of(dims), step, share, step / tick_s, step >= min_ticks * tick_s, share >= min_share)


@dataclass(frozen=True)
class Scan:
    """The sizes looked at (smallest first), the first that meets both criteria (None: none in the
    grid does), and the top of a `span`x ladder from it with its INT8 weight bytes."""

    checked: tuple[PredictedSize, ...]
    first_ok: PredictedSize | None
    span: float
    outside_grid: tuple[str, ...]  # sizes the operator table does not cover, with why
    tick_s: float = TICK_S
    min_ticks: float = MIN_TICKS
    min_share: float = MIN_SHARE

    @property
    def top_params(self) -> float | None:
        return None if self.first_ok is None else self.first_ok.params_matmul * self.span

    def lines(self) -> list[str]:
        out = [c.line() for c in self.checked]
        out += [f"   (not predicted: {w})" for w in self.outside_grid]
        if self.first_ok is None:
            out.append(f"no size of the grid meets both criteria (>= {self.min_ticks:g} ticks of {self.tick_s * 1e3:g} "
                       f"ms, >= {self.min_share:.0%} N-dependent)")
        else:
            top = self.top_params
            out.append(f"smallest size meeting both: {self.first_ok.params_matmul / 1e6:.0f}M; a {self.span:g}x ladder "
                       f"reaches {top / 1e9:.1f}B matmul parameters, ~{top / 2**30:.1f} GiB of INT8 weights")
        return out


def scan(table: OperatorTable, params: Iterable[float], overheads: Overheads, *, span: float = 100.0,
         vocab_size: int | None = None, tick_s: float = TICK_S, min_ticks: float = MIN_TICKS,
         min_share: float = MIN_SHARE) -> Scan:
    """Check the family's real shape at each N of `params` (ascending); see `Scan`."""
    checked, outside = [], []
    first = None
    for n in sorted(params):
        dims = real_dims_for_params(n, vocab_size=vocab_size)
        try:
            c = check_size(table, dims, overheads, tick_s=tick_s, min_ticks=min_ticks, min_share=min_share)
        except OperatorGridError as exc:
            outside.append(f"{n:.3g}: {exc}")
            continue
        checked.append(c)
        if first is None and c.ok:
            first = c
    return Scan(tuple(checked), first, span, tuple(outside), tick_s, min_ticks, min_share)


def log_spaced(lo: float, hi: float, per_decade: int = 4) -> list[float]:
    """N values from `lo` to `hi`, `per_decade` per factor of ten."""
    if not (0 < lo < hi and math.isfinite(hi)):
        raise ValueError(f"need 0 < lo < hi, got lo={lo!r}, hi={hi!r}")
    k = int(math.ceil(per_decade * math.log10(hi / lo)))
    return [lo * (hi / lo) ** (i / k) for i in range(k + 1)]


def to_records(sizes: Sequence[tuple[str, PredictedSize]], found: Scan) -> tuple[list[SizeCheck], AnsweringSizes]:
    """(core.schema.perfmodel.SizeCheck per named size, AnsweringSizes of the scan) for a profile."""
    checks = [SizeCheck(model=name, params_matmul=c.params_matmul, layers=c.dims.layers, hidden=c.dims.hidden,
                        step_s=c.step_s, operator_share=c.operator_share, ticks=c.ticks, meets_ticks=c.meets_ticks,
                        meets_share=c.meets_share) for name, c in sizes]
    top = found.top_params
    answering = AnsweringSizes(
        tick_s=found.tick_s, min_ticks=found.min_ticks, min_share=found.min_share,
        smallest_params=None if found.first_ok is None else float(found.first_ok.params_matmul), span=found.span,
        top_params=top, top_weight_bytes=top, checked_params=[float(c.params_matmul) for c in found.checked])
    return checks, answering


def median_overheads(fits: Sequence[Overheads]) -> Overheads:
    """The middle of each overhead over fits (e.g. those made with each ladder size left out)."""
    if not fits:
        raise ValueError("no fitted overheads")
    return Overheads(*(float(np.median([getattr(f, k) for f in fits])) for k in Overheads._fields))
