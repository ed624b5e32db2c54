"""Fuzz the solver API: N random calls, count results that are not finite plans.

    .venv/bin/python benchmarks/solver_fuzz.py [--calls 10000] [--seed 20241]

Each call draws a law (a named one or random coefficients), a loss from rounding level above E to
far above it (a quarter of the draws within 1e-16 .. 1e-6 relative of E, the class that used to give
N* ~ 1e200 and a NaN saving), a demand up to the float maximum, and for the cost objective random
dollars per FLOP and tokens per request; then `optimize_flops`, `optimize_cost` or (one call in 20)
`optimize_cost_general`. A call either raises ValueError (refused, with the range that works) or
returns a plan; a returned plan is *bad* if any number is non-finite, the loss constraint misses by
more than 1e-9, the optimum costs more than the Chinchilla-style model or is larger, or the saving is
negative. numpy warnings are errors (a warning on the way counts as bad). Prints one summary line;
exit status 1 if any result was bad.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from solver.optimize.laws import LAWS, LossLaw  # noqa: E402
from solver.optimize.laws import loss as law_loss
from solver.optimize.solve import CostSettings, optimize_cost, optimize_cost_general, optimize_flops  # noqa: E402

NAMED = sorted(LAWS.values(), key=lambda law: law.name)


def log_uniform(rng, lo: float, hi: float) -> float:
    return float(10.0 ** rng.uniform(math.log10(lo), math.log10(hi)))


def draw_law(rng) -> LossLaw:
    if rng.random() < 0.5:
        return NAMED[rng.integers(len(NAMED))]
    return LossLaw("fuzz", log_uniform(rng, 1e-3, 1e5), log_uniform(rng, 1e-3, 1e5), log_uniform(rng, 1e-3, 10),
                   rng.uniform(0.02, 2.0), rng.uniform(0.02, 2.0), "fuzz")


def draw_loss(rng, law: LossLaw) -> float:
    u = rng.random()
    if u < 0.25:  # within rounding .. 1e-6 relative of E
        return law.E * (1.0 + log_uniform(rng, 1e-16, 1e-6))
    if u < 0.30:
        return float(np.nextafter(law.E, np.inf))
    return law.E + log_uniform(rng, 1e-12, 1e3)


def draw_demand(rng) -> float:
    u = rng.random()
    if u < 0.1:
        return 0.0
    if u < 0.2:
        return float(rng.choice([1e308, 1.7e308, 5e-324, 1e-300]))
    return log_uniform(rng, 1e-10, 1.7e308)


def draw_settings(rng) -> CostSettings:
    def price() -> float:
        return log_uniform(rng, 1e-300, 1e300) if rng.random() < 0.3 else log_uniform(rng, 1e-22, 1e-14)

    def tokens() -> float:
        return 0.0 if rng.random() < 0.1 else log_uniform(rng, 1e-3, 1e7)

    t_in, t_out = tokens(), tokens()
    return CostSettings(price(), price(), price(), t_in, t_out if t_in + t_out > 0 else 1.0)


def bad_plan(comp, law: LossLaw, target: float, total: str) -> str | None:
    for plan in (comp.optimal, comp.chinchilla):
        for name, value in vars(plan).items():
            if value is not None and not np.all(np.isfinite(value)):
                return f"non-finite {name}"
    if not (np.isfinite(comp.saving) and np.isfinite(comp.saving_fraction)):
        return "non-finite saving"
    got = float(law_loss(law, comp.optimal.params, comp.optimal.train_tokens))
    if abs(got - target) > 1e-9 * target:
        return f"loss constraint off by {abs(got - target) / target:.2g}"
    if float(getattr(comp.optimal, total)) > float(getattr(comp.chinchilla, total)) * (1 + 1e-12):
        return "optimum costs more than the Chinchilla-style model"
    if float(comp.optimal.params) > float(comp.chinchilla.params) * (1 + 1e-12):
        return "optimum larger than the Chinchilla-style model"
    if float(comp.saving) < 0:
        return "negative saving"
    return None


def one_call(rng) -> tuple[str, str | None]:
    """('refused' | 'plan', problem or None) for one random call."""
    law = draw_law(rng)
    target = draw_loss(rng, law)
    kind = rng.random()
    try:
        if kind < 0.05:
            c_tr, per_param = log_uniform(rng, 1e-22, 1e-14), log_uniform(rng, 1e-300, 1e300)
            g = optimize_cost_general(target, law, c_tr, lambda n: n * per_param, grid_points=101)
            if not all(math.isfinite(v) for v in vars(g).values()):
                return "plan", "non-finite general result"
            ok = g.total_usd <= g.chinchilla_total_usd and g.saving_usd >= 0
            return "plan", None if ok else "general optimum worse than the Chinchilla-style model"
        if kind < 0.5:
            comp = optimize_flops(target, draw_demand(rng), law)
            return "plan", bad_plan(comp, law, target, "total_flop")
        comp = optimize_cost(target, draw_demand(rng), draw_settings(rng), law)
        return "plan", bad_plan(comp, law, target, "total_usd")
    except ValueError:
        return "refused", None
    except (ArithmeticError, RuntimeWarning) as exc:  # OverflowError, a numpy warning turned error
        return "plan", f"{type(exc).__name__}: {exc}"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--calls", type=int, default=10_000)
    p.add_argument("--seed", type=int, default=20241)
    args = p.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    counts = {"refused": 0, "plan": 0}
    bad: list[str] = []
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for _ in range(args.calls):
            kind, problem = one_call(rng)
            counts[kind] += 1
            if problem:
                bad.append(problem)
    dt = time.perf_counter() - t0
    print(f"{args.calls} fuzzed solver calls (seed {args.seed}) in {dt:.1f} s: {counts['plan']} finite plans, "
          f"{counts['refused']} refused with ValueError, {len(bad)} bad results")
    for problem in sorted(set(bad))[:10]:
        print(f"  bad: {problem} (x{bad.count(problem)})")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
