"""What the solver API accepts, checked before any work: one home for its input errors and ranges.

Every number is finite and in range, and the lifetime totals of a problem stay below TOTAL_LIMIT, so
`solver.optimize.solve` never returns a non-finite plan. A refusal is an `InputError` naming the parameter,
its value and the range that works; the command line (core.cli.flag_error) names the flag.
"""

from __future__ import annotations

import math
import sys

import numpy as np

from core.errors import BadValue
from solver.optimize.laws import LossLaw, check_reachable, chinchilla_loss_for_params

TRAIN_FLOP_PER_PARAM_TOKEN = 6.0  # Kaplan et al. 2020, as in Sardana et al. Eq. 3
INFERENCE_FLOP_PER_PARAM_TOKEN = 2.0
# Totals (FLOP, dollars) the solver keeps below: float64 ends at 1.8e308, and the totals are summed
# and divided, so inputs whose Chinchilla-style totals (which bound the optimum's) pass this are refused.
TOTAL_LIMIT = 1e300


def _check_positive(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
        raise BadValue(name, value, "is not a number; need a finite number > 0")
    v = float(value)
    if not math.isfinite(v) or v <= 0:
        raise BadValue(name, v, "need a finite number > 0")
    if v < sys.float_info.min:  # subnormal: products with it lose every digit
        raise BadValue(name, v, f"need a number >= {sys.float_info.min:.3g} (smaller ones lose their digits)")
    return v


def _check_fraction(name: str, value: float) -> float:
    v = _check_positive(name, value)
    if v > 1:
        raise BadValue(name, v, "need a fraction in (0, 1]")
    return v


def _check_demand(name: str, value) -> np.ndarray:
    arr = np.asarray(value, dtype=float)
    bad = ~np.isfinite(arr) | (arr < 0)
    if np.any(bad):
        first = float(arr[bad].flat[0]) if arr.ndim else float(arr)
        raise BadValue(name, first, "need a finite number >= 0")
    return arr


def check_loss(law: LossLaw, target_loss) -> np.ndarray:
    """The losses as an array; InputError unless E < loss < the loss of a 1-parameter Chinchilla-style model.

    Below one parameter the law says nothing useful (and N, D underflow towards 0).
    """
    arr = check_reachable(law, target_loss)
    upper = float(chinchilla_loss_for_params(law, 1.0))
    if np.any(arr >= upper):
        first = float(arr[arr >= upper].flat[0]) if arr.ndim else float(arr)
        raise BadValue("loss", first, f"at or above the loss of a 1-parameter Chinchilla-style model under law "
                                        f"{law.name!r}; need {law.E!r} < loss < {upper:.6g}")
    return arr


def check_totals(law: LossLaw, target_loss, demand, demand_name: str, settings=None) -> None:
    """InputError unless every lifetime total stays below TOTAL_LIMIT, naming the input to change.

    The equal-loss Chinchilla-style model's totals bound the optimum's (the optimum costs no more, has
    no more parameters, and its training term is at most the Chinchilla-style total), so checking them,
    in logs, before solving keeps every number of both plans finite. Terms (each must stay below a
    quarter of the limit): training FLOP 6·N_c·D_c, inference FLOP 2·N_c·D_inf, the optimum's training
    FLOP bound 6·N_c·r, and for Eq. 6 the dollars C_tr·6·N_c·D_c and N_c·requests·q. `settings` is a
    `solver.optimize.solve.CostSettings` for Eq. 6, None for Eq. 3.
    """
    loss = np.asarray(target_loss, dtype=float)
    dem = np.asarray(demand, dtype=float)
    a, b = law.alpha, law.beta
    lim = math.log(TOTAL_LIMIT / 4.0)
    with np.errstate(divide="ignore"):
        g = loss - law.E
        ln_n = (math.log(law.A) - np.log(b / (a + b) * g)) / a
        ln_d = (math.log(law.B) - np.log(a / (a + b) * g)) / b
        ln_dem = np.log(dem)
    tokens = 1.0 if settings is None else settings.tokens_per_request
    per_request = [math.log(INFERENCE_FLOP_PER_PARAM_TOKEN * tokens)]  # inference FLOP per param per request
    train_terms = [math.log(TRAIN_FLOP_PER_PARAM_TOKEN) + ln_n + ln_d]
    if settings is not None:
        q = settings.inference_usd_per_param_request()
        per_request += [math.log(q), math.log(q) - math.log(settings.train_usd_per_flop)]
        train_terms.append(math.log(TRAIN_FLOP_PER_PARAM_TOKEN * settings.train_usd_per_flop) + ln_n + ln_d)
    for i, term in enumerate(train_terms):
        bad = np.broadcast_to(term, np.broadcast(term, ln_dem).shape) > lim
        if np.any(bad):
            j = np.argmax(bad.ravel())
            gj = float(np.broadcast_to(g, bad.shape).ravel()[j])
            if i == 0:  # the FLOP of training the Chinchilla-style model: only the loss helps
                raise BadValue("loss", gj + law.E, f"too close to E = {law.E!r} under law {law.name!r} (the "
                                 f"Chinchilla-style model's training FLOP pass {TOTAL_LIMIT:g}); need loss >= E + "
                                 f"{_min_gap(law, lim - math.log(TRAIN_FLOP_PER_PARAM_TOKEN)):.3g}")
            c = settings.train_usd_per_flop
            excess = float(np.broadcast_to(term, bad.shape).ravel()[j]) - lim
            why = f"the Chinchilla-style model's training dollars at loss {gj + law.E:.6g} pass {TOTAL_LIMIT:g}"
            raise BadValue("train_usd_per_flop", c, f"{why}; need train_usd_per_flop <= "
                             f"{c * math.exp(-excess):.3g}, or a higher loss", why=why, limit=c * math.exp(-excess))
    for ln_q in per_request:
        term = ln_n + ln_dem + ln_q
        bad = term > lim
        if np.any(bad):
            j = np.argmax(np.broadcast_to(bad, np.broadcast(bad, dem).shape).ravel())
            dj = float(np.broadcast_to(dem, bad.shape).ravel()[j])
            lj = float(np.broadcast_to(loss, bad.shape).ravel()[j])
            excess = float(np.broadcast_to(term, bad.shape).ravel()[j]) - lim
            what = "these prices and this loss" if settings is not None else "this loss"
            why = f"lifetime totals at loss {lj:.6g} pass {TOTAL_LIMIT:g}"
            raise BadValue(demand_name, dj, f"{why}; need {demand_name} in [0, {dj * math.exp(-excess):.3g}] "
                             f"at {what}", why=why, limit=dj * math.exp(-excess))


def _min_gap(law: LossLaw, ln_nd_max: float) -> float:
    """The smallest L - E at which ln(N_c·D_c) <= ln_nd_max (closed form: both grow as powers of 1/G)."""
    a, b = law.alpha, law.beta
    c0 = (math.log(law.A) - math.log(b / (a + b))) / a + (math.log(law.B) - math.log(a / (a + b))) / b
    return math.exp((c0 - ln_nd_max) / (1.0 / a + 1.0 / b)) * (1.0 + 1e-9)
