"""Held-out accuracy of the ladder's performance model, and of the transfer it replaces.

    python benchmarks/ladder_heldout.py results/runs/<hardware> [--bootstrap 0]

For every candidate step-time form: the worst leave-one-model-out error on output tok/s and
$/request. For the chosen form: every run of every size, measured vs predicted by the model fitted
without that size. And the old transfer (the smallest model's measured output FLOP rate at the same
concurrency and workload, carried to the largest model at 2N flop per token), measured vs predicted
on the largest size: what a one-model profile would have said.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from calibrate.perfmodel import selection as ladder  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("paths", nargs="+", type=Path)
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    runs, dropped = ladder.load_ladder(args.paths)
    models = ladder.models_of(runs)
    print(f"{len(runs)} runs of {len(models)} sizes ({', '.join(models)}); {len(dropped)} dropped")
    form, table = ladder.choose_form(runs)
    print("\nform        worst held-out |error| (output tok/s, $/request)   mean |error| tok/s")
    for t in table:
        if "score" in t:
            print(f"{t['form']:<11} {t['score']:>8.1%}{'   <- used' if t['chosen'] else '':<12}"
                  f"{t['held_out']['output_tokens_per_s']['mean_abs']:>34.1%}")
        else:
            print(f"{t['form']:<11} not fitted: {t['error']}")
    rows = ladder.leave_one_model_out(runs, form)
    print(f"\nleave one model out, form {form}: measured -> predicted (error)")
    print(f"{'size':<28}{'run':<22}{'out tok/s':>30}{'$/request':>34}{'TPOT':>28}")
    for r in rows:
        m, p, e = r["measured"], r["predicted"], r["error"]
        run = f"{r['input_tokens']}/{r['output_tokens']} c{r['concurrency']}"

        def cell(k, fmt):
            if m[k] is None or p[k] is None:
                return "-"
            return f"{format(m[k], fmt)} -> {format(p[k], fmt)} ({e[k]:+.0%})"

        print(f"{r['model']:<28}{run:<22}{cell('output_tokens_per_s', '.4g'):>30}"
              f"{cell('usd_per_request', '.3g'):>34}{cell('tpot_s', '.3g'):>28}")
    s = ladder.error_summary(rows)
    print("\nworst |error|: " + ", ".join(f"{k} {v['max_abs']:.1%}" for k, v in s.items() if v["max_abs"] is not None))

    small, large = models[0], models[-1]
    n_small = next(r.shape.params_matmul for r in runs if r.model == small)
    n_large = next(r.shape.params_matmul for r in runs if r.model == large)
    print(f"\nold transfer: {small}'s output FLOP rate carried to {large} (x{n_small / n_large:.3g} tok/s)")
    for r in (r for r in runs if r.model == large):
        ref = [q for q in runs if q.model == small and (q.input_tokens, q.output_tokens, q.concurrency)
               == (r.input_tokens, r.output_tokens, r.concurrency)]
        if not ref or not r.measured["output_tokens_per_s"]:
            continue
        old = ref[0].measured["output_tokens_per_s"] * n_small / n_large
        new = next(x for x in rows if x["run_id"] == r.run_id)["predicted"]["output_tokens_per_s"]
        meas = r.measured["output_tokens_per_s"]
        print(f"  {r.input_tokens}/{r.output_tokens} c{r.concurrency}: measured {meas:.4g} tok/s; old transfer "
              f"{old:.4g} ({old / meas - 1:+.0%}); performance model, {large} held out {new:.4g} ({new / meas - 1:+.0%})")
    print(f"\n({time.perf_counter() - t0:.1f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
