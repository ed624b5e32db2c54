"""How well the operator profile predicts how long runs take (calibrate.operators.sweeptime).

    python benchmarks/sweep_time.py OPERATOR_PROFILE RUN_DIR... [--fitted PROFILE]

Every run under RUN_DIR (run.json + requests.jsonl) is predicted before the fact, as the main
command predicts the ladder it is about to sweep: its model's steps composed from the operator
profile, with the **assumed** overheads (calibrate.operators.sweeptime.ASSUMED_OVERHEADS) or, with
`--fitted PROFILE`, those a ladder profile's operator check fitted on all its sizes. Per model and
in all: the predicted vs measured seconds of the measured phase (run.json `summary.duration_s`) and
of the warm-up phase (first send to the last warm-up request's end in requests.jsonl), their ratio
(median, range), and the predicted total with the fixed costs beside the sum of measured phases.
Prints figures; asserts nothing (a benchmark, not a test).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from calibrate.operators.interpolate import OperatorTable  # noqa: E402
from calibrate.operators.predict import check_usable, overheads_of  # noqa: E402
from calibrate.operators.stepmodel import OperatorStepModel  # noqa: E402
from calibrate.operators.sweeptime import (  # noqa: E402
    ASSUMED_OVERHEADS,
    ASSUMED_REQUEST_S,
    RUN_FIXED_S,
    SERVER_START_S,
    PlannedRun,
    run_seconds,
)
from core.dims import dims_of  # noqa: E402
from core.schema.operators import load_profile  # noqa: E402
from core.schema.profile import Profile  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("operators")
    ap.add_argument("runs", nargs="+")
    ap.add_argument("--fitted", help="a ladder profile whose operator check's overheads replace the assumed ones")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    table = OperatorTable(load_profile(args.operators).records)
    overheads, request_s = ASSUMED_OVERHEADS, ASSUMED_REQUEST_S
    if args.fitted:
        check = check_usable(Profile.model_validate_json(Path(args.fitted).read_text()).performance_model.operator_check)
        overheads, request_s = overheads_of({**check.overheads_s, "request": check.request_overhead_s})
    print(f"overheads: {overheads}, request {request_s * 1e3:.1f} ms ({'fitted: ' + args.fitted if args.fitted else 'assumed'})")
    models: dict[str, OperatorStepModel] = {}
    rows: dict[str, list[tuple[float, float, float, float]]] = defaultdict(list)
    for base in args.runs:
        for rj in sorted(Path(base).rglob("run.json")):
            r = json.loads(rj.read_text())
            if r.get("status") != "complete":
                continue
            c, m = r["config"], r["config"]["model"]
            if c["mode"] != "concurrency" or c["workload"]["kind"] == "distribution":
                continue
            if m["name"] not in models:
                dims = dims_of(num_layers=m["num_layers"], hidden_size=m["hidden_size"],
                               num_attention_heads=m["num_attention_heads"], num_kv_heads=m["num_kv_heads"],
                               head_dim=m["head_dim"], vocab_size=m["vocab_size"], params_matmul=m["params_matmul"])
                models[m["name"]] = OperatorStepModel(table, dims).set_overheads(overheads)
            w = c["workload"]

            def predict(n: int) -> float:
                run = PlannedRun("", c["concurrency"], n, 0, w["input_tokens"], w["output_tokens"])
                return run_seconds(models[m["name"]], run, request_overhead_s=request_s,
                                   max_num_seqs=c["max_num_seqs"] or 256) - RUN_FIXED_S

            reqs = [json.loads(x) for x in (rj.parent / "requests.jsonl").read_text().splitlines() if x.strip()]
            warm = [q for q in reqs if q.get("warmup") and q.get("end_s") is not None]
            warm_s = (max(q["end_s"] for q in warm) - min(q["send_s"] for q in warm)) if warm else 0.0
            rows[m["name"]].append((predict(c["num_requests"]), r["summary"]["duration_s"],
                                    predict(c["warmup_requests"]) if c["warmup_requests"] else 0.0, warm_s))
    everything = []
    print(f"{'model':<28} {'runs':>4} {'predicted s':>11} {'measured s':>10} {'ratio median':>12} {'range':>15}")
    for name in sorted(rows, key=lambda k: models[k].dims.hidden):
        rr = rows[name]
        everything += rr
        ratios = [p / m for p, m, _, _ in rr if m > 0]
        print(f"{name:<28} {len(rr):>4} {sum(p + pw for p, _, pw, _ in rr):>11.1f} {sum(m + mw for _, m, _, mw in rr):>10.1f} "
              f"{statistics.median(ratios):>12.2f} {min(ratios):>7.2f} .. {max(ratios):.2f}")
    pred = sum(p + pw for p, _, pw, _ in everything)
    meas = sum(m + mw for _, m, _, mw in everything)
    ratios = [p / m for p, m, _, _ in everything if m > 0]
    print(f"all: {len(everything)} runs of {len(rows)} models; requests predicted {pred:.0f} s, measured {meas:.0f} s "
          f"(ratio {pred / meas:.2f}; per run median {statistics.median(ratios):.2f}, "
          f"{min(ratios):.2f} .. {max(ratios):.2f})")
    fixed = len(everything) * RUN_FIXED_S + len(rows) * SERVER_START_S
    print(f"predicted sweep with fixed costs ({RUN_FIXED_S:g} s per run, {SERVER_START_S:g} s per server start): "
          f"{pred + fixed:.0f} s")
    print(f"({time.perf_counter() - t0:.1f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
