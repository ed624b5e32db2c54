"""Leave one ladder size out, predicting it from the device's measured operators.

    python benchmarks/operator_heldout.py OPERATOR_PROFILE RUN_DIR...

For each size of the ladder, the engine's per-step overhead (`engine_step_overhead_s`) and the
request overhead outside the engine (`request_overhead_s`) are fitted on the *other* sizes'
runs (arithmetic means of measured − composed, calibrate.operators.stepmodel); every run of the
held-out size is then simulated closed-loop (calibrate.perfmodel.simulate) with steps composed from
the operator profile, and its output tok/s and $/request compared with what was measured.
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

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from calibrate.operators.interpolate import OperatorTable  # noqa: E402
from calibrate.operators.stepmodel import (  # noqa: E402
    OperatorStepModel,
    composed_share,
    fit_engine_overhead_s,
    fit_overheads_s,
)
from calibrate.perfmodel.errorsplit import error_split  # noqa: E402
from calibrate.perfmodel.selection import figures, load_ladder  # noqa: E402
from calibrate.perfmodel.simulate import simulate  # noqa: E402
from core.dims import dims_of  # noqa: E402
from core.schema.operators import load_profile  # noqa: E402

KEYS = ("output_tokens_per_s", "usd_per_request")


def step_model(table: OperatorTable, run, overhead: float = 0.0, layer: float = 0.0) -> OperatorStepModel:
    s = run.shape
    dims = dims_of(num_layers=int(s.num_layers), hidden_size=int(s.hidden_size), num_attention_heads=int(s.num_heads),
                   num_kv_heads=int(s.num_kv_heads), head_dim=int(s.head_dim), vocab_size=int(s.vocab_size),
                   params_matmul=s.params_matmul)
    return OperatorStepModel(table, dims, overhead, layer)


def fit_request_overhead_s(models_runs) -> float:
    """Arithmetic mean of (TTFT of a request alone − its prefill step) over the concurrency-1 runs."""
    res = []
    for m, r in models_runs:
        ev = r.evidence
        for t, p in zip(ev.first_token_s, ev.first_token_prompt):
            res.append(t - m(0.0, 0.0, float(p), p * (p + 1) / 2))
    return max(0.0, float(np.mean(res))) if res else 0.0


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
    a = ap.parse_args(argv)
    t0 = time.perf_counter()
    table = OperatorTable(load_profile(a.profile).records)
    runs, dropped = load_ladder(a.runs)
    sizes = sorted({r.model for r in runs}, key=lambda m: next(r.shape.params_matmul for r in runs if r.model == m))
    print(f"{len(runs)} runs of {len(sizes)} sizes ({', '.join(sizes)}); {len(dropped)} dropped")
    rows = []
    for held in sizes:
        train = [r for r in runs if r.model != held]
        mr = [(step_model(table, r), r) for r in train]
        pairs = [(m, r.evidence.steps) for m, r in mr]
        overhead, layer = fit_overheads_s(pairs) if a.layer_term else (fit_engine_overhead_s(pairs), 0.0)
        for m, _ in mr:
            m.engine_step_overhead_s, m.layer_overhead_s = overhead, layer
        req_overhead = fit_request_overhead_s(mr)
        where = ("extrapolated (largest)" if held == sizes[-1] else "extrapolated (smallest)" if held == sizes[0]
                 else "interpolated")
        for r in (r for r in runs if r.model == held):
            m = step_model(table, r, overhead, layer)
            sim = simulate(m, concurrency=r.concurrency, num_requests=r.num_requests,
                           lengths=[(r.input_tokens, r.output_tokens)], request_overhead_s=req_overhead,
                           max_num_seqs=r.max_num_seqs)
            pred = figures(sim, r.devices, r.usd_per_h)
            rows.append(dict(run=r, where=where, overhead=overhead, layer=layer, req_overhead=req_overhead, pred=pred,
                             share=composed_share(m)))
    # per run: measured vs predicted, beside its point's replicate spread
    flat = [dict(model=r["run"].model, input_tokens=r["run"].input_tokens, output_tokens=r["run"].output_tokens,
                 concurrency=r["run"].concurrency, measured=r["run"].measured, predicted=r["pred"], where=r["where"])
            for r in rows]
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
    print("\nengine_step_overhead_s / layer_overhead_s / request_overhead_s fitted without each size:")
    for held in sizes:
        row = next(x for x in rows if x["run"].model == held)
        print(f"  {held:<26} {1e3 * row['overhead']:.2f} ms / {1e3 * row['layer']:.3f} ms / {1e3 * row['req_overhead']:.2f} ms; operators' share "
              f"of its batch-1 decode step {100 * row['share']:.0f} %")
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
