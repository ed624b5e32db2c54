"""Fit the loss law L(N, D) = E + A/N^alpha + B/D^beta (paper Eq. 1, calibrate.law.formula) by the paper's Eq. 4.

Sardana et al. 2024, Sec. 5, follow Hoffmann et al. 2022 (App. D.2): with A, B, E = exp(a), exp(b),
exp(e), minimise over (a, b, e, alpha, beta)

    sum_i Huber_delta( LSE(a - alpha log N_i, b - beta log D_i, e) - log L_i ),   delta = 1e-3   (Eq. 4)

with L-BFGS started from a grid of points. Besiroglu et al. 2024 ("Chinchilla scaling: a replication
attempt") use the same objective, exclude the 5 highest-loss points of Hoffmann's Figure 4 and put
95 % intervals on the coefficients by bootstrapping (4000 resamples of the rows).

How this module makes that fast (the straightforward way, numerical gradients from each of the 4500
grid points, takes minutes per fit):
- the objective and its gradient are computed analytically and vectorised over the rows (the
  gradient of the LSE is the softmax of its three terms, the derivative of the Huber loss is the
  residual clipped to [-delta, delta]);
- the objective is divided by delta. The minimiser is unchanged; the values become O(sum |r|)
  instead of O(1e-3 sum |r|), so L-BFGS's stopping tolerances mean what they say;
- the grid is screened: the objective is evaluated at every grid point at once (one array
  operation) and L-BFGS is run from the `n_starts` best of them (all of them with n_starts=None).
  On both published data sets the best 20 already reach the same minimum as all 4500;
- a bootstrap resample is a multinomial count vector over the rows (the same as drawing rows with
  replacement), used as weights; each resample's fit starts from the full-data minimum (a
  resample's objective is a small perturbation of the full-data one, so its minimum sits near the
  full-data minimum). Optionally (`extra_starts`) it also starts from the next-best distinct local
  minima of the full-data fit, in case a resample makes another basin the best; `LawBootstrap`
  counts how often such a start found a genuinely lower minimum. On the Epoch data with 4000
  resamples and one extra start that never happened and the intervals were identical, so the
  default is the warm start alone, which halves the time.

Pure functions; nothing here prints or writes.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import minimize

from calibrate.law.formula import COEFFICIENT_NAMES, LawCoefficients

HUBER_DELTA = 1e-3  # Eq. 4 (Sardana et al. 2024, Hoffmann et al. 2022)

# Hoffmann et al. 2022 App. D.2 grid of starting points, also used by the paper's released
# huber_optimize.py and by Besiroglu et al. 2024: 5 * 5 * 5 * 6 * 6 = 4500 starts.
GRID_ALPHA = (0.0, 0.5, 1.0, 1.5, 2.0)
GRID_BETA = (0.0, 0.5, 1.0, 1.5, 2.0)
GRID_E = (-1.0, -0.5, 0.0, 0.5, 1.0)
GRID_A = (0.0, 5.0, 10.0, 15.0, 20.0, 25.0)
GRID_B = (0.0, 5.0, 10.0, 15.0, 20.0, 25.0)

DEFAULT_N_STARTS = 64  # L-BFGS runs from the best-screened grid points (None: all 4500)

# Tight tolerances: with the objective scaled by 1/delta, scipy's defaults stop while the
# coefficients still move in the third digit along the flat valley of the (nearly L1) objective.
_LBFGS_OPTIONS = {"maxiter": 3000, "ftol": 1e-14, "gtol": 1e-10}
_SAME_OPTIMUM_REL = 1e-6  # two local minima whose objectives agree this well are the same one


@dataclass(frozen=True)
class LawFit:
    """The Eq. 4 minimum over a grid of L-BFGS starts."""

    coefficients: LawCoefficients
    objective: float  # sum_i Huber_delta(r_i) / delta at the minimum
    delta: float
    n_points: int  # rows fitted (after exclusions)
    excluded_rows: tuple[int, ...]  # indices into the input of the rows left out (highest loss)
    n_grid_points: int
    n_starts: int  # L-BFGS runs made
    n_starts_at_minimum: int  # runs that ended at the best objective (a measure of robustness)
    local_minima: tuple[tuple[float, ...], ...]  # distinct end points (a, b, e, alpha, beta), best first
    kept_rows: tuple[int, ...] = field(repr=False, default=())


@dataclass(frozen=True)
class LawBootstrap:
    """Percentile bootstrap over rows (resampled with replacement)."""

    n_boot: int
    seed: int
    confidence: float
    intervals: dict[str, tuple[float, float]]  # {"A": (low, high), ...}
    n_extra_starts: int  # extra starts per resample besides the full-data minimum
    n_won_by_extra_start: int  # resamples whose best minimum came from an extra start
    samples: np.ndarray = field(repr=False, compare=False)  # (n_boot, 5) in COEFFICIENT_NAMES order


def validate_law_data(n_params, train_tokens, loss) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return the three columns as float arrays, or raise ValueError naming the bad column and row."""
    columns = {"params": n_params, "tokens": train_tokens, "loss": loss}
    arrays = {}
    lengths = set()
    for name, values in columns.items():
        arr = np.asarray(values, dtype=float).ravel()
        bad = np.flatnonzero(~np.isfinite(arr))
        if bad.size:
            raise ValueError(f"{name}: non-finite value {arr[bad[0]]!r} at row {int(bad[0])}; all values must be finite and > 0")
        bad = np.flatnonzero(arr <= 0)
        if bad.size:
            raise ValueError(f"{name}: non-positive value {arr[bad[0]]!r} at row {int(bad[0])}; all values must be > 0")
        arrays[name] = arr
        lengths.add(arr.size)
    if len(lengths) != 1:
        raise ValueError(f"params, tokens and loss have different lengths {sorted(lengths)}")
    n = lengths.pop()
    if n < 5:
        raise ValueError(f"{n} rows: the law has 5 coefficients, need at least 5 rows")
    return arrays["params"], arrays["tokens"], arrays["loss"]


def start_grid() -> np.ndarray:
    """The 4500 starting points (a, b, e, alpha, beta) of Hoffmann et al. 2022 App. D.2."""
    return np.array(
        [(a, b, e, al, be) for al, be, e, a, b in itertools.product(GRID_ALPHA, GRID_BETA, GRID_E, GRID_A, GRID_B)],
        dtype=float,
    )


def huber_objective(theta, log_n, log_d, log_loss, weights, delta: float = HUBER_DELTA) -> tuple[float, np.ndarray]:
    """Eq. 4 divided by delta, and its analytic gradient in (a, b, e, alpha, beta).

    r_i = LSE(a - alpha x_i, b - beta y_i, e) - z_i with x = log N, y = log D, z = log L;
    d r_i / d(a, b, e) = softmax weights (p1, p2, p3), d r_i / d alpha = -p1 x_i, d r_i / d beta = -p2 y_i;
    Huber'(r) = clip(r, -delta, delta). `weights` are per-row multiplicities (bootstrap counts).
    """
    a, b, e, alpha, beta = theta
    t1 = a - alpha * log_n
    t2 = b - beta * log_d
    m = np.maximum(np.maximum(t1, t2), e)  # shift for a stable LSE
    p1 = np.exp(t1 - m)
    p2 = np.exp(t2 - m)
    p3 = np.exp(e - m)
    s = p1 + p2 + p3
    r = m + np.log(s) - log_loss
    abs_r = np.abs(r)
    huber = np.where(abs_r <= delta, 0.5 * r * r, delta * (abs_r - 0.5 * delta))
    psi = np.clip(r, -delta, delta) * weights / s
    g1 = psi @ p1
    g2 = psi @ p2
    grad = np.array([g1, g2, psi @ p3, -(psi * p1) @ log_n, -(psi * p2) @ log_d]) / delta
    return float(weights @ huber) / delta, grad


def grid_objectives(starts, log_n, log_d, log_loss, delta: float = HUBER_DELTA) -> np.ndarray:
    """Eq. 4 / delta at many points at once: starts (k, 5) -> (k,). Used to screen the start grid."""
    starts = np.asarray(starts, dtype=float)
    t1 = starts[:, 0:1] - starts[:, 3:4] * log_n
    t2 = starts[:, 1:2] - starts[:, 4:5] * log_d
    pred = np.logaddexp(np.logaddexp(t1, t2), starts[:, 2:3])
    abs_r = np.abs(pred - log_loss)
    huber = np.where(abs_r <= delta, 0.5 * abs_r * abs_r, delta * (abs_r - 0.5 * delta))
    return huber.sum(axis=1) / delta


def _one_blas_thread():
    """Limit BLAS to one thread while L-BFGS runs.

    Why: L-BFGS-B's 5-dimensional linear algebra gains nothing from threads, and waking
    OpenBLAS's threads on a busy 2-core machine cost ~10 ms per iteration (measured: one fit
    385 ms with default threads, 4 ms with one). `python -m calibrate` also sets
    OPENBLAS_NUM_THREADS=1 before numpy loads.
    """
    from threadpoolctl import threadpool_limits  # a declared dependency (pyproject.toml)

    return threadpool_limits(limits=1, user_api="blas")


def _lbfgs(theta0, log_n, log_d, log_loss, weights, delta):
    return minimize(
        huber_objective,
        np.asarray(theta0, dtype=float),
        args=(log_n, log_d, log_loss, weights, delta),
        jac=True,
        method="L-BFGS-B",
        options=_LBFGS_OPTIONS,
    )


def rows_kept(loss: np.ndarray, exclude_highest_loss: int) -> np.ndarray:
    """Indices of the rows left after dropping the K highest-loss ones (Besiroglu et al. drop 5)."""
    if exclude_highest_loss < 0:
        raise ValueError(f"exclude_highest_loss={exclude_highest_loss}: must be >= 0")
    if exclude_highest_loss >= loss.size - 4:
        raise ValueError(
            f"exclude_highest_loss={exclude_highest_loss} leaves {loss.size - exclude_highest_loss} of {loss.size} rows; need at least 5"
        )
    order = np.argsort(loss, kind="stable")
    return np.sort(order[: loss.size - exclude_highest_loss])


def fit_law(
    n_params,
    train_tokens,
    loss,
    *,
    exclude_highest_loss: int = 0,
    delta: float = HUBER_DELTA,
    n_starts: int | None = DEFAULT_N_STARTS,
) -> LawFit:
    """Minimise Eq. 4 by L-BFGS from the best `n_starts` points of the App. D.2 grid (None: all)."""
    if not delta > 0:
        raise ValueError(f"delta={delta}: must be > 0")
    n_params, train_tokens, loss = validate_law_data(n_params, train_tokens, loss)
    keep = rows_kept(loss, exclude_highest_loss)
    log_n, log_d, log_loss = np.log(n_params[keep]), np.log(train_tokens[keep]), np.log(loss[keep])
    weights = np.ones(keep.size)

    grid = start_grid()
    screened = grid_objectives(grid, log_n, log_d, log_loss, delta)
    order = np.argsort(screened, kind="stable")
    if n_starts is not None:
        if n_starts < 1:
            raise ValueError(f"n_starts={n_starts}: must be >= 1 or None (all {grid.shape[0]} grid points)")
        order = order[:n_starts]

    ends = []
    with _one_blas_thread():
        for theta0 in grid[order]:
            res = _lbfgs(theta0, log_n, log_d, log_loss, weights, delta)
            if np.all(np.isfinite(res.x)) and np.isfinite(res.fun):
                ends.append((float(res.fun), tuple(float(v) for v in res.x)))
    if not ends:
        raise ValueError("no L-BFGS start reached a finite minimum")
    ends.sort(key=lambda t: t[0])
    best_fun = ends[0][0]
    tol = _SAME_OPTIMUM_REL * max(1.0, abs(best_fun))
    n_at_min = sum(1 for f, _ in ends if f - best_fun <= tol)
    distinct: list[tuple[float, tuple[float, ...]]] = []
    for f, x in ends:
        if all(abs(f - g) > _SAME_OPTIMUM_REL * max(1.0, abs(g)) for g, _ in distinct):
            distinct.append((f, x))
    excluded = tuple(int(i) for i in np.setdiff1d(np.arange(loss.size), keep))
    return LawFit(
        coefficients=LawCoefficients.from_theta(ends[0][1]),
        objective=best_fun,
        delta=delta,
        n_points=int(keep.size),
        excluded_rows=excluded,
        n_grid_points=int(grid.shape[0]),
        n_starts=len(order),
        n_starts_at_minimum=n_at_min,
        local_minima=tuple(x for _, x in distinct),
        kept_rows=tuple(int(i) for i in keep),
    )


def bootstrap_law(
    n_params,
    train_tokens,
    loss,
    fit: LawFit,
    *,
    n_boot: int = 4000,
    seed: int = 0,
    extra_starts: int = 0,
    confidence: float = 0.95,
) -> LawBootstrap:
    """Percentile intervals of the Eq. 4 coefficients over `n_boot` row resamples.

    Uses the rows `fit` kept (exclusions are decided once, on the full data). Each resample is
    fitted from the full-data minimum and from up to `extra_starts` other distinct local minima
    of the full-data fit; the lowest objective wins.
    """
    if n_boot < 2:
        raise ValueError(f"n_boot={n_boot}: must be >= 2")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence={confidence}: must be in (0, 1)")
    if extra_starts < 0:
        raise ValueError(f"extra_starts={extra_starts}: must be >= 0")
    n_params, train_tokens, loss = validate_law_data(n_params, train_tokens, loss)
    keep = np.asarray(fit.kept_rows, dtype=int)
    log_n, log_d, log_loss = np.log(n_params[keep]), np.log(train_tokens[keep]), np.log(loss[keep])
    n = keep.size
    rng = np.random.default_rng(seed)
    counts = rng.multinomial(n, np.full(n, 1.0 / n), size=n_boot)  # = drawing n rows with replacement
    starts = [np.asarray(x) for x in fit.local_minima[: 1 + extra_starts]]

    samples = np.empty((n_boot, 5))
    won_by_extra = 0
    with _one_blas_thread():
        for i in range(n_boot):
            rows = np.flatnonzero(counts[i])  # rows drawn at least once; the others weigh nothing
            args = (log_n[rows], log_d[rows], log_loss[rows], counts[i, rows].astype(float), fit.delta)
            best, best_k, warm_fun = None, 0, np.inf
            for k, theta0 in enumerate(starts):
                res = _lbfgs(theta0, *args)
                if not (np.all(np.isfinite(res.x)) and np.isfinite(res.fun)):
                    continue
                if k == 0:
                    warm_fun = res.fun
                if best is None or res.fun < best.fun:
                    best, best_k = res, k
            if best is None:
                samples[i] = np.nan
                continue
            # an extra start "wins" only if it found a genuinely lower minimum, not the same one polished
            won_by_extra += best_k > 0 and best.fun < warm_fun - _SAME_OPTIMUM_REL * max(1.0, abs(warm_fun))
            c = LawCoefficients.from_theta(best.x)
            samples[i] = [getattr(c, name) for name in COEFFICIENT_NAMES]
    ok = np.all(np.isfinite(samples), axis=1)
    tail = 100 * (1 - confidence) / 2
    low = np.percentile(samples[ok], tail, axis=0)
    high = np.percentile(samples[ok], 100 - tail, axis=0)
    intervals = {name: (float(low[j]), float(high[j])) for j, name in enumerate(COEFFICIENT_NAMES)}
    return LawBootstrap(
        n_boot=int(ok.sum()),
        seed=seed,
        confidence=confidence,
        intervals=intervals,
        n_extra_starts=len(starts) - 1,
        n_won_by_extra_start=int(won_by_extra),
        samples=samples[ok],
    )
