"""GPU data table: dense peak FLOP/s per datatype, memory, bandwidth and default price, with sources.

The data live in `core/data/gpus.toml` (one [[device]] per GPU); this module only reads and
queries them. Peaks are *dense* (sparse datasheet figures are 2x and never used); a peak that is
not published or not supported is None, never guessed. Prices are the paper's (Sardana et al.
2024, B.3) where it gives one, else None: the caller must then pass a price.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from types import MappingProxyType
from typing import Mapping

DTYPES = ("fp32", "tf32", "bf16", "fp16", "fp8", "int8")

__all__ = ["DTYPES", "Device", "devices", "device_names", "get_device", "match_nvml_name", "peak_flop_per_s"]


@dataclass(frozen=True)
class Device:
    key: str  # "a100-40gb-sxm"
    aliases: tuple[str, ...]  # "a100-40gb", ...
    nvml_patterns: tuple[str, ...]  # lower-case substrings that must ALL appear in the normalised NVML name
    memory_bytes: int
    peak_flop_per_s: Mapping[str, float | None]  # dense, per dtype, per device
    peak_source: str
    memory_bandwidth_bytes_per_s: float
    bandwidth_source: str
    usd_per_h: float | None
    usd_per_h_source: str | None
    interconnect_bytes_per_s: float | None = None  # GPU-to-GPU link, per direction, per GPU (NVLink or PCIe)
    interconnect_source: str | None = None


def _device_from_entry(entry: dict) -> Device:
    peaks = dict(entry.get("peak_flop_per_s", {}))
    unknown = set(peaks) - set(DTYPES)
    if unknown:
        raise ValueError(f"gpus.toml {entry.get('key')!r}: unknown dtype(s) {sorted(unknown)}; allowed: {', '.join(DTYPES)}")
    full = {dt: (float(peaks[dt]) if dt in peaks else None) for dt in DTYPES}
    price = entry.get("usd_per_h")
    link = entry.get("interconnect_bytes_per_s")
    return Device(
        key=entry["key"],
        aliases=tuple(entry.get("aliases", ())),
        nvml_patterns=tuple(entry["nvml_patterns"]),
        memory_bytes=int(entry["memory_bytes"]),
        peak_flop_per_s=MappingProxyType(full),
        peak_source=entry["peak_source"],
        memory_bandwidth_bytes_per_s=float(entry["memory_bandwidth_bytes_per_s"]),
        bandwidth_source=entry["bandwidth_source"],
        usd_per_h=None if price is None else float(price),
        usd_per_h_source=entry.get("usd_per_h_source") if price is not None else None,
        interconnect_bytes_per_s=None if link is None else float(link),
        interconnect_source=entry.get("interconnect_source") if link is not None else None,
    )


@lru_cache(maxsize=1)
def devices() -> tuple[Device, ...]:
    """All devices of the table, in file order."""
    text = resources.files("core").joinpath("data/gpus.toml").read_text(encoding="utf-8")
    return tuple(_device_from_entry(e) for e in tomllib.loads(text)["device"])


def device_names() -> tuple[str, ...]:
    """Every accepted spelling: keys and aliases."""
    out: list[str] = []
    for d in devices():
        out.append(d.key)
        out.extend(d.aliases)
    return tuple(out)


def get_device(name: str) -> Device:
    """The device with this key or alias (case-insensitive). ValueError listing the allowed names."""
    wanted = str(name).strip().lower()
    for d in devices():
        if wanted == d.key or wanted in (a.lower() for a in d.aliases):
            return d
    raise ValueError(f"unknown GPU {name!r}; allowed: {', '.join(device_names())}")


def _normalise(nvml_name: str) -> str:
    return " " + re.sub(r"[\s\-_]+", " ", nvml_name.lower()).strip() + " "


_MEMORY_TOKEN = re.compile(r"^\d+gb$")


def match_nvml_name(nvml_name: str, memory_bytes: int | None = None) -> Device | None:
    """The table entry for an NVML device name, most specific pattern set first.

    When several entries match equally well (or the name lacks its memory size, e.g. "NVIDIA
    A100-SXM4"), `memory_bytes` (NVML total memory) picks the closest within 15 %. None if no match.
    """
    name = _normalise(nvml_name)

    def closest(cands: list[Device]) -> Device | None:
        if not cands:
            return None
        if memory_bytes is None:
            return cands[0] if len(cands) == 1 else None
        best = min(cands, key=lambda d: abs(d.memory_bytes - memory_bytes))
        return best if abs(best.memory_bytes - memory_bytes) <= 0.15 * best.memory_bytes else None

    def specificity(d: Device) -> tuple[int, int]:
        return (len(d.nvml_patterns), sum(len(p) for p in d.nvml_patterns))

    full = sorted((d for d in devices() if all(p in name for p in d.nvml_patterns)), key=specificity, reverse=True)
    if full:
        top = [d for d in full if specificity(d) == specificity(full[0])]
        return top[0] if len(top) == 1 else closest(top)
    # The name may omit the memory size: match the other patterns and decide by memory.
    relaxed = [
        d for d in devices()
        if any(_MEMORY_TOKEN.match(p.strip()) for p in d.nvml_patterns)
        and all(p in name for p in d.nvml_patterns if not _MEMORY_TOKEN.match(p.strip()))
    ]
    return closest(relaxed)


def peak_flop_per_s(device: Device, dtype: str) -> float:
    """Dense peak of `device` in `dtype`. ValueError naming the dtype and the allowed/known ones."""
    dt = str(dtype).strip().lower()
    if dt not in DTYPES:
        raise ValueError(f"unknown dtype {dtype!r}; allowed: {', '.join(DTYPES)}")
    value = device.peak_flop_per_s.get(dt)
    if value is None:
        known = [k for k, v in device.peak_flop_per_s.items() if v is not None]
        raise ValueError(
            f"no dense {dt} peak known for {device.key} ({device.peak_source}); "
            f"known: {', '.join(known) or 'none'}; pass the peak explicitly (--train-peak-flop-per-s / --inference-peak-flop-per-s)"
        )
    return value
