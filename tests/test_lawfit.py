"""calibrate.law.fit: the paper's Eq. 4 fit against synthetic data and the two published fits."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from calibrate.law.fit import (
    bootstrap_law,
    fit_law,
    grid_objectives,
    huber_objective,
    rows_kept,
    start_grid,
    validate_law_data,
)
from calibrate.law.formula import COEFFICIENT_NAMES, LawCoefficients

# The package's copy of the public data (calibrate/data/README.md names the sources); CI also has
# shared/ beside the repo with the same files.
DATA = Path(__file__).resolve().parents[1] / "calibrate" / "data"
SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
SARDANA_CSV = DATA / "sardana2024_training_runs.csv"
EPOCH_CSV = DATA / "epoch2024_chinchilla_svg_extracted.csv"

# Sardana et al. 2024 Table 1 "All Data"; Besiroglu et al. 2024's refit of Hoffmann et al.'s Figure 4.
PAPER_TABLE1_ALL = {"alpha": 0.18, "beta": 0.24, "A": 33.66, "B": 138.9, "E": 1.45}
BESIROGLU_REFIT = {"E": 1.82, "A": 482.01, "B": 2085.43, "alpha": 0.3478, "beta": 0.3658}


def rel_err(got: float, want: float) -> float:
    return abs(got - want) / abs(want)


@pytest.fixture(scope="module")
def epoch_data():
    df = pd.read_csv(EPOCH_CSV)
    n = df["Model Size"].to_numpy()
    return n, df["Training FLOP"].to_numpy() / (6 * n), df["loss"].to_numpy()


@pytest.fixture(scope="module")
def epoch_fit(epoch_data):
    return fit_law(*epoch_data, exclude_highest_loss=5)


@pytest.fixture(scope="module")
def sardana_fit():
    df = pd.read_csv(SARDANA_CSV)
    return fit_law(df["Parameters"], df["Tokens"], df["Smoothed Loss"])


def test_package_copy_matches_shared_data():
    if not SHARED_DATA.is_dir():
        pytest.skip(f"{SHARED_DATA} absent (shared/ is not beside this checkout)")
    for name in (SARDANA_CSV.name, EPOCH_CSV.name):
        assert (DATA / name).read_bytes() == (SHARED_DATA / name).read_bytes(), name


def test_gradient_matches_finite_differences():
    rng = np.random.default_rng(1)
    log_n, log_d = rng.uniform(18, 23, 50), rng.uniform(20, 26, 50)
    log_loss = np.log(rng.uniform(2, 4, 50))
    weights = rng.integers(0, 3, 50).astype(float)
    theta = np.array([6.0, 7.5, 0.4, 0.32, 0.29])
    _, grad = huber_objective(theta, log_n, log_d, log_loss, weights)
    h = 1e-6
    numeric = [(huber_objective(theta + h * e, log_n, log_d, log_loss, weights)[0]
                - huber_objective(theta - h * e, log_n, log_d, log_loss, weights)[0]) / (2 * h) for e in np.eye(5)]
    np.testing.assert_allclose(grad, numeric, rtol=1e-5, atol=1e-6)


def test_objective_is_eq4_over_delta_and_grid_agrees():
    rng = np.random.default_rng(2)
    log_n, log_d = rng.uniform(18, 23, 30), rng.uniform(20, 26, 30)
    log_loss = np.log(rng.uniform(2, 4, 30))
    theta = np.array([5.0, 6.0, 0.5, 0.3, 0.3])
    a, b, e, al, be = theta
    r = np.log(np.exp(a - al * log_n) + np.exp(b - be * log_d) + np.exp(e)) - log_loss
    delta = 1e-3
    huber = np.where(np.abs(r) <= delta, 0.5 * r**2, delta * (np.abs(r) - 0.5 * delta))
    f, _ = huber_objective(theta, log_n, log_d, log_loss, np.ones(30), delta)
    assert f == pytest.approx(huber.sum() / delta, rel=1e-12)
    assert grid_objectives(theta[None, :], log_n, log_d, log_loss, delta)[0] == pytest.approx(f, rel=1e-12)


def test_start_grid_is_hoffmann_app_d2():
    g = start_grid()
    assert g.shape == (4500, 5)
    assert sorted(set(g[:, 0])) == [0, 5, 10, 15, 20, 25] and sorted(set(g[:, 3])) == [0, 0.5, 1, 1.5, 2]
    assert sorted(set(g[:, 2])) == [-1, -0.5, 0, 0.5, 1]


def test_recovers_known_coefficients_from_noisy_synthetic_data():
    truth = LawCoefficients(A=406.4, B=410.7, E=1.69, alpha=0.336, beta=0.283)
    rng = np.random.default_rng(0)
    n = np.exp(rng.uniform(np.log(5e7), np.log(2e10), 300))
    d = n * np.exp(rng.uniform(np.log(2), np.log(2000), 300))
    loss = truth.loss(n, d) * np.exp(rng.normal(0, 0.003, 300))  # 0.3 % multiplicative noise
    fit = fit_law(n, d, loss, n_starts=16)
    for name in COEFFICIENT_NAMES:
        assert rel_err(getattr(fit.coefficients, name), getattr(truth, name)) < 0.05, name
    boot = bootstrap_law(n, d, loss, fit, n_boot=60, seed=3)
    for name in ("E", "alpha", "beta"):  # the well-identified ones; A, B intervals are wide but also checked
        low, high = boot.intervals[name]
        assert low <= getattr(fit.coefficients, name) <= high
    for name in COEFFICIENT_NAMES:
        low, high = boot.intervals[name]
        assert low < high
        assert low * 0.9 <= getattr(truth, name) <= high * 1.1, name


def test_besiroglu_refit_within_3_percent(epoch_fit):
    assert epoch_fit.n_points == 240 and len(epoch_fit.excluded_rows) == 5
    got = epoch_fit.coefficients.as_dict()
    for name, want in BESIROGLU_REFIT.items():
        assert rel_err(got[name], want) < 0.03, (name, got[name], want)


def test_paper_table1_all_data(sardana_fit):
    """Table 1 "All Data" from the 47 released runs.

    The Eq. 4 minimum on the released CSV is alpha=0.1788, beta=0.2316, A=35.39, B=133.0, E=1.463:
    alpha and E are within 1 % of the table, beta, A and B 3.5 %, 5.1 % and 4.2 % away. The objective
    is nearly flat along a valley: the released huber_optimize.py procedure (numerical gradients, scipy
    defaults, all 4500 starts) ends at points whose objectives agree to 1e-5 relative yet span
    A 31.7-40.8, B 115-145, beta 0.224-0.236, and the table's row is one such point (see
    docs/calibrate-law.md). So this test holds alpha and E to 3 %, beta, A, B to 6 %, and pins our
    converged minimum so that a change in the optimiser cannot move it unnoticed.
    """
    got = sardana_fit.coefficients.as_dict()
    assert sardana_fit.n_points == 47
    for name in ("alpha", "E"):
        assert rel_err(got[name], PAPER_TABLE1_ALL[name]) < 0.03, name
    for name in ("beta", "A", "B"):
        assert rel_err(got[name], PAPER_TABLE1_ALL[name]) < 0.06, name
    ours = {"alpha": 0.17884, "beta": 0.23160, "A": 35.388, "B": 133.02, "E": 1.46296}
    for name, want in ours.items():
        assert rel_err(got[name], want) < 2e-3, name


def test_more_starts_do_not_find_a_lower_minimum(epoch_data, epoch_fit):
    wider = fit_law(*epoch_data, exclude_highest_loss=5, n_starts=160)
    assert wider.objective >= epoch_fit.objective - 1e-9
    assert epoch_fit.n_starts_at_minimum >= 2  # the minimum is reached from several starts


def test_bootstrap_warm_start_intervals(epoch_data, epoch_fit):
    boot = bootstrap_law(*epoch_data, epoch_fit, n_boot=40, seed=7)
    assert boot.n_boot == 40 and boot.samples.shape == (40, 5)
    for name in COEFFICIENT_NAMES:
        low, high = boot.intervals[name]
        assert low < getattr(epoch_fit.coefficients, name) < high, name
    again = bootstrap_law(*epoch_data, epoch_fit, n_boot=40, seed=7)
    assert again.intervals == boot.intervals  # seeded


def test_exclusion_drops_highest_losses():
    loss = np.array([3.0, 5.0, 2.0, 4.0, 2.5, 2.2, 2.1])
    assert list(rows_kept(loss, 2)) == [0, 2, 4, 5, 6]
    with pytest.raises(ValueError, match="exclude_highest_loss"):
        rows_kept(loss, 3)


@pytest.mark.parametrize(
    "n, d, loss, match",
    [
        ([1e8] * 6, [1e9] * 6, [3.0, 3.0, np.nan, 3.0, 3.0, 3.0], "loss: non-finite"),
        ([1e8, 0, 1e8, 1e8, 1e8, 1e8], [1e9] * 6, [3.0] * 6, "params: non-positive"),
        ([1e8] * 6, [1e9] * 6, [3.0] * 5, "different lengths"),
        ([1e8] * 3, [1e9] * 3, [3.0] * 3, "at least 5 rows"),
    ],
)
def test_bad_data_is_refused(n, d, loss, match):
    with pytest.raises(ValueError, match=match):
        validate_law_data(n, d, loss)


def test_paper_table1_all_data_inside_bootstrap_intervals(sardana_fit):
    """The flat valley in numbers: the table's coefficients lie inside our 95 % bootstrap intervals."""
    df = pd.read_csv(SARDANA_CSV)
    boot = bootstrap_law(df["Parameters"], df["Tokens"], df["Smoothed Loss"], sardana_fit, n_boot=200, seed=0)
    for name, want in PAPER_TABLE1_ALL.items():
        low, high = boot.intervals[name]
        assert low <= want <= high, (name, low, want, high)
