"""Compute-optimal (Sardana et al. 2024, Eq. 3) and cost-optimal (Eq. 6) model size and data.

Both objectives have the same shape once the constants are gathered. At a fixed loss L(N, D) = l:

    Eq. 3:  6·N·D + 2·N·D_inf                                   = 6 · N · (D + r),  r = D_inf / 3
    Eq. 6:  6·N·D·C_tr/MFU_tr + 2·N·C_inf·(D_inp/MFU_inp + D_out/MFU_out)
                                                                = k · N · (D + r),  k = 6·C_tr/MFU_tr,
                                                                  r = 2·C_inf·(D_inp/MFU_inp + D_out/MFU_out) / k

so r is the lifetime inference cost expressed in training tokens, and one solver serves both.

Solving. Write x = A/N^alpha and y = B/D^beta (law.py), G = l - E = x + y. The Lagrange conditions
(paper Appendix A, Eqs. 10-12) reduce, with D = (B/y)^(1/beta), to one equation in y:

    (alpha + beta)·y + beta·r·y·(y/B)^(1/beta) = alpha·G                            (Eq. 12, in y)

The left side is strictly increasing in y, zero at y = 0 and above alpha·G at y = G, so the root is
unique. In u = ln y it is a sum of exponentials of u (convex, increasing): Newton's method started
to the right of the root never overshoots and converges monotonically. We start at the smaller of
the two one-term solutions (each term alone equal to alpha·G), which is within a factor 2 of the
root, and take Halley steps (Newton with a second-order correction, clipped to stay within a
factor 2 of Newton's step): 4-5 vectorised steps reach machine precision for every point at once.
With r = 0 the start point is the exact Chinchilla answer y = alpha·G/(alpha+beta).

Units: tokens and parameters are counts; `_flop` are counts of floating-point operations (paper
convention: 6·N per training token, 2·N per inference token); `_usd` are US dollars;
`usd_per_flop` prices one *useful* FLOP (price per hour / 3600 / achieved FLOP rate).
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from typing import Callable

import numpy as np

from core.errors import BadValue, InputError
from core.paper import PAPER, SECONDS_PER_HOUR
from solver.optimize.checks import (
    INFERENCE_FLOP_PER_PARAM_TOKEN,
    TOTAL_LIMIT,
    TRAIN_FLOP_PER_PARAM_TOKEN,
    _check_demand,
    _check_fraction,
    _check_positive,
    check_loss,
    check_totals,
)
from solver.optimize.laws import (
    DEFAULT_LAW,
    LossLaw,
    check_reachable,
    chinchilla_params_for_loss,
    chinchilla_tokens_for_loss,
)

__all__ = [
    "CostSettings",
    "InputError",
    "ModelPlan",
    "Comparison",
    "GeneralCostResult",
    "NoFeasibleModel",
    "check_loss",
    "check_totals",
    "optimal_params_tokens",
    "optimal_params_tokens_scalar",
    "optimize_flops",
    "optimize_cost",
    "optimize_cost_general",
    "usd_per_flop",
]


# --------------------------------------------------------------------------- inputs


def usd_per_flop(usd_per_h: float, flop_per_s: float) -> float:
    """Dollars per FLOP at a rate: usd_per_h / (3600 · flop_per_s) (Sardana et al. Sec. 6, C_tr and C_inf).

    For several devices pass their total price and total rate (the ratio is the same).
    """
    value = _check_positive("usd_per_h", usd_per_h) / (SECONDS_PER_HOUR * _check_positive("flop_per_s", flop_per_s))
    if not sys.float_info.min <= value <= TOTAL_LIMIT:
        why = f"gives {value!r} dollars per FLOP at {flop_per_s:.6g} FLOP/s"
        low = value < sys.float_info.min
        limit = (sys.float_info.min if low else TOTAL_LIMIT) * SECONDS_PER_HOUR * float(flop_per_s)
        raise BadValue("usd_per_h", float(usd_per_h), f"{why}; need a price and rate whose ratio is a normal "
                         f"number", why=why, limit=limit, upper=not low)
    return value


@dataclass(frozen=True)
class CostSettings:
    """The constants of Eq. 6, as dollars per *useful* FLOP of each phase and tokens per request.

    train_usd_per_flop = C_tr / MFU_tr, input_usd_per_flop = C_inf / MFU_inp,
    output_usd_per_flop = C_inf / MFU_out. Expressing them this way lets a calibration profile
    (achieved FLOP rate and price, no peak needed) stand in for the paper's assumed MFUs.
    """

    train_usd_per_flop: float
    input_usd_per_flop: float
    output_usd_per_flop: float
    input_tokens_per_request: float = PAPER.input_tokens_per_request
    output_tokens_per_request: float = PAPER.output_tokens_per_request

    def __post_init__(self) -> None:
        for key in ("train_usd_per_flop", "input_usd_per_flop", "output_usd_per_flop"):
            object.__setattr__(self, key, _check_positive(key, getattr(self, key)))
        for key in ("input_tokens_per_request", "output_tokens_per_request"):
            v = getattr(self, key)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
                raise BadValue(key, v, "need a finite number >= 0")
            object.__setattr__(self, key, float(v))
        if self.input_tokens_per_request + self.output_tokens_per_request <= 0:
            raise BadValue("input_tokens_per_request + output_tokens_per_request", 0.0,
                             "need at least one token per request")
        for tokens, cost in (("input_tokens_per_request", "input_usd_per_flop"),
                             ("output_tokens_per_request", "output_usd_per_flop")):
            t, c = getattr(self, tokens), getattr(self, cost)
            if t > 0 and math.log(t) + math.log(c) > math.log(TOTAL_LIMIT) - 2.0:
                why = f"with {t:.6g} tokens per request, a request's dollars per parameter leave float range"
                raise BadValue(cost, c, f"{why}; need {cost} <= {TOTAL_LIMIT / 10 / t:.3g}", why=why,
                                 limit=TOTAL_LIMIT / 10 / t)

    @classmethod
    def from_hardware(
        cls,
        *,
        train_usd_per_h: float,
        train_peak_flop_per_s: float,
        mfu_train: float,
        inference_usd_per_h: float,
        inference_peak_flop_per_s: float,
        mfu_input: float,
        mfu_output: float,
        input_tokens_per_request: float = PAPER.input_tokens_per_request,
        output_tokens_per_request: float = PAPER.output_tokens_per_request,
    ) -> "CostSettings":
        """Eq. 6 constants from GPU prices, dense peaks and MFUs: C = usd_per_h / (3600 · peak)."""
        c_tr = usd_per_flop(train_usd_per_h, train_peak_flop_per_s)
        c_inf = usd_per_flop(inference_usd_per_h, inference_peak_flop_per_s)
        return cls(
            train_usd_per_flop=c_tr / _check_fraction("mfu_train", mfu_train),
            input_usd_per_flop=c_inf / _check_fraction("mfu_input", mfu_input),
            output_usd_per_flop=c_inf / _check_fraction("mfu_output", mfu_output),
            input_tokens_per_request=input_tokens_per_request,
            output_tokens_per_request=output_tokens_per_request,
        )

    @property
    def tokens_per_request(self) -> float:
        return self.input_tokens_per_request + self.output_tokens_per_request

    def inference_usd_per_param_request(self) -> float:
        """Inference dollars per parameter per request: 2·(T_inp·c_inp + T_out·c_out)."""
        return INFERENCE_FLOP_PER_PARAM_TOKEN * (
            self.input_tokens_per_request * self.input_usd_per_flop
            + self.output_tokens_per_request * self.output_usd_per_flop
        )


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class ModelPlan:
    """A model (N params trained on D tokens) and its lifetime totals; arrays broadcast over the inputs.

    The `_usd` fields are None for the FLOP objective (Eq. 3).
    """

    params: np.ndarray
    train_tokens: np.ndarray
    loss: np.ndarray
    train_flop: np.ndarray
    inference_flop: np.ndarray
    total_flop: np.ndarray
    train_usd: np.ndarray | None = None
    inference_usd: np.ndarray | None = None
    total_usd: np.ndarray | None = None


@dataclass(frozen=True)
class Comparison:
    """The optimum of Eq. 3 or Eq. 6 next to the equal-loss Chinchilla-style model.

    saving_fraction = 1 - optimal_total / chinchilla_total of the objective (FLOP or USD).
    """

    objective: str  # "flops" | "cost"
    law: LossLaw
    optimal: ModelPlan
    chinchilla: ModelPlan
    saving_fraction: np.ndarray
    saving: np.ndarray  # chinchilla_total - optimal_total, in FLOP or USD
    inference_tokens: np.ndarray
    requests: np.ndarray | None = None


# --------------------------------------------------------------------------- the solver


def optimal_params_tokens(law: LossLaw, target_loss, r, *, max_iter: int = 60) -> tuple[np.ndarray, np.ndarray]:
    """(N*, D*) minimising N·(D + r) subject to L(N, D) = loss; vectorised, broadcasting loss and r.

    r >= 0 is the lifetime inference cost in training-token equivalents (D_inf/3 for Eq. 3).
    Safeguarded Halley/Newton in u = ln y on Eq. 12 (module docstring); relative accuracy ~1e-15 on y.
    """
    g = check_reachable(law, target_loss) - law.E
    r = _check_demand("r", r)
    a, b = law.alpha, law.beta
    p = 1.0 + 1.0 / b
    # h(u) = exp(lc1 + u) + exp(lc2 + p·u) - 1, zero at the optimum (Eq. 12 divided by alpha·G).
    # Logs are taken before broadcasting: on a grid they cost O(n) instead of O(n^2).
    lg = np.log(a * g)
    lc1 = math.log(a + b) - lg
    with np.errstate(divide="ignore"):
        lc2 = (np.log(b * r) - math.log(law.B) / b) - lg  # -inf where r == 0
    u = np.minimum(-lc1, -lc2 / p)  # right of the root: h(u) >= 0
    lc1, lc2, u = np.broadcast_arrays(lc1, lc2, u)
    u = np.array(u, dtype=float)  # writable, owns its memory
    e1, e2, h, h1, h2 = (np.empty_like(u) for _ in range(5))
    finishing = False
    for _ in range(max_iter):
        np.add(lc1, u, out=e1)
        np.exp(e1, out=e1)
        np.multiply(u, p, out=e2)
        e2 += lc2
        np.exp(e2, out=e2)
        np.add(e1, e2, out=h)
        h -= 1.0  # h
        np.multiply(e2, p, out=h1)
        h1 += e1  # h'
        np.multiply(e2, p * p, out=h2)
        h2 += e1  # h''
        # Halley's correction h·h''/(2h'^2) (cubic convergence), clipped so that a step is never more
        # than twice nor less than 2/3 of Newton's: keeps Newton's safe behaviour on this convex h.
        h2 *= h
        h2 /= h1
        h2 /= h1
        h2 *= 0.5
        np.clip(h2, -0.5, 0.5, out=h2)
        np.subtract(1.0, h2, out=h2)
        h2 *= h1
        np.divide(h, h2, out=h)  # the step
        u -= h
        if finishing:
            break
        # Once every step is below 1e-6 the next one is ~1e-17 (cubic): take it and stop.
        finishing = max(float(h.max()), -float(h.min())) < 1e-6
    # N and D from the two loss terms; D from ln y directly (one log fewer)
    params = np.exp((math.log(law.A) - np.log(np.subtract(g, np.exp(u)))) / a)
    tokens = np.exp((math.log(law.B) - u) / b)
    return params, tokens


def optimal_params_tokens_scalar(law: LossLaw, target_loss: float, r: float) -> tuple[float, float]:
    """Reference for one point: Brent's root of the paper's Eq. 12 in ln D, then N from the loss.

    Eq. 12 (with D_inf/3 -> r):  (E - l) + (beta·B/alpha + B)·D^-beta + (r·beta·B/alpha)·D^(-beta-1) = 0.
    Independent of the vectorised path (different variable, different method); used by tests and
    benchmarks/solver_grid.py.
    """
    from scipy.optimize import brentq

    g = float(check_reachable(law, target_loss)) - law.E
    r = float(_check_demand("r", r))
    a, b, B = law.alpha, law.beta, law.B
    c1 = (b * B / a + B) / g
    c2 = r * b * B / a / g

    def f(lnd: float) -> float:  # Eq. 12 divided by G, decreasing in ln D
        return c1 * math.exp(-b * lnd) + c2 * math.exp((-b - 1.0) * lnd) - 1.0

    lo = math.log(c1) / b  # the Chinchilla D: f(lo) >= 0
    if c2 == 0.0 or f(lo) <= 0.0:  # no demand, or too little to move D off the Chinchilla point
        lnd = lo
    else:
        hi = lo + 1.0
        while f(hi) > 0:
            hi += 2.0 * (hi - lo)
        lnd = brentq(f, lo, hi, xtol=1e-300, rtol=1e-15, maxiter=500)
    d = math.exp(lnd)
    x = g - B * d ** -b
    return (law.A / x) ** (1.0 / a), d


# --------------------------------------------------------------------------- Eq. 3 and Eq. 6


def _flop_plan(law, target_loss, params, tokens, inference_tokens) -> dict:
    train = TRAIN_FLOP_PER_PARAM_TOKEN * params * tokens
    inference = INFERENCE_FLOP_PER_PARAM_TOKEN * params * inference_tokens
    return dict(params=params, train_tokens=tokens, loss=np.broadcast_to(target_loss, params.shape).astype(float),
                train_flop=train, inference_flop=inference, total_flop=train + inference)


def _finite_or_raise(comp: "Comparison") -> "Comparison":
    """The last guard: a Comparison with any non-finite number is never returned."""
    for plan in (comp.optimal, comp.chinchilla):
        for name, value in vars(plan).items():
            if value is not None and not np.all(np.isfinite(value)):
                raise ValueError(f"the {comp.objective} optimum has a non-finite {name} for these inputs; "
                                 f"need inputs whose lifetime totals stay below {TOTAL_LIMIT:g}")
    return comp


def _saving(chinchilla_total: np.ndarray, optimal_total: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(saving, saving_fraction), >= 0: the optimum never costs more than the Chinchilla-style model, so a
    negative difference within 1e-9 of the total is rounding and becomes exactly 0."""
    saving = chinchilla_total - optimal_total
    saving = np.where((saving < 0) & (saving >= -1e-9 * chinchilla_total), 0.0, saving)
    # totals that underflow to 0 (prices near the bottom of float range) save nothing
    fraction = np.where(chinchilla_total > 0, saving / np.where(chinchilla_total > 0, chinchilla_total, 1.0), 0.0)
    return saving, fraction


def optimize_flops(target_loss, inference_tokens, law: LossLaw = DEFAULT_LAW) -> Comparison:
    """Eq. 3: argmin 6·N·D + 2·N·D_inf subject to L(N, D) = loss, and the equal-loss Chinchilla model.

    `target_loss` and `inference_tokens` (lifetime input + output tokens) broadcast against each other.
    InputError (a ValueError) names the input that is out of range and the range that works.
    """
    target_loss = check_loss(law, target_loss)
    d_inf = _check_demand("inference_tokens", inference_tokens)
    check_totals(law, target_loss, d_inf, "inference_tokens")
    with np.errstate(all="ignore"):
        n_opt, d_opt = optimal_params_tokens(law, target_loss, d_inf / 3.0)
        shape = n_opt.shape
        n_c = np.broadcast_to(chinchilla_params_for_loss(law, target_loss), shape)
        d_c = np.broadcast_to(chinchilla_tokens_for_loss(law, target_loss), shape)
        target_loss, d_inf = np.broadcast_to(target_loss, shape), np.broadcast_to(d_inf, shape)
        opt = ModelPlan(**_flop_plan(law, target_loss, n_opt, d_opt, d_inf))
        chin = ModelPlan(**_flop_plan(law, target_loss, n_c, d_c, d_inf))
        saving, fraction = _saving(chin.total_flop, opt.total_flop)
    return _finite_or_raise(Comparison("flops", law, opt, chin, fraction, saving, d_inf))


def _cost_plan(law, target_loss, params, tokens, requests, s: CostSettings) -> ModelPlan:
    base = _flop_plan(law, target_loss, params, tokens, requests * s.tokens_per_request)
    train_usd = base["train_flop"] * s.train_usd_per_flop
    inference_usd = params * requests * s.inference_usd_per_param_request()
    return ModelPlan(**base, train_usd=train_usd, inference_usd=inference_usd, total_usd=train_usd + inference_usd)


def optimize_cost(target_loss, requests, settings: CostSettings, law: LossLaw = DEFAULT_LAW) -> Comparison:
    """Eq. 6: argmin 6·N·D·C_tr/MFU_tr + 2·N·C_inf·(D_inp/MFU_inp + D_out/MFU_out) at L(N, D) = loss.

    D_inp = requests · input_tokens_per_request, D_out = requests · output_tokens_per_request.
    `target_loss` and `requests` broadcast against each other. InputError as for `optimize_flops`.
    """
    target_loss = check_loss(law, target_loss)
    req = _check_demand("requests", requests)
    check_totals(law, target_loss, req, "requests", settings)
    with np.errstate(all="ignore"):
        k_train = TRAIN_FLOP_PER_PARAM_TOKEN * settings.train_usd_per_flop
        r = req * (settings.inference_usd_per_param_request() / k_train)
        n_opt, d_opt = optimal_params_tokens(law, target_loss, r)
        shape = n_opt.shape
        n_c = np.broadcast_to(chinchilla_params_for_loss(law, target_loss), shape)
        d_c = np.broadcast_to(chinchilla_tokens_for_loss(law, target_loss), shape)
        target_loss, req = np.broadcast_to(target_loss, shape), np.broadcast_to(req, shape)
        opt = _cost_plan(law, target_loss, n_opt, d_opt, req, settings)
        chin = _cost_plan(law, target_loss, n_c, d_c, req, settings)
        saving, fraction = _saving(chin.total_usd, opt.total_usd)
    return _finite_or_raise(Comparison("cost", law, opt, chin, fraction, saving,
                                       req * settings.tokens_per_request, req))


# --------------------------------------------------------------------------- general scalar path


@dataclass(frozen=True)
class GeneralCostResult:
    """Scalar optimum of train_usd_per_flop·6·N·D + inference_usd_fn(N) at L(N, D) = loss."""

    loss: float
    params: float
    train_tokens: float
    train_usd: float
    inference_usd: float
    total_usd: float
    chinchilla_params: float
    chinchilla_train_tokens: float
    chinchilla_train_usd: float
    chinchilla_inference_usd: float
    chinchilla_total_usd: float

    @property
    def saving_usd(self) -> float:
        """Chinchilla-style total - optimal total, >= 0 (the Chinchilla-style split is one of the candidates)."""
        return max(0.0, self.chinchilla_total_usd - self.total_usd)

    @property
    def saving_fraction(self) -> float:
        return self.saving_usd / self.chinchilla_total_usd if self.chinchilla_total_usd > 0 else 0.0


class NoFeasibleModel(ValueError):
    """No model size on the scanned range meets the constraint (e.g. the latency SLO on this hardware)."""


def _log_sigmoid(z: np.ndarray) -> np.ndarray:
    return -np.logaddexp(0.0, -z)


def optimize_cost_general(
    target_loss: float,
    law: LossLaw,
    train_usd_per_flop: float,
    inference_usd_fn: Callable[[float], float],
    *,
    grid_points: int = 401,
    z_range: tuple[float, float] = (-60.0, 60.0),
    feasible: Callable[[float], bool] | None = None,
) -> GeneralCostResult:
    """Minimise train_usd_per_flop·6·N·D + inference_usd_fn(N) subject to L(N, D) = loss (one point).

    `train_usd_per_flop` prices a useful training FLOP (C_tr / MFU_tr); `inference_usd_fn(N)` returns
    the lifetime inference dollars of an N-parameter model (e.g. with decode efficiency depending
    on N). With inference_usd_fn(N) = N·const this is Eq. 6.

    Method: the split of L - E between the two loss terms is parametrised by z in R,
    x = G·sigmoid(-z), y = G·sigmoid(z) (every N > N_min maps to one z). A log-spaced scan of z finds
    the best grid cell, then bounded Brent minimisation refines it. The objective is flat at its
    minimum, so N* is accurate to about 1e-7 relative and the total to about 1e-13; a non-unimodal
    inference_usd_fn is handled as long as its minima are resolved by the scan.

    `feasible(N)`: a constraint (e.g. the model can be served within the latency SLO). Infeasible grid
    points are excluded; the best feasible cell is refined by Brent on each side whose neighbour is
    feasible, and by bisection towards the feasibility boundary on each side whose neighbour is not
    (the constrained optimum often sits on it); the Chinchilla-style split is a candidate only if
    feasible. NoFeasibleModel when no grid point is feasible. Its chinchilla_* fields are priced
    whether or not it is feasible.
    """
    from scipy.optimize import minimize_scalar

    g = float(check_loss(law, target_loss)) - law.E
    c_tr = _check_positive("train_usd_per_flop", train_usd_per_flop)
    check_totals(law, float(target_loss), 0.0, "requests", CostSettings(c_tr, c_tr, c_tr))

    def split(z):
        z = np.asarray(z, dtype=float)
        ln_x = math.log(g) + _log_sigmoid(-z)
        ln_y = math.log(g) + _log_sigmoid(z)
        n = np.exp((math.log(law.A) - ln_x) / law.alpha)
        d = np.exp((math.log(law.B) - ln_y) / law.beta)
        return n, d

    def parts(n: float, d: float) -> tuple[float, float]:
        inf_usd = float(inference_usd_fn(float(n)))
        if not math.isfinite(inf_usd) or inf_usd < 0:
            raise ValueError(f"inference_usd_fn({float(n)!r}) = {inf_usd!r}; need a finite number >= 0")
        return TRAIN_FLOP_PER_PARAM_TOKEN * c_tr * float(n) * float(d), inf_usd

    def total(z: float) -> float:
        n, d = split(z)
        tr, inf = parts(n, d)
        return tr + inf

    def ok(z: float) -> bool:
        return feasible is None or bool(feasible(float(split(z)[0])))

    with np.errstate(all="ignore"):
        zs = np.linspace(z_range[0], z_range[1], grid_points)
        good = np.array([ok(z) for z in zs])
        if not good.any():
            raise NoFeasibleModel(f"no model size from {float(split(zs[0])[0]):.3g} to {float(split(zs[-1])[0]):.3g} "
                                  f"parameters at loss {float(target_loss):.6g} meets the constraint")
        values = np.array([total(z) if g_ok else math.inf for z, g_ok in zip(zs, good)])
        i = int(np.argmin(values))
        penalty = 2.0 * values[i] + 1.0  # finite and above every feasible candidate near the cell

        def constrained(z: float) -> float:
            return total(z) if ok(z) else penalty

        best_z, best_v = float(zs[i]), float(values[i])
        for j in (i - 1, i + 1):
            if not 0 <= j < len(zs):
                continue
            if good[j]:
                lo, hi = sorted((zs[i], zs[j]))
                res = minimize_scalar(constrained, bounds=(lo, hi), method="bounded",
                                      options={"xatol": 1e-13, "maxiter": 500})
                cand = float(res.x)
            else:  # the feasibility boundary between zs[i] and zs[j]
                a, b = float(zs[i]), float(zs[j])
                for _ in range(60):
                    m = 0.5 * (a + b)
                    a, b = (m, b) if ok(m) else (a, m)
                cand = a
            if ok(cand):
                v = total(cand)
                if v < best_v:
                    best_z, best_v = cand, v
        n, d = split(best_z)
        tr, inf = parts(n, d)
        n_c = float(chinchilla_params_for_loss(law, target_loss))
        d_c = float(chinchilla_tokens_for_loss(law, target_loss))
        tr_c, inf_c = parts(n_c, d_c)
    if tr_c + inf_c < tr + inf and (feasible is None or feasible(n_c)):  # the Chinchilla-style split wins
        n, d, tr, inf = n_c, d_c, tr_c, inf_c
    out = GeneralCostResult(float(target_loss), float(n), float(d), tr, inf, tr + inf,
                            n_c, d_c, tr_c, inf_c, tr_c + inf_c)
    if not all(math.isfinite(v) for v in vars(out).values()):
        raise ValueError(f"the N-dependent optimum is not finite at loss {float(target_loss):.6g}; need inputs "
                         f"whose lifetime dollars stay below {TOTAL_LIMIT:g}")
    return out
