"""Closed-loop figures of any model shape from the device's operators (`calibrate predict --from
operators`): the step composed from the operator profile plus the overheads the profile's operator
check chose and fitted on all ladder sizes, simulated as vLLM batches (calibrate.perfmodel.simulate).

The interval of each figure is the range over the fits that left one ladder size out (what the
prediction would have been without each size): not a 95 % interval, and said so in the output.
"""

from __future__ import annotations

from collections.abc import Sequence

from calibrate.operators.interpolate import OperatorTable
from calibrate.operators.stepmodel import OperatorStepModel, Overheads
from calibrate.perfmodel.build import POINT_KEYS
from calibrate.perfmodel.selection import figures
from calibrate.perfmodel.simulate import DEFAULT_MAX_BATCHED_TOKENS, simulate
from core.dims import ModelDims
from core.schema.perfmodel import OperatorCheck

INTERVAL_METHOD = "range over the fits leaving one ladder size out (not a 95 % interval)"


def overheads_of(d: dict[str, float]) -> tuple[Overheads, float]:
    """(step overheads, request overhead) from a stored dict (OperatorCheck.overheads_s / overheads_by_size)."""
    return Overheads(**{k: float(d.get(k, 0.0)) for k in Overheads._fields}), float(d.get("request", 0.0))


def check_usable(check: OperatorCheck | None) -> OperatorCheck:
    """The check, or ValueError saying why it cannot predict (older profiles carry no fitted overheads)."""
    if check is None:
        raise ValueError("the profile has no operator check (calibrate profile RUNS --ladder --operator-profile FILE)")
    if not check.overheads_s or check.request_overhead_s is None:
        raise ValueError("the profile's operator check has no overheads fitted on all sizes (made before "
                         "2026-12-07; run calibrate profile again)")
    if not check.overheads_by_size:  # without them the interval would be a single point
        raise ValueError("the profile's operator check has no fits leaving one size out, so no interval "
                         "(made before overheads_by_size was stored; run calibrate profile again)")
    return check


def operator_points(check: OperatorCheck, table: OperatorTable, dims: ModelDims, *, input_tokens: int,
                    output_tokens: int, concurrencies: Sequence[int], usd_per_h: float | None, devices: int = 1,
                    max_num_seqs: int = 256, max_num_batched_tokens: int = DEFAULT_MAX_BATCHED_TOKENS) -> list[dict]:
    """Per concurrency: the figures with `<key>_interval` (see the module docstring). OperatorGridError
    (one line) when the shape lies outside the operator grid."""
    main = overheads_of({**check.overheads_s, "request": check.request_overhead_s})
    folds = [overheads_of(v) for v in check.overheads_by_size.values()]
    model = OperatorStepModel(table, dims)  # one composed-step cache for every fit

    def run(o: Overheads, request_s: float, c: int, n: int) -> dict:
        sim = simulate(model.set_overheads(o), concurrency=c, num_requests=n,
                       lengths=[(input_tokens, output_tokens)], request_overhead_s=request_s,
                       max_num_seqs=max_num_seqs, max_num_batched_tokens=max_num_batched_tokens)
        return figures(sim, devices, usd_per_h)

    out = []
    for c in concurrencies:
        point = {"concurrency": c, **run(*main, c, max(8 * c, 32))}
        samples = [run(o, r, c, max(3 * c, 12)) for o, r in folds]
        for k in POINT_KEYS:
            vals = [s[k] for s in samples if s[k] is not None]
            if point[k] is None:
                point[f"{k}_interval"] = None
                continue
            point[f"{k}_interval"] = [min(vals + [point[k]]), max(vals + [point[k]])]
        point["effective_batch"] = min(c, max_num_seqs)
        out.append(point)
    return out
