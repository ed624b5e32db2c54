"""A model shape the ladder never saw, measured after the profile: predicted vs measured.

    python benchmarks/fresh_shape.py PROFILE FRESH_RUN_DIR...

PROFILE is a ladder profile with an operator check (`calibrate profile RUNS --ladder
--operator-profile FILE`); FRESH_RUN_DIR holds runs measured after it. Every fresh run of a model
that is not among the profile's ladder sizes is predicted twice, with its own concurrency, lengths
and request count (as the operator check predicts a held-out size): from the device's operators
with the overheads the check fitted on all ladder sizes (what `calibrate predict --from operators`
uses), and from the profile's chosen whole-model form (`--from forms`). Per point: the mean of its
replicates, their spread (|replicate - mean| / mean, worst), and each prediction's error on output
tok/s and $/request (at the profile's price). `--refit-terms layer,context --ladder-runs DIR` refits
the operator overheads on the ladder's runs with those terms instead (a comparison made after seeing
the fresh runs, so not a held-out figure). Fresh runs of a ladder size are set beside that size's
runs in the profile instead: how far the machine moved between the two sessions (drift), which no
model of the device can predict.
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
from calibrate.operators.predict import check_usable, overheads_of  # noqa: E402
from calibrate.operators.stepmodel import OperatorStepModel  # noqa: E402
from calibrate.operators.validate import _models, dims_of_shape, fit_overheads_on  # noqa: E402
from calibrate.perfmodel.build import step_models  # noqa: E402
from calibrate.perfmodel.selection import figures, load_ladder, predict_run, reprice  # noqa: E402
from calibrate.perfmodel.simulate import simulate  # noqa: E402
from core.files import sha256_file  # noqa: E402
from core.schema.operators import load_profile  # noqa: E402
from core.schema.profile import Profile  # noqa: E402

KEYS = ("output_tokens_per_s", "usd_per_request")


def point_of(r) -> tuple:
    return (r.model, r.input_tokens, r.output_tokens, r.concurrency)


def pct(x) -> str:
    return "n/a" if x is None else f"{100 * x:+.1f} %"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("profile", type=Path)
    ap.add_argument("runs", nargs="+", type=Path)
    ap.add_argument("--refit-terms", default=None, help="comma-separated overhead terms (layer, sequence, context)")
    ap.add_argument("--ladder-runs", type=Path, default=None, help="the ladder's run directory (with --refit-terms)")
    args = ap.parse_args(argv)
    if (args.refit_terms is None) != (args.ladder_runs is None):
        ap.error("--refit-terms and --ladder-runs go together")
    t0 = time.perf_counter()
    prof = Profile.load(args.profile)
    pm = prof.performance_model
    check = check_usable(pm.operator_check)
    price = prof.hardware.usd_per_h
    fresh, dropped = load_ladder(args.runs)
    fresh = reprice(fresh, price)
    ladder_sizes = {f.name for f in pm.fitted_on}
    if sha256_file(check.operator_profile) != check.sha256:
        ap.error(f"{check.operator_profile}: changed since the profile's operator check (sha256 differs)")
    table = OperatorTable(load_profile(check.operator_profile).records)
    overheads, request_s = overheads_of({**check.overheads_s, "request": check.request_overhead_s})
    terms = list(check.terms)
    if args.refit_terms is not None:
        terms = [t for t in args.refit_terms.split(",") if t]
        bad = set(terms) - {"layer", "sequence", "context"}
        if bad:
            ap.error(f"--refit-terms {args.refit_terms!r}: {sorted(bad)} not among layer, sequence, context")
        ladder, _ = load_ladder([args.ladder_runs])
        ladder = [r for r in ladder if r.model in {f.name for f in pm.fitted_on}]
        overheads, request_s = fit_overheads_on(_models(table, ladder), ladder, terms)
    form, _ = step_models(pm)
    print(f"profile {args.profile.name}: form {pm.form}, operator terms step{''.join('+' + t for t in terms)}"
          f"{' (refitted)' if args.refit_terms is not None else ''}; "
          f"fresh runs {len(fresh)} ({len(dropped)} dropped); price {price} $/device-hour")

    groups: dict[tuple, list] = defaultdict(list)
    for r in fresh:
        groups[point_of(r)].append(r)
    errors: dict[str, dict[tuple, list[float]]] = {"operators": defaultdict(list), "forms": defaultdict(list)}
    spreads: list[float] = []
    drift: dict[str, list[float]] = defaultdict(list)
    for key in sorted(groups, key=lambda k: (k[0] in ladder_sizes, k)):
        runs = groups[key]
        model, p, g, c = key
        mean = {k: statistics.fmean(r.measured[k] for r in runs) for k in KEYS}
        spread = max(abs(r.measured["output_tokens_per_s"] / mean["output_tokens_per_s"] - 1) for r in runs)
        label = f"{model} p{p} g{g} c{c}"
        if model in ladder_sizes:
            then = [h.measured.output_tokens_per_s for h in pm.held_out
                    if (h.model, h.input_tokens, h.output_tokens, h.concurrency) == key]
            if then:
                ratio = mean["output_tokens_per_s"] / statistics.fmean(then) - 1
                drift[model].append(ratio)
                print(f"  drift  {label:<40} tok/s now {mean['output_tokens_per_s']:9.1f} vs the profile's "
                      f"{ratio + 1:6.3f}x  (spread now {spread:.1%})")
            continue
        spreads.append(spread)
        r0 = runs[0]
        ops = OperatorStepModel(table, dims_of_shape(r0.shape)).set_overheads(overheads)
        sim = simulate(ops, concurrency=c, num_requests=r0.num_requests, lengths=[(p, g)],
                       request_overhead_s=request_s, max_num_seqs=r0.max_num_seqs)
        pred = {"operators": figures(sim, r0.devices, price),
                "forms": figures(predict_run(form, r0.shape, input_tokens=p, output_tokens=g, concurrency=c,
                                             num_requests=r0.num_requests, max_num_seqs=r0.max_num_seqs),
                                 r0.devices, price)}
        cells = []
        for src, fig in pred.items():
            e = {k: fig[k] / mean[k] - 1 for k in KEYS}
            for k in KEYS:
                errors[src][(k, model)].append(e[k])
            cells.append(f"{src} {pct(e['output_tokens_per_s'])} / {pct(e['usd_per_request'])}")
        print(f"  fresh  {label:<40} tok/s {mean['output_tokens_per_s']:9.1f} (x{len(runs)}, spread "
              f"{spread:5.1%})  error tok/s / $: " + "; ".join(cells))
    models = sorted({m for by_key in errors.values() for _, m in by_key})
    for src, by_key in errors.items():
        for model in models + [None]:  # each fresh size, then all of them
            parts = []
            for k in KEYS:
                a = [abs(x) for (kk, m), xs in by_key.items() if kk == k and model in (None, m) for x in xs]
                if a:
                    parts.append(f"{k} median {statistics.median(a):.1%} worst {max(a):.1%}")
            if parts:
                print(f"{src:>9}: " + "; ".join(parts) + (f"  ({model})" if model else ""))
    if spreads:
        print(f"replicate spread of the fresh points: median {statistics.median(spreads):.1%}, worst {max(spreads):.1%}")
    for model, ratios in drift.items():
        print(f"drift of {model} since the profile's runs: median {statistics.median(ratios):+.1%}, "
              f"range {min(ratios):+.1%} .. {max(ratios):+.1%} over {len(ratios)} points")
    print(f"({time.perf_counter() - t0:.1f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
