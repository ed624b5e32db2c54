"""A loss-law file, `results/laws/*.json` (calibrate law writes it; solver --law reads it)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from core.schema.base import FileModel, read_json_object

LAW_SCHEMA_VERSION = 1


class LawFile(FileModel):
    """A loss-law coefficient set L(N, D) = E + A/N^alpha + B/D^beta, as `solver --law FILE` reads it.

    `intervals` holds optional 95 % bootstrap intervals as {"A": [low, high], ...}. A hand-written
    file needs only A, B, E, alpha, beta (docs/solver.md): `load` takes a missing `name` from the
    file's stem and `provenance` defaults to empty; any other key is refused.
    """

    schema_version: Literal[1] = LAW_SCHEMA_VERSION
    kind: Literal["loss_law"] = "loss_law"
    name: str
    A: float = Field(gt=0, allow_inf_nan=False)
    B: float = Field(gt=0, allow_inf_nan=False)
    E: float = Field(gt=0, allow_inf_nan=False)
    alpha: float = Field(gt=0, allow_inf_nan=False)
    beta: float = Field(gt=0, allow_inf_nan=False)
    intervals: dict[str, tuple[float, float]] | None = None
    provenance: dict[str, object] = Field(default_factory=dict)  # extension point: a hand-written file may say anything

    @classmethod
    def load(cls, path: str | Path) -> "LawFile":
        data = read_json_object(path)
        data.setdefault("name", Path(path).stem)
        return cls.from_dict(data, path)
