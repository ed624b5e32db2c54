"""The whole chain in one command: prepare a model, sweep it with vLLM, calibrate, write the report.

    python -m solver.pipeline                       # this machine: tiny INT8 W8A8 model on vLLM's CPU backend
    python -m solver.pipeline --model /models/llama-3.1-8b --usd-per-hour 1.10   # a GPU node

Stages talk only through files and each runs as its own command, so `solver` imports nothing from
`bench` or `calibrate`:

  1. python -m bench prepare [--model M]          -> models/<name>/        (last line "prepared: DIR")
  2. python -m bench sweep --config C --model DIR -> results/runs/<hw>/<model>/...  (last line "... under BASE")
  3. python -m calibrate profile BASE --out P     -> results/calibration/<hw>-<model>.json
  4. python -m solver report ... --inference-profile P -> results/reports/<name>/

Each stage's own output (tables, progress bars) is shown as it runs, under a "[k/4]" header. Nothing
is overwritten: prepare reuses an identical prepared model, sweep skips complete runs, the profile
gets a free name (-2, -3, ...) if one exists, and the report directory too. The last printed line is
the report directory. The sweep config is `bench/data/sweep_cpu.toml` on a machine without an NVIDIA
GPU and `bench/data/sweep_a100.toml` where NVML sees one (bench detects the exact hardware itself).
"""

from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

PROG = "python -m solver.pipeline"
STAGES = 4


class PipelineError(RuntimeError):
    """A stage failed; the message names the stage and the command, and carries its exit code."""

    def __init__(self, message: str, returncode: int = 1):
        super().__init__(message)
        self.returncode = returncode


@dataclass
class PipelineOptions:
    model: str | None = None  # None: build the tiny default model
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
    python: str = sys.executable
    cwd: str | None = None


def has_nvidia_gpu() -> bool:
    """True when NVML initialises and reports at least one device (heavy import kept here)."""
    try:
        import pynvml
    except ImportError:
        return False
    try:
        pynvml.nvmlInit()
    except Exception:  # NVMLError_LibraryNotFound on machines without a driver
        return False
    try:
        return pynvml.nvmlDeviceGetCount() > 0
    finally:
        try:
            pynvml.nvmlShutdown()
        except Exception:
            pass


def default_config(gpu: bool) -> str:
    return "bench/data/sweep_a100.toml" if gpu else "bench/data/sweep_cpu.toml"


def run_stage(k: int, title: str, cmd: list[str], *, cwd=None, out=sys.stdout, err=sys.stderr) -> str:
    """Run one stage, echo its stdout line by line (stderr passes through), return its last line."""
    print(f"[{k}/{STAGES}] {title}", file=err, flush=True)
    print("      $ " + " ".join(shlex.quote(c) for c in cmd), file=err, flush=True)
    t0 = time.monotonic()
    last = ""
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=None, text=True, cwd=cwd, bufsize=1) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            out.write(line)
            out.flush()
            if line.strip():
                last = line.strip()
        rc = proc.wait()
    print(f"      ({time.monotonic() - t0:.0f} s)", file=err, flush=True)
    if rc != 0:
        raise PipelineError(f"stage {k} ({title}) failed with exit code {rc}: {' '.join(cmd)}", rc)
    return last


def free_path(path: Path) -> Path:
    """path, or path-2.json, -3, ... when taken (profiles are never overwritten)."""
    cand, k = path, 2
    while cand.exists():
        cand = path.with_name(f"{path.stem}-{k}{path.suffix}")
        k += 1
    return cand


def _after(prefix: str, line: str) -> str:
    return line.split(prefix, 1)[1].strip() if prefix in line else line.strip()


def run_pipeline(opts: PipelineOptions, *, out=sys.stdout, err=sys.stderr) -> Path:
    """Run the four stages; return the report directory. Raises PipelineError on a failed stage."""
    py = opts.python
    root = Path(opts.cwd or ".")
    gpu = has_nvidia_gpu()
    print(f"pipeline: {'NVIDIA GPU found' if gpu else 'no NVIDIA GPU: vLLM CPU backend'}; "
          f"model {opts.model or 'tiny default (built here)'}", file=err, flush=True)

    cmd = [py, "-m", "bench", "prepare", "--models-dir", opts.models_dir] + (
        ["--model", opts.model] if opts.model else []) + opts.prepare_args
    model_dir = _after("prepared:", run_stage(1, "prepare the INT8 model", cmd, cwd=opts.cwd, out=out, err=err))

    config = opts.config or default_config(gpu)
    cmd = [py, "-m", "bench", "sweep", "--config", config, "--model", model_dir,
           "--results", str(Path(opts.results_dir) / "runs")]
    if opts.usd_per_hour is not None:
        cmd += ["--usd-per-hour", str(opts.usd_per_hour)]
    cmd += opts.sweep_args
    base = _after(" under ", run_stage(2, "sweep with vLLM", cmd, cwd=opts.cwd, out=out, err=err))
    base_path = root / base if not Path(base).is_absolute() else Path(base)
    if not base_path.is_dir():
        raise PipelineError(f"stage 2 did not name its run directory (last line: {base!r})")

    stem = "-".join(Path(base).parts[-2:]) if len(Path(base).parts) >= 2 else Path(base).name
    profile = free_path(root / opts.results_dir / "calibration" / f"{stem}.json")
    profile_rel = profile.relative_to(root) if not Path(opts.results_dir).is_absolute() else profile
    cmd = [py, "-m", "calibrate", "profile", str(base), "--out", str(profile_rel)] + opts.calibrate_args
    if opts.usd_per_hour is not None:
        cmd += ["--usd-per-hour", str(opts.usd_per_hour)]
    run_stage(3, "calibrate a profile", cmd, cwd=opts.cwd, out=out, err=err)
    if not profile.is_file():
        raise PipelineError(f"stage 3 did not write {profile}")

    cmd = [py, "-m", "solver", "report", "--chinchilla-params", f"{opts.chinchilla_params:g}",
           "--requests", f"{opts.requests:g}", "--inference-profile", str(profile_rel),
           "--out-dir", str(Path(opts.results_dir) / "reports")]
    if opts.name:
        cmd += ["--name", opts.name]
    cmd += opts.report_args
    report = run_stage(4, "write the sizing report", cmd, cwd=opts.cwd, out=out, err=err)
    report_path = root / report if not Path(report).is_absolute() else Path(report)
    if not report_path.is_dir():
        raise PipelineError(f"stage 4 did not name its report directory (last line: {report!r})")
    return Path(report)


def add_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", help="model directory or hub id to serve (default: build the tiny INT8 model here); "
                                   "passed to `bench prepare --model`, which quantizes to INT8 W8A8 or passes a "
                                   "pre-quantized checkpoint through")
    p.add_argument("--config", help="sweep TOML (default: bench/data/sweep_cpu.toml, or sweep_a100.toml on a GPU node)")
    p.add_argument("--usd-per-hour", type=float, help="price per device-hour (sweep and profile)")
    p.add_argument("--chinchilla-params", type=float, default=30e9, help="report target (default 30e9, the paper's)")
    p.add_argument("--requests", type=float, default=17.5e9, help="report lifetime requests (default 17.5e9)")
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
        model=args.model, config=args.config, results_dir=args.results, models_dir=args.models_dir,
        usd_per_hour=args.usd_per_hour, chinchilla_params=args.chinchilla_params, requests=args.requests,
        name=args.name, prepare_args=shlex.split(args.prepare_args), sweep_args=sweep,
        calibrate_args=shlex.split(args.calibrate_args), report_args=shlex.split(args.report_args),
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_args(parser)
    return run(parser.parse_args(argv))


def run(args: argparse.Namespace) -> int:
    """CLI body for parsed `add_args` arguments (for a host CLI: add_args(p); p.set_defaults(_run=run))."""
    try:
        report = run_pipeline(options_from_args(args))
    except PipelineError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return exc.returncode if exc.returncode in (1, 2) else 1
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted; re-run to resume (complete runs are skipped)", file=sys.stderr)
        return 130
    print(f"report: {report / 'report.html'}")
    print(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
