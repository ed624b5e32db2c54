"""The command-line building blocks every stage shares: one parser style, one error format, one
number-type factory (`python -m bench|calibrate|solver|pipeline` all import them from here).

Bad input is one line on stderr, `<prog>: error: <what is wrong and what is allowed>`, and exit
status 2, never a usage dump or a traceback (`OneLineParser`, `fail`). Numbers are checked when parsed
by `number_type` (finite, in range, a normal float: a subnormal such as 1e-320 has lost its digits);
values an API refuses later (`core.errors.BadValue`) are said again in terms of the flag they came
from by `flag_error`.
"""

from __future__ import annotations

import argparse
import math
import re
import sys
from collections.abc import Callable, Iterable
from typing import NoReturn

from core.errors import BadValue
from core.gpus import DTYPES

EXIT_BAD_INPUT = 2
SMALLEST = sys.float_info.min  # 2.2e-308: below it a float is subnormal


class OneLineParser(argparse.ArgumentParser):
    """argparse that reports bad input in one line and exits 2 (no usage dump, no traceback)."""

    def error(self, message: str) -> NoReturn:  # noqa: D401
        fail(self.prog, message)


Parser = OneLineParser  # the one parser style of every stage


class CliError(Exception):
    """Bad input found after parsing: reported as one line, exit code 2."""


def fail(prog: str, message: str) -> NoReturn:
    """Print `<prog>: error: <message>` (one line) and exit 2."""
    print(f"{prog}: error: {message}", file=sys.stderr)
    raise SystemExit(EXIT_BAD_INPUT)


def bad_input(prog: str, message: str) -> int:
    """Print `<prog>: error: <message>` (one line) and return 2, for a `main` that returns its status."""
    print(f"{prog}: error: {message}", file=sys.stderr)
    return EXIT_BAD_INPUT


def one_line(exc: BaseException) -> str:
    """The first line of an exception's message (its type's name when it has none)."""
    text = str(exc)
    return text.splitlines()[0] if text else type(exc).__name__


# --------------------------------------------------------------------------- numbers


def number_type(*, low: float | None = None, high: float | None = None, low_open: bool = False,
                allowed: str, cast: Callable[[str], float] = float, name: str = "number") -> Callable[[str], float]:
    """The one argparse number type: `cast` (float or int) of the text, finite, in [low, high] ((low, high]
    with low_open), never subnormal. `allowed` is the phrase every refusal ends with, e.g. "need a
    finite number > 0"; `name` is what argparse calls the type in its own messages."""
    kind = "an integer" if cast is int else "a number"

    def parse(text: str):
        try:
            value = cast(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {kind}; {allowed}") from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"{text!r} is not finite; {allowed}")
        too_low = low is not None and (value <= low if low_open else value < low)
        if too_low or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"{text!r}; {allowed}")
        if value != 0 and abs(value) < SMALLEST:
            raise argparse.ArgumentTypeError(f"{text!r} is below float range (it keeps no digits); {allowed}, "
                                             f"at least {SMALLEST:.3g}")
        return value

    parse.__name__ = name
    return parse


positive_int = number_type(cast=int, low=0, low_open=True, allowed="need an integer > 0", name="positive_int")
nonneg_int = number_type(cast=int, low=0, allowed="need an integer >= 0", name="nonnegative_int")
positive_float = number_type(low=0.0, low_open=True, allowed="need a finite number > 0", name="positive_float")
nonneg_float = number_type(low=0.0, allowed="need a finite number >= 0", name="nonnegative_float")
positive = positive_float
non_negative = nonneg_float
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
PEAK_TO_MEAN_MAX = 1e6  # peak demand over mean demand: far beyond any real demand (168 h of demand give <= 168)
peak_to_mean_arg = number_type(low=1.0, high=PEAK_TO_MEAN_MAX, name="peak_to_mean",
                               allowed=f"need a finite number in [1, {PEAK_TO_MEAN_MAX:g}] (peak demand / mean demand)")


def zero_or_at_least(minimum: int) -> Callable[[str], int]:
    """0 (the feature off) or a whole number >= minimum (e.g. bootstrap resamples: 0 or >= 2)."""
    allowed = f"0 or a whole number >= {minimum}"

    def parse(text: str) -> int:
        try:
            value = nonneg_int(text)
        except argparse.ArgumentTypeError:
            value = None
        if value is None or (value != 0 and value < minimum):
            raise argparse.ArgumentTypeError(f"{text!r}: must be {allowed}")
        return value

    parse.__name__ = allowed  # argparse names the type in some messages
    return parse


def count_or_all(*, all_value=None) -> Callable[[str], int | None]:
    """A whole number >= 1, or the word 'all' (then `all_value`)."""
    allowed = "a whole number >= 1 or 'all'"

    def parse(text: str):
        if text.strip().lower() == "all":
            return all_value
        try:
            return positive_int(text)
        except argparse.ArgumentTypeError:
            raise argparse.ArgumentTypeError(f"{text!r}: must be {allowed}") from None

    parse.__name__ = allowed
    return parse


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


# --------------------------------------------------------------------------- API errors said as flags


def flag(dest: str) -> str:
    """argparse dest -> the flag a user writes: chinchilla_params -> --chinchilla-params."""
    return "--" + dest.replace("_", "-")


def flag_error(exc, args, candidates: Iterable[tuple[str, int]]) -> CliError:
    """A `core.errors.BadValue` about an API value, said in terms of the flags behind it.

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
    limit, why = (exc.limit, exc.why) if isinstance(exc, BadValue) else (None, None)
    if exp != 0 and limit is not None and why and isinstance(text, float) and exc.value:
        bound = text * (limit / exc.value) ** (1.0 / exp)
        upper = exc.upper if exp > 0 else not exc.upper
        return CliError(f"{name} {text:g}: {why}; need {name} {'<=' if upper else '>='} {bound:.3g}")
    allowed = re.sub(rf"\b{re.escape(exc.name)}\b", name, exc.allowed) if isinstance(exc, BadValue) else \
        one_line(exc)
    if exp == 1 and dest == exc.name:
        return CliError(f"{name} {text:g}: {allowed}")
    shown = ", ".join(flag(d) for d, _ in given)
    return CliError(f"{shown}: {one_line(exc)}")
