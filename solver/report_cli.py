"""`python -m solver report`: a sizing report from a calibration profile.

    python -m solver report (--loss L | --chinchilla-params N) --requests R --inference-profile P
        [--peak-requests-per-s X] [--train-gpu a100-80gb --train-dtype bf16 --mfu-train 0.5 | --train-profile P]
        [--input-tokens 70 --output-tokens 215] [--law NAME|FILE] [--name NAME] [--out-dir results/reports]

writes results/reports/<name>/ with report.md, report.html (self-contained), PNG plots and
solution.json, and prints the directory on its last line. An existing report directory is never
overwritten: the new report gets the first free suffix -2, -3, ... and says so. The directory is built
under a temporary name and renamed into place, so a half-written report never appears.
Registered in `solver/cli.py` through `add_args(parser)` / `main(args) -> int`.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shutil
import sys
import tempfile
from pathlib import Path

PROG = "python -m solver report"
DEFAULT_OUT_DIR = "results/reports"


def _positive(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number; need a finite number > 0") from None
    if not math.isfinite(v) or v <= 0:
        raise argparse.ArgumentTypeError(f"{text!r}; need a finite number > 0")
    return v


def _non_negative(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number; need a finite number >= 0") from None
    if not math.isfinite(v) or v < 0:
        raise argparse.ArgumentTypeError(f"{text!r}; need a finite number >= 0")
    return v


def _fraction(text: str) -> float:
    v = _positive(text)
    if v > 1:
        raise argparse.ArgumentTypeError(f"{text!r}; need a fraction in (0, 1]")
    return v


def add_args(p: argparse.ArgumentParser) -> None:
    from solver.profile_input import add_profile_args

    q = p.add_mutually_exclusive_group(required=True)
    q.add_argument("--loss", type=_positive, help="target pre-training loss (must exceed the law's E)")
    q.add_argument("--chinchilla-params", type=_positive, metavar="N",
                   help="target the loss of a Chinchilla-style model of N parameters")
    p.add_argument("--requests", type=_non_negative, required=True, metavar="R", help="lifetime inference requests")
    p.add_argument("--peak-requests-per-s", type=_positive, metavar="X",
                   help="peak request rate the fleet must serve within the SLO (default: the lifetime demand "
                        "spread over --lifetime-days, times --peak-to-mean)")
    p.add_argument("--lifetime-days", type=_positive, default=365.0, help="deployment lifetime (default 365)")
    p.add_argument("--peak-to-mean", type=_positive, default=2.0, help="peak / mean request rate (default 2)")
    p.add_argument("--input-tokens", type=_non_negative, default=70.0, help="input tokens per request (default 70)")
    p.add_argument("--output-tokens", type=_non_negative, default=215.0, help="output tokens per request (default 215)")
    p.add_argument("--law", default="chinchilla", metavar="NAME|FILE", help="loss-law coefficients (name or JSON file)")
    p.add_argument("--train-gpu", default="a100-80gb", help="training GPU (default a100-80gb, the paper's)")
    p.add_argument("--train-dtype", default="bf16", help="datatype of training matmuls (default bf16)")
    p.add_argument("--mfu-train", type=_fraction, default=0.5, help="training MFU (default 0.5)")
    p.add_argument("--train-usd-per-hour", type=_positive, metavar="X", help="training $/GPU-hour (default: table)")
    p.add_argument("--inference-usd-per-hour", type=_positive, metavar="Y",
                   help="inference $/device-hour (default: the profile's price)")
    p.add_argument("--extrapolation", choices=("hold", "loglog"), default="hold",
                   help="decode curve above the highest measured concurrency: hold the last rate (default) "
                        "or extend the last log-log slope (still bounded by the roofline)")
    p.add_argument("--slo-tpot-p90-s", type=_positive, metavar="S", help="TPOT p90 limit (default: the profile's)")
    p.add_argument("--slo-ttft-p90-s", type=_positive, metavar="S", help="TTFT p90 limit (default: the profile's)")
    p.add_argument("--no-slo", action="store_true",
                   help="size batches by memory and throughput only (no latency limit)")
    p.add_argument("--name", help="report name (default: from profile, target and demand)")
    p.add_argument("--out-dir", default=DEFAULT_OUT_DIR, help=f"parent directory (default {DEFAULT_OUT_DIR})")
    add_profile_args(p)


def slug(text: str) -> str:
    """A safe directory name: characters outside [A-Za-z0-9._-] become '_' (no path separators, no dots-only)."""
    s = re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._") or "report"
    return s[:120]


def free_dir(parent: Path, name: str) -> tuple[Path, bool]:
    """parent/name, or parent/name-2, -3, ... if taken; (path, suffixed)."""
    cand = parent / name
    k = 2
    while cand.exists():
        cand = parent / f"{name}-{k}"
        k += 1
    return cand, cand.name != name


def tool_version() -> str:
    from importlib import metadata

    try:
        version = metadata.version("infercost")
    except metadata.PackageNotFoundError:
        version = "unknown"
    from calibrate.files import git_commit

    commit = git_commit()
    return f"solver.report (infercost {version}, git {commit or 'unknown'})"


def _train(args) -> tuple[float, dict]:
    from solver.profile_input import load_profile, train_usd_per_flop_from_profile, file_sha256

    if args.train_profile:
        prof = load_profile(args.train_profile)
        usd = train_usd_per_flop_from_profile(prof, usd_per_h=args.train_usd_per_hour)
        return usd, {"profile": str(args.train_profile), "sha256": file_sha256(args.train_profile),
                     "assumption": "training runs at the profile's prefill FLOP rate per device"}
    from bench.gpus import get_device, peak_flop_per_s

    try:
        dev = get_device(args.train_gpu)
        peak = peak_flop_per_s(dev, args.train_dtype)
    except ValueError as exc:
        raise ValueError(f"--train-gpu/--train-dtype: {exc}") from None
    price = args.train_usd_per_hour if args.train_usd_per_hour is not None else dev.usd_per_h
    if price is None:
        raise ValueError(f"no default price for {dev.key}; pass --train-usd-per-hour (a number > 0)")
    source = "--train-usd-per-hour" if args.train_usd_per_hour is not None else dev.usd_per_h_source
    usd = price / 3600.0 / (peak * args.mfu_train)
    return usd, {"gpu": dev.key, "dtype": args.train_dtype, "peak_flop_per_s": peak, "peak_source": dev.peak_source,
                 "mfu": args.mfu_train, "usd_per_h": price, "usd_per_h_source": source,
                 "formula": "usd_per_h / (3600 * peak_flop_per_s * mfu_train)"}


def _count(x: float) -> str:
    for scale, suffix in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "K")):
        if x >= scale:
            return f"{x / scale:.3g}{suffix}"
    return f"{x:.3g}"


def main(args) -> int:
    try:
        return _main(args)
    except ValueError as exc:
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        print(f"{PROG}: error: {msg}", file=sys.stderr)
        return 2
    except OSError as exc:  # e.g. --out-dir not writable
        print(f"{PROG}: error: cannot write the report: {exc}", file=sys.stderr)
        return 2


def _main(args) -> int:
    from solver.law import check_reachable, chinchilla_loss_for_params, resolve_law
    from solver.profile_input import load_profile, profile_provenance
    from solver.report import ReportInputs, compute_solution
    from solver.report_render import build_document, make_plots, to_html, to_markdown

    if not args.inference_profile:
        raise ValueError("--inference-profile FILE is required (a profile from `python -m calibrate profile`)")
    if args.input_tokens + args.output_tokens <= 0:
        raise ValueError("--input-tokens + --output-tokens is 0; need at least one token per request")
    try:
        law = resolve_law(args.law)
    except ValueError as exc:
        raise ValueError(f"--law: {exc}") from None
    target = args.loss if args.loss is not None else float(chinchilla_loss_for_params(law, args.chinchilla_params))
    check_reachable(law, target)
    profile = load_profile(args.inference_profile)
    train_usd, train_desc = _train(args)
    inputs = ReportInputs(
        target_loss=target, requests=args.requests, train_usd_per_flop=train_usd, train_description=train_desc,
        law=law, chinchilla_params=args.chinchilla_params, input_tokens=args.input_tokens,
        output_tokens=args.output_tokens, peak_requests_per_s=args.peak_requests_per_s,
        lifetime_days=args.lifetime_days, peak_to_mean=args.peak_to_mean,
        inference_usd_per_h=args.inference_usd_per_hour, extrapolation=args.extrapolation,
        slo_tpot_p90_s=args.slo_tpot_p90_s, slo_ttft_p90_s=args.slo_ttft_p90_s, no_slo=args.no_slo,
    )
    print("solving (paper, calibrated, N-dependent; maps; crossover) ...", file=sys.stderr, flush=True)
    solution = compute_solution(inputs, profile, profile_provenance(profile, args.inference_profile),
                                tool=tool_version())
    name = args.name or "-".join([
        profile.hardware.name, profile.model.name,
        f"chinchilla{_count(args.chinchilla_params)}" if args.chinchilla_params else f"loss{target:.4g}",
        f"{_count(args.requests)}req",
    ])
    solution["report_name"] = name
    print("drawing plots ...", file=sys.stderr, flush=True)
    images = make_plots(solution)
    doc = build_document(solution, name, list(images))
    out_dir = write_report(Path(args.out_dir), slug(name), solution, to_markdown(doc), to_html(doc, images, name),
                           images)
    _print_summary(solution)
    print(out_dir)
    return 0


def write_report(parent: Path, dirname: str, solution: dict, markdown: str, html_text: str,
                 images: dict[str, bytes]) -> Path:
    """Write all files into a temp dir under parent, then rename it to a free name (never overwrites)."""
    parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dirname}.tmp-", dir=parent))
    try:
        (tmp / "solution.json").write_text(
            json.dumps(finite_or_none(solution), indent=1, allow_nan=False, default=_json_default) + "\n")
        (tmp / "report.md").write_text(markdown)
        (tmp / "report.html").write_text(html_text)
        for fname, data in images.items():
            (tmp / fname).write_bytes(data)
        os.chmod(tmp, 0o755)
        while True:
            final, suffixed = free_dir(parent, dirname)
            try:
                os.rename(tmp, final)  # fails if `final` appeared meanwhile and is non-empty
                break
            except OSError:
                if not final.exists():
                    raise
        if suffixed:
            print(f"{parent / dirname} exists; wrote {final.name} instead (reports are never overwritten)",
                  file=sys.stderr)
        return final
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def finite_or_none(o):
    """NaN and infinities become null (JSON has neither); recursive over dicts and lists."""
    if isinstance(o, float):
        return o if math.isfinite(o) else None
    if isinstance(o, dict):
        return {k: finite_or_none(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [finite_or_none(v) for v in o]
    return o


def _json_default(o):
    import numpy as np

    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, (tuple, set)):
        return list(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def _print_summary(sol: dict) -> None:
    from solver.report_render import SCENARIO_LABELS, fmt_count, fmt_pct, fmt_usd

    print(f"{'cost model':<52} {'N*':>8} {'D*':>8} {'total':>10} {'saving':>8}")
    for key, label in SCENARIO_LABELS.items():
        s = sol["scenarios"][key]
        o = s["optimal"]
        print(f"{label:<52} {fmt_count(o['params']):>8} {fmt_count(o['train_tokens']):>8} "
              f"{fmt_usd(o['total_usd']):>10} {fmt_pct(s['saving_fraction']):>8}")
