"""`python -m calibrate SUBCOMMAND ...`: the command line of the calibrate stage.

    law      fit the loss law (paper Eq. 4) to a CSV of training runs   (calibrate.law.cli)
    profile  calibration profile from measured runs                      (calibrate.profile.cli)
    predict  closed-loop figures of any model size from a profile        (calibrate.predict)

Each subcommand is a module with NAME, HELP, add_args(parser) and main(args) -> int; its main
raises core.errors.InputError for bad input, printed here in the stages' one format
(core.cli): `python -m calibrate SUBCOMMAND: error: <what is wrong and what is allowed>`,
exit status 2. Usage errors and bad flag values the same way: one line, no usage dump, no traceback.
"""

from __future__ import annotations

import argparse
import sys

from calibrate import predict as predict_cli
from calibrate.law import cli as law_cli
from calibrate.profile import cli as profile_cli
from core.cli import OneLineParser, bad_input
from core.errors import InputError

PROG = "python -m calibrate"

# The subcommands, in --help order. A new one is one more module in this list.
SUBCOMMANDS = [
    law_cli,
    profile_cli,
    predict_cli,
]


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog=PROG, description=__doc__.split("\n\n")[0],
                           epilog=__doc__.split("\n\n")[1], formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", metavar="{" + ",".join(m.NAME for m in SUBCOMMANDS) + "}",
                                required=True, parser_class=OneLineParser)
    for module in SUBCOMMANDS:
        # a subcommand's --help is its module docstring: first paragraph, then the rest as the epilog
        doc = (module.__doc__ or "").split("\n\n")
        p = sub.add_parser(module.NAME, help=module.HELP, description=doc[0], epilog="\n\n".join(doc[1:]),
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        module.add_args(p)
        p.set_defaults(func=module.main)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    args.argv = argv  # recorded in the files' provenance
    try:
        return args.func(args)
    except InputError as exc:
        return bad_input(f"{PROG} {args.command}", str(exc))
