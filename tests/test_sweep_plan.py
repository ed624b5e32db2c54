"""How long a sweep will take (calibrate.operators.sweeptime) and the default CPU ladder's top size
fitted to the main command's time budget (pipeline.ladder_plan, pipeline.chain.plan_ladder)."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from bench.config import load_config, parse_config
from bench.run.ladder import DEFAULT_CPU_LADDER
from calibrate.operators.interpolate import OperatorTable
from calibrate.operators.sweeptime import RUN_FIXED_S, PlannedRun, min_requests, run_seconds, sweep_time
from core.dims import params_of
from core.schema.operators import load_profile
from pipeline import ladder_plan as lp
from pipeline.chain import PipelineOptions, plan_ladder

REPO = Path(__file__).resolve().parents[1]
AMX_OPERATORS = REPO / "results/hardware/operators/cpu-intel-xeon-processor-amx-2c.json"
LADDER_TOML = REPO / "bench/data/ladder_cpu.toml"


@pytest.fixture(scope="module")
def table():  # the committed AMX host's operator profile (a real table)
    return OperatorTable(load_profile(AMX_OPERATORS).records)


def test_run_seconds_is_both_phases_of_the_closed_loop_plus_the_fixed_cost():
    step_s, request_s = 0.01, 0.005

    def step(n, ctx, pre, pairs):  # every step 10 ms, whatever it holds
        return step_s

    def secs(n, warmup):
        return run_seconds(step, PlannedRun("decode", 1, n, warmup, 8, 32), request_overhead_s=request_s,
                           max_num_seqs=16)

    # concurrency 1: each request waits its overhead, then 32 steps (the prefill step emits the first token)
    assert secs(5, 0) == pytest.approx(RUN_FIXED_S + 5 * (request_s + 32 * step_s), rel=1e-6)
    assert secs(5, 2) == pytest.approx(secs(5, 0) + 2 * (request_s + 32 * step_s), rel=1e-6)  # warm-up is timed too
    assert secs(10, 0) - RUN_FIXED_S == pytest.approx(2 * (secs(5, 0) - RUN_FIXED_S), rel=1e-6)


def test_a_run_cap_cuts_long_runs_in_proportion_but_never_below_five_waves_per_client(table):
    dims = lp.dims_of_spec(lp.family_spec(12))
    prefill = PlannedRun("prefill-p256-g1-c1", 1, 96, 1, 256, 1)
    mixed = PlannedRun("mixed-p70-g215-c16", 16, 80, 16, 70, 215)
    free = sweep_time(table, dims, [prefill, mixed, prefill], max_num_seqs=16)
    assert [r.num_requests for r in free.runs] == [96, 80, 96] and free.runs[0] == free.runs[2]
    cap = free.runs[0].measured_s / 4
    capped = sweep_time(table, dims, [prefill, mixed, prefill], max_num_seqs=16, run_cap_s=cap)
    p, m = capped.runs[0], capped.runs[1]
    assert p.planned_requests == 96 and p.num_requests == 24  # a quarter of the time, a quarter of the requests
    assert p.measured_s == pytest.approx(cap, rel=0.15) and capped.seconds < free.seconds
    assert m.num_requests == max(min_requests(16), m.num_requests)  # the mixed run is cut at most to its floor
    assert sweep_time(table, dims, [mixed], max_num_seqs=16, run_cap_s=1e-3).runs[0].num_requests == min_requests(16)


def test_capped_config_sets_each_points_requests_and_keeps_the_rest():
    cfg = parse_config({"num_requests": 40, "warmup": 1, "runs": [
        {"workload": "prefill", "input_tokens": 256, "concurrency": [1, 4]},
        {"workload": "decode", "input_tokens": 8, "output_tokens": 32, "concurrency": [16], "num_requests": 80}]})
    assert lp.capped_config(cfg, {"decode-p8-g32-c16": 80}) is cfg  # nothing changes: the same specs, the same keys
    out = lp.capped_config(cfg, {"prefill-p256-g1-c4": 20})
    got = {s.label(): s.num_requests for s in out.specs()}
    assert got == {"prefill-p256-g1-c1": 40, "prefill-p256-g1-c4": 20, "decode-p8-g32-c16": 80}
    assert {s.key() for s in out.specs()} & {s.key() for s in cfg.specs()} == {
        s.key() for s in cfg.specs() if s.label() != "prefill-p256-g1-c4"}  # untouched points keep their keys


def test_the_top_size_is_the_largest_whose_sweep_fits(table):
    cfg = load_config(LADDER_TOML)
    runs = lp.planned_runs(cfg)
    assert len(runs) == len(cfg.specs()) and all(r.concurrency >= 1 for r in runs)
    totals = {layers: sum(t.seconds for t in lp._times(table, list(DEFAULT_CPU_LADDER[:-1]) + [lp.family_spec(layers)],
                                                       runs, 16)) for layers in (9, 10, 12)}
    margin = lp.MARGIN
    assert totals[9] < totals[10] < totals[12]  # a larger top size takes longer
    wide = lp.plan_default_ladder(table, cfg, budget_s=1e9)
    assert wide.fits and wide.specs[-1] == lp.family_spec(12) and wide.span > 100
    assert wide.specs[:-1] == tuple(DEFAULT_CPU_LADDER[:-1])  # the lower rungs stay the default ladder's
    between = lp.plan_default_ladder(table, cfg, budget_s=margin * (totals[9] + totals[10]) / 2)
    assert between.fits and between.specs[-1] == lp.family_spec(9)
    assert between.seconds == pytest.approx(totals[9])
    tight = lp.plan_default_ladder(table, cfg, budget_s=1.0)
    assert not tight.fits and tight.specs[-1] == lp.family_spec(lp.TOP_LAYERS[-1])
    assert tight.run_cap_s == lp.SHORTER_CAPS_S[-1]  # the shortest runs were tried before giving up
    text = "\n".join(tight.lines())
    assert "OVER the sweep budget of 1 s" in text and "no candidate fits even with runs cut to 2.5 s" in text
    assert "assumed" in text
    # between the only candidate's sweep at 10 s runs and at 5 s runs: it fits once the runs are cut to 5 s
    low = lp.family_spec(12)
    at = {cap: sum(t.seconds for t in lp._times(table, list(DEFAULT_CPU_LADDER[:-1]) + [low], runs, 16, run_cap_s=cap))
          for cap in (lp.RUN_CAP_S, 5.0)}
    assert at[5.0] < at[lp.RUN_CAP_S]
    cut = lp.plan_default_ladder(table, cfg, budget_s=margin * (at[5.0] + at[lp.RUN_CAP_S]) / 2, top_layers=(12,))
    assert cut.fits and cut.run_cap_s == 5.0 and cut.specs[-1] == low and "runs cut to 5 s" in cut.note


def test_family_dims_match_the_default_ladder():
    top = DEFAULT_CPU_LADDER[-1]
    assert lp.family_spec(top.num_layers) == top  # the default top size is a member of the family
    d = lp.dims_of_spec(top)
    assert (d.hidden, d.heads, d.kv_heads, d.head_dim, d.layers) == (1152, 18, 9, 64, 9)
    assert params_of(d) == pytest.approx(136e6, rel=0.01)


def test_a_sweep_that_cannot_be_predicted_is_left_as_it_is(table):
    cfg = parse_config({"runs": [{"workload": "decode", "request_rate_per_s": [2.0]}]})
    assert lp.planned_runs(cfg) is None and lp.plan_default_ladder(table, cfg) is None
    # an operator profile without an operator the steps need (e.g. one cut short): no plan, no error
    records = [r for r in load_profile(AMX_OPERATORS).records if r.op != "rotary"]
    assert lp.plan_default_ladder(OperatorTable(records), load_config(LADDER_TOML)) is None
    # one covering the small sizes only: the top sizes it cannot answer are not candidates
    h1152 = lp.dims_of_spec(lp.family_spec(9))
    largest = max(k * n for k, n in h1152.gemm_shapes().values())  # its gate_up: 1152 x 6144
    small = [r for r in load_profile(AMX_OPERATORS).records if r.op != "gemm" or r.k * r.n <= largest]
    plan = lp.plan_default_ladder(OperatorTable(small), load_config(LADDER_TOML), budget_s=1e9)
    assert plan is not None and plan.specs[-1] == lp.family_spec(9)


def test_the_pipeline_plans_only_the_default_ladder_with_an_operator_profile():
    cfg = str(LADDER_TOML)
    err = io.StringIO()
    plan = plan_ladder(PipelineOptions(sweep_budget_s=1e9), AMX_OPERATORS, cfg, err=err)
    assert [r.spec for r in plan.rungs()] == list(DEFAULT_CPU_LADDER[:-1]) + [lp.family_spec(12)]
    # the largest size's long runs are cut to the run cap, the small sizes' are not
    assert plan.requests(0) == {r.label: r.planned_requests for r in plan.times[0].runs}
    assert any(n < r.planned_requests for r in plan.times[2].runs for n in [plan.requests(2)[r.label]])
    assert "sweep time predicted from the operator profile" in err.getvalue() and "within" in err.getvalue()
    for opts, ops in ((PipelineOptions(model="m"), AMX_OPERATORS), (PipelineOptions(ladder=["a", "b"]), AMX_OPERATORS),
                      (PipelineOptions(sweep_budget_s=None), AMX_OPERATORS), (PipelineOptions(), None)):
        assert plan_ladder(opts, ops, cfg, err=io.StringIO()) is None
