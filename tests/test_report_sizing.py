"""Issue 11: the SLO as a constraint, the provisioned fleet, the recommendation contract, hardware side by side.

Synthetic performance models only (tests/solver_synthetic.py): no vLLM.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from solver_synthetic import overhead_model, synthetic_profile

from solver import cli
from solver.optimize import serving
from solver.optimize.laws import chinchilla_loss_for_params, get_law
from solver.optimize.solve import NoFeasibleModel, optimize_cost_general
from solver.report.compute import ReportInputs, compute_solution
from solver.report.hardware import datasheet_profile, parse_datasheet_spec, row_of
from solver.report.schema import Recommendation, Solution
from solver.report.solve import solve

LAW = get_law("chinchilla")
LOSS_30B = float(chinchilla_loss_for_params(LAW, 30e9))
TRAIN_USD_PER_FLOP = 1.50 / 3600 / (312e12 * 0.5)
CONTRACT = {"params", "train_tokens", "total_usd", "train_usd", "inference_usd", "meets_slo", "tpot_p90_s",
            "ttft_p90_s", "fleet_devices", "fleet_usd_per_h", "lifetime_h"}


def inputs(**kw) -> ReportInputs:
    base = dict(target_loss=LOSS_30B, requests=17.5e9, train_usd_per_flop=TRAIN_USD_PER_FLOP,
                train_description={"gpu": "a100-80gb-sxm"}, law=LAW, chinchilla_params=30e9, map_points=5)
    base.update(kw)
    return ReportInputs(**base)


def gpu_profile(**kw):
    return synthetic_profile(performance_model=overhead_model(**kw))


@pytest.fixture(scope="module")
def gpu():
    return gpu_profile()


# --------------------------------------------------------------------------- queueing, p90, pipeline


def test_erlang_c_and_p90_wait_by_hand():
    # M/M/1: P(wait) = rho; P(W > t) = rho exp(-(mu - lambda) t)
    assert float(serving.erlang_c(1, 0.3)) == pytest.approx(0.3, rel=1e-12)
    # M/M/2: C = 2 rho^2 / (1 + rho)
    assert float(serving.erlang_c(2, 0.9)) == pytest.approx(2 * 0.81 / 1.9, rel=1e-12)
    s, rho = 2.0, 0.8
    assert float(serving.queue_wait_p90_s(1, rho, s)) == pytest.approx(s * math.log(10 * rho) / (1 - rho), rel=1e-9)
    assert float(serving.queue_wait_p90_s(1, 0.05, s)) == 0.0  # P(wait) < 10 %: the p90 wait is 0
    assert math.isinf(float(serving.queue_wait_p90_s(4, 1.0, s)))


def test_utilisation_at_peak_is_where_ttft_p90_meets_its_limit(gpu):
    model = serving.serving_model(gpu, input_tokens=70, output_tokens=215)
    p = model.point(7e9)
    assert p.meets_slo and 0 < p.utilisation_at_peak < 1
    assert p.ttft_p90_s == pytest.approx(model.workload.ttft_slo_s, rel=1e-6)
    _, ttft_more = serving.p90_at_utilisation(p, model.workload, min(1.0, p.utilisation_at_peak * 1.001))
    assert ttft_more > model.workload.ttft_slo_s
    assert p.usd_per_request_at_slo == pytest.approx(p.usd_per_request / p.utilisation_at_peak, rel=1e-12)


def test_p90_ratios_are_measured_from_the_committed_ladder_profile():
    from core.schema.profile import Profile

    path = Path(__file__).resolve().parents[1] / "results" / "calibration" / "cpu-amd-epyc-2c-ladder.json"
    if not path.is_file():
        pytest.fail(f"committed ladder profile missing: {path}")
    prof = Profile.model_validate_json(path.read_text())
    r = serving.p90_ratios(prof)
    assert r.source.startswith("measured") and r.tpot >= 1 and r.ttft >= 1 and (r.tpot, r.ttft) != (1.0, 1.0)
    one = serving.p90_ratios(synthetic_profile())
    assert (one.tpot, one.ttft) == (1.0, 1.0) and one.source.startswith("assumed")


def test_pipeline_stages_do_not_shorten_a_decode_step():
    """Beyond one node, each token still passes every stage: a decode step reads all the weights."""
    from calibrate.perfmodel.forms import StepModel
    from core.physics import shape_for_params

    bw = 1.2e12
    step = StepModel("split", {"t0_s": 1e-6, "bandwidth_bytes_per_s": bw, "decode_flop_per_s": 1e30,
                               "prefill_flop_per_s": 1e30}, request_overhead_s=0.0)
    perf = serving.PerformanceModel(step, kv_dtype_bytes=2, max_num_batched_tokens=8192)
    hw = serving.ServingHardware(name="a100-40gb", usd_per_h=1.1, memory_bytes=40 * 1024**3, peak_flop_per_s=624e12)
    shape = shape_for_params(600e9)
    tp, pp = serving.layout(shape, hw, serving.Workload(70, 215))
    assert pp >= 2
    st = serving.steady_state(perf, shape, serving.Workload(70, 215), np.array([1.0, 8.0]), hw, tp, pp)
    whole_model_read = shape.weight_bytes_read / bw / tp
    assert np.all(st["tpot_s"] >= whole_model_read * (1 - 1e-9))


# --------------------------------------------------------------------------- the constrained optimiser


def test_feasible_constraint_binds_at_the_boundary_and_refuses_when_empty():
    def inference(n):
        return 17.5e9 * n * 1e-15

    free = optimize_cost_general(LOSS_30B, LAW, TRAIN_USD_PER_FLOP, inference)
    cap = free.params * 0.5
    g = optimize_cost_general(LOSS_30B, LAW, TRAIN_USD_PER_FLOP, inference, feasible=lambda n: n <= cap)
    assert g.params <= cap and g.params == pytest.approx(cap, rel=1e-6)
    assert g.total_usd >= free.total_usd
    with pytest.raises(NoFeasibleModel, match="meets the constraint"):
        optimize_cost_general(LOSS_30B, LAW, TRAIN_USD_PER_FLOP, inference, feasible=lambda n: False)


@pytest.mark.parametrize("tpot, r, requests", [(0.05, 2.0, 17.5e9), (0.03, 3.0, 1e11), (0.2, 1.0, 1e9)])
def test_constrained_optimum_is_feasible_and_never_cheaper(gpu, tpot, r, requests):
    s = solve(inputs(slo_tpot_p90_s=tpot, peak_to_mean=r, requests=requests), gpu, {}, "test")
    z = s.sizing
    assert z.constrained is not None, z.infeasible
    p = s.model.point(z.constrained.params)
    assert p.meets_slo and p.tpot_p90_s <= tpot * (1 + 1e-12) and p.ttft_p90_s <= 2.0 * (1 + 1e-9)
    assert z.constrained.total_usd >= z.unconstrained.total_usd * (1 - 1e-12)
    assert z.full_constrained.total_usd >= z.full_unconstrained.total_usd * (1 - 1e-12)
    # provisioned costs at least full utilisation
    assert z.constrained.total_usd >= z.full_constrained.total_usd * (1 - 1e-12)


def test_infeasible_slo_is_a_message_not_a_number(gpu):
    sol = compute_solution(inputs(slo_tpot_p90_s=1e-4), gpu, {"path": "synthetic"}).model_dump()
    Solution.model_validate(sol)
    assert sol["recommendation"] is None and sol["fleet"] is None
    assert sol["sizing"]["status"] == "infeasible" and sol["sizing"]["constrained"] is None
    assert "no model size" in sol["sizing"]["message"] and "TPOT p90 <= 0.0001 s" in sol["sizing"]["message"]
    assert sol["warnings"][0] == sol["sizing"]["message"]
    assert sol["hardware"]["rows"][0]["status"] == "infeasible" and sol["hardware"]["cheapest"] is None


# --------------------------------------------------------------------------- provisioned pricing


def test_utilisation_one_reproduces_eq6_exactly(gpu):
    s = solve(inputs(peak_to_mean=1.0), gpu, {}, "test")
    for prov, full in ((s.provisioned_paper, s.paper), (s.provisioned_cal, s.calibrated)):
        assert float(prov.optimal.params) == float(full.optimal.params)
        assert float(prov.optimal.train_tokens) == float(full.optimal.train_tokens)
        assert float(prov.optimal.total_usd) == float(full.optimal.total_usd)
    # ... and the N-dependent model without an SLO at utilisation 1 is today's N-dependent optimum
    free = solve(inputs(peak_to_mean=1.0, no_slo=True), gpu, {}, "test")
    assert free.sizing.unconstrained.params == pytest.approx(free.n_dependent.params, rel=1e-9)
    assert free.sizing.unconstrained.total_usd == pytest.approx(free.n_dependent.total_usd, rel=1e-12)


def test_provisioned_eq6_is_eq6_with_the_inference_price_times_r(gpu):
    from dataclasses import replace

    from solver.optimize.solve import optimize_cost

    s = solve(inputs(peak_to_mean=2.5), gpu, {}, "test")
    st = replace(s.s_cal, input_usd_per_flop=s.s_cal.input_usd_per_flop * 2.5,
                 output_usd_per_flop=s.s_cal.output_usd_per_flop * 2.5)
    c = optimize_cost(LOSS_30B, 17.5e9, st, LAW)
    assert float(s.provisioned_cal.optimal.params) == pytest.approx(float(c.optimal.params), rel=1e-9)
    assert float(s.provisioned_cal.optimal.params) < float(s.calibrated.optimal.params)


def test_recommendation_contract_and_fleet_reconcile(gpu):
    sol = compute_solution(inputs(), gpu, {"path": "synthetic"}).model_dump()
    Solution.model_validate(sol)
    rec = sol["recommendation"]
    assert set(rec) == CONTRACT == set(Recommendation.model_fields)
    assert rec["fleet_usd_per_h"] * rec["lifetime_h"] == pytest.approx(rec["inference_usd"], rel=1e-9)
    assert rec["total_usd"] == pytest.approx(rec["train_usd"] + rec["inference_usd"], rel=1e-12)
    assert rec["meets_slo"] and rec["tpot_p90_s"] <= 0.2 and rec["ttft_p90_s"] <= 2.0
    assert rec["lifetime_h"] == 365 * 24
    fl = sol["fleet"]
    assert fl["devices"] == rec["fleet_devices"] and fl["params"] == rec["params"]
    # the fleet serves the peak within the utilisation its TTFT p90 allows
    assert fl["replicas"] * fl["replica_requests_per_s"] * fl["utilisation_at_peak"] >= fl["peak_requests_per_s"]
    assert fl["fleet_utilisation_at_peak"] <= fl["utilisation_at_peak"] + 1e-12
    sz = sol["sizing"]
    assert sz["slo_cost_usd"] >= 0 and sz["slo_cost_fraction"] == pytest.approx(
        sz["slo_cost_usd"] / sz["unconstrained"]["optimal"]["total_cost_usd"])
    assert sol["provisioned"]["utilisation"] == pytest.approx(0.5)


def test_peak_below_mean_is_refused(gpu):
    from core.errors import InputError

    with pytest.raises(InputError, match="peak_requests_per_s"):
        solve(inputs(peak_requests_per_s=1.0), gpu, {}, "test")  # mean is 555 requests/s


def test_data_limit_above_d_star_changes_nothing_and_below_binds(gpu):
    s = solve(inputs(), gpu, {}, "test")
    d_star = s.sizing.constrained.train_tokens
    above = solve(inputs(max_train_tokens=d_star * 2), gpu, {}, "test")
    assert above.sizing.constrained.params == s.sizing.constrained.params
    assert not above.sizing.data_limit.binding
    below = solve(inputs(max_train_tokens=d_star / 4, repeat_data=False), gpu, {}, "test")
    assert below.sizing.data_limit.binding and below.sizing.constrained.train_tokens <= d_star / 4 * (1 + 1e-9)
    assert below.sizing.constrained.total_usd >= s.sizing.constrained.total_usd
    assert below.model.feasible(below.sizing.constrained.params)


def test_tokens_per_param_warning_in_the_solution():
    prof = gpu_profile()
    sol = compute_solution(inputs(requests=1e14), prof, {"path": "synthetic"}).model_dump()
    assert any("tokens per parameter" in w for w in sol["warnings"]), sol["warnings"]


# --------------------------------------------------------------------------- hardware side by side


def test_multi_hardware_rows_equal_single_hardware_reports(gpu):
    slow = gpu_profile(t0_s=0.03, bandwidth=0.8e12, decode_mfu=0.2)
    sheet = datasheet_profile("a100-80gb:mfu_in=0.5,mfu_out=0.3,mbu=0.8,t0_s=0.02", template=gpu)
    others = ((slow, {"path": "slow"}, "slow"), (sheet, {"path": "datasheet"}, "sheet"))
    s = solve(inputs(), gpu, {"path": "gpu"}, "test", label="gpu", others=others)
    from solver.report.hardware import section

    sec = section(s).model_dump()
    assert [r["label"] for r in sec["rows"]] == ["gpu", "slow", "sheet"]
    for row, (prof, prov, label) in zip(sec["rows"], ((gpu, {"path": "gpu"}, "gpu"), *others)):
        alone = solve(inputs(), prof, prov, "test")
        assert row == row_of(alone, label).model_dump()
    assert sec["rows"][2]["provenance"].startswith("assumed")
    assert sec["rows"][0]["provenance"].startswith("assumed")  # a synthetic profile is not a measurement
    feasible = [r for r in sec["rows"] if r["status"] == "feasible"]
    assert sec["cheapest"] == min(feasible, key=lambda r: r["total_usd"])["label"]


def test_datasheet_spec_errors_are_one_line():
    assert parse_datasheet_spec("a100-40gb:mfu_in=0.5,mfu_out=0.01") == ("a100-40gb", {"mfu_in": 0.5, "mfu_out": 0.01})
    for bad, word in (("a100-40gb", "DEVICE:"), ("a100-40gb:mfu_in=0.5", "missing mfu_out"),
                      ("a100-40gb:mfu_in=2,mfu_out=0.1", "fraction"), ("a100-40gb:foo=1,mfu_out=1", "KEY=VALUE"),
                      ("a100-40gb:mfu_in=x,mfu_out=1", "not a number")):
        with pytest.raises(ValueError, match=word):
            parse_datasheet_spec(bad)
    with pytest.raises(ValueError, match="unknown GPU"):
        datasheet_profile("z9000:mfu_in=0.5,mfu_out=0.01")


def test_cli_two_profiles_and_a_datasheet(tmp_path, capsys, gpu):
    p1 = tmp_path / "gpu.json"
    p1.write_text(gpu.model_dump_json())
    rc = cli.main(["report", "--chinchilla-params", "30e9", "--requests", "17.5e9", "--inference-profile", str(p1),
                   "--datasheet-profile", "a100-40gb:mfu_in=0.5,mfu_out=0.01", "--name", "multi",
                   "--out-dir", str(tmp_path / "reports")])
    out = capsys.readouterr().out
    assert rc == 0
    sol = json.loads((tmp_path / "reports" / "multi" / "solution.json").read_text())
    rows = sol["hardware"]["rows"]
    assert len(rows) == 2 and rows[1]["provenance"].startswith("assumed: datasheet a100-40gb-sxm")
    assert "recommended (meets the SLO" in out and "cheapest hardware for this demand" in out
    # infeasible SLO: a one-line note instead of a number
    rc = cli.main(["report", "--chinchilla-params", "30e9", "--requests", "17.5e9", "--inference-profile", str(p1),
                   "--slo-tpot-p90-s", "1e-4", "--name", "tight", "--out-dir", str(tmp_path / "reports")])
    out = capsys.readouterr().out
    assert rc == 0 and sum(line.startswith("no recommendation: no model size") for line in out.splitlines()) == 1


def test_version_2_solution_reads_as_version_4_without_the_new_sections(tmp_path, gpu):
    from solver.optimize.schema import SOLUTION_SCHEMA_VERSION
    from solver.report.schema import load_solution

    sol = compute_solution(inputs(), gpu, {"path": "synthetic"}).model_dump()
    old = {k: v for k, v in sol.items() if k not in ("recommendation", "sizing", "provisioned", "hardware", "data_limit",
                                                       "front", "warnings")}
    old["schema_version"] = 2
    path = tmp_path / "solution.json"
    path.write_text(json.dumps(old))
    back = load_solution(path)
    assert SOLUTION_SCHEMA_VERSION == 4 and back.schema_version == 4
    assert back.recommendation is None and back.sizing is None and back.warnings == []
    path.write_text(json.dumps(sol))
    assert load_solution(path).recommendation.model_dump() == sol["recommendation"]


# --------------------------------------------------------------------------- the typed solution (schema 4)


def test_solution_round_trips_through_json(gpu):
    from solver.report.output.write import solution_json

    sol = compute_solution(inputs(max_train_tokens=5e10), gpu, {"path": "synthetic"})
    assert isinstance(sol, Solution) and sol.schema_version == 4
    text = solution_json(sol)
    back = Solution.model_validate_json(text)
    assert back == sol and solution_json(back) == text
    # keys absent in some cases stay absent, not null (data_limit's limit record, front's optional keys)
    data = json.loads(text)
    assert "tpot_mean_s" not in data["front"]["hardware"][0]["series"][0]["points"][0]
    assert "chosen" in data["front"]["hardware"][0]["series"][-1]
    one = compute_solution(inputs(max_train_tokens=1e11), synthetic_profile(), {"path": "synthetic"})
    dumped = json.loads(solution_json(one))
    assert set(dumped["data_limit"]) == {"max_train_tokens", "repeat", "applies_to", "message"}
    assert set(dumped["sizing"]) == {"status", "message", "constrained", "unconstrained"}
    assert Solution.model_validate_json(solution_json(one)) == one


def test_section_models_reject_unknown_keys_and_non_finite_numbers(gpu):
    from pydantic import ValidationError

    from solver.report.schema import Fleet, FrontPoint, Target

    sol = compute_solution(inputs(), gpu, {"path": "synthetic"})
    data = sol.model_dump()
    with pytest.raises(ValidationError, match="extra"):
        Target.model_validate(data["target"] | {"loss_typo": 1.0})
    with pytest.raises(ValidationError, match="extra"):
        Fleet.model_validate(data["fleet"] | {"gpus": 3})
    bad = json.loads(json.dumps(data))
    bad["scenarios"]["paper"]["constants"]["mfu_inptu"] = 0.5
    with pytest.raises(ValidationError, match="mfu_inptu"):
        Solution.model_validate(bad)
    with pytest.raises(ValidationError):
        Target.model_validate(data["target"] | {"loss": math.inf})
    point = data["front"]["hardware"][0]["series"][0]["points"][0]
    with pytest.raises(ValidationError, match="extra"):
        FrontPoint.model_validate(point | {"colour": "red"})


def test_version_3_solution_loads_as_version_4(tmp_path, gpu):
    from solver.report.schema import load_solution

    sol = compute_solution(inputs(), gpu, {"path": "synthetic"})
    data = json.loads(sol.model_dump_json())
    data["schema_version"] = 3
    path = tmp_path / "solution.json"
    path.write_text(json.dumps(data))
    back = load_solution(path)
    assert back.schema_version == 4
    assert back.model_dump(exclude={"schema_version"}) == sol.model_dump(exclude={"schema_version"})
    data["schema_version"] = 5
    path.write_text(json.dumps(data))
    with pytest.raises(ValueError, match="schema_version"):
        load_solution(path)


def test_each_committed_solution_loads():
    """Every results/reports/*/solution.json (versions 1 to 3 today) reads as version 4 and renders."""
    from solver.report.output.render import build_document, to_markdown
    from solver.report.schema import load_solution

    root = Path(__file__).resolve().parents[1] / "results" / "reports"
    files = sorted(root.glob("*/solution.json"))
    assert files, "no committed report"
    versions = set()
    for f in files:
        versions.add(json.loads(f.read_text())["schema_version"])
        sol = load_solution(f)
        assert sol.schema_version == 4 and sol.target.loss > 0, f
        assert Solution.model_validate_json(sol.model_dump_json()) == sol, f
        assert "## Crossover" in to_markdown(build_document(sol, f.parent.name, [])), f
    assert {1, 2, 3} <= versions
