"""A device's measured peaks and bandwidth, `results/hardware/<name>.json` (bench.hardware.cache)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import AliasChoices, Field

from core.schema.base import Strict

HARDWARE_SCHEMA_VERSION = 2  # 1 spelled the key `cache_version` (results/hardware/cpu-amd-epyc-2c.json); same content


class HardwareProvenance(Strict):
    kind: Literal["measured"]
    date_utc: str
    method: str
    versions: dict[str, str | None]
    loadavg_1_5_15: list[float] | None = None
    threads: int | None = None


class HardwareRecord(Strict):
    """results/hardware/<name>.json: measured dense matmul peaks and memory bandwidth of a device
    (bench.hardware.device), with how they were measured. `datasheet` (GPUs only) holds the table values
    the measurement tests, from core/data/gpus.toml, with their sources."""

    schema_version: Literal[1, 2] = Field(
        default=HARDWARE_SCHEMA_VERSION, validation_alias=AliasChoices("schema_version", "cache_version")
    )
    kind: Literal["cpu", "gpu"] = "cpu"
    name: str
    device_name: str
    cpu_count: int | None = None  # cores used (CPU)
    device_index: int | None = None  # CUDA device measured (GPU)
    peak_flop_per_s: dict[str, float]
    # Extension points: each GEMM path and bandwidth kernel measured records its own details (sizes,
    # best-of-k times, which paths existed here); readers use only the typed peaks and bandwidth.
    peak_details: dict[str, Any] = Field(default_factory=dict)
    memory_bandwidth_bytes_per_s: float
    bandwidth_details: dict[str, Any] = Field(default_factory=dict)
    memory_bytes: int | None = None
    datasheet: dict[str, Any] | None = None  # extension point: the GPU table row tested, with its sources
    provenance: HardwareProvenance
