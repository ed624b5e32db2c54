"""The calibrate stage as a function: run directories (and other tools' results) -> a Profile.

`profile_runs(run_dirs, ProfileOptions) -> Profile` loads and screens the runs, fits the per-token
constants and, with `ladder=True`, the performance model of the hardware; `write_profile` writes it
at a name that is never an existing file unless `force`. `python -m calibrate profile` and the
pipeline both call these; neither passes flags. Bad input: `core.errors.InputError`, one line.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import ValidationError

from calibrate.operators.validate import operator_check
from calibrate.perfmodel.build import DEFAULT_BOOTSTRAP as PERF_BOOTSTRAP
from calibrate.perfmodel.selection import load_ladder
from calibrate.profile.build import build_profile
from calibrate.profile.curve import DEFAULT_SLO_TPOT_P90_S, DEFAULT_SLO_TTFT_P90_S
from calibrate.profile.ladder import build_ladder_profile
from calibrate.profile.tokencost import DEFAULT_BOOTSTRAP
from calibrate.runs.ingest import hardware_info, load_guidellm_json, load_vllm_bench_json, model_info
from calibrate.runs.load import DEFAULT_MIN_REQUESTS, DEFAULT_MIN_TOKENS, load_runs
from core.errors import BadFile
from core.files import safe_name
from core.provenance import git_commit, package_versions
from core.schema.base import one_line
from core.schema.profile import Profile

DEFAULT_OUT_DIR = Path("results/calibration")


@dataclass(frozen=True)
class ForeignRuns:
    """Results of other tools (vllm bench serve, guidellm): the model and hardware they measured are
    given here, since their files do not say."""

    vllm_bench_json: tuple[Path, ...] = ()
    guidellm_json: tuple[Path, ...] = ()
    params: int | None = None  # N: parameters in matrix multiplies
    params_total: int | None = None
    hardware: str | None = None  # table key or a name of one's own
    device_count: int = 1
    peak_dtype: str = "int8"
    model_name: str = "auto"
    quantization: str = "unknown"
    workload: str | None = None  # prefill | decode | mixed | distribution; None: inferred
    concurrency: int | None = None

    def __bool__(self) -> bool:
        return bool(self.vllm_bench_json or self.guidellm_json)


@dataclass(frozen=True)
class ProfileOptions:
    """How a profile is fitted (the flags of `calibrate profile`, by the same names)."""

    slo_tpot_p90_s: float = DEFAULT_SLO_TPOT_P90_S
    slo_ttft_p90_s: float = DEFAULT_SLO_TTFT_P90_S
    allow_mixed: bool = False
    drop_bad: bool = False
    bootstrap: int = DEFAULT_BOOTSTRAP
    seed: int = 0
    min_requests: int = DEFAULT_MIN_REQUESTS
    min_tokens: int = DEFAULT_MIN_TOKENS
    min_run: dict = field(default_factory=dict)  # calibrate.runs.window.MinRunLength fields given
    usd_per_hour: float | None = None
    peak_flop_per_s: float | None = None
    ladder: bool = False  # several sizes of one hardware: fit the performance model
    ladder_bootstrap: int | None = None
    operator_profile: Path | None = None  # with `ladder`: also predict each size from the device's operators
    foreign: ForeignRuns = field(default_factory=ForeignRuns)


def default_out_path(profile: Profile) -> Path:
    if profile.performance_model is not None:
        return DEFAULT_OUT_DIR / f"{safe_name(profile.hardware.name)}-ladder.json"
    parts = (profile.hardware.name, profile.model.name, profile.model.quantization)
    return DEFAULT_OUT_DIR / ("-".join(safe_name(p) for p in parts) + ".json")


def _tool() -> str:
    v = package_versions(("infercost",))["infercost"] or "unknown"
    commit = git_commit()
    return f"calibrate {v}" + (f" (git {commit})" if commit else "")


def _rel(path: str) -> str:
    """Paths inside the working directory are recorded relative to it (portable provenance)."""
    base, _, frag = path.partition("#")
    try:
        rel = os.path.relpath(Path(base).resolve(), Path.cwd())
        if not rel.startswith(".."):
            base = rel
    except ValueError:
        pass
    return base + (f"#{frag}" if frag else "")


def _foreign_runs(f: ForeignRuns, opts: ProfileOptions) -> list:
    if not f:
        return []
    if f.params is None:
        raise BadFile(None, "--params", "required with --vllm-bench-json / --guidellm-json")
    if f.hardware is None:
        raise BadFile(None, "--hardware", "required with --vllm-bench-json / --guidellm-json")
    model = model_info(name=f.model_name, params_matmul=f.params, params_total=f.params_total,
                       quantization=f.quantization, matmul_dtype=f.peak_dtype)
    hw = hardware_info(name=f.hardware, device_count=f.device_count, peak_dtype=f.peak_dtype,
                       peak_flop_per_s=opts.peak_flop_per_s, usd_per_h=opts.usd_per_hour)
    runs = []
    for path in f.vllm_bench_json:
        runs += load_vllm_bench_json(path, model=model, hardware=hw, workload=f.workload, concurrency=f.concurrency)
    if f.guidellm_json and model.name == "auto":
        model = model.model_copy(update={"name": "guidellm-model"})
    for path in f.guidellm_json:
        runs += load_guidellm_json(path, model=model, hardware=hw, workload=f.workload)
    return runs


def profile_runs(run_dirs: list[str | Path], opts: ProfileOptions = ProfileOptions()) -> Profile:
    """Load the runs under `run_dirs` (and `opts.foreign`), fit the profile. InputError for bad input."""
    run_dirs = [str(d) for d in run_dirs]
    if not run_dirs and not opts.foreign:
        raise BadFile(None, "RUN_DIR", "give at least one run directory (or --vllm-bench-json FILE)")
    try:
        runs, dropped = load_runs(run_dirs, on_error="drop" if opts.drop_bad else "raise")
        runs += _foreign_runs(opts.foreign, opts)
        for r in runs:
            r.path = _rel(r.path)
        dropped = [d.model_copy(update={"path": _rel(d.path)}) for d in dropped]
        if not runs:
            where = ", ".join(run_dirs)
            raise BadFile(where, None, "no runs found (no run.json below it)"
                          + (f"; {len(dropped)} dropped, e.g. {dropped[0].reason}" if dropped else ""))

        def base(rs, dropped=dropped):
            return build_profile(
                rs, dropped=dropped, slo_tpot_p90_s=opts.slo_tpot_p90_s, slo_ttft_p90_s=opts.slo_ttft_p90_s,
                allow_mixed=opts.allow_mixed, n_boot=opts.bootstrap, seed=opts.seed,
                min_requests=opts.min_requests, min_tokens=opts.min_tokens, min_run=opts.min_run,
                usd_per_h=opts.usd_per_hour, peak_flop_per_s=opts.peak_flop_per_s, tool=_tool())

        if opts.ladder:
            profile = build_ladder_profile(run_dirs, runs=runs, dropped=dropped,
                                           n_boot_perf=opts.ladder_bootstrap or PERF_BOOTSTRAP, seed=opts.seed,
                                           usd_per_h=opts.usd_per_hour, build_base=base)
            if opts.operator_profile is not None:
                profile = with_operator_check(profile, run_dirs, Path(opts.operator_profile))
            return profile
        if opts.operator_profile is not None:
            raise BadFile(None, "--operator-profile", "only with --ladder")
        if opts.ladder_bootstrap is not None:
            raise BadFile(None, "--ladder-bootstrap", "only with --ladder")
        return base(runs)
    except ValidationError as exc:  # a value from the command line the schemas refuse
        raise BadFile(None, None, one_line(exc)) from None


def with_operator_check(profile: Profile, run_dirs: list[str], path: Path) -> Profile:
    """The profile with its performance model's `operator_check` (calibrate.operators.validate)."""

    if not path.is_file():
        raise BadFile(path, None, "no such operator profile (python -m bench operators writes one)")
    try:
        check = operator_check(path, load_ladder(run_dirs)[0])
    except ValueError as exc:  # a shape off the operator grid, too few sizes, a file that does not match
        raise BadFile(path, None, one_line(exc)) from None
    pm = profile.performance_model.model_copy(update={"operator_check": check})
    return profile.model_copy(update={"performance_model": pm})


def write_profile(profile: Profile, out: str | Path | None = None, *, force: bool = False) -> Path:
    """Write `profile` to `out` (default: default_out_path); an existing file only with `force`."""
    out = Path(out) if out is not None else default_out_path(profile)
    if out.exists() and not force:
        raise BadFile(out, None, "exists; pass --force to replace it or --out another file")
    try:
        profile.save(out)
    except OSError as exc:
        raise BadFile(out, None, f"cannot write: {exc.strerror or exc}") from None
    return out
