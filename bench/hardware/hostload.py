"""How much of this host's CPU time other processes took while something was measured.

A kernel timed while another process shares the cores runs slower than the device can: the
committed AMX operator profile, whose load averages say the host had been busy for minutes, took
1.4-2.2x as long per kernel as one measured on a quiet host (docs/measurements.md). The share is measured, not guessed from a load average (which a
measurement's own threads raise): the whole host's non-idle CPU time over the interval (Linux
/proc/stat, steal included: time the hypervisor gave to someone else), less this process's own CPU
time (os.times, all its threads), over the interval's wall time x the host's CPUs.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

BUSY_SHARE = 0.10  # above this share of the host's CPU time taken by others, a measurement is flagged
BUSY_NOTE_PREFIX = "busy host:"  # how busy_note's line begins (a profile's notes are searched for it)
_IDLE_FIELDS = (3, 4)  # idle, iowait in the "cpu" line of /proc/stat (user nice system idle iowait irq softirq steal)


@dataclass(frozen=True)
class CpuSample:
    """Cumulative seconds at one instant: the host's non-idle CPU time, this process's CPU time, a clock."""

    host_busy_s: float
    own_s: float
    wall_s: float
    cpus: int


def parse_proc_stat(text: str, ticks_per_s: float) -> tuple[float, int]:
    """(non-idle CPU seconds of all CPUs since boot, number of CPUs) from /proc/stat's text (pure).
    ValueError when its first line is not the aggregate "cpu" line."""
    lines = text.splitlines()
    if not lines or not lines[0].startswith("cpu "):
        raise ValueError("/proc/stat: the first line is not the aggregate 'cpu' line")
    ticks = [int(x) for x in lines[0].split()[1:9]]  # user .. steal (guest time is inside user)
    busy = sum(t for i, t in enumerate(ticks) if i not in _IDLE_FIELDS)
    cpus = sum(1 for line in lines[1:] if line.startswith("cpu") and line[3:4].isdigit())
    return busy / ticks_per_s, max(cpus, 1)


def sample(path: str = "/proc/stat") -> CpuSample | None:
    """The counters now; None where they cannot be read (not Linux)."""
    try:
        with open(path, encoding="ascii") as f:
            busy, cpus = parse_proc_stat(f.read(), float(os.sysconf("SC_CLK_TCK")))
    except (OSError, ValueError):
        return None
    t = os.times()
    return CpuSample(host_busy_s=busy, own_s=t.user + t.system, wall_s=time.monotonic(), cpus=cpus)


def other_share(start: CpuSample | None, end: CpuSample | None) -> float | None:
    """The share (0..1) of the host's CPU time that other processes (and the hypervisor's steal) took
    between two samples; None without both, or over an interval too short to tell (< 0.5 s)."""
    if start is None or end is None:
        return None
    wall = end.wall_s - start.wall_s
    if wall < 0.5:
        return None
    others = (end.host_busy_s - start.host_busy_s) - (end.own_s - start.own_s)
    return min(1.0, max(0.0, others / (wall * end.cpus)))


def busy_note(share: float | None, what: str = "this profile") -> str | None:
    """One line when others took more than BUSY_SHARE of the CPU time during the measurement; else None."""
    if share is None or share <= BUSY_SHARE:
        return None
    return (f"{BUSY_NOTE_PREFIX} other processes took {share:.0%} of the CPU time while {what} was measured; "
            f"its times may be too slow: measure again on a quiet machine")


def host_load_lines(share: float | None, notes: list[str]) -> list[str]:
    """What a measurement's record says of the host's load: the measured share, then each busy-host
    note as a warning (no lines when neither is there)."""
    lines = [] if share is None else [f"other processes took {share:.0%} of the host's CPU time meanwhile (measured)"]
    return lines + [f"WARNING: {n}" for n in notes if n.startswith(BUSY_NOTE_PREFIX)]
