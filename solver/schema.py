"""What `solver` writes: `optimize --json` (OptimizeResult) and a report's `solution.json` (Solution).

A model plan is written the same way everywhere (`plan_record`): params, train_tokens,
tokens_per_param, loss, train_flop, inference_flop, total_flop, and for the cost objective
train_cost_usd, inference_cost_usd, total_cost_usd (FLOP: 6·N per training token, 2·N per
inference token). Every model refuses unknown keys and non-finite numbers. Bump a schema_version on
any change a reader would notice; `load_solution` still reads version-1 reports (whose plans said
train_usd / inference_usd / total_usd and had no loss or FLOP keys) and version-2 ones (no
recommendation, sizing, provisioned, hardware, data_limit, front or warnings).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal, Union

from dataclasses import fields as dataclass_fields

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

from solver.checks import INFERENCE_FLOP_PER_PARAM_TOKEN, TRAIN_FLOP_PER_PARAM_TOKEN
from solver.law import LossLaw

OPTIMIZE_SCHEMA_VERSION = 1
SOLUTION_SCHEMA_VERSION = 3


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


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
    """plan_record of a scalar `solver.optimize.ModelPlan` (the same numbers, bit for bit)."""
    usd = (model_plan.train_usd, model_plan.inference_usd) if model_plan.train_usd is not None else (None, None)
    return plan_record(model_plan.params, model_plan.train_tokens, model_plan.loss, inference_tokens, *usd)


# The law as written: the fields of solver.law.LossLaw (name and source text, the coefficients floats).
LawRecord = create_model("LawRecord", __base__=Strict, **{
    f.name: ((str, ...) if f.name in ("name", "source") else (float, ...)) for f in dataclass_fields(LossLaw)})


class _Result(Strict):
    schema_version: Literal[1] = OPTIMIZE_SCHEMA_VERSION
    saving_fraction: float = Field(ge=0)
    law: LawRecord
    inputs: dict[str, Any]
    provenance: dict[str, Any]
    data_limit: dict[str, Any] | None = None  # solver.data_limit.limit_record, with --max-train-tokens
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
    """The JSON object of `optimize` from a scalar `solver.optimize.Comparison`."""
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


# --------------------------------------------------------------------------- solution.json


class ConstantScenario(Strict):
    """Eq. 6 with constant dollars per useful FLOP (the paper's, or a profile's)."""

    optimal: CostPlan
    chinchilla: CostPlan
    saving_fraction: float = Field(ge=0)
    saving_usd: float = Field(ge=0)
    constants: dict[str, Any]
    usd_per_request: float


class ServingScenario(Strict):
    """The N-dependent serving cost (solver.serving: the profile's performance model) minimised by
    optimize_cost_general."""

    optimal: CostPlan
    chinchilla: CostPlan
    saving_fraction: float = Field(ge=0)
    saving_usd: float = Field(ge=0)
    serving_optimal: dict[str, Any]
    serving_chinchilla: dict[str, Any]
    usd_per_request: float


class Scenarios(Strict):
    paper: ConstantScenario
    calibrated: ConstantScenario
    calibrated_n_dependent: ServingScenario | None  # None: the profile has no performance model


class Recommendation(Strict):
    """The plan to act on (a contract other tools read): the cheapest model size that meets the SLO,
    its provisioned fleet and lifetime cost. inference_usd = fleet_usd_per_h × lifetime_h exactly."""

    params: float = Field(gt=0)
    train_tokens: float = Field(gt=0)
    total_usd: float = Field(ge=0)
    train_usd: float = Field(ge=0)
    inference_usd: float = Field(ge=0)
    meets_slo: bool
    tpot_p90_s: float | None
    ttft_p90_s: float | None
    fleet_devices: int = Field(ge=0)
    fleet_usd_per_h: float = Field(ge=0)
    lifetime_h: float = Field(gt=0)


class Solution(Strict):
    """Every number of a sizing report (`solver.report.compute_solution`), as solution.json stores it.

    Sections other than the scenarios are kept as plain objects (their keys are documented in
    docs/report.md); a new report section adds its field here.
    """

    schema_version: Literal[3] = SOLUTION_SCHEMA_VERSION
    kind: Literal["sizing_report"] = "sizing_report"
    report_name: str | None = None
    warnings: list[str] = Field(default_factory=list)
    # None when no model size meets the SLO (sizing.message says why) or without a performance model
    recommendation: Recommendation | None = None
    target: dict[str, Any]
    demand: dict[str, Any]
    law: LawRecord
    train: dict[str, Any]
    scenarios: Scenarios
    shift: dict[str, Any] | None
    fleet: dict[str, Any] | None
    crossover: dict[str, Any]
    maps: dict[str, Any]
    cost_curves: dict[str, Any]
    decode_curve: dict[str, Any]
    prediction_check: dict[str, Any] | None = None  # the performance model's held-out errors
    sizing: dict[str, Any] | None = None  # SLO-constrained vs unconstrained, provisioned vs full utilisation
    provisioned: dict[str, Any] | None = None  # Eq. 6 with inference $/FLOP / utilisation
    hardware: dict[str, Any] | None = None  # one row per inference profile, and the cheapest
    data_limit: dict[str, Any] | None = None  # --max-train-tokens (solver.data_limit)
    front: dict[str, Any] | None = None  # the throughput-latency front (solver.report_front)
    assumptions: dict[str, Any]
    provenance: dict[str, Any]


_V1_KEYS = {"train_usd": "train_cost_usd", "inference_usd": "inference_cost_usd", "total_usd": "total_cost_usd"}


def upgrade_solution(data: dict) -> dict:
    """A version-1 or -2 solution dict in version 3's shape; others unchanged.

    1 -> 2: plans renamed and completed. 2 -> 3: only new keys (recommendation, sizing, provisioned,
    hardware, data_limit, front, warnings), which an old report did not compute: left absent (None).
    """
    if data.get("schema_version") == 2:
        data = dict(data)
        data["schema_version"] = SOLUTION_SCHEMA_VERSION
        return data
    if data.get("schema_version") != 1:
        return data
    data = json.loads(json.dumps(data))
    loss = data["target"]["loss"]
    tokens = data["demand"]["inference_tokens"]
    for scen in data["scenarios"].values():
        for key in ("optimal", "chinchilla"):
            old = scen[key]
            scen[key] = plan_record(old["params"], old["train_tokens"], loss, tokens, old["train_usd"],
                                    old["inference_usd"]).model_dump()
    data["schema_version"] = SOLUTION_SCHEMA_VERSION
    return data


def load_solution(path: str | Path) -> Solution:
    """Read a report's solution.json (version 1, 2 or 3). ValueError, one line "FILE: FIELD: problem"."""
    p = Path(path)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"{p}: cannot read: {getattr(exc, 'strerror', None) or exc}") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"{p}: not JSON: {exc.msg} at line {exc.lineno}") from None
    if not isinstance(data, dict):
        raise ValueError(f"{p}: top level must be a JSON object")
    try:
        return Solution.model_validate(upgrade_solution(data))
    except (ValidationError, KeyError, TypeError) as exc:
        if isinstance(exc, ValidationError):
            err = exc.errors()[0]
            where = ".".join(str(x) for x in err.get("loc", ())) or "(top level)"
            raise ValueError(f"{p}: {where}: {err.get('msg', 'invalid')}") from None
        raise ValueError(f"{p}: not a version-1, -2 or -3 solution ({type(exc).__name__}: {exc})") from None
