"""`python -m solver report`: a sizing report from a calibration profile.

    python -m solver report (--loss L | --chinchilla-params N) --requests R --inference-profile P
        [--peak-requests-per-s X] [--train-gpu a100-80gb --train-dtype bf16 --mfu-train 0.5 | --train-profile P]
        [--input-tokens 70 --output-tokens 215] [--law NAME|FILE] [--name NAME] [--out-dir results/reports]

writes results/reports/<name>/ (solver.report_write) with report.md, report.html (self-contained),
PNG plots and solution.json, and prints the directory on its last line. Every number is checked
before any work (solver.cli_args); `make_report(args)` is the same without printing the summary.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bench.paper_settings import PAPER
from solver.cli_args import CliError, days, flag_error, fraction, non_negative, peak_rate, positive, ratio, \
    seconds, tokens
from solver.optimize_cli import COST_DEFAULTS, SOURCES, add_target_args, target_from_args, train_from_gpu
from solver.profile_input import add_profile_args

DEFAULT_OUT_DIR = "results/reports"

# ReportInputs field -> the flags behind it (dest, exponent), as solver.optimize_cli.SOURCES
_REPORT_SOURCES = SOURCES | {
    "peak_requests_per_s": [("peak_requests_per_s", 1)], "lifetime_days": [("lifetime_days", 1)],
    "peak_to_mean": [("peak_to_mean", 1)], "input_tokens": [("input_tokens", 1)],
    "output_tokens": [("output_tokens", 1)], "inference_usd_per_h": [("inference_usd_per_hour", 1)],
    "slo_tpot_p90_s": [("slo_tpot_p90_s", 1)], "slo_ttft_p90_s": [("slo_ttft_p90_s", 1)],
}


def add_args(p: argparse.ArgumentParser) -> None:
    add_target_args(p)
    p.add_argument("--requests", type=non_negative, required=True, metavar="R", help="lifetime inference requests")
    p.add_argument("--peak-requests-per-s", type=peak_rate, metavar="X",
                   help="peak request rate the fleet must serve within the SLO (default: the lifetime demand "
                        "spread over --lifetime-days, times --peak-to-mean)")
    p.add_argument("--lifetime-days", type=days, default=365.0, help="deployment lifetime (default 365)")
    p.add_argument("--peak-to-mean", type=ratio, default=2.0, help="peak / mean request rate (default 2)")
    p.add_argument("--input-tokens", type=tokens, default=COST_DEFAULTS["input_tokens"],
                   help=f"input tokens per request (default {PAPER.input_tokens_per_request})")
    p.add_argument("--output-tokens", type=tokens, default=COST_DEFAULTS["output_tokens"],
                   help=f"output tokens per request (default {PAPER.output_tokens_per_request})")
    p.add_argument("--train-gpu", help=f"training GPU (default {PAPER.training.gpu}, the paper's)")
    p.add_argument("--train-dtype", help=f"datatype of training matmuls (default {PAPER.training.dtype})")
    p.add_argument("--mfu-train", type=fraction, help=f"training MFU (default {PAPER.mfu_train})")
    p.add_argument("--train-usd-per-hour", type=positive, metavar="X", help="training $/GPU-hour (default: table)")
    p.add_argument("--inference-usd-per-hour", type=positive, metavar="Y",
                   help="inference $/device-hour (default: the profile's price)")
    p.add_argument("--slo-tpot-p90-s", type=seconds, metavar="S", help="TPOT p90 limit (default: the profile's)")
    p.add_argument("--slo-ttft-p90-s", type=seconds, metavar="S", help="TTFT p90 limit (default: the profile's)")
    p.add_argument("--no-slo", action="store_true",
                   help="size batches by memory and throughput only (no latency limit)")
    p.add_argument("--name", help="report name (default: from profile, target and demand)")
    p.add_argument("--out-dir", default=DEFAULT_OUT_DIR, help=f"parent directory (default {DEFAULT_OUT_DIR})")
    add_profile_args(p)


def tool_version() -> str:
    from importlib import metadata

    from bench.provenance import git_commit

    try:
        version = metadata.version("infercost")
    except metadata.PackageNotFoundError:
        version = "unknown"
    return f"solver.report (infercost {version}, git {git_commit() or 'unknown'})"


def _train(args) -> tuple[float, dict]:
    """Training $ per useful FLOP and how it was obtained: a training profile, or GPU x MFU."""
    from bench.files import sha256_file
    from solver.profile_input import load_profile, train_usd_per_flop_from_profile

    if args.train_profile:
        prof = load_profile(args.train_profile)
        usd = train_usd_per_flop_from_profile(prof, usd_per_h=args.train_usd_per_hour)
        return usd, {"profile": str(args.train_profile), "sha256": sha256_file(args.train_profile),
                     "assumption": "training runs at the profile's prefill FLOP rate per device"}
    return train_from_gpu(args)


def _count(x: float) -> str:
    for scale, suffix in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "K")):
        if x >= scale:
            return f"{x / scale:.3g}{suffix}"
    return f"{x:.3g}"


def report_inputs(args):
    """(ReportInputs, profile, target loss) from the arguments; every number checked, nothing solved yet."""
    from solver.profile_input import load_profile
    from solver.report_solve import ReportInputs, check_inputs

    if not args.inference_profile:
        raise CliError("--inference-profile FILE is required (a profile from `python -m calibrate profile`)")
    if args.input_tokens + args.output_tokens <= 0:
        raise CliError("--input-tokens + --output-tokens is 0; need at least one token per request")
    law, target, _ = target_from_args(args)
    profile = load_profile(args.inference_profile)
    train_usd, train_desc = _train(args)
    inputs = ReportInputs(
        target_loss=target, requests=args.requests, train_usd_per_flop=train_usd, train_description=train_desc,
        law=law, chinchilla_params=args.chinchilla_params, input_tokens=args.input_tokens,
        output_tokens=args.output_tokens, peak_requests_per_s=args.peak_requests_per_s,
        lifetime_days=args.lifetime_days, peak_to_mean=args.peak_to_mean,
        inference_usd_per_h=args.inference_usd_per_hour,
        slo_tpot_p90_s=args.slo_tpot_p90_s, slo_ttft_p90_s=args.slo_ttft_p90_s, no_slo=args.no_slo,
    )
    _checked(args, check_inputs, inputs, profile)
    return inputs, profile, target


def _checked(args, fn, *a, **kw):
    """fn(*a, **kw) with the solver API's InputError said in terms of the flags behind the value."""
    from solver.checks import InputError

    try:
        return fn(*a, **kw)
    except InputError as exc:
        name = exc.name
        cands = ([("loss", 1)] if args.loss is not None else [("chinchilla_params", 0)]) if name == "loss" \
            else _REPORT_SOURCES.get(name, [])
        raise flag_error(exc, args, cands) from None


def make_report(args) -> tuple[Path, dict]:
    """Check, solve, draw and write the report; (report directory, solution)."""
    from solver.profile_input import profile_provenance
    from solver.report import compute_solution
    from solver.report_plots import make_plots
    from solver.report_render import build_document, to_html, to_markdown
    from solver.report_write import report_dirname, write_report

    inputs, profile, target = report_inputs(args)
    print("solving (paper, calibrated, N-dependent; maps; crossover) ...", file=sys.stderr, flush=True)
    solution = _checked(args, compute_solution, inputs, profile,
                        profile_provenance(profile, args.inference_profile), tool=tool_version())
    name = args.name or "-".join([
        profile.hardware.name, profile.model.name,
        f"chinchilla{_count(args.chinchilla_params)}" if args.chinchilla_params else f"loss{target:.4g}",
        f"{_count(args.requests)}req",
    ])
    solution["report_name"] = name
    print("drawing plots ...", file=sys.stderr, flush=True)
    images = make_plots(solution)
    doc = build_document(solution, name, list(images))
    out_dir = write_report(Path(args.out_dir), report_dirname(name), solution, to_markdown(doc),
                           to_html(doc, images, name), images)
    return out_dir, solution


def run(args) -> int:
    out_dir, solution = make_report(args)
    _print_summary(solution)
    print(out_dir)
    return 0


def _print_summary(sol: dict) -> None:
    from solver.report_render import SCENARIO_LABELS, fmt_count, fmt_pct, fmt_usd

    print(f"{'cost model':<52} {'N*':>8} {'D*':>8} {'total':>10} {'saving':>8}")
    for key, label in SCENARIO_LABELS.items():
        s = sol["scenarios"][key]
        if s is None:
            print(f"{label:<52} (not computed: the profile has no performance model)")
            continue
        o = s["optimal"]
        print(f"{label:<52} {fmt_count(o['params']):>8} {fmt_count(o['train_tokens']):>8} "
              f"{fmt_usd(o['total_cost_usd']):>10} {fmt_pct(s['saving_fraction']):>8}")
