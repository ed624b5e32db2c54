"""`python -m solver report`: a sizing report from a calibration profile.

    python -m solver report (--loss L | --chinchilla-params N) --requests R --inference-profile P
        [--inference-profile P2 ...] [--datasheet-profile a100-80gb:mfu_in=0.5,mfu_out=0.3,mbu=0.8 ...]
        [--peak-to-mean 2 | --demand-profile CSV | --peak-requests-per-s X] [--lifetime-days 365]
        [--max-train-tokens T [--no-repeat]]
        [--train-gpu a100-80gb --train-dtype bf16 --mfu-train 0.5 | --train-profile P]
        [--input-tokens 70 --output-tokens 215] [--law NAME|FILE] [--name NAME] [--out-dir results/reports]

The first --inference-profile is the report's hardware; further ones (and --datasheet-profile ones,
whose efficiencies are stated and marked assumed) are sized with the same inputs side by side in the
report's hardware table (solver.hardware_compare). With only --datasheet-profile, the first of them is
the report's hardware.

writes results/reports/<name>/ (solver.report_write) with report.md, report.html (self-contained),
PNG plots and solution.json, and prints the directory on its last line. Every number is checked
before any work (solver.cli_args); `make_report(args)` is the same without printing the summary.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bench.paper_settings import PAPER
from solver.cli_args import CliError, days, flag_error, fraction, non_negative, one_line, peak_rate, positive, \
    seconds, tokens
from solver.demand import peak_to_mean_arg
from solver.optimize_cli import COST_DEFAULTS, SOURCES, add_target_args, target_from_args, train_from_gpu

DEFAULT_PEAK_TO_MEAN = 2.0

DEFAULT_OUT_DIR = "results/reports"

# ReportInputs field -> the flags behind it (dest, exponent), as solver.optimize_cli.SOURCES
_REPORT_SOURCES = SOURCES | {
    "peak_requests_per_s": [("peak_requests_per_s", 1)], "lifetime_days": [("lifetime_days", 1)],
    "peak_to_mean": [("peak_to_mean", 1), ("demand_profile", 0)], "max_train_tokens": [("max_train_tokens", 1)],
    "input_tokens": [("input_tokens", 1)],
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
    d = p.add_mutually_exclusive_group()
    d.add_argument("--peak-to-mean", type=peak_to_mean_arg, metavar="R",
                   help=f"peak / mean request rate, >= 1 (default {DEFAULT_PEAK_TO_MEAN:g}): the fleet is sized for "
                        f"the peak and paid for every hour; the full-utilisation (paper-style) answer is shown beside")
    d.add_argument("--demand-profile", metavar="CSV",
                   help="hourly relative load over a day (24 rows) or week (168 rows); R = max / mean (solver.demand)")
    g = p.add_argument_group("data limit")
    g.add_argument("--max-train-tokens", type=positive, metavar="T",
                   help="unique training tokens available: the recommended plan is the cheapest that reaches the "
                        "loss with them, repeating data as Muennighoff et al. 2023 allow (solver.data_limit)")
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
    from solver.profile_input import load_profile, train_profile_caution, train_usd_per_flop_from_profile

    if args.train_profile:
        prof = load_profile(args.train_profile)
        usd = train_usd_per_flop_from_profile(prof, usd_per_h=args.train_usd_per_hour)
        how = {"profile": str(args.train_profile), "sha256": sha256_file(args.train_profile),
               "assumption": "training runs at the profile's prefill FLOP rate per device"}
        caution = train_profile_caution(prof)
        return usd, how | ({"caution": caution} if caution else {})
    return train_from_gpu(args)


def _count(x: float) -> str:
    for scale, suffix in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "K")):
        if x >= scale:
            return f"{x / scale:.3g}{suffix}"
    return f"{x:.3g}"


def _profiles(args) -> list[tuple[object, dict, str]]:
    """(profile, provenance, label) of each --inference-profile, then each --datasheet-profile."""
    from solver.hardware_compare import datasheet_profile, datasheet_provenance
    from solver.profile_input import load_profile, profile_provenance

    out = []
    for path in args.inference_profile or []:
        prof = load_profile(path)
        out.append((prof, profile_provenance(prof, path), f"{prof.hardware.name} ({Path(path).name})"))
    template = out[0][0] if out else None
    for spec in args.datasheet_profile or []:
        try:
            prof = datasheet_profile(spec, template=template)
        except ValueError as exc:
            raise CliError(f"--datasheet-profile: {one_line(exc)}") from None
        out.append((prof, datasheet_provenance(spec, prof), f"{spec} (assumed)"))
    return out


def _demand(args):
    """(peak_to_mean, source, hours) from --peak-to-mean | --demand-profile (default 2, assumed)."""
    from solver.demand import demand_from_csv

    if args.demand_profile:
        try:
            shape = demand_from_csv(args.demand_profile)
        except ValueError as exc:
            raise CliError(f"--demand-profile: {one_line(exc)}") from None
        return shape.peak_to_mean, shape.source, shape.hours
    r = DEFAULT_PEAK_TO_MEAN if args.peak_to_mean is None else args.peak_to_mean
    return r, "--peak-to-mean", None


def report_inputs(args):
    """(ReportInputs, profile, target loss) from the arguments; every number checked, nothing solved yet."""
    from solver.report_solve import ReportInputs, check_inputs

    if not args.inference_profile and not args.datasheet_profile:
        raise CliError("--inference-profile FILE is required (a profile from `python -m calibrate profile`), "
                       "or --datasheet-profile SPEC")
    if args.input_tokens + args.output_tokens <= 0:
        raise CliError("--input-tokens + --output-tokens is 0; need at least one token per request")
    if args.no_repeat and args.max_train_tokens is None:
        raise CliError("--no-repeat needs --max-train-tokens T")
    law, target, _ = target_from_args(args)
    profiles = _profiles(args)
    profile = profiles[0][0]
    train_usd, train_desc = _train(args)
    r, source, hours = _demand(args)
    inputs = ReportInputs(
        target_loss=target, requests=args.requests, train_usd_per_flop=train_usd, train_description=train_desc,
        law=law, chinchilla_params=args.chinchilla_params, input_tokens=args.input_tokens,
        output_tokens=args.output_tokens, peak_requests_per_s=args.peak_requests_per_s,
        lifetime_days=args.lifetime_days, peak_to_mean=r, demand_source=source, demand_hours=hours,
        max_train_tokens=args.max_train_tokens, repeat_data=not args.no_repeat,
        inference_usd_per_h=args.inference_usd_per_hour,
        slo_tpot_p90_s=args.slo_tpot_p90_s, slo_ttft_p90_s=args.slo_ttft_p90_s, no_slo=args.no_slo,
    )
    for prof, _, _ in profiles:
        _checked(args, check_inputs, inputs, prof)
    return inputs, profiles, target


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
    from solver.report import compute_solution
    from solver.report_plots import make_plots
    from solver.report_render import build_document, to_html, to_markdown
    from solver.report_write import report_dirname, write_report

    inputs, profiles, target = report_inputs(args)
    (profile, provenance, label), others = profiles[0], tuple(profiles[1:])
    print(f"solving (paper, calibrated, N-dependent, SLO-constrained; maps; crossover) on {len(profiles)} "
          f"hardware ...", file=sys.stderr, flush=True)
    solution = _checked(args, compute_solution, inputs, profile, provenance, tool=tool_version(), label=label,
                        others=others)
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
    infeasible = (solution.get("sizing") or {}).get("message")
    for w in solution.get("warnings") or []:
        if w != infeasible:  # that one is the summary's "no recommendation:" line
            print(f"warning: {w}")
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
    rec, sz = sol.get("recommendation"), sol.get("sizing") or {}
    if rec is not None:
        print(f"{'recommended (meets the SLO, provisioned fleet)':<52} {fmt_count(rec['params']):>8} "
              f"{fmt_count(rec['train_tokens']):>8} {fmt_usd(rec['total_usd']):>10}   "
              f"{rec['fleet_devices']} devices, {fmt_usd(rec['fleet_usd_per_h'])}/h")
        if sz.get("slo_cost_usd") is not None:
            print(f"the SLO costs {fmt_usd(sz['slo_cost_usd'])} ({fmt_pct(sz['slo_cost_fraction'])}) over the "
                  f"unconstrained optimum")
    elif sz.get("message"):
        print(f"no recommendation: {sz['message']}")
    hw = sol.get("hardware") or {}
    if len(hw.get("rows") or []) > 1:
        print(f"cheapest hardware for this demand: {hw['cheapest'] or 'none meets the SLO'}")
