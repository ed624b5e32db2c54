"""How much of a prediction's error is bias, and how much the runs' own noise: the error split.

For the held-out runs of a ladder (each measured run beside its prediction from a model fitted
without its size), group the runs of one *point* (model, input, output tokens, concurrency): its
replicates. Per figure (output tok/s, $/request):

  error        |predicted / measured − 1| of every run (median and worst)
  noise floor  |replicate / mean of the point's replicates − 1|: the error an ideal predictor of each
               point's mean would still make (median and worst over the replicated points)
  bias share   Σ log²(predicted / point mean) / Σ log²(predicted / measured) over the runs of the
               replicated points: the part of the squared log error that a predictor could remove
               by getting each point's mean right (1 = all bias, 0 = all noise)

A large error with a small noise floor and a bias share near 1 says the model is wrong, not the
machine noisy. Pure: numpy-free arithmetic over the held-out rows.
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from collections.abc import Mapping, Sequence

KEYS = ("output_tokens_per_s", "usd_per_request")


def _get(row, name):
    return row[name] if isinstance(row, Mapping) else getattr(row, name)


def _fig(figs, key):
    return figs.get(key) if isinstance(figs, Mapping) else getattr(figs, key, None)


def error_split(rows: Sequence, keys: Sequence[str] = KEYS) -> dict[str, dict[str, float | int | None]]:
    """{key: {error_median, error_max, noise_median, noise_max, bias_share, runs, replicated_points}}."""
    points = defaultdict(list)
    for r in rows:
        points[(_get(r, "model"), _get(r, "input_tokens"), _get(r, "output_tokens"), _get(r, "concurrency"))].append(r)
    out = {}
    for k in keys:
        errors, noise, sq_total, sq_bias, replicated = [], [], 0.0, 0.0, 0
        for group in points.values():
            pairs = [(_fig(_get(r, "predicted"), k), _fig(_get(r, "measured"), k)) for r in group]
            pairs = [(p, m) for p, m in pairs if p and m and p > 0 and m > 0]
            errors += [abs(p / m - 1) for p, m in pairs]
            if len(pairs) < 2:
                continue
            replicated += 1
            mean = statistics.fmean(m for _, m in pairs)
            noise += [abs(m / mean - 1) for _, m in pairs]
            sq_total += sum(math.log(p / m) ** 2 for p, m in pairs)
            sq_bias += sum(math.log(p / mean) ** 2 for p, _ in pairs)
        out[k] = {
            "error_median": statistics.median(errors) if errors else None,
            "error_max": max(errors) if errors else None,
            "noise_median": statistics.median(noise) if noise else None,
            "noise_max": max(noise) if noise else None,
            "bias_share": min(1.0, sq_bias / sq_total) if sq_total > 0 else None,
            "runs": len(errors),
            "replicated_points": replicated,
        }
    return out
