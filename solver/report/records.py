"""The bases of the sizing report's section models (`solver.report.schema.Solution`) and the records
several sections share (a cost model's optimum against its Chinchilla-style baseline).

Every section of solution.json is a pydantic model defined beside the function that fills it
(`solver.report.sections.SECTIONS`); units stay in the key names. `Section` refuses unknown keys and
non-finite numbers (JSON has neither an infinity nor a NaN: an unbounded figure is written None by the
code that computes it). `Sparse` is a section with keys that are *absent*, not null, in some cases
(those named in its SPARSE): such a key is written only when it was set, so solution.json keeps the
keys it always had.
"""

from __future__ import annotations

import math
from typing import ClassVar

import numpy as np
from pydantic import Field, model_serializer

from core.schema.base import Finite
from solver.optimize.schema import CostPlan, plan_of


class Section(Finite):
    """A part of solution.json: unknown keys and non-finite numbers are refused."""


class Sparse(Section):
    """A section whose keys named in SPARSE are left out of the dump (absent from solution.json, not
    null) unless they were set; each of them defaults to None."""

    SPARSE: ClassVar[frozenset[str]] = frozenset()

    @model_serializer(mode="wrap")
    def _omit_unset(self, handler):
        data = handler(self)
        if isinstance(data, dict):
            for key in self.SPARSE - self.model_fields_set:
                data.pop(key, None)
        return data


class Comparison(Section):
    """A cost model's optimum and the equal-loss Chinchilla-style model priced the same way."""

    optimal: CostPlan
    chinchilla: CostPlan
    saving_fraction: float = Field(ge=0)
    saving_usd: float = Field(ge=0)


def f(x) -> float:
    """A numpy scalar (or 0-d array) as a Python float."""
    return float(np.asarray(x))


def finite(x):
    """JSON has no infinity: an unbounded figure (e.g. a queueing wait at utilisation 1) is None."""
    return x if x is None or math.isfinite(x) else None


def comparison_of(cmp) -> dict:
    """The Comparison fields of a scalar `solver.optimize.solve.Comparison`."""
    return {
        "optimal": plan_of(cmp.optimal, cmp.inference_tokens),
        "chinchilla": plan_of(cmp.chinchilla, cmp.inference_tokens),
        "saving_fraction": f(cmp.saving_fraction),
        "saving_usd": f(cmp.saving),
    }
