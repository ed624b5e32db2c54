"""solver.optimize.serving: serving a model size that was never run, from a step model, checked by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from calibrate.perfmodel.forms import StepModel
from core.physics import ShapeAssumption, shape_for_params
from solver.optimize import serving

GIB = 1024**3
A100_40 = dict(memory_bytes=40 * GIB, peak_flop_per_s=624e12)
WL = serving.Workload(70, 215)
# GPU-like: 10 ms per step fixed, weights over 1.2 TB/s, matmuls at 30 % / 50 % of the INT8 peak
STEP = StepModel("split", {"t0_s": 0.01, "bandwidth_bytes_per_s": 1.2e12, "decode_flop_per_s": 0.3 * 624e12,
                           "prefill_flop_per_s": 0.5 * 624e12}, request_overhead_s=0.005)
PERF = serving.PerformanceModel(STEP, kv_dtype_bytes=2, max_num_batched_tokens=8192)


def hw(**kw) -> serving.ServingHardware:
    base = dict(name="a100-40gb", usd_per_h=1.10, **A100_40)
    base.update(kw)
    return serving.ServingHardware(**base)


def test_shape_follows_stated_aspect_ratio_with_the_lm_head_counted_once():
    s = shape_for_params(7e9)
    assert s.hidden_size / s.num_layers == pytest.approx(128.0)
    assert 12 * s.num_layers * s.hidden_size**2 + 32000 * s.hidden_size == pytest.approx(7e9, rel=1e-9)
    assert s.num_kv_heads == 8  # d/128 = 32 heads, GQA caps KV heads at 8
    assert s.kv_bytes_per_token == pytest.approx(2 * s.num_layers * 8 * 128 * 2)
    # INT8 layers (+ fp32 per-channel scales) and a bf16 lm_head and embedding: the head is in N once
    head = 32000 * s.hidden_size
    layers = (7e9 - head) * (1 + 4 / s.hidden_size)
    assert s.weight_bytes == pytest.approx(layers + 2 * head * 2)
    assert s.weight_bytes_read == pytest.approx(layers + head * 2)


def test_shape_pins():
    s = shape_for_params(1e9, ShapeAssumption(vocab_size=4096), num_layers=16, hidden_size=2048)
    assert (s.num_layers, s.hidden_size) == (16, 2048)
    with pytest.raises(ValueError, match="params_matmul"):
        shape_for_params(float("nan"))
    with pytest.raises(ValueError, match="unknown shape keys"):
        shape_for_params(1e9, bogus=3)


def test_70b_int8_on_a100_40gb_needs_two_gpus_and_7b_one():
    assert serving.layout(shape_for_params(70e9), hw(), WL) == (2, 1)
    assert serving.layout(shape_for_params(7e9), hw(), WL) == (1, 1)


def test_beyond_one_node_are_pipeline_stages_of_whole_nodes():
    s = shape_for_params(400e9)
    tp, pp = serving.layout(s, hw(), WL)
    usable = 40 * GIB * 0.9 - GIB
    assert tp == 8 and pp >= 2 and 8 * pp * usable >= s.weight_bytes > 8 * (pp - 1) * usable


def test_kv_room_by_hand_and_shrinks_with_n():
    h = hw(max_num_seqs=10**6)
    s = shape_for_params(7e9)
    room = 40 * GIB * 0.9 - GIB - s.weight_bytes
    assert serving.max_batch_memory(s, h, WL, 1) == int(room // (s.kv_bytes_per_token * 285))
    b = [serving.max_batch_memory(shape_for_params(n), h, WL, 1) for n in (1e9, 3e9, 7e9, 13e9, 30e9)]
    assert all(x > y for x, y in zip(b, b[1:])), b
    assert serving.max_batch_memory(shape_for_params(7e9), hw(), WL, 1) == 256  # vLLM's max_num_seqs cap


def test_steady_state_by_hand_without_overhead():
    step = StepModel("split", {"t0_s": 0.02, "bandwidth_bytes_per_s": 1e30, "decode_flop_per_s": 1e14,
                               "prefill_flop_per_s": 2e14}, request_overhead_s=0.0)
    perf = serving.PerformanceModel(step, 2, 8192)
    s = shape_for_params(1e9)
    st = serving.steady_state(perf, s, WL, 10, hw())
    n, pre = 10 * 214 / 215, 10 * 70 / 215
    t = 0.02 + n * 2e9 / 1e14 + pre * 2e9 / 2e14
    assert float(st["tpot_s"]) == pytest.approx(t)
    assert float(st["requests_per_s"]) == pytest.approx(10 / (215 * t))


def test_tensor_parallel_divides_work_not_overhead():
    s = shape_for_params(70e9)
    one = float(serving.steady_state(PERF, s, WL, 1, hw(), 1, 1)["tpot_s"])
    two = float(serving.steady_state(PERF, s, WL, 1, hw(), 2, 1)["tpot_s"])
    fixed = STEP.params["t0_s"]
    assert two == pytest.approx(fixed + (one - fixed) / 2, rel=1e-4)  # (the in-engine share shifts a little)
    # 3 pipeline stages with 24 sequences = 3 micro-batches of 8: a token of a micro-batch takes the
    # 8-sequence step of the whole model plus the fixed part of each further stage (never shorter)
    pp = serving.steady_state(PERF, s, WL, 24, hw(), 8, 3)
    tp8 = serving.steady_state(PERF, s, WL, 8, hw(), 8, 1)
    assert float(pp["tpot_s"]) == pytest.approx(float(tp8["tpot_s"]) + 2 * fixed, rel=1e-3)
    ratio = float(pp["requests_per_s"]) / float(tp8["requests_per_s"])
    assert 1.2 < ratio < 3  # 3 micro-batches in flight, each token slower by the extra fixed parts


def test_slo_limits_the_batch():
    loose = serving.serving_point(7e9, hw(), PERF, WL)
    tight = serving.serving_point(7e9, hw(), PERF, serving.Workload(70, 215, tpot_slo_s=0.03))
    assert loose.batch > tight.batch and tight.batch_limited_by == "slo" and tight.tpot_s <= 0.03
    assert tight.meets_slo and tight.usd_per_request > loose.usd_per_request
    impossible = serving.serving_point(7e9, hw(), PERF, serving.Workload(70, 215, tpot_slo_s=1e-6))
    assert not impossible.meets_slo and impossible.batch == 1
    assert any("no batch meets the SLO" in n for n in impossible.notes)


def test_fixed_overhead_makes_small_models_dear_per_flop():
    usd_per_param = [serving.serving_point(n, hw(), PERF, WL).usd_per_request / n for n in (1e8, 1e9, 1e10)]
    assert usd_per_param[0] > usd_per_param[1] > usd_per_param[2]


def test_fleet_for_peak_by_hand():
    h = hw()
    p = serving.serving_point(7e9, h, PERF, WL)
    f = serving.fleet_for_peak(p, h, WL, 100.0, power_w_per_device=300.0)
    assert f.replicas == math.ceil(100.0 / p.requests_per_s)
    assert f.devices == f.replicas * p.devices_per_replica
    assert f.usd_per_million_tokens == pytest.approx(p.usd_per_request / 285 * 1e6)
    assert f.energy_j_per_request == pytest.approx(300.0 * p.device_s_per_request)
    assert p.usd_per_request == pytest.approx(p.devices_per_replica * 1.10 / 3600 / p.requests_per_s)
    for bad in (0.0, float("inf"), 1e300):
        with pytest.raises(ValueError):
            serving.fleet_for_peak(p, h, WL, bad)


def test_unknown_memory_is_flagged_not_invented():
    p = serving.serving_point(70e9, hw(memory_bytes=None, peak_flop_per_s=None), PERF, WL)
    assert p.devices_per_replica == 1 and p.max_batch_memory == 256
    assert any("memory unknown" in n for n in p.notes) and p.decode_mfu is None


def test_cost_per_request_finite_for_extreme_n():
    for n in (1e5, 1e12, 1e15):
        p = serving.serving_point(n, hw(), PERF, WL)
        assert np.isfinite(p.usd_per_request) and p.usd_per_request > 0


def test_no_performance_model_no_serving_model():
    from solver_synthetic import synthetic_profile

    assert serving.serving_model(synthetic_profile(), input_tokens=70, output_tokens=215) is None
    with pytest.raises(ValueError, match="--ladder"):
        serving.performance_model_from_profile(synthetic_profile())
