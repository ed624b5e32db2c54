"""The loss law of Hoffmann et al. (2022), "approach 3", as used by Sardana et al. (2024), Eq. 1:

    L(N, D) = E + A / N^alpha + B / D^beta

N = parameters, D = training tokens, L = pre-training cross-entropy loss (nats/token).

Everything here is closed-form and vectorised over numpy arrays (scalars in, numpy scalars
out). Two quantities name the two loss terms and recur throughout the solver:

    x = A / N^alpha   (the model-size term)      y = B / D^beta   (the data term)

A "Chinchilla-style" model (Hoffmann et al.; Sardana et al. Table 2/3 baseline) is the one that
reaches its loss with the least *training* compute 6·N·D. Minimising N·D on the curve
x + y = L - E gives (Lagrange, or Sardana et al. Eq. 12 with D_inf = 0)

    alpha · x = beta · y        =>   x = beta/(alpha+beta) · (L - E),   y = alpha/(alpha+beta) · (L - E)

which is not 20 tokens per parameter in general (about 27 for the paper's constants at 1B).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = [
    "LossLaw",
    "LAWS",
    "DEFAULT_LAW",
    "get_law",
    "load_law_file",
    "resolve_law",
    "law_names",
    "loss",
    "min_loss_for_params",
    "params_for_loss",
    "tokens_for_loss",
    "chinchilla_tokens_for_params",
    "chinchilla_params_for_loss",
    "chinchilla_tokens_for_loss",
    "chinchilla_loss_for_params",
    "check_reachable",
]


@dataclass(frozen=True)
class LossLaw:
    """One coefficient set of Eq. 1, with where it comes from."""

    name: str
    A: float
    B: float
    E: float
    alpha: float
    beta: float
    source: str

    def __post_init__(self) -> None:
        for key in ("A", "B", "E", "alpha", "beta"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ValueError(f"law {self.name!r}: {key}={value!r} is not a number; need a finite number > 0")
            if not math.isfinite(value) or value <= 0:
                raise ValueError(f"law {self.name!r}: {key}={value!r}; need a finite number > 0")
            object.__setattr__(self, key, float(value))

    def as_dict(self) -> dict:
        return {"name": self.name, "A": self.A, "B": self.B, "E": self.E,
                "alpha": self.alpha, "beta": self.beta, "source": self.source}


_SARDANA_T1 = "Sardana et al. 2024 (arXiv:2401.00448v2), Table 1"

LAWS: dict[str, LossLaw] = {
    law.name: law
    for law in (
        LossLaw("chinchilla", 406.4, 410.7, 1.69, 0.336, 0.283,
                "Hoffmann et al. 2022 law 3 with alpha=0.336, beta=0.283 as in De Vries (2023); the values "
                "Sardana et al. 2024 use throughout (Appendix A, footnote 2) and their released code's default"),
        LossLaw("hoffmann-rounded", 406.4, 410.7, 1.69, 0.34, 0.28,
                "Hoffmann et al. 2022, Eq. 10 as printed (alpha, beta rounded to 0.34, 0.28); also the "
                "'Chinchilla' row of Sardana et al. 2024 Table 1"),
        LossLaw("besiroglu2024", 482.01, 2085.43, 1.8172, 0.3478, 0.3658,
                "Besiroglu et al. 2024, 'Chinchilla scaling: a replication attempt' (arXiv:2404.10102), "
                "refit of Hoffmann et al.'s data (Huber on log loss, L-BFGS, bootstrap)"),
        LossLaw("sardana-le100", 7.199, 25.97, 0.17, 0.08, 0.13,
                f"{_SARDANA_T1}, row '<=100 tok/param' (fit to their MPT runs)"),
        LossLaw("sardana-le250", 14.23, 39.54, 0.98, 0.13, 0.16,
                f"{_SARDANA_T1}, row '<=250 tok/param'"),
        LossLaw("sardana-le500", 17.07, 35.80, 0.95, 0.13, 0.16,
                f"{_SARDANA_T1}, row '<=500 tok/param'"),
        LossLaw("sardana-all", 33.66, 138.9, 1.45, 0.18, 0.24,
                f"{_SARDANA_T1}, row 'All Data'"),
    )
}
DEFAULT_LAW = LAWS["chinchilla"]


def law_names() -> tuple[str, ...]:
    return tuple(LAWS)


def get_law(name: str) -> LossLaw:
    """A named coefficient set (case-insensitive). ValueError listing the known names."""
    law = LAWS.get(str(name).strip().lower())
    if law is None:
        raise ValueError(f"unknown law {name!r}; allowed: {', '.join(LAWS)} or a JSON law file")
    return law


def load_law_file(path: str | Path) -> LossLaw:
    """Read a law JSON file: any object with numeric A, B, E, alpha, beta (other keys ignored).

    The calibrate stage writes `calibrate.schema.LawFile` objects; we read them without importing
    calibrate so the solver stays importable anywhere.
    """
    p = Path(path)
    try:
        data = json.loads(p.read_text())
    except OSError as exc:
        raise ValueError(f"law file {str(p)!r}: cannot read ({exc.strerror or exc})") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"law file {str(p)!r}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
    if not isinstance(data, dict):
        raise ValueError(f"law file {str(p)!r}: need a JSON object with numeric A, B, E, alpha, beta")
    missing = [k for k in ("A", "B", "E", "alpha", "beta") if k not in data]
    if missing:
        raise ValueError(f"law file {str(p)!r}: missing {', '.join(missing)}; need numeric A, B, E, alpha, beta")
    name = str(data.get("name") or p.stem)
    prov = data.get("provenance")
    source = f"law file {p}" + (f" (provenance: {json.dumps(prov, sort_keys=True)[:200]})" if prov else "")
    try:
        return LossLaw(name, data["A"], data["B"], data["E"], data["alpha"], data["beta"], source)
    except ValueError as exc:
        raise ValueError(f"law file {str(p)!r}: {exc}") from None


def resolve_law(name_or_path: str | LossLaw | None) -> LossLaw:
    """A LossLaw from a LossLaw, a known name, or a path to a JSON law file (None -> default)."""
    if name_or_path is None:
        return DEFAULT_LAW
    if isinstance(name_or_path, LossLaw):
        return name_or_path
    text = str(name_or_path)
    if text.strip().lower() in LAWS:
        return LAWS[text.strip().lower()]
    if text.endswith(".json") or Path(text).is_file():
        return load_law_file(text)
    return get_law(text)


# --------------------------------------------------------------------------- Eq. 1 and inverses


def _arr(v) -> np.ndarray:
    return np.asarray(v, dtype=float)


def loss(law: LossLaw, params, train_tokens) -> np.ndarray:
    """Eq. 1: L = E + A/N^alpha + B/D^beta."""
    n, d = _arr(params), _arr(train_tokens)
    return law.E + law.A * n ** -law.alpha + law.B * d ** -law.beta


def min_loss_for_params(law: LossLaw, params) -> np.ndarray:
    """The loss an N-parameter model approaches with infinite data: E + A/N^alpha."""
    return law.E + law.A * _arr(params) ** -law.alpha


def params_for_loss(law: LossLaw, target_loss, train_tokens) -> np.ndarray:
    """N with L(N, D) = loss: N = (A / (L - E - B/D^beta))^(1/alpha); nan where D alone cannot reach it."""
    x = _arr(target_loss) - law.E - law.B * _arr(train_tokens) ** -law.beta
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(x > 0, (law.A / np.where(x > 0, x, 1.0)) ** (1.0 / law.alpha), np.nan)


def tokens_for_loss(law: LossLaw, target_loss, params) -> np.ndarray:
    """D with L(N, D) = loss: D = (B / (L - E - A/N^alpha))^(1/beta); nan where N is too small."""
    y = _arr(target_loss) - law.E - law.A * _arr(params) ** -law.alpha
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(y > 0, (law.B / np.where(y > 0, y, 1.0)) ** (1.0 / law.beta), np.nan)


def chinchilla_tokens_for_params(law: LossLaw, params) -> np.ndarray:
    """Training-compute-optimal D for N: alpha·A/N^alpha = beta·B/D^beta  =>  D = (beta·B·N^alpha / (alpha·A))^(1/beta)."""
    n = _arr(params)
    return (law.beta * law.B * n ** law.alpha / (law.alpha * law.A)) ** (1.0 / law.beta)


def chinchilla_loss_for_params(law: LossLaw, params) -> np.ndarray:
    """Loss of the Chinchilla-style model of N params: E + (1 + alpha/beta)·A/N^alpha."""
    return law.E + (1.0 + law.alpha / law.beta) * law.A * _arr(params) ** -law.alpha


def chinchilla_params_for_loss(law: LossLaw, target_loss) -> np.ndarray:
    """N of the Chinchilla-style model reaching `loss`: x = beta/(alpha+beta)·(L-E), N = (A/x)^(1/alpha)."""
    g = _arr(target_loss) - law.E
    x = law.beta / (law.alpha + law.beta) * g
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(g > 0, (law.A / np.where(g > 0, x, 1.0)) ** (1.0 / law.alpha), np.nan)


def chinchilla_tokens_for_loss(law: LossLaw, target_loss) -> np.ndarray:
    """D of the Chinchilla-style model reaching `loss`: y = alpha/(alpha+beta)·(L-E), D = (B/y)^(1/beta)."""
    g = _arr(target_loss) - law.E
    y = law.alpha / (law.alpha + law.beta) * g
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(g > 0, (law.B / np.where(g > 0, y, 1.0)) ** (1.0 / law.beta), np.nan)


def check_reachable(law: LossLaw, target_loss) -> np.ndarray:
    """The losses as an array; ValueError naming the first one that is not finite or not above E."""
    arr = _arr(target_loss)
    bad = ~np.isfinite(arr) | (arr <= law.E)
    if np.any(bad):
        first = float(arr[bad].flat[0]) if arr.ndim else float(arr)
        raise ValueError(
            f"loss {first!r} is unreachable under law {law.name!r}: need a finite loss > E = {law.E!r} "
            f"(the smallest reachable loss, approached only as N and D grow without bound)"
        )
    return arr
