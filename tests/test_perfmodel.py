"""The ladder's performance model on synthetic runs made from a known step model (tests/perf_synthetic.py):
step extraction, the fit, its intervals, leave-one-model-out and the solver's closed form."""

from __future__ import annotations

import math

import numpy as np
import pytest
from perf_synthetic import RUNS, SIZES, TRUE, USD_PER_H, synthetic_ladder, synthetic_run
from perf_synthetic import shape_of_size as _shape

from calibrate.perfmodel import selection as ladder
from calibrate.perfmodel.build import build_performance_model, predict_points
from calibrate.perfmodel.forms import StepModel, fit_step_model
from calibrate.perfmodel.simulate import simulate
from solver.optimize import serving


@pytest.fixture(scope="module")
def clean():
    return synthetic_ladder(seed=0)


def test_steps_recover_batch_and_duration():
    rng = np.random.default_rng(3)
    run = synthetic_run(TRUE, 100e6, 8, 32, 4, 8, rng, noise=0.0, jitter_s=0.0)
    s = run.evidence.steps
    # all four sequences decode together after the first step: the batch seen is 4 almost always
    assert np.median(s.decode_seqs) == 4
    expected = TRUE.scalar_fn(run.shape)(4, 4 * (8 + 16), 0, 0)
    assert np.median(s.duration_s) == pytest.approx(expected, rel=0.05)


def test_fit_recovers_the_known_step_model(clean):
    fitted = fit_step_model([r.evidence for r in clean], "layered")
    for k in ("t0_s", "bandwidth_bytes_per_s", "decode_flop_per_s", "prefill_flop_per_s"):
        assert fitted.params[k] == pytest.approx(TRUE.params[k], rel=0.15), k
    assert fitted.request_overhead_s == pytest.approx(TRUE.request_overhead_s, rel=0.3)


def test_bootstrap_intervals_cover_the_truth(clean):
    pm = build_performance_model(clean, n_boot=12, forms=("layered",))
    assert pm.form == "layered"
    for k in ("t0_s", "bandwidth_bytes_per_s", "decode_flop_per_s", "prefill_flop_per_s"):
        p = pm.params[k]
        assert p.low <= p.value <= p.high
        # the interval plus the 5 % noise floor covers the true value
        assert p.low * 0.9 <= TRUE.params[k] <= p.high * 1.1, (k, p, TRUE.params[k])


def test_leave_one_model_out_is_accurate_on_a_clean_ladder(clean):
    rows = ladder.leave_one_model_out(clean, "layered")
    assert {r["model"] for r in rows} == {f"m{n:.0e}" for n in SIZES}
    worst = ladder.error_summary(rows)
    assert worst["output_tokens_per_s"]["max_abs"] < 0.15
    assert worst["usd_per_request"]["max_abs"] < 0.15


def test_planted_outlier_is_flagged():
    runs = synthetic_ladder(seed=1, outlier=2)
    pm = build_performance_model(runs, n_boot=4, forms=("layered",))
    assert not pm.meets_target and pm.warning and "held-out error" in pm.warning
    by_model = {}
    for r in pm.held_out:
        by_model.setdefault(r.model, []).append(abs(r.error.output_tokens_per_s))
    assert max(by_model["m8e+08"]) > 0.3  # the planted size is badly predicted from the others


def test_form_choice_prefers_forms_that_carry_across_sizes(clean):
    form, table = ladder.choose_form(clean, ("compute", "layered"))
    scores = {t["form"]: t["score"] for t in table}
    assert form == "layered" and scores["compute"] > scores["layered"]
    assert sum(t["chosen"] for t in table) == 1


def test_closed_form_steady_state_agrees_with_the_simulation():
    """The solver's closed form against the simulator, with output lengths spread (±40 %) so requests
    do not move in synchronised waves (as in a deployment); steady state over 40 waves."""
    perf = serving.PerformanceModel(TRUE, 2, 2048)
    hw = serving.ServingHardware(name="x", usd_per_h=1.0, memory_bytes=None, peak_flop_per_s=None)
    for n, c, (p, g) in [(100e6, 4, (70, 215)), (760e6, 16, (70, 215)), (15e6, 8, (256, 32)), (760e6, 1, (70, 215))]:
        sh = _shape(n)
        cf = serving.steady_state(perf, sh, serving.Workload(p, g), c, hw)
        spread = [(p, max(2, round(g * f))) for f in (0.6, 1.4, 0.8, 1.2, 1.0)]
        sim = simulate(TRUE.scalar_fn(sh), concurrency=c, num_requests=40 * c, lengths=spread,
                       request_overhead_s=TRUE.request_overhead_s)
        assert float(cf["output_tokens_per_s"]) == pytest.approx(sim.output_tokens_per_s, rel=0.05)
        assert float(cf["tpot_s"]) == pytest.approx(sim.tpot_mean_s, rel=0.12)
        # a closed loop still bunches arrivals (requests ending in one step are resent together), so
        # its TTFT runs up to ~1.7x the spread-out closed form: the same order, not the same figure
        assert 0.5 < float(cf["ttft_s"]) / sim.ttft_mean_s < 1.2


def test_predict_points_have_intervals(clean):
    pm = build_performance_model(clean, n_boot=8, forms=("layered",))
    pts = predict_points(pm, _shape(300e6), input_tokens=70, output_tokens=215, concurrencies=[1, 4],
                         usd_per_h=USD_PER_H)
    assert [p["concurrency"] for p in pts] == [1, 4]
    for p in pts:
        for k in ("output_tokens_per_s", "input_tokens_per_s", "ttft_s", "tpot_s", "usd_per_request"):
            lo, hi = p[f"{k}_interval"]
            assert lo <= p[k] <= hi
    assert pts[1]["output_tokens_per_s"] > pts[0]["output_tokens_per_s"]


def test_bigger_models_cost_more_per_request():
    perf = serving.PerformanceModel(TRUE, 2, 2048)
    hw = serving.ServingHardware(name="x", usd_per_h=1.0, memory_bytes=24e9, peak_flop_per_s=3e11, max_num_seqs=16)
    usd = serving.usd_per_request([1e8, 1e9, 5e9], hw, perf, serving.Workload(70, 215))
    assert np.all(np.diff(usd) > 0)


def test_every_parameter_of_every_form_has_a_unit():
    from calibrate.perfmodel.build import unit_of
    from calibrate.perfmodel.forms import FORMS

    units = {name: unit_of(name) for names in FORMS.values() for name in names}
    assert units["gemm_bandwidth_bytes_per_s"] == "bytes/s" and units["t0_s"] == "s"
    assert units["attention_flop_per_s"] == "flop/s"
    with pytest.raises(ValueError, match="'alpha'"):
        unit_of("alpha")


def test_a_performance_model_of_each_form_builds():
    """Every form can be the chosen one (the 'switch' form's bandwidth once had no unit and the profile
    failed only when it won): build the model restricted to each form on a synthetic ladder."""
    from calibrate.perfmodel.build import build_performance_model
    from calibrate.perfmodel.forms import FORMS

    runs = synthetic_ladder(seed=0)
    for form in FORMS:
        pm = build_performance_model(runs, n_boot=3, forms=(form,))
        assert pm.form == form and set(pm.params) == set(FORMS[form])


def test_error_split_separates_bias_from_replicate_noise():
    from calibrate.perfmodel.errorsplit import error_split

    def row(model, c, pred, meas):
        figs = lambda x: {"output_tokens_per_s": x, "usd_per_request": 1.0 / x}  # noqa: E731
        return {"model": model, "input_tokens": 8, "output_tokens": 32, "concurrency": c,
                "predicted": figs(pred), "measured": figs(meas)}

    # point A: replicates 90 and 110 (noise 10 %) around 100, predicted 100: all noise, no bias
    # point B: replicates 100 and 100, predicted 150: all bias
    rows = [row("a", 1, 100, 90), row("a", 1, 100, 110), row("b", 1, 150, 100), row("b", 1, 150, 100)]
    s = error_split(rows)["output_tokens_per_s"]
    assert s["noise_max"] == pytest.approx(0.1) and s["noise_median"] == pytest.approx(0.05)
    assert s["error_max"] == pytest.approx(0.5) and s["replicated_points"] == 2 and s["runs"] == 4
    log_sq = 2 * math.log(1.5) ** 2
    assert s["bias_share"] == pytest.approx(log_sq / (log_sq + math.log(100 / 90) ** 2 + math.log(100 / 110) ** 2))
    only_noise = error_split(rows[:2])["output_tokens_per_s"]  # predicted = the replicates' mean
    assert only_noise["bias_share"] == pytest.approx(0.0, abs=1e-12)
    assert error_split([row("c", 4, 1, 2)])["output_tokens_per_s"]["replicated_points"] == 0


def test_fitted_parameters_are_finite_and_a_diverged_fit_is_refused():
    """A term the runs do not identify drifts in log space; an overflowed exp() once wrote a bootstrap
    refit as null into a profile that `calibrate predict` then refused (CI, 2026-12-07). The parameters
    are held within 1e8x of their starts, and a non-finite fit raises (bootstrap drops that refit)."""
    from calibrate.perfmodel.forms import _START, LOG_RANGE, params_from_log

    names = ("t0_s", "bandwidth_bytes_per_s")
    p = params_from_log(names, [math.log(_START["t0_s"]), 800.0])  # exp(800) overflows
    assert all(math.isfinite(v) for v in p.values())
    assert p["bandwidth_bytes_per_s"] == pytest.approx(_START["bandwidth_bytes_per_s"] * math.exp(LOG_RANGE))
    assert p["t0_s"] == pytest.approx(_START["t0_s"])
    with pytest.raises(ValueError, match="did not converge"):
        params_from_log(names, [float("nan"), 0.0])

    # runs with no weight-read cost at all: the bandwidth is unidentified, the fit stays finite
    no_weights = StepModel("layered", {**TRUE.params, "bandwidth_bytes_per_s": 1e40}, TRUE.request_overhead_s)
    rng = np.random.default_rng(3)
    runs = [synthetic_run(no_weights, n, *r, rng=rng) for n in SIZES[:2] for r in RUNS[:4]]
    fitted = fit_step_model([r.evidence for r in runs], "layered")
    assert all(math.isfinite(v) for v in fitted.params.values()), fitted.params


def test_a_performance_model_refuses_a_non_finite_bootstrap_refit(clean):
    """What is written must read back: a refit with an infinite parameter is refused at construction
    (pydantic would otherwise serialise it as null, which the reader refuses)."""
    from pydantic import ValidationError

    from calibrate.perfmodel.build import build_performance_model
    from core.schema.perfmodel import PerformanceModel

    pm = build_performance_model(clean, n_boot=2, forms=("layered",))
    data = pm.model_dump()
    data["bootstrap"][0]["bandwidth_bytes_per_s"] = float("inf")
    with pytest.raises(ValidationError, match="finite"):
        PerformanceModel.model_validate(data)
