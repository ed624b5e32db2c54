"""Speed of the loss-law fit (paper Eq. 4): one full fit plus 4000 bootstrap resamples on the Epoch data.

    .venv/bin/python benchmarks/law_fit.py [--bootstrap 4000] [--extra-starts 0] [--n-starts 64]

Target (issue 4): under 60 s in all on the development machine (2 cores). Prints the time of the full
fit, the time of the bootstrap and the coefficients with their 95 % intervals. The data are Besiroglu
et al. 2024's points extracted from Hoffmann et al. 2022 Fig. 4 (calibrate/data/README.md), the 5
highest-loss points excluded as they did.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # see calibrate.law.fit._one_blas_thread

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import pandas as pd  # noqa: E402

from calibrate.law.fit import COEFFICIENT_NAMES, bootstrap_law, fit_law  # noqa: E402

BESIROGLU_REFIT = {"A": 482.01, "B": 2085.43, "E": 1.82, "alpha": 0.3478, "beta": 0.3658}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--bootstrap", type=int, default=4000)
    p.add_argument("--extra-starts", type=int, default=0)
    p.add_argument("--n-starts", type=int, default=64)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()

    df = pd.read_csv(ROOT / "calibrate" / "data" / "epoch2024_chinchilla_svg_extracted.csv")
    n = df["Model Size"].to_numpy()
    d = df["Training FLOP"].to_numpy() / (6 * n)  # D = C / (6 N)
    loss = df["loss"].to_numpy()

    c0, t0 = time.process_time(), time.perf_counter()
    fit = fit_law(n, d, loss, exclude_highest_loss=5, n_starts=args.n_starts)
    fit_s, fit_cpu_s = time.perf_counter() - t0, time.process_time() - c0
    c0, t0 = time.process_time(), time.perf_counter()
    boot = bootstrap_law(n, d, loss, fit, n_boot=args.bootstrap, seed=args.seed, extra_starts=args.extra_starts)
    boot_s, boot_cpu_s = time.perf_counter() - t0, time.process_time() - c0

    print(f"machine: {platform.machine()} {os.cpu_count()} cpus, load average {os.getloadavg()[0]:.1f} at end")
    print(f"full fit: {fit_s:.2f} s wall, {fit_cpu_s:.2f} s CPU ({fit.n_starts} L-BFGS starts of {fit.n_grid_points}; "
          f"{fit.n_starts_at_minimum} reached the minimum, objective {fit.objective:.6f})")
    print(f"bootstrap: {boot_s:.2f} s wall, {boot_cpu_s:.2f} s CPU for {boot.n_boot} resamples ({1000 * boot_s / args.bootstrap:.1f} ms each; "
          f"{1 + boot.n_extra_starts} starts each, an extra start won {boot.n_won_by_extra_start} times)")
    print(f"total: {fit_s + boot_s:.2f} s wall, {fit_cpu_s + boot_cpu_s:.2f} s CPU (target < 60 s; "
          "CPU time is what the fit would take on an idle core)")
    print(f"{'coef':<6}{'fit':>10}  {'95% interval':<24}{'Besiroglu':>10}{'diff':>8}")
    c = fit.coefficients.as_dict()
    for name in COEFFICIENT_NAMES:
        lo, hi = boot.intervals[name]
        want = BESIROGLU_REFIT[name]
        print(f"{name:<6}{c[name]:>10.4g}  [{lo:.4g}, {hi:.4g}]".ljust(42) + f"{want:>10.4g}{100 * (c[name] / want - 1):>+7.2f}%")
    return 0


if __name__ == "__main__":
    sys.exit(main())
