"""The shape of demand over time, reduced to what provisioning needs: the peak-to-mean ratio R.

A fleet is sized for the peak load and paid for every hour, so over its lifetime it is busy a
fraction mean/peak = 1/R of the time (its utilisation). With a constant cost per useful FLOP of a
busy device (the paper's constant-MFU Eq. 6), the provisioned cost of inference per useful FLOP is
the busy cost divided by the utilisation, i.e. multiplied by R:

    c_inf,provisioned = c_inf / utilisation = c_inf · R,    R = peak / mean >= 1

R comes from `--peak-to-mean R` or from an hourly demand profile (`demand_from_csv`): a CSV of
relative load per hour of a day (24 rows) or a week (168 rows), R = max / mean of the loads. Only
the ratio matters, so the loads may be in any unit (requests/s, % of peak, ...).

CSV format: one row per hour; the load is the last field of each row (so `load` or `hour,load`
both work); an optional header row (a first row whose load field is not a number) and blank lines
are skipped. Loads are finite numbers >= 0, not all zero.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path

HOURS_ALLOWED = (24, 168)  # a day or a week of hourly loads


@dataclass(frozen=True)
class DemandShape:
    """Peak-to-mean ratio of demand (>= 1), where it came from, and the hours of the profile."""

    peak_to_mean: float
    source: str  # "--peak-to-mean" | the profile's file path
    hours: int | None = None  # 24 | 168 for a profile, None for --peak-to-mean

    @property
    def utilisation(self) -> float:
        """mean / peak: the fraction of provisioned device-hours that serve load."""
        return 1.0 / self.peak_to_mean

    def as_dict(self) -> dict:
        if self.hours is not None:
            provenance = "computed: max / mean of the hourly loads in the profile file"
        elif self.source.startswith("--"):
            provenance = f"assumed (given as {self.source})"
        else:
            provenance = f"assumed ({self.source})"
        return {"peak_to_mean": self.peak_to_mean, "utilisation": self.utilisation, "source": self.source,
                "hours": self.hours, "provenance": provenance}


def _load(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def demand_from_csv(path: str | Path) -> DemandShape:
    """DemandShape from a CSV of relative load per hour (24 or 168 rows). ValueError, one line
    "FILE: row K: problem; what is allowed" (rows counted from 1 as in the file, header included)."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"{p}: cannot read the demand profile: {getattr(exc, 'strerror', None) or exc}") from None
    loads: list[float] = []
    seen_row = False
    for lineno, row in enumerate(csv.reader(text.splitlines()), start=1):
        fields = [f.strip() for f in row]
        if not any(fields):
            continue
        field = fields[-1]
        value = _load(field)
        if value is None and not seen_row:  # the header
            seen_row = True
            continue
        seen_row = True
        allowed = "need a finite relative load >= 0 (the last field of each row)"
        if value is None:
            raise ValueError(f"{p}: row {lineno}: load {field!r} is not a number; {allowed}")
        if not math.isfinite(value):
            raise ValueError(f"{p}: row {lineno}: load {field!r} is not finite; {allowed}")
        if value < 0:
            raise ValueError(f"{p}: row {lineno}: load {field!r} is negative; {allowed}")
        loads.append(value)
    if len(loads) not in HOURS_ALLOWED:
        raise ValueError(f"{p}: {len(loads)} hourly loads; need 24 (a day) or 168 (a week), one row per hour "
                         f"(an optional header row first)")
    peak = max(loads)
    if peak <= 0:
        raise ValueError(f"{p}: every load is 0; need at least one hourly load > 0")
    mean = math.fsum(loads) / len(loads)
    return DemandShape(peak_to_mean=max(1.0, peak / mean), source=str(p), hours=len(loads))


def provisioned_settings(settings, peak_to_mean: float):
    """Eq. 6 constants (`solver.optimize.solve.CostSettings`) of a fleet provisioned for the peak: both inference
    $/useful FLOP divided by the utilisation mean/peak, i.e. multiplied by R (module docstring). R = 1
    returns `settings` itself, so the paper's full-utilisation answer is reproduced bit for bit."""
    from dataclasses import replace

    r = float(peak_to_mean)
    if r == 1.0:
        return settings
    return replace(settings, input_usd_per_flop=settings.input_usd_per_flop * r,
                   output_usd_per_flop=settings.output_usd_per_flop * r)
