"""The whole chain in one command: prepare models, sweep them with vLLM, calibrate, write the report.

    python -m solver.pipeline                       # this machine: the CPU ladder (2.6M, 14.7M, 136M INT8 W8A8)
    python -m solver.pipeline --ladder-model DIR_OR_HUB_ID --ladder-model ...   # a ladder of your own (GPU node)
    python -m solver.pipeline --model /models/llama-3.1-8b --usd-per-hour 1.10   # one model (no N-dependent cost)

By default the chain calibrates the *hardware*: a ladder of model sizes (bench.ladder) is prepared
and swept with the same runs (bench/data/ladder_cpu.toml on a CPU), the profile carries the
performance model fitted on all of them with its held-out errors (calibrate profile --ladder), and
the report prices every candidate N with it. With one --model the profile describes that model only
and the report leaves out the N-dependent serving cost.

Each stage is called as a function and hands the next one paths:

  1. bench.prepare.prepare (each rung)  -> models/<name>/                       (prepare_models)
  2. bench.sweep.run_from_config        -> results/runs/<hw>/<model>/<run>/      (sweep_model, per model)
  3. calibrate.profile_cli.make_profile -> results/calibration/<hw>-ladder.json (calibrate_runs)
  4. solver report (make_report)        -> results/reports/<name>/               (write_sizing_report)

`--prepare-args`, `--sweep-args`, `--calibrate-args`, `--report-args` are parsed by the stage's own
argument parser (the same flags as `python -m bench prepare|sweep`, `python -m calibrate profile`,
`python -m solver report`). Progress goes to stderr under a "[k/4]" header. Nothing is overwritten:
prepare reuses an identical prepared model, sweep skips complete runs, the profile gets a free name
(-2, -3, ...) if one exists, and the report directory too. The last printed line is the report
directory. The sweep config is `bench/data/sweep_cpu.toml` where bench.nvml sees no NVIDIA GPU and
`bench/data/sweep_a100.toml` where it sees one (bench detects the exact hardware itself).
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path

from solver.cli_args import CliError, at_least_one, non_negative, one_line, positive

PROG = "python -m solver.pipeline"
STAGES = 4


class PipelineError(RuntimeError):
    """A stage failed; the message names the stage, and carries an exit code (2: bad input, 1: failure)."""

    def __init__(self, message: str, returncode: int = 1):
        super().__init__(message)
        self.returncode = returncode


@dataclass
class PipelineOptions:
    model: str | None = None  # one model (no ladder); None: the ladder
    ladder: list[str] | None = None  # ladder models (dirs or hub ids); None: bench.ladder's CPU ladder
    config: str | None = None  # sweep TOML; None: by hardware
    results_dir: str = "results"
    models_dir: str = "models"
    usd_per_hour: float | None = None
    chinchilla_params: float = 30e9  # the paper's 30B-quality, 17.5B-request case (Table 3)
    requests: float = 17.5e9
    name: str | None = None
    prepare_args: list[str] = field(default_factory=list)
    sweep_args: list[str] = field(default_factory=list)
    calibrate_args: list[str] = field(default_factory=list)
    report_args: list[str] = field(default_factory=list)
    cwd: str | None = None  # directory the relative paths above are taken from (default: the current one)

    def path(self, *parts: str) -> Path:
        return Path(self.cwd or ".").joinpath(*parts)


def has_nvidia_gpu() -> bool:
    """True when NVML initialises and reports at least one device (bench.nvml)."""
    from bench.nvml import nvml_available

    return nvml_available()[0]


def default_config(gpu: bool, ladder: bool = False) -> str:
    """The sweep config shipped in bench/data/ for this hardware and mode (an absolute path)."""
    import bench

    name = "sweep_a100.toml" if gpu else ("ladder_cpu.toml" if ladder else "sweep_cpu.toml")
    return str(Path(bench.__file__).resolve().parent / "data" / name)


def _parse(stage: str, add_args: Callable[[argparse.ArgumentParser], None], argv: list[str]) -> argparse.Namespace:
    """A stage's arguments parsed by its own parser; a bad one is a PipelineError (exit 2), not an exit."""
    from solver.cli_args import Parser

    class _Raising(Parser):
        def error(self, message: str) -> None:  # type: ignore[override]
            raise PipelineError(f"{stage}: {message} (in {' '.join(map(shlex.quote, argv))})", 2)

    p = _Raising(prog=stage)
    add_args(p)
    return p.parse_args(argv)


# --------------------------------------------------------------------------- the four stages


def prepare_model(opts: PipelineOptions) -> Path:
    """Stage 1: the INT8 model to serve (bench.prepare)."""
    from bench.prepare import TinySpec, add_prepare_args, prepare

    argv = ["--models-dir", str(opts.path(opts.models_dir))] + (["--model", opts.model] if opts.model else [])
    a = _parse("bench prepare", add_prepare_args, argv + opts.prepare_args)
    spec = TinySpec(**{f.name: getattr(a, f.name) for f in fields(TinySpec)})
    return Path(prepare(model=a.model, quantization=a.quantization, out_dir=a.out, name=a.name,
                        models_dir=a.models_dir, spec=spec, quantizer=a.quantizer, check_generate=not a.no_check))


def prepare_models(opts: PipelineOptions) -> list[Path]:
    """Stage 1: the INT8 model(s) to serve: one (--model) or the ladder (bench.ladder)."""
    if opts.model:
        return [prepare_model(opts)]
    from bench import ladder

    return ladder.prepare_ladder(ladder.default_rungs(opts.ladder), models_dir=opts.path(opts.models_dir),
                                 on_status=lambda m: print(f"      {m}", file=sys.stderr, flush=True))


def sweep_models(opts: PipelineOptions, model_dirs: list[Path], config: str, *, err=sys.stderr) -> list[Path]:
    """Stage 2: sweep each model with the same config; the run directories of this sweep's specs."""
    runs: list[Path] = []
    for d in model_dirs:
        print(f"      model {d}", file=err, flush=True)
        runs += sweep_model(opts, d, config, err=err)
    return runs


def sweep_model(opts: PipelineOptions, model_dir: Path, config: str, *, err=sys.stderr) -> list[Path]:
    """One model's sweep (bench.sweep.run_from_config); the run directories of its specs (complete runs
    measured earlier included, other runs of the same series left out)."""
    from bench.cli import add_measure_args, config_from_args
    from bench.sweep import run_from_config

    argv = ["--config", config, "--model", str(model_dir), "--results", str(opts.path(opts.results_dir, "runs"))]
    if opts.usd_per_hour is not None:
        argv += ["--usd-per-hour", repr(opts.usd_per_hour)]
    cfg = config_from_args(_parse("bench sweep", add_measure_args, argv + opts.sweep_args))

    def on_run_end(res) -> None:
        state = "already complete" if res.skipped else res.record.status
        print(f"      run {res.run_dir.name}: {state}" + (f" ({res.record.error})" if res.record.error else ""),
              file=err, flush=True)

    outcome = run_from_config(cfg, on_status=lambda msg: print(f"      {msg}", file=err, flush=True),
                              on_run_end=on_run_end)
    if not outcome.ok:
        bad = [r.run_dir.name for r in outcome.results if r.record.status != "complete"]
        raise PipelineError(f"sweep: {len(bad)} run(s) failed ({', '.join(bad[:3])}) and {len(outcome.not_run)} "
                            f"not run under {outcome.base}; re-run to resume (complete runs are skipped)")
    return [Path(r.run_dir) for r in outcome.results]


def calibrate_runs(opts: PipelineOptions, run_dirs: list[Path]) -> Path:
    """Stage 3: the calibration profile of these runs (calibrate profile; --ladder when they span several
    models), at a free name."""
    from bench.files import free_path
    from calibrate import profile_cli

    series = sorted({d.parent for d in run_dirs})
    ladder = len(series) > 1
    base = series[-1] if series else Path("none")
    stem = (base.parent.name + "-ladder") if ladder else "-".join(base.parts[-2:])
    out = free_path(opts.path(opts.results_dir, "calibration", f"{stem}.json"))
    argv = [*map(str, run_dirs), "--out", str(out)] + (["--ladder"] if ladder else []) + opts.calibrate_args
    if opts.usd_per_hour is not None:
        argv += ["--usd-per-hour", repr(opts.usd_per_hour)]
    profile, path = profile_cli.make_profile(_parse("calibrate profile", profile_cli.add_args, argv))
    print(profile_cli.format_table(profile, path))
    return Path(path)


def write_sizing_report(opts: PipelineOptions, profile: Path) -> Path:
    """Stage 4: the sizing report (solver report) from the profile; its directory."""
    from solver import report_cli

    argv = ["--chinchilla-params", repr(opts.chinchilla_params), "--requests", repr(opts.requests),
            "--inference-profile", str(profile), "--out-dir", str(opts.path(opts.results_dir, "reports"))]
    if opts.name:
        argv += ["--name", opts.name]
    out_dir, _ = report_cli.make_report(_parse("solver report", report_cli.add_args, argv + opts.report_args))
    return out_dir


def _stage(k: int, title: str, fn: Callable, *a, err=sys.stderr):
    """Run one stage under its header; its errors become PipelineError naming it."""
    print(f"[{k}/{STAGES}] {title}", file=err, flush=True)
    t0 = time.monotonic()
    try:
        return fn(*a)
    except PipelineError:
        raise
    except (ValueError, OSError, CliError) as exc:  # bad input of the stage (each stage's own one-line errors)
        raise PipelineError(f"stage {k} ({title}): {one_line(exc)}", 2) from None
    except RuntimeError as exc:  # a check that failed, a server that did not start (its log tail included)
        raise PipelineError(f"stage {k} ({title}) failed: {one_line(exc)}", 1) from None
    finally:
        print(f"      ({time.monotonic() - t0:.0f} s)", file=err, flush=True)


def run_pipeline(opts: PipelineOptions, *, err=sys.stderr) -> Path:
    """Run the four stages; return the report directory. Raises PipelineError on a failed stage."""
    gpu = has_nvidia_gpu()
    if opts.model and opts.ladder:
        raise PipelineError("give one --model or a ladder (--ladder-model, repeated), not both", 2)
    if gpu and not opts.model and not opts.ladder:
        raise PipelineError("on a GPU node give the model(s): --ladder-model DIR_OR_HUB_ID (repeat it, smallest "
                            "first; README names published W8A8 checkpoints) or one --model", 2)
    what = opts.model or ("ladder " + ", ".join(opts.ladder) if opts.ladder else "the CPU ladder (built here)")
    print(f"pipeline: {'NVIDIA GPU found' if gpu else 'no NVIDIA GPU: vLLM CPU backend'}; {what}", file=err, flush=True)
    model_dirs = _stage(1, "prepare the INT8 model(s)", prepare_models, opts, err=err)
    config = opts.config or default_config(gpu, ladder=not opts.model)
    run_dirs = _stage(2, "sweep with vLLM", lambda: sweep_models(opts, model_dirs, config, err=err), err=err)
    if not run_dirs:
        raise PipelineError("stage 2 wrote no run directory")
    profile = _stage(3, "calibrate a profile", calibrate_runs, opts, run_dirs, err=err)
    if not profile.is_file():
        raise PipelineError(f"stage 3 did not write {profile}")
    return _stage(4, "write the sizing report", write_sizing_report, opts, profile, err=err)


# --------------------------------------------------------------------------- command line


def add_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", help="ONE model directory or hub id to serve instead of a ladder (its profile has no "
                                   "performance model, so the report has no N-dependent cost); passed to `bench "
                                   "prepare --model`, which quantizes to INT8 W8A8 or passes a pre-quantized one through")
    p.add_argument("--ladder-model", action="append", default=None, metavar="DIR|HUB_ID",
                   help="a size of the ladder (repeat, smallest first; default on a CPU: bench.ladder's 2.6M/14.7M/136M)")
    p.add_argument("--config", help="sweep TOML (default: bench/data/ladder_cpu.toml for the CPU ladder, "
                                    "sweep_cpu.toml for one model on a CPU, sweep_a100.toml on a GPU node)")
    p.add_argument("--usd-per-hour", type=positive, help="price per device-hour (sweep and profile)")
    p.add_argument("--chinchilla-params", type=at_least_one, default=30e9,
                   help="report target (default 30e9, the paper's)")
    p.add_argument("--requests", type=non_negative, default=17.5e9, help="report lifetime requests (default 17.5e9)")
    p.add_argument("--name", help="report name")
    p.add_argument("--results", default="results", help="results root (default results)")
    p.add_argument("--models-dir", default="models", help="prepared models (default models, git-ignored)")
    p.add_argument("--quick", action="store_true",
                   help="a shorter sweep for CI: 4 measured requests per run, no warm-up")
    for stage in ("prepare", "sweep", "calibrate", "report"):
        p.add_argument(f"--{stage}-args", default="", metavar="ARGS",
                       help=f"extra arguments for the {stage} stage, one shell-quoted string")


def options_from_args(args) -> PipelineOptions:
    sweep = shlex.split(args.sweep_args)
    if args.quick:
        sweep = ["--num-requests", "4", "--warmup", "0", "--no-progress"] + sweep
    return PipelineOptions(
        model=args.model, ladder=args.ladder_model, config=args.config, results_dir=args.results, models_dir=args.models_dir,
        usd_per_hour=args.usd_per_hour, chinchilla_params=args.chinchilla_params, requests=args.requests,
        name=args.name, prepare_args=shlex.split(args.prepare_args), sweep_args=sweep,
        calibrate_args=shlex.split(args.calibrate_args), report_args=shlex.split(args.report_args),
    )


def main(argv: list[str] | None = None) -> int:
    from solver.cli_args import Parser

    parser = Parser(prog=PROG, description=__doc__.split("\n\n")[0],
                    formatter_class=argparse.RawDescriptionHelpFormatter)
    add_args(parser)
    return run(parser.parse_args(argv))


def run(args: argparse.Namespace) -> int:
    """CLI body for parsed `add_args` arguments. SIGINT, SIGTERM and SIGHUP stop the load, then the
    server, mark the run in progress interrupted and exit 128 + the signal (bench.stopping)."""
    from bench.stopping import Interrupted, install_stop_handlers

    install_stop_handlers()
    try:
        report = run_pipeline(options_from_args(args))
    except PipelineError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return exc.returncode if exc.returncode in (1, 2) else 1
    except (Interrupted, KeyboardInterrupt) as exc:
        print(f"{PROG}: {exc or 'interrupted'}; re-run to resume (complete runs are skipped)", file=sys.stderr)
        return int(exc.code) if isinstance(exc, Interrupted) else 130
    print(f"report: {report / 'report.html'}")
    print(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
