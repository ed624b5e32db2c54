"""What a sizing report stores: `solution.json` (Solution), its sections, and the reader of older files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError

from core.schema.base import Finite as Strict
from solver.optimize.schema import CostPlan, LawRecord, plan_record

SOLUTION_SCHEMA_VERSION = 3


class ConstantScenario(Strict):
    """Eq. 6 with constant dollars per useful FLOP (the paper's, or a profile's)."""

    optimal: CostPlan
    chinchilla: CostPlan
    saving_fraction: float = Field(ge=0)
    saving_usd: float = Field(ge=0)
    constants: dict[str, Any]
    usd_per_request: float


class ServingScenario(Strict):
    """The N-dependent serving cost (solver.optimize.serving: the profile's performance model) minimised by
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
    """Every number of a sizing report (`solver.report.compute.compute_solution`), as solution.json stores it.

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
    data_limit: dict[str, Any] | None = None  # --max-train-tokens (solver.optimize.data_limit)
    front: dict[str, Any] | None = None  # the throughput-latency front (solver.report.front)
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
