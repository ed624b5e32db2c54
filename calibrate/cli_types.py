"""The two argparse types calibrate needs beyond the stages' shared ones (bench.cli_types:
positive_int, nonneg_int, positive_float, ...). Each refuses a bad value with one line naming the
value and what is allowed (argparse adds the flag; `python -m calibrate` exits 2).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

from bench.cli_types import nonneg_int, positive_int


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


__all__ = ["zero_or_at_least", "count_or_all"]
