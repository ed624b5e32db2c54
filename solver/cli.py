"""`python -m solver COMMAND`: optimize | paper-tables | report.

  optimize      Eq. 3 / Eq. 6 optimum for a loss and a demand (solver/optimize/cli.py)
  paper-tables  the paper's Tables 2 and 3 and worked numbers, printed vs recomputed (below)
  report        a sizing report from a calibration profile (solver/report/cli.py)

Bad input exits 2 with one line on stderr, `python -m solver COMMAND: error: MESSAGE`, naming the
flag and what is allowed (core/cli.py). docs/solver.md and docs/report.md describe the flags.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence

from core.cli import CliError, Parser, one_line
from core.paper import PAPER
from solver.optimize import cli as optimize_cli
from solver.optimize import paper
from solver.report import cli as report_cli

# --------------------------------------------------------------------------- paper-tables

PROG = "python -m solver"


def add_paper_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print one JSON object with every entry")


def run_paper_tables(args) -> int:
    entries = paper.all_entries()
    factors = [paper.implied_inference_cost_factor(i) for i in range(len(paper.TABLE3))]
    if args.json:
        print(json.dumps({
            "entries": [{"table": e.table, "row": e.row, "label": e.label, "quantity": e.quantity,
                         "printed_text": e.printed_text, "printed": e.printed, "computed": e.computed,
                         "rel_diff": e.rel_diff, "status": e.status, "note": e.note} for e in entries],
            "table3_implied_inference_cost_factor": factors,
            "settings": {"law": "chinchilla", "table3": _paper_settings_text()},
        }))
        return 0
    titles = {
        "table2": "Table 2 (Eq. 3): Chinchilla-style vs compute-optimal, law 'chinchilla'",
        "table3": f"Table 3 (Eq. 6), settings of B.2/B.3: {_paper_settings_text()}",
        "section2": "Section 2 worked numbers (Eq. 3)",
        "figure1": "Figure 1 caption (Eq. 3)",
        "section6": "Section 6 worked numbers (Eq. 3 and Eq. 6, B.2/B.3 settings)",
    }
    shown = []
    for table in ("table2", "table3", "section2", "figure1", "section6"):
        sel = [e for e in entries if e.table == table]
        shown.append(f"\n{titles[table]}")
        shown.append(f"  {'row':<46} {'quantity':<31} {'printed':>8} {'computed':>12} {'rel diff':>9}  status")
        for e in sel:
            comp = f"{100 * e.computed:.2f}%" if e.printed_text.endswith("%") else f"{e.computed:.4g}"
            shown.append(f"  {e.label:<46} {e.quantity:<31} {e.printed_text:>8} {comp:>12} {100 * e.rel_diff:>+8.2f}%  "
                         f"{e.status}{' - ' + e.note if e.note else ''}")
    shown.append("\nTable 3 diagnostic (not used by the solver): factor on the stated inference $/FLOP that "
                 "reproduces each row's printed cost-optimal params: " + ", ".join(f"{k:.3f}" for k in factors))
    shown.append("'ok': within 0.5 % or the printed rounding; 'typo': printed value off by 100x (see docs/solver.md); "
                 "'differs': see docs/solver.md, 'Table 3'.")
    print("\n".join(shown).lstrip("\n"))
    return 0


def _paper_settings_text() -> str:
    t, i = PAPER.training, PAPER.inference
    return (f"train {t.gpu} ${t.usd_per_h:.2f}/h {t.dtype} {t.peak_flop_per_s:.3g} MFU {PAPER.mfu_train:g}; "
            f"inference {i.gpu} ${i.usd_per_h:.2f}/h {i.dtype} {i.peak_flop_per_s:.3g}, MFU {PAPER.mfu_input:g} input / "
            f"{PAPER.mfu_output:g} output; {PAPER.input_tokens_per_request} + {PAPER.output_tokens_per_request} "
            f"tokens/request")


# --------------------------------------------------------------------------- dispatch

Subcommand = tuple[str, str, Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int]]

SUBCOMMANDS: list[Subcommand] = [
    ("optimize", "compute- or cost-optimal N*, D* for a loss and a demand (Eq. 3 / Eq. 6)",
     optimize_cli.add_args, optimize_cli.run),
    ("paper-tables", "recompute the paper's Tables 2 and 3 and worked numbers next to the printed ones",
     add_paper_args, run_paper_tables),
    ("report", "deployment sizing report (Markdown/HTML/plots)", report_cli.add_args, report_cli.run),
]


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog=PROG, description="Cost-optimal model size and training data (Sardana et al. 2024).")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=Parser)
    for name, help_text, add_args, run in SUBCOMMANDS:
        p = sub.add_parser(name, help=help_text, description=help_text)
        add_args(p)
        p.set_defaults(_run=run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args._run(args) or 0)
    except (CliError, ValueError) as exc:
        print(f"{PROG} {args.command}: error: {one_line(exc)}", file=sys.stderr)
        return 2
    except OSError as exc:  # e.g. an output directory that cannot be written
        print(f"{PROG} {args.command}: error: {exc.strerror or exc}: {exc.filename or ''}".rstrip(": "),
              file=sys.stderr)
        return 2
