"""solver.fleet: the N-dependent serving model, checked against hand-computed cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from solver import fleet as fl

GIB = 1024**3
A100_40 = dict(memory_bytes=40 * GIB, bandwidth_bytes_per_s=1555e9, peak_flop_per_s=624e12)


def hw(**kw) -> fl.FleetHardware:
    base = dict(name="a100-40gb", usd_per_h=1.10, prefill_flop_per_s=0.5 * 624e12, **A100_40)
    base.update(kw)
    return fl.FleetHardware(**base)


def flat_curve(mfu: float, peak: float = 624e12) -> fl.DecodeCurve:
    return fl.DecodeCurve.from_points([1, 4, 16, 64], [mfu * peak] * 4)


WL = fl.Workload(70, 215)


def test_shape_follows_stated_aspect_ratio():
    s = fl.shape_for_params(7e9)
    assert s.hidden_size / s.num_layers == pytest.approx(128.0)
    assert 12 * s.num_layers * s.hidden_size**2 == pytest.approx(7e9, rel=1e-12)
    assert s.hidden_size == pytest.approx((128 * 7e9 / 12) ** (1 / 3))
    assert s.num_kv_heads == 8  # d/128 = 32.9 heads, GQA caps KV heads at 8
    # 2 (K and V) * layers * 8 heads * 128 * 2 bytes
    assert s.kv_bytes_per_token == pytest.approx(2 * s.num_layers * 8 * 128 * 2)
    # INT8: ~1 byte per parameter, plus per-channel scales and bf16 embeddings
    assert 7e9 < s.weight_bytes < 7e9 * 1.1


def test_small_model_has_fewer_kv_heads_than_the_cap():
    s = fl.shape_for_params(50e6)
    assert s.num_kv_heads == pytest.approx(s.hidden_size / 128) and s.num_kv_heads < 8


def test_70b_int8_on_a100_40gb_needs_two_gpus_and_7b_one():
    h = hw()
    s70 = fl.shape_for_params(70e9)
    usable = 40 * GIB * 0.9 - 1 * GIB  # 37.58e9 bytes per device
    assert s70.weight_bytes > usable  # does not fit on one
    assert fl.devices_needed(s70, h, WL) == 2
    assert fl.devices_needed(fl.shape_for_params(7e9), h, WL) == 1


def test_devices_beyond_one_node_are_whole_nodes():
    s = fl.shape_for_params(400e9)  # ~400 GB of INT8 weights: more than 8 x 37.6 GB
    g = fl.devices_needed(s, hw(), WL)
    assert g % 8 == 0 and g > 8
    assert g * (40 * GIB * 0.9 - GIB) >= s.weight_bytes > (g - 8) * (40 * GIB * 0.9 - GIB)


def test_kv_room_by_hand_and_shrinks_with_n():
    h = hw(max_num_seqs=10**6)
    s = fl.shape_for_params(7e9)
    room = 40 * GIB * 0.9 - GIB - s.weight_bytes
    expected = int(room // (s.kv_bytes_per_token * 285))
    assert fl.max_batch_memory(s, h, WL, 1) == expected
    batches = [fl.max_batch_memory(fl.shape_for_params(n), h, WL, 1) for n in (1e9, 3e9, 7e9, 13e9, 30e9)]
    assert all(a > b for a, b in zip(batches, batches[1:])), batches
    assert fl.max_batch_memory(fl.shape_for_params(7e9), hw(), WL, 1) == 256  # vLLM's max_num_seqs cap


def test_roofline_bound_matches_facts_md():
    """FACTS.md: A100-40GB INT8 decode MFU <~ 0.5 % x b before KV reads."""
    s = fl.shape_for_params(7e9)
    t1 = float(fl.roofline_step_time_s(s, hw(), WL, 1, 1))
    assert t1 == pytest.approx((s.weight_bytes + s.kv_bytes_per_token * (70 + 107.5)) / 1555e9)
    mfu_bound = 2 * 7e9 / (624e12 * t1)
    assert 0.004 < mfu_bound < 0.005
    # compute bound takes over at large batch: b * 2N / peak
    t_big = float(fl.roofline_step_time_s(s, hw(bandwidth_bytes_per_s=1e30), WL, 1, 1000))
    assert t_big == pytest.approx(1000 * 2 * 7e9 / 624e12)


def test_curve_interpolation_and_extrapolation():
    c = fl.DecodeCurve.from_points([2, 8, 8], [1.0, 3.0, 5.0])  # repeated concurrency averaged -> 4.0
    assert c.concurrency == (2.0, 8.0) and c.flop_per_s_per_device == (1.0, 4.0)
    assert float(c.flop_per_s(2)) == pytest.approx(1.0)
    assert float(c.flop_per_s(4)) == pytest.approx(2.0)  # geometric midpoint in log-log
    assert float(c.flop_per_s(1)) == pytest.approx(0.5)  # below: proportional to b
    assert float(c.flop_per_s(32)) == pytest.approx(4.0)  # above: hold
    up = fl.DecodeCurve(c.concurrency, c.flop_per_s_per_device, "loglog")
    assert float(up.flop_per_s(32)) == pytest.approx(4.0 * 4.0)  # slope 1 continued
    with pytest.raises(ValueError):
        fl.DecodeCurve((), ())


def test_flat_curve_without_binding_roofline_is_eq6_per_request():
    h = hw()
    p = fl.serving_point(7e9, h, flat_curve(0.01), WL)
    assert p.decode_bound == "curve"
    assert p.decode_mfu == pytest.approx(0.01)
    # Eq. 6 per request: usd_per_h/3600 * 2N * (in / a_in + out / a_out)
    expected = 1.10 / 3600 * 2 * 7e9 * (70 / (0.5 * 624e12) + 215 / (0.01 * 624e12))
    assert p.usd_per_request == pytest.approx(expected, rel=1e-12)


def test_roofline_binds_when_curve_is_above_it():
    h = hw()
    p = fl.serving_point(7e9, h, flat_curve(0.9), WL)  # a 90 % decode MFU cannot happen at small batch
    s = fl.shape_for_params(7e9)
    assert p.decode_bound == "roofline"
    t = float(fl.roofline_step_time_s(s, h, WL, 1, p.batch))
    assert p.decode_tokens_per_s == pytest.approx(p.batch / t)


def test_slo_limits_the_batch():
    # sublinear in b and below the roofline: TPOT = b / rate grows as b^0.295 (5.6 ms at b = 1)
    curve = fl.DecodeCurve.from_points([1, 256], [0.004 * 624e12, 0.2 * 624e12])
    loose = fl.serving_point(7e9, hw(), curve, WL)
    tight = fl.serving_point(7e9, hw(), curve, fl.Workload(70, 215, tpot_slo_s=0.015))
    assert loose.batch == 256 and loose.batch_limited_by == "max_num_seqs"
    assert tight.batch_limited_by == "slo" and tight.meets_slo and tight.tpot_s <= 0.015
    assert 20 < tight.batch < 40  # (0.015 / 0.0056) ** (1 / 0.295) ~ 28
    impossible = fl.serving_point(7e9, hw(), curve, fl.Workload(70, 215, tpot_slo_s=1e-6))
    assert not impossible.meets_slo and impossible.batch == 1


def test_fleet_for_peak_by_hand():
    h = hw()
    p = fl.serving_point(7e9, h, flat_curve(0.01), WL)
    f = fl.fleet_for_peak(p, h, WL, 100.0, power_w_per_device=300.0)
    assert f.replicas == math.ceil(100.0 * p.replica_s_per_request)
    assert f.devices == f.replicas * p.devices_per_replica
    assert f.usd_per_million_tokens == pytest.approx(p.usd_per_request / 285 * 1e6)
    assert f.energy_j_per_request == pytest.approx(300.0 * p.device_s_per_request)
    with pytest.raises(ValueError):
        fl.fleet_for_peak(p, h, WL, 0.0)


def test_unknown_memory_and_bandwidth_are_flagged_not_invented():
    h = hw(memory_bytes=None, bandwidth_bytes_per_s=None, peak_flop_per_s=None)
    p = fl.serving_point(70e9, h, flat_curve(0.01), WL)
    assert p.devices_per_replica == 1 and p.max_batch_memory == 256
    assert any("memory unknown" in n for n in p.notes) and p.decode_mfu is None


def test_cost_per_request_finite_for_extreme_n():
    for n in (1e3, 1e15, 1e30):
        p = fl.serving_point(n, hw(), flat_curve(0.01), WL)
        assert np.isfinite(p.usd_per_request) and p.usd_per_request > 0
