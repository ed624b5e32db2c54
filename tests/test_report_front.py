"""solver.report.front: the throughput-latency front's points are the profile's runs and the serving model's."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest
from solver_synthetic import overhead_model, synthetic_profile

from solver.optimize import serving
from solver.optimize.laws import chinchilla_loss_for_params, get_law
from solver.report import front as report_front
from solver.report.front import HardwareEntry, front, front_for
from solver.report.solve import ReportInputs, solve

LAW = get_law("chinchilla")
CURVE = {1: 0.004, 2: 0.008, 4: 0.015, 8: 0.028, 16: 0.05, 32: 0.08, 64: 0.11}


def _inputs(**kw) -> ReportInputs:
    base = dict(target_loss=float(chinchilla_loss_for_params(LAW, 30e9)), requests=17.5e9,
                train_usd_per_flop=1.5 / 3600 / (312e12 * 0.5), train_description={}, law=LAW, map_points=5)
    return ReportInputs(**(base | kw))


def _solved(profile_kw=None, **kw):
    prof = synthetic_profile(**({"curve": CURVE, "performance_model": overhead_model()} | (profile_kw or {})))
    return solve(_inputs(**kw), prof, {"path": "synthetic"}, "test")


@pytest.fixture(scope="module")
def solved():
    return _solved()


def _series(hw, kind, model=None):
    return [s for s in hw["series"] if s["kind"] == kind and (model is None or s["model"] == model)]


RUNS = "assumed"  # the synthetic profiles' "runs" were never run: their points are assumed, not measured


def test_measured_points_are_the_profiles_decode_curve(solved):
    fr = front(solved).model_dump()
    json.dumps(fr, allow_nan=False)  # strict JSON
    (hw,) = fr["hardware"]
    (meas,) = _series(hw, RUNS)
    curve = solved.profile.decode_curve
    assert [p["concurrency"] for p in meas["points"]] == [c.concurrency for c in curve]
    for p, c in zip(meas["points"], curve):
        assert p["kind"] == RUNS
        assert p["tokens_per_s_per_device"] == pytest.approx(c.output_tokens_per_s)
        assert p["tokens_per_s_per_user"] == pytest.approx(1.0 / c.tpot_p90_s)
    assert meas["tpot_statistic"] == "p90"
    for se in hw["series"]:
        assert all(p["kind"] == se["kind"] for p in se["points"]) and se["kind"] in (RUNS, "predicted")


def test_operating_point_is_the_serving_models_choice(solved):
    (hw,) = front(solved).model_dump()["hardware"]
    op = hw["operating_point"]
    assert solved.sizing.constrained is not None  # the fixture has a feasible size: the recommended one is shown
    pt = solved.model.point(solved.sizing.constrained.params)
    assert op["chosen"].startswith("recommended") and op["params"] == solved.sizing.constrained.params
    assert op["kind"] == "predicted" and op["concurrency"] == pt.batch and op["meets_slo"] == pt.meets_slo is True
    assert op["tokens_per_s_per_device"] == pytest.approx(pt.output_tokens_per_s / pt.devices_per_replica)
    assert op["tokens_per_s_per_user"] == pytest.approx(1.0 / pt.tpot_p90_s)
    assert op["tpot_s"] == pt.tpot_p90_s and op["ttft_s"] == pt.ttft_p90_s and op["tpot_mean_s"] == pt.tpot_s
    # the chosen model's predicted curve goes through the operating point (same batch, same p90 TPOT)
    (chosen,) = _series(hw, "predicted", "chosen")
    on = [p for p in chosen["points"] if p["concurrency"] == pt.batch]
    assert len(on) == 1 and on[0]["tokens_per_s_per_device"] == pytest.approx(op["tokens_per_s_per_device"], rel=1e-9)
    assert on[0]["tpot_s"] == pytest.approx(op["tpot_s"], rel=1e-9)
    assert on[0]["tpot_mean_s"] == pytest.approx(pt.tpot_s, rel=1e-9)
    assert chosen["points"][-1]["concurrency"] == pt.max_batch_memory


def test_batching_trades_speed_per_user_for_throughput(solved):
    (hw,) = front(solved).model_dump()["hardware"]
    (chosen,) = _series(hw, "predicted", "chosen")
    x = np.array([p["tokens_per_s_per_user"] for p in chosen["points"]])
    y = np.array([p["tokens_per_s_per_device"] for p in chosen["points"]])
    assert len(x) > 3 and np.all(np.diff(x) <= 1e-12 * x[:-1]) and np.all(np.diff(y) > 0)


def test_slo_verdicts_follow_the_limits():
    solved = _solved(slo_tpot_p90_s=0.03)
    (hw,) = front(solved).model_dump()["hardware"]
    slo = hw["slo"]
    assert slo["tpot_p90_s"] == solved.model.workload.tpot_slo_s == 0.03
    assert slo["tokens_per_s_per_user_min"] == pytest.approx(1.0 / slo["tpot_p90_s"])
    verdicts = set()
    for se in hw["series"]:
        for p in se["points"]:
            want = (p["tpot_s"] <= slo["tpot_p90_s"]) and (p["ttft_s"] is None or p["ttft_s"] <= slo["ttft_p90_s"])
            if p["ttft_s"] is None:
                want = None if want else False
            assert p["meets_slo"] == want, p
            verdicts.add(p["meets_slo"])
    assert {True, False} <= verdicts  # the fixture has points on both sides of the line
    free = front(_solved(no_slo=True)).model_dump()["hardware"][0]
    assert free["slo"]["tpot_p90_s"] is None and free["slo"]["tokens_per_s_per_user_min"] is None
    assert {p["meets_slo"] for se in free["series"] for p in se["points"]} == {None}


def test_per_device_divides_by_the_devices_of_the_run():
    one = front(_solved()).model_dump()["hardware"][0]
    two = front(_solved({"device_count": 2})).model_dump()["hardware"][0]
    m1, m2 = _series(one, RUNS)[0]["points"], _series(two, RUNS)[0]["points"]
    # the synthetic profile's decode curve scales its rates with device_count: per device they agree
    for a, b in zip(m1, m2):
        assert b["tokens_per_s_per_device"] == pytest.approx(a["tokens_per_s_per_device"])


def test_profile_without_performance_model_has_measured_points_only():
    s = _solved({"performance_model": None})
    (hw,) = front(s).model_dump()["hardware"]
    assert hw["operating_point"] is None and [se["kind"] for se in hw["series"]] == [RUNS]
    assert hw["slo"]["tpot_p90_s"] == s.profile.slo.tpot_p90_s


def test_ladder_runs_are_measured_points():
    """A profile whose performance model carries held-out ladder runs: each run with a TPOT is a point."""
    from core.schema.perfmodel import Figures, HeldOutRun

    s = _solved()
    pm = s.profile.performance_model
    runs = [HeldOutRun(run_id=f"r{c}", model="ladder-a", params_matmul=1e8, input_tokens=70, output_tokens=215,
                       concurrency=c, measured=Figures(output_tokens_per_s=10.0 * c, tpot_s=0.01 * (1 + c / 8),
                                                       ttft_s=0.1),
                       predicted=Figures(), error=Figures()) for c in (4, 1, 16)]
    runs.append(HeldOutRun(run_id="prefill", model="ladder-a", params_matmul=1e8, input_tokens=256, output_tokens=1,
                           concurrency=1, measured=Figures(output_tokens_per_s=1.0), predicted=Figures(),
                           error=Figures()))
    prof = s.profile.model_copy(update={"performance_model": pm.model_copy(update={"held_out": runs})})
    fr = front_for([HardwareEntry("x", prof, s.model, s.n_dependent.params)]).model_dump()
    (ladder,) = [se for se in fr["hardware"][0]["series"] if se["model"] == "ladder-a"]
    assert ladder["kind"] == RUNS and [p["concurrency"] for p in ladder["points"]] == [1, 4, 16]
    assert ladder["tpot_statistic"] == "mean"
    assert ladder["points"][2]["tokens_per_s_per_user"] == pytest.approx(1 / 0.03)
    # a mean TPOT can show a miss of the p90 limit (0.2 s in the fixture), never a pass
    slow = prof.model_copy(update={"slo": prof.slo.model_copy(update={"tpot_p90_s": 0.01})})
    assert {p["meets_slo"] for p in report_front.measured_ladder_runs(prof, report_front._slo(prof, None))[0]["points"]} \
        == {None}
    assert {p["meets_slo"] for p in report_front.measured_ladder_runs(slow, report_front._slo(slow, None))[0]["points"]} \
        == {False}


def test_several_hardware_entries(solved):
    other = synthetic_profile(hardware_name="other-hw", curve=CURVE, performance_model=overhead_model(t0_s=0.01))
    model = serving.serving_model(other, input_tokens=70, output_tokens=215)
    fr = front_for([HardwareEntry("a", solved.profile, solved.model, solved.n_dependent.params),
                    HardwareEntry("b", other, model, solved.n_dependent.params)]).model_dump()
    assert [h["label"] for h in fr["hardware"]] == ["a", "b"]
    assert [h["hardware"] for h in fr["hardware"]] == [solved.profile.hardware.name, "other-hw"]
    # a shorter fixed step overhead serves the same model faster per user at batch 1
    x = [_series(h, "predicted", "chosen")[0]["points"][0]["tokens_per_s_per_user"] for h in fr["hardware"]]
    assert x[1] > x[0]
    assert front_for([]) is None


def test_front_is_plotted_and_rendered(solved):
    from solver.report.output.plots import _front_plot
    from solver.report.output.render import FRONT_PLOT, Table, render_front, to_markdown

    sol = SimpleNamespace(front=front(solved))
    png = _front_plot(sol)[FRONT_PLOT]
    assert png.startswith(b"\x89PNG")
    doc = render_front(sol, [FRONT_PLOT])
    (table,) = [b for b in doc if isinstance(b, Table)]
    assert table.rows[0][0].startswith("operating point") and table.rows[0][1] == "predicted"
    assert {r[1] for r in table.rows} == {RUNS, "predicted"}
    assert "front.png" in to_markdown(doc)
    assert render_front(SimpleNamespace(front=None), []) == [] and _front_plot(SimpleNamespace(front=None)) == {}
    from solver.report.sections import DECODE_CURVE_WORKLOAD

    assert report_front.DECODE_WORKLOAD == DECODE_CURVE_WORKLOAD


def test_front_lists_each_hardware_of_a_comparison():
    prof = synthetic_profile(curve=CURVE, performance_model=overhead_model())
    other = synthetic_profile(hardware_name="other-hw", curve=CURVE, performance_model=overhead_model(t0_s=0.01))
    s = solve(_inputs(), prof, {"path": "a"}, "test", label="first", others=((other, {"path": "b"}, "second"),))
    fr = front(s).model_dump()
    assert [h["label"] for h in fr["hardware"]] == ["first", "second"]
    # each hardware's operating point is that hardware's own recommended model
    for h, solved in zip(fr["hardware"], (s, *s.others)):
        assert h["operating_point"]["params"] == solved.sizing.constrained.params
    assert fr["hardware"][1] == front(s.others[0]).model_dump()["hardware"][0] | {"label": "second"}


def test_runs_of_a_real_profile_are_measured():
    prof = synthetic_profile(curve=CURVE, performance_model=overhead_model())
    real = prof.model_copy(update={"provenance": prof.provenance.model_copy(update={"inputs": "bench",
                                                                                     "method": "windowed runs"})})
    sheet = prof.model_copy(update={"provenance": prof.provenance.model_copy(update={"inputs": "bench",
                                                                                      "method": "datasheet: A100"})})
    kinds = {}
    for name, p in (("real", real), ("sheet", sheet)):
        hw = front_for([HardwareEntry(name, p, None)]).model_dump()["hardware"][0]
        kinds[name] = {se["kind"] for se in hw["series"]} | {hw["measured_operating_point"]["kind"]}
    assert kinds == {"real": {"measured"}, "sheet": {"assumed"}}
