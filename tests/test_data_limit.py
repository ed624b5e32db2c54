"""solver.optimize.data_limit: Muennighoff et al. 2023 effective data and the data-limited optimum."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from solver.optimize.data_limit import (
    PAPER_MAX_TOKENS_PER_PARAM,
    R_D_STAR,
    DataLimitUnreachable,
    data_limited_optimum,
    effective_tokens,
    limit_record,
    tokens_for_effective,
    tokens_per_param_warning,
)
from solver.optimize.laws import (
    DEFAULT_LAW as CH,
)
from solver.optimize.laws import (
    LAWS,
    chinchilla_loss_for_params,
    tokens_for_loss,
)
from solver.optimize.laws import (
    loss as law_loss,
)
from solver.optimize.solve import CostSettings, optimize_cost

PAPER = CostSettings.from_hardware(train_usd_per_h=1.50, train_peak_flop_per_s=312e12, mfu_train=0.5,
                                   inference_usd_per_h=1.10, inference_peak_flop_per_s=624e12,
                                   mfu_input=0.5, mfu_output=0.01)


def eq6_cost(requests, s=PAPER):
    k, q = 6.0 * s.train_usd_per_flop, requests * s.inference_usd_per_param_request()
    return lambda n, d: k * n * d + n * q


def unconstrained(loss, requests):
    c = optimize_cost(loss, requests, PAPER)
    return float(c.optimal.params), float(c.optimal.train_tokens), float(c.optimal.total_usd)


# --------------------------------------------------------------------------- effective data


def test_constants_are_the_sources():
    assert R_D_STAR == 15.387756  # huggingface/datablations README, "Parametric Fit" (paper: ~15.4)
    assert PAPER_MAX_TOKENS_PER_PARAM == 10_000  # Sardana et al. 2024, Sec. 3 / Appendix C


def test_effective_tokens_by_hand():
    u = 1e12
    assert effective_tokens(0.5 * u, u) == 0.5 * u  # no repetition: every token counts
    assert effective_tokens(u, u) == u
    # R_D = R_D*: D' = U·(1 + R_D*·(1 - 1/e))
    d = u * (1 + R_D_STAR)
    assert effective_tokens(d, u) == pytest.approx(u * (1 + R_D_STAR * (1 - math.exp(-1))), rel=1e-14)
    # one repeated epoch is worth almost a fresh one (Muennighoff et al.: up to ~4 epochs nearly as good)
    assert effective_tokens(2 * u, u) == pytest.approx(u * (1 + R_D_STAR * (1 - math.exp(-1 / R_D_STAR))), rel=1e-14)
    assert 1.96 * u < effective_tokens(2 * u, u) < 2 * u
    assert effective_tokens(1e9 * u, u) <= u * (1 + R_D_STAR)  # saturates (strictly below in exact arithmetic)


def test_effective_tokens_vectorised_monotone_and_bounded():
    u = 3e11
    d = u * np.logspace(-3, 2.5, 300)  # up to ~300 epochs, before D' saturates in float64
    e = effective_tokens(d, u)
    assert isinstance(e, np.ndarray) and e.shape == d.shape
    assert np.all(np.diff(e) > 0)
    assert np.all(e <= d) and np.all(e < u * (1 + R_D_STAR))
    # continuous with slope 1 at D = U
    assert effective_tokens(u * (1 + 1e-6), u) == pytest.approx(u * (1 + 1e-6), rel=1e-12)


@settings(max_examples=200, deadline=None)
@given(u=st.floats(1e6, 1e15), epochs=st.floats(1e-3, 60.0))
def test_inverse_round_trip(u, epochs):
    d = u * epochs
    assert tokens_for_effective(effective_tokens(d, u), u) == pytest.approx(d, rel=1e-8)


def test_inverse_beyond_the_supremum_is_inf():
    assert tokens_for_effective(1e12 * (1 + R_D_STAR), 1e12) == math.inf
    assert tokens_for_effective(1e14, 1e12) == math.inf


def test_tokens_per_param_warning():
    assert tokens_per_param_warning(1e9, 1e13) is None  # exactly 10,000: inside the trained range
    w = tokens_per_param_warning(1e9, 1.0001e13)
    assert w is not None and "10,000" in w and "\n" not in w
    assert "230,000" in tokens_per_param_warning(3.87e9, 3.87e9 * 2.3e5)


# --------------------------------------------------------------------------- the data-limited optimum

LOSS_30B = float(chinchilla_loss_for_params(CH, 30e9))


def test_limit_above_unconstrained_changes_nothing_exactly():
    n, d, _ = unconstrained(LOSS_30B, 17.5e9)
    for u in (d, d * 1.0001, d * 10, 1e20):
        for repeat in (True, False):
            p = data_limited_optimum(CH, LOSS_30B, eq6_cost(17.5e9), u, repeat=repeat, unconstrained=(n, d))
            assert (p.params, p.train_tokens, p.binding) == (n, d, False)
            assert p.unique_tokens == d and p.epochs == 1.0 and p.effective_tokens == d


def test_limit_above_unconstrained_found_by_the_scan():
    n, d, total = unconstrained(LOSS_30B, 17.5e9)
    p = data_limited_optimum(CH, LOSS_30B, eq6_cost(17.5e9), 2 * d)
    assert not p.binding
    assert p.params == pytest.approx(n, rel=1e-6) and p.train_tokens == pytest.approx(d, rel=1e-6)
    assert eq6_cost(17.5e9)(p.params, p.train_tokens) == pytest.approx(total, rel=1e-12)


@settings(max_examples=60, deadline=None)
@given(loss=st.floats(1.8, 3.0), requests=st.one_of(st.just(0.0), st.floats(1e6, 1e12)),
       frac=st.floats(1e-3, 1.0), repeat=st.booleans())
def test_constrained_plan_meets_the_loss_within_the_data_and_never_beats_unconstrained(loss, requests, frac, repeat):
    n0, d0, total0 = unconstrained(loss, requests)
    u = d0 * frac
    cost = eq6_cost(requests)
    try:
        p = data_limited_optimum(CH, loss, cost, u, repeat=repeat, unconstrained=(n0, d0))
    except DataLimitUnreachable:
        d_min = float(tokens_for_loss(CH, loss, 1e300))
        assert d_min >= (u * (1 + R_D_STAR) if repeat else u) * (1 - 1e-9)
        return
    assert float(law_loss(CH, p.params, p.effective_tokens)) == pytest.approx(loss, rel=1e-9)
    assert p.effective_tokens == pytest.approx(effective_tokens(p.train_tokens, u), rel=1e-12)
    assert p.unique_tokens <= u
    assert p.epochs >= 1.0 and p.train_tokens == pytest.approx(p.unique_tokens * p.epochs, rel=1e-12)
    if not repeat:
        assert p.train_tokens <= u and p.epochs == 1.0
    assert cost(p.params, p.train_tokens) >= total0 * (1 - 1e-12)
    if abs(d0 - u) > 1e-9 * d0:  # a limit equal to D* (to rounding: frac = 1.0) may be called either way
        assert p.binding == (d0 > u)


def test_constrained_optimum_is_a_minimum_along_the_feasible_curve():
    n0, d0, _ = unconstrained(LOSS_30B, 17.5e9)
    cost = eq6_cost(17.5e9)
    u = 2e12
    p = data_limited_optimum(CH, LOSS_30B, cost, u, unconstrained=(n0, d0))
    assert p.binding and p.epochs > 1
    best = cost(p.params, p.train_tokens)
    for f in (0.98, 0.995, 1.005, 1.02):
        n = p.params * f
        d = tokens_for_effective(float(tokens_for_loss(CH, LOSS_30B, n)), u)
        assert cost(n, d) > best


def test_less_data_never_cheaper_and_repetition_never_dearer():
    n0, d0, _ = unconstrained(LOSS_30B, 17.5e9)
    cost = eq6_cost(17.5e9)
    prev_rep = prev_norep = 0.0
    for u in np.geomspace(d0, 2e11, 9):
        rep = data_limited_optimum(CH, LOSS_30B, cost, u, unconstrained=(n0, d0))
        norep = data_limited_optimum(CH, LOSS_30B, cost, u, repeat=False, unconstrained=(n0, d0))
        c_rep, c_norep = cost(rep.params, rep.train_tokens), cost(norep.params, norep.train_tokens)
        assert c_rep <= c_norep * (1 + 1e-9)
        assert c_rep >= prev_rep * (1 - 1e-9) and c_norep >= prev_norep * (1 - 1e-9)
        assert rep.params >= n0 * (1 - 1e-9)  # less data: a bigger model
        prev_rep, prev_norep = c_rep, c_norep


def test_no_repeat_binding_trains_on_all_the_data_once():
    n0, d0, _ = unconstrained(LOSS_30B, 17.5e9)
    u = 5e12
    p = data_limited_optimum(CH, LOSS_30B, eq6_cost(17.5e9), u, repeat=False, unconstrained=(n0, d0))
    assert p.binding and p.train_tokens == pytest.approx(u, rel=1e-9) and p.train_tokens <= u


@pytest.mark.parametrize("repeat", [True, False])
def test_unreachable_names_the_loss_the_data_and_what_is_needed(repeat):
    d_min = (CH.B / (LOSS_30B - CH.E)) ** (1 / CH.beta)
    u = d_min / (1 + R_D_STAR) * 0.99 if repeat else d_min * 0.99
    with pytest.raises(DataLimitUnreachable) as e:
        data_limited_optimum(CH, LOSS_30B, eq6_cost(1e9), u, repeat=repeat)
    msg = str(e.value)
    assert "\n" not in msg and f"{LOSS_30B:.6g}" in msg and f"{u:.4g}" in msg
    need = d_min / (1 + R_D_STAR) if repeat else d_min
    assert f"{need:.4g}" in msg
    # just above the need: reachable
    p = data_limited_optimum(CH, LOSS_30B, eq6_cost(1e9), need * 1.01, repeat=repeat)
    assert float(law_loss(CH, p.params, p.effective_tokens)) == pytest.approx(LOSS_30B, rel=1e-9)


def test_scalar_only_cost_fn_and_an_infeasible_region():
    """Any cost model: one that refuses arrays, and one that is infinite (say, SLO-infeasible) below 20B."""
    base = eq6_cost(17.5e9)

    def scalar_only(n, d):
        if isinstance(n, np.ndarray):
            raise TypeError("scalars only")
        return base(n, d) if n >= 20e9 else math.inf

    p = data_limited_optimum(CH, LOSS_30B, scalar_only, 2e12)
    assert p.params >= 20e9 and p.params == pytest.approx(20e9, rel=1e-6)
    with pytest.raises(ValueError, match="no finite cost"):
        data_limited_optimum(CH, LOSS_30B, lambda n, d: math.inf, 2e12)


@pytest.mark.parametrize("name", sorted(LAWS))
def test_every_law(name):
    law = LAWS[name]
    loss = law.E + 0.3
    d_min = (law.B / 0.3) ** (1 / law.beta)
    p = data_limited_optimum(law, loss, lambda n, d: n * d + 1e3 * n, d_min)  # any finite N must repeat
    assert float(law_loss(law, p.params, p.effective_tokens)) == pytest.approx(loss, rel=1e-9)
    assert p.unique_tokens <= d_min and p.binding


@pytest.mark.parametrize("u", [0, -1.0, math.nan, math.inf, "1e12", True])
def test_bad_unique_tokens(u):
    with pytest.raises(ValueError, match="unique_tokens"):
        data_limited_optimum(CH, LOSS_30B, eq6_cost(1e9), u)


def test_limit_record_keys():
    p = data_limited_optimum(CH, LOSS_30B, eq6_cost(17.5e9), 2e12)
    r = limit_record(p, 2e12, True)
    assert r["binding"] is True and r["max_train_tokens"] == 2e12 and r["r_d_star"] == R_D_STAR
    assert r["unique_tokens_used"] == 2e12 and r["epochs"] == p.epochs
    assert "Muennighoff" in r["source"]
