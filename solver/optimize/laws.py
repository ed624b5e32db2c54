"""The solver's named loss laws (Sardana et al. 2024, Eq. 1: L(N, D) = E + A / N^alpha + B / D^beta).

N = parameters, D = training tokens, L = pre-training cross-entropy loss (nats/token). The formula
and its closed-form inverses live in `calibrate.law.formula` (one home; re-exported here so `solver.optimize.laws.loss`
and friends keep working); this module holds `LossLaw` (one coefficient set with its source), the
named sets of the literature, and law files (`core.schema.law.LawFile`, unknown keys refused).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

from calibrate.law.formula import (
    check_reachable,
    chinchilla_loss_for_params,
    chinchilla_params_for_loss,
    chinchilla_tokens_for_loss,
    chinchilla_tokens_for_params,
    loss,
    min_loss_for_params,
    params_for_loss,
    tokens_for_loss,
)
from core.schema.law import LawFile

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
    """Read a law file (`core.schema.law.LawFile`: A, B, E, alpha, beta, optional name and provenance;
    any other key is refused). ValueError, one line "FILE: FIELD: problem"."""

    p = Path(path)
    f = LawFile.load(p)
    prov = f.provenance
    source = f"law file {p}" + (f" (provenance: {json.dumps(prov, sort_keys=True, default=str)[:200]})" if prov else "")
    try:
        return LossLaw(f.name, f.A, f.B, f.E, f.alpha, f.beta, source)
    except ValueError as exc:
        raise ValueError(f"{p}: {exc}") from None


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
