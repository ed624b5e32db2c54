"""The same points measured in several sessions: how far a session's mean lies from the others, beside
how far a replicate lies from its own session's mean.

    python benchmarks/session_drift.py SESSION_DIR SESSION_DIR... [--figure output_tokens_per_s]

Each SESSION_DIR holds the runs of one session (run.json under it, any depth). A point is one model
at one workload (kind, input and output tokens) and concurrency; per session its replicates' mean of
the figure (run.json `summary`). Printed per point measured in two sessions or more: each session's
mean and the largest / smallest ratio; then, over all such points, the **within-session** deviation
(|replicate / its session's mean - 1|: the noise floor a leave-one-size-out check sees) and the
**between-session** deviation (|session mean / mean of the session means - 1|), median and worst.
A ladder's sizes are swept one after another, minutes apart, so the between-session figure is the
part of the host's drift that the check counts as a size's bias. Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections import defaultdict
from pathlib import Path


def session_means(base: Path, figure: str) -> dict[tuple, list[float]]:
    """{point: [the figure of each complete replicate]} of the runs under `base`."""
    out: dict[tuple, list[float]] = defaultdict(list)
    for rj in sorted(base.rglob("run.json")):
        r = json.loads(rj.read_text())
        if r.get("status") != "complete" or r["config"]["mode"] != "concurrency":
            continue
        c, w = r["config"], r["config"]["workload"]
        value = r["summary"].get(figure)
        if value is None:
            continue
        out[(c["model"]["name"], w["kind"], w["input_tokens"], w["output_tokens"], c["concurrency"])].append(float(value))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("sessions", nargs="+", type=Path)
    ap.add_argument("--figure", default="output_tokens_per_s", help="a key of run.json's summary")
    args = ap.parse_args(argv)
    if len(args.sessions) < 2:
        print(f"sessions: {len(args.sessions)} given; allowed: two or more", file=sys.stderr)
        return 2
    missing = [str(s) for s in args.sessions if not s.is_dir()]
    if missing:
        print(f"sessions: {', '.join(missing)}: not a directory", file=sys.stderr)
        return 2
    per = {s: session_means(s, args.figure) for s in args.sessions}
    points = sorted({p for m in per.values() for p in m})
    within, between, shown = [], [], 0
    print(f"{args.figure}: per session, the mean of its replicates")
    for p in points:
        means = [(s, statistics.fmean(per[s][p])) for s in args.sessions if per[s].get(p)]
        if len(means) < 2:
            continue
        shown += 1
        grand = statistics.fmean(m for _, m in means)
        between += [abs(m / grand - 1) for _, m in means]
        within += [abs(v / statistics.fmean(per[s][p]) - 1) for s, _ in means for v in per[s][p]]
        vals = [m for _, m in means]
        print(f"  {p[0]:<26} {p[1]:>7} {p[2]:>4}/{p[3]:<4} c{p[4]:<3} " + "  ".join(f"{m:9.1f}" for m in vals)
              + f"   max/min {max(vals) / min(vals):.2f}")
    if not shown:
        print("no point was measured in two sessions or more")
        return 0
    print(f"{shown} points in 2+ of {len(args.sessions)} sessions")
    print(f"within a session (replicate vs its session's mean): median {statistics.median(within):.1%}, "
          f"worst {max(within):.1%} over {len(within)} runs")
    print(f"between sessions (session mean vs the mean of sessions): median {statistics.median(between):.1%}, "
          f"worst {max(between):.1%} over {len(between)} session means")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
