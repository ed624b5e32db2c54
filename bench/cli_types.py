"""The command-line building blocks every stage shares: one parser style, one error format, the
number types (`python -m bench|calibrate|solver` all import them from here).

Bad input is one line on stderr, `<prog>: error: <what is wrong and what is allowed>`, and exit
status 2, never a usage dump or a traceback (`OneLineParser`, `fail`).
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable
from typing import NoReturn

from bench.gpus import DTYPES

EXIT_BAD_INPUT = 2


class OneLineParser(argparse.ArgumentParser):
    """argparse that reports bad input in one line and exits 2 (no usage dump, no traceback)."""

    def error(self, message: str) -> NoReturn:  # noqa: D401
        fail(self.prog, message)


def fail(prog: str, message: str) -> NoReturn:
    """Print `<prog>: error: <message>` (one line) and exit 2."""
    print(f"{prog}: error: {message}", file=sys.stderr)
    raise SystemExit(EXIT_BAD_INPUT)


def bad_input(prog: str, message: str) -> int:
    """Print `<prog>: error: <message>` (one line) and return 2, for a `main` that returns its status."""
    print(f"{prog}: error: {message}", file=sys.stderr)
    return EXIT_BAD_INPUT


def number(cast: Callable[[str], float], *, positive: bool) -> Callable[[str], float]:
    """An argparse type: `cast` (int or float) of the text, finite, > 0 (positive) or >= 0."""
    kind = "an integer" if cast is int else "a number"
    bound = "> 0" if positive else ">= 0"

    def parse(text: str):
        try:
            v = cast(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r}: must be {kind} {bound}") from None
        if not math.isfinite(v) or not (v > 0 if positive else v >= 0):
            raise argparse.ArgumentTypeError(f"{text!r}: must be finite and {bound}")
        return v

    parse.__name__ = f"{'positive' if positive else 'nonnegative'}_{cast.__name__}"  # argparse names it in errors
    return parse


positive_int = number(int, positive=True)
nonneg_int = number(int, positive=False)
positive_float = number(float, positive=True)
nonneg_float = number(float, positive=False)


def int_list(text: str) -> list[int]:
    """'1,2,4' -> [1, 2, 4]: positive integers (concurrencies)."""
    try:
        vals = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of integers, e.g. 1,2,4") from None
    if not vals or any(v < 1 for v in vals):
        raise argparse.ArgumentTypeError(f"{text!r}: concurrencies must be positive integers, e.g. 1,2,4")
    return vals


def float_list(text: str) -> list[float]:
    """'0.5,1,2' -> [0.5, 1.0, 2.0]: finite numbers > 0 (request rates)."""
    try:
        vals = [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of numbers, e.g. 0.5,1,2") from None
    if not vals or any(not (math.isfinite(v) and v > 0) for v in vals):
        raise argparse.ArgumentTypeError(f"{text!r}: request rates must be finite and > 0 requests/s")
    return vals


def peak(text: str) -> tuple[str, float]:
    """'int8=624e12' -> ("int8", 624e12): a dense peak FLOP/s per device for one datatype."""
    dtype, sep, value = text.partition("=")
    dtype = dtype.strip().lower()
    if not sep or dtype not in DTYPES:
        raise argparse.ArgumentTypeError(
            f"{text!r}: expected DTYPE=FLOP_PER_S with DTYPE one of {', '.join(DTYPES)}, e.g. int8=624e12")
    try:
        v = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: {value!r} is not a number of flop/s, e.g. int8=624e12") from None
    if not (math.isfinite(v) and v > 0):
        raise argparse.ArgumentTypeError(f"{text!r}: the peak must be finite and > 0 flop/s")
    return dtype, v
