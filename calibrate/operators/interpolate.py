"""Time of an operator at any shape inside its measured grid: pure math on the profile's records.

Each operator's shape is read as nested axes, outermost first:

  gemm               (k, n) by k·n [log]         →  m [linear]
  attention_decode   (heads, kv_heads, head_dim) by heads·head_dim [log]  →  context [linear]  →  batch [linear]
  attention_prefill  (heads, kv_heads, head_dim) by heads·head_dim [log]  →  tokens [log]
  rms_norm           hidden [log]                →  tokens [linear]
  rotary             (heads, kv_heads, head_dim) by (heads + kv_heads)·head_dim [log]  →  tokens [linear]
  silu_and_mul       n [log]                     →  tokens [linear]
  sampler            vocab [log]                 →  batch [linear]
  step_overhead      calls [linear]

The rules, at each axis:
  * exact: a query whose key at this axis was measured uses that group alone, so a grid point
    returns its measured median exactly;
  * otherwise the two measured neighbours that bracket the query's coordinate (and can answer the
    inner axes) are combined: [linear] axes piecewise-linearly in time, [log] axes linearly in
    log time vs log coordinate (a power law between neighbours: "log-bytes / log-flop", since a
    GEMM's weight bytes and flop are both ∝ k·n at fixed m; prefill attention ∝ tokens² is exact
    under it). Groups that share a coordinate but differ in key (a 4-head × 64 and a 2-head × 128
    attention) are combined by their geometric mean;
  * rows are never smoothed: on CPU a GEMM at M = 17 can cost more than at M = 32 (row blocks with
    a single-row pass per leftover row), and the measured points are kept as they are. Between two
    measured rows the estimate is the straight line between them; it cannot see a saw-tooth
    *between* grid points, which is why the grid puts points either side of every block boundary;
  * monotone where the data are: both rules are monotone between monotone neighbours, and a
    combination across the outer axis of two groups monotone in the inner axis stays monotone;
  * never extrapolated: a coordinate outside the measured range raises OperatorGridError, one line
    naming the operator, the shape and the measured range.

Pure (math only, no torch, no I/O); records may be core.schema.operators.OperatorRecord objects or plain mappings.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from core.errors import InputError
from core.schema.operators import SHAPE_KEYS


class OperatorGridError(InputError):
    """A query the profile cannot answer (operator missing, or shape outside the measured grid)."""


@dataclass(frozen=True)
class Axis:
    name: str  # what the coordinate is, for messages ("k·n", "m", ...)
    key: Callable[[Mapping[str, float]], tuple]  # identity of a group at this level
    coord: Callable[[Mapping[str, float]], float]
    scale: str  # "linear" | "log"


def _single(name: str, scale: str) -> Axis:
    return Axis(name, lambda s: (s[name],), lambda s: float(s[name]), scale)


def _attn_key(s: Mapping[str, float]) -> tuple:
    return (s["heads"], s["kv_heads"], s["head_dim"])


AXES: dict[str, tuple[Axis, ...]] = {
    "gemm": (Axis("k·n", lambda s: (s["k"], s["n"]), lambda s: float(s["k"]) * s["n"], "log"),
             _single("m", "linear")),
    "attention_decode": (Axis("heads·head_dim", _attn_key, lambda s: float(s["heads"]) * s["head_dim"], "log"),
                         _single("context", "linear"), _single("batch", "linear")),
    "attention_prefill": (Axis("heads·head_dim", _attn_key, lambda s: float(s["heads"]) * s["head_dim"], "log"),
                          _single("tokens", "log")),
    "rms_norm": (_single("hidden", "log"), _single("tokens", "linear")),
    "rotary": (Axis("(heads+kv_heads)·head_dim", _attn_key,
                    lambda s: float(s["heads"] + s["kv_heads"]) * s["head_dim"], "log"),
               _single("tokens", "linear")),
    "silu_and_mul": (_single("n", "log"), _single("tokens", "linear")),
    "sampler": (_single("vocab", "log"), _single("batch", "linear")),
    "step_overhead": (_single("calls", "linear"),),
}


def _get(rec: Any, key: str) -> Any:
    return rec[key] if isinstance(rec, Mapping) else getattr(rec, key)


def _fmt_shape(op: str, shape: Mapping[str, float]) -> str:
    return " ".join(f"{k}={shape[k]:g}" for k in SHAPE_KEYS[op] if k in shape)


class _OutOfGrid(Exception):
    def __init__(self, axis: str, value: float, lo: float, hi: float):
        super().__init__(axis)
        self.axis, self.value, self.lo, self.hi = axis, value, lo, hi

    def line(self) -> str:
        return f"{self.axis}={self.value:g} outside the measured {self.lo:g}..{self.hi:g}"


def _geomean(ts: Sequence[float]) -> float:
    """One value as it is (a grid point stays exact); ties by their geometric mean."""
    if len(ts) == 1:
        return ts[0]
    return math.exp(sum(math.log(t) for t in ts) / len(ts))


def _blend(x: float, x0: float, x1: float, t0: float, t1: float, scale: str) -> float:
    """Time at x between measured (x0, t0) and (x1, t1): linear, or a power law on a log axis."""
    if x == x0 or x1 == x0:
        return t0
    if x == x1:
        return t1
    if scale == "log":
        w = (math.log(x) - math.log(x0)) / (math.log(x1) - math.log(x0))
        return math.exp((1.0 - w) * math.log(t0) + w * math.log(t1))
    w = (x - x0) / (x1 - x0)
    return (1.0 - w) * t0 + w * t1


def _predict(points: Sequence[tuple[Mapping[str, float], float]], axes: Sequence[Axis],
             query: Mapping[str, float]) -> float:
    """points: (shape, median_s); raises _OutOfGrid naming the axis that failed."""
    if not axes:
        return _geomean([t for _, t in points])
    ax, inner = axes[0], axes[1:]
    groups: dict[tuple, list] = {}
    for shape, t in points:
        groups.setdefault(ax.key(shape), []).append((shape, t))
    qkey = ax.key(query)
    if qkey in groups:
        return _predict(groups[qkey], inner, query)
    x = ax.coord(query)
    by_coord: dict[float, list[float]] = {}
    inner_errors: list[_OutOfGrid] = []
    for members in groups.values():
        c = ax.coord(members[0][0])
        try:
            by_coord.setdefault(c, []).append(_predict(members, inner, query))
        except _OutOfGrid as exc:
            inner_errors.append(exc)
    all_coords = sorted({ax.coord(m[0][0]) for m in groups.values()})
    usable = sorted(by_coord)
    below = [c for c in usable if c <= x]
    above = [c for c in usable if c >= x]
    if not below or not above:
        if inner_errors and all_coords[0] <= x <= all_coords[-1]:
            raise inner_errors[0]
        raise _OutOfGrid(ax.name, x, all_coords[0], all_coords[-1])

    x0, x1 = below[-1], above[0]
    return _blend(x, x0, x1, _geomean(by_coord[x0]), _geomean(by_coord[x1]), ax.scale)


class OperatorTable:
    """The records of a profile, queried by operator and shape (pure; no I/O)."""

    def __init__(self, records: Iterable[Any]):
        self._points: dict[tuple[str, str], list[tuple[dict[str, float], float]]] = {}
        for r in records:
            op = _get(r, "op")
            if op not in AXES:
                raise ValueError(f"unknown operator {op!r}")
            shape = {k: float(_get(r, k)) for k in SHAPE_KEYS[op]}
            t = float(_get(r, "median_s"))
            if not (math.isfinite(t) and t > 0):
                raise ValueError(f"{op} at {_fmt_shape(op, shape)}: median_s={t!r} must be finite and > 0")
            self._points.setdefault((op, str(_get(r, "dtype"))), []).append((shape, t))

    def dtypes(self, op: str) -> list[str]:
        return sorted(d for (o, d) in self._points if o == op)

    def has(self, op: str, dtype: str | None = None) -> bool:
        return bool(self.dtypes(op)) if dtype is None else (op, dtype) in self._points

    def time_s(self, op: str, dtype: str | None = None, **shape: float) -> float:
        """Predicted seconds of one call of `op` at `shape` (all of the operator's shape keys).
        `dtype` picks among records of several dtypes (gemm: "int8" layers vs the LM head); it may
        be left out when the profile holds one. OperatorGridError (one line) when it cannot answer."""
        if op not in AXES:
            raise OperatorGridError(f"unknown operator {op!r}; known: {', '.join(AXES)}")
        missing = [k for k in SHAPE_KEYS[op] if k not in shape]
        extra = [k for k in shape if k not in SHAPE_KEYS[op]]
        if missing or extra:
            raise OperatorGridError(f"{op} needs shape keys {', '.join(SHAPE_KEYS[op])}"
                                    + (f"; missing {', '.join(missing)}" if missing else "")
                                    + (f"; unknown {', '.join(extra)}" if extra else ""))
        query = {k: float(v) for k, v in shape.items()}
        for k, v in query.items():
            if not (math.isfinite(v) and v > 0):
                raise OperatorGridError(f"{op} at {_fmt_shape(op, query)}: {k} must be a finite number > 0")
        have = self.dtypes(op)
        if dtype is None:
            if len(have) > 1:
                raise OperatorGridError(f"{op} at {_fmt_shape(op, query)}: the profile has dtypes "
                                        f"{', '.join(have)}; say which")
            dtype = have[0] if have else "?"
        points = self._points.get((op, dtype))
        if not points:
            held = f" (it has {op} in {', '.join(have)})" if have else ""
            raise OperatorGridError(f"{op} ({dtype}) at {_fmt_shape(op, query)}: the operator profile "
                                    f"has no {op} records for {dtype}{held}")
        try:
            return _predict(points, AXES[op], query)
        except _OutOfGrid as exc:
            raise OperatorGridError(f"{op} ({dtype}) at {_fmt_shape(op, query)} is outside the measured "
                                    f"grid: {exc.line()}") from None

    def ranges(self, op: str, dtype: str) -> dict[str, tuple[float, float]]:
        """Measured min..max of each shape key (what a query may span, roughly)."""
        pts = self._points.get((op, dtype), [])
        return {k: (min(s[k] for s, _ in pts), max(s[k] for s, _ in pts)) for k in SHAPE_KEYS[op]} if pts else {}
