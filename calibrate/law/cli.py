"""`python -m calibrate law CSV ...`: fit the loss law to a CSV of training runs and write a law file.

  python -m calibrate law CSV --params-col C (--tokens-col C | --flop-col C) --loss-col C
      [--exclude-highest-loss K] [--bootstrap B] [--seed S] [--name NAME] [--out FILE] [--force] [--json]

fits L(N, D) = E + A/N^alpha + B/D^beta (calibrate.law.formula) by the paper's Eq. 4 (calibrate.law.fit:
Huber delta=1e-3 on log loss, LSE form, L-BFGS from the Hoffmann et al. App. D.2 grid) and writes a
law file (core.schema.law.LawFile) to results/laws/<name>.json unless --out; `python -m solver ...
--law FILE` reads it. An existing file is never replaced unless --force. A short table is printed
and the last line is the path written; with --json one JSON object (the law file, plus "path") is
printed instead. With --flop-col the training tokens are FLOP / (6 N) (Kaplan et al.'s 6 N training
FLOP per token). Bad input exits 2 with one line naming the file and the column.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shlex
from pathlib import Path

from calibrate.law.fit import bootstrap_law, fit_law
from core.cli import count_or_all, nonneg_int, zero_or_at_least
from core.errors import BadFile
from core.files import sha256_file
from core.provenance import git_commit
from core.schema.law import LawFile

NAME = "law"
HELP = "fit the loss law (paper Eq. 4) to a CSV of training runs"
DEFAULT_LAW_DIR = Path("results/laws")


def add_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("csv", type=Path, metavar="CSV", help="one row per training run")
    p.add_argument("--params-col", required=True, metavar="C", help="column of N (model parameters)")
    tok = p.add_mutually_exclusive_group(required=True)
    tok.add_argument("--tokens-col", metavar="C", help="column of D (training tokens)")
    tok.add_argument("--flop-col", metavar="C", help="column of training FLOP; D = FLOP / (6 N)")
    p.add_argument("--loss-col", required=True, metavar="C", help="column of the final loss")
    p.add_argument("--exclude-highest-loss", type=nonneg_int, default=0, metavar="K",
                   help="leave out the K rows of highest loss (Besiroglu et al. 2024 left out 5; default 0)")
    p.add_argument("--bootstrap", type=zero_or_at_least(2), default=0, metavar="B",
                   help="bootstrap resamples for 95 %% intervals (0: none, else >= 2; Besiroglu et al. used 4000; "
                   "default 0)")
    p.add_argument("--seed", type=nonneg_int, default=0, help="bootstrap seed (default 0)")
    p.add_argument("--n-starts", type=count_or_all(all_value=None), default=64, metavar="K|all",
                   help="L-BFGS runs from the K best-screened grid points, or 'all' 4500 (default 64)")
    p.add_argument("--extra-starts", type=nonneg_int, default=0, metavar="K",
                   help="per bootstrap resample, also start from the K next-best full-data minima (default 0)")
    p.add_argument("--name", default=None, help="law name (default: the CSV file's stem)")
    p.add_argument("--out", type=Path, default=None, help=f"law file to write (default {DEFAULT_LAW_DIR}/<name>.json)")
    p.add_argument("--force", action="store_true", help="replace an existing law file")
    p.add_argument("--json", action="store_true", help="print the law file as one JSON object instead of the table")


def read_law_columns(path: Path, params_col: str, tokens_col: str | None, flop_col: str | None, loss_col: str):
    """(N, D, L) float arrays from the CSV, or InputError naming the file and the column."""
    import numpy as np
    import pandas as pd

    if not path.is_file():
        raise BadFile(path, None, "no such file")
    try:
        df = pd.read_csv(path)
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise BadFile(path, None, f"cannot read as CSV ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})")
    wanted = [params_col, tokens_col or flop_col, loss_col]
    for col in wanted:
        if col not in df.columns:
            raise BadFile(path, None, f"no column {col!r}; columns present: {', '.join(map(repr, df.columns))}")
    if len(df) == 0:
        raise BadFile(path, None, "no rows")
    arrays = {}
    for col in wanted:
        values = pd.to_numeric(df[col], errors="coerce").to_numpy(dtype=float)
        bad = np.flatnonzero(~np.isfinite(values))
        if bad.size:
            i = int(bad[0])
            raise BadFile(path, f"column {col!r}", f"row {i + 2} (line of the file): {df[col].iloc[i]!r} "
                                "is not a finite number; all values must be finite numbers > 0")
        bad = np.flatnonzero(values <= 0)
        if bad.size:
            i = int(bad[0])
            raise BadFile(path, f"column {col!r}", f"row {i + 2} (line of the file): {values[i]!r} "
                                "is not > 0; all values must be > 0")
        arrays[col] = values
    n = arrays[params_col]
    d = arrays[tokens_col] if tokens_col else arrays[flop_col] / (6.0 * n)  # Kaplan et al.: C = 6 N D
    return n, d, arrays[loss_col]


def _method(args, fit, boot) -> str:
    text = ("Eq. 4 of Sardana et al. 2024 (Hoffmann et al. 2022 App. D.2): Huber (delta=%g) on log loss with "
            "L = LSE(a - alpha log N, b - beta log D, e), A,B,E = exp(a,b,e); L-BFGS-B with analytic gradients "
            "from the %d best of the %d-point grid alpha,beta in {0,..,2}, e in {-1,..,1}, a,b in {0,..,25} "
            "(screened by objective; %d runs reached the minimum)"
            % (fit.delta, fit.n_starts, fit.n_grid_points, fit.n_starts_at_minimum))
    if fit.excluded_rows:
        text += f"; the {len(fit.excluded_rows)} highest-loss rows excluded"
    if args.flop_col:
        text += "; D = FLOP / (6 N)"
    if boot is not None:
        text += (f"; 95 % percentile bootstrap intervals from {boot.n_boot} row resamples (seed {boot.seed}), "
                 f"each warm-started from the full-data minimum and {boot.n_extra_starts} other local minima")
    return text


def build_law_file(args, fit, boot, csv_path: Path, tokens_source: str) -> LawFile:
    name = args.name or csv_path.stem
    c = fit.coefficients
    provenance = {
        "kind": "computed",
        "input_file": str(csv_path),
        "input_sha256": sha256_file(csv_path),
        "columns": {"params": args.params_col, "tokens": tokens_source, "loss": args.loss_col},
        "n_rows": fit.n_points + len(fit.excluded_rows),
        "n_points_fitted": fit.n_points,
        "excluded_rows": list(fit.excluded_rows),
        "objective_huber_over_delta": fit.objective,
        "method": _method(args, fit, boot),
        "command": "python -m calibrate " + " ".join(shlex.quote(a) for a in args.argv),
        "created_utc": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "tool": "calibrate law" + (f" (git {commit})" if (commit := git_commit()) else ""),
    }
    if boot is not None:
        provenance["bootstrap"] = {"n_boot": boot.n_boot, "seed": boot.seed, "confidence": boot.confidence,
                                   "extra_starts": boot.n_extra_starts,
                                   "resamples_won_by_extra_start": boot.n_won_by_extra_start}
    law = LawFile(name=name, A=c.A, B=c.B, E=c.E, alpha=c.alpha, beta=c.beta,
                  intervals=dict(boot.intervals) if boot is not None else None, provenance=provenance)
    return law


def format_law_table(law: dict, out: Path) -> str:
    iv = law.get("intervals") or {}
    lines = [f"law {law['name']}: L(N, D) = E + A/N^alpha + B/D^beta (Eq. 4 fit, "
             f"{law['provenance']['n_points_fitted']} points)"]
    for key in ("A", "B", "E", "alpha", "beta"):
        ci = f"  95% [{iv[key][0]:.4g}, {iv[key][1]:.4g}]" if key in iv else ""
        lines.append(f"  {key:<6}{law[key]:>12.5g}{ci}")
    lines.append(str(out))
    return "\n".join(lines)


def main(args: argparse.Namespace) -> int:
    """Fit, write the law file, print the table (or --json). InputError for bad input (exit 2)."""

    n, d, loss = read_law_columns(args.csv, args.params_col, args.tokens_col, args.flop_col, args.loss_col)
    name = args.name or args.csv.stem
    out = args.out or DEFAULT_LAW_DIR / f"{name}.json"
    if out.exists() and not args.force:
        raise BadFile(out, None, "exists; pass --force to replace it or --out another file")
    try:
        fit = fit_law(n, d, loss, exclude_highest_loss=args.exclude_highest_loss, n_starts=args.n_starts)
        boot = (bootstrap_law(n, d, loss, fit, n_boot=args.bootstrap, seed=args.seed,
                              extra_starts=args.extra_starts) if args.bootstrap else None)
    except ValueError as exc:
        raise BadFile(args.csv, None, str(exc)) from None
    tokens_source = args.tokens_col or f"{args.flop_col} / (6 * {args.params_col})"
    law = build_law_file(args, fit, boot, args.csv, tokens_source)
    try:
        law.save(out)
    except OSError as exc:
        raise BadFile(out, None, f"cannot write: {exc.strerror or exc}") from None
    data = json.loads(law.to_json())
    if args.json:
        print(json.dumps({**data, "path": str(out)}))
    else:
        print(format_law_table(data, out))
    return 0
