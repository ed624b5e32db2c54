"""The one NVML probe: is a CUDA GPU usable here, and which devices are there.

NVML (nvidia-ml-py, `import pynvml`) is light to import (unlike torch) and is what tells a GPU node
from a CPU machine. Without a driver, `nvmlInit` raises `NVMLError_LibraryNotFound`; every function
here turns that into a reason string instead of an error. `nvml` arguments accept any pynvml-like
module so the logic is tested without a GPU; pynvml itself is imported inside functions only.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any


def import_nvml() -> tuple[Any, str | None]:
    """(pynvml, None), or (None, reason) when nvidia-ml-py is not installed."""
    try:
        import pynvml  # nvidia-ml-py
    except ImportError as exc:
        return None, f"nvidia-ml-py not installed ({exc})"
    return pynvml, None


def as_str(value: Any) -> str:
    """NVML strings: older pynvml returns bytes."""
    return value.decode() if isinstance(value, bytes) else str(value)


def nvml_devices(nvml: Any = None) -> tuple[list[dict[str, Any]], str | None]:
    """([{"index", "name", "memory_bytes"}], None), or ([], reason) when NVML is unavailable or sees no GPU."""
    if nvml is None:
        nvml, reason = import_nvml()
        if nvml is None:
            return [], reason
    try:
        nvml.nvmlInit()
    except Exception as exc:  # NVMLError_LibraryNotFound, DriverNotLoaded, ...
        return [], f"NVML unavailable: {type(exc).__name__}: {exc}"
    try:
        out = []
        for i in range(nvml.nvmlDeviceGetCount()):
            h = nvml.nvmlDeviceGetHandleByIndex(i)
            out.append(
                {
                    "index": i,
                    "name": as_str(nvml.nvmlDeviceGetName(h)),
                    "memory_bytes": int(nvml.nvmlDeviceGetMemoryInfo(h).total),
                }
            )
        return out, (None if out else "NVML found no GPU")
    except Exception as exc:
        return [], f"NVML error: {type(exc).__name__}: {exc}"
    finally:
        try:
            nvml.nvmlShutdown()
        except Exception:
            pass


def nvml_available(nvml: Any = None) -> tuple[bool, str | None]:
    """(True, None) when NVML initialises and reports at least one GPU, else (False, reason)."""
    devices, reason = nvml_devices(nvml)
    return bool(devices), reason


def gpu_present(nvml: Any = None, *, device_node: str = "/dev/nvidia0") -> bool:
    """True when NVML reports a GPU, or (NVML missing or broken) the NVIDIA device node exists."""
    ok, _reason = nvml_available(nvml)
    return ok or os.path.exists(device_node)


def visible_device_indices(env: Mapping[str, str] | None = None) -> list[int] | None:
    """NVML indices named by CUDA_VISIBLE_DEVICES when they are plain integers, else None (all).
    NVML ignores CUDA_VISIBLE_DEVICES, so without this a sampler would bill idle GPUs too."""
    value = (os.environ if env is None else env).get("CUDA_VISIBLE_DEVICES")
    if value is None or not value.strip():
        return None
    try:
        return [int(x) for x in value.split(",") if x.strip()]
    except ValueError:
        return None  # UUIDs / MIG names: all devices
