"""The loss law, in one place: L(N, D) = E + A / N^alpha + B / D^beta (Sardana et al. 2024, Eq. 1;
Hoffmann et al. 2022, "approach 3").

N = parameters, D = training tokens, L = pre-training cross-entropy loss (nats/token). The fit
(Eq. 4) is `calibrate.law.fit`; the solver's named coefficient sets are `solver.optimize.laws`, which uses the
functions here.

Every function takes `law`: any object with float attributes A, B, E, alpha, beta (a
`LawCoefficients`, the solver's `LossLaw`, a `core.schema.law.LawFile`), and is closed-form and
vectorised over numpy arrays (scalars in, numpy scalars out). The two loss terms recur:

    x = A / N^alpha   (`params_term`, the model-size term)    y = B / D^beta   (`tokens_term`, the data term)

A "Chinchilla-style" model (Hoffmann et al.; Sardana et al. Table 2/3 baseline) reaches its loss
with the least training compute 6·N·D. Minimising N·D on the curve x + y = L - E gives (Lagrange,
or Sardana et al. Eq. 12 with D_inf = 0)

    alpha · x = beta · y   =>   x = beta/(alpha+beta) · (L - E),   y = alpha/(alpha+beta) · (L - E)

which is not 20 tokens per parameter in general (about 27 for the paper's constants at 1B).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

COEFFICIENT_NAMES = ("A", "B", "E", "alpha", "beta")

__all__ = [
    "COEFFICIENT_NAMES",
    "LawCoefficients",
    "loss",
    "params_term",
    "tokens_term",
    "dloss_dparams",
    "dloss_dtokens",
    "min_loss_for_params",
    "params_for_loss",
    "tokens_for_loss",
    "chinchilla_tokens_for_params",
    "chinchilla_loss_for_params",
    "chinchilla_params_for_loss",
    "chinchilla_tokens_for_loss",
    "check_reachable",
]


@dataclass(frozen=True)
class LawCoefficients:
    """A, B, E, alpha, beta of Eq. 1 (what the Eq. 4 fit returns)."""

    A: float
    B: float
    E: float
    alpha: float
    beta: float

    @classmethod
    def from_theta(cls, theta) -> "LawCoefficients":
        """From the Eq. 4 parameters (a, b, e, alpha, beta), A, B, E = exp(a), exp(b), exp(e)."""
        a, b, e, alpha, beta = (float(v) for v in theta)
        return cls(A=float(np.exp(a)), B=float(np.exp(b)), E=float(np.exp(e)), alpha=alpha, beta=beta)

    @property
    def theta(self) -> tuple[float, float, float, float, float]:
        return (float(np.log(self.A)), float(np.log(self.B)), float(np.log(self.E)), self.alpha, self.beta)

    def as_dict(self) -> dict[str, float]:
        return {name: float(getattr(self, name)) for name in COEFFICIENT_NAMES}

    def loss(self, n_params, train_tokens):
        """Eq. 1 at the given parameter and training-token counts (arrays broadcast)."""
        return loss(self, n_params, train_tokens)


def _arr(v) -> np.ndarray:
    return np.asarray(v, dtype=float)


# --------------------------------------------------------------------------- Eq. 1, its terms, derivatives


def params_term(law, params) -> np.ndarray:
    """x = A / N^alpha."""
    return law.A * _arr(params) ** -law.alpha


def tokens_term(law, train_tokens) -> np.ndarray:
    """y = B / D^beta."""
    return law.B * _arr(train_tokens) ** -law.beta


def loss(law, params, train_tokens) -> np.ndarray:
    """Eq. 1: L = E + A/N^alpha + B/D^beta."""
    return law.E + params_term(law, params) + tokens_term(law, train_tokens)


def dloss_dparams(law, params) -> np.ndarray:
    """dL/dN = -alpha · A / N^(alpha+1) (the data term does not depend on N)."""
    n = _arr(params)
    return -law.alpha * law.A * n ** (-law.alpha - 1.0)


def dloss_dtokens(law, train_tokens) -> np.ndarray:
    """dL/dD = -beta · B / D^(beta+1)."""
    d = _arr(train_tokens)
    return -law.beta * law.B * d ** (-law.beta - 1.0)


# --------------------------------------------------------------------------- inverses


def min_loss_for_params(law, params) -> np.ndarray:
    """The loss an N-parameter model approaches with infinite data: E + A/N^alpha."""
    return law.E + params_term(law, params)


def params_for_loss(law, target_loss, train_tokens) -> np.ndarray:
    """N with L(N, D) = loss: N = (A / (L - E - B/D^beta))^(1/alpha); nan where D alone cannot reach it."""
    x = _arr(target_loss) - law.E - tokens_term(law, train_tokens)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(x > 0, (law.A / np.where(x > 0, x, 1.0)) ** (1.0 / law.alpha), np.nan)


def tokens_for_loss(law, target_loss, params) -> np.ndarray:
    """D with L(N, D) = loss: D = (B / (L - E - A/N^alpha))^(1/beta); nan where N is too small."""
    y = _arr(target_loss) - law.E - params_term(law, params)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(y > 0, (law.B / np.where(y > 0, y, 1.0)) ** (1.0 / law.beta), np.nan)


# --------------------------------------------------------------------------- the training-compute-optimal curve


def chinchilla_tokens_for_params(law, params) -> np.ndarray:
    """Training-compute-optimal D for N: alpha·A/N^alpha = beta·B/D^beta  =>  D = (beta·B·N^alpha / (alpha·A))^(1/beta)."""
    n = _arr(params)
    return (law.beta * law.B * n ** law.alpha / (law.alpha * law.A)) ** (1.0 / law.beta)


def chinchilla_loss_for_params(law, params) -> np.ndarray:
    """Loss of the Chinchilla-style model of N params: E + (1 + alpha/beta)·A/N^alpha."""
    return law.E + (1.0 + law.alpha / law.beta) * params_term(law, params)


def chinchilla_params_for_loss(law, target_loss) -> np.ndarray:
    """N of the Chinchilla-style model reaching `loss`: x = beta/(alpha+beta)·(L-E), N = (A/x)^(1/alpha)."""
    g = _arr(target_loss) - law.E
    x = law.beta / (law.alpha + law.beta) * g
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(g > 0, (law.A / np.where(g > 0, x, 1.0)) ** (1.0 / law.alpha), np.nan)


def chinchilla_tokens_for_loss(law, target_loss) -> np.ndarray:
    """D of the Chinchilla-style model reaching `loss`: y = alpha/(alpha+beta)·(L-E), D = (B/y)^(1/beta)."""
    g = _arr(target_loss) - law.E
    y = law.alpha / (law.alpha + law.beta) * g
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(g > 0, (law.B / np.where(g > 0, y, 1.0)) ** (1.0 / law.beta), np.nan)


def check_reachable(law, target_loss) -> np.ndarray:
    """The losses as an array; ValueError naming the first one that is not finite or not above E."""
    arr = _arr(target_loss)
    bad = ~np.isfinite(arr) | (arr <= law.E)
    if np.any(bad):
        first = float(arr[bad].flat[0]) if arr.ndim else float(arr)
        name = getattr(law, "name", None)
        raise ValueError(
            f"loss {first!r} is unreachable under {f'law {name!r}' if name else 'the law'}: need a finite loss > E = {law.E!r} "
            f"(the smallest reachable loss, approached only as N and D grow without bound)"
        )
    return arr
