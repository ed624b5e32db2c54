"""Run a server command so that it cannot outlive the process that started it.

    python -I -S bench/server/supervise.py --parent PID --grace S -- ARGV...

`bench.server.process.ServerProcess` starts this script as the leader of a new session and process group;
the script starts ARGV (the vLLM server) as its child in the same group and waits for it. It stops
the whole group (SIGTERM to every other member, `--grace` seconds, then SIGKILL) when

  * its parent dies, however it dies (SIGKILL included; the grace is then at most 3 s): Linux sends it SIGUSR1 through
    `prctl(PR_SET_PDEATHSIG)` (see `man 2 prctl`), and as a fallback (other systems, or a parent
    that died before the request was armed) it polls `getppid()` every 0.2 s. The death signal also
    fires when only the parent's *thread* that started it ends, so SIGUSR1 counts only once
    `getppid()` shows the parent is really gone;
  * it gets SIGTERM, SIGINT or SIGHUP while its parent lives (the harness stopping the server
    sends SIGTERM to the whole group, so the server got it too: the script then only waits).

When the child exits by itself, the other members of the group (vLLM's engine core and workers)
get the same treatment, and the script exits with the child's status (a child killed by signal N
makes the script die of signal N too, so the parent sees the same return code as without it).

Standard library only, and run with `python -I -S` by path: nothing from the working directory or
PYTHONPATH is imported into the one process whose job is to clean up.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import signal
import subprocess
import sys
import time

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
PR_SET_CHILD_SUBREAPER = 36
POLL_S = 0.2
ORPHAN_GRACE_S = 3.0  # SIGTERM -> SIGKILL when the parent is gone
_stop_signal: int | None = None


def _prctl(option: int, value: int) -> bool:
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(option, value, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def set_parent_death_signal(sig: int) -> bool:
    """Ask Linux to send `sig` to this process when its parent thread dies; False where unsupported."""
    return _prctl(PR_SET_PDEATHSIG, int(sig))


def set_child_subreaper() -> bool:
    """Orphaned descendants (the server's workers after the server exits) become our children, so
    we reap them at once instead of leaving zombies to init (see `man 2 prctl`)."""
    return _prctl(PR_SET_CHILD_SUBREAPER, 1)


def _proc_stats(exclude: int | None = None):
    """(pid, stat fields after "pid (comm) ") of every process in /proc but `exclude` (Linux; none elsewhere)."""
    try:
        names = os.listdir("/proc")
    except OSError:
        return
    for name in names:
        if not name.isdigit() or int(name) == exclude:
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                stat = f.read().decode(errors="replace")
        except OSError:
            continue
        yield int(name), stat[stat.rfind(")") + 2:].split()


def reap_orphans(keep: int) -> None:
    """Reap every exited child except `keep` (that one is subprocess's to reap)."""
    me = os.getpid()
    for pid, fields in _proc_stats(exclude=keep):
        if len(fields) > 1 and fields[0] == "Z" and int(fields[1]) == me:
            try:
                os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                pass


def group_members(pgid: int, exclude: int | None = None, *, zombies: bool = False) -> list[int]:
    """Pids of the live processes in process group `pgid`, zombies too when `zombies`
    (Linux /proc; [] elsewhere)."""
    return [pid for pid, fields in _proc_stats(exclude=exclude)
            if len(fields) > 2 and (zombies or fields[0] != "Z") and int(fields[2]) == pgid]


def _signal_all(pids: list[int], sig: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, sig)
        except (ProcessLookupError, PermissionError):
            pass


def _on_signal(signum, frame):  # noqa: ARG001
    global _stop_signal
    if _stop_signal is None:
        _stop_signal = signum


def take_down_group(child: subprocess.Popen, grace_s: float, *, send_term: bool) -> None:
    """SIGTERM (when `send_term`) to every other member of our group, wait up to `grace_s` for the
    child and the members to go, then SIGKILL whatever is left."""
    me, pgid = os.getpid(), os.getpgid(0)
    if send_term:
        _signal_all(group_members(pgid, exclude=me), signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        child.poll()  # reap the child so it does not count as a member
        reap_orphans(child.pid)
        if child.returncode is not None and not group_members(pgid, exclude=me):
            return
        time.sleep(0.05)
    _signal_all(group_members(pgid, exclude=me), signal.SIGKILL)
    try:
        child.wait(timeout=5)
    except subprocess.TimeoutExpired:
        pass
    end = time.monotonic() + 2
    while time.monotonic() < end:
        reap_orphans(child.pid)
        if not group_members(pgid, exclude=me):
            break
        time.sleep(0.05)
    reap_orphans(child.pid)


def _arm_child() -> None:  # runs in the child between fork and exec (this script has no threads)
    set_parent_death_signal(signal.SIGTERM)


def exit_like(returncode: int) -> None:
    """Exit with the child's status; a child killed by signal N: die of signal N."""
    if returncode < 0:
        sig = -returncode
        try:
            if sig not in (signal.SIGKILL, signal.SIGSTOP):  # those two cannot be handled (nor reset)
                signal.signal(sig, signal.SIG_DFL)
            os.kill(os.getpid(), sig)
            time.sleep(1)
        except (OSError, ValueError):
            pass
        sys.exit(128 + sig)
    sys.exit(returncode)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="supervise.py", description=__doc__.splitlines()[0])
    p.add_argument("--parent", type=int, required=True, help="pid of the process that must stay alive")
    p.add_argument("--grace", type=float, default=5.0, help="seconds between SIGTERM and SIGKILL")
    p.add_argument("command", nargs=argparse.REMAINDER)
    args = p.parse_args(argv)
    cmd = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not cmd:
        p.error("no command after --")
    if os.getpgid(0) != os.getpid():
        os.setsid()  # lead a group of our own: taking "our group" down must never reach the caller's
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, _on_signal)
    signal.signal(signal.SIGUSR1, lambda signum, frame: None)  # wakes the loop; getppid() decides
    set_parent_death_signal(signal.SIGUSR1)
    set_child_subreaper()
    if os.getppid() != args.parent:  # the parent died before the death signal was armed
        return 1
    try:
        child = subprocess.Popen(cmd, preexec_fn=_arm_child)
    except OSError as exc:
        print(f"supervise: cannot start {cmd[0]!r}: {exc}", file=sys.stderr, flush=True)
        return 127
    while child.poll() is None:
        orphaned = os.getppid() != args.parent
        if orphaned or _stop_signal is not None:
            # orphaned: nobody else will stop the server. Signalled by the live parent: the whole
            # group got the signal, the server is stopping; the parent escalates to SIGKILL itself.
            # An orphan's server has no client left to finish for: a short grace, so "gone within
            # seconds of bench's death" holds even for a server slow to shut down.
            grace = min(args.grace, ORPHAN_GRACE_S) if orphaned else args.grace
            take_down_group(child, grace, send_term=orphaned or _stop_signal != signal.SIGTERM)
            break
        time.sleep(POLL_S)
    else:
        take_down_group(child, args.grace, send_term=True)  # the child's own children, if any are left
    if child.returncode is None:
        child.wait()
    exit_like(child.returncode)
    return child.returncode


if __name__ == "__main__":
    sys.exit(main())
