"""bench.server.process without vLLM: command line, environment, ports, log slices, and the process
lifecycle against a tiny fake server script (healthy, exits early, never healthy, with a child)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
import urllib.request
from pathlib import Path

import pytest

from bench.server import process as S
from bench.server.args import KEEP_ALIVE_S

FAKE_SERVER = textwrap.dedent(
    """
    import http.server, os, subprocess, sys, time
    mode, port, pidfile = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    # a child process, like vLLM's engine core: the whole group must go on stop()
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    open(pidfile, "w").write(str(child.pid))
    print("fake server starting", mode, flush=True)
    for i in range(60):
        print(f"log line {i}", flush=True)
    if mode == "exit":
        print("FATAL: cannot load model", flush=True)
        sys.exit(3)
    if mode == "hang":
        time.sleep(600)
    class H(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200 if self.path == "/health" else 404)
            self.end_headers()
        def log_message(self, *a):
            print("request", self.path, flush=True)
    http.server.HTTPServer(("127.0.0.1", port), H).serve_forever()
    """
)


@pytest.fixture
def fake(tmp_path):
    script = tmp_path / "fake_server.py"
    script.write_text(FAKE_SERVER)

    def make(mode: str, **kw) -> tuple[S.ServerProcess, Path]:
        port = S.free_port()
        pidfile = tmp_path / f"child-{mode}.pid"
        proc = S.ServerProcess(
            [sys.executable, str(script), mode, str(port), str(pidfile)],
            base_url=f"http://127.0.0.1:{port}",
            log_path=tmp_path / f"{mode}.log",
            poll_interval_s=0.1,
            stop_timeout_s=5,
            **kw,
        )
        return proc, pidfile

    return make


def _pid_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    # a zombie still answers kill(0); it is gone for our purposes once its state is Z
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"
    except OSError:
        return True


def _assert_group_gone(pgid: int) -> None:
    with pytest.raises(ProcessLookupError):
        os.killpg(pgid, 0)


# --------------------------------------------------------------------------- pure


def test_vllm_command_has_the_flags():
    cmd = S.vllm_command(
        "/models/tiny", served_name="tiny", port=8123, quantization="compressed-tensors",
        max_model_len=1024, max_num_seqs=8, tensor_parallel_size=2, seed=7, python="py",
    )  # fmt: skip
    assert cmd[:3] == ["py", "-m", "vllm.entrypoints.openai.api_server"]

    def val(flag):
        return cmd[cmd.index(flag) + 1]

    assert val("--model") == "/models/tiny"
    assert val("--served-model-name") == "tiny"
    assert val("--host") == "127.0.0.1"
    assert val("--port") == "8123"
    assert val("--dtype") == "bfloat16"
    assert val("--max-model-len") == "1024"
    assert val("--max-num-seqs") == "8"
    assert val("--tensor-parallel-size") == "2"
    assert val("--seed") == "7"
    assert val("--quantization") == "compressed-tensors"
    assert val("--generation-config") == "vllm"
    for flag in ("--enable-mfu-metrics", "--enforce-eager", "--no-enable-prefix-caching", "--disable-uvicorn-access-log"):
        assert flag in cmd


def test_vllm_command_optional_flags_left_out_and_extra_args_last():
    cmd = S.vllm_command("m", served_name="m", port=1, enforce_eager=False, prefix_caching=True, extra_args=["--foo", "1"])
    for flag in ("--quantization", "--max-model-len", "--max-num-seqs", "--enforce-eager", "--no-enable-prefix-caching"):
        assert flag not in cmd
    assert "--enable-prefix-caching" in cmd
    assert cmd[-2:] == ["--foo", "1"]


@pytest.mark.parametrize(
    "kw, word",
    [({"tensor_parallel_size": 0}, "tensor_parallel_size"), ({"max_num_seqs": 0}, "max_num_seqs"), ({"port": 70000}, "port")],
)
def test_vllm_command_rejects_bad_values(kw, word):
    args = {"served_name": "m", "port": 1} | kw
    with pytest.raises(ValueError, match=word):
        S.vllm_command("m", **args)


def test_cpu_ids_spec():
    assert S.cpu_ids_spec([0, 1]) == "0-1"
    assert S.cpu_ids_spec([3, 0, 1, 2, 7]) == "0-3,7"
    assert S.cpu_ids_spec([5]) == "5"
    with pytest.raises(ValueError):
        S.cpu_ids_spec([])


def test_cpu_env_values():
    env = S.cpu_env(cpu_ids=[0, 1])
    assert env == {
        "VLLM_CPU_KVCACHE_SPACE": "1",
        "VLLM_CPU_OMP_THREADS_BIND": "0-1",
        "VLLM_HOST_IP": "127.0.0.1",
        "HF_HUB_OFFLINE": "1",
        "VLLM_NO_USAGE_STATS": "1",
        "DO_NOT_TRACK": "1",
    }
    assert S.cpu_env(kvcache_space_gib=4, cpu_ids=[0])["VLLM_CPU_KVCACHE_SPACE"] == "4"
    with pytest.raises(ValueError, match="kvcache_space_gib"):
        S.cpu_env(kvcache_space_gib=0)


def test_server_env_cpu_only_without_gpu_and_user_values_win():
    base = {"PATH": "/bin", "VLLM_CPU_KVCACHE_SPACE": "3"}
    cpu = S.server_env({"X": "1"}, base=base, cpu=True)
    assert cpu["VLLM_CPU_KVCACHE_SPACE"] == "3"  # the user's setting is kept
    assert cpu["VLLM_HOST_IP"] == "127.0.0.1" and cpu["X"] == "1" and cpu["PATH"] == "/bin"
    gpu = S.server_env(None, base={"PATH": "/bin"}, cpu=False)
    assert gpu == {"PATH": "/bin", "VLLM_HTTP_TIMEOUT_KEEP_ALIVE": str(KEEP_ALIVE_S)}
    # an idle pooled connection must outlive a client stall (vLLM's own default closes it after 5 s)
    assert KEEP_ALIVE_S >= 60 and cpu["VLLM_HTTP_TIMEOUT_KEEP_ALIVE"] == str(KEEP_ALIVE_S)
    kept = S.server_env(None, base={"VLLM_HTTP_TIMEOUT_KEEP_ALIVE": "7"}, cpu=False)
    assert kept["VLLM_HTTP_TIMEOUT_KEEP_ALIVE"] == "7"  # the user's setting wins
    assert S.server_env({"VLLM_HOST_IP": "10.0.0.1"}, base={}, cpu=True)["VLLM_HOST_IP"] == "10.0.0.1"


def test_free_port_is_bindable():
    import socket

    port = S.free_port()
    assert 0 < port < 65536
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))


def test_vllm_server_builds_without_starting(tmp_path):
    model = tmp_path / "m"
    model.mkdir()
    srv = S.VllmServer(model, served_name="m", log_path=tmp_path / "server.log", max_model_len=512)
    assert srv.base_url == f"http://127.0.0.1:{srv.port}"
    assert srv.argv[srv.argv.index("--port") + 1] == str(srv.port)
    assert srv.pid is None and not srv.alive()
    srv.stop()  # stopping a server never started is a no-op
    with pytest.raises(ValueError, match="no such directory"):
        S.VllmServer(tmp_path / "missing", served_name="m", log_path=tmp_path / "x.log")


def test_copy_log_slice(tmp_path):
    log = tmp_path / "full.log"
    log.write_bytes(b"startup\nrun1 a\nrun1 b\nrun2 a\n")
    s1, e1 = len(b"startup\n"), len(b"startup\nrun1 a\nrun1 b\n")
    out = S.copy_log_slice(log, s1, e1, tmp_path / "run1.log")
    lines = out.read_text().splitlines()
    assert lines[0].startswith("# server log slice:") and f"[{s1}, {e1})" in lines[0]
    assert lines[1:] == ["run1 a", "run1 b"]
    out2 = S.copy_log_slice(log, e1, None, tmp_path / "run2.log")
    assert out2.read_text().splitlines()[1:] == ["run2 a"]
    with pytest.raises(ValueError, match="outside"):
        S.copy_log_slice(log, 0, 10_000, tmp_path / "bad.log")
    assert not (tmp_path / "bad.log").exists()


def test_log_tail(tmp_path):
    p = tmp_path / "l.log"
    p.write_text("".join(f"line {i}\n" for i in range(100)))
    tail = S.log_tail(p, 3)
    assert tail == "line 97\nline 98\nline 99\n"
    assert S.log_tail(tmp_path / "missing.log") == ""


def test_endpoint_reads_key_from_env_and_never_shows_it(monkeypatch):
    monkeypatch.setenv("MY_BENCH_KEY", "sk-secret-123")
    ep = S.Endpoint("http://gpu-node:8000/v1/", served_name="llama", api_key_env="MY_BENCH_KEY")
    assert ep.base_url == "http://gpu-node:8000"
    assert ep.api_key == "sk-secret-123"
    assert ep.headers() == {"Authorization": "Bearer sk-secret-123"}
    assert "sk-secret" not in repr(ep) and "sk-secret" not in str(vars(ep))
    assert ep.log_offset() is None
    with ep as same:
        assert same is ep
    with pytest.raises(ValueError, match="NOT_SET_VAR"):
        S.Endpoint("http://x:1", served_name="m", api_key_env="NOT_SET_VAR")
    with pytest.raises(ValueError, match="http"):
        S.Endpoint("gpu-node:8000", served_name="m")
    assert S.Endpoint("https://h", served_name="m").headers() == {}


# --------------------------------------------------------------------------- lifecycle (fake server)


def test_healthy_server_starts_and_whole_group_stops(fake):
    proc, pidfile = fake("ok", startup_timeout_s=30)
    with proc:
        assert proc.alive() and proc.healthy()
        assert proc.startup_s is not None and proc.startup_s > 0
        pgid, child = proc.pgid, int(pidfile.read_text())
        assert pgid == proc.pid != os.getpgid(0)  # its own process group
        assert os.getpgid(child) == pgid
        assert proc.startup_log_end == proc.log_offset() or proc.log_offset() >= proc.startup_log_end
        urllib.request.urlopen(proc.base_url + "/health").read()
    assert not proc.alive()
    _assert_group_gone(pgid)
    assert _pid_gone(child)
    assert "fake server starting ok" in proc.log_path.read_text()


def test_log_slice_of_a_run_copies_only_the_run_part(fake, tmp_path):
    proc, _ = fake("ok", startup_timeout_s=30)
    with proc:
        start = proc.log_offset()
        urllib.request.urlopen(proc.base_url + "/health").read()
        time.sleep(0.2)  # the server prints its access line
        end = proc.log_offset()
        S.copy_log_slice(proc.log_path, start, end, tmp_path / "run.log")
        text = (tmp_path / "run.log").read_text()
    assert end > start
    assert "request /health" in text
    assert "fake server starting" not in text  # the start-up part belongs to no run


def test_exit_before_healthy_raises_with_log_tail(fake):
    proc, pidfile = fake("exit", startup_timeout_s=30)
    with pytest.raises(S.ServerError) as info:
        proc.start()
    msg = str(info.value)
    assert "exited with code 3" in msg
    assert "FATAL: cannot load model" in msg
    assert "log line 59" in msg and "log line 5\n" not in msg  # a tail, not the whole log
    _assert_group_gone(proc.pgid)
    assert _pid_gone(int(pidfile.read_text()))  # the orphaned child was killed with the group


def test_never_healthy_times_out_and_group_is_gone(fake):
    proc, pidfile = fake("hang", startup_timeout_s=1.5)
    t0 = time.monotonic()
    with pytest.raises(S.ServerError, match="did not answer"):
        proc.start()
    assert time.monotonic() - t0 < 60
    _assert_group_gone(proc.pgid)
    assert _pid_gone(int(pidfile.read_text()))


def test_error_inside_with_block_stops_server(fake):
    proc, _ = fake("ok", startup_timeout_s=30)
    with pytest.raises(RuntimeError, match="boom"):
        with proc:
            pgid = proc.pgid
            raise RuntimeError("boom")
    _assert_group_gone(pgid)


def test_keyboard_interrupt_inside_with_block_stops_server(fake):
    proc, _ = fake("ok", startup_timeout_s=30)
    with pytest.raises(KeyboardInterrupt):
        with proc:
            pgid = proc.pgid
            raise KeyboardInterrupt
    _assert_group_gone(pgid)


def test_sigkill_when_sigterm_is_ignored(tmp_path):
    script = tmp_path / "stubborn.py"
    port = S.free_port()
    script.write_text(textwrap.dedent(f"""
        import http.server, signal
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        class H(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                self.send_response(200); self.end_headers()
        http.server.HTTPServer(("127.0.0.1", {port}), H).serve_forever()
    """))
    proc = S.ServerProcess([sys.executable, str(script)], base_url=f"http://127.0.0.1:{port}",
                           log_path=tmp_path / "s.log", stop_timeout_s=1, poll_interval_s=0.1)
    proc.start()
    pgid = proc.pgid
    proc.stop()
    _assert_group_gone(pgid)
    assert proc.returncode == -signal.SIGKILL


def test_safety_net_stops_server_when_caller_is_killed(tmp_path):
    """A script starts a server and is then SIGTERMed: the handler must take the group down."""
    fake_script = tmp_path / "fake_server.py"
    fake_script.write_text(FAKE_SERVER)
    port = S.free_port()
    pidfile = tmp_path / "child.pid"
    caller = tmp_path / "caller.py"
    caller.write_text(textwrap.dedent(f"""
        import sys, time
        sys.path.insert(0, {str(Path(S.__file__).parents[1])!r})
        from bench.server.process import ServerProcess
        p = ServerProcess([sys.executable, {str(fake_script)!r}, "ok", "{port}", {str(pidfile)!r}],
                          base_url="http://127.0.0.1:{port}", log_path={str(tmp_path / "c.log")!r},
                          poll_interval_s=0.1, stop_timeout_s=5)
        p.start()
        print(p.pgid, flush=True)
        time.sleep(600)
    """))
    c = subprocess.Popen([sys.executable, str(caller)], stdout=subprocess.PIPE, text=True)
    try:
        pgid = int(c.stdout.readline())
        os.kill(c.pid, signal.SIGTERM)
        assert c.wait(timeout=30) == 128 + signal.SIGTERM
        _assert_group_gone(pgid)
        assert _pid_gone(int(pidfile.read_text()))
    finally:
        if c.poll() is None:
            c.kill()
            c.wait()


def test_resolve_dtype_auto_picks_by_machine(monkeypatch):
    from bench.server import args as vllm_args
    from bench.server import process as server

    assert server.resolve_dtype("float16") == "float16"  # explicit values pass through
    assert server.resolve_dtype("auto", cpu=False) == "auto"  # GPU: vLLM's own choice
    monkeypatch.setattr(vllm_args, "cpu_has_bf16", lambda: True)
    assert server.resolve_dtype("auto", cpu=True) == "bfloat16"
    monkeypatch.setattr(vllm_args, "cpu_has_bf16", lambda: False)
    assert server.resolve_dtype("auto", cpu=True) == "float32"


def test_vllm_command_parallel_flags_from_the_server_section():
    from bench.config import ServerSection

    srv = ServerSection(tensor_parallel_size=2, pipeline_parallel_size=2, data_parallel_size=2,
                        distributed_executor_backend="ray", max_num_seqs=64, dtype="bfloat16")
    cmd = S.vllm_command("m", srv, served_name="m", port=8000, python="py")

    def val(flag):
        return cmd[cmd.index(flag) + 1]

    assert val("--tensor-parallel-size") == "2" and val("--pipeline-parallel-size") == "2"
    assert val("--data-parallel-size") == "2" and val("--distributed-executor-backend") == "ray"
    assert val("--max-num-seqs") == "64"
    plain = S.vllm_command("m", ServerSection(dtype="float32"), served_name="m", port=8000)
    for flag in ("--pipeline-parallel-size", "--data-parallel-size", "--distributed-executor-backend"):
        assert flag not in plain  # left to vLLM's defaults when not asked for
    # keyword fields replace the section's values (one declaration: the section's field)
    assert S.vllm_command("m", srv, served_name="m", port=1, max_num_seqs=8)[cmd.index("--max-num-seqs") + 1] == "8"


def test_vllm_server_takes_the_section(tmp_path):
    from bench.config import ServerSection

    model = tmp_path / "m"
    model.mkdir()
    srv = S.VllmServer(model, ServerSection(max_num_seqs=7, port=8765, dtype="float32", stop_timeout_s=3),
                       served_name="m", log_path=tmp_path / "s.log")
    assert srv.port == 8765 and srv.base_url.endswith(":8765") and srv.stop_timeout_s == 3
    assert srv.argv[srv.argv.index("--max-num-seqs") + 1] == "7"
    assert srv.settings.max_num_seqs == 7


def test_endpoint_of_several_urls(monkeypatch):
    ep = S.Endpoint(["http://a:1/v1", "http://b:2"], served_name="m")
    assert ep.base_urls == ["http://a:1", "http://b:2"] and ep.base_url == "http://a:1"
    assert "http://b:2" in repr(ep)
    with pytest.raises(ValueError, match="ftp"):
        S.Endpoint(["http://a:1", "ftp://b"], served_name="m")


def test_gpu_held_by_another_process_is_named():
    from types import SimpleNamespace

    class FakeNvml:
        def nvmlInit(self): pass
        def nvmlShutdown(self): pass
        def nvmlDeviceGetCount(self): return 2
        def nvmlDeviceGetHandleByIndex(self, i): return i
        def nvmlDeviceGetComputeRunningProcesses(self, h):
            return [SimpleNamespace(pid=1, usedGpuMemory=3 * 2**30)] if h == 1 else []

    assert S.gpu_holders(FakeNvml(), count=1) == []  # GPU 0 is free
    held = S.gpu_holders(FakeNvml(), indices=[0, 1])
    assert len(held) == 1 and held[0].startswith("GPU 1: pid 1 (") and "3072 MiB" in held[0]
    assert isinstance(S.gpu_holders(), list)  # real NVML (absent here): never raises


def test_prefix_caching_server_runs_in_dev_mode_so_the_cache_can_be_reset(tmp_path):
    from bench.config import ServerSection
    from bench.server.process import VllmServer

    model = tmp_path / "m"
    model.mkdir()
    on = VllmServer(model, ServerSection(prefix_caching=True), served_name="m", log_path=tmp_path / "a.log")
    off = VllmServer(model, ServerSection(), served_name="m", log_path=tmp_path / "b.log")
    assert on.env["VLLM_SERVER_DEV_MODE"] == "1"
    assert off.env.get("VLLM_SERVER_DEV_MODE") == os.environ.get("VLLM_SERVER_DEV_MODE")  # untouched


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_supervisor_dies_of_the_signal_that_killed_its_child(sig):
    """exit_like(-N) dies of signal N, SIGKILL included (whose handler cannot be reset): the owner
    reads -N whether the supervisor or the owner's own SIGKILL ended the group first."""
    code = f"import sys; sys.path.insert(0, {str(S.SUPERVISOR.parent)!r}); import supervise; supervise.exit_like({-int(sig)})"
    proc = subprocess.run([sys.executable, "-I", "-S", "-c", code], timeout=30)
    assert proc.returncode == -int(sig)


# --------------------------------------------------------------------------- CPU layout (the testbed)


def test_cpu_layout_ids_splits_host_from_engine():
    assert S.cpu_layout_ids([0, 1], "shared") == ([0, 1], [0, 1])
    assert S.cpu_layout_ids([1, 0], "apart") == ([1], [0])  # 2 cores: host work on 0, the engine on 1
    assert S.cpu_layout_ids(range(8), "apart") == ([2, 3, 4, 5, 6, 7], [0, 1])
    with pytest.raises(ValueError, match="at least 2 cores"):
        S.cpu_layout_ids([3], "apart")
    with pytest.raises(ValueError, match="shared, apart"):
        S.cpu_layout_ids([0, 1], "split")


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs 2 cores to put the engine apart")
def test_vllm_server_apart_binds_engine_threads_and_starts_on_the_host_cores(tmp_path, monkeypatch):
    monkeypatch.setattr(S, "has_cuda_gpu", lambda: False)
    model = tmp_path / "m"
    model.mkdir()
    srv = S.VllmServer(model, served_name="m", log_path=tmp_path / "server.log", cpu_layout="apart")
    engine, host = S.cpu_layout_ids(S.available_cpu_ids(), "apart")
    assert srv.env["VLLM_CPU_OMP_THREADS_BIND"] == S.cpu_ids_spec(engine)
    assert srv.cpu_affinity == host and srv.host_cpus == host and srv.engine_cpus == engine
    shared = S.VllmServer(model, served_name="m", log_path=tmp_path / "s.log")
    assert shared.cpu_affinity is None and shared.env["VLLM_CPU_OMP_THREADS_BIND"] == S.cpu_ids_spec(
        S.available_cpu_ids())


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs 2 cores")
def test_server_process_group_runs_on_the_cores_given(fake):
    first = min(os.sched_getaffinity(0))
    proc, pidfile = fake("ok", startup_timeout_s=30, cpu_affinity=[first])
    with proc:
        child = int(pidfile.read_text())
        for pid in (proc.pid, child):  # the supervisor, and a child it started (as vLLM's engine core)
            assert os.sched_getaffinity(pid) == {first}
    assert os.sched_getaffinity(0) != {first}  # this process is not moved
