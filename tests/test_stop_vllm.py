"""A real `python -m bench sweep` on vLLM's CPU backend, stopped the two hard ways:

* `kill -9` of the sweep's whole process group: no process of its vLLM server (API server, engine
  core, workers) may survive 10 s later: the supervisor (bench/server/supervise.py) takes the group down.
* SIGTERM or SIGINT to the sweep while requests are in flight: it exits within 5 s with 128 + signal,
  the run is marked interrupted (the same marker for both), and the server's group is gone.

Each test starts its own vLLM server (the session's server in conftest is not touched), so these are
slow: `pytest -m vllm tests/test_stop_vllm.py`.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench.server.process import group_alive
from bench.server.supervise import group_members
from core.schema.run import FAILED_MARKER, REQUESTS_FILE, RUN_FILE

pytestmark = pytest.mark.vllm
REPO = Path(__file__).resolve().parents[1]
STARTUP_TIMEOUT_S = 900  # vLLM's start on 2 busy cores


def _sweep(tmp_path: Path, model_dir: Path) -> tuple[subprocess.Popen, Path, Path]:
    """Start `python -m bench sweep` in a session of its own (as a user's shell job would be);
    returns (process, runtime dir, results dir)."""
    from tests.conftest import vllm_importable

    ok, why = vllm_importable()
    if not ok:
        pytest.skip(f"vLLM CPU server unavailable: {why}")
    cfg = tmp_path / "long.toml"
    cfg.write_text(
        f'model = "{model_dir}"\nnum_requests = 8\nwarmup = 0\n'
        "[server]\nmax_model_len = 512\nmax_num_seqs = 4\n"
        "[hardware]\nusd_per_hour = 0.10\n"
        # long decode streams: the signal finds requests in flight
        '[[runs]]\nworkload = "decode"\ninput_tokens = 8\noutput_tokens = 400\nconcurrency = [2]\n'
    )
    runtime, results = tmp_path / "runtime", tmp_path / "runs"
    env = dict(os.environ, PYTHONPATH=str(REPO), BENCH_RUNTIME_DIR=str(runtime))
    # run from tmp_path with a copy of the repository's CPU hardware cache: a re-measurement, if the
    # cache does not match, lands in tmp_path, never in the repository's results/
    cache = tmp_path / "results" / "hardware"
    cache.mkdir(parents=True)
    for f in (REPO / "results" / "hardware").glob("*.json"):
        shutil.copy(f, cache / f.name)
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench", "sweep", "--config", str(cfg), "--results", str(results), "--no-progress"],
        cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )
    return proc, runtime, results


def _wait_for_load(proc: subprocess.Popen, runtime: Path, results: Path) -> tuple[int, Path]:
    """(server pgid, run dir) once the server is healthy and the first request has finished."""
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"the sweep exited early ({proc.returncode}): {proc.stderr.read()[-2000:]}")
        recs = sorted(runtime.glob("server-*.json")) if runtime.is_dir() else []
        reqs = sorted(results.rglob(REQUESTS_FILE)) if results.is_dir() else []
        if recs and reqs and reqs[0].read_text().strip():
            return json.loads(recs[0].read_text())["pgid"], reqs[0].parent
        time.sleep(0.5)
    pytest.fail("the sweep's server never started serving")


def _survivors(pgid: int, model_dir: Path) -> list[str]:
    out = []
    for pid in group_members(pgid):
        out.append(f"pid {pid} in the server's group")
    for p in Path("/proc").iterdir():
        if p.name.isdigit() and int(p.name) != os.getpid():
            try:
                cmd = (p / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if str(model_dir) in cmd and "pytest" not in cmd:
                out.append(f"pid {p.name}: {cmd[:100]}")
    return out


def test_kill_9_of_a_real_sweep_leaves_no_server_process(tiny_w8a8_model, tmp_path):
    proc, runtime, results = _sweep(tmp_path, tiny_w8a8_model)
    try:
        pgid, _ = _wait_for_load(proc, runtime, results)
        assert group_alive(pgid)
        os.killpg(proc.pid, signal.SIGKILL)  # the sweep's own group: the harness dies, no handler runs
        proc.wait(timeout=30)
        time.sleep(10)
        assert _survivors(pgid, tiny_w8a8_model) == []
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_ends_a_real_sweep_within_5_s_marked_interrupted(sig, tiny_w8a8_model, tmp_path):
    proc, runtime, results = _sweep(tmp_path, tiny_w8a8_model)
    try:
        pgid, run_dir = _wait_for_load(proc, runtime, results)
        t0 = time.monotonic()
        proc.send_signal(sig)
        code = proc.wait(timeout=120)
        elapsed = time.monotonic() - t0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    stderr = proc.stderr.read()
    print(f"{signal.Signals(sig).name} -> exit in {elapsed:.2f} s")
    assert code == 128 + sig, stderr[-2000:]
    assert elapsed <= 5.0, f"{elapsed:.1f} s"
    assert (run_dir / FAILED_MARKER).read_text().splitlines()[0] == "interrupted"
    assert not (run_dir / RUN_FILE).exists()
    assert "interrupted" in (run_dir / REQUESTS_FILE).read_text()  # the requests in flight
    assert _survivors(pgid, tiny_w8a8_model) == []
