"""`python -m solver report`: a sizing report from a calibration profile.

    python -m solver report (--loss L | --chinchilla-params N) --requests R --inference-profile P
        [--inference-profile P2 ...] [--datasheet-profile a100-80gb:mfu_in=0.5,mfu_out=0.3,mbu=0.8 ...]
        [--peak-to-mean 2 | --demand-profile CSV | --peak-requests-per-s X] [--lifetime-days 365]
        [--max-train-tokens T [--no-repeat]]
        [--train-gpu a100-80gb --train-dtype bf16 --mfu-train 0.5 | --train-profile P]
        [--input-tokens 70 --output-tokens 215] [--law NAME|FILE] [--name NAME] [--out-dir results/reports]

The first --inference-profile is the report's hardware; further ones (and --datasheet-profile ones,
whose efficiencies are stated and marked assumed) are sized with the same inputs side by side in the
report's hardware table (solver.report.hardware). With only --datasheet-profile, the first of them is
the report's hardware.

writes results/reports/<name>/ (solver.report.output.write) with report.md, report.html (self-contained),
PNG plots and solution.json, and prints the directory on its last line. Every number is checked
before any work (core.cli); the stage itself is solver.report.make.make_report(ReportOptions).
"""

from __future__ import annotations

import argparse

from core.cli import days, fraction, non_negative, peak_rate, peak_to_mean_arg, positive, seconds, tokens
from core.paper import PAPER
from solver.optimize.cli import COST_DEFAULTS, add_target_args
from solver.report.make import DEFAULT_OUT_DIR, DEFAULT_PEAK_TO_MEAN, ReportOptions, make_report
from solver.report.output.render import SCENARIO_LABELS, fmt_count, fmt_pct, fmt_usd


def add_args(p: argparse.ArgumentParser) -> None:
    add_target_args(p)
    p.add_argument("--requests", type=non_negative, required=True, metavar="R", help="lifetime inference requests")
    p.add_argument("--peak-requests-per-s", type=peak_rate, metavar="X",
                   help="peak request rate the fleet must serve within the SLO (default: the lifetime demand "
                        "spread over --lifetime-days, times --peak-to-mean)")
    p.add_argument("--lifetime-days", type=days, default=365.0, help="deployment lifetime (default 365)")
    d = p.add_mutually_exclusive_group()
    d.add_argument("--peak-to-mean", type=peak_to_mean_arg, metavar="R",
                   help=f"peak / mean request rate, >= 1 (default {DEFAULT_PEAK_TO_MEAN:g}): the fleet is sized for "
                        f"the peak and paid for every hour; the full-utilisation (paper-style) answer is shown beside")
    d.add_argument("--demand-profile", metavar="CSV",
                   help="hourly relative load over a day (24 rows) or week (168 rows); R = max / mean (solver.optimize.demand)")
    g = p.add_argument_group("data limit")
    g.add_argument("--max-train-tokens", type=positive, metavar="T",
                   help="unique training tokens available: the recommended plan is the cheapest that reaches the "
                        "loss with them, repeating data as Muennighoff et al. 2023 allow (solver.optimize.data_limit)")
    g.add_argument("--no-repeat", action="store_true", help="with --max-train-tokens: never repeat data")
    p.add_argument("--input-tokens", type=tokens, default=COST_DEFAULTS["input_tokens"],
                   help=f"input tokens per request (default {PAPER.input_tokens_per_request})")
    p.add_argument("--output-tokens", type=tokens, default=COST_DEFAULTS["output_tokens"],
                   help=f"output tokens per request (default {PAPER.output_tokens_per_request})")
    p.add_argument("--train-gpu", help=f"training GPU (default {PAPER.training.gpu}, the paper's)")
    p.add_argument("--train-dtype", help=f"datatype of training matmuls (default {PAPER.training.dtype})")
    p.add_argument("--mfu-train", type=fraction, help=f"training MFU (default {PAPER.mfu_train})")
    p.add_argument("--train-usd-per-hour", type=positive, metavar="X", help="training $/GPU-hour (default: table)")
    p.add_argument("--inference-usd-per-hour", type=positive, metavar="Y",
                   help="inference $/device-hour (default: the profile's price); with several profiles it "
                        "applies to every one, datasheet ones too (over their usd_per_h=)")
    p.add_argument("--slo-tpot-p90-s", type=seconds, metavar="S",
                   help="TPOT p90 limit (default: the profile's; with several profiles, set it to compare at one SLO)")
    p.add_argument("--slo-ttft-p90-s", type=seconds, metavar="S", help="TTFT p90 limit (default: the profile's)")
    p.add_argument("--no-slo", action="store_true",
                   help="size batches by memory and throughput only (no latency limit)")
    p.add_argument("--name", help="report name (default: from profile, target and demand)")
    p.add_argument("--out-dir", default=DEFAULT_OUT_DIR, help=f"parent directory (default {DEFAULT_OUT_DIR})")
    p.add_argument("--inference-profile", metavar="FILE", action="append", default=None,
                   help="calibration profile JSON (python -m calibrate profile); repeat it to size the same demand "
                        "on several hardware side by side (the first is the report's)")
    p.add_argument("--datasheet-profile", metavar="SPEC", action="append", default=None,
                   help="hardware from the GPU table with stated efficiencies, e.g. "
                        "a100-40gb:mfu_in=0.5,mfu_out=0.01 (keys mfu_in, mfu_out, optional mbu, t0_s, usd_per_h); "
                        "every number of it is marked assumed; repeatable")
    p.add_argument("--train-profile", metavar="FILE", default=None,
                   help="calibration profile JSON whose prefill FLOP rate and price stand for training "
                        "(assumption: training runs at the prefill rate); replaces --train-gpu/--mfu-train")


def options_from_args(args: argparse.Namespace) -> ReportOptions:
    """The parsed flags as ReportOptions (the same names)."""
    return ReportOptions(**{f: getattr(args, f) for f in ReportOptions.__dataclass_fields__})


def run(args) -> int:
    out_dir, solution = make_report(options_from_args(args))
    _print_summary(solution)
    infeasible = solution.sizing.message if solution.sizing is not None else None
    for w in solution.warnings:
        if w != infeasible:  # that one is the summary's "no recommendation:" line
            print(f"warning: {w}")
    print(out_dir)
    return 0


def _print_summary(sol) -> None:
    """The cost models, the recommendation and the cheapest hardware of a Solution, one line each."""

    print(f"{'cost model':<52} {'N*':>8} {'D*':>8} {'total':>10} {'saving':>8}")
    for key, label in SCENARIO_LABELS.items():
        s = getattr(sol.scenarios, key)
        if s is None:
            print(f"{label:<52} (not computed: the profile has no performance model)")
            continue
        o = s.optimal
        print(f"{label:<52} {fmt_count(o.params):>8} {fmt_count(o.train_tokens):>8} "
              f"{fmt_usd(o.total_cost_usd):>10} {fmt_pct(s.saving_fraction):>8}")
    rec, sz = sol.recommendation, sol.sizing
    if rec is not None:
        print(f"{'recommended (meets the SLO, provisioned fleet)':<52} {fmt_count(rec.params):>8} "
              f"{fmt_count(rec.train_tokens):>8} {fmt_usd(rec.total_usd):>10}   "
              f"{rec.fleet_devices} devices, {fmt_usd(rec.fleet_usd_per_h)}/h")
        if sz is not None and getattr(sz, "slo_cost_usd", None) is not None:
            print(f"the SLO costs {fmt_usd(sz.slo_cost_usd)} ({fmt_pct(sz.slo_cost_fraction)}) over the "
                  f"unconstrained optimum")
    elif sz is not None and sz.message:
        print(f"no recommendation: {sz.message}")
    hw = sol.hardware
    if hw is not None and len(hw.rows) > 1:
        print(f"cheapest hardware for this demand: {hw.cheapest or 'none meets the SLO'}")
