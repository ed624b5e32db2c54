"""Leave one ladder size out, predicting it from the device's measured operators.

    python benchmarks/operator_heldout.py OPERATOR_PROFILE RUN_DIR...

calibrate.operators.validate.leave_one_size_out does the work: the overheads the operators do not
cover are fitted on the other sizes, every run of the held-out size is simulated with steps composed
from the operator profile, and its output tok/s and $/request set beside what was measured.
Beside each point: its replicate spread (the noise floor: |replicate − their mean| / mean, the error
of an ideal predictor of the point's mean), and at the end the share of the squared log error that
is per-point bias (the error of the mean of the replicates) rather than noise.
Prints figures; asserts nothing (a benchmark, not a test).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from calibrate.operators.interpolate import OperatorTable  # noqa: E402
from calibrate.operators.validate import leave_one_size_out, nested_leave_one_size_out, sizes_of  # noqa: E402
from calibrate.perfmodel.errorsplit import error_split  # noqa: E402
from calibrate.perfmodel.selection import load_ladder  # noqa: E402
from core.schema.operators import load_profile  # noqa: E402

KEYS = ("output_tokens_per_s", "usd_per_request")


def point_key_of(f: dict) -> tuple:
    return (f["model"], f["input_tokens"], f["output_tokens"], f["concurrency"])


def pct(x) -> str:
    return "n/a" if x is None else f"{100 * x:.1f} %"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("profile", type=Path)
    ap.add_argument("runs", nargs="+")
    ap.add_argument("--layer-term", action="store_true",
                    help="fit a per-layer overhead beside the per-step one (needs two layer counts besides the held-out size)")
    ap.add_argument("--sequence-term", action="store_true",
                    help="fit an overhead per sequence in the step (the host's CPU time per streamed token)")
    ap.add_argument("--context-term", action="store_true",
                    help="fit an overhead per cached token per layer (the KV read in the engine beyond the kernel's)")
    ap.add_argument("--nested", action="store_true",
                    help="choose the terms per held-out size by leave-one-size-out on the other sizes (nested "
                         "cross-validation, as calibrate profile does); the --*-term flags are then ignored")
    a = ap.parse_args(argv)
    t0 = time.perf_counter()
    table = OperatorTable(load_profile(a.profile).records)
    runs, dropped = load_ladder(a.runs)
    sizes = sizes_of(runs)
    print(f"{len(runs)} runs of {len(sizes)} sizes ({', '.join(sizes)}); {len(dropped)} dropped")
    terms = [t for t, on in (("layer", a.layer_term), ("sequence", a.sequence_term), ("context", a.context_term)) if on]
    rows = nested_leave_one_size_out(table, runs) if a.nested else leave_one_size_out(table, runs, terms=terms)
    # per run: measured vs predicted, beside its point's replicate spread
    flat = [vars(r) for r in rows]
    by_point = defaultdict(list)
    for f in flat:
        by_point[point_key_of(f)].append(f)
    print(f"\n{'size':<26} {'where':<24} {'workload':<10} {'c':>3} {'key':<20} {'measured':>10} {'predicted':>10} "
          f"{'error':>8} {'repl. spread':>12}")
    for group in by_point.values():
        for k in KEYS:
            meas = [g["measured"].get(k) for g in group]
            if any(v is None for v in meas):
                continue
            mean = statistics.fmean(meas)
            spread = max(abs(v / mean - 1) for v in meas)
            for g, v in zip(group, meas):
                pred = g["predicted"][k]
                print(f"{g['model']:<26} {g['where']:<24} {g['input_tokens']:>3}/{g['output_tokens']:<6} "
                      f"{g['concurrency']:>3} {k:<20} {v:>10.4g} {pred:>10.4g} {100 * (pred / v - 1):>+7.1f}% "
                      f"{100 * spread:>11.1f}%")
    print("\noverheads fitted without each size: per step / per layer / per request / per sequence / per cached token·layer:")
    for held in sizes:
        row = next(x for x in rows if x.model == held)
        print(f"  {held:<26} {1e3 * row.engine_step_overhead_s:.2f} ms / {1e3 * row.layer_overhead_s:.3f} ms / "
              f"{1e3 * row.request_overhead_s:.2f} ms / {1e3 * row.overheads.sequence:.3f} ms / "
              f"{1e6 * row.overheads.context:.3f} µs (terms: step{''.join(', ' + t for t in row.terms)}); operators' share of its batch-1 decode step "
              f"{100 * row.operator_share:.0f} %")
    wheres = sorted({f["where"] for f in flat})
    for k in KEYS:
        print(f"\n{k}: error median / worst; noise floor (replicates about their mean) median / worst; bias share")
        for where in wheres + ["all"]:
            e = error_split([f for f in flat if where in ("all", f["where"])], keys=(k,))[k]
            print(f"  {where:<24} {pct(e['error_median'])} / {pct(e['error_max'])}; {pct(e['noise_median'])} / "
                  f"{pct(e['noise_max'])}; {pct(e['bias_share'])}  ({e['runs']} runs, {e['replicated_points']} "
                  "replicated points)")
    print(f"\n({time.perf_counter() - t0:.1f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
