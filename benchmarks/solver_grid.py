"""Benchmark: the vectorised Eq. 3 solver on a 1000 x 1000 grid of (loss, inference demand)
against a per-point scalar root-find (Brent on the paper's Eq. 12, `optimal_params_tokens_scalar`).

    .venv/bin/python benchmarks/solver_grid.py [--n 1000] [--baseline-points 20000 | --baseline-full] [--repeat 3]

Prints the points per second of both paths and their largest relative disagreement in N* and D*.
The baseline is timed on a random subsample of the grid (default 20,000 points) and its rate
extrapolated to the whole grid unless --baseline-full; the disagreement is over the points the
baseline solved. Timings are wall-clock best of --repeat runs.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from solver.optimize.laws import DEFAULT_LAW as LAW
from solver.optimize.solve import optimal_params_tokens, optimal_params_tokens_scalar, optimize_flops


def grid(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Losses E + 1e-6 ... 4 (log-spaced gap to E, so the hard near-E end is covered) x demands {0} + 1 ... 1e16 tokens."""
    losses = LAW.E + np.geomspace(1e-6, 4.0 - LAW.E, n)
    demands = np.concatenate([[0.0], np.logspace(0.0, 16.0, n - 1)])
    return losses, demands


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1000, help="grid side (n x n points)")
    ap.add_argument("--baseline-points", type=int, default=20_000)
    ap.add_argument("--baseline-full", action="store_true", help="run the scalar baseline on every grid point")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    losses, demands = grid(args.n)
    L2, D2 = losses[:, None], demands[None, :]
    points = args.n * args.n

    best_core = best_full = cpu_core = cpu_full = float("inf")
    for _ in range(args.repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        n_opt, d_opt = optimal_params_tokens(LAW, L2, D2 / 3.0)
        best_core = min(best_core, time.perf_counter() - t0)
        cpu_core = min(cpu_core, time.process_time() - c0)
        t0, c0 = time.perf_counter(), time.process_time()
        comp = optimize_flops(L2, D2, LAW)
        best_full = min(best_full, time.perf_counter() - t0)
        cpu_full = min(cpu_full, time.process_time() - c0)
    assert np.array_equal(comp.optimal.params, n_opt)

    if args.baseline_full:
        idx = np.arange(points)
    else:
        rng = np.random.default_rng(args.seed)
        idx = rng.choice(points, size=min(args.baseline_points, points), replace=False)
    i, j = np.unravel_index(idx, (args.n, args.n))
    t0, c0 = time.perf_counter(), time.process_time()
    ref = [optimal_params_tokens_scalar(LAW, float(losses[a]), float(demands[b] / 3.0)) for a, b in zip(i, j)]
    t_base = time.perf_counter() - t0
    cpu_base = time.process_time() - c0
    ref_n = np.array([r[0] for r in ref])
    ref_d = np.array([r[1] for r in ref])
    dis_n = np.max(np.abs(n_opt[i, j] / ref_n - 1.0))
    dis_d = np.max(np.abs(d_opt[i, j] / ref_d - 1.0))

    # loss-constraint residual over the whole grid
    loss_back = LAW.E + LAW.A * n_opt ** -LAW.alpha + LAW.B * d_opt ** -LAW.beta
    resid = np.max(np.abs(loss_back / L2 - 1.0))

    base_rate = len(idx) / t_base
    print(f"grid: {args.n} x {args.n} = {points:,} points; loss E+1e-6 .. 4, demand 0 and 1 .. 1e16 tokens; law {LAW.name}")
    print("(wall = elapsed time, best of runs; cpu = this process's CPU time, less sensitive to a loaded machine)")
    print(f"vectorised N*, D* (optimal_params_tokens):       wall {best_core:6.3f} s ({points / best_core:.4g} points/s), "
          f"cpu {cpu_core:6.3f} s ({points / cpu_core:.4g} points/s)")
    print(f"vectorised Eq. 3 with baseline (optimize_flops): wall {best_full:6.3f} s ({points / best_full:.4g} points/s), "
          f"cpu {cpu_full:6.3f} s ({points / cpu_full:.4g} points/s)")
    what = "all points" if args.baseline_full else f"{len(idx):,}-point random subsample, extrapolated to the grid"
    print(f"scalar Brent per point ({what}): wall {t_base:.3f} s measured -> {points / base_rate:.1f} s for the grid "
          f"({base_rate:.4g} points/s), cpu {cpu_base:.3f} s ({len(idx) / cpu_base:.4g} points/s)")
    print(f"speed-up of the vectorised core over the scalar baseline: wall {(points / best_core) / base_rate:.4g}x, "
          f"cpu {(points / cpu_core) / (len(idx) / cpu_base):.4g}x")
    print(f"max relative disagreement vs scalar: N* {dis_n:.3g}, D* {dis_d:.3g} (over {len(idx):,} points)")
    print(f"max relative loss-constraint residual over the grid: {resid:.3g}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
