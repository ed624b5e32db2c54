"""argparse types for calibrate's numeric flags, defined once: each refuses a bad value with one
line naming the value and what is allowed (argparse adds the flag; `python -m calibrate` exits 2).
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable


def _whole(text: str, allowed: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: must be {allowed}") from None


def at_least(minimum: int) -> Callable[[str], int]:
    """A whole number >= minimum."""
    allowed = f"a whole number >= {minimum}"

    def parse(text: str) -> int:
        value = _whole(text, allowed)
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{text!r}: must be {allowed}")
        return value

    parse.__name__ = allowed  # argparse names the type in some messages
    return parse


def zero_or_at_least(minimum: int) -> Callable[[str], int]:
    """0 (the feature off) or a whole number >= minimum."""
    allowed = f"0 or a whole number >= {minimum}"

    def parse(text: str) -> int:
        value = _whole(text, allowed)
        if value != 0 and value < minimum:
            raise argparse.ArgumentTypeError(f"{text!r}: must be {allowed}")
        return value

    parse.__name__ = allowed
    return parse


def count_or_all(minimum: int, *, all_value=None) -> Callable[[str], int | None]:
    """A whole number >= minimum, or the word 'all' (then `all_value`)."""
    allowed = f"a whole number >= {minimum} or 'all'"

    def parse(text: str):
        if text.strip().lower() == "all":
            return all_value
        value = _whole(text, allowed)
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{text!r}: must be {allowed}")
        return value

    parse.__name__ = allowed
    return parse


def positive_float(text: str) -> float:
    """A finite number > 0."""
    allowed = "a finite number > 0"
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: must be {allowed}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"{text!r}: must be {allowed}")
    return value
