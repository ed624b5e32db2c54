"""Which device a run measured, and the peaks its MFU and MBU are divided by.

GPU: NVML names the devices; `core.gpus.match_nvml_name` maps a name (and memory size, which
tells A100-40GB from -80GB) to the data table, which carries the *dense* peak per datatype, the
memory bandwidth, the memory size and a default $/GPU-hour, each with its source. An unknown GPU
gets null peaks and a note, and the run still goes on.

CPU: measured (bench.hardware.microbench: matmul micro-benchmarks per datatype and GEMM path, STREAM-style
bandwidth), cached by bench.hardware.cache in `results/hardware/<name>.json` so a sweep measures once, and priced with an
assumed cloud $/h stated below.

Every value can be overridden (`overrides` from the CLI or a TOML file); for `--endpoint` runs the
hardware is what the user declares (kind "remote").
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

from bench.hardware.cache import CACHE_DIR, load_or_measure_cpu
from bench.hardware.nvml import nvml_devices, visible_device_indices
from core import gpus
from core.files import slug
from core.gpus import DTYPES
from core.schema.hardware import HardwareRecord
from core.schema.run import HardwareInfo

# The $/h of this CPU is an assumption, not a measurement: AWS m6a.large (2 vCPU AMD EPYC 3rd gen
# "Milan", the family of this machine's CPU; 8 GiB) on-demand Linux, us-east-1 list price.
CPU_USD_PER_H_DEFAULT = 0.0864
CPU_USD_PER_H_SOURCE = (
    "assumption: AWS m6a.large (2 vCPU AMD EPYC Milan) on-demand Linux us-east-1 list price "
    "$0.0864/h, a comparable 2-vCPU cloud instance; override with usd_per_h"
)
OVERRIDE_KEYS = (
    "name",  # label; or a table key/alias, which then fills every value from the table
    "device",  # table key/alias to start from (same as a name that is a table key)
    "device_name",
    "peak_flop_per_s",  # {dtype: FLOP/s}
    *(f"peak_{d}_flop_per_s" for d in DTYPES),
    "memory_bytes",
    "memory_bandwidth_bytes_per_s",
    "usd_per_h",
)


# --------------------------------------------------------------------------- overrides


def check_overrides(overrides: Mapping[str, Any] | None) -> dict[str, Any]:
    """Validate an overrides dict: known keys, positive finite numbers. Returns a plain dict."""
    out = dict(overrides or {})
    unknown = sorted(set(out) - set(OVERRIDE_KEYS))
    if unknown:
        raise ValueError(f"unknown hardware override(s) {unknown}; allowed: {', '.join(OVERRIDE_KEYS)}")
    peaks = dict(out.get("peak_flop_per_s") or {})
    for d in DTYPES:
        if f"peak_{d}_flop_per_s" in out:
            peaks[d] = out.pop(f"peak_{d}_flop_per_s")
    bad_dtypes = sorted(set(peaks) - set(DTYPES))
    if bad_dtypes:
        raise ValueError(f"peak_flop_per_s dtype(s) {bad_dtypes} unknown; allowed: {', '.join(DTYPES)}")
    for d, v in peaks.items():
        _positive(f"peak_flop_per_s[{d}]", v)
    if peaks:
        out["peak_flop_per_s"] = {d: float(v) for d, v in peaks.items()}
    for key in ("memory_bytes", "memory_bandwidth_bytes_per_s", "usd_per_h"):
        if key in out:
            _positive(key, out[key], allow_zero=(key == "usd_per_h"))
    return out


def _positive(name: str, value: Any, *, allow_zero: bool = False) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    ok = ok and (value >= 0 if allow_zero else value > 0)
    if not ok:
        raise ValueError(f"hardware override {name}={value!r}: must be a finite number {'>= 0' if allow_zero else '> 0'}")


def apply_overrides(info: HardwareInfo, overrides: Mapping[str, Any]) -> HardwareInfo:
    """A copy of `info` with the overridden values, each source saying "override"."""
    o = check_overrides(overrides)
    upd: dict[str, Any] = {}
    if "name" in o:
        upd["name"] = str(o["name"])
    if "device_name" in o:
        upd["device_name"] = str(o["device_name"])
    if "peak_flop_per_s" in o:
        peaks = dict(info.peak_flop_per_s)
        peaks.update(o["peak_flop_per_s"])
        upd["peak_flop_per_s"] = peaks
        upd["peak_source"] = f"override: {sorted(o['peak_flop_per_s'])}; other dtypes: {info.peak_source}"
    if "memory_bytes" in o:
        upd["memory_bytes"] = int(o["memory_bytes"])
    if "memory_bandwidth_bytes_per_s" in o:
        upd["memory_bandwidth_bytes_per_s"] = float(o["memory_bandwidth_bytes_per_s"])
        upd["bandwidth_source"] = "override"
    if "usd_per_h" in o:
        upd["usd_per_h"] = float(o["usd_per_h"])
        upd["usd_per_h_source"] = "override"
    return info.model_copy(update=upd)


def check_dtype(dtype: str) -> str:
    if dtype not in DTYPES:
        raise ValueError(f"dtype_for_peak={dtype!r}: allowed {', '.join(DTYPES)}")
    return dtype


# --------------------------------------------------------------------------- GPU table


def info_from_device(device: Any, *, kind: str, device_name: str, device_count: int) -> HardwareInfo:
    """HardwareInfo from a `core.gpus.Device` table row."""
    peaks = {d: device.peak_flop_per_s.get(d) for d in DTYPES}
    return HardwareInfo(
        name=device.key,
        kind=kind,
        device_name=device_name,
        device_count=device_count,
        peak_flop_per_s=peaks,
        peak_source=f"datasheet (dense): {device.peak_source}",
        memory_bytes=int(device.memory_bytes),
        memory_bandwidth_bytes_per_s=float(device.memory_bandwidth_bytes_per_s),
        bandwidth_source=f"datasheet: {device.bandwidth_source}",
        usd_per_h=device.usd_per_h,
        usd_per_h_source=(
            f"table: {device.usd_per_h_source}" if device.usd_per_h is not None else "unknown: no price in the table; pass usd_per_h"
        ),
    )


def gpu_info_from_nvml(
    devices: list[dict[str, Any]], *, tensor_parallel_size: int, match: Callable[..., Any]
) -> HardwareInfo:
    """HardwareInfo for the first `tensor_parallel_size` NVML devices (pure, given `match`)."""
    if tensor_parallel_size > len(devices):
        raise ValueError(
            f"tensor_parallel_size={tensor_parallel_size} but NVML sees {len(devices)} GPU(s)"
        )
    used = devices[:tensor_parallel_size]
    names = sorted({d["name"] for d in used})
    first = used[0]
    dev = match(first["name"], first["memory_bytes"])
    if dev is not None:
        info = info_from_device(dev, kind="gpu", device_name=first["name"], device_count=tensor_parallel_size)
        if len(names) > 1:
            info = info.model_copy(update={"peak_source": info.peak_source + f"; WARNING mixed GPUs {names}"})
        return info
    return HardwareInfo(
        name="gpu-" + slug(first["name"]),
        kind="gpu",
        device_name=first["name"],
        device_count=tensor_parallel_size,
        peak_flop_per_s={d: None for d in DTYPES},
        peak_source=f"unknown GPU {first['name']!r}: not in core/data/gpus.toml; pass peak overrides",
        memory_bytes=int(first["memory_bytes"]),
        memory_bandwidth_bytes_per_s=None,
        bandwidth_source=None,
        usd_per_h=None,
        usd_per_h_source=f"unknown GPU {first['name']!r}: no price; pass usd_per_h",
    )


def cpu_info_from_record(rec: HardwareRecord) -> HardwareInfo:
    """HardwareInfo from a measured CPU record (pure)."""
    prov = rec.provenance
    measured = {d: rec.peak_flop_per_s.get(d) for d in DTYPES}
    methods = {d: (rec.peak_details.get(d) or {}).get("best_method") for d in rec.peak_flop_per_s}
    return HardwareInfo(
        name=rec.name,
        kind="cpu",
        device_name=rec.device_name,
        device_count=1,  # the CPU socket set the server runs on, all its cores
        peak_flop_per_s=measured,
        peak_source=(
            f"measured {prov.date_utc}: bench.hardware.device matmul micro-benchmark on {rec.cpu_count} cores, "
            f"best path per dtype {methods}, torch {prov.versions.get('torch')}"
        ),
        memory_bytes=rec.memory_bytes,
        memory_bandwidth_bytes_per_s=rec.memory_bandwidth_bytes_per_s,
        bandwidth_source=f"measured {prov.date_utc}: STREAM-style copy/triad (max), torch, {rec.cpu_count} threads",
        usd_per_h=CPU_USD_PER_H_DEFAULT,
        usd_per_h_source=CPU_USD_PER_H_SOURCE,
    )


# --------------------------------------------------------------------------- entry point


def _declared_device(o: Mapping[str, Any]) -> Any:
    """The table row the overrides name: `device` (must exist) or a `name` that is a table key or
    alias (a free-form name is just a label and returns None)."""
    if "device" in o:
        return gpus.get_device(str(o["device"]))
    if "name" in o:
        try:
            return gpus.get_device(str(o["name"]))
        except ValueError:
            return None
    return None


def remote_info(endpoint: str, overrides: Mapping[str, Any], *, tensor_parallel_size: int) -> HardwareInfo:
    """Hardware behind an endpoint: what the user declares. A `name`/`device` that is a table key
    starts from the table row; otherwise `usd_per_h` is required and peaks default to null."""
    o = check_overrides(overrides)
    host = urlsplit(endpoint).hostname or endpoint  # no userinfo / path / query in what we store
    key = o.get("device") or o.get("name")
    device = None
    if key is not None:
        try:
            device = gpus.get_device(str(key))
        except ValueError:
            if "device" in o:
                raise
    if device is not None:
        info = info_from_device(device, kind="remote", device_name=f"{device.key} at {host}", device_count=tensor_parallel_size)
    else:
        if "usd_per_h" not in o:
            raise ValueError(
                "an --endpoint run needs the hardware behind it: give --hardware-name <GPU table key, e.g. "
                "a100-40gb> or --usd-per-hour X (and --peak-flop-per-s DTYPE=VALUE for MFU); in TOML: [hardware] "
                "name / usd_per_hour / peak_flop_per_s"
            )
        info = HardwareInfo(
            name="remote-" + slug(str(o.get("name") or host)),
            kind="remote",
            device_name=f"remote at {host}",
            device_count=tensor_parallel_size,
            peak_flop_per_s={d: None for d in DTYPES},
            peak_source="declared by the user (none given for unlisted dtypes)",
            usd_per_h=float(o["usd_per_h"]),
            usd_per_h_source="override",
        )
    o.pop("device", None)
    if "name" in o and device is not None and o["name"] == key:
        o.pop("name")  # the table key already named it
    return apply_overrides(info, o)


def detect_hardware(
    *,
    dtype_for_peak: str,
    tensor_parallel_size: int = 1,
    overrides: Mapping[str, Any] | None = None,
    endpoint: str | None = None,
    nvml: Any = None,
    cache_dir: str | os.PathLike = CACHE_DIR,
    measure_seconds: float = 3.0,
    remeasure: bool = False,
) -> HardwareInfo:
    """The HardwareInfo of a run: remote (endpoint), GPU (NVML + table) or CPU (measured, cached),
    then `overrides` applied. `dtype_for_peak` is validated here; the peak actually used is
    `info.peak_flop_per_s[dtype_for_peak]`, which may be None (unknown) — MFU is then null."""
    check_dtype(dtype_for_peak)
    if tensor_parallel_size < 1:
        raise ValueError(f"tensor_parallel_size={tensor_parallel_size!r}: must be >= 1")
    o = check_overrides(overrides)
    if endpoint is not None:
        return remote_info(endpoint, o, tensor_parallel_size=tensor_parallel_size)

    devices, _reason = nvml_devices(nvml)
    visible = visible_device_indices()
    if devices and visible is not None:  # NVML ignores CUDA_VISIBLE_DEVICES; the server does not
        by_index = {d["index"]: d for d in devices}
        devices = [by_index[i] for i in visible if i in by_index]
    if devices:
        chosen = _declared_device(o)
        if chosen is not None:  # the user names the table row (e.g. a mis-detected or renamed part)
            used = devices[:tensor_parallel_size]
            if tensor_parallel_size > len(devices):
                raise ValueError(f"tensor_parallel_size={tensor_parallel_size} but NVML sees {len(devices)} GPU(s)")
            info = info_from_device(chosen, kind="gpu", device_name=used[0]["name"], device_count=tensor_parallel_size)
            if "device" not in o:  # the name picked the row; keep the canonical key as the name
                o.pop("name", None)
        else:
            info = gpu_info_from_nvml(devices, tensor_parallel_size=tensor_parallel_size, match=gpus.match_nvml_name)
    else:
        if tensor_parallel_size != 1:
            raise ValueError(f"tensor_parallel_size={tensor_parallel_size} needs GPUs; NVML found none ({_reason})")
        if "device" in o:
            raise ValueError(f"device={o['device']!r} names a GPU table row, but NVML found no GPU ({_reason})")
        rec = load_or_measure_cpu(cache_dir, remeasure=remeasure, seconds=measure_seconds)
        info = cpu_info_from_record(rec)
    o.pop("device", None)
    return apply_overrides(info, o)
