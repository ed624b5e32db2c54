"""The whole chain: prepare models, sweep them with vLLM, calibrate, write the report.

By default the chain calibrates the *hardware*: a ladder of model sizes (bench.run.ladder) is
prepared and swept with the same runs (bench/data/ladder_cpu.toml on a CPU), the profile carries the
performance model fitted on all of them with its held-out errors, and the report prices every
candidate N with it. With one `model` the profile describes that model only and the report leaves
out the N-dependent serving cost.

Each stage is a typed function of its own package, called with an options object:

  1. bench.operators.store.measure_into                           -> results/hardware/operators/<hw>.json
     (the device's operators, for a ladder: measured once per host within `operators_budget_s`,
     then reused; a device without vLLM's CPU ops or CUDA skips it with a line, it is a check)
  2. bench.model.prepare.prepare / bench.run.ladder.prepare_ladder -> models/<name>/
     (the default CPU ladder's top size chosen by pipeline.ladder_plan: the largest whose sweep,
     predicted from the operator profile, fits `sweep_budget_s`; runs predicted over 10 s get fewer
     requests, which stage 3 sweeps)
  3. bench.run.sweep.run_from_config (a SweepConfig)              -> results/runs/<hw>/<model>/<run>/
  4. calibrate.profile.make.profile_runs (ProfileOptions)         -> results/calibration/<hw>-ladder.json
     (with the operator profile, the ladder's sizes are also predicted from the device's operators,
     each left out of the fit of the engine's overheads: the profile's performance_model.operator_check)
  5. solver.report.make.make_report (ReportOptions)               -> results/reports/<name>/
     (with the paper's A100-40GB beside the measured hardware, from its datasheet and the paper's
     assumed efficiencies, unless `paper_gpu` is off or the report is given datasheet profiles)

Progress goes to `err` under a "[k/5]" header. Nothing is overwritten: an operator profile of this
device is reused, prepare reuses an identical prepared model, sweep skips complete runs, the profile
gets a free name (-2, -3, ...) if one exists, and the report directory too. The sweep config is
`bench/data/sweep_cpu.toml` where NVML sees no
NVIDIA GPU and `bench/data/sweep_a100.toml` where it sees one (bench detects the exact hardware).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from bench.config import load_config, with_overrides
from bench.hardware.hostload import host_load_lines
from bench.hardware.nvml import nvml_available
from bench.model import prepare as model_prepare
from bench.operators import kernels as operator_kernels
from bench.operators import store as operator_store
from bench.run import ladder
from bench.run import sweep as run_sweep
from calibrate.operators.interpolate import OperatorTable
from calibrate.profile import make as profile_make
from calibrate.profile.cli import format_table
from core.cli import CliError, one_line
from core.errors import InputError
from core.files import free_path
from core.paper import PAPER
from core.schema.operators import load_profile
from pipeline import ladder_plan
from solver.report.make import ReportOptions, make_report

STAGES = 5
# A sweep's failed runs are measured once more before the chain gives up: on a 2-core host the load
# client can be starved for seconds while a small model streams ~2,000 tokens/s, and the server then
# closes the connections it was about to use (docs/measurements.md, 2026-12-07). The failed run stays.
SWEEP_RETRIES = 1
DATA = Path(__file__).resolve().parents[1] / "bench" / "data"


class PipelineError(RuntimeError):
    """A stage failed; the message names the stage, and carries an exit code (2: bad input, 1: failure)."""

    def __init__(self, message: str, returncode: int = 1):
        super().__init__(message)
        self.returncode = returncode


@dataclass
class PrepareOptions:
    """bench.model.prepare.prepare's keywords other than the model and the models directory."""

    quantization: str = "w8a8-int8"
    quantizer: str = "direct"
    out_dir: str | None = None
    name: str | None = None
    spec: model_prepare.TinySpec | None = None  # None: bench prepare's default shape
    check_generate: bool = True


@dataclass
class PipelineOptions:
    model: str | None = None  # one model (no ladder); None: the ladder
    ladder: list[str] | None = None  # ladder models (dirs or hub ids); None: bench.run.ladder's CPU ladder
    config: str | None = None  # sweep TOML; None: by hardware
    results_dir: str = "results"
    models_dir: str = "models"
    usd_per_hour: float | None = None
    chinchilla_params: float = 30e9  # the paper's 30B-quality, 17.5B-request case (Table 3)
    requests: float = 17.5e9
    name: str | None = None
    prepare: PrepareOptions = field(default_factory=PrepareOptions)
    sweep_overrides: dict = field(default_factory=dict)  # bench.config.with_overrides keys
    profile: profile_make.ProfileOptions | None = None  # None: its defaults
    report: ReportOptions | None = None  # its target, demand, profile and out_dir are the pipeline's;
    #                                      None: the CLI's defaults
    paper_gpu: bool = True  # set the paper's inference GPU (datasheet, assumed) beside the measured hardware
    operators: bool = True  # measure (or reuse) the device's operator profile for a ladder
    operators_budget_s: float = operator_store.DEFAULT_MAX_SECONDS
    # the default CPU ladder's sweep, predicted from the operator profile, must fit this (its top size
    # is chosen for it: pipeline.ladder_plan); None: the default ladder as it is
    sweep_budget_s: float | None = ladder_plan.SWEEP_BUDGET_S
    cwd: str | None = None  # directory the relative paths above are taken from (default: the current one)

    def path(self, *parts: str) -> Path:
        return Path(self.cwd or ".").joinpath(*parts)


def has_nvidia_gpu() -> bool:
    """True when NVML initialises and reports at least one device (bench.hardware.nvml)."""
    return nvml_available()[0]


def default_config(gpu: bool, ladder: bool = False) -> str:
    """The sweep config shipped in bench/data/ for this hardware and mode (an absolute path)."""
    return str(DATA / ("sweep_a100.toml" if gpu else ("ladder_cpu.toml" if ladder else "sweep_cpu.toml")))


# --------------------------------------------------------------------------- the five stages


def measure_operators(opts: PipelineOptions, gpu: bool, *, err=None) -> Path | None:
    """Stage 1: this device's operator profile (reused when one is stored); None when it is off, for
    one model, or the device cannot time the operators (the reason is printed: it is a check, not a
    measurement the chain needs)."""
    err = err or sys.stderr  # looked up per call: a redirected stderr (tests, callers) is honoured
    if opts.model or not opts.operators:
        print("      skipped (" + ("one model: no ladder to check" if opts.model else "--no-operators") + ")",
              file=err, flush=True)
        return None
    out = opts.path(opts.results_dir, "hardware", "operators")
    try:
        stored = operator_store.measure_into(out, device="cuda" if gpu else "cpu", reuse=True,
                                             budget_s=opts.operators_budget_s)
    except operator_kernels.KernelUnavailable as exc:
        print(f"      no operator profile: {one_line(exc)}", file=err, flush=True)
        return None
    except InputError as exc:  # a stored profile that does not read: said, kept, and not used
        print(f"      no operator profile: {one_line(exc)} (move the file aside to measure again)", file=err, flush=True)
        return None
    p = stored.profile
    how = (f"reused, measured {p.provenance.date_utc}" if stored.reused
           else f"measured: {len(p.records)} points in {p.measurement_wall_s:.0f} s, {len(p.skipped)} skipped")
    print(f"      {stored.path} ({how})", file=err, flush=True)
    for line in host_load_lines(p.provenance.other_cpu_share, p.notes):
        print(f"      {line}", file=err, flush=True)
    return stored.path


def plan_ladder(opts: PipelineOptions, operators: Path | None, config: str, *,
                err=None) -> ladder_plan.LadderPlan | None:
    """The default CPU ladder with its top size fitted to `sweep_budget_s` and long runs' requests cut
    (pipeline.ladder_plan), the plan printed; None (the ladder as it is) for one model, a named ladder,
    no budget, no operator profile, or a sweep whose runs cannot be predicted."""
    err = err or sys.stderr
    if opts.model or opts.ladder or opts.sweep_budget_s is None or operators is None:
        return None
    table = OperatorTable(load_profile(operators).records)
    plan = ladder_plan.plan_default_ladder(table, sweep_config(opts, Path("planned"), config), opts.sweep_budget_s)
    if plan is None:
        print("      sweep time not predicted (runs at a request rate or from a length distribution, or sizes "
              "outside the operator grid): the default ladder", file=err, flush=True)
        return None
    for line in plan.lines():
        print(f"      {line}", file=err, flush=True)
    return plan


def prepare_models(opts: PipelineOptions, rungs: list[ladder.Rung] | None = None, *, err=None) -> list[Path]:
    """Stage 2: the INT8 model(s) to serve: one (`model`) or the ladder (`rungs`, else bench.run.ladder's)."""
    err = err or sys.stderr
    models_dir = opts.path(opts.models_dir)
    if opts.model:
        p = opts.prepare
        return [Path(model_prepare.prepare(model=opts.model, quantization=p.quantization, out_dir=p.out_dir, name=p.name,
                             models_dir=models_dir, spec=p.spec or model_prepare.CLI_DEFAULT_SPEC, quantizer=p.quantizer,
                             check_generate=p.check_generate))]
    return ladder.prepare_ladder(rungs or ladder.default_rungs(opts.ladder), models_dir=models_dir,
                                 on_status=lambda m: print(f"      {m}", file=err, flush=True))


def sweep_config(opts: PipelineOptions, model_dir: Path, config: str):
    """The SweepConfig of one model: the TOML, the user's overrides, then the pipeline's own keys."""
    ov = dict(opts.sweep_overrides)
    ov.update({"model": str(model_dir), "results": str(opts.path(opts.results_dir, "runs"))})
    if opts.usd_per_hour is not None:
        ov["hardware.usd_per_hour"] = opts.usd_per_hour
    return with_overrides(load_config(config), ov)


def sweep_models(opts: PipelineOptions, model_dirs: list[Path], config: str,
                 requests: list[dict[str, int]] | None = None, *, err=None) -> list[Path]:
    """Stage 3: sweep each model with the same config (each point's measured requests from
    `requests[i]` where a plan cut them: pipeline.ladder_plan.capped_config); the run directories of
    this sweep's specs (complete runs measured earlier included, other runs of the same series left out)."""
    err = err or sys.stderr
    def on_run_end(res) -> None:
        state = "already complete" if res.skipped else res.record.status
        print(f"      run {res.run_dir.name}: {state}" + (f" ({res.record.error})" if res.record.error else ""),
              file=err, flush=True)

    runs: list[Path] = []
    for i, d in enumerate(model_dirs):
        print(f"      model {d}", file=err, flush=True)
        cfg = sweep_config(opts, d, config)
        if requests:
            cfg = ladder_plan.capped_config(cfg, requests[i])
        outcome = None
        for attempt in range(1 + SWEEP_RETRIES):
            if outcome is not None:
                bad = [r.run_dir.name for r in outcome.results if r.record.status != "complete"]
                print(f"      {len(bad)} run(s) failed ({', '.join(bad[:3])}); kept, and their points measured again "
                      f"(retry {attempt} of {SWEEP_RETRIES})", file=err, flush=True)
            outcome = run_sweep.run_from_config(cfg, on_status=lambda msg: print(f"      {msg}", file=err, flush=True),
                                                on_run_end=on_run_end)
            if outcome.ok or not any(r.record.status == "failed" for r in outcome.results):
                break
        if not outcome.ok:
            bad = [r.run_dir.name for r in outcome.results if r.record.status != "complete"]
            raise PipelineError(f"sweep: {len(bad)} run(s) failed ({', '.join(bad[:3])}) and {len(outcome.not_run)} "
                                f"not run under {outcome.base}; re-run to resume (complete runs are skipped)")
        runs += [Path(r.run_dir) for r in outcome.results]
    return runs


def calibrate_runs(opts: PipelineOptions, run_dirs: list[Path], operators: Path | None = None) -> Path:
    """Stage 4: the calibration profile of these runs (a ladder's when they span several models), at a
    free name; its table is printed."""
    series = sorted({d.parent for d in run_dirs})
    is_ladder = len(series) > 1
    base = series[-1] if series else Path("none")
    stem = (base.parent.name + "-ladder") if is_ladder else "-".join(base.parts[-2:])
    out = free_path(opts.path(opts.results_dir, "calibration", f"{stem}.json"))
    popts = replace(opts.profile or profile_make.ProfileOptions(), ladder=is_ladder)
    if opts.usd_per_hour is not None:
        popts = replace(popts, usd_per_hour=opts.usd_per_hour)
    profile = profile_make.profile_runs(run_dirs, popts)
    ops = operators or opts.path(opts.results_dir, "hardware", "operators", f"{base.parent.name}.json")
    if is_ladder and popts.operator_profile is None and ops.is_file():
        try:  # the ladder's sizes predicted from this hardware's measured operators, beside the forms
            profile = profile_make.with_operator_check(profile, [str(d) for d in run_dirs], ops)
        except InputError as exc:
            print(f"      no operator check: {one_line(exc)}", file=sys.stderr, flush=True)
    path = profile_make.write_profile(profile, out)
    print(format_table(profile, path))
    return Path(path)


def write_sizing_report(opts: PipelineOptions, profile: Path) -> Path:
    """Stage 5: the sizing report from the profile; its directory."""
    ropts = replace(opts.report or ReportOptions(requests=opts.requests), chinchilla_params=opts.chinchilla_params,
                    loss=None, requests=opts.requests, inference_profile=[str(profile)],
                    out_dir=str(opts.path(opts.results_dir, "reports")))
    if opts.name:
        ropts = replace(ropts, name=opts.name)
    if opts.paper_gpu and not ropts.datasheet_profile:
        ropts = replace(ropts, datasheet_profile=[paper_gpu_spec()])
    out_dir, _ = make_report(ropts)
    return out_dir


def paper_gpu_spec() -> str:
    """The paper's inference hardware as a datasheet profile (solver.report.hardware.datasheet_profile):
    A100-40GB, INT8, $1.10/h, 50 % MFU for prefill and 1 % for decode (Sardana et al. 2024, App. B.3),
    all assumed, so a report shows what this machine serves beside what the paper's hardware would."""
    inf = PAPER.inference
    return f"{inf.gpu}:mfu_in={PAPER.mfu_input:g},mfu_out={PAPER.mfu_output:g},usd_per_h={inf.usd_per_h:g}"


def _stage(k: int, title: str, fn: Callable, *a, err=None):
    """Run one stage under its header; its errors become PipelineError naming it."""
    err = err or sys.stderr
    print(f"[{k}/{STAGES}] {title}", file=err, flush=True)
    t0 = time.monotonic()
    try:
        return fn(*a)
    except PipelineError:
        raise
    except (InputError, ValueError, OSError, CliError) as exc:  # bad input of the stage (its one-line errors)
        raise PipelineError(f"stage {k} ({title}): {one_line(exc)}", 2) from None
    except RuntimeError as exc:  # a check that failed, a server that did not start (its log tail included)
        raise PipelineError(f"stage {k} ({title}) failed: {one_line(exc)}", 1) from None
    finally:
        print(f"      ({time.monotonic() - t0:.0f} s)", file=err, flush=True)


def run_pipeline(opts: PipelineOptions, *, err=None) -> Path:
    """Run the five stages; return the report directory. Raises PipelineError on a failed stage."""
    err = err or sys.stderr
    gpu = has_nvidia_gpu()
    if opts.model and opts.ladder:
        raise PipelineError("give one --model or a ladder (--ladder-model, repeated), not both", 2)
    if gpu and not opts.model and not opts.ladder:
        raise PipelineError("on a GPU node give the model(s): --ladder-model DIR_OR_HUB_ID (repeat it, smallest "
                            "first; README names published W8A8 checkpoints) or one --model", 2)
    what = opts.model or ("ladder " + ", ".join(opts.ladder) if opts.ladder else "the CPU ladder (built here)")
    print(f"pipeline: {'NVIDIA GPU found' if gpu else 'no NVIDIA GPU: vLLM CPU backend'}; {what}", file=err, flush=True)
    operators = _stage(1, "measure the device's operators", lambda: measure_operators(opts, gpu, err=err), err=err)
    config = opts.config or default_config(gpu, ladder=not opts.model)
    plans: list[ladder_plan.LadderPlan | None] = []

    def prepare_planned() -> list[Path]:
        plans.append(plan_ladder(opts, operators, config, err=err))
        return prepare_models(opts, plans[0].rungs() if plans[0] else None, err=err)

    model_dirs = _stage(2, "prepare the INT8 model(s)", prepare_planned, err=err)
    requests = [plans[0].requests(i) for i in range(len(model_dirs))] if plans and plans[0] else None
    run_dirs = _stage(3, "sweep with vLLM", lambda: sweep_models(opts, model_dirs, config, requests, err=err), err=err)
    if not run_dirs:
        raise PipelineError("stage 3 wrote no run directory")
    profile = _stage(4, "calibrate a profile", calibrate_runs, opts, run_dirs, operators, err=err)
    if not profile.is_file():
        raise PipelineError(f"stage 4 did not write {profile}")
    return _stage(5, "write the sizing report", write_sizing_report, opts, profile, err=err)
