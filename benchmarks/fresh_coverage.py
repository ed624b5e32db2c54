"""Out-of-sample coverage: does a profile's interval hold a replicate measured *after* the profile?

    .venv/bin/python benchmarks/fresh_coverage.py PROFILE.json FRESH_RUN_DIR...

The profile's built-in `coverage` is in-sample (its replicates also make its interval). Here the
fresh runs are kept out of the profile, measured later, and each one's directly measured $/request
(device-seconds of its completion window / requests completed in it, core.metrics.steady_window,
at the profile's price) is compared with the profile's interval for its point: for the measured
mix, `measured_mix.usd_per_request` (what the profile publishes); for every other point of
`replicates`, the same 95 % prediction interval for one more run (calibrate.profile.build.fresh_run_interval,
mean +- t(0.975, m-1) s sqrt(1 + 1/m), floored at 0) from the profile's replicates of that point.
Prints one row per fresh run and the fraction covered.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from calibrate.profile.build import fresh_run_interval, run_usd_per_request  # noqa: E402
from calibrate.profile.tokencost import mix_key  # noqa: E402
from calibrate.runs.load import load_runs  # noqa: E402
from core.paper import SECONDS_PER_HOUR  # noqa: E402
from core.schema.profile import Profile  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("profile", type=Path)
    ap.add_argument("runs", nargs="+", type=Path)
    args = ap.parse_args(argv)
    if not args.profile.is_file():
        ap.error(f"profile {str(args.profile)!r}: no such file")
    prof = Profile.model_validate_json(args.profile.read_text())
    runs, dropped = load_runs(args.runs, on_error="drop")
    usd_per_device_s = prof.hardware.usd_per_h / SECONDS_PER_HOUR
    points = {(p.concurrency, p.workload, round(p.input_tokens), round(p.output_tokens)): p for p in prof.replicates or []}
    mm = prof.measured_mix
    print(f"profile {args.profile.name}: {len(points)} points; fresh runs: {len(runs)} ({len(dropped)} unreadable)")
    print(f"{'fresh run':<52}{'profile replicates $/req':>30}{'interval (95 % fresh run)':>28}{'fresh':>11}  in")
    inside = []
    for r in sorted(runs, key=lambda r: r.record.run_id):
        c = r.record.config.concurrency
        kind, n_in, n_out = mix_key(r)
        key = (c, kind, round(n_in), round(n_out))
        p = points.get(key)
        if p is None:
            print(f"{r.record.run_id:<52}{'(point not in the profile)':>30}")
            continue
        fresh = run_usd_per_request(r, usd_per_device_s)
        is_measured_mix = mm is not None and kind not in ("prefill", "decode") and c == mm.concurrency \
            and (round(mm.input_tokens), round(mm.output_tokens)) == (key[2], key[3])
        if is_measured_mix:
            lo, hi, src = mm.usd_per_request.low, mm.usd_per_request.high, "measured_mix"
        else:
            _, lo, hi = fresh_run_interval(p.usd_per_request, (1.0, 1.0))
            lo, src = max(lo, 0.0), "replicates"  # a cost is >= 0: a t interval of 2 far-apart replicates reaches below
        ok = lo <= fresh <= hi
        inside.append(ok)
        reps = ", ".join(f"{u:.3g}" for u in p.usd_per_request)
        print(f"{r.record.run_id:<52}{reps:>30}{f'[{lo:.3g}, {hi:.3g}]':>28}{fresh:>11.3g}  {'yes' if ok else 'NO'} ({src})")
    if inside:
        print(f"\ncovered: {sum(inside)} of {len(inside)} fresh runs ({sum(inside) / len(inside):.0%})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
