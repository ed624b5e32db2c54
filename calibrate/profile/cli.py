"""`python -m calibrate profile RUN_DIR ...`: calibration profile from measured runs (I/O only;
the stage itself is calibrate.profile.make: profile_runs, write_profile).

Examples:
  python -m calibrate profile results/runs/cpu-epyc/tiny-llama-w8a8
  python -m calibrate profile results/runs --slo-tpot-p90-s 0.05 --slo-ttft-p90-s 1 --out my.json
  python -m calibrate profile --vllm-bench-json c1.json c8.json prefill.json \\
      --params 6738415616 --hardware a100-40gb-sxm --model-name llama2-7b-w8a8 --quantization w8a8-int8

Output: results/calibration/<hardware>-<model>-<quantization>.json unless --out. An existing file
is never replaced unless --force (the run is refused with exit 2 naming the file). A short table
is printed; the last line is the path written. With --json the profile JSON alone goes to stdout
(the path to stderr). Bad input (no runs, runs of different hardware or models, missing fields,
NaN, a numeric flag out of range) exits 2 with one line naming the file or flag and what is allowed.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from calibrate.profile.curve import DEFAULT_SLO_TPOT_P90_S, DEFAULT_SLO_TTFT_P90_S
from calibrate.profile.make import DEFAULT_OUT_DIR, ForeignRuns, ProfileOptions, profile_runs, write_profile
from calibrate.profile.tokencost import DEFAULT_BOOTSTRAP
from calibrate.runs.load import DEFAULT_MIN_REQUESTS, DEFAULT_MIN_TOKENS
from core.cli import nonneg_float, nonneg_int, positive_float, positive_int

NAME = "profile"
HELP = "calibration profile from measured runs"


def add_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dirs", nargs="*", metavar="RUN_DIR",
                   help="run directories, or directories searched recursively for run.json")
    p.add_argument("--out", type=Path, default=None, help="profile file to write (default: %s/"
                   "<hardware>-<model>-<quantization>.json)" % DEFAULT_OUT_DIR)
    p.add_argument("--force", action="store_true", help="replace an existing output file")
    p.add_argument("--slo-tpot-p90-s", type=positive_float, default=DEFAULT_SLO_TPOT_P90_S,
                   help="TPOT p90 limit for the operating point (default %(default)s s: 10 tokens/s per stream)")
    p.add_argument("--slo-ttft-p90-s", type=positive_float, default=DEFAULT_SLO_TTFT_P90_S,
                   help="TTFT p90 limit for the operating point (default %(default)s s)")
    p.add_argument("--allow-mixed", action="store_true", help="combine runs of different hardware or models")
    p.add_argument("--drop-bad", action="store_true",
                   help="drop (and list in provenance) run.json files that fail validation or hold NaN, "
                   "instead of exiting 2")
    p.add_argument("--bootstrap", type=nonneg_int, default=DEFAULT_BOOTSTRAP, help="bootstrap resamples (default %(default)s)")
    p.add_argument("--seed", type=nonneg_int, default=0, help="bootstrap seed (default %(default)s)")
    p.add_argument("--min-requests", type=positive_int, default=DEFAULT_MIN_REQUESTS,
                   help="drop runs with fewer ok requests (default %(default)s)")
    p.add_argument("--min-tokens", type=positive_int, default=DEFAULT_MIN_TOKENS,
                   help="drop runs with fewer tokens in all (default %(default)s)")
    p.add_argument("--min-run-duration-s", type=nonneg_float, default=None,
                   help="drop runs whose steady-state window is shorter (default: 60 s on a GPU, 1 s on a CPU)")
    p.add_argument("--min-run-requests", type=nonneg_int, default=None,
                   help="drop runs with fewer requests completed in the window (default: 300 on a GPU, 0 on a CPU)")
    p.add_argument("--min-run-waves", type=nonneg_float, default=None,
                   help="drop runs whose window holds fewer turnovers of the batch (requests / concurrency; "
                   "default 3; all three --min-run-* 0: no minimum)")
    p.add_argument("--usd-per-hour", type=positive_float, default=None,
                   help="price per device-hour (overrides the runs' price; required for foreign results "
                   "on hardware not in the table)")
    p.add_argument("--peak-flop-per-s", type=positive_float, default=None,
                   help="dense peak per device of the matmul datatype, overriding the runs' (and the table's)")
    p.add_argument("--json", action="store_true", help="print the profile JSON instead of the table")
    p.add_argument("--ladder", action="store_true",
                   help="the runs span several model sizes of one hardware: fit the performance model of the "
                   "hardware on all of them (validated by leaving each size out); the per-model constants "
                   "come from the largest size (docs/calibrate-perfmodel.md)")
    p.add_argument("--operator-profile", type=Path, default=None, metavar="FILE",
                   help="with --ladder: also predict each size, left out in turn, from this operator profile "
                   "(python -m bench operators; results/hardware/operators/<hardware>.json)")
    p.add_argument("--ladder-bootstrap", type=positive_int, default=None,
                   help="refits behind the performance model's intervals (default %d)" % 100)
    g = p.add_argument_group("results of other tools (model and hardware given here)")
    g.add_argument("--vllm-bench-json", nargs="+", type=Path, default=[], metavar="FILE",
                   help="`vllm bench serve --save-result` files (use --save-detailed for intervals)")
    g.add_argument("--guidellm-json", nargs="+", type=Path, default=[], metavar="FILE",
                   help="guidellm benchmarks.json files")
    g.add_argument("--params", type=positive_int, default=None, help="N: parameters in matrix multiplies")
    g.add_argument("--params-total", type=positive_int, default=None,
                   help="all parameters (default: --params)")
    g.add_argument("--hardware", default=None, help="hardware table key or a name of your own")
    g.add_argument("--device-count", type=positive_int, default=1, help="devices serving (tensor parallel size)")
    g.add_argument("--peak-dtype", default="int8", help="datatype of the matmuls, picks the peak (default int8)")
    g.add_argument("--model-name", default="auto", help="default: the tool's model id")
    g.add_argument("--quantization", default="unknown")
    g.add_argument("--workload", choices=["prefill", "decode", "mixed", "distribution"], default=None,
                   help="workload kind of every foreign run (default: inferred from token lengths)")
    g.add_argument("--concurrency", type=positive_int, default=None, help="override the concurrency of foreign runs")


def _fmt(e, scale=1.0, spec=".3g") -> str:
    if e is None:
        return "n/a"
    return f"{e.value * scale:{spec}} [{e.low * scale:{spec}}, {e.high * scale:{spec}}]"


def format_table(profile, out: Path) -> str:
    hw, m, c = profile.hardware, profile.model, profile.costs
    lines = [f"WARNING: {profile.warning}"] if profile.warning else []
    lines += [
        f"profile {hw.name} x{hw.device_count} | {m.name} ({m.quantization}, N={m.params_matmul:,}) | "
        f"{len(profile.provenance.runs)} runs, {len(profile.provenance.dropped)} dropped",
        f"peak {hw.peak_flop_per_s if hw.peak_flop_per_s is None else format(hw.peak_flop_per_s, '.4g')} flop/s per device ({hw.peak_dtype}); {hw.usd_per_h} $/device-hour",
        f"operating concurrency {profile.operating_concurrency}  (value [95% interval])",
        f"  s/input token      {_fmt(profile.seconds_per_input_token)}",
        f"  s/output token     {_fmt(profile.seconds_per_output_token)}",
        f"  mfu_input  %       {_fmt(profile.mfu_input, 100)}",
        f"  mfu_output %       {_fmt(profile.mfu_output, 100)}",
        f"  $/request 70/215   {_fmt(c.usd_per_request_paper_mix)}",
        f"  $/1M input tokens  {_fmt(c.usd_per_million_input_tokens)}",
        f"  $/1M output tokens {_fmt(c.usd_per_million_output_tokens)}",
    ]
    if c.energy_j_per_request is not None:
        lines.append(f"  J/request 70/215   {c.energy_j_per_request:.4g}")
    if profile.decode_curve:
        lines.append("decode curve: concurrency  out tok/s  mfu_output %  tpot p90 s  ttft p90 s")
        for p in profile.decode_curve:
            mfu = "n/a" if p.mfu_output is None else f"{100 * p.mfu_output:.3g}"
            tp = "n/a" if p.tpot_p90_s is None else f"{p.tpot_p90_s:.4g}"
            tt = "n/a" if p.ttft_p90_s is None else f"{p.ttft_p90_s:.4g}"
            lines.append(f"  {p.concurrency:>11}  {p.output_tokens_per_s:9.4g}  {mfu:>12}  {tp:>10}  {tt:>10}")
    op = profile.operating_point
    if op is not None:
        lat = "" if op.tpot_p90_s is None else (
            f"; {op.workload} runs: TPOT p90 {op.tpot_p90_s:.4g} s, TTFT p90 {_num(op.ttft_p90_s)} s, "
            f"ITL p90 {_num(op.itl_p90_s)} s")
        lines.append(f"operating point under SLO (TPOT p90 <= {profile.slo.tpot_p90_s} s, TTFT p90 <= "
                     f"{profile.slo.ttft_p90_s} s): concurrency {op.concurrency}"
                     + ("" if op.meets_slo else " (NO measured point meets the SLO)") + lat)
    mm = profile.measured_mix
    if mm is not None:
        lines.append(f"measured mix {mm.input_tokens:g}/{mm.output_tokens:g} at concurrency {mm.concurrency} "
                     f"({mm.runs} runs): $/request {_fmt(mm.usd_per_request)} (measured; fresh-run interval)")
    if profile.coverage is not None and profile.coverage.covered is not None:
        lines.append("coverage of replicates' measured $/request: " + ", ".join(
            f"{m.interval_source} interval {100 * m.covered:.0f} %" for m in profile.coverage.mixes))
    if profile.replicates:
        cvs = [f"{p.workload}@c{p.concurrency} {100 * p.cv:.1f} %" for p in profile.replicates if p.cv is not None]
        if cvs:
            lines.append("between-replicate CV: " + ", ".join(cvs)
                         + ("  NOISY MACHINE" if profile.noisy_machine else ""))
    method = profile.provenance.method
    if "WARNING:" in method:
        lines.append(method[method.index("WARNING:"):])
    for d in profile.provenance.dropped:
        lines.append(f"dropped {d.path}: {d.reason}")
    if profile.performance_model is not None:
        lines += perf_lines(profile.performance_model)
    lines.append(str(out))
    return "\n".join(lines)


def perf_lines(pm) -> list[str]:
    """The performance model's block of the table: form, constants, held-out errors, forms compared."""
    lines = [f"performance model (ladder of {len(pm.fitted_on)} sizes): {pm.form}: {pm.formula}"]
    for k, p in [*pm.params.items(), ("request_overhead_s", pm.request_overhead_s)]:
        lines.append(f"  {k:<22} {p.value:.4g} [{p.low:.4g}, {p.high:.4g}] {p.unit}")
    lines.append("held out (size left out of the fit): worst |error| output tok/s, $/request")
    for m in pm.fitted_on:
        rows = [r for r in pm.held_out if r.model == m.name]
        tok = max((abs(r.error.output_tokens_per_s) for r in rows if r.error.output_tokens_per_s is not None), default=None)
        usd = max((abs(r.error.usd_per_request) for r in rows if r.error.usd_per_request is not None), default=None)
        lines.append(f"  {m.name:<30} N={m.params_matmul:.3g}  {_pct(tok)}  {_pct(usd)}  ({len(rows)} runs)")
    for key, e in pm.error_split.items():
        lines.append(f"  {key}: error median {_pct(e.error_median)}, worst {_pct(e.error_max)}; noise floor "
                     f"(replicates about their mean) median {_pct(e.noise_median)}, worst {_pct(e.noise_max)}; "
                     f"bias share of the squared log error {_pct(e.bias_share)}")
    oc = pm.operator_check
    if oc is not None:
        lines.append(f"from the device's operators ({oc.operator_profile}; overheads fitted without each size"
                     f"{', per-layer term' if oc.layer_term and not oc.selection else ''}): error median / worst, "
                     "output tok/s")
        if oc.selection:
            by_size = "; ".join(f"{m}: step{''.join(', ' + t for t in ts)}" for m, ts in oc.terms_by_size.items())
            lines.append(f"  overhead terms chosen without each size ({by_size}); on all sizes: "
                         f"step{''.join(', ' + t for t in oc.terms)} (scores: "
                         + ", ".join(f"{k or 'step'} {v:.3f}" for k, v in oc.cv_scores.items()) + ")")
        for where, split in oc.error_split.items():
            e = split.get("output_tokens_per_s")
            if e is not None:
                lines.append(f"  {where:<24} {_pct(e.error_median)} / {_pct(e.error_max)}; noise floor "
                             f"{_pct(e.noise_median)} / {_pct(e.noise_max)}; bias share {_pct(e.bias_share)}")
        lines += size_check_lines(oc)
    lines.append("forms compared (worst held-out |error|): " + ", ".join(
        f"{f.form} {_pct(f.score)}" + (" *" if f.chosen else "") for f in pm.forms))
    return lines


def size_check_lines(oc) -> list[str]:
    """Can each ladder size identify the size-dependent terms (predicted from the operators)?"""
    a = oc.answering
    if a is None:
        return []
    lines = [f"ladder sizes, predicted batch-1 decode step (operators + median fitted overheads; needs >= "
             f"{a.min_ticks:g} ticks of {a.tick_s * 1e3:g} ms and operators >= {a.min_share:.0%} of the step):"]
    for c in oc.size_checks:
        lines.append(f"  {c.model:<30} {c.step_s * 1e3:7.2f} ms = {c.ticks:5.1f} ticks, operators "
                     f"{c.operator_share:4.0%}  {'ok' if c.meets_ticks and c.meets_share else 'cannot identify N terms'}")
    if a.smallest_params is None:
        lines.append(f"  no size of the operator grid ({min(a.checked_params, default=0):.3g}..{max(a.checked_params, default=0):.3g}) meets both")
    else:
        lines.append(f"  smallest size meeting both on this device: N = {a.smallest_params:.3g}; a {a.span:g}x ladder "
                     f"from it reaches N = {a.top_params:.3g} (~{a.top_weight_bytes / 2**30:.0f} GiB of INT8 weights)")
    return lines


def _num(x) -> str:
    return "n/a" if x is None else f"{x:.4g}"


def _pct(x) -> str:
    return "n/a" if x is None else f"{100 * x:.1f} %"


def options_from_args(args: argparse.Namespace) -> ProfileOptions:
    """The parsed flags as ProfileOptions (the --min-run-* flags given become `min_run`)."""
    given = {"duration_s": args.min_run_duration_s, "requests": args.min_run_requests, "waves": args.min_run_waves}
    foreign = ForeignRuns(
        vllm_bench_json=tuple(args.vllm_bench_json), guidellm_json=tuple(args.guidellm_json), params=args.params,
        params_total=args.params_total, hardware=args.hardware, device_count=args.device_count,
        peak_dtype=args.peak_dtype, model_name=args.model_name, quantization=args.quantization,
        workload=args.workload, concurrency=args.concurrency)
    return ProfileOptions(
        slo_tpot_p90_s=args.slo_tpot_p90_s, slo_ttft_p90_s=args.slo_ttft_p90_s, allow_mixed=args.allow_mixed,
        drop_bad=args.drop_bad, bootstrap=args.bootstrap, seed=args.seed, min_requests=args.min_requests,
        min_tokens=args.min_tokens, min_run={k: v for k, v in given.items() if v is not None},
        usd_per_hour=args.usd_per_hour, peak_flop_per_s=args.peak_flop_per_s, ladder=args.ladder,
        ladder_bootstrap=args.ladder_bootstrap, operator_profile=args.operator_profile, foreign=foreign)


def make_profile(args: argparse.Namespace):
    """The parsed flags -> (Profile, path written). InputError for bad input."""
    profile = profile_runs(args.run_dirs, options_from_args(args))
    return profile, write_profile(profile, args.out, force=args.force)


def main(args: argparse.Namespace) -> int:
    """`make_profile`, then the table (or the JSON with --json). InputError for bad input (exit 2)."""
    profile, out = make_profile(args)
    if args.json:
        sys.stdout.write(profile.to_json())
        print(str(out), file=sys.stderr)
    else:
        print(format_table(profile, out))
    return 0
