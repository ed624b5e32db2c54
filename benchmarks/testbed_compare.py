"""Which CPU layout mirrors a GPU node better: the engine's threads on every core ("shared") or on
their own core with the API server and the load client on the other ("apart")?

    python benchmarks/testbed_compare.py [--results results/testbed] [--models-dir models]

Sweeps benchmarks/data/testbed.toml (decode at concurrency 1/4/16 and the paper's 70/215 request at
16, three replicates each, seeded random order) for the smallest and the largest size of the CPU
ladder under each layout (one server per model and layout), then prints per point the mean output
tok/s and the replicate spread (max |replicate / mean - 1|) under each layout. Runs are kept under
`<results>/<layout>/...`; a re-run skips complete ones. Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.config import load_config, with_overrides  # noqa: E402
from bench.run.ladder import DEFAULT_CPU_LADDER, Rung, prepare_ladder  # noqa: E402
from bench.run.sweep import run_from_config  # noqa: E402
from calibrate.runs.load import find_run_dirs, load_run  # noqa: E402

CONFIG = Path(__file__).resolve().parent / "data" / "testbed.toml"
LAYOUTS = ("shared", "apart")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--results", type=Path, default=Path("results/testbed"))
    ap.add_argument("--models-dir", type=Path, default=Path("models"))
    a = ap.parse_args(argv)
    t0 = time.perf_counter()
    specs = (DEFAULT_CPU_LADDER[0], DEFAULT_CPU_LADDER[-1])
    models = prepare_ladder([Rung(spec=s) for s in specs], models_dir=a.models_dir)
    for layout in LAYOUTS:
        for m in models:
            cfg = with_overrides(load_config(CONFIG), {"model": str(m), "results": str(a.results / layout),
                                                       "server.cpu_layout": layout})
            out = run_from_config(cfg, on_status=lambda s: print(f"  {s}", file=sys.stderr))
            print(f"{layout} {m.name}: {'ok' if out.ok else 'FAILED'}", file=sys.stderr)
    rows = defaultdict(list)
    for layout in LAYOUTS:
        dirs, _ = find_run_dirs([a.results / layout])
        for d in dirs:
            rec = load_run(d).record
            if rec.status != "complete":
                continue
            c = rec.config
            key = (c.model.name, c.workload.kind, c.workload.input_tokens, c.workload.output_tokens, c.concurrency)
            rows[key + (layout,)].append(rec.summary.output_tokens_per_s)
    print(f"\n{'model':<26} {'point':<18} " + " ".join(f"{x + ' tok/s':>13} {'spread':>7}" for x in LAYOUTS))
    spreads = {x: [] for x in LAYOUTS}
    ratios = []
    for key in sorted({k[:-1] for k in rows}):
        cells, means = [], {}
        for layout in LAYOUTS:
            vals = rows.get(key + (layout,), [])
            if not vals:
                cells.append(f"{'-':>13} {'-':>7}")
                continue
            mean = statistics.fmean(vals)
            spread = max(abs(v / mean - 1) for v in vals)
            spreads[layout].append(spread)
            means[layout] = mean
            cells.append(f"{mean:>13.4g} {100 * spread:>6.1f}%")
        if len(means) == 2:
            ratios.append(means["apart"] / means["shared"])
        model, kind, p, g, c = key
        print(f"{model:<26} {f'{kind} {p}/{g} c{c}':<18} " + " ".join(cells))
    for layout in LAYOUTS:
        s = spreads[layout]
        if s:
            print(f"{layout}: replicate spread median {100 * statistics.median(s):.1f} %, worst {100 * max(s):.1f} %")
    if ratios:
        print(f"throughput apart / shared: median {statistics.median(ratios):.3f}, range "
              f"{min(ratios):.3f}-{max(ratios):.3f}")
    print(f"({time.perf_counter() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
