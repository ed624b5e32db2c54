"""What vLLM's server is started with: its command line (from the [server] section of the config,
bench.config.ServerSection) and its environment (the CPU backend's variables where there is no GPU).
Pure: nothing here starts a process. bench.server.process starts it (docs/bench-server.md).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from bench.config import ServerSection
from bench.hardware.nvml import gpu_present

if TYPE_CHECKING:
    from bench.config import ServerSection

HOST = "127.0.0.1"


def cpu_ids_spec(cpu_ids: Iterable[int]) -> str:
    """Format CPU ids as vLLM's VLLM_CPU_OMP_THREADS_BIND wants them: ranges joined by commas,
    e.g. [0, 1, 2, 5] -> "0-2,5"."""
    ids = sorted(set(int(c) for c in cpu_ids))
    if not ids:
        raise ValueError("cpu_ids is empty: need at least one CPU id to bind vLLM's threads to")
    parts: list[str] = []
    start = prev = ids[0]
    for c in ids[1:] + [None]:  # type: ignore[list-item]
        if c is not None and c == prev + 1:
            prev = c
            continue
        parts.append(f"{start}-{prev}" if prev != start else f"{start}")
        if c is not None:
            start = prev = c
    return ",".join(parts)


def available_cpu_ids() -> list[int]:
    """CPU ids this process may run on (respects taskset / cgroup cpusets)."""
    try:
        return sorted(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return list(range(os.cpu_count() or 1))


def cpu_layout_ids(cpu_ids: Sequence[int], layout: str) -> tuple[list[int], list[int]]:
    """(engine cores, host cores) of a CPU layout. "shared": both are every core. "apart": the host work
    (API server, tokenising, streaming, the load client) gets the first quarter of the cores, at least
    one, and the engine's compute threads the rest, so neither preempts the other, as on a GPU node.
    On 2 cores: host [0], engine [1]."""
    ids = sorted(set(int(c) for c in cpu_ids))
    if layout == "shared":
        return ids, ids
    if layout != "apart":
        raise ValueError(f"cpu_layout={layout!r}: must be one of shared, apart")
    if len(ids) < 2:
        raise ValueError(f"cpu_layout='apart' needs at least 2 cores; this process may use {len(ids)} ({ids})")
    n_host = max(1, len(ids) // 4)
    return ids[n_host:], ids[:n_host]


def cpu_env(*, kvcache_space_gib: float = 1, cpu_ids: Sequence[int] | None = None) -> dict[str, str]:
    """Environment that makes vLLM's CPU backend start and use every core (docs/bench-server.md).

    VLLM_CPU_KVCACHE_SPACE   KV cache in GiB; without it start-up fails on a mis-reported NUMA size.
    VLLM_CPU_OMP_THREADS_BIND all cores this process may use (both cores: prefill ~1.7x faster).
    VLLM_HOST_IP             engine-internal sockets on loopback.
    HF_HUB_OFFLINE, VLLM_NO_USAGE_STATS, DO_NOT_TRACK: nothing leaves the machine.
    """
    if kvcache_space_gib <= 0:
        raise ValueError(f"kvcache_space_gib={kvcache_space_gib!r}: must be > 0 (GiB of KV cache)")
    ids = list(cpu_ids) if cpu_ids is not None else available_cpu_ids()
    space = f"{kvcache_space_gib:g}"
    return {
        "VLLM_CPU_KVCACHE_SPACE": space,
        "VLLM_CPU_OMP_THREADS_BIND": cpu_ids_spec(ids),
        "VLLM_HOST_IP": HOST,
        "HF_HUB_OFFLINE": "1",
        "VLLM_NO_USAGE_STATS": "1",
        "DO_NOT_TRACK": "1",
    }


def cpu_has_bf16() -> bool:
    """True when the CPU has native bf16 matmul instructions (AVX-512 BF16 or AMX). Without them
    vLLM's oneDNN bf16 linear cannot be created and falls back to a torch bf16 matmul that runs at
    under 1 GFLOP/s on 2 Zen 3 cores (measured), which would make bf16 layers (lm_head) dominate."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def resolve_dtype(dtype: str, *, cpu: bool | None = None) -> str:
    """vLLM's --dtype for this machine. "auto" means: on a GPU, vLLM's own choice ("auto": the
    checkpoint's dtype); on a CPU, bfloat16 where the CPU has bf16 instructions, else float32
    (INT8 W8A8 layers run on the int8 kernel either way; dtype only sets activations and the
    unquantized layers)."""
    if dtype != "auto":
        return dtype
    if cpu is None:
        cpu = not has_cuda_gpu()
    if not cpu:
        return "auto"
    return "bfloat16" if cpu_has_bf16() else "float32"


def has_cuda_gpu() -> bool:
    """True when a CUDA GPU is usable here (bench.hardware.nvml's rule: NVML sees a device, or /dev/nvidia0)."""

    return gpu_present()


# The server keeps an idle client connection open this long (vLLM's VLLM_HTTP_TIMEOUT_KEEP_ALIVE,
# 5 s by default): the load client's pooled connections must outlive a stall of the client process,
# which reached 6.1 s on two shared cores (docs/measurements.md, "Client stalls on two cores").
KEEP_ALIVE_S = 300


def server_env(
    env: Mapping[str, str] | None = None,
    *,
    base: Mapping[str, str] | None = None,
    cpu: bool | None = None,
) -> dict[str, str]:
    """The server's environment: `base` (default os.environ), plus `cpu_env()` where no CUDA GPU
    exists (values already set in `base` win: a user's VLLM_CPU_KVCACHE_SPACE is kept), plus an HTTP
    keep-alive of KEEP_ALIVE_S unless `base` sets one, plus `env` (explicit settings win over everything)."""
    merged = dict(os.environ if base is None else base)
    merged.setdefault("VLLM_HTTP_TIMEOUT_KEEP_ALIVE", str(KEEP_ALIVE_S))
    if cpu is None:
        cpu = not has_cuda_gpu()
    if cpu:
        for key, value in cpu_env().items():
            merged.setdefault(key, value)
    merged.update(env or {})
    return merged


def server_settings(settings: "ServerSection | None" = None, **fields) -> "ServerSection":
    """A bench.config.ServerSection: `settings` (default: all defaults) with `fields` replaced, validated."""

    base = settings.model_dump() if settings is not None else {}
    return ServerSection.model_validate({**base, **fields})


def vllm_command(
    model_dir: str | os.PathLike,
    settings: "ServerSection | None" = None,
    *,
    served_name: str,
    port: int,
    host: str = HOST,
    seed: int = 0,
    python: str = sys.executable,
    **fields,
) -> list[str]:
    """argv for vLLM's OpenAI server from the [server] section (`settings`, bench.config.ServerSection;
    keyword `fields` such as max_num_seqs=8 replace its values). `settings.dtype` is passed as is:
    resolve "auto" first (resolve_dtype). Flags beyond the obvious ones, and why:

    --enable-mfu-metrics          vLLM's own FLOP/byte counters (vllm:estimated_flops_per_gpu_total),
                                  compared with our count in `derived.flop_ratio_to_vllm`.
    --no-enable-prefix-caching    a cached prefix skips prefill and would inflate prefill MFU.
    --generation-config vllm      a checkpoint's generation_config.json must not change sampling
                                  or cap output lengths behind our back.
    --disable-uvicorn-access-log  one log line per request slows the server and floods server.log.
    """
    if not 0 < port < 65536:
        raise ValueError(f"port={port!r}: must be in 1..65535")
    fields.setdefault("dtype", "bfloat16" if settings is None else settings.dtype)
    srv = server_settings(settings, **fields)
    cmd = [
        python, "-m", "vllm.entrypoints.openai.api_server",
        "--model", str(model_dir),
        "--served-model-name", served_name,
        "--host", host,
        "--port", str(port),
        "--dtype", srv.dtype,
        "--tensor-parallel-size", str(srv.tensor_parallel_size),
        "--seed", str(seed),
        "--enable-mfu-metrics",
        "--generation-config", "vllm",
        "--disable-uvicorn-access-log",
    ]  # fmt: skip
    if srv.pipeline_parallel_size != 1:
        cmd += ["--pipeline-parallel-size", str(srv.pipeline_parallel_size)]
    if srv.data_parallel_size != 1:
        cmd += ["--data-parallel-size", str(srv.data_parallel_size)]
    if srv.distributed_executor_backend is not None:
        cmd += ["--distributed-executor-backend", srv.distributed_executor_backend]
    cmd.append("--enable-prefix-caching" if srv.prefix_caching else "--no-enable-prefix-caching")
    if srv.max_model_len is not None:
        cmd += ["--max-model-len", str(srv.max_model_len)]
    if srv.max_num_seqs is not None:
        cmd += ["--max-num-seqs", str(srv.max_num_seqs)]
    if srv.quantization is not None:
        cmd += ["--quantization", srv.quantization]
    if srv.enforce_eager:
        cmd.append("--enforce-eager")
    cmd += list(srv.extra_args)
    return cmd
