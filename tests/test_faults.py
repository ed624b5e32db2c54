"""Fault injection with the fake OpenAI streaming server (fakeserver run as a process).

1. The server dies mid-sweep: the run in flight keeps its completed requests, is marked failed
   (run.json status "failed" + FAILED marker, written atomically), the sweep stops.
2. The next sweep (new server) skips the complete run, measures the failed spec again in a NEW
   directory, keeps the old one byte for byte, and measures the spec that was never run.
3. A sweep PROCESS killed mid-run (SIGKILL) leaves no run.json; the next sweep redoes that spec.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from bench.config import RunSpec, workload_of
from bench.run.execute import Target
from bench.run.rundir import run_status, runs_of_spec, series_dir
from bench.run.sweep import sweep
from bench.server.process import ServerProcess, free_port
from core.schema.run import (
    FAILED_MARKER,
    REQUESTS_FILE,
    RUN_FILE,
    HardwareInfo,
    ModelInfo,
    RequestRecord,
    RunRecord,
)

FAKESERVER = Path(__file__).with_name("fakeserver.py")  # the fake OpenAI server, run as a script

REPO = Path(__file__).resolve().parents[1]
MODEL = ModelInfo(
    name="fake-model", source="fake", quantization="w8a8-int8", matmul_dtype="int8",
    params_total=1_600_000, params_matmul=1_000_000, num_layers=2, hidden_size=256,
    num_attention_heads=4, num_kv_heads=4, head_dim=64, vocab_size=2048, weight_bytes=2_000_000,
)  # fmt: skip
HARDWARE = HardwareInfo(
    name="fake-hw", kind="cpu", device_name="fake", device_count=1, peak_flop_per_s={"int8": 1e12},
    peak_source="assumption: test", memory_bandwidth_bytes_per_s=1e10, bandwidth_source="assumption: test",
    usd_per_h=0.1, usd_per_h_source="assumption: test",
)  # fmt: skip


def specs():
    return [
        RunSpec(workload_of("decode", 8, 16), "concurrency", 2, None, 10, 1, 0),  # 11 responses
        RunSpec(workload_of("mixed", 20, 16), "concurrency", 2, None, 10, 1, 0),
        RunSpec(workload_of("prefill", 32, 1), "concurrency", 2, None, 6, 1, 0),
    ]


def fake_server(tmp: Path, *extra: str) -> ServerProcess:
    port = free_port()
    argv = [sys.executable, str(FAKESERVER), "--port", str(port), "--ttft-s", "0.005",
            "--itl-s", "0.002", "--model", MODEL.name, "--params-matmul", str(MODEL.params_matmul), *extra]
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return ServerProcess(argv, base_url=f"http://127.0.0.1:{port}", log_path=tmp / f"fake-{port}.log",
                         env=env, startup_timeout_s=60, stop_timeout_s=5).start()


def no_temp_files(root: Path) -> bool:
    return not [p for p in root.rglob("*") if ".tmp" in p.name]


def test_server_dies_mid_sweep_then_sweep_resumes(tmp_path):
    results = tmp_path / "runs"
    base = series_dir(results, HARDWARE.name, MODEL.name)
    # spec 0 needs 11 responses; the server dies after 14, i.e. 3 responses into spec 1
    srv = fake_server(tmp_path, "--die-after-requests", "14")
    try:
        out = sweep(specs(), target=Target(srv, MODEL.name), model=MODEL, hardware=HARDWARE,
                    results=results, token_ids=(0, 2047))
    finally:
        srv.stop()

    assert [r.record.status for r in out.results] == ["complete", "failed"]
    assert [s.key() for s in out.not_run] == [specs()[2].key()]
    assert not out.ok
    done, failed = out.results[0].run_dir, out.results[1].run_dir
    # the complete run: valid files, server log slice, 11 request lines
    rec0 = RunRecord.model_validate_json((done / RUN_FILE).read_text())
    assert rec0.status == "complete" and rec0.summary.num_ok == 10 and rec0.summary.valid
    assert rec0.derived.flop_ratio_to_vllm is not None  # the fake server exports the vLLM counter
    assert not (done / FAILED_MARKER).exists()
    # the failed run: run.json says failed, FAILED marker, completed requests kept
    rec1 = RunRecord.model_validate_json((failed / RUN_FILE).read_text())
    assert rec1.status == "failed" and rec1.error
    assert (failed / FAILED_MARKER).read_text().strip() == rec1.error
    lines = [RequestRecord.model_validate_json(x) for x in (failed / REQUESTS_FILE).read_text().splitlines()]
    ok = [r for r in lines if r.error is None]
    assert len(ok) == 3  # the 3 responses completed before the server died
    assert rec1.summary is not None and not rec1.summary.valid
    assert rec1.summary.num_ok == sum(1 for r in ok if not r.warmup)
    assert no_temp_files(results)
    failed_bytes = (failed / RUN_FILE).read_bytes()

    # the next sweep, with a healthy server
    srv = fake_server(tmp_path)
    try:
        out2 = sweep(specs(), target=Target(srv, MODEL.name), model=MODEL, hardware=HARDWARE,
                     results=results, token_ids=(0, 2047))
    finally:
        srv.stop()
    assert out2.ok and not out2.not_run
    assert [r.skipped for r in out2.results] == [True, False, False]
    assert out2.results[0].run_dir == done  # skipped: the complete run is reused
    assert out2.results[1].run_dir != failed  # redone in a new directory
    assert (failed / RUN_FILE).read_bytes() == failed_bytes  # the old failed run is kept as it was
    assert [run_status(d) for d in runs_of_spec(base, specs()[1].key())] == ["failed", "complete"]
    assert all(r.record.status == "complete" for r in out2.results)
    assert no_temp_files(results)


CHILD = textwrap.dedent("""
    import sys
    from pathlib import Path
    from bench.run.execute import Target
    from bench.run.sweep import sweep
    from bench.server.process import Endpoint
    from tests.test_faults import MODEL, HARDWARE, specs
    url, results = sys.argv[1], Path(sys.argv[2])
    sweep(specs()[:1], target=Target(Endpoint(url, served_name=MODEL.name), MODEL.name), model=MODEL,
          hardware=HARDWARE, results=results, token_ids=(0, 2047))
""")


def test_killed_sweep_process_leaves_no_run_json_and_is_redone(tmp_path):
    results = tmp_path / "runs"
    base = series_dir(results, HARDWARE.name, MODEL.name)
    srv = fake_server(tmp_path, "--ttft-s", "0.05", "--itl-s", "0.02")  # 16 tokens ~ 0.35 s per request
    try:
        env = dict(os.environ, PYTHONPATH=str(REPO))
        child = subprocess.Popen([sys.executable, "-c", CHILD, srv.base_url, str(results)], env=env, cwd=REPO)
        key = specs()[0].key()
        deadline = time.monotonic() + 60
        req_file = None
        while time.monotonic() < deadline:  # wait until a few requests are on disk, then kill -9
            dirs = runs_of_spec(base, key)
            if dirs and (dirs[0] / REQUESTS_FILE).exists():
                req_file = dirs[0] / REQUESTS_FILE
                if len(req_file.read_text().splitlines()) >= 3:
                    break
            time.sleep(0.05)
        assert req_file is not None, "the child sweep never wrote a request"
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
        crashed = runs_of_spec(base, key)[0]
        assert not (crashed / RUN_FILE).exists()
        assert run_status(crashed) == "incomplete"
        kept = [json.loads(x) for x in (crashed / REQUESTS_FILE).read_text().splitlines()]
        assert len(kept) >= 3  # finished requests were flushed as they ended

        out = sweep(specs()[:1], target=Target(srv, MODEL.name), model=MODEL, hardware=HARDWARE,
                    results=results, token_ids=(0, 2047))
    finally:
        srv.stop()
    assert out.ok and not out.results[0].skipped
    assert out.results[0].run_dir != crashed and crashed.exists()
    assert [run_status(d) for d in runs_of_spec(base, key)] == ["incomplete", "complete"]


@pytest.mark.parametrize("argv, needle", [
    (["run", "--concurrency", "1,x"], "'1,x'"),
    (["run", "--peak-flop-per-s", "int9=1e12"], "int9=1e12"),
    (["sweep", "--config", "/nonexistent.toml"], "/nonexistent.toml"),
    (["run", "--model", "/nonexistent", "--workload", "decode", "--concurrency", "1"], "/nonexistent"),
    (["run", "--workload", "decode"], "--concurrency"),
])  # fmt: skip
def test_cli_bad_input_exits_2_with_one_line(argv, needle, tmp_path):
    proc = subprocess.run([sys.executable, "-m", "bench", *argv, "--results", str(tmp_path)],
                          capture_output=True, text=True, cwd=REPO, timeout=120,
                          env=dict(os.environ, PYTHONPATH=str(REPO)))
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr


# --------------------------------------------------------------------------- config: bad input and overrides


def test_config_rejects_unknown_keys_and_bad_values(tmp_path):
    from bench.config import ConfigError, load_config

    bad = tmp_path / "bad.toml"
    bad.write_text('model = "m"\nnum_request = 3\n')  # typo of num_requests
    with pytest.raises(ConfigError, match="num_request"):
        load_config(bad)
    bad.write_text('[[runs]]\nworkload = "decode"\nconcurrency = [1, 0]\n')
    with pytest.raises(ConfigError, match="concurrency 0"):
        load_config(bad)
    bad.write_text('[[runs]]\nworkload = "decode"\nconcurrency = [1]\nrequest_rate_per_s = [1.0]\n')
    with pytest.raises(ConfigError, match="exactly one of"):
        load_config(bad)
    bad.write_text('[server]\nmax_model_len = -5\n')
    with pytest.raises(ConfigError, match="max_model_len"):
        load_config(bad)


def test_shipped_configs_parse_and_flags_override(tmp_path):
    from bench.config import load_config, with_overrides

    cpu = load_config(REPO / "bench/data/sweep_cpu.toml")
    a100 = load_config(REPO / "bench/data/sweep_a100.toml")
    assert {s.workload.kind for s in a100.specs()} == {"prefill", "decode", "mixed"}
    assert max(s.concurrency or 0 for s in a100.specs()) == 256
    assert {s.workload.input_tokens for s in a100.specs() if s.workload.kind == "prefill"} == {512, 2048}
    keys = [s.key() for s in cpu.specs()]
    assert len(set(keys)) == len(keys) and keys == [s.key() for s in load_config(REPO / "bench/data/sweep_cpu.toml").specs()]
    over = with_overrides(cpu, {"concurrency": [2], "num_requests": 5, "hardware.usd_per_hour": 1.5,
                                "hardware.peak_flop_per_s": {"int8": 1e13}})
    assert {s.concurrency for s in over.specs()} == {2}
    assert {s.num_requests for s in over.specs()} == {5}
    assert over.hardware.usd_per_hour == 1.5 and over.hardware.peak_flop_per_s == {"int8": 1e13}
    assert cpu.hardware.usd_per_hour is None  # the original is untouched
    # a different request count is a different spec (a sweep never mistakes one for the other)
    assert over.specs()[0].key() != cpu.specs()[0].key()


def test_sweep_over_two_endpoints_records_both_and_sums_their_counters(tmp_path):
    from bench.config import ServerSection
    from bench.run.derive import VLLM_FLOP_COUNTER
    from bench.run.telemetry import parse_metrics
    from bench.server.process import Endpoint

    a, b = fake_server(tmp_path), fake_server(tmp_path)
    try:
        ep = Endpoint([a.base_url, b.base_url], served_name=MODEL.name)
        srv = ServerSection(endpoint=[a.base_url, b.base_url], data_parallel_size=2)
        out = sweep(specs()[:1], target=Target(ep, MODEL.name), model=MODEL, hardware=HARDWARE,
                    results=tmp_path / "runs", token_ids=(0, 2047), config_kwargs={"server": srv})
    finally:
        a.stop()
        b.stop()
    assert out.ok
    res = out.results[0]
    cfg = res.record.config
    assert cfg.endpoint == a.base_url and cfg.endpoints == [a.base_url, b.base_url]
    assert cfg.data_parallel_size == 2
    after = (res.run_dir / "metrics_after.prom").read_text()
    assert after.count("# endpoint: ") == 2
    # the counters of both servers together cover every request of the run (11 = 1 warm-up + 10)
    assert parse_metrics(after)["vllm:request_success_total"] == 11
    assert parse_metrics(after)[VLLM_FLOP_COUNTER] > 0
