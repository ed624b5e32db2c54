"""The optimum when unique training data is limited (Muennighoff et al. 2023, data-constrained scaling).

Muennighoff, Rush, Barak, Le Scao, Piktus, Tazi, Pyysalo, Wolf, Raffel, "Scaling Data-Constrained
Language Models", NeurIPS 2023 (arXiv:2305.16264). Repeated tokens are worth less than fresh ones:
trained on D tokens drawn from U_D unique ones, a model learns as if from the *effective* data

    D' = U_D + U_D · R_D* · (1 - exp(-R_D / R_D*)),    R_D = D / U_D - 1   (repeated epochs), D >= U_D

(the paper's effective-data equation, Eq. 5 as we number it from the paper's Section 3; the equation
number is quoted from memory and was not checked against a copy of the paper reachable here), and
D' = D when D <= U_D. R_D* = 15.387756 is the authors' fitted constant (printed rounded as ≈ 15.4
in the paper): verified in the authors' repository, huggingface/datablations, README.md section
"Parametric Fit" (`rd_star = 15.387756`, beside the parameter constant rn_star = 5.309743, which we
do not use: our N is the trained parameter count, with no excess-parameter discount). D' < U_D·(1+R_D*)
for every D: repetition alone never yields more than (1 + R_D*) ≈ 16.4 times the unique data.

The loss uses D' in the project's law (`solver.optimize.laws`, Eq. 1 of Sardana et al. 2024):
L(N, D, U) = E + A/N^alpha + B/D'^beta; cost uses the trained tokens D (6·N·D training FLOP).

`data_limited_optimum` minimises any cost model cost_fn(N, D) along the curve L(N, D') = target:
for each N the data term fixes the effective tokens needed, D'(N) = (B / (L - E - A/N^alpha))^(1/beta);
if D'(N) <= U the model is trained on D'(N) fresh tokens; otherwise, with repetition, on the D with
effective_tokens(D, U) = D'(N) (closed form below), and without repetition that N is infeasible. The
feasible N form an interval [N_lo, inf) (D'(N) falls with N); we scan it in ln N and refine with
bounded Brent minimisation (scipy). If the unconstrained optimum already fits (D* <= U), it is returned
unchanged (binding=False).

Range of the paper (Sardana et al. 2024): their models were trained on 10 to 10,000 tokens per
parameter (Sec. 3 "Experiments" and Appendix C); only the 150M model reached 10,000, larger ones
stopped at 1,000 (Sec. 4 "Results"). Beyond PAPER_MAX_TOKENS_PER_PARAM the loss law is extrapolated:
`tokens_per_param_warning` says so.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np

from solver.optimize.checks import check_loss
from solver.optimize.laws import LossLaw, params_for_loss, tokens_for_loss

PAPER_MAX_TOKENS_PER_PARAM = 10_000  # Sardana et al. 2024, Sec. 3 and Appendix C: 10 to 10,000 tokens/param
R_D_STAR = 15.387756  # Muennighoff et al. 2023 fitted R_D* (huggingface/datablations README, "Parametric Fit")
MUENNIGHOFF_SOURCE = ("Muennighoff et al. 2023, 'Scaling Data-Constrained Language Models' (NeurIPS 2023, "
                      "arXiv:2305.16264): D' = U + U*R_D*(1 - exp(-R_D/R_D*)), R_D = D/U - 1, "
                      f"R_D* = {R_D_STAR} (authors' fit, huggingface/datablations README 'Parametric Fit')")
_GRID = 721  # points of the ln N scan (about 0.09 in ln N between points over the widest range)
_X_FLOOR = 1e-10  # the scan stops where A/N^alpha < 1e-10·(L - E): beyond, more N only adds cost


class DataLimitUnreachable(ValueError):
    """The target loss cannot be reached with the unique tokens available (with or without repetition)."""


@dataclass(frozen=True)
class DataLimitedPlan:
    """A model of `params` trained on `train_tokens` tokens drawn from `unique_tokens` unique ones.

    unique_tokens = min(train_tokens, the limit) (the unique tokens the plan uses); epochs =
    train_tokens / unique_tokens (1 when nothing repeats); effective_tokens = D' (Muennighoff et al.),
    the D the loss law sees; binding: the limit moved the optimum (False: the unconstrained one fits).
    """

    params: float
    train_tokens: float
    unique_tokens: float
    epochs: float
    effective_tokens: float
    binding: bool

    @property
    def repeated_epochs(self) -> float:
        """R_D = epochs - 1."""
        return self.epochs - 1.0


def effective_tokens(tokens, unique_tokens):
    """D' of Muennighoff et al. 2023 (module docstring): D when D <= U, else
    U + U·R_D*·(1 - exp(-(D/U - 1)/R_D*)). Arrays broadcast; a float for scalar inputs."""
    d = np.asarray(tokens, dtype=float)
    u = np.asarray(unique_tokens, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.maximum(d / u - 1.0, 0.0)
        out = np.where(d <= u, d, u - u * R_D_STAR * np.expm1(-r / R_D_STAR))
    return float(out) if out.ndim == 0 else out


def tokens_for_effective(effective, unique_tokens):
    """The trained tokens D with effective_tokens(D, U) = D' (the inverse): D' when D' <= U, else
    U·(1 + R_D) with R_D = -R_D*·ln(1 - (D'/U - 1)/R_D*); inf when D' >= U·(1 + R_D*) (unreachable)."""
    e = np.asarray(effective, dtype=float)
    u = np.asarray(unique_tokens, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        frac = (e / u - 1.0) / R_D_STAR
        r = -R_D_STAR * np.log1p(-np.minimum(frac, 1.0))
        out = np.where(e <= u, e, np.where(frac < 1.0, u * (1.0 + r), np.inf))
    return float(out) if out.ndim == 0 else out


def tokens_per_param_warning(params, tokens) -> str | None:
    """A one-line warning when tokens / params exceeds the largest ratio Sardana et al. 2024 trained, else None."""
    ratio = float(tokens) / float(params)
    if not ratio > PAPER_MAX_TOKENS_PER_PARAM:
        return None
    return (f"{ratio:,.0f} training tokens per parameter is beyond the {PAPER_MAX_TOKENS_PER_PARAM:,} that "
            f"Sardana et al. 2024 trained (Sec. 3 and Appendix C: 10 to 10,000 tokens/param, 10,000 only at 150M "
            f"params; larger models up to 1,000, Sec. 4): the loss law is extrapolated here")


def _check_unique(unique_tokens) -> float:
    u = unique_tokens
    if isinstance(u, bool) or not isinstance(u, (int, float, np.floating, np.integer)) or not math.isfinite(u) \
            or u <= 0:
        raise ValueError(f"unique_tokens={u!r}: need a finite number of tokens > 0")
    return float(u)


def unreachable_message(law: LossLaw, target_loss: float, unique_tokens: float, repeat: bool) -> str:
    """Why the loss is out of reach with these unique tokens, and how many would be needed."""
    g = target_loss - law.E
    d_min = (law.B / g) ** (1.0 / law.beta)  # effective tokens of an unbounded model
    head = (f"loss {target_loss:.6g} is unreachable with {unique_tokens:.4g} unique tokens under law "
            f"{law.name!r}: even an unbounded model needs {d_min:.4g} effective training tokens")
    if repeat:
        return (f"{head}, and repeating {unique_tokens:.4g} unique tokens gives fewer than "
                f"{unique_tokens * (1 + R_D_STAR):.4g} (Muennighoff et al. 2023, R_D* = {R_D_STAR:g}); need more "
                f"than {d_min / (1 + R_D_STAR):.4g} unique tokens, or a higher loss")
    return (f"{head}, and without repetition a model sees at most the {unique_tokens:.4g} unique ones; need more "
            f"than {d_min:.4g} unique tokens, or allow repetition (more than {d_min / (1 + R_D_STAR):.4g}), "
            f"or a higher loss")


def _costs(cost_fn, params: np.ndarray, tokens: np.ndarray) -> np.ndarray:
    """cost_fn on arrays when it takes them, else point by point; non-finite or negative costs become inf."""
    out = None
    try:
        with np.errstate(all="ignore"):
            v = np.asarray(cost_fn(params, tokens), dtype=float)
        if v.shape == params.shape:
            out = v
    except (TypeError, ValueError):
        out = None
    if out is None:
        out = np.array([float(cost_fn(float(n), float(d))) for n, d in zip(params, tokens)], dtype=float)
    return np.where(np.isfinite(out) & (out >= 0), out, np.inf)


def data_limited_optimum(
    law: LossLaw,
    target_loss: float,
    cost_fn: Callable[[float, float], float],
    unique_tokens: float,
    *,
    repeat: bool = True,
    unconstrained: tuple[float, float] | None = None,
) -> DataLimitedPlan:
    """The cheapest (N, D) with L(N, D') = target_loss using at most `unique_tokens` unique tokens.

    cost_fn(params, train_tokens) -> total USD (or FLOP) of that plan, any cost model (called on arrays
    when it accepts them). `repeat`: allow repeated epochs (Muennighoff et al. 2023), else D <= U.
    `unconstrained`: the (N*, D*) of the same cost model without a limit; when D* <= U it is returned
    unchanged. DataLimitUnreachable names the loss, the unique tokens and the least that would do.
    """
    from scipy.optimize import minimize_scalar

    loss = float(check_loss(law, target_loss))
    u = _check_unique(unique_tokens)
    if unconstrained is not None:
        n0, d0 = (float(v) for v in unconstrained)
        if d0 <= u:
            return DataLimitedPlan(n0, d0, d0, 1.0, d0, False)
    g = loss - law.E
    d_min = (law.B / g) ** (1.0 / law.beta)
    cap = u * (1.0 + R_D_STAR) if repeat else u  # supremum (repeat) / maximum of the effective tokens
    if d_min >= cap:  # an unbounded model would need all of it (or more): no finite model reaches the loss
        raise DataLimitUnreachable(unreachable_message(law, loss, u, repeat))

    def tokens_at(ln_n: np.ndarray) -> np.ndarray:
        n = np.exp(ln_n)
        need = np.asarray(tokens_for_loss(law, loss, n), dtype=float)
        if repeat:
            d = np.asarray(tokens_for_effective(need, u), dtype=float)
        else:  # the boundary N_lo rounds to a hair above U: that is U
            d = np.where(need <= u * (1 + 1e-12), np.minimum(need, u), np.inf)
        return np.where(np.isfinite(need), d, np.inf)

    def total(ln_n) -> np.ndarray:
        ln_n = np.atleast_1d(np.asarray(ln_n, dtype=float))
        d = tokens_at(ln_n)
        ok = np.isfinite(d)
        out = np.full(ln_n.shape, np.inf)
        if np.any(ok):
            out[ok] = _costs(cost_fn, np.exp(ln_n[ok]), d[ok])
        return out

    ln_lo = math.log(float(params_for_loss(law, loss, cap)))  # D'(N_lo) = cap; open end when repeating
    ln_top = (math.log(law.A) - math.log(g * _X_FLOOR)) / law.alpha
    if repeat:
        ln_lo += 1e-9 * max(1.0, abs(ln_lo))
    ln_top = max(ln_top, ln_lo + 1.0)
    grid = np.linspace(ln_lo, ln_top, _GRID)
    values = total(grid)
    i = int(np.argmin(values))
    if not math.isfinite(values[i]):
        raise ValueError(f"cost_fn gives no finite cost >= 0 for any model that reaches loss {loss:.6g} with "
                         f"{u:.4g} unique tokens; need a cost model finite on N in [{math.exp(ln_lo):.4g}, "
                         f"{math.exp(ln_top):.4g}]")
    best_ln, best = float(grid[i]), float(values[i])
    lo, hi = grid[max(i - 1, 0)], grid[min(i + 1, len(grid) - 1)]
    if hi > lo:
        res = minimize_scalar(lambda z: float(total(z)[0]), bounds=(lo, hi), method="bounded",
                              options={"xatol": 1e-12, "maxiter": 500})
        if math.isfinite(res.fun) and res.fun < best:
            best_ln, best = float(res.x), float(res.fun)
    n = math.exp(best_ln)
    d = float(tokens_at(np.array([best_ln]))[0])
    need = float(tokens_for_loss(law, loss, n))
    unique = min(d, u)
    binding = need > u * (1 - 1e-9)  # at or past the limit: it shaped the plan
    return DataLimitedPlan(n, d, unique, d / unique, float(effective_tokens(d, u)), bool(binding))


def limit_record(plan: DataLimitedPlan, unique_available: float, repeat: bool) -> dict:
    """The data-limit fields written beside a plan (JSON): inputs, the plan's data use, constants and source."""
    return {
        "max_train_tokens": float(unique_available),
        "repeat": bool(repeat),
        "binding": plan.binding,
        "unique_tokens_used": plan.unique_tokens,
        "epochs": plan.epochs,
        "effective_train_tokens": plan.effective_tokens,
        "r_d_star": R_D_STAR,
        "formula": "loss uses D' = U + U*R_D*(1 - exp(-(D/U - 1)/R_D*)) for D > U (else D); cost uses D",
        "source": MUENNIGHOFF_SOURCE,
        "provenance": "computed from the law; R_D* fitted by Muennighoff et al. 2023 (not refitted here)",
    }
