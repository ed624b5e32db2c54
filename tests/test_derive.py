"""bench.run.derive against numbers computed by hand (the arithmetic is written out in each test)."""

from __future__ import annotations

import pytest

from bench.run.derive import (
    VLLM_FLOP_COUNTER,
    attention_context_sum,
    derive,
    request_flop_hardware,
    vllm_convention_flop,
)
from core.schema.run import HardwareInfo, ModelInfo, Percentiles, RequestRecord, RunConfig, Summary, Workload

# layers 2, heads 4, head_dim 64 -> attention flop per token per context position = 4*2*4*64 = 2048
INFO = ModelInfo(
    name="hand", source="test", quantization="w8a8-int8", matmul_dtype="int8",
    params_total=1_600_000, params_matmul=1_000_000, num_layers=2, hidden_size=256,
    num_attention_heads=4, num_kv_heads=4, head_dim=64, vocab_size=2048, weight_bytes=2_000_000,
)  # fmt: skip


def hw(devices: int = 1, peak: float | None = 1e12, bw: float | None = 1e10, usd: float | None = 0.36) -> HardwareInfo:
    return HardwareInfo(
        name="test-hw", kind="cpu", device_name="test", device_count=devices,
        peak_flop_per_s={"int8": peak, "bf16": 5e11}, peak_source="test",
        memory_bandwidth_bytes_per_s=bw, bandwidth_source="test", usd_per_h=usd, usd_per_h_source="test",
    )  # fmt: skip


def pct(mean):
    return Percentiles(mean=mean, p50=mean, p90=mean, p99=mean)


def summary(n_ok, dur, tin, tout, tpot=None):
    return Summary(
        num_ok=n_ok, num_failed=0, failure_fraction=0.0, valid=True, duration_s=dur,
        input_tokens_total=tin, output_tokens_total=tout, request_throughput_per_s=n_ok / dur,
        input_tokens_per_s=tin / dur, output_tokens_per_s=tout / dur, ttft_s=pct(0.1),
        tpot_s=pct(tpot), itl_s=pct(tpot), e2e_s=pct(1.0),
    )  # fmt: skip


def rec(i, p, g, warmup=False):
    return RequestRecord(index=i, warmup=warmup, send_s=0.0, first_token_s=0.1, end_s=1.0,
                         input_tokens=p, output_tokens=g, requested_input_tokens=p, requested_output_tokens=g)


def config(kind, p, g, concurrency=1):
    return RunConfig(model=INFO, workload=Workload(kind=kind, input_tokens=p, output_tokens=g),
                     mode="concurrency", concurrency=concurrency, num_requests=4, warmup_requests=1)


def test_context_sum_and_request_flop():
    # P=100, G=1: 100*101/2 + 1*100 + 1*2/2 = 5050 + 100 + 1
    assert attention_context_sum(100, 1) == 5151
    # 2N * 101 tokens + 2048 * 5151
    assert request_flop_hardware(INFO, 100, 1) == 2e6 * 101 + 2048 * 5151


def test_vllm_convention_replica():
    # lm_head 256*2048 = 524288, layer matmuls 1e6 - 524288 = 475712; prefill P=100, G=1:
    # 100 scheduled tokens, 1 logits token, attention 2048 * 100*100 (no causal halving)
    assert vllm_convention_flop(INFO, 100, 1) == 2 * 475712 * 100 + 2 * 524288 + 2048 * 10_000
    # P=8, G=3: 8 + 2 scheduled, 3 logits tokens, context product 8*8 + 9 + 10
    assert vllm_convention_flop(INFO, 8, 3) == 2 * 475712 * 10 + 2 * 524288 * 3 + 2048 * (64 + 9 + 10)


def test_prefill_run():
    recs = [rec(0, 100, 1, warmup=True)] + [rec(i, 100, 1) for i in range(1, 5)]
    ours = 5 * (2e6 * 101 + 2048 * 5151)  # warm-up included: metrics scraped before it
    before = {VLLM_FLOP_COUNTER: 1000.0}
    after = {VLLM_FLOP_COUNTER: 1000.0 + 1e9}
    d = derive(config("prefill", 100, 1, 4), summary(4, 2.0, 400, 4), hw(), recs, before, after, None)
    assert d.phase == "input"
    assert d.flop_per_token_paper == 2e6
    assert d.flop_per_token_hardware == pytest.approx(2e6 + 2048 * 51.0)  # mean context 5151/101 = 51
    assert d.achieved_flop_per_s == pytest.approx(2e6 * 404 / 2.0)
    assert d.mfu == pytest.approx(4.04e8 / 1e12)
    assert d.achieved_flop_per_s_input == pytest.approx(4e8)
    assert d.mfu_input == pytest.approx(4e-4)
    assert d.mfu_output is None and d.mbu_output is None
    assert d.peak_flop_per_s == 1e12 and d.peak_dtype == "int8"
    # 0.36 $/h * 2 s / 3600 = 2e-4 $ over 4 requests and 404 tokens
    assert d.usd_per_request == pytest.approx(5e-5)
    assert d.usd_per_million_tokens == pytest.approx(2e-4 / 404 * 1e6)
    assert d.vllm_flop_delta == pytest.approx(1e9)
    assert d.flop_ratio_to_vllm == pytest.approx(ours / 1e9)
    assert d.energy_j is None and d.energy_j_per_request is None
    assert 0 < d.roofline_fraction < 1


def test_decode_run_mbu_roofline_energy():
    recs = [rec(i, 8, 32) for i in range(8)]
    s = summary(8, 4.0, 64, 256, tpot=0.05)
    d = derive(config("decode", 8, 32, 4), s, hw(), recs, None, None, 10.0)
    assert d.phase == "output"
    assert d.achieved_flop_per_s_output == pytest.approx(2e6 * 256 / 4.0)
    assert d.mfu_output == pytest.approx(1.28e8 / 1e12)
    assert d.mfu_input is None
    # batch = 64 tok/s * 0.05 s = 3.2 ; context = 8 + 33/2 = 24.5 ; kv bytes/token = 2*2*4*64*2 = 2048
    # untied embedding (1.6e6 - 1e6 >= 256*2048) -> weights read = 2e6 - 524288*2 = 951424
    step_bytes = 951_424 + 3.2 * 24.5 * 2048
    assert d.mbu_output == pytest.approx(step_bytes / 0.05 / 1e10)
    intensity = 2e6 * 3.2 / step_bytes  # flop per byte; attainable = intensity * bw (below the peak)
    assert d.roofline_fraction == pytest.approx(1.28e8 / (intensity * 1e10))
    assert d.energy_j == 10.0
    assert d.energy_j_per_request == pytest.approx(10.0 / 8)
    assert d.energy_j_per_token == pytest.approx(10.0 / 320)
    assert d.vllm_flop_delta is None and d.flop_ratio_to_vllm is None


def test_mixed_run_and_two_devices():
    recs = [rec(i, 70, 215) for i in range(4)]
    before, after = {VLLM_FLOP_COUNTER: 0.0}, {VLLM_FLOP_COUNTER: 5e8}
    d = derive(config("mixed", 70, 215, 2), summary(4, 10.0, 280, 860, tpot=0.04), hw(devices=2),
               recs, before, after, None)
    assert d.phase == "mixed"
    assert d.mfu_input is None and d.mfu_output is None
    assert d.mfu == pytest.approx(2e6 * 1140 / 10.0 / (1e12 * 2))  # peak x 2 devices
    assert d.usd_per_request == pytest.approx(0.36 * 2 * 10.0 / 3600 / 4)  # price x 2 devices
    assert d.vllm_flop_delta == pytest.approx(1e9)  # per-GPU counter x 2 devices
    assert d.device_count == 2


def test_unknown_peak_and_bandwidth_leave_nulls():
    recs = [rec(i, 8, 32) for i in range(2)]
    d = derive(config("decode", 8, 32, 2), summary(2, 1.0, 16, 64, tpot=0.03), hw(peak=None, bw=None, usd=None),
               recs, None, None, None)
    assert d.usd_per_h is None and d.usd_per_request is None and d.usd_per_million_tokens is None
    assert d.mfu is None and d.mfu_output is None and d.peak_flop_per_s is None
    assert d.mbu_output is None and d.roofline_fraction is None
    assert d.achieved_flop_per_s_output == pytest.approx(2e6 * 64)
    assert any("no peak" in n for n in d.notes)


def test_mfu_above_one_is_kept_and_explained():
    recs = [rec(i, 100, 1) for i in range(4)]
    # 2e6 * 404 / 0.0004 s = 2.02e12 flop/s achieved against a 1e12 peak
    d = derive(config("prefill", 100, 1, 4), summary(4, 0.0004, 400, 4), hw(), recs, None, None, None)
    assert d.mfu == pytest.approx(2.02) and d.mfu_input == pytest.approx(2.0)
    assert any("> 1" in n and "re-measure" in n for n in d.notes)


def test_vllm_counter_of_several_endpoints_is_scaled_per_engine():
    """vLLM counts per GPU of one engine; bench sums the counters of every endpoint, so the sum is
    scaled by the devices of ONE endpoint: 2 endpoints x TP 2 = 4 devices -> x2, not x4."""
    recs = [rec(i, 100, 1) for i in range(4)]
    before, after = {VLLM_FLOP_COUNTER: 0.0}, {VLLM_FLOP_COUNTER: 1e9}
    cfg = config("prefill", 100, 1, 4).model_copy(update={"endpoints": ["http://a:8000", "http://b:8000"]})
    d = derive(cfg, summary(4, 2.0, 400, 4), hw(devices=4), recs, before, after, None)
    assert d.vllm_flop_delta == pytest.approx(2e9)
    one = derive(config("prefill", 100, 1, 4), summary(4, 2.0, 400, 4), hw(devices=4), recs, before, after, None)
    assert one.vllm_flop_delta == pytest.approx(4e9)
