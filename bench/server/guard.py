"""What guards against servers left behind: process groups, one record per server bench started
(pid, port, owner), stale servers of dead bench processes, ports and GPUs held by others.

A server's process group is led by bench/server/supervise.py. `stop_group` stops a group; `group_alive`
counts only live members (zombies are dead). `runtime_dir()` holds `server-<pgid>.json` records;
`stop_stale_servers` stops the groups whose owner died; `check_port` and `gpu_holders` tell a busy
port or GPU, naming the process. docs/bench-server.md has the whole picture.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

from bench.hardware.nvml import import_nvml, visible_device_indices
from bench.server.args import HOST
from bench.server.supervise import group_members


class ServerError(RuntimeError):
    """The server did not start (it exited, or /health never answered) or failed while running."""


class DeadEndpointError(ServerError):
    """The first requests of a run all failed the same hopeless way (401, 403, 404, connection
    refused): the sweep stops; the message is one line naming the status and the likely cause."""


def free_port(host: str = HOST) -> int:
    """A TCP port that is free on `host` right now (the OS picks it; a race with another process
    grabbing it before the server binds is possible but rare, and then start-up fails loudly)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


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
        _wait_zombies_reaped(pgid, proc)  # gone already, but its zombies may still answer killpg(0)
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
