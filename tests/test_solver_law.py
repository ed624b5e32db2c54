"""solver.optimize.laws: Eq. 1 of Sardana et al. 2024 and its closed-form inverses."""

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from solver.optimize import laws as L

CH = L.DEFAULT_LAW


def test_default_is_the_papers_coefficients():
    assert (CH.A, CH.B, CH.E, CH.alpha, CH.beta) == (406.4, 410.7, 1.69, 0.336, 0.283)
    assert CH.name == "chinchilla"


def test_named_sets_and_sources():
    assert L.get_law("HOFFMANN-rounded").alpha == 0.34
    assert L.get_law("sardana-all").B == 138.9
    assert L.get_law("sardana-le100").E == 0.17
    assert L.get_law("besiroglu2024").E == pytest.approx(1.8172)
    for law in L.LAWS.values():
        assert law.source


def test_unknown_law_lists_names():
    with pytest.raises(ValueError, match="chinchilla.*sardana-all"):
        L.get_law("kaplan")


def test_loss_of_1b_chinchilla_model_matches_table2():
    # Table 2 row 1: a 1B Chinchilla-style model is trained on 27.4B tokens and reaches loss 2.53.
    d = L.chinchilla_tokens_for_params(CH, 1e9)
    assert float(d) == pytest.approx(27.4e9, rel=2e-3)
    assert float(L.loss(CH, 1e9, d)) == pytest.approx(2.53, abs=2e-3)
    assert float(L.chinchilla_loss_for_params(CH, 1e9)) == pytest.approx(float(L.loss(CH, 1e9, d)), rel=1e-14)


def test_chinchilla_split_is_alpha_x_equals_beta_y():
    n = np.array([1e8, 7e9, 7e10])
    d = L.chinchilla_tokens_for_params(CH, n)
    x, y = CH.A * n ** -CH.alpha, CH.B * d ** -CH.beta
    np.testing.assert_allclose(CH.alpha * x, CH.beta * y, rtol=1e-13)


def test_chinchilla_point_minimises_training_compute():
    loss = 2.1
    n_c = float(L.chinchilla_params_for_loss(CH, loss))
    for factor in (0.8, 0.95, 1.05, 1.3):
        n = n_c * factor
        assert n * float(L.tokens_for_loss(CH, loss, n)) > n_c * float(L.chinchilla_tokens_for_loss(CH, loss))


@settings(max_examples=200, deadline=None)
@given(n=st.floats(1e6, 1e13), d=st.floats(1e8, 1e15))
def test_inverses_round_trip(n, d):
    loss = float(L.loss(CH, n, d))
    assert float(L.params_for_loss(CH, loss, d)) == pytest.approx(n, rel=1e-8)
    assert float(L.tokens_for_loss(CH, loss, n)) == pytest.approx(d, rel=1e-8)
    assert loss > float(L.min_loss_for_params(CH, n))


@settings(max_examples=200, deadline=None)
@given(n=st.floats(1e6, 1e13))
def test_chinchilla_params_for_loss_round_trip(n):
    loss = float(L.chinchilla_loss_for_params(CH, n))
    assert float(L.chinchilla_params_for_loss(CH, loss)) == pytest.approx(n, rel=1e-11)


def test_unreachable_gives_nan_and_check_names_e():
    assert math.isnan(float(L.tokens_for_loss(CH, 2.0, 1e3)))  # A/N^a alone exceeds L - E
    assert math.isnan(float(L.chinchilla_params_for_loss(CH, 1.5)))
    with pytest.raises(ValueError, match=r"1\.69"):
        L.check_reachable(CH, [2.0, 1.69])


def test_vectorised_shapes():
    out = L.loss(CH, np.ones((3, 1)) * 1e9, np.ones((1, 4)) * 1e10)
    assert out.shape == (3, 4)


def test_law_file_and_resolve(tmp_path):
    p = tmp_path / "fit.json"
    p.write_text(json.dumps({"schema_version": 1, "kind": "loss_law", "name": "myfit", "A": 100.0, "B": 200.0,
                             "E": 1.5, "alpha": 0.3, "beta": 0.3, "intervals": None, "provenance": {"tool": "t"}}))
    law = L.resolve_law(str(p))
    assert (law.name, law.A, law.E) == ("myfit", 100.0, 1.5)
    assert L.resolve_law(None) is CH
    assert L.resolve_law("chinchilla") is CH


@pytest.mark.parametrize("content, match", [
    ("[1, 2]", "JSON object"),
    ('{"A": 1, "B": 1, "E": 1, "alpha": 1}', "beta: Field required"),
    ('{"A": -1, "B": 1, "E": 1, "alpha": 1, "beta": 1}', "A: Input should be greater than 0"),
    ('{"A": "x", "B": 1, "E": 1, "alpha": 1, "beta": 1}', "A: Input should be a valid number"),
    ('{"A": 1, "B": 1, "E": 1, "alpha": 1, "beta": 1, "gamma": 2}', "gamma: Extra inputs are not permitted"),
    ('{"A": 1, "B": 1, "E": 1, "alpha": 1, "beta": Infinity}', "beta: Input should be a finite number"),
    ("{", "not JSON"),
])
def test_bad_law_files(tmp_path, content, match):
    p = tmp_path / "bad.json"
    p.write_text(content)
    with pytest.raises(ValueError, match=match) as exc:
        L.load_law_file(p)
    assert str(p) in str(exc.value) and "\n" not in str(exc.value)  # one line naming the file
