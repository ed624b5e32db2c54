"""How fast is this host from one second to the next? A fixed pure-Python loop timed on each CPU.

    python benchmarks/host_speed.py [--seconds 60] [--period 0.1]

One child process per CPU, pinned to it (os.sched_setaffinity), times the same loop (~1 ms) every
`period` seconds by its own CPU time (time.thread_time: being descheduled does not count, running
slower does). Prints per CPU the 5/50/95th percentiles, the per-second medians, the correlation of
the CPUs' per-second medians and each one's autocorrelation at 1, 2 and 5 s. On the 2-core VMs of
this project the loop's time switches between levels ~1.3x apart within seconds, per vCPU and
independently (docs/measurements.md, fourth AMX session): a floor under how well any run repeats.
Run it on an otherwise idle host. Prints figures; asserts nothing (a benchmark, not a test).
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import time

import numpy as np


def _loop() -> int:
    s = 0
    for i in range(15000):
        s += i * i
    return s


def probe(cpu: int, seconds: float, period: float, out) -> None:
    """Time `_loop` on `cpu` every `period` s for `seconds`; send [(wall time, µs of CPU time)]."""
    os.sched_setaffinity(0, {cpu})
    samples = []
    end = time.time() + seconds
    while time.time() < end:
        c0 = time.thread_time()
        _loop()
        samples.append((time.time(), (time.thread_time() - c0) * 1e6))
        time.sleep(period)
    out.put((cpu, samples))


def per_second(samples: list[tuple[float, float]]) -> dict[int, float]:
    bins: dict[int, list[float]] = {}
    for t, v in samples:
        bins.setdefault(int(t), []).append(v)
    return {k: float(np.median(v)) for k, v in bins.items()}


def autocorr(x: np.ndarray, lag: int) -> float:
    return float(np.corrcoef(x[:-lag], x[lag:])[0, 1]) if x.size > lag + 2 else float("nan")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--period", type=float, default=0.1)
    args = ap.parse_args(argv)
    cpus = sorted(os.sched_getaffinity(0))
    q: mp.Queue = mp.Queue()
    procs = [mp.Process(target=probe, args=(c, args.seconds, args.period, q)) for c in cpus]
    for p in procs:
        p.start()
    got = dict(q.get() for _ in procs)
    for p in procs:
        p.join()
    bins = {c: per_second(got[c]) for c in cpus}
    print(f"{len(cpus)} CPUs, {args.seconds:g} s, a sample every {args.period:g} s (µs of CPU time per loop)")
    for c in cpus:
        v = np.array([x for _, x in got[c]])
        med = np.array([bins[c][k] for k in sorted(bins[c])])
        print(f"cpu {c}: {v.size} samples, p5 {np.percentile(v, 5):.0f}, p50 {np.percentile(v, 50):.0f}, "
              f"p95 {np.percentile(v, 95):.0f}; per-second medians {med.min():.0f} .. {med.max():.0f} "
              f"({med.max() / med.min():.2f}x); autocorrelation at 1 / 2 / 5 s: "
              f"{autocorr(med, 1):.2f} / {autocorr(med, 2):.2f} / {autocorr(med, 5):.2f}")
    if len(cpus) >= 2:
        a, b = bins[cpus[0]], bins[cpus[1]]
        keys = sorted(set(a) & set(b))
        r = np.corrcoef([a[k] for k in keys], [b[k] for k in keys])[0, 1] if len(keys) > 2 else float("nan")
        print(f"correlation of cpu {cpus[0]} and cpu {cpus[1]} per-second medians: {r:.2f} over {len(keys)} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
