"""A profile of the hardware from a ladder of model sizes (`calibrate profile RUNS --ladder`).

The runs under the given paths span several models served on one hardware. The profile's
measured per-model constants (per-token costs, decode curve, SLO point, $/request of the measured
mixes) come from the runs of the *largest* ladder model, the one closest to what is deployed; its
`performance_model` is fitted on the runs of every size and validated by leaving each size out
(`calibrate.perfmodel.build`). The solver prices model sizes with the performance model only.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from calibrate.perfmodel import selection as ladder
from calibrate.perfmodel.build import DEFAULT_BOOTSTRAP, build_performance_model
from core import gpus
from core.errors import BadFile


def _hardware_names(runs) -> set[str]:
    return {r.record.environment.hardware.name for r in runs}


def _interconnect(hardware_name: str) -> tuple[float | None, str | None]:
    """Interconnect bandwidth from the GPU table where the hardware is in it (None on a CPU)."""

    try:
        dev = gpus.get_device(hardware_name)
    except (KeyError, ValueError):
        return None, None
    bw = getattr(dev, "interconnect_bytes_per_s", None)
    return bw, getattr(dev, "interconnect_source", None)


def build_ladder_profile(paths: Iterable[str | Path], *, runs, dropped, n_boot_perf: int = DEFAULT_BOOTSTRAP,
                         seed: int = 0, usd_per_h: float | None = None, build_base=None):
    """The Profile of the largest ladder model with the ladder's performance model attached.

    `runs`/`dropped`: what `calibrate.runs.load.load_runs(paths)` gave; `build_base(runs_of_one_model)`
    builds the per-model profile (calibrate.profile.build.build_profile with the command's options).
    """
    hw = _hardware_names(runs)
    if len(hw) != 1:
        raise BadFile(None, "--ladder", f"a ladder is one hardware; these runs are on {sorted(hw)}")
    sizes = {r.record.config.model.name: r.record.config.model.params_matmul for r in runs}
    if len(sizes) < 2:
        raise BadFile(None, "--ladder", f"needs runs of at least 2 model sizes, found {sorted(sizes)}")
    largest = max(sizes, key=sizes.get)
    base = build_base([r for r in runs if r.record.config.model.name == largest])
    lruns, ldropped = ladder.load_ladder(paths)
    if usd_per_h is not None:
        lruns = ladder.reprice(lruns, usd_per_h)
    if len(ladder.models_of(lruns)) < 2:
        raise BadFile(None, "--ladder", "fewer than 2 model sizes have complete closed-loop runs "
                         + (f"(e.g. dropped: {ldropped[0]['reason']})" if ldropped else ""))
    bw, src = _interconnect(next(iter(hw)))
    try:
        pm = build_performance_model(lruns, n_boot=n_boot_perf, seed=seed, interconnect_bytes_per_s=bw,
                                     interconnect_source=src)
    except ValueError as exc:
        raise BadFile(None, "--ladder", str(exc)) from None
    return base.model_copy(update={"performance_model": pm, "warning": pm.warning})
