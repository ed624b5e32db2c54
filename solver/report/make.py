"""The report stage as a function: `make_report(ReportOptions) -> (report directory, Solution)`.

ReportOptions holds what `python -m solver report` takes, under the flags' names (so a refusal of
the solver API is said in terms of the flag behind the value, core.cli.flag_error); the CLI and the
pipeline both build one and call `make_report`, which checks every number before any work, solves,
draws and writes `results/reports/<name>/` (never over an existing report).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from core.cli import CliError, flag_error, one_line
from core.errors import InputError
from core.files import sha256_file
from core.provenance import git_commit
from solver.optimize.cli import SOURCES, target_from_args, train_from_gpu
from solver.optimize.costs import (
    load_profile,
    profile_provenance,
    train_profile_caution,
    train_usd_per_flop_from_profile,
)
from solver.optimize.demand import demand_from_csv
from solver.report.compute import compute_solution
from solver.report.hardware import datasheet_profile, datasheet_provenance
from solver.report.output.plots import make_plots
from solver.report.output.render import build_document, to_html, to_markdown
from solver.report.output.write import report_dirname, write_report
from solver.report.solve import ReportInputs, check_inputs

if TYPE_CHECKING:
    from solver.report.schema import Solution

DEFAULT_PEAK_TO_MEAN = 2.0

DEFAULT_OUT_DIR = "results/reports"

# ReportInputs field -> the flags behind it (dest, exponent), as solver.optimize.cli.SOURCES
_REPORT_SOURCES = SOURCES | {
    "peak_requests_per_s": [("peak_requests_per_s", 1)], "lifetime_days": [("lifetime_days", 1)],
    "peak_to_mean": [("peak_to_mean", 1), ("demand_profile", 0)], "max_train_tokens": [("max_train_tokens", 1)],
    "input_tokens": [("input_tokens", 1)],
    "output_tokens": [("output_tokens", 1)], "inference_usd_per_h": [("inference_usd_per_hour", 1)],
    "slo_tpot_p90_s": [("slo_tpot_p90_s", 1)], "slo_ttft_p90_s": [("slo_ttft_p90_s", 1)],
}


@dataclass
class ReportOptions:
    """What a sizing report is asked (the flags of `python -m solver report`, by the same names; the
    defaults are the CLI's)."""

    requests: float
    loss: float | None = None
    chinchilla_params: float | None = None
    law: str = "chinchilla"
    inference_profile: list[str] | None = None
    datasheet_profile: list[str] | None = None
    peak_requests_per_s: float | None = None
    lifetime_days: float = 365.0
    peak_to_mean: float | None = None
    demand_profile: str | None = None
    max_train_tokens: float | None = None
    no_repeat: bool = False
    input_tokens: float = 70.0
    output_tokens: float = 215.0
    train_gpu: str | None = None
    train_dtype: str | None = None
    mfu_train: float | None = None
    train_usd_per_hour: float | None = None
    train_profile: str | None = None
    inference_usd_per_hour: float | None = None
    slo_tpot_p90_s: float | None = None
    slo_ttft_p90_s: float | None = None
    no_slo: bool = False
    name: str | None = None
    out_dir: str = DEFAULT_OUT_DIR


def tool_version() -> str:
    from importlib import metadata

    try:
        version = metadata.version("infercost")
    except metadata.PackageNotFoundError:
        version = "unknown"
    return f"solver.report.compute (infercost {version}, git {git_commit() or 'unknown'})"


def _train(args) -> tuple[float, dict]:
    """Training $ per useful FLOP and how it was obtained: a training profile, or GPU x MFU."""

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

    if not args.inference_profile and not args.datasheet_profile:
        raise CliError("--inference-profile FILE is required (a profile from `python -m calibrate profile`), "
                       "or --datasheet-profile SPEC")
    if args.input_tokens + args.output_tokens <= 0:
        raise CliError("--input-tokens + --output-tokens is 0; need at least one token per request")
    if args.no_repeat and args.max_train_tokens is None:
        raise CliError("--no-repeat needs --max-train-tokens T")
    law, target, _ = target_from_args(args)
    profiles = _profiles(args)
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

    try:
        return fn(*a, **kw)
    except InputError as exc:
        name = exc.name
        cands = ([("loss", 1)] if args.loss is not None else [("chinchilla_params", 0)]) if name == "loss" \
            else _REPORT_SOURCES.get(name, [])
        raise flag_error(exc, args, cands) from None


def make_report(args: ReportOptions) -> tuple[Path, Solution]:
    """Check, solve, draw and write the report; (report directory, its solver.report.schema.Solution)."""

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
    solution.report_name = name
    print("drawing plots ...", file=sys.stderr, flush=True)
    images = make_plots(solution)
    doc = build_document(solution, name, list(images))
    out_dir = write_report(Path(args.out_dir), report_dirname(name), solution, to_markdown(doc),
                           to_html(doc, images, name), images)
    return out_dir, solution
