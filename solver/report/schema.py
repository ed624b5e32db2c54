"""What a sizing report stores: `solution.json` (Solution), its sections, and the reader of older files.

Each section's model is defined beside the code that fills it (`solver.report.sections.SECTIONS`) and
re-exported here. Version 4 has the keys of version 3, every one of them typed; `load_solution` reads
versions 1 to 4 (`upgrade_solution`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, ValidationError

from core.schema.base import Finite as Strict
from solver.optimize.schema import SOLUTION_SCHEMA_VERSION, LawRecord, plan_record
from solver.report.curves import CostCurves, Crossover, CrossoverDemand, DecodeCurve, DecodePoint, MapRatios, Maps
from solver.report.front import Front, FrontHardware, FrontOperatingPoint, FrontPoint, FrontSeries, FrontSlo
from solver.report.hardware import Fleet, HardwareRow, HardwareSection, Recommendation
from solver.report.prediction import PredictionCheck
from solver.report.records import Comparison, Section, Sparse
from solver.report.sections import (
    Assumptions,
    CalibratedConstants,
    CalibratedScenario,
    ConstantScenario,
    Demand,
    PaperConstants,
    PaperScenario,
    Provenance,
    ProvenanceInputs,
    Scenarios,
    ServingScenario,
    Shift,
    Target,
    Train,
)
from solver.report.sizing import DataLimit, NoSizing, Provisioned, ServingPlan, Sizing

__all__ = [
    "SOLUTION_SCHEMA_VERSION", "Assumptions", "CalibratedConstants", "CalibratedScenario", "Comparison",
    "ConstantScenario", "CostCurves", "Crossover", "CrossoverDemand", "DataLimit", "DecodeCurve", "DecodePoint",
    "Demand", "Fleet", "Front", "FrontHardware", "FrontOperatingPoint", "FrontPoint", "FrontSeries", "FrontSlo",
    "HardwareRow", "HardwareSection", "MapRatios", "Maps", "NoSizing", "PaperConstants", "PaperScenario",
    "PredictionCheck", "Provenance", "ProvenanceInputs", "Provisioned", "Recommendation", "Scenarios", "Section",
    "ServingPlan", "ServingScenario", "Shift", "Sizing", "Solution", "Sparse", "Target", "Train", "load_solution",
    "upgrade_solution",
]

SizingSection = Annotated[Sizing | NoSizing, Field(discriminator="status")]


class Solution(Strict):
    """Every number of a sizing report (`solver.report.compute.compute_solution`), as solution.json stores it.

    Each section is the model of the function that fills it (docs/report.md lists the keys); a new
    report section adds its field here.
    """

    schema_version: Literal[4] = SOLUTION_SCHEMA_VERSION
    kind: Literal["sizing_report"] = "sizing_report"
    report_name: str | None = None
    warnings: list[str] = Field(default_factory=list)
    # None when no model size meets the SLO (sizing.message says why) or without a performance model
    recommendation: Recommendation | None = None
    target: Target
    demand: Demand
    law: LawRecord
    train: Train
    scenarios: Scenarios
    shift: Shift | None  # None: the profile has no performance model
    fleet: Fleet | None  # None: no recommended model
    crossover: Crossover
    maps: Maps
    cost_curves: CostCurves
    decode_curve: DecodeCurve
    prediction_check: PredictionCheck | None = None  # the performance model's held-out errors
    sizing: SizingSection | None = None  # SLO-constrained vs unconstrained, provisioned vs full utilisation
    provisioned: Provisioned | None = None  # Eq. 6 with inference $/FLOP / utilisation
    hardware: HardwareSection | None = None  # one row per inference profile, and the cheapest
    data_limit: DataLimit | None = None  # --max-train-tokens (solver.optimize.data_limit)
    front: Front | None = None  # the throughput-latency front (solver.report.front)
    assumptions: Assumptions
    provenance: Provenance


# --------------------------------------------------------------------------- older versions

_V1_KEYS = {"train_usd": "train_cost_usd", "inference_usd": "inference_cost_usd", "total_usd": "total_cost_usd"}
_V1_SHAPE = {"weight_bytes_per_param": "matmul_bytes_per_param", "embedding_bytes_per_param": "dense_bytes_per_param",
             "kv_bytes": "kv_dtype_bytes"}
# keys a version-1 or -2 report did not compute: None after the upgrade (the models say "(v3)")
_V3_SERVING = ("tpot_p90_s", "ttft_p90_s", "queue_wait_p90_s", "utilisation_at_peak", "usd_per_request_at_slo")
_V3_FLEET = ("mean_requests_per_s", "utilisation", "utilisation_at_peak", "fleet_utilisation_at_peak",
             "provisioned_usd_per_request", "provisioned_usd_per_million_tokens", "tpot_p90_s", "ttft_p90_s",
             "lifetime_h")
_V3_INPUTS = ("demand_source", "demand_hours", "max_train_tokens", "repeat_data")


def _serving_plans(data: dict) -> list[dict]:
    """The serving plans of a solution dict (scenarios.calibrated_n_dependent, shift)."""
    nd, sh = data["scenarios"].get("calibrated_n_dependent"), data.get("shift")
    return [p for p in ((nd or {}).get("serving_optimal"), (nd or {}).get("serving_chinchilla"),
                        (sh or {}).get("serving_constant_mfu_plan")) if p is not None]


def _v1_to_v2(data: dict) -> None:
    """Plans renamed and completed; the curve-based serving model's keys in today's names (its replica is
    tensor parallel only), keys no later version has dropped (decode_bound, the interpolated decode
    curve, the curve extrapolation rule, the hardware's measured bandwidth and prefill rate)."""
    loss = data["target"]["loss"]
    tokens = data["demand"]["inference_tokens"]
    for scen in data["scenarios"].values():
        if scen is None:
            continue
        for key in ("optimal", "chinchilla"):
            old = scen[key]
            scen[key] = plan_record(old["params"], old["train_tokens"], loss, tokens, old["train_usd"],
                                    old["inference_usd"]).model_dump()
    for p in _serving_plans(data):
        p.pop("decode_bound", None)
        if "decode_tokens_per_s" in p:
            p["output_tokens_per_s"] = p.pop("decode_tokens_per_s")
        if "replica_s_per_request" in p:
            p["requests_per_s"] = 1.0 / p.pop("replica_s_per_request")
        p.setdefault("tensor_parallel", p["devices_per_replica"])
        p.setdefault("pipeline_parallel", 1)
        p.setdefault("provenance", "predicted (the profile's decode curve at this shape; a version-1 report)")
    a = data["assumptions"]
    a.pop("curve_extrapolation", None)
    if "fleet_model" in a:
        a["serving_model"] = a.pop("fleet_model")
    a["shape"] = {_V1_SHAPE.get(k, k): v for k, v in a["shape"].items()}
    if a.get("hardware") is not None:
        for key in ("bandwidth_bytes_per_s", "prefill_flop_per_s"):
            a["hardware"].pop(key, None)
        for key in ("interconnect_bytes_per_s", "allreduce_latency_s"):
            a["hardware"].setdefault(key, None)
    dc = data["decode_curve"]
    dc.pop("interpolated_flop_per_s", None)
    dc.setdefault("predicted_flop_per_s", None)
    data["provenance"]["inputs"].pop("extrapolation", None)


def _v2_to_v3(data: dict) -> None:
    """Version 3 only added keys: those inside the sections version 2 had are None (not computed then);
    the new sections (recommendation, sizing, provisioned, hardware, data_limit, front, warnings) are
    left absent (None)."""
    for p in _serving_plans(data):
        for key in _V3_SERVING:
            p.setdefault(key, None)
    if data.get("fleet") is not None:
        for key in _V3_FLEET:
            data["fleet"].setdefault(key, None)
    wl = data["assumptions"].get("workload")
    if wl is not None:
        wl.setdefault("tpot_p90_ratio", None)
        wl.setdefault("ttft_p90_ratio", None)
    for key in _V3_INPUTS:
        data["provenance"]["inputs"].setdefault(key, None)


def upgrade_solution(data: dict) -> dict:
    """A version-1, -2 or -3 solution dict in version 4's shape (a copy); others unchanged.

    1 -> 2: plans renamed and completed, the serving model's keys renamed (`_v1_to_v2`). 2 -> 3: keys
    added (`_v2_to_v3`). 3 -> 4: the same keys, every one typed: nothing to change.
    """
    version = data.get("schema_version")
    if version not in (1, 2, 3):
        return data
    data = json.loads(json.dumps(data))
    if version == 1:
        _v1_to_v2(data)
    if version <= 2:
        _v2_to_v3(data)
    data["schema_version"] = SOLUTION_SCHEMA_VERSION
    return data


def load_solution(path: str | Path) -> Solution:
    """Read a report's solution.json (version 1 to 4). ValueError, one line "FILE: FIELD: problem"."""
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
    except (ValidationError, KeyError, TypeError, AttributeError) as exc:
        if isinstance(exc, ValidationError):
            err = exc.errors()[0]
            where = ".".join(str(x) for x in err.get("loc", ())) or "(top level)"
            raise ValueError(f"{p}: {where}: {err.get('msg', 'invalid')}") from None
        raise ValueError(f"{p}: not a version-1 to -4 solution ({type(exc).__name__}: {exc})") from None
