"""What every `python -m solver` subcommand shares: the parser, the one error format, the number types.

Bad input exits 2 with one line on stderr, `python -m solver COMMAND: error: MESSAGE`, where the
message names the flag as the user wrote it and what is allowed. Numbers are checked when parsed
(finite, in range, a normal float: a subnormal such as 1e-320 has lost its digits), and values the
solver API refuses later (`solver.optimize.InputError`) are translated back to the flag they came from
by `flag_error`.
"""

from __future__ import annotations

import argparse
import math
import re
import sys
from collections.abc import Callable, Iterable

from bench.cli_types import OneLineParser
from solver.checks import InputError

PROG = "python -m solver"
SMALLEST = sys.float_info.min  # 2.2e-308: below it a float is subnormal


class CliError(Exception):
    """Bad input found after parsing: reported as one line, exit code 2."""


Parser = OneLineParser  # the one parser style of every stage: one-line errors, exit 2


def number_type(*, low: float | None = None, high: float | None = None, low_open: bool = False,
                allowed: str) -> Callable[[str], float]:
    """An argparse type: a finite float in [low, high] ((low, high] with low_open), never subnormal.

    `allowed` is the phrase the error ends with, e.g. "need a finite number > 0".
    """

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number; {allowed}") from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"{text!r} is not finite; {allowed}")
        too_low = low is not None and (value <= low if low_open else value < low)
        if too_low or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"{text!r}; {allowed}")
        if value != 0 and abs(value) < SMALLEST:
            raise argparse.ArgumentTypeError(f"{text!r} is below float range (it keeps no digits); {allowed}, "
                                             f"at least {SMALLEST:.3g}")
        return value

    parse.__name__ = "number"
    return parse


positive = number_type(low=0.0, low_open=True, allowed="need a finite number > 0")
non_negative = number_type(low=0.0, allowed="need a finite number >= 0")
at_least_one = number_type(low=1.0, allowed="need a finite number >= 1")
fraction = number_type(low=0.0, high=1.0, low_open=True, allowed="need a fraction in (0, 1]")
# Lifetime-scale flags: generous physical bounds that keep every product of them inside float range.
PEAK_RATE_MAX = 1e12  # requests/s (far beyond any deployment; ceil(rate x seconds) stays an exact integer)
peak_rate = number_type(low=0.0, high=PEAK_RATE_MAX, low_open=True,
                        allowed=f"need a finite number in (0, {PEAK_RATE_MAX:g}] requests/s")
days = number_type(low=0.0, high=1e6, low_open=True, allowed="need a finite number of days in (0, 1e6]")
ratio = number_type(low=0.0, high=1e6, low_open=True, allowed="need a finite ratio in (0, 1e6]")
seconds = number_type(low=0.0, high=1e6, low_open=True, allowed="need a finite number of seconds in (0, 1e6]")
tokens = number_type(low=0.0, high=1e12, allowed="need a finite number of tokens in [0, 1e12] per request")


def flag(dest: str) -> str:
    """argparse dest -> the flag a user writes: chinchilla_params -> --chinchilla-params."""
    return "--" + dest.replace("_", "-")


def one_line(exc: BaseException) -> str:
    text = str(exc)
    return text.splitlines()[0] if text else type(exc).__name__


def flag_error(exc, args, candidates: Iterable[tuple[str, int]]) -> CliError:
    """A `solver.optimize.InputError` about an API value, said in terms of the flags behind it.

    `candidates`: (argparse dest, exponent) of the flags that feed the value, the value being
    proportional to flag^exponent (+1: a price or a demand, -1: an MFU or a peak, 0: no simple
    relation, e.g. a GPU name). The first one the user gave is named, with the bound translated into
    its units when the API gave a numeric bound; otherwise the message lists the flags.
    """
    given = [(d, e) for d, e in candidates if getattr(args, d, None) not in (None, False)]
    if not given:
        return CliError(one_line(exc))
    dest, exp = given[0]
    text, name = getattr(args, dest), flag(dest)
    limit, why = (exc.limit, exc.why) if isinstance(exc, InputError) else (None, None)
    if exp != 0 and limit is not None and why and isinstance(text, float) and exc.value:
        bound = text * (limit / exc.value) ** (1.0 / exp)
        upper = exc.upper if exp > 0 else not exc.upper
        return CliError(f"{name} {text:g}: {why}; need {name} {'<=' if upper else '>='} {bound:.3g}")
    allowed = re.sub(rf"\b{re.escape(exc.name)}\b", name, exc.allowed) if isinstance(exc, InputError) else \
        one_line(exc)
    if exp == 1 and dest == exc.name:
        return CliError(f"{name} {text:g}: {allowed}")
    shown = ", ".join(flag(d) for d, _ in given)
    return CliError(f"{shown}: {one_line(exc)}")
