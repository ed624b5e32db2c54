"""What `solver optimize --json` writes (OptimizeResult), and the plan format a report's solution.json
shares with it (solver.report.schema).

A model plan is written the same way everywhere (`plan_record`): params, train_tokens,
tokens_per_param, loss, train_flop, inference_flop, total_flop, and for the cost objective
train_cost_usd, inference_cost_usd, total_cost_usd (FLOP: 6·N per training token, 2·N per
inference token). Every model refuses unknown keys and non-finite numbers. Bump a schema_version on
any change a reader would notice.
"""

from __future__ import annotations

from dataclasses import fields as dataclass_fields
from typing import Any, Literal, Union

from pydantic import Field, create_model

from core.schema.base import Finite as Strict
from solver.optimize.checks import INFERENCE_FLOP_PER_PARAM_TOKEN, TRAIN_FLOP_PER_PARAM_TOKEN
from solver.optimize.laws import LossLaw

OPTIMIZE_SCHEMA_VERSION = 1
SOLUTION_SCHEMA_VERSION = 4


class FlopPlan(Strict):
    """A model of `params` parameters trained on `train_tokens` tokens, and its lifetime FLOP."""

    params: float = Field(gt=0)
    train_tokens: float = Field(gt=0)
    tokens_per_param: float = Field(gt=0)
    loss: float
    train_flop: float = Field(ge=0)
    inference_flop: float = Field(ge=0)
    total_flop: float = Field(ge=0)


class CostPlan(FlopPlan):
    """The same model priced (US dollars)."""

    train_cost_usd: float = Field(ge=0)
    inference_cost_usd: float = Field(ge=0)
    total_cost_usd: float = Field(ge=0)


def plan_record(params, train_tokens, loss, inference_tokens, train_usd=None, inference_usd=None) -> FlopPlan:
    """The one way a plan is written: FlopPlan, or CostPlan when the dollars are given."""
    n, d = float(params), float(train_tokens)
    train = TRAIN_FLOP_PER_PARAM_TOKEN * n * d
    inference = INFERENCE_FLOP_PER_PARAM_TOKEN * n * float(inference_tokens)
    base = dict(params=n, train_tokens=d, tokens_per_param=d / n, loss=float(loss), train_flop=train,
                inference_flop=inference, total_flop=train + inference)
    if train_usd is None:
        return FlopPlan(**base)
    tr, inf = float(train_usd), float(inference_usd)
    return CostPlan(**base, train_cost_usd=tr, inference_cost_usd=inf, total_cost_usd=tr + inf)


def plan_of(model_plan, inference_tokens) -> FlopPlan:
    """plan_record of a scalar `solver.optimize.solve.ModelPlan` (the same numbers, bit for bit)."""
    usd = (model_plan.train_usd, model_plan.inference_usd) if model_plan.train_usd is not None else (None, None)
    return plan_record(model_plan.params, model_plan.train_tokens, model_plan.loss, inference_tokens, *usd)


# The law as written: the fields of solver.optimize.laws.LossLaw (name and source text, the coefficients floats).
LawRecord = create_model("LawRecord", __base__=Strict, **{
    f.name: ((str, ...) if f.name in ("name", "source") else (float, ...)) for f in dataclass_fields(LossLaw)})


class _Result(Strict):
    schema_version: Literal[1] = OPTIMIZE_SCHEMA_VERSION
    saving_fraction: float = Field(ge=0)
    law: LawRecord
    # Extension points (docs/solver.md lists their keys): `inputs` echoes what the objective took (its
    # keys differ between flops and cost, constants and profiles), `provenance` says how, and
    # `data_limit` is solver.optimize.data_limit.limit_record plus the limited baseline, with --max-train-tokens.
    inputs: dict[str, Any]
    provenance: dict[str, Any]
    data_limit: dict[str, Any] | None = None
    warnings: list[str] | None = None  # e.g. tokens per parameter beyond the paper's range


class FlopsResult(FlopPlan, _Result):
    """`optimize --objective flops --json`: the optimum's plan at the top level, the baseline beside it."""

    objective: Literal["flops"] = "flops"
    chinchilla: FlopPlan
    saving_flop: float = Field(ge=0)


class CostResult(CostPlan, _Result):
    """`optimize --objective cost --json`."""

    objective: Literal["cost"] = "cost"
    chinchilla: CostPlan
    saving_usd: float = Field(ge=0)


OptimizeResult = Union[FlopsResult, CostResult]


def optimize_result(comp, inputs: dict) -> OptimizeResult:
    """The JSON object of `optimize` from a scalar `solver.optimize.solve.Comparison`."""
    cost = comp.objective == "cost"
    method = ("Sardana et al. 2024 Eq. 6" if cost else "Sardana et al. 2024 Eq. 3") + (
        ", solved exactly (Eq. 12 in ln y, safeguarded Halley); Chinchilla-style baseline minimises 6ND at equal loss")
    common = dict(
        chinchilla=plan_of(comp.chinchilla, comp.inference_tokens), saving_fraction=float(comp.saving_fraction),
        law=LawRecord(**comp.law.as_dict()), inputs=inputs,
        provenance={"kind": "computed", "tool": "python -m solver optimize", "method": method,
                    "flop_convention": "6N per training token, 2N per inference token"},
    )
    optimal = plan_of(comp.optimal, comp.inference_tokens).model_dump()
    if cost:
        return CostResult(**optimal, **common, saving_usd=float(comp.saving))
    return FlopsResult(**optimal, **common, saving_flop=float(comp.saving))
