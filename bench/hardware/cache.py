"""The hardware records under `results/hardware/<name>.json`: read, write, and measure only when needed.

A record (core.schema.hardware.HardwareRecord, measured by bench.hardware.microbench) is reused while the device, the
core count and the torch version match, so a sweep measures once; an older record is renamed
`<name>.replaced-<UTC>.json` (kept), never overwritten.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from bench.hardware import microbench
from bench.hardware.microbench import cpu_count, cpu_hardware_name, cpu_isa_tier, cpu_model_name
from core.errors import SchemaError
from core.files import set_aside
from core.provenance import package_versions
from core.schema.base import load_file, save_file
from core.schema.hardware import HARDWARE_SCHEMA_VERSION, HardwareRecord

CACHE_DIR = Path("results/hardware")


def cache_path(cache_dir: str | os.PathLike, name: str) -> Path:
    return Path(cache_dir) / f"{name}.json"


def read_cached(path: Path) -> HardwareRecord | None:
    """The cached record at `path`, or None when there is none or it does not match the schema."""
    try:
        return load_file(HardwareRecord, path)
    except (FileNotFoundError, SchemaError):
        return None


def write_cached(path: Path, rec: HardwareRecord) -> Path:
    """Write `rec` to `path`; an older record there is renamed `<name>.replaced-<UTC>.json` (kept)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    set_aside(path)
    return save_file(rec.model_copy(update={"schema_version": HARDWARE_SCHEMA_VERSION}), path)


def load_or_measure_cpu(
    cache_dir: str | os.PathLike = CACHE_DIR, *, remeasure: bool = False, seconds: float = 3.0, **kw: Any
) -> HardwareRecord:
    """The cached CPU record when it matches this CPU, core count and torch version, else a fresh
    measurement written to the cache."""
    name = cpu_hardware_name(cpu_model_name(), cpu_count(), cpu_isa_tier())
    path = cache_path(cache_dir, name)
    if not remeasure:
        rec = read_cached(path)
        torch_version = package_versions(("torch",))["torch"]
        if rec is not None and rec.cpu_count == cpu_count() and rec.provenance.versions.get("torch") == torch_version:
            return rec
    rec = microbench.measure_cpu(seconds, **kw)
    write_cached(path, rec)
    return rec


def measure_and_cache_gpu(cache_dir: str | os.PathLike = CACHE_DIR, *, device_index: int = 0,
                          seconds: float = 3.0, **kw: Any) -> tuple[HardwareRecord, Path]:
    """Measure CUDA device `device_index` and write `results/hardware/<table key>.json`."""
    rec = microbench.measure_gpu(device_index, seconds, **kw)
    return rec, write_cached(cache_path(cache_dir, rec.name), rec)
