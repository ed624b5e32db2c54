"""core.gpus: the GPU table (dense peaks, sources, prices) and NVML name matching."""

import pytest

from core.gpus import DTYPES, devices, get_device, match_nvml_name, peak_flop_per_s


def test_paper_gpus():
    a40, a80 = get_device("a100-40gb"), get_device("A100-80GB")
    assert a40.key == "a100-40gb-sxm" and a80.key == "a100-80gb-sxm"
    for d in (a40, a80):
        assert peak_flop_per_s(d, "bf16") == 312e12
        assert peak_flop_per_s(d, "int8") == 624e12
    assert a40.usd_per_h == 1.10 and "B.3" in a40.usd_per_h_source
    assert a80.usd_per_h == 1.50 and "B.3" in a80.usd_per_h_source
    h100 = get_device("h100")
    assert h100.usd_per_h == 2.00 and "released code" in h100.usd_per_h_source
    assert peak_flop_per_s(h100, "bf16") == pytest.approx(989e12, rel=1e-3)


@pytest.mark.parametrize("key, bf16, int8, bw", [
    ("a100-40gb-sxm", 312e12, 624e12, 1555e9),
    ("a100-80gb-sxm", 312e12, 624e12, 2039e9),
    ("a100-80gb-pcie", 312e12, 624e12, 1935e9),
    ("h100-sxm", 989e12, 1979e12, 3350e9),
    ("h100-pcie", 756e12, 1513e12, 2000e9),
    ("h200-sxm", 989e12, 1979e12, 4800e9),
])
def test_facts_table(key, bf16, int8, bw):
    d = get_device(key)
    assert peak_flop_per_s(d, "bf16") == pytest.approx(bf16, rel=1e-3)
    assert peak_flop_per_s(d, "int8") == pytest.approx(int8, rel=1e-3)
    assert d.memory_bandwidth_bytes_per_s == bw


def test_every_entry_is_complete_and_sourced():
    keys = set()
    for d in devices():
        assert d.key not in keys
        keys.add(d.key)
        assert set(d.peak_flop_per_s) == set(DTYPES)
        assert d.peak_source and d.bandwidth_source
        assert d.memory_bytes > 0 and d.memory_bandwidth_bytes_per_s > 0
        assert (d.usd_per_h is None) == (d.usd_per_h_source is None)
        for v in d.peak_flop_per_s.values():
            assert v is None or v > 0
        assert all(p == p.lower() for p in d.nvml_patterns)
    assert {"l4", "l40s", "a10g", "h200-sxm"} <= keys


def test_no_sparse_figures():
    # dense int8 is at most 2x dense bf16 on every GPU here; a sparse figure would be 4x
    for d in devices():
        bf16, int8 = d.peak_flop_per_s["bf16"], d.peak_flop_per_s["int8"]
        if bf16 and int8:
            assert int8 <= 2.05 * bf16


def test_errors_name_the_value_and_allowed():
    with pytest.raises(ValueError, match="'b200'.*a100-40gb-sxm"):
        get_device("b200")
    with pytest.raises(ValueError, match="'int4'.*fp32"):
        peak_flop_per_s(get_device("a100-40gb"), "int4")
    with pytest.raises(ValueError, match="fp8.*a100"):
        peak_flop_per_s(get_device("a100-40gb"), "fp8")
    with pytest.raises(ValueError, match="a10g"):
        peak_flop_per_s(get_device("a10g"), "bf16")


@pytest.mark.parametrize("nvml, mem, key", [
    ("NVIDIA A100-SXM4-40GB", None, "a100-40gb-sxm"),
    ("NVIDIA A100-SXM4-80GB", None, "a100-80gb-sxm"),
    ("NVIDIA A100-PCIE-40GB", None, "a100-40gb-pcie"),
    ("NVIDIA A100 80GB PCIe", None, "a100-80gb-pcie"),
    ("NVIDIA H100 80GB HBM3", None, "h100-sxm"),
    ("NVIDIA H100 PCIe", None, "h100-pcie"),
    ("NVIDIA H200", None, "h200-sxm"),
    ("NVIDIA L4", None, "l4"),
    ("NVIDIA L40S", None, "l40s"),
    ("NVIDIA A10G", None, "a10g"),
    ("NVIDIA A10", None, "a10"),
    ("NVIDIA A100-SXM4", 80 * 2**30, "a100-80gb-sxm"),
    ("NVIDIA A100-SXM4", 40 * 2**30, "a100-40gb-sxm"),
    ("NVIDIA L40", None, None),
    ("NVIDIA GeForce RTX 4090", None, None),
    ("NVIDIA A100-SXM4", None, None),  # ambiguous without memory
])
def test_nvml_matching(nvml, mem, key):
    d = match_nvml_name(nvml, mem)
    assert (d.key if d else None) == key


def test_interconnect_per_direction_with_source():
    """GPU-to-GPU link bandwidth (per direction, per GPU) for the tensor/pipeline-parallel terms."""
    assert get_device("a100-80gb").interconnect_bytes_per_s == 300e9  # NVLink 3: 600 GB/s both ways
    assert get_device("a100-40gb-pcie").interconnect_bytes_per_s == 32e9  # PCIe 4.0 x16
    assert get_device("h100-sxm").interconnect_bytes_per_s == 450e9  # NVLink 4
    for d in devices():
        assert d.interconnect_bytes_per_s and d.interconnect_bytes_per_s > 0, d.key
        assert "per direction" in d.interconnect_source, d.key
