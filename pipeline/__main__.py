"""`python -m pipeline`: the whole chain on this machine (pipeline.chain), from the command line.

    python -m pipeline                       # this machine: the CPU ladder (bench.run.ladder), INT8 W8A8
    python -m pipeline --ladder-model DIR_OR_HUB_ID --ladder-model ...   # a ladder of your own (GPU node)
    python -m pipeline --model /models/llama-3.1-8b --usd-per-hour 1.10   # one model (no N-dependent cost)

`--prepare-args`, `--sweep-args`, `--calibrate-args`, `--report-args` take the flags of `python -m
bench prepare|sweep`, `python -m calibrate profile`, `python -m solver report`, parsed here by the
stage's own parser into its options object (a bad one: one line, exit 2). The last printed line is
the report directory. SIGINT, SIGTERM and SIGHUP stop the load, then the server, mark the run in
progress interrupted and exit 128 + the signal (bench.server.stopping).
"""

from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Callable

from bench.cli import add_measure_args, overrides_from_args
from bench.model.cli import add_prepare_args
from bench.model.prepare import TinySpec
from bench.server.stopping import Interrupted, install_stop_handlers
from calibrate.profile import cli as profile_cli
from core.cli import Parser, at_least_one, non_negative, positive
from pipeline.chain import PipelineError, PipelineOptions, PrepareOptions, run_pipeline
from pipeline.ladder_plan import SWEEP_BUDGET_S
from solver.report import cli as report_cli

PROG = "python -m pipeline"


def add_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", help="ONE model directory or hub id to serve instead of a ladder (its profile has no "
                                   "performance model, so the report has no N-dependent cost); prepared as `bench "
                                   "prepare --model` does: quantized to INT8 W8A8, or a pre-quantized one passed through")
    p.add_argument("--ladder-model", action="append", default=None, metavar="DIR|HUB_ID",
                   help="a size of the ladder (repeat, smallest first; default on a CPU: bench.run.ladder's CPU ladder)")
    p.add_argument("--config", help="sweep TOML (default: bench/data/ladder_cpu.toml for the CPU ladder, "
                                    "sweep_cpu.toml for one model on a CPU, sweep_a100.toml on a GPU node)")
    p.add_argument("--usd-per-hour", type=positive, help="price per device-hour (sweep and profile)")
    p.add_argument("--chinchilla-params", type=at_least_one, default=30e9,
                   help="report target (default 30e9, the paper's)")
    p.add_argument("--requests", type=non_negative, default=17.5e9, help="report lifetime requests (default 17.5e9)")
    p.add_argument("--name", help="report name")
    p.add_argument("--results", default="results", help="results root (default results)")
    p.add_argument("--models-dir", default="models", help="prepared models (default models, git-ignored)")
    p.add_argument("--no-paper-gpu", action="store_true",
                   help="leave the paper's A100-40GB (datasheet, assumed efficiencies) out of the report's hardware table")
    p.add_argument("--no-operators", action="store_true",
                   help="do not measure the device's operator profile (stage 1, ~3 min once per host; a stored one "
                        "under RESULTS/hardware/operators/ is reused and still checks the ladder)")
    p.add_argument("--sweep-budget-s", type=non_negative, default=SWEEP_BUDGET_S, metavar="S",
                   help=f"the default CPU ladder's top size is the largest whose sweep, predicted from the operator "
                        f"profile, fits S seconds (default {SWEEP_BUDGET_S:g}; 0: the default ladder as it is)")
    p.add_argument("--quick", action="store_true",
                   help="a shorter sweep for CI: 4 measured requests per run, no warm-up")
    for stage in ("prepare", "sweep", "calibrate", "report"):
        p.add_argument(f"--{stage}-args", default="", metavar="ARGS",
                       help=f"extra arguments for the {stage} stage, one shell-quoted string")


def _parse(stage: str, add_args: Callable[[argparse.ArgumentParser], None], text: str) -> argparse.Namespace:
    """One --X-args string parsed by the stage's own parser; a bad one is a PipelineError (exit 2)."""
    argv = shlex.split(text)

    class _Raising(Parser):
        def error(self, message: str) -> None:  # type: ignore[override]
            raise PipelineError(f"{stage}: {message} (in {text})", 2)

    p = _Raising(prog=stage)
    add_args(p)
    return p.parse_args(argv)


def options_from_args(args: argparse.Namespace) -> PipelineOptions:
    """The pipeline's flags and each stage's extra flags as typed options."""

    prep = _parse("bench prepare", add_prepare_args, args.prepare_args)
    spec = TinySpec(hidden_size=prep.hidden_size, num_layers=prep.num_layers, num_heads=prep.num_heads,
                    num_kv_heads=prep.num_kv_heads, intermediate_size=prep.intermediate_size,
                    vocab_size=prep.vocab_size, max_position=prep.max_position, seed=prep.seed,
                    tie_embeddings=prep.tie_embeddings)
    prepare = PrepareOptions(quantization=prep.quantization, quantizer=prep.quantizer, out_dir=prep.out,
                             name=prep.name, spec=spec, check_generate=not prep.no_check)
    sweep_text = ("--num-requests 4 --warmup 0 --no-progress " if args.quick else "") + args.sweep_args
    sweep = overrides_from_args(_parse("bench sweep", add_measure_args, sweep_text))
    profile = profile_cli.options_from_args(_parse("calibrate profile", profile_cli.add_args, args.calibrate_args))
    target = f"--chinchilla-params {args.chinchilla_params!r} --requests {args.requests!r} "  # required there
    report = report_cli.options_from_args(_parse("solver report", report_cli.add_args, target + args.report_args))
    return PipelineOptions(
        model=args.model, ladder=args.ladder_model, config=args.config, results_dir=args.results,
        models_dir=args.models_dir, usd_per_hour=args.usd_per_hour, chinchilla_params=args.chinchilla_params,
        requests=args.requests, name=args.name, prepare=prepare, sweep_overrides=sweep, profile=profile,
        report=report, paper_gpu=not args.no_paper_gpu, operators=not args.no_operators,
        sweep_budget_s=args.sweep_budget_s or None,
    )


def main(argv: list[str] | None = None) -> int:
    parser = Parser(prog=PROG, description=__doc__.split("\n\n")[0],
                    formatter_class=argparse.RawDescriptionHelpFormatter)
    add_args(parser)
    args = parser.parse_args(argv)
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
