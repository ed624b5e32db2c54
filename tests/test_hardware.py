"""bench.hardware.device and bench.hardware.microbench: NVML names -> the GPU table (through a fake NVML), the CPU
micro-benchmarks (shortened), the cache, overrides, --endpoint hardware, and the CUDA measurement's
logic (a fake torch and clock: no GPU here)."""

from __future__ import annotations

import json
import math

import pytest

from bench.hardware import cache as HC
from bench.hardware import device as H
from bench.hardware import microbench as MB
from tests.test_telemetry import FakeNvml, FakeNVMLError

GIB = 2**30


class SizedFakeNvml(FakeNvml):
    def __init__(self, names, memory_bytes, **kw):
        super().__init__(names=names, **kw)
        self.memory_bytes = memory_bytes

    def nvmlDeviceGetMemoryInfo(self, h):
        from types import SimpleNamespace

        return SimpleNamespace(total=self.memory_bytes, used=GIB, free=self.memory_bytes - GIB)


@pytest.mark.parametrize(
    "nvml_name, memory_bytes, key, int8, bf16, bandwidth",
    [
        ("NVIDIA A100-SXM4-40GB", 40 * GIB, "a100-40gb-sxm", 624e12, 312e12, 1555e9),
        ("NVIDIA A100-SXM4-80GB", 80 * GIB, "a100-80gb-sxm", 624e12, 312e12, 2039e9),
        ("NVIDIA A100 80GB PCIe", 80 * GIB, "a100-80gb-pcie", 624e12, 312e12, 1935e9),
        ("NVIDIA H100 80GB HBM3", 80 * GIB, "h100-sxm", 1979e12, 989e12, 3350e9),
    ],
)
def test_gpu_names_map_to_the_table(nvml_name, memory_bytes, key, int8, bf16, bandwidth, tmp_path):
    info = H.detect_hardware(dtype_for_peak="int8", nvml=SizedFakeNvml([nvml_name], memory_bytes), cache_dir=tmp_path)
    assert info.kind == "gpu" and info.name == key and info.device_name == nvml_name
    assert info.peak_flop_per_s["int8"] == pytest.approx(int8, rel=1e-3)
    assert info.peak_flop_per_s["bf16"] == pytest.approx(bf16, rel=1e-3)
    assert info.memory_bandwidth_bytes_per_s == pytest.approx(bandwidth)
    assert info.peak_source.startswith("datasheet") and info.bandwidth_source.startswith("datasheet")
    assert info.device_count == 1
    assert not list(tmp_path.iterdir())  # nothing measured, nothing cached on a GPU


def test_a100_prices_from_the_table():
    info = H.detect_hardware(dtype_for_peak="int8", nvml=SizedFakeNvml(["NVIDIA A100-SXM4-40GB"], 40 * GIB))
    assert info.usd_per_h == pytest.approx(1.10) and info.usd_per_h_source.startswith("table")
    pcie = H.detect_hardware(dtype_for_peak="int8", nvml=SizedFakeNvml(["NVIDIA A100 80GB PCIe"], 80 * GIB),
                             overrides={"usd_per_h": 1.9})  # fmt: skip
    assert pcie.usd_per_h == 1.9 and pcie.usd_per_h_source == "override"


def test_tensor_parallel_uses_several_devices_and_checks_count():
    nvml = SizedFakeNvml(["NVIDIA A100-SXM4-80GB"] * 4, 80 * GIB)
    info = H.detect_hardware(dtype_for_peak="bf16", tensor_parallel_size=4, nvml=nvml)
    assert info.device_count == 4 and info.name == "a100-80gb-sxm"
    with pytest.raises(ValueError, match="tensor_parallel_size=8"):
        H.detect_hardware(dtype_for_peak="bf16", tensor_parallel_size=8, nvml=nvml)


def test_unknown_gpu_has_null_peaks_and_still_runs():
    info = H.detect_hardware(dtype_for_peak="int8", nvml=SizedFakeNvml(["NVIDIA GeForce GT 710"], 2 * GIB))
    assert info.kind == "gpu" and info.name == "gpu-nvidia-geforce-gt-710"
    assert all(v is None for v in info.peak_flop_per_s.values())
    assert "unknown GPU" in info.peak_source and info.usd_per_h is None
    fixed = H.detect_hardware(dtype_for_peak="int8", nvml=SizedFakeNvml(["NVIDIA GeForce GT 710"], 2 * GIB),
                              overrides={"peak_int8_flop_per_s": 1e12, "usd_per_h": 0.2})  # fmt: skip
    assert fixed.peak_flop_per_s["int8"] == 1e12 and fixed.peak_flop_per_s["bf16"] is None
    assert fixed.peak_source.startswith("override") and fixed.usd_per_h == 0.2


def test_overrides_replace_values_and_say_so(tmp_path):
    nvml = SizedFakeNvml(["NVIDIA A100-SXM4-40GB"], 40 * GIB)
    info = H.detect_hardware(
        dtype_for_peak="int8", nvml=nvml,
        overrides={"name": "my-a100", "peak_flop_per_s": {"int8": 5e14}, "memory_bandwidth_bytes_per_s": 1.0e12,
                   "memory_bytes": 39 * GIB, "usd_per_h": 0.8, "device_name": "lab box"},
    )  # fmt: skip
    assert info.name == "my-a100" and info.device_name == "lab box"
    assert info.peak_flop_per_s["int8"] == 5e14 and info.peak_flop_per_s["bf16"] == pytest.approx(312e12)
    assert "override" in info.peak_source and info.bandwidth_source == "override"
    assert info.memory_bandwidth_bytes_per_s == 1.0e12 and info.memory_bytes == 39 * GIB
    assert info.usd_per_h == 0.8 and info.usd_per_h_source == "override"


@pytest.mark.parametrize(
    "overrides, word",
    [
        ({"peak": 1}, "unknown hardware override"),
        ({"peak_flop_per_s": {"int4": 1.0}}, "int4"),
        ({"usd_per_h": -1}, "usd_per_h"),
        ({"memory_bandwidth_bytes_per_s": float("nan")}, "memory_bandwidth"),
        ({"peak_int8_flop_per_s": 0}, "int8"),
    ],
)
def test_bad_overrides_are_named(overrides, word):
    with pytest.raises(ValueError, match=word):
        H.check_overrides(overrides)


def test_bad_dtype_is_named():
    with pytest.raises(ValueError, match="int4"):
        H.detect_hardware(dtype_for_peak="int4", nvml=SizedFakeNvml(["NVIDIA A100-SXM4-40GB"], 40 * GIB))


def test_remote_endpoint_hardware_from_table_or_declared():
    info = H.detect_hardware(dtype_for_peak="int8", endpoint="http://user:pw@gpu-node:8000/v1",
                             overrides={"name": "a100-80gb"}, tensor_parallel_size=2)  # fmt: skip
    assert info.kind == "remote" and info.name == "a100-80gb-sxm" and info.device_count == 2
    assert "gpu-node" in info.device_name and "pw" not in info.device_name
    assert info.peak_flop_per_s["int8"] == pytest.approx(624e12)
    declared = H.detect_hardware(dtype_for_peak="int8", endpoint="https://api.example.com",
                                 overrides={"name": "mystery", "usd_per_h": 3.0, "peak_int8_flop_per_s": 1e15})
    assert declared.kind == "remote" and declared.name == "mystery"
    assert declared.usd_per_h == 3.0 and declared.peak_flop_per_s["int8"] == 1e15
    with pytest.raises(ValueError, match="usd_per_h"):
        H.detect_hardware(dtype_for_peak="int8", endpoint="https://api.example.com")


# --------------------------------------------------------------------------- CPU


def test_cpu_name_helpers():
    text = "processor\t: 0\nmodel name\t: AMD EPYC 7B13 64-Core Processor\nflags\t: fpu\n"
    assert MB.cpu_model_name(text) == "AMD EPYC 7B13 64-Core Processor"
    assert MB.cpu_model_name("nothing") == "unknown-cpu"
    assert MB.cpu_hardware_name("AMD EPYC 7B13 64-Core Processor", 2) == "cpu-amd-epyc-7b13-64-core-processor-2c"
    assert MB.cpu_hardware_name("AMD EPYC", 2, "avx512") == "cpu-amd-epyc-avx512-2c"
    assert MB.cpu_hardware_name("Intel(R) Xeon(R) Processor", 2, "amx") == "cpu-intel-xeon-processor-amx-2c"
    assert MB.cpu_hardware_name("Intel(R) Core(TM) i7-9700", 8, "avx2") == "cpu-intel-core-i7-9700-avx2-8c"


@pytest.mark.parametrize(("flags", "tier"), [
    ("fpu sse2 avx avx2 fma", "avx2"),
    ("fpu avx2 avx512f avx512_vnni avx512_bf16", "avx512"),
    ("fpu avx2 avx512f amx_bf16 amx_tile amx_int8", "amx"),
    ("fpu sse2", "base"),
])  # fmt: skip
def test_cpu_isa_tier_from_flags(flags, tier):
    text = f"processor\t: 0\nmodel name\t: AMD EPYC\nflags\t\t: {flags}\n"
    assert MB.cpu_isa_tier(text) == tier
    assert MB.memory_total_bytes("MemTotal:       24683656 kB\n") == 24683656 * 1024


def test_measure_cpu_peaks_short():
    details: dict = {}
    peaks = MB.measure_cpu_peaks(0.05, sizes=(64, 128), details=details)
    assert set(peaks) == {"fp32", "bf16", "int8"}
    for dtype, rate in peaks.items():
        assert math.isfinite(rate) and rate > 0, dtype
        assert details[dtype]["best_method"] in details[dtype]
    assert "torch.mm" in details["fp32"]


def test_measure_cpu_bandwidth_short():
    details: dict = {}
    bw = MB.measure_cpu_bandwidth(8 * 2**20, seconds=0.05, details=details)
    assert math.isfinite(bw) and bw > 0
    assert bw == max(details["copy_bytes_per_s"], details["triad_bytes_per_s"])


def test_cpu_detect_measures_once_and_caches(tmp_path, monkeypatch):
    no_nvml = FakeNvml(fail_init=FakeNVMLError("NVML Shared Library Not Found"))
    calls = []
    real = MB.measure_cpu

    def short(seconds, **kw):
        calls.append(seconds)
        return real(0.02, sizes=(64,), bandwidth_bytes=4 * 2**20)

    monkeypatch.setattr(MB, "measure_cpu", short)
    info = H.detect_hardware(dtype_for_peak="int8", nvml=no_nvml, cache_dir=tmp_path)
    assert info.kind == "cpu" and info.name.startswith("cpu-") and info.name.endswith(f"-{MB.cpu_count()}c")
    assert info.peak_source.startswith("measured") and info.bandwidth_source.startswith("measured")
    assert info.peak_flop_per_s["int8"] > 0 and info.peak_flop_per_s["fp8"] is None
    assert info.usd_per_h == H.CPU_USD_PER_H_DEFAULT and info.usd_per_h_source.startswith("assumption")
    cached = json.loads((tmp_path / f"{info.name}.json").read_text())
    assert cached["provenance"]["kind"] == "measured" and cached["provenance"]["versions"]["torch"]
    again = H.detect_hardware(dtype_for_peak="int8", nvml=no_nvml, cache_dir=tmp_path, overrides={"usd_per_h": 0.05})
    assert len(calls) == 1  # the second call used the cache
    assert again.peak_flop_per_s == info.peak_flop_per_s and again.usd_per_h == 0.05
    H.detect_hardware(dtype_for_peak="int8", nvml=no_nvml, cache_dir=tmp_path, remeasure=True)
    assert len(calls) == 2
    kept = [p.name for p in tmp_path.iterdir() if ".replaced-" in p.name]
    assert len(kept) == 1  # the earlier measurement was kept, not overwritten


@pytest.mark.gpu
def test_real_gpu_is_detected():
    info = H.detect_hardware(dtype_for_peak="bf16")
    assert info.kind == "gpu" and info.memory_bytes and info.memory_bytes > 0


def test_gpu_name_override_that_is_a_table_key_selects_the_row():
    nvml = SizedFakeNvml(["NVIDIA A100-SXM4-80GB"], 80 * GIB)
    info = H.detect_hardware(dtype_for_peak="int8", nvml=nvml, overrides={"name": "a100-80gb-pcie"})
    assert info.name == "a100-80gb-pcie" and info.memory_bandwidth_bytes_per_s == pytest.approx(1935e9)
    assert info.device_name == "NVIDIA A100-SXM4-80GB"
    label = H.detect_hardware(dtype_for_peak="int8", nvml=nvml, overrides={"name": "rack-7"})
    assert label.name == "rack-7" and label.memory_bandwidth_bytes_per_s == pytest.approx(2039e9)
    with pytest.raises(ValueError, match="no-such-gpu"):
        H.detect_hardware(dtype_for_peak="int8", nvml=nvml, overrides={"device": "no-such-gpu"})


def test_cpu_with_gpu_device_override_is_an_error(tmp_path):
    no_nvml = FakeNvml(fail_init=FakeNVMLError("NVML Shared Library Not Found"))
    with pytest.raises(ValueError, match="no GPU"):
        H.detect_hardware(dtype_for_peak="int8", nvml=no_nvml, overrides={"device": "a100-40gb"}, cache_dir=tmp_path)


def test_cuda_visible_devices_picks_the_devices(monkeypatch):
    nvml = SizedFakeNvml(["NVIDIA A100-SXM4-40GB"], 40 * GIB)
    nvml.names = ["NVIDIA A100-SXM4-40GB", "NVIDIA H100 80GB HBM3"]
    nvml.memory_bytes = 80 * GIB
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1")
    assert H.detect_hardware(dtype_for_peak="int8", nvml=nvml).name == "h100-sxm"


# --------------------------------------------------------------------------- CUDA logic, fake device


class FakeClock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


class FakeTensor:
    def __init__(self, clock, numel, dtype, shape=None):
        self.clock, self.numel, self.dtype, self.shape = clock, numel, dtype, shape

    def copy_(self, other):
        self.clock.t += 2 * self.numel * 4 / FakeTorch.BANDWIDTH
        return self


class FakeTorch:
    """The subset of torch `measure_gpu` uses: every kernel advances a fake clock by the time a device
    with known rates (bf16 300e12, int8 600e12 FLOP/s, 1.5e12 B/s) would take, so the measured figures
    must come out exactly; `synchronize` calls are counted."""

    RATES = {"bf16": 300e12, "int8": 600e12}
    BANDWIDTH = 1.5e12
    bfloat16, int8, float32 = "bf16", "int8", "fp32"
    __version__ = "2.99+fake"

    def __init__(self, clock, *, name="NVIDIA A100-SXM4-40GB", memory=40 * GIB, cuda=True):
        from types import SimpleNamespace

        self.clock, self.syncs = clock, 0
        self.version = SimpleNamespace(cuda="12.8" if cuda else None)
        fake = self
        self.cuda = SimpleNamespace(
            is_available=lambda: cuda, device_count=lambda: 1 if cuda else 0,
            get_device_properties=lambda i: SimpleNamespace(name=name, total_memory=memory),
            synchronize=lambda device=None: setattr(fake, "syncs", fake.syncs + 1),
        )

    def inference_mode(self):
        import contextlib

        return contextlib.nullcontext()

    def _mat(self, shape, dtype):
        return FakeTensor(self.clock, shape[0] * shape[1], dtype, shape)

    def randn(self, *shape, device=None, dtype=None):
        return self._mat(shape, dtype)

    def randint(self, low, high, shape, device=None, dtype=None):
        return self._mat(shape, dtype)

    def _matmul(self, a, b):
        n = a.shape[0]
        self.clock.t += 2.0 * n**3 / self.RATES[a.dtype]

    def mm(self, a, b):
        self._matmul(a, b)

    def _int_mm(self, a, b):
        self._matmul(a, b)

    def zeros(self, n, dtype=None, device=None):
        return FakeTensor(self.clock, n, dtype)

    ones = zeros

    def full(self, shape, value, dtype=None, device=None):
        return FakeTensor(self.clock, shape[0], dtype)

    def add(self, b, c, alpha=1.0, out=None):
        self.clock.t += 3 * out.numel * 4 / self.BANDWIDTH


def test_measure_gpu_recovers_the_rates_and_sits_next_to_the_datasheet():
    clock = FakeClock()
    torch = FakeTorch(clock)
    rec = MB.measure_gpu(0, seconds=0.01, sizes=(1024, 2048), bandwidth_bytes=2**26, torch=torch, clock=clock)
    assert rec.kind == "gpu" and rec.name == "a100-40gb-sxm" and rec.device_index == 0
    assert rec.peak_flop_per_s["bf16"] == pytest.approx(300e12)
    assert rec.peak_flop_per_s["int8"] == pytest.approx(600e12)
    assert rec.memory_bandwidth_bytes_per_s == pytest.approx(1.5e12)
    assert rec.peak_details["int8"]["best_method"] == "torch._int_mm"
    assert torch.syncs > 0  # every timing waited for the device
    sheet = rec.datasheet
    assert sheet["table_key"] == "a100-40gb-sxm" and sheet["peak_flop_per_s"] == {"bf16": 312e12, "int8": 624e12}
    assert sheet["memory_bandwidth_bytes_per_s"] == pytest.approx(1555e9) and "datasheet" in sheet["peak_source"]
    ratio = sheet["measured_over_datasheet"]
    assert ratio["bf16"] == pytest.approx(300 / 312) and ratio["int8"] == pytest.approx(600 / 624)
    assert ratio["memory_bandwidth"] == pytest.approx(1.5e12 / 1555e9)
    assert rec.provenance.kind == "measured" and "CUDA" in rec.provenance.method


def test_measure_gpu_unknown_device_has_no_datasheet(tmp_path):
    clock = FakeClock()
    rec = MB.measure_gpu(0, seconds=0.01, sizes=(512,), bandwidth_bytes=2**24, clock=clock,
                         torch=FakeTorch(clock, name="NVIDIA GeForce GT 710", memory=2 * GIB))
    assert rec.name == "gpu-nvidia-geforce-gt-710" and rec.datasheet is None
    path = HC.write_cached(HC.cache_path(tmp_path, rec.name), rec)
    again = HC.read_cached(path)
    assert again == rec and json.loads(path.read_text())["schema_version"] == 2


def test_measure_gpu_fails_soft_without_cuda():
    clock = FakeClock()
    with pytest.raises(RuntimeError, match="no CUDA device to measure: this torch .* without CUDA"):
        MB.measure_gpu(0, torch=FakeTorch(clock, cuda=False), clock=clock)
    assert MB.cuda_unavailable_reason(FakeTorch(clock)) is None
    with pytest.raises(ValueError, match="device=3"):
        MB.measure_gpu(3, torch=FakeTorch(clock), clock=clock)


def test_committed_cpu_record_still_reads():
    """results/hardware/ holds a record written as `cache_version: 1`: the schema reads it."""
    from pathlib import Path

    for path in (Path(__file__).resolve().parents[1] / "results" / "hardware").glob("*.json"):
        rec = HC.read_cached(path)
        assert rec is not None and rec.kind == "cpu" and rec.peak_flop_per_s, path
        assert H.cpu_info_from_record(rec).peak_source.startswith("measured")
