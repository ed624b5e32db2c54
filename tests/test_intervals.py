"""Honest intervals (calibrate.profile.tokencost): replicated synthetic runs with known between-run noise,
the 95 % interval of the per-token costs covers the truth in 90-99 % of 200 simulated profiles;
one run per point resamples its time blocks; a misfit the additive model cannot explain widens
the interval."""

from __future__ import annotations

import numpy as np

from calibrate.profile.tokencost import fit_token_costs, misfit_shift, replicate_dof, resample_strata, t_scale

A, B = 2e-4, 3e-3  # device-seconds per input / decode token
MIXES = ((512.0, 0.0), (8.0, 63.0), (70.0, 214.0))  # (input, decode) tokens per request: prefill, decode, mixed


def synthetic_profile(rng, *, replicates=3, sigma=0.03, n_requests=100, misfit=(0.0, 0.0, 0.0)):
    """Per-run totals (R, 3) = (device-seconds, input, decode) and stratum labels; each run's
    device time is the truth times (1 + misfit of its mix) times (1 + sigma x N(0, 1))."""
    rows, strata = [], []
    for k, (i, o) in enumerate(MIXES):
        for _ in range(replicates):
            cost = (A * i + B * o) * n_requests * (1 + misfit[k]) * (1 + sigma * rng.standard_normal())
            rows.append((cost, i * n_requests, o * n_requests))
            strata.append(k)
    return np.array(rows), strata


def interval(obs, strata, rng, n_boot=1000, carry=True):
    """The intervals of a and b as calibrate.profile.tokencost.joint_costs makes them."""
    a, b = fit_token_costs(obs[:, 0], obs[:, 1], obs[:, 2])
    boot = resample_strata(obs, strata, n_boot, rng)
    cost = misfit_shift(obs[:, 0], obs[:, 1], obs[:, 2], strata, a, b, boot[..., 0], rng) if carry else boot[..., 0]
    ba, bb = fit_token_costs(cost, boot[..., 1], boot[..., 2])
    ka, kb = t_scale(replicate_dof(lambda c: np.stack(fit_token_costs(c, obs[:, 1], obs[:, 2]), -1), obs[:, 0], strata))
    ba, bb = a + ka * (ba - a), b + kb * (bb - b)
    return (a, *np.percentile(ba, [2.5, 97.5])), (b, *np.percentile(bb, [2.5, 97.5]))


def test_95_percent_interval_covers_the_truth_90_to_99_percent():
    rng = np.random.default_rng(2026)
    hits = np.zeros(2)
    n = 200
    for _ in range(n):
        obs, strata = synthetic_profile(rng)
        (a, alo, ahi), (b, blo, bhi) = interval(obs, strata, rng)
        hits += [alo <= A <= ahi, blo <= B <= bhi]
    cover = hits / n
    assert np.all((0.90 <= cover) & (cover <= 0.99)), cover


def test_plain_bootstrap_of_three_replicates_undercovers():
    """Why the scalings: a plain bootstrap of three replicates per mix covers well under 90 %."""
    rng = np.random.default_rng(7)
    hits = 0
    for _ in range(200):
        obs, strata = synthetic_profile(rng)
        m = np.array(strata)
        boot = np.empty((1000,) + obs.shape)
        for k in set(strata):
            idx = np.flatnonzero(m == k)
            boot[:, idx] = obs[idx][rng.integers(0, len(idx), size=(1000, len(idx)))]
        ba, _ = fit_token_costs(boot[..., 0], boot[..., 1], boot[..., 2])
        lo, hi = np.percentile(ba, [2.5, 97.5])
        hits += lo <= A <= hi
    assert hits / 200 < 0.90


def test_misfit_widens_the_interval():
    """A mix the additive model misprices by 10 % (e.g. its context is longer than the decode runs')
    widens the interval instead of vanishing in it."""
    rng = np.random.default_rng(3)
    obs, strata = synthetic_profile(rng, sigma=0.005, misfit=(0.0, 0.0, 0.10))
    _, (_, lo0, hi0) = interval(obs, strata, np.random.default_rng(1))  # b: the decode-heavy mixes carry it
    _, (_, lo1, hi1) = interval(obs, strata, np.random.default_rng(1), carry=False)
    assert (hi0 - lo0) > 3 * (hi1 - lo1)


def test_single_run_resamples_its_time_blocks():
    obs = np.array([[10.0, 100.0, 0.0]])
    blocks = np.array([[4.0, 50.0, 0.0], [6.0, 50.0, 0.0]])
    boot = resample_strata(obs, [0], 500, np.random.default_rng(0), blocks={0: blocks})
    assert set(np.round(boot[:, 0, 0], 6)) == {8.0, 10.0, 12.0}
    fixed = resample_strata(obs, [0], 5, np.random.default_rng(0))
    assert np.all(fixed == obs)
