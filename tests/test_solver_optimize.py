"""solver.optimize.solve: Eq. 3 and Eq. 6 against an independent scalar root-find, and the invariants."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from solver.optimize.laws import DEFAULT_LAW as CH
from solver.optimize.laws import LAWS, chinchilla_params_for_loss
from solver.optimize.laws import loss as law_loss
from solver.optimize.solve import (
    CostSettings,
    optimal_params_tokens,
    optimal_params_tokens_scalar,
    optimize_cost,
    optimize_cost_general,
    optimize_flops,
    usd_per_flop,
)

PAPER = CostSettings.from_hardware(train_usd_per_h=1.50, train_peak_flop_per_s=312e12, mfu_train=0.5,
                                   inference_usd_per_h=1.10, inference_peak_flop_per_s=624e12,
                                   mfu_input=0.5, mfu_output=0.01)

losses = st.floats(min_value=CH.E + 1e-4, max_value=4.0)
demands = st.one_of(st.just(0.0), st.floats(min_value=1.0, max_value=1e16))


def test_vectorised_matches_scalar_on_a_grid():
    ls = np.array([CH.E + 1e-6, CH.E + 1e-3, 1.8, 2.1, 2.5, 3.2, 4.0])[:, None]
    ds = np.array([0.0, 1.0, 1e6, 1e10, 1e12, 1e14, 1e16])[None, :]
    n, d = optimal_params_tokens(CH, ls, ds / 3)
    for i in range(ls.shape[0]):
        for j in range(ds.shape[1]):
            ns, dd = optimal_params_tokens_scalar(CH, float(ls[i, 0]), float(ds[0, j] / 3))
            assert n[i, j] == pytest.approx(ns, rel=1e-9)
            assert d[i, j] == pytest.approx(dd, rel=1e-9)


@pytest.mark.parametrize("name", sorted(LAWS))
def test_every_law_matches_scalar(name):
    law = LAWS[name]
    for loss in (law.E + 0.01, law.E + 0.5, 4.0):
        for r in (0.0, 1e9, 1e15):
            n, d = optimal_params_tokens(law, loss, r)
            ns, ds = optimal_params_tokens_scalar(law, loss, r)
            assert float(n) == pytest.approx(ns, rel=1e-9)
            assert float(d) == pytest.approx(ds, rel=1e-9)


def test_zero_demand_is_chinchilla():
    c = optimize_flops(2.3, 0.0)
    assert float(c.optimal.params) == pytest.approx(float(c.chinchilla.params), rel=1e-13)
    assert float(c.saving_fraction) == pytest.approx(0.0, abs=1e-13)


def test_table2_row_70b():
    # Table 2, last row: 70B Chinchilla, 10T tokens -> 41.6B params on 7.92T tokens, 2.81e24 FLOPs.
    c = optimize_flops(float(1.69 + (1 + 0.336 / 0.283) * 406.4 * 70e9 ** -0.336), 10e12)
    assert float(c.optimal.params) == pytest.approx(41.6e9, rel=5e-3)
    assert float(c.optimal.train_tokens) == pytest.approx(7.92e12, rel=5e-3)
    assert float(c.optimal.total_flop) == pytest.approx(2.81e24, rel=5e-3)
    assert float(c.chinchilla.total_flop) == pytest.approx(3.19e24, rel=5e-3)


def test_optimum_is_a_minimum_along_the_constraint():
    loss, d_inf = 2.0, 1e12
    c = optimize_flops(loss, d_inf)
    n0 = float(c.optimal.params)
    from solver.optimize.laws import tokens_for_loss
    best = float(c.optimal.total_flop)
    for f in (0.9, 0.99, 0.999, 1.001, 1.01, 1.1):
        n = n0 * f
        total = 6 * n * float(tokens_for_loss(CH, loss, n)) + 2 * n * d_inf
        assert total > best


@settings(max_examples=300, deadline=None)
@given(loss=losses, demand=demands)
def test_flops_invariants(loss, demand):
    c = optimize_flops(loss, demand)
    # the optimal total never exceeds the Chinchilla-style total
    assert float(c.optimal.total_flop) <= float(c.chinchilla.total_flop) * (1 + 1e-12)
    # N* never exceeds the Chinchilla-style N when demand >= 0
    assert float(c.optimal.params) <= float(c.chinchilla.params) * (1 + 1e-12)
    # the loss constraint holds to 1e-9
    got = float(law_loss(CH, c.optimal.params, c.optimal.train_tokens))
    assert abs(got - loss) <= 1e-9 * loss


@settings(max_examples=300, deadline=None)
@given(loss=losses, requests=st.one_of(st.just(0.0), st.floats(min_value=1.0, max_value=1e14)))
def test_cost_invariants(loss, requests):
    c = optimize_cost(loss, requests, PAPER)
    assert float(c.optimal.total_usd) <= float(c.chinchilla.total_usd) * (1 + 1e-12)
    assert float(c.optimal.params) <= float(c.chinchilla.params) * (1 + 1e-12)
    got = float(law_loss(CH, c.optimal.params, c.optimal.train_tokens))
    assert abs(got - loss) <= 1e-9 * loss


@settings(max_examples=100, deadline=None)
@given(loss=losses, demand=demands)
def test_vectorised_agrees_with_scalar_property(loss, demand):
    n, d = optimal_params_tokens(CH, loss, demand / 3)
    ns, ds = optimal_params_tokens_scalar(CH, loss, demand / 3)
    assert float(n) == pytest.approx(ns, rel=1e-9)
    assert float(d) == pytest.approx(ds, rel=1e-9)


def test_monotone_in_demand():
    ds = np.logspace(8, 16, 50)
    c = optimize_flops(2.0, ds)
    assert np.all(np.diff(c.optimal.params) < 0)
    assert np.all(np.diff(c.optimal.train_tokens) > 0)


def test_broadcasting_grid():
    c = optimize_cost(np.array([2.0, 2.2, 2.4])[:, None], np.array([0.0, 1e8, 1e9, 1e10])[None, :], PAPER)
    assert c.optimal.params.shape == (3, 4)
    assert c.optimal.total_usd.shape == (3, 4)


def test_cost_equals_flops_when_prices_are_equal():
    # With one $/FLOP for every phase, Eq. 6 is Eq. 3 scaled: same N*, D*.
    s = CostSettings(1e-18, 1e-18, 1e-18, 70, 215)
    a = optimize_cost(2.1, 1e9, s)
    b = optimize_flops(2.1, 1e9 * 285)
    assert float(a.optimal.params) == pytest.approx(float(b.optimal.params), rel=1e-12)
    assert float(a.optimal.total_usd) == pytest.approx(float(b.optimal.total_flop) * 1e-18, rel=1e-12)


def test_cost_settings_from_hardware_is_price_over_peak_over_mfu():
    assert PAPER.train_usd_per_flop == pytest.approx(1.50 / 3600 / 312e12 / 0.5, rel=1e-15)
    assert PAPER.output_usd_per_flop == pytest.approx(1.10 / 3600 / 624e12 / 0.01, rel=1e-15)
    assert usd_per_flop(3600, 1.0) == 1.0


@pytest.mark.parametrize("kwargs, match", [
    (dict(mfu_train=0.0), "mfu_train"),
    (dict(mfu_output=1.5), "mfu_output"),
    (dict(inference_usd_per_h=float("nan")), "usd_per_h"),
    (dict(train_peak_flop_per_s=-1.0), "flop_per_s"),
])
def test_bad_cost_settings(kwargs, match):
    base = dict(train_usd_per_h=1.5, train_peak_flop_per_s=312e12, mfu_train=0.5, inference_usd_per_h=1.1,
                inference_peak_flop_per_s=624e12, mfu_input=0.5, mfu_output=0.01)
    with pytest.raises(ValueError, match=match):
        CostSettings.from_hardware(**(base | kwargs))


@pytest.mark.parametrize("loss, demand, match", [
    (1.69, 1e9, "unreachable"),
    (1.0, 1e9, r"E = 1\.69"),
    (float("inf"), 1e9, "unreachable"),
    (2.0, -1.0, "inference_tokens"),
    (2.0, float("nan"), "inference_tokens"),
])
def test_bad_problem_inputs(loss, demand, match):
    with pytest.raises(ValueError, match=match):
        optimize_flops(loss, demand)


def test_general_path_matches_constant_case():
    loss, requests = 1.96, 1.75e10
    per_param = requests * PAPER.inference_usd_per_param_request()
    g = optimize_cost_general(loss, CH, PAPER.train_usd_per_flop, lambda n: n * per_param)
    c = optimize_cost(loss, requests, PAPER)
    assert g.params == pytest.approx(float(c.optimal.params), rel=1e-6)
    assert g.train_tokens == pytest.approx(float(c.optimal.train_tokens), rel=1e-6)
    assert g.total_usd == pytest.approx(float(c.optimal.total_usd), rel=1e-11)
    assert g.chinchilla_total_usd == pytest.approx(float(c.chinchilla.total_usd), rel=1e-12)
    assert g.saving_fraction == pytest.approx(float(c.saving_fraction), rel=1e-9)


def test_general_path_zero_inference_is_chinchilla():
    g = optimize_cost_general(2.2, CH, 1e-18, lambda n: 0.0)
    assert g.params == pytest.approx(float(chinchilla_params_for_loss(CH, 2.2)), rel=1e-6)


def test_general_path_n_dependent_efficiency_moves_the_optimum():
    # Decode efficiency falling with N (cost per param growing like N^0.2) must push N* below the
    # constant-efficiency optimum with the same cost at N = 1e10.
    loss, per_param = 2.0, 1e-6
    const = optimize_cost_general(loss, CH, 1e-17, lambda n: n * per_param)
    steeper = optimize_cost_general(loss, CH, 1e-17, lambda n: n * per_param * (n / 1e10) ** 0.2)
    assert steeper.params < const.params
    assert math.isfinite(steeper.total_usd)


def test_general_path_rejects_bad_fn():
    with pytest.raises(ValueError, match="inference_usd_fn"):
        optimize_cost_general(2.0, CH, 1e-18, lambda n: float("nan"))
