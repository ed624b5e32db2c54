"""What the hardware and the server report while a run goes on.

NVML (nvidia-ml-py, `import pynvml`): per GPU, every `interval_s` in a background thread, the
board power (W), NVML's cumulative energy counter (J since the driver loaded), utilisation, SM
and memory clocks, memory used. Energy over a run is the *counter* delta, last - first
(`nvmlDeviceGetTotalEnergyConsumption`, mJ), which integrates power inside the driver at its own
rate; sampled power integrated with the trapezoid rule is only the fallback (GPUs older than
Volta have no counter) and is labelled as such. Without NVML (no driver, as on this CPU machine:
`NVMLError_LibraryNotFound`) the sampler is `.available = False` with a `.reason` and does nothing.

vLLM's `/metrics` (Prometheus text): scraped before and after each run; `parse_metrics` sums each
sample name over its label sets (engines, models, finish reasons); bench.run.derive subtracts.

The pure parts (raw readings -> row, energy from counters or power) take plain values so they are
tested without a GPU; `NvmlSampler(nvml=...)` accepts any pynvml-like module for the same reason.
"""

from __future__ import annotations

import math
import threading
import time
import urllib.request
from collections.abc import Mapping, Sequence
from typing import Any

from bench.hardware.nvml import as_str, import_nvml, visible_device_indices

ENERGY_COUNTER = "nvml_energy_counter"  # delta of nvmlDeviceGetTotalEnergyConsumption
ENERGY_TRAPEZOID = "trapezoid_of_sampled_power"  # fallback: integral of nvmlDeviceGetPowerUsage


# --------------------------------------------------------------------------- pure: rows


def sample_to_row(
    raw: Mapping[str, Any], *, device: int, t_s: float, monotonic_s: float, time_unix_s: float
) -> dict[str, Any]:
    """One telemetry.jsonl line from raw NVML readings (NVML units -> SI; missing -> None).

    raw keys (NVML units): power_mw, energy_mj, util_gpu_pct, util_memory_pct, clock_sm_mhz,
    clock_mem_mhz, memory_used_bytes, name.
    `sm_util_fraction` is NVML's utilization.gpu: the fraction of the last sample period in
    which a kernel ran (not SM occupancy); `memory_util_fraction` the fraction in which device
    memory was read or written.
    """

    def scaled(key: str, factor: float) -> float | None:
        v = raw.get(key)
        return None if v is None else float(v) * factor

    return {
        "t_s": t_s,
        "monotonic_s": monotonic_s,
        "time_unix_s": time_unix_s,
        "device": device,
        "name": raw.get("name"),
        "power_w": scaled("power_mw", 1e-3),
        "energy_counter_j": scaled("energy_mj", 1e-3),
        "sm_util_fraction": scaled("util_gpu_pct", 1e-2),
        "memory_util_fraction": scaled("util_memory_pct", 1e-2),
        "sm_clock_hz": scaled("clock_sm_mhz", 1e6),
        "memory_clock_hz": scaled("clock_mem_mhz", 1e6),
        "memory_used_bytes": None if raw.get("memory_used_bytes") is None else int(raw["memory_used_bytes"]),
    }


# --------------------------------------------------------------------------- pure: energy


def counter_energy_j(counter_j: Sequence[float | None]) -> float | None:
    """Energy from a cumulative counter read in time order: the sum of the increments.

    A decrease means the counter was reset (driver reload) or wrapped; the increment across it is
    unknown, so that one interval is skipped (counted as 0) rather than guessed. Readings that
    are None are skipped. Fewer than two readings -> None.
    """
    values = [float(v) for v in counter_j if v is not None and math.isfinite(v)]
    if len(values) < 2:
        return None
    return sum(b - a for a, b in zip(values, values[1:]) if b >= a)


def trapezoid_energy_j(t_s: Sequence[float], power_w: Sequence[float | None]) -> float | None:
    """Energy = integral of power dt by the trapezoid rule over the samples with a power reading.
    Fewer than two -> None."""
    pts = [(float(t), float(p)) for t, p in zip(t_s, power_w) if p is not None and math.isfinite(p)]
    if len(pts) < 2:
        return None
    pts.sort()
    return sum((t1 - t0) * (p0 + p1) / 2 for (t0, p0), (t1, p1) in zip(pts, pts[1:]))


def device_energy_j(rows: Sequence[Mapping[str, Any]]) -> tuple[float | None, str | None]:
    """(energy_j, method) for one device's rows: the counter delta when the counter was read at
    least twice, else the trapezoid of power, else (None, None)."""
    rows = sorted(rows, key=lambda r: r["t_s"])
    e = counter_energy_j([r.get("energy_counter_j") for r in rows])
    if e is not None:
        return e, ENERGY_COUNTER
    e = trapezoid_energy_j([r["t_s"] for r in rows], [r.get("power_w") for r in rows])
    if e is not None:
        return e, ENERGY_TRAPEZOID
    return None, None


def energy_by_device(rows: Sequence[Mapping[str, Any]]) -> dict[int, dict[str, Any]]:
    """{device: {"energy_j": J | None, "method": ENERGY_COUNTER | ENERGY_TRAPEZOID | None}}."""
    per: dict[int, list[Mapping[str, Any]]] = {}
    for r in rows:
        per.setdefault(int(r["device"]), []).append(r)
    out = {}
    for dev, dev_rows in sorted(per.items()):
        e, method = device_energy_j(dev_rows)
        out[dev] = {"energy_j": e, "method": method}
    return out


# --------------------------------------------------------------------------- sampler


class NvmlSampler:
    """Background NVML sampler; a context manager.

    with NvmlSampler(interval_s=0.1) as s:
        ...                      # the run
    s.available, s.reason, s.samples (telemetry.jsonl rows), s.energy_j()

    A sample is also taken synchronously on enter and on exit, so the energy counter delta spans
    the whole `with` block whatever the interval.
    """

    def __init__(
        self,
        interval_s: float = 0.1,
        *,
        device_indices: Sequence[int] | None = None,
        nvml: Any = None,
    ):
        if not interval_s > 0:
            raise ValueError(f"interval_s={interval_s!r}: must be > 0 seconds")
        self.interval_s = float(interval_s)
        self._requested = list(device_indices) if device_indices is not None else visible_device_indices()
        self._nvml = nvml
        self.available = False
        self.reason: str | None = "not started"
        self.samples: list[dict[str, Any]] = []
        self.device_names: dict[int, str] = {}
        self._handles: dict[int, Any] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._t0: float | None = None
        self._initialised = False

    # ---- lifecycle
    def start(self) -> "NvmlSampler":
        nvml = self._nvml
        if nvml is None:
            nvml, reason = import_nvml()
            if nvml is None:
                self.reason = reason
                return self
            self._nvml = nvml
        try:
            nvml.nvmlInit()
            self._initialised = True
            count = nvml.nvmlDeviceGetCount()
            indices = self._requested if self._requested is not None else list(range(count))
            bad = [i for i in indices if not 0 <= i < count]
            if bad:
                raise ValueError(f"device indices {bad} do not exist: NVML sees {count} device(s)")
            for i in indices:
                h = nvml.nvmlDeviceGetHandleByIndex(i)
                self._handles[i] = h
                self.device_names[i] = as_str(nvml.nvmlDeviceGetName(h))
        except Exception as exc:  # NVMLError_LibraryNotFound, DriverNotLoaded, ...
            self.reason = f"NVML unavailable: {type(exc).__name__}: {exc}"
            self._shutdown()
            return self
        if not self._handles:
            self.reason = "NVML found no GPU"
            self._shutdown()
            return self
        self.available, self.reason = True, None
        self._t0 = time.monotonic()
        self.sample_once()
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="nvml-sampler", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self._stop.set()
            self._thread.join(timeout=10 * self.interval_s + 5)
            self._thread = None
            self.sample_once()
        self._shutdown()

    def _shutdown(self) -> None:
        if self._initialised:
            try:
                self._nvml.nvmlShutdown()
            except Exception:
                pass
            self._initialised = False

    def __enter__(self) -> "NvmlSampler":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # ---- sampling
    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.sample_once()

    def sample_once(self) -> None:
        if not self._handles or self._t0 is None:
            return
        now = time.monotonic()
        unix = time.time()
        rows = [
            sample_to_row(
                read_device(self._nvml, h, name=self.device_names.get(i)),
                device=i,
                t_s=now - self._t0,
                monotonic_s=now,
                time_unix_s=unix,
            )
            for i, h in self._handles.items()
        ]
        with self._lock:
            self.samples.extend(rows)

    # ---- results
    def rows(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self.samples)

    def energy(self) -> dict[int, dict[str, Any]]:
        """{device: {"energy_j", "method"}} (empty when NVML is unavailable)."""
        return energy_by_device(self.rows())

    def energy_j(self) -> dict[int, float | None]:
        """{device: joules over the sampled window} (see `energy()` for the method used)."""
        return {d: v["energy_j"] for d, v in self.energy().items()}

    def total_energy_j(self) -> tuple[float | None, str | None]:
        """(sum over devices, method); None when any device has no energy figure."""
        per = self.energy()
        if not per or any(v["energy_j"] is None for v in per.values()):
            return None, None
        methods = sorted({v["method"] for v in per.values()})
        return sum(v["energy_j"] for v in per.values()), "+".join(methods)

    def status(self) -> str:
        """For run.json environment.telemetry: "nvml" or "unavailable: <reason>"."""
        return "nvml" if self.available else f"unavailable: {self.reason}"


def read_device(nvml: Any, handle: Any, *, name: str | None = None) -> dict[str, Any]:
    """Raw readings of one device in NVML units; a reading the device does not support is None."""

    def get(fn, *args):
        try:
            return fn(handle, *args)
        except Exception:  # NVMLError_NotSupported and friends: that field is just missing
            return None

    util = get(nvml.nvmlDeviceGetUtilizationRates)
    mem = get(nvml.nvmlDeviceGetMemoryInfo)
    return {
        "name": name,
        "power_mw": get(nvml.nvmlDeviceGetPowerUsage),
        "energy_mj": get(nvml.nvmlDeviceGetTotalEnergyConsumption),
        "util_gpu_pct": getattr(util, "gpu", None),
        "util_memory_pct": getattr(util, "memory", None),
        "clock_sm_mhz": get(nvml.nvmlDeviceGetClockInfo, nvml.NVML_CLOCK_SM),
        "clock_mem_mhz": get(nvml.nvmlDeviceGetClockInfo, nvml.NVML_CLOCK_MEM),
        "memory_used_bytes": getattr(mem, "used", None),
    }


# --------------------------------------------------------------------------- vLLM /metrics


def scrape_metrics(
    base_url: str, *, timeout_s: float = 10, headers: Mapping[str, str] | None = None
) -> str:
    """GET <base_url>/metrics as text (Prometheus exposition format)."""
    req = urllib.request.Request(base_url.rstrip("/") + "/metrics", headers=dict(headers or {}))
    with urllib.request.urlopen(req, timeout=timeout_s) as r:
        return r.read().decode("utf-8", errors="replace")


def parse_metrics(text: str) -> dict[str, float]:
    """{sample name: value summed over its label sets}, parsed with prometheus-client's parser.

    Counters appear under their sample name (`vllm:prompt_tokens_total`), histograms as
    `_sum`/`_count`/`_bucket`. `_created` samples (creation timestamps) are left out: a sum of
    timestamps means nothing.
    """
    from prometheus_client.parser import text_string_to_metric_families

    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name.endswith("_created"):
                continue
            out[s.name] = out.get(s.name, 0.0) + float(s.value)
    return out
