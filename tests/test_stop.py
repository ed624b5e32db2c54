"""Nothing left behind, nothing slow to stop: the supervisor, server records, signals, fail fast.

No vLLM here (tests/test_stop_vllm.py does the same with a real server): the server is a dummy
script with a child process, or fakeserver run as a process.

1. The supervisor takes the whole server group down when the process that started it dies by
   SIGKILL (PR_SET_PDEATHSIG), and when only its parent's pid changes (the poll fallback).
2. A record of a server whose owner died is found by the next start and that server is stopped;
   a port held by another program is refused with one line naming it.
3. SIGTERM and SIGINT during a sweep: the process exits in <= 5 s with 128 + signal, FAILED starts
   with "interrupted" (the same for both), the requests in flight are recorded as interrupted, and
   the server's group is gone.
4. Fail fast: 401 (wrong key), 404 (wrong model name), connection refused stop the sweep with one
   line naming the status and the likely cause.
5. Bad numbers on the command line or in a config: exit 2, one line naming the flag or key, no run
   directory made.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
import urllib.request
from pathlib import Path

import pytest

FAKESERVER = Path(__file__).with_name("fakeserver.py")  # the fake OpenAI server, run as a script

from bench.config import RunSpec, workload_of
from bench.load.client import INTERRUPTED_ERROR, fail_fast_reason, make_prompts, run_load
from bench.run.execute import Target
from bench.run.rundir import runs_of_spec, series_dir
from bench.run.sweep import sweep
from bench.server import process as S
from core.schema.run import FAILED_MARKER, REQUESTS_FILE, RUN_FILE, RequestRecord

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from tests.test_faults import HARDWARE, MODEL  # noqa: E402

DUMMY_SERVER = textwrap.dedent(
    """
    import http.server, subprocess, sys
    port, pidfile = int(sys.argv[1]), sys.argv[2]
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])  # like vLLM's engine core
    open(pidfile, "w").write(str(child.pid))
    class H(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200); self.end_headers()
        def log_message(self, *a):
            pass
    http.server.HTTPServer(("127.0.0.1", port), H).serve_forever()
    """
)


@pytest.fixture(autouse=True)
def runtime_dir(tmp_path, monkeypatch):
    d = tmp_path / "runtime"
    monkeypatch.setenv("BENCH_RUNTIME_DIR", str(d))
    return d


def env_with_repo(**extra) -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=str(REPO), **extra)


def pid_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return True


def wait_until(cond, timeout_s: float, step_s: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(step_s)
    return cond()


def wait_for_file(path: Path, timeout_s: float = 60) -> str:
    assert wait_until(lambda: path.exists() and path.read_text().strip(), timeout_s), f"{path} never written"
    return path.read_text().strip()


# --------------------------------------------------------------------------- 1. the supervisor



def signal_and_wait(child, sig, timeout_s: float = 60) -> tuple[int, float]:
    """Send `sig` to the child; (its exit code, seconds it took to exit)."""
    t0 = time.monotonic()
    child.send_signal(sig)
    code = child.wait(timeout=timeout_s)
    return code, time.monotonic() - t0

def test_group_alive_does_not_count_our_own_zombie():
    p = subprocess.Popen([sys.executable, "-c", "pass"], start_new_session=True)
    assert wait_until(lambda: Path(f"/proc/{p.pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z", 30)
    assert not S.group_alive(p.pid)  # only our unreaped zombie is left: not alive
    p.wait()


def test_supervisor_stops_the_group_when_the_harness_is_killed(tmp_path):
    """A harness starts a (dummy) server and is SIGKILLed: no atexit, no handler runs; the supervisor
    notices (PR_SET_PDEATHSIG) and takes the server and its child down."""
    (tmp_path / "dummy.py").write_text(DUMMY_SERVER)
    port = S.free_port()
    harness = tmp_path / "harness.py"
    harness.write_text(textwrap.dedent(f"""
        import sys, time
        from bench.server.process import ServerProcess
        p = ServerProcess([sys.executable, {str(tmp_path / 'dummy.py')!r}, "{port}", {str(tmp_path / 'child.pid')!r}],
                          base_url="http://127.0.0.1:{port}", log_path={str(tmp_path / 's.log')!r},
                          poll_interval_s=0.1, stop_timeout_s=5)
        p.start()
        print(p.pgid, flush=True)
        time.sleep(600)
    """))
    h = subprocess.Popen([sys.executable, str(harness)], stdout=subprocess.PIPE, text=True, env=env_with_repo())
    try:
        pgid = int(h.stdout.readline())
        child = int(wait_for_file(tmp_path / "child.pid"))
        assert S.group_alive(pgid) and not pid_gone(child)
        h.kill()
        h.wait(timeout=30)
        assert wait_until(lambda: not S.group_alive(pgid), 10), "server group outlived the SIGKILLed harness"
        assert pid_gone(child)
    finally:
        if h.poll() is None:
            h.kill()
            h.wait()


def test_supervisor_notices_a_dead_parent_by_polling(tmp_path):
    """Without the death signal (here: the supervisor is told another parent pid, as if its parent
    had died before the signal was armed) the getppid() check alone stops the child."""
    pidfile = tmp_path / "child.pid"
    sup = subprocess.Popen(
        [sys.executable, "-I", "-S", str(S.SUPERVISOR), "--parent", "1", "--grace", "2", "--",
         sys.executable, "-c", f"import os, time; open({str(pidfile)!r}, 'w').write(str(os.getpid())); time.sleep(600)"],
        start_new_session=True,
    )
    assert sup.wait(timeout=30) == 1  # refuses to start anything: its parent is not pid 1
    assert not pidfile.exists()


def test_supervisor_passes_the_exit_status_through(tmp_path):
    for code in (0, 3):
        sup = subprocess.run([sys.executable, "-I", "-S", str(S.SUPERVISOR), "--parent", str(os.getpid()), "--",
                              sys.executable, "-c", f"raise SystemExit({code})"], timeout=60)
        assert sup.returncode == code


# --------------------------------------------------------------------------- 2. records and ports


def test_record_written_while_running_and_dropped_on_stop(tmp_path, runtime_dir):
    (tmp_path / "dummy.py").write_text(DUMMY_SERVER)
    port = S.free_port()
    p = S.ServerProcess([sys.executable, str(tmp_path / "dummy.py"), str(port), str(tmp_path / "c.pid")],
                        base_url=f"http://127.0.0.1:{port}", log_path=tmp_path / "s.log", poll_interval_s=0.1,
                        stop_timeout_s=5)
    with p:
        recs = S.read_server_records()
        assert len(recs) == 1
        rec = recs[0][1]
        assert rec["pgid"] == p.pgid and rec["port"] == port and rec["owner_pid"] == os.getpid()
        with pytest.raises(S.ServerError, match=f"port {port} .*bench pid {os.getpid()}"):
            S.check_port("127.0.0.1", port)  # a live bench's server: refused, not stopped
    assert S.read_server_records() == []


def test_stale_server_of_a_dead_bench_is_stopped_by_the_next_start(tmp_path, runtime_dir):
    """The record's owner is dead (a SIGKILLed bench whose supervisor was killed too, so nothing
    stopped the server): the next ServerProcess.start() stops that group and says so."""
    (tmp_path / "dummy.py").write_text(DUMMY_SERVER)
    port = S.free_port()
    # an "orphaned" server group: started here without a supervisor, recorded with a dead owner
    orphan = subprocess.Popen([sys.executable, str(tmp_path / "dummy.py"), str(port), str(tmp_path / "c.pid")],
                              start_new_session=True)
    child = int(wait_for_file(tmp_path / "c.pid"))
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    runtime_dir.mkdir(parents=True, exist_ok=True)
    (runtime_dir / f"server-{orphan.pid}.json").write_text(json.dumps({
        "pgid": orphan.pid, "leader_start_ticks": S.process_start_ticks(orphan.pid), "owner_pid": dead.pid,
        "owner_start_ticks": 1, "host": "127.0.0.1", "port": port,
    }))
    port2 = S.free_port()
    p = S.ServerProcess([sys.executable, str(tmp_path / "dummy.py"), str(port2), str(tmp_path / "c2.pid")],
                        base_url=f"http://127.0.0.1:{port2}", log_path=tmp_path / "s2.log", poll_interval_s=0.1)
    try:
        with p:
            assert len(p.stale_stopped) == 1 and f"port {port}" in p.stale_stopped[0]
            orphan.wait(timeout=10)  # it is our child here, so reap it
            assert wait_until(lambda: pid_gone(child), 10)
            assert [r["pgid"] for _, r in S.read_server_records()] == [p.pgid]
    finally:
        if orphan.poll() is None:
            os.killpg(orphan.pid, signal.SIGKILL)
            orphan.wait()


def test_port_held_by_another_program_is_refused_in_one_line(tmp_path):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        p = S.ServerProcess([sys.executable, "-c", "pass"], base_url=f"http://127.0.0.1:{port}",
                            log_path=tmp_path / "s.log")
        with pytest.raises(S.ServerError) as info:
            p.start()
    msg = str(info.value)
    assert "\n" not in msg and f"port {port}" in msg and "bench did not start" in msg
    assert f"pid {os.getpid()}" in msg  # the holder is named
    assert p.pid is None  # nothing was started


# --------------------------------------------------------------------------- 3. signals

SWEEP_CHILD = textwrap.dedent("""
    import os, sys
    from pathlib import Path
    from bench.run.execute import Target
    from bench.server.process import ServerProcess, install_stop_handlers
    from bench.run.sweep import sweep
    from tests.test_faults import MODEL, HARDWARE
    from tests.test_stop import slow_specs
    port, results, tmp = int(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
    install_stop_handlers()  # what `python -m bench run|sweep` does
    argv = [sys.executable, os.path.join("tests", "fakeserver.py"), "--port", str(port), "--ttft-s", "0.05",
            "--itl-s", "0.05", "--model", MODEL.name]
    with ServerProcess(argv, base_url=f"http://127.0.0.1:{port}", log_path=tmp / "fake.log",
                       startup_timeout_s=60, stop_timeout_s=30) as srv:
        (tmp / "pgid").write_text(str(srv.pgid))
        sweep(slow_specs(), target=Target(srv, MODEL.name), model=MODEL, hardware=HARDWARE,
              results=results, token_ids=(0, 2047))
""")


def slow_specs():
    # 4 streams of 200 tokens at 50 ms/token: each request takes ~10 s, so the signal finds them in flight
    return [RunSpec(workload_of("decode", 8, 200), "concurrency", 4, None, 8, 0, 0),
            RunSpec(workload_of("mixed", 20, 16), "concurrency", 2, None, 4, 0, 0)]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_stops_sweep_promptly_and_marks_the_run(sig, tmp_path):
    results = tmp_path / "runs"
    base = series_dir(results, HARDWARE.name, MODEL.name)
    port = S.free_port()
    child = subprocess.Popen([sys.executable, "-c", SWEEP_CHILD, str(port), str(results), str(tmp_path)],
                             env=env_with_repo(), cwd=REPO, stderr=subprocess.PIPE, text=True)
    try:
        pgid = int(wait_for_file(tmp_path / "pgid"))
        key = slow_specs()[0].key()
        # wait until the 4 streams are in flight (the fake server counts them)
        def in_flight() -> int:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/stats", timeout=2) as r:
                    return json.loads(r.read())["in_flight"]
            except OSError:
                return 0

        assert wait_until(lambda: in_flight() >= 4, 60), "the sweep never had its requests in flight"
        code, elapsed = signal_and_wait(child, sig)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    stderr = child.stderr.read()
    assert code == 128 + sig, stderr
    assert elapsed <= 5.0, f"took {elapsed:.1f} s to stop after {signal.Signals(sig).name}"
    assert "Traceback" not in stderr, stderr
    run_dir = runs_of_spec(base, key)[0]
    marker = (run_dir / FAILED_MARKER).read_text()
    assert marker.splitlines()[0] == "interrupted"  # the same marker for SIGINT and SIGTERM
    assert signal.Signals(sig).name in marker
    assert not (run_dir / RUN_FILE).exists()
    recs = [RequestRecord.model_validate_json(x) for x in (run_dir / REQUESTS_FILE).read_text().splitlines()]
    assert sum(r.error == INTERRUPTED_ERROR for r in recs) == 4  # the four in flight
    assert not S.group_alive(pgid)  # the server went down with the sweep
    assert S.read_server_records() == []


def test_interrupted_run_load_records_in_flight_requests():
    """In process: SIGTERM while 3 streams are in flight -> 3 interrupted records, Interrupted raised."""
    import asyncio

    from fakeserver import FakeServer

    prompts = make_prompts(workload_of("decode", 4, 100), 6, seed=0, token_id_low=10, token_id_high=100)
    seen: list[RequestRecord] = []

    async def go():
        async with FakeServer(itl_s=0.05) as srv:
            loop = asyncio.get_running_loop()
            loop.call_later(0.5, os.kill, os.getpid(), signal.SIGTERM)
            await run_load(srv.base_url, "fake-model", prompts, mode="concurrency", concurrency=3,
                           on_record=seen.append)

    prev = signal.getsignal(signal.SIGTERM)
    try:
        with pytest.raises(S.Interrupted) as info:
            asyncio.run(go())
    finally:
        signal.signal(signal.SIGTERM, prev)
    assert info.value.signum == signal.SIGTERM and info.value.code == 128 + signal.SIGTERM
    assert len(seen) == 3 and all(r.error == INTERRUPTED_ERROR for r in seen)
    assert all(r.end_s >= r.send_s for r in seen)


# --------------------------------------------------------------------------- 4. fail fast


def fake_process(tmp: Path, *extra: str) -> S.ServerProcess:
    port = S.free_port()
    argv = [sys.executable, str(FAKESERVER), "--port", str(port), "--model", MODEL.name, *extra]
    return S.ServerProcess(argv, base_url=f"http://127.0.0.1:{port}", log_path=tmp / f"fake-{port}.log",
                           env=env_with_repo(), startup_timeout_s=60, stop_timeout_s=5).start()


def three_specs():
    return [RunSpec(workload_of("decode", 8, 4), "concurrency", 2, None, 6, 1, 0),
            RunSpec(workload_of("mixed", 8, 4), "concurrency", 2, None, 6, 1, 0),
            RunSpec(workload_of("prefill", 8, 1), "concurrency", 2, None, 6, 1, 0)]


@pytest.mark.parametrize("extra, served, needle, cause", [
    (["--api-key", "right-key"], MODEL.name, "HTTP 401", "API key"),
    (["--strict-model"], "no-such-model", "HTTP 404", "model name"),
])  # fmt: skip
def test_dead_endpoint_stops_the_sweep_in_one_line(extra, served, needle, cause, tmp_path):
    results = tmp_path / "runs"
    srv = fake_process(tmp_path, *extra)
    try:
        with pytest.raises(S.DeadEndpointError) as info:
            sweep(three_specs(), target=Target(srv, served), model=MODEL, hardware=HARDWARE, results=results,
                  token_ids=(0, 2047))
        requests_seen = json.loads(urllib.request.urlopen(srv.base_url + "/stats").read())
    finally:
        srv.stop()
    msg = str(info.value)
    assert "\n" not in msg and needle in msg and cause in msg and "2 not run" in msg
    base = series_dir(results, HARDWARE.name, MODEL.name)
    assert len(list(base.iterdir())) == 1  # one run, marked failed; the other specs were never started
    run_dir = next(base.iterdir())
    assert json.loads((run_dir / RUN_FILE).read_text())["error"].startswith("the first 3 requests")
    assert requests_seen["requests_errored"] <= 4  # the rest were never sent


def test_connection_refused_is_a_dead_endpoint():
    import asyncio

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    prompts = make_prompts(workload_of("decode", 4, 4), 20, seed=0, token_id_low=10, token_id_high=100)
    recs = asyncio.run(run_load(f"http://127.0.0.1:{port}", "m", prompts, mode="rate", request_rate_per_s=0.5))
    reason = fail_fast_reason(recs, f"http://127.0.0.1:{port}")
    assert reason and "connection refused" in reason and "--endpoint" in reason
    assert recs[-1].end_s < 30  # nothing waited for the 40 s the arrivals would take


def test_other_errors_are_not_a_dead_endpoint():
    def rec(i, error):
        return RequestRecord(index=i, send_s=0, end_s=i, error=error, requested_input_tokens=1,
                             requested_output_tokens=1)

    assert fail_fast_reason([rec(i, "HTTP 500: boom") for i in range(3)]) is None
    assert fail_fast_reason([rec(0, "HTTP 401: x"), rec(1, None)]) is None
    assert fail_fast_reason([rec(0, "HTTP 401: x"), rec(1, "HTTP 404: y")]) is None
    assert "HTTP 401" in fail_fast_reason([rec(0, "HTTP 401: x"), rec(1, "HTTP 401: x")])


def test_cli_wrong_api_key_is_one_line_exit_1(tmp_path):
    srv = fake_process(tmp_path, "--api-key", "right-key")
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text(json.dumps({
        "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 256, "intermediate_size": 512,
        "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 4, "vocab_size": 2048,
        "max_position_embeddings": 512, "torch_dtype": "bfloat16",
    }))
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "bench", "sweep", "--model", str(model), "--endpoint", srv.base_url,
             "--api-key-env", "BENCH_TEST_KEY", "--served-name", MODEL.name, "--hardware-name", "a100-80gb",
             "--workload", "decode", "--output-tokens", "4", "--concurrency", "1,2", "--num-requests", "4",
             "--no-progress", "--results", str(tmp_path / "runs")],
            capture_output=True, text=True, cwd=REPO, timeout=300, env=env_with_repo(BENCH_TEST_KEY="wrong-key"))
    finally:
        srv.stop()
    assert proc.returncode == 1, proc.stderr
    line = [x for x in proc.stderr.splitlines() if "server error" in x]
    assert len(line) == 1 and "HTTP 401" in line[0] and "--api-key-env" in line[0], proc.stderr
    assert "wrong-key" not in proc.stderr + proc.stdout  # the key itself is never shown
    assert "Traceback" not in proc.stderr


# --------------------------------------------------------------------------- 5. bad numbers


RUN = ["run", "--model", "/nonexistent-model"]


@pytest.mark.parametrize("argv, needle", [
    (RUN + ["--workload", "mixed", "--request-rate", "inf"], "--request-rate"),
    (RUN + ["--workload", "mixed", "--request-rate", "nan"], "--request-rate"),
    (RUN + ["--workload", "mixed", "--request-rate", "1e-300"], "--request-rate"),
    (RUN + ["--workload", "mixed", "--request-rate", "1e400"], "--request-rate"),
    (RUN + ["--workload", "decode", "--concurrency", "1", "--usd-per-hour", "inf"], "--usd-per-hour"),
    (RUN + ["--workload", "decode", "--concurrency", "1", "--slo-ttft-s", "nan"], "--slo-ttft-s"),
    (RUN + ["--workload", "decode", "--concurrency", "1", "--peak-flop-per-s", "int8=inf"], "int8=inf"),
    (RUN + ["--workload", "decode", "--concurrency", "1", "--memory-bandwidth", "1e999"], "--memory-bandwidth"),
    (RUN + ["--workload", "decode", "--concurrency", "1", "--port", "70000"], "--port"),
    (RUN + ["--workload", "decode", "--concurrency", "1", "--endpoint", "ftp://x"], "--endpoint"),
    (RUN + ["--workload", "decode", "--concurrency", "1", "--pipeline-parallel-size", "0"], "--pipeline-parallel-size"),
    (RUN + ["--workload", "decode", "--concurrency", "1", "--distributed-executor-backend", "mpi"],
     "--distributed-executor-backend"),
    (RUN + ["--workload", "distribution", "--distribution-file", "/nonexistent.csv", "--concurrency", "1"],
     "--distribution-file"),
])  # fmt: skip
def test_cli_bad_numbers_exit_2_one_line_no_run_dir(argv, needle, tmp_path):
    results = tmp_path / "runs"
    proc = subprocess.run([sys.executable, "-m", "bench", *argv, "--results", str(results)],
                          capture_output=True, text=True, cwd=REPO, timeout=120, env=env_with_repo())
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr and "Warning" not in proc.stderr
    assert not results.exists()  # checked before any run directory


@pytest.mark.parametrize("toml, needle", [
    ('[[runs]]\nworkload = "mixed"\nrequest_rate_per_s = [inf]\n', "runs.0.request_rate_per_s"),
    ('[[runs]]\nworkload = "mixed"\nrequest_rate_per_s = [nan]\n', "runs.0.request_rate_per_s"),
    ('num_requests = 100\n[[runs]]\nworkload = "mixed"\nrequest_rate_per_s = [1e-300]\n', "runs.0.request_rate_per_s"),
    ('[hardware]\nusd_per_hour = inf\n', "hardware.usd_per_hour"),
    ('[hardware]\npeak_flop_per_s = { int8 = nan }\n', "hardware.peak_flop_per_s.int8"),
    ('slo_tpot_s = -inf\n', "slo_tpot_s"),
    ('[server]\nstartup_timeout_s = inf\n', "server.startup_timeout_s"),
    ('[server]\ndata_parallel_size = 0\n', "server.data_parallel_size"),
])  # fmt: skip
def test_config_bad_numbers_name_the_key(toml, needle, tmp_path):
    from bench.config import ConfigError, load_config

    path = tmp_path / "c.toml"
    path.write_text(toml)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    msg = str(info.value)
    assert "\n" not in msg and needle in msg and str(path) in msg


def test_rate_bound_uses_the_runs_request_count():
    from bench.config import ConfigError, parse_config

    ok = parse_config({"runs": [{"workload": "mixed", "request_rate_per_s": [1e-4], "num_requests": 10}]})
    assert ok.specs()[0].request_rate_per_s == 1e-4  # 10 requests over ~28 h: allowed
    with pytest.raises(ConfigError, match="requests/s"):
        parse_config({"runs": [{"workload": "mixed", "request_rate_per_s": [1e-6], "num_requests": 10}]})


def test_signal_during_server_start_up_stops_promptly(tmp_path):
    """SIGTERM while the server is still starting (never healthy here): out in <= 5 s, group gone."""
    hang = tmp_path / "hang.py"
    hang.write_text("import os, sys, time\nopen(sys.argv[1], 'w').write(str(os.getpid()))\ntime.sleep(600)\n")
    script = tmp_path / "start.py"
    script.write_text(textwrap.dedent(f"""
        import sys
        from bench.server.process import ServerProcess, install_stop_handlers
        install_stop_handlers()
        p = ServerProcess([sys.executable, {str(hang)!r}, {str(tmp_path / 'srv.pid')!r}],
                          base_url="http://127.0.0.1:{S.free_port()}", log_path={str(tmp_path / 's.log')!r},
                          startup_timeout_s=600, stop_timeout_s=30, poll_interval_s=0.2)
        p.start()
    """))
    child = subprocess.Popen([sys.executable, str(script)], env=env_with_repo(), stderr=subprocess.PIPE, text=True)
    try:
        srv_pid = int(wait_for_file(tmp_path / "srv.pid"))
        code, elapsed = signal_and_wait(child, signal.SIGTERM)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert code == 128 + signal.SIGTERM and elapsed <= 5.0, (code, elapsed, child.stderr.read())
    assert wait_until(lambda: pid_gone(srv_pid), 5)


# --------------------------------------------------------------------------- fuzzed numbers

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

ANY_FLOAT = st.floats(allow_nan=True, allow_infinity=True) | st.sampled_from([1e-320, 1e-300, 1e308, -0.0, 5e-324])


@settings(max_examples=300, deadline=None)
@given(rate=ANY_FLOAT, n=st.integers(min_value=1, max_value=10**6), usd=ANY_FLOAT, slo=ANY_FLOAT)
def test_config_numbers_are_finite_or_refused_in_one_line(rate, n, usd, slo):
    """Any float in the rate, price or SLO: either a config whose every number is finite and whose
    runs end within the bound, or ConfigError with one line naming the key."""
    from bench.config import MAX_RUN_S, ConfigError, parse_config

    data = {"num_requests": n, "slo_ttft_s": slo, "hardware": {"usd_per_hour": usd},
            "runs": [{"workload": "mixed", "request_rate_per_s": [rate]}]}
    try:
        cfg = parse_config(data, where="fuzz.toml")
    except ConfigError as exc:
        msg = str(exc)
        assert "\n" not in msg and msg.startswith("fuzz.toml: ")
        assert any(k in msg for k in ("request_rate_per_s", "usd_per_hour", "slo_ttft_s")), msg
        return
    import math

    spec = cfg.specs()[0]
    assert math.isfinite(spec.request_rate_per_s) and spec.request_rate_per_s > 0
    assert n / spec.request_rate_per_s <= MAX_RUN_S
    assert math.isfinite(cfg.hardware.usd_per_hour) and cfg.hardware.usd_per_hour >= 0
    assert math.isfinite(cfg.slo_ttft_s) and cfg.slo_ttft_s > 0
