"""bench.hardware.hostload: the share of the host's CPU time other processes took during a measurement."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from bench.hardware import hostload as H

STAT = """cpu  1000 10 200 5000 40 5 5 100 0 0
cpu0 500 5 100 2500 20 3 2 50 0 0
cpu1 500 5 100 2500 20 2 3 50 0 0
intr 12345
ctxt 999
"""


def test_proc_stat_busy_time_counts_steal_and_leaves_idle_and_iowait_out():
    busy, cpus = H.parse_proc_stat(STAT, ticks_per_s=100)
    assert busy == pytest.approx((1000 + 10 + 200 + 5 + 5 + 100) / 100)  # user nice system irq softirq steal
    assert cpus == 2
    with pytest.raises(ValueError, match="aggregate"):
        H.parse_proc_stat("intr 1\n", 100)


def sample(busy, own, wall, cpus=2):
    return H.CpuSample(host_busy_s=busy, own_s=own, wall_s=wall, cpus=cpus)


def test_other_share_subtracts_this_process_and_is_bounded():
    assert H.other_share(sample(0, 0, 0), sample(2.0, 1.0, 1.0)) == pytest.approx(0.5)  # others: 1 of 2 core-seconds
    assert H.other_share(sample(0, 0, 0), sample(2.0, 2.0, 1.0)) == 0.0  # all of it was ours
    assert H.other_share(sample(0, 0, 0), sample(9.0, 0.0, 1.0)) == 1.0  # clipped
    assert H.other_share(None, sample(1, 1, 1)) is None
    assert H.other_share(sample(0, 0, 0), sample(1, 0, 0.1)) is None  # too short to tell


def test_busy_note_only_above_the_threshold():
    assert H.busy_note(None) is None and H.busy_note(H.BUSY_SHARE) is None
    note = H.busy_note(0.42)
    assert note.startswith(H.BUSY_NOTE_PREFIX) and "42%" in note and "quiet" in note


def test_host_load_lines_give_the_share_and_only_the_busy_notes_as_warnings():
    busy = H.busy_note(0.42)
    assert H.host_load_lines(None, ["AMX tile permission requested"]) == []
    assert H.host_load_lines(0.01, []) == ["other processes took 1% of the host's CPU time meanwhile (measured)"]
    assert H.host_load_lines(0.42, ["other note", busy])[1:] == [f"WARNING: {busy}"]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc/stat is Linux's")
def test_a_process_burning_a_core_beside_us_is_seen_and_our_own_work_is_not():
    start = H.sample()
    t = time.monotonic()
    while time.monotonic() - t < 0.8:  # our own work: not "others"
        pass
    ours = H.other_share(start, H.sample())
    burner = subprocess.Popen([sys.executable, "-c", "import time\nt=time.monotonic()\nwhile time.monotonic()-t<1.5: pass"])
    try:
        time.sleep(0.3)  # the child is running
        start = H.sample()
        time.sleep(1.0)
        theirs = H.other_share(start, H.sample())
    finally:
        burner.wait(timeout=30)
    cpus = start.cpus
    assert ours is not None and theirs is not None
    assert theirs >= 0.6 / cpus  # one core of `cpus`, less what the scheduler gave elsewhere
    assert theirs > ours
