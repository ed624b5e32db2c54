"""calibrate.law.formula: Eq. 1, its terms, derivatives and inverses (the one home of the formula)."""

from __future__ import annotations

import numpy as np
import pytest

from calibrate.law import formula as L
from calibrate.law.formula import LawCoefficients

CHINCHILLA = LawCoefficients(A=406.4, B=410.7, E=1.69, alpha=0.336, beta=0.283)


def test_loss_is_the_sum_of_its_terms():
    n, d = np.array([1e8, 7e9]), np.array([2e9, 2e12])
    assert np.allclose(L.loss(CHINCHILLA, n, d), 1.69 + 406.4 / n**0.336 + 410.7 / d**0.283, rtol=1e-14)
    assert np.allclose(CHINCHILLA.loss(n, d), L.loss(CHINCHILLA, n, d), rtol=0)
    assert np.allclose(L.min_loss_for_params(CHINCHILLA, n), 1.69 + L.params_term(CHINCHILLA, n), rtol=0)


@pytest.mark.parametrize("n, d", [(1e8, 2e9), (7e9, 1.4e11), (7e10, 5e12)])
def test_derivatives_match_central_differences(n, d):
    h = 1e-6
    num_n = (L.loss(CHINCHILLA, n * (1 + h), d) - L.loss(CHINCHILLA, n * (1 - h), d)) / (2 * h * n)
    num_d = (L.loss(CHINCHILLA, n, d * (1 + h)) - L.loss(CHINCHILLA, n, d * (1 - h))) / (2 * h * d)
    assert L.dloss_dparams(CHINCHILLA, n) == pytest.approx(num_n, rel=1e-5)
    assert L.dloss_dtokens(CHINCHILLA, d) == pytest.approx(num_d, rel=1e-5)


def test_inverses_round_trip_and_nan_where_unreachable():
    n, d = 7e9, 1.4e11
    target = float(L.loss(CHINCHILLA, n, d))
    assert L.params_for_loss(CHINCHILLA, target, d) == pytest.approx(n, rel=1e-9)
    assert L.tokens_for_loss(CHINCHILLA, target, n) == pytest.approx(d, rel=1e-9)
    assert np.isnan(L.params_for_loss(CHINCHILLA, 1.7, 1e6))  # D alone already above the target


def test_chinchilla_curve_balances_the_terms():
    n = 1e9
    d = L.chinchilla_tokens_for_params(CHINCHILLA, n)
    assert 0.336 * L.params_term(CHINCHILLA, n) == pytest.approx(0.283 * L.tokens_term(CHINCHILLA, d), rel=1e-12)
    target = L.chinchilla_loss_for_params(CHINCHILLA, n)
    assert target == pytest.approx(L.loss(CHINCHILLA, n, d), rel=1e-12)
    assert L.chinchilla_params_for_loss(CHINCHILLA, target) == pytest.approx(n, rel=1e-9)
    assert L.chinchilla_tokens_for_loss(CHINCHILLA, target) == pytest.approx(d, rel=1e-9)


def test_check_reachable_names_the_bad_loss():
    with pytest.raises(ValueError, match=r"loss 1\.5 is unreachable.*E = 1\.69"):
        L.check_reachable(CHINCHILLA, [2.0, 1.5])
