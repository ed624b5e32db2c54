"""bench.run.telemetry without a GPU: a fake pynvml-like module, energy from counters and power,
the no-NVML path, and /metrics parsing on text captured from a real vLLM CPU server
(tests/data/vllm_metrics_sample*.prom: 4 requests of 64 prompt + 16 generated tokens,
tiny W8A8 model from bench.model.prepare, vLLM 0.32 CPU, --enable-mfu-metrics)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from bench.hardware import nvml as N
from bench.run import telemetry as T

DATA = Path(__file__).parent / "data"


class FakeNVMLError(Exception):
    pass


class FakeNvml:
    """The subset of pynvml the sampler uses. Each energy read advances the counter by
    `energy_step_mj`; power is constant per device."""

    NVML_CLOCK_SM = 1
    NVML_CLOCK_MEM = 2

    def __init__(self, names=("NVIDIA A100-SXM4-40GB",), *, energy=True, power_mw=250_000, energy_step_mj=1000,
                 energy_start_mj=10_000_000, fail_init=None):  # fmt: skip
        self.names = list(names)
        self.energy = energy
        self.power_mw = power_mw
        self.step = energy_step_mj
        self.counters = [energy_start_mj] * len(names)
        self.fail_init = fail_init
        self.inited = 0
        self.shutdowns = 0

    def nvmlInit(self):
        if self.fail_init:
            raise self.fail_init
        self.inited += 1

    def nvmlShutdown(self):
        self.shutdowns += 1

    def nvmlDeviceGetCount(self):
        return len(self.names)

    def nvmlDeviceGetHandleByIndex(self, i):
        return i

    def nvmlDeviceGetName(self, h):
        return self.names[h].encode()  # older pynvml returns bytes

    def nvmlDeviceGetPowerUsage(self, h):
        return self.power_mw

    def nvmlDeviceGetTotalEnergyConsumption(self, h):
        if not self.energy:
            raise FakeNVMLError("NVML_ERROR_NOT_SUPPORTED")
        self.counters[h] += self.step
        return self.counters[h]

    def nvmlDeviceGetUtilizationRates(self, h):
        return SimpleNamespace(gpu=87, memory=41)

    def nvmlDeviceGetClockInfo(self, h, which):
        return {self.NVML_CLOCK_SM: 1410, self.NVML_CLOCK_MEM: 1215}[which]

    def nvmlDeviceGetMemoryInfo(self, h):
        return SimpleNamespace(total=40 * 2**30, used=12 * 2**30, free=28 * 2**30)


# --------------------------------------------------------------------------- pure


def test_sample_to_row_converts_to_si():
    raw = {"name": "X", "power_mw": 250_500, "energy_mj": 123_456, "util_gpu_pct": 87, "util_memory_pct": 41,
           "clock_sm_mhz": 1410, "clock_mem_mhz": 1215, "memory_used_bytes": 5}  # fmt: skip
    row = T.sample_to_row(raw, device=1, t_s=0.5, monotonic_s=100.5, time_unix_s=1.7e9)
    assert row["power_w"] == pytest.approx(250.5)
    assert row["energy_counter_j"] == pytest.approx(123.456)
    assert row["sm_util_fraction"] == pytest.approx(0.87)
    assert row["memory_util_fraction"] == pytest.approx(0.41)
    assert row["sm_clock_hz"] == pytest.approx(1.41e9)
    assert row["memory_clock_hz"] == pytest.approx(1.215e9)
    assert row["memory_used_bytes"] == 5 and row["device"] == 1 and row["t_s"] == 0.5
    missing = T.sample_to_row({}, device=0, t_s=0, monotonic_s=0, time_unix_s=0)
    assert missing["power_w"] is None and missing["energy_counter_j"] is None and missing["memory_used_bytes"] is None
    json.loads(json.dumps(missing))  # a telemetry.jsonl line


def test_counter_energy_deltas_reset_and_missing():
    assert T.counter_energy_j([100.0, 150.0, 175.0]) == pytest.approx(75.0)
    assert T.counter_energy_j([100.0, None, 175.0]) == pytest.approx(75.0)
    # a reset (driver reload): the unknown interval across it is skipped, the rest kept
    assert T.counter_energy_j([100.0, 150.0, 5.0, 25.0]) == pytest.approx(50.0 + 20.0)
    assert T.counter_energy_j([100.0]) is None
    assert T.counter_energy_j([None, None]) is None
    assert T.counter_energy_j([]) is None


def test_trapezoid_energy():
    assert T.trapezoid_energy_j([0, 1, 3], [100, 200, 200]) == pytest.approx(150 + 400)
    assert T.trapezoid_energy_j([2, 0, 1], [200, 100, 200]) == pytest.approx(150 + 200)  # sorted by time
    assert T.trapezoid_energy_j([0, 1], [100, None]) is None
    assert T.trapezoid_energy_j([], []) is None


def test_device_energy_prefers_counter_then_trapezoid():
    rows = [{"device": 0, "t_s": t, "power_w": 100.0, "energy_counter_j": 1000.0 + 90 * t} for t in (0, 1, 2)]
    assert T.device_energy_j(rows) == (pytest.approx(180.0), T.ENERGY_COUNTER)
    no_counter = [dict(r, energy_counter_j=None) for r in rows]
    assert T.device_energy_j(no_counter) == (pytest.approx(200.0), T.ENERGY_TRAPEZOID)
    assert T.device_energy_j([dict(r, energy_counter_j=None, power_w=None) for r in rows]) == (None, None)
    both = rows + [dict(r, device=1, energy_counter_j=None) for r in rows]
    per = T.energy_by_device(both)
    assert per[0] == {"energy_j": pytest.approx(180.0), "method": T.ENERGY_COUNTER}
    assert per[1] == {"energy_j": pytest.approx(200.0), "method": T.ENERGY_TRAPEZOID}


def test_visible_device_indices():
    assert N.visible_device_indices({"CUDA_VISIBLE_DEVICES": "2,3"}) == [2, 3]
    assert N.visible_device_indices({}) is None
    assert N.visible_device_indices({"CUDA_VISIBLE_DEVICES": "GPU-8f3a"}) is None


# --------------------------------------------------------------------------- sampler with fake NVML


def test_sampler_with_fake_nvml_counts_energy_per_device():
    fake = FakeNvml(names=("NVIDIA A100-SXM4-80GB", "NVIDIA A100-SXM4-80GB"), energy_step_mj=2000)
    with T.NvmlSampler(interval_s=0.01, nvml=fake, device_indices=None) as s:
        assert s.available and s.reason is None and s.status() == "nvml"
        time.sleep(0.1)
    rows = s.rows()
    assert fake.shutdowns == 1
    for dev in (0, 1):
        dev_rows = [r for r in rows if r["device"] == dev]
        assert len(dev_rows) >= 2  # at least the samples on enter and on exit
        assert dev_rows[0]["name"] == "NVIDIA A100-SXM4-80GB"
        assert dev_rows[0]["power_w"] == pytest.approx(250.0)
        assert dev_rows[0]["memory_used_bytes"] == 12 * 2**30
        # each read advanced the counter by 2 J: energy = 2 J x (reads - 1)
        assert s.energy_j()[dev] == pytest.approx(2.0 * (len(dev_rows) - 1))
        assert s.energy()[dev]["method"] == T.ENERGY_COUNTER
    total, method = s.total_energy_j()
    assert total == pytest.approx(sum(s.energy_j().values())) and method == T.ENERGY_COUNTER
    for row in s.rows():
        assert set(json.loads(json.dumps(row))) >= {"t_s", "device", "power_w", "energy_counter_j", "sm_clock_hz"}


def test_sampler_falls_back_to_trapezoid_without_energy_counter():
    fake = FakeNvml(energy=False, power_mw=300_000)
    with T.NvmlSampler(interval_s=0.01, nvml=fake) as s:
        time.sleep(0.05)
    rows = s.rows()
    span = rows[-1]["t_s"] - rows[0]["t_s"]
    assert s.energy()[0]["method"] == T.ENERGY_TRAPEZOID
    assert s.energy_j()[0] == pytest.approx(300.0 * span)
    assert all(r["energy_counter_j"] is None for r in rows)


def test_sampler_selected_devices_and_bad_index():
    fake = FakeNvml(names=("A", "B", "C"))
    with T.NvmlSampler(interval_s=1, nvml=fake, device_indices=[2]) as s:
        pass
    assert {r["device"] for r in s.rows()} == {2} and s.device_names == {2: "C"}
    with T.NvmlSampler(interval_s=1, nvml=FakeNvml(names=("A",)), device_indices=[3]) as bad:
        pass
    assert not bad.available and "do not exist" in bad.reason


def test_sampler_without_nvml_library_carries_on():
    """On this machine the real pynvml raises NVMLError_LibraryNotFound; a fake does the same
    where a GPU exists, so the test means the same thing everywhere."""
    fake = FakeNvml(fail_init=FakeNVMLError("NVML Shared Library Not Found"))
    with T.NvmlSampler(interval_s=0.01, nvml=fake) as s:
        pass
    assert not s.available
    assert "Shared Library Not Found" in s.reason
    assert s.status().startswith("unavailable: ")
    assert s.rows() == [] and s.energy_j() == {} and s.total_energy_j() == (None, None)


def test_real_pynvml_on_a_machine_without_gpu():
    pynvml = pytest.importorskip("pynvml")
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError:
        pass
    else:
        pynvml.nvmlShutdown()
        pytest.skip("NVML works here: this test is for machines without it")
    with T.NvmlSampler(interval_s=0.01) as s:
        pass
    assert not s.available and "NVML unavailable" in s.reason
    devices, reason = N.nvml_devices()
    assert devices == [] and "NVML unavailable" in reason


def test_nvml_devices_with_fake():
    devices, reason = N.nvml_devices(FakeNvml(names=("NVIDIA H100 80GB HBM3",)))
    assert reason is None
    assert devices == [{"index": 0, "name": "NVIDIA H100 80GB HBM3", "memory_bytes": 40 * 2**30}]
    assert N.nvml_available(FakeNvml(names=("A",))) == (True, None)
    ok, reason = N.nvml_available(FakeNvml(fail_init=FakeNVMLError("NVML Shared Library Not Found")))
    assert not ok and "NVML unavailable" in reason and "Not Found" in reason
    assert N.nvml_available(FakeNvml(names=())) == (False, "NVML found no GPU")
    broken = FakeNvml(fail_init=FakeNVMLError("driver"))
    assert N.gpu_present(FakeNvml(names=("A",)))
    assert not N.gpu_present(broken, device_node="/nonexistent/nvidia0")
    assert N.gpu_present(broken, device_node="/")  # the device node exists: a GPU, NVML or not


# --------------------------------------------------------------------------- /metrics


def test_parse_captured_vllm_metrics():
    after = T.parse_metrics((DATA / "vllm_metrics_sample.prom").read_text())
    before = T.parse_metrics((DATA / "vllm_metrics_sample_before.prom").read_text())
    assert after["vllm:prompt_tokens_total"] == 256.0
    assert after["vllm:generation_tokens_total"] == 64.0
    assert after["vllm:estimated_flops_per_gpu_total"] == pytest.approx(1.186398208e9)
    # summed over finished_reason label sets (only "length" is non-zero)
    assert after["vllm:request_success_total"] == 4.0
    assert after["vllm:e2e_request_latency_seconds_count"] == 4.0
    assert not any(name.endswith("_created") for name in after)
    flop = after["vllm:estimated_flops_per_gpu_total"] - before.get("vllm:estimated_flops_per_gpu_total", 0.0)
    assert flop == pytest.approx(1.186398208e9)
    assert after["vllm:generation_tokens_total"] - before.get("vllm:generation_tokens_total", 0.0) == 64.0
    assert "vllm:no_such_metric" not in after


def test_parse_metrics_sums_label_sets():
    text = 'foo_total{a="1"} 2\nfoo_total{a="2"} 3.5\nbar 7\n'
    assert T.parse_metrics(text) == {"foo_total": 5.5, "bar": 7.0}


def test_scrape_metrics_from_a_local_http_server():
    import http.server
    import threading

    body = b'# TYPE x counter\nx_total{m="a"} 4\n'

    class H(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200 if self.path == "/metrics" else 404)
            self.end_headers()
            self.wfile.write(body)
            self.server.seen_auth = self.headers.get("Authorization")

        def log_message(self, *a):
            pass

    srv = http.server.HTTPServer(("127.0.0.1", 0), H)
    th = threading.Thread(target=srv.serve_forever, daemon=True)
    th.start()
    try:
        url = f"http://127.0.0.1:{srv.server_address[1]}/"
        text = T.scrape_metrics(url, headers={"Authorization": "Bearer k"})
        assert T.parse_metrics(text) == {"x_total": 4.0}
        assert srv.seen_auth == "Bearer k"
    finally:
        srv.shutdown()
        srv.server_close()
