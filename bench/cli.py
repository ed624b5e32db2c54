"""`python -m bench prepare|run|sweep|ladder|hardware|operators`: the command line of the benchmark (all printing lives here).

    prepare   build a tiny Llama model and quantize it to INT8 W8A8 (bench.model.prepare)
    run       measure workload x concurrency (or rate) now, always into new run directories
    sweep     the same from a TOML config; runs already complete are skipped, so a crashed or
              interrupted sweep resumes where it stopped
    hardware  measure this machine's dense matmul rates and memory bandwidth (a CUDA GPU with torch
              alone, next to its datasheet values; else the CPU) into results/hardware/<name>.json
    ladder    prepare several sizes of one model family and sweep each with the same config (the
              evidence of `calibrate profile --ladder`; bench.run.ladder)
    operators time the kernels vLLM runs in a decoder step (INT8 GEMMs at every row count, attention,
              norms, rotary, activation, sampler) over a grid of shapes, into
              results/hardware/operators/<name>.json (bench.operators; CUDA: torch stand-ins)

Exit status: 0 every run complete; 1 a run failed or the server died; 2 bad input (one line).
"""

from __future__ import annotations

import argparse
import sys

from bench.config import (
    DEFAULT_RESULTS,
    SERVER_FLAGS,
    ConfigError,
    SweepConfig,
    load_config,
    with_overrides,
)
from bench.model.cli import add_prepare_args
from bench.operators import cli as operators_cli
from core.cli import (
    OneLineParser,
    bad_input,
    float_list,
    int_list,
    nonneg_float,
    nonneg_int,
    peak,
    positive_float,
    positive_int,
)
from core.gpus import DTYPES

PROG = "python -m bench"

PREPARE_EPILOG = f"""examples:
  {PROG} prepare                                   # tiny Llama (14.7 M) -> models/tiny-llama-h512-l4-w8a8
  {PROG} prepare --hidden-size 256 --num-layers 2  # smaller and faster (~2 M)
  {PROG} prepare --model /models/llama-3.1-8b      # quantize a local checkpoint to INT8 W8A8
  {PROG} prepare --quantization bnb-int8           # bitsandbytes LLM.int8 instead"""

RUN_EPILOG = f"""examples:
  {PROG} run --model models/tiny-llama-w8a8 --workload prefill --input-tokens 512 --concurrency 1,4
  {PROG} run --model models/tiny-llama-w8a8 --workload decode --output-tokens 128 --concurrency 1,2,4,8
  {PROG} run --model models/tiny-llama-w8a8 --workload mixed --request-rate 0.5,1,2 --num-requests 50
  {PROG} run --model ./llama-8b-w8a8 --endpoint http://gpu-node:8000 --api-key-env VLLM_API_KEY \\
      --served-name llama-8b --hardware-name a100-80gb --workload decode --concurrency 1,16,64
Results go to <results>/<hardware>/<model>/<run_id>/ (run.json, requests.jsonl, ...)."""

SWEEP_EPILOG = f"""examples:
  {PROG} sweep --config bench/data/sweep_cpu.toml
  {PROG} sweep --config bench/data/sweep_a100.toml --model ./llama-8b-w8a8 --usd-per-hour 1.10
  {PROG} sweep --config bench/data/sweep_cpu.toml --concurrency 1,2 --num-requests 8   # flags beat the file
Runs already complete are skipped; a failed or interrupted run is measured again in a new directory."""

LADDER_EPILOG = f"""examples:
  {PROG} ladder                                    # the CPU ladder (2.6M, 14.7M, 136M) with bench/data/ladder_cpu.toml
  {PROG} ladder --config bench/data/sweep_a100.toml \\
      --ladder-model RedHatAI/Llama-3.2-3B-Instruct-quantized.w8a8 \\
      --ladder-model RedHatAI/Meta-Llama-3.1-8B-Instruct-quantized.w8a8   # a GPU ladder of published W8A8 checkpoints
Then: python -m calibrate profile <results>/<hardware> --ladder"""

HARDWARE_EPILOG = f"""examples:
  {PROG} hardware                     # a CUDA GPU (NVML sees one): bf16/int8 GEMM + bandwidth vs datasheet; else the CPU
  {PROG} hardware --gpu --device 1    # measure CUDA device 1 (an error line where there is no CUDA)
  {PROG} hardware --remeasure         # measure the CPU again (the cached record is kept, renamed)
Needs only torch, numpy, pydantic and nvidia-ml-py: runs from a plain checkout."""


def add_measure_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("what to measure")
    g.add_argument("--config", metavar="FILE.toml", help="sweep config (see bench/data/sweep_cpu.toml); flags override it")
    g.add_argument("--model", metavar="DIR", help="local model directory (config.json; weights unless --endpoint)")
    g.add_argument("--model-name", help="short name used in result paths (default: the directory name)")
    g.add_argument("--workload", choices=("prefill", "decode", "mixed", "distribution"),
                   help="replaces the config's runs with this one workload")
    g.add_argument("--input-tokens", type=positive_int, metavar="P")
    g.add_argument("--output-tokens", type=positive_int, metavar="G")
    g.add_argument("--distribution-file", metavar="CSV", help="(input, output) pairs for --workload distribution")
    g.add_argument("--concurrency", type=int_list, metavar="1,2,4", help="closed-loop requests in flight")
    g.add_argument("--request-rate", type=float_list, metavar="R1,R2", help="Poisson arrivals, requests/s")
    g.add_argument("--num-requests", type=positive_int, metavar="N", help="measured requests per run")
    g.add_argument("--warmup", type=nonneg_int, metavar="N", help="warm-up requests per run (not measured)")
    g.add_argument("--repeats", type=positive_int, metavar="N",
                   help="replicates of every point, run in a seeded random order (default: the config's, else 1)")
    g.add_argument("--until-width", type=positive_float, metavar="W",
                   help="adaptive stopping: replicate each closed-loop point until the 95 %% interval of its mean "
                        "device-seconds per request is within +-W of the mean (e.g. 0.05); prints the width reached")
    g.add_argument("--max-repeats", type=positive_int, metavar="N", help="adaptive stopping: runs per point at most (default 8)")
    g.add_argument("--max-extend-s", type=positive_float, metavar="S",
                   help="adaptive stopping: seconds of extra runs at most (default 600)")
    g.add_argument("--seed", type=int)
    g.add_argument("--slo-ttft-s", type=positive_float, help="goodput SLO: time to first token")
    g.add_argument("--slo-tpot-s", type=positive_float, help="goodput SLO: time per output token")
    g.add_argument("--results", metavar="DIR", help=f"results root (default {DEFAULT_RESULTS})")
    # the [server] flags are declared once, beside the config section (bench.config.SERVER_FLAGS)
    add_server_args(p.add_argument_group("server"), positive_int=positive_int)
    h = p.add_argument_group("hardware (override detected / table values)")
    h.add_argument("--hardware-name", help="table key or alias (a100-40gb, ...), or a free name for --endpoint")
    h.add_argument("--usd-per-hour", type=nonneg_float, metavar="USD", help="price per device-hour")
    h.add_argument("--peak-flop-per-s", type=peak, action="append", metavar="DTYPE=VALUE",
                   help="dense peak per device, e.g. int8=624e12 (repeatable)")
    h.add_argument("--memory-bandwidth", type=positive_float, metavar="BYTES_PER_S", help="per device")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog=PROG, description="Measure prefill/decode MFU, energy and $ per request with vLLM.",
                           formatter_class=argparse.RawDescriptionHelpFormatter,
                           epilog=f"examples:\n  {PROG} prepare --help\n  {PROG} sweep --config bench/data/sweep_cpu.toml")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=OneLineParser)
    prep = sub.add_parser("prepare", help="build / quantize a model (INT8 W8A8)", epilog=PREPARE_EPILOG,
                          formatter_class=argparse.RawDescriptionHelpFormatter)
    add_prepare_args(prep)
    run = sub.add_parser("run", help="measure now (always new run directories)", epilog=RUN_EPILOG,
                         formatter_class=argparse.RawDescriptionHelpFormatter)
    add_measure_args(run)
    sw = sub.add_parser("sweep", help="measure a TOML sweep; skips complete runs, resumes after a crash",
                        epilog=SWEEP_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_measure_args(sw)
    lad = sub.add_parser("ladder", help="prepare and sweep several model sizes with one config",
                         epilog=LADDER_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_measure_args(lad)
    lad.add_argument("--ladder-model", action="append", default=None, metavar="DIR|HUB_ID",
                     help="a ladder size (repeat; smallest first); default: the CPU ladder of bench.run.ladder")
    lad.add_argument("--models-dir", default="models", help="where prepared models go (default %(default)s)")
    hw = sub.add_parser("hardware", help="measure dense matmul rates and memory bandwidth (GPU or CPU)",
                        epilog=HARDWARE_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_hardware_args(hw)
    ops = sub.add_parser("operators", help="time the kernels of a decoder step over a grid of shapes (operator profile)",
                         description=operators_cli.__doc__.split("\n\n")[0])
    operators_cli.add_args(ops)
    return parser


def add_hardware_args(p: argparse.ArgumentParser) -> None:
    from bench.hardware.cache import CACHE_DIR

    p.add_argument("--gpu", action="store_true", help="measure a CUDA device (default: when NVML sees a GPU)")
    p.add_argument("--device", type=nonneg_int, default=0, metavar="N", help="CUDA device index (default 0)")
    p.add_argument("--dtype", default="int8", choices=DTYPES, help="CPU: datatype whose peak a run divides by")
    p.add_argument("--remeasure", action="store_true", help="CPU: measure again (the old record is kept, renamed)")
    p.add_argument("--seconds", type=positive_float, default=3.0, help="timing budget per GEMM path (default 3)")
    p.add_argument("--cache-dir", default=str(CACHE_DIR), metavar="DIR",
                   help="where records are written (default %(default)s)")


def add_server_args(group, *, positive_int) -> None:
    """Add the [server] flags of SERVER_FLAGS to an argparse group; `positive_int` is the CLI's
    argparse type for counts (its one number type)."""
    ints = {"max_model_len", "max_num_seqs", "tensor_parallel_size", "pipeline_parallel_size",
            "data_parallel_size", "port"}
    for key, (flag, kwargs) in SERVER_FLAGS.items():
        group.add_argument(flag, dest=f"server_{key}", **({"type": positive_int} if key in ints else {}), **kwargs)


def server_overrides(args) -> dict:
    """{"server.<key>": value} of the [server] flags given on the command line (None: not given)."""
    out = {}
    for key in SERVER_FLAGS:
        value = getattr(args, f"server_{key}", None)
        if key == "endpoint" and isinstance(value, list) and len(value) == 1:
            value = value[0]
        out[f"server.{key}"] = value
    return out


def config_from_args(args: argparse.Namespace) -> SweepConfig:
    """The TOML config (or an empty one) with every given flag applied on top."""
    cfg = load_config(args.config) if args.config else SweepConfig()
    return with_overrides(cfg, overrides_from_args(args))


def overrides_from_args(args: argparse.Namespace) -> dict:
    """The measuring flags given, as bench.config.with_overrides keys ("runs" first, so per-run
    overrides such as concurrency apply to the new list); flags not given are None (ignored)."""
    ov: dict = {
        "model": args.model, "model_name": args.model_name, "results": args.results,
        "seed": args.seed, "num_requests": args.num_requests, "warmup": args.warmup, "repeats": args.repeats,
        "until_width": args.until_width, "max_repeats": args.max_repeats, "max_extend_s": args.max_extend_s,
        "slo_ttft_s": args.slo_ttft_s, "slo_tpot_s": args.slo_tpot_s,
        **server_overrides(args),
        "hardware.name": args.hardware_name, "hardware.usd_per_hour": args.usd_per_hour,
        "hardware.memory_bandwidth_bytes_per_s": args.memory_bandwidth,
        "hardware.peak_flop_per_s": dict(args.peak_flop_per_s) if args.peak_flop_per_s else None,
    }  # fmt: skip
    if args.workload:
        if not (args.concurrency or args.request_rate):
            raise ConfigError("--workload needs --concurrency 1,2,.. or --request-rate R1,R2,..")
        ov["runs"] = [{
            "workload": args.workload, "input_tokens": args.input_tokens, "output_tokens": args.output_tokens,
            "distribution_file": args.distribution_file, "concurrency": args.concurrency,
            "request_rate_per_s": args.request_rate,
        }]  # fmt: skip
    else:
        for flag in ("input_tokens", "output_tokens", "distribution_file"):
            if getattr(args, flag) is not None:
                raise ConfigError(f"--{flag.replace('_', '-')} needs --workload (it describes one workload)")
        if args.concurrency and args.request_rate:
            raise ConfigError("give --concurrency or --request-rate, not both")
        ov["concurrency"] = args.concurrency
        ov["request_rate_per_s"] = args.request_rate
    # ordered: "runs" first so per-run overrides (concurrency, num_requests) apply to the new list
    ordered = {"runs": ov.pop("runs")} if "runs" in ov else {}
    ordered.update(ov)
    return ordered


# --------------------------------------------------------------------------- printing


def _ms(x):
    return "-" if x is None else f"{x * 1e3:.1f}"


def _pct(x):
    return "-" if x is None else f"{x:.3%}"


def summary_table(results, title: str):
    from rich.table import Table

    t = Table(title=title, title_justify="left")
    for col in ("run", "status", "ok/fail", "dur s", "in tok/s", "out tok/s", "TTFT p50 ms",
                "TPOT p50 ms", "MFU in", "MFU out", "MFU all", "MBU", "$/req", "$/1M tok", "FLOP/vLLM"):
        t.add_column(col, justify="left" if col in ("run", "status") else "right", no_wrap=col == "run")
    for r in results:
        rec, s, d = r.record, r.record.summary, r.record.derived
        status = "skipped" if r.skipped else rec.status
        if s is None:
            t.add_row(rec.run_id, status, *["-"] * 13)
            continue
        t.add_row(
            rec.run_id, status, f"{s.num_ok}/{s.num_failed}", f"{s.duration_s:.2f}",
            f"{s.input_tokens_per_s:.0f}", f"{s.output_tokens_per_s:.0f}", _ms(s.ttft_s.p50), _ms(s.tpot_s.p50),
            _pct(d and d.mfu_input), _pct(d and d.mfu_output), _pct(d and d.mfu), _pct(d and d.mbu_output),
            "-" if not d or d.usd_per_request is None else f"{d.usd_per_request:.3g}",
            "-" if not d or d.usd_per_million_tokens is None else f"{d.usd_per_million_tokens:.3g}",
            "-" if not d or d.flop_ratio_to_vllm is None else f"{d.flop_ratio_to_vllm:.4f}",
        )
    return t


def cmd_measure(args: argparse.Namespace, *, skip_complete: bool) -> int:
    from rich.console import Console

    from bench.run.sweep import run_from_config
    from bench.server.process import Interrupted, install_stop_handlers

    install_stop_handlers()  # SIGINT, SIGTERM, SIGHUP: stop the load, then the server, exit 128 + signal
    # rich wraps at 80 columns when not on a terminal (CI logs, pipes): give tables room there
    console = Console(stderr=False, width=None if sys.stdout.isatty() else 200)
    err = Console(stderr=True, width=None if sys.stderr.isatty() else 200)
    try:
        cfg = config_from_args(args)
    except ConfigError as exc:
        return bad_input(f"{PROG} {args.command}", str(exc))
    specs = cfg.specs()
    progress = not args.no_progress
    bars: dict = {}

    def on_status(msg: str) -> None:
        err.print(f"[dim]{msg}[/dim]")

    def runs_bar():
        # created on the first run, so bad input is reported before any bar is drawn
        if progress and "runs" not in bars:
            from tqdm import tqdm

            bars["runs"] = tqdm(total=len(specs), desc="runs", unit="run", file=sys.stderr, position=0)

    def on_run_start(spec, run_dir):
        runs_bar()
        if progress:
            from tqdm import tqdm

            bars["req"] = tqdm(total=spec.warmup_requests + spec.num_requests, desc=spec.label(),
                               unit="req", leave=False, file=sys.stderr, position=1)

    def on_record(rec):
        if "req" in bars:
            bars["req"].update(1)

    def on_run_end(res):
        runs_bar()
        if "req" in bars:
            bars.pop("req").close()
        if "runs" in bars:
            bars["runs"].update(1)
        if not res.skipped:
            console.print(summary_table([res], title=f"run {res.record.run_id}"))
            if res.record.error:
                err.print(f"[red]run failed:[/red] {res.record.error}")

    try:
        outcome = run_from_config(cfg, skip_complete=skip_complete, on_status=on_status,
                                  on_run_start=on_run_start, on_record=on_record, on_run_end=on_run_end)
    except (ValueError, ConfigError) as exc:
        return bad_input(f"{PROG} {args.command}", str(exc))
    except Interrupted as exc:  # the load and the server are stopped by now (the stack unwound)
        print(f"{PROG} {args.command}: {exc}; server stopped, the run in progress is marked interrupted "
              f"(re-run `{PROG} sweep` to resume)", file=sys.stderr)
        return int(exc.code)
    except Exception as exc:  # server failed to start, etc.: the message carries the log tail
        from bench.server.process import ServerError

        if isinstance(exc, ServerError):
            print(f"{PROG} {args.command}: server error: {exc}", file=sys.stderr)
            return 1
        raise
    finally:
        for bar in bars.values():
            bar.close()
    console.print(summary_table(outcome.results, title="sweep summary"))
    if outcome.not_run:
        err.print(f"[red]the server died; {len(outcome.not_run)} run(s) not measured:[/red] "
                  + ", ".join(s.label() for s in outcome.not_run) + f" (re-run `{PROG} sweep` to resume)")
    new = [r for r in outcome.results if not r.skipped]
    failed = [r for r in new if r.record.status != "complete"]
    print(f"wrote {len(new)} run director{'y' if len(new) == 1 else 'ies'} "
          f"({len(failed)} failed, {len(outcome.results) - len(new)} already complete) under {outcome.base}")
    return 0 if outcome.ok else 1


def cmd_prepare(args: argparse.Namespace) -> int:
    from bench.model.cli import run_prepare

    return int(run_prepare(args) or 0)


def _rate(x):
    return "-" if x is None else f"{x / 1e12:.2f} T"


def cmd_hardware(args: argparse.Namespace) -> int:
    """GPU: measure, print measured vs datasheet, write the record. CPU: the cached or measured record."""
    import json
    from pathlib import Path

    from bench.hardware import cache as hc
    from bench.hardware import microbench as mb
    from bench.hardware.nvml import nvml_available

    prog = f"{PROG} hardware"
    if args.gpu or nvml_available()[0]:
        try:
            rec, path = hc.measure_and_cache_gpu(args.cache_dir, device_index=args.device, seconds=args.seconds)
        except ValueError as exc:
            return bad_input(prog, str(exc))
        except RuntimeError as exc:  # no CUDA here: fail soft, one line
            print(f"{prog}: {exc}; nothing written", file=sys.stderr)
            return 1
        sheet = rec.datasheet or {}
        ratio = sheet.get("measured_over_datasheet", {})
        print(f"{rec.name} ({rec.device_name}, CUDA device {rec.device_index})")
        for d in mb.CUDA_DTYPES:
            measured = rec.peak_flop_per_s.get(d)
            table = (sheet.get("peak_flop_per_s") or {}).get(d)
            frac = ratio.get(d)
            print(f"  {d:<6} measured {_rate(measured)}FLOP/s   datasheet {_rate(table)}FLOP/s"
                  + ("" if frac is None else f"   {frac:.0%}"))
        bw, bw_sheet = rec.memory_bandwidth_bytes_per_s, sheet.get("memory_bandwidth_bytes_per_s")
        print(f"  memory measured {bw / 1e9:.0f} GB/s   datasheet "
              + ("-" if bw_sheet is None else f"{bw_sheet / 1e9:.0f} GB/s   {bw / bw_sheet:.0%}"))
        if not sheet:
            print("  (not in core/data/gpus.toml: no datasheet values to compare)")
        print(f"wrote {path}")
        return 0
    from bench.hardware.device import detect_hardware

    try:
        info = detect_hardware(dtype_for_peak=args.dtype, cache_dir=args.cache_dir, measure_seconds=args.seconds,
                               remeasure=args.remeasure)
    except ValueError as exc:
        return bad_input(prog, str(exc))
    print(json.dumps(info.model_dump(), indent=2))
    print(f"cache: {hc.cache_path(Path(args.cache_dir), info.name)}" if info.kind == "cpu" else "")
    return 0


def cmd_ladder(args: argparse.Namespace) -> int:
    """Prepare every rung, then `sweep` each with the same config and flags; the worst exit status."""
    from bench.model.prepare import PrepareError
    from bench.run import ladder

    if args.model:
        return bad_input(f"{PROG} ladder", "--model: give the sizes with --ladder-model (repeat it), not --model")
    if not args.config:
        args.config = str(ladder.DEFAULT_CPU_CONFIG)
    try:
        dirs = ladder.prepare_ladder(ladder.default_rungs(args.ladder_model), models_dir=args.models_dir,
                                     on_status=lambda m: print(m, file=sys.stderr))
    except (PrepareError, ValueError) as exc:
        return bad_input(f"{PROG} ladder", str(exc))
    worst = 0
    for d in dirs:
        args.model = str(d)
        rc = cmd_measure(args, skip_complete=True)
        if rc == 2 or rc >= 128:  # bad input or a stop signal: the other sizes would fail the same way
            return rc
        worst = max(worst, rc)
    return worst


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "prepare":
        return cmd_prepare(args)
    if args.command == "ladder":
        return cmd_ladder(args)
    if args.command == "hardware":
        return cmd_hardware(args)
    if args.command == "operators":
        return operators_cli.run(args)
    return cmd_measure(args, skip_complete=args.command == "sweep")
