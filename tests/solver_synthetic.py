"""A calibration profile built from stated constants, not measured: a fixture of the solver tests.

Defaults are the paper's inference setting (`core.paper.PAPER`: A100-40GB INT8 peak,
$1.10/h, MFU 50 % / 1 %). Marked provenance.inputs = "synthetic" so nothing mistakes it for a
measurement; the report prints a banner for such profiles.
"""

from __future__ import annotations

from core.paper import PAPER, SECONDS_PER_HOUR


def synthetic_profile(
    *,
    hardware_name: str = "synthetic-a100-40gb",
    device_name: str = "synthetic A100-SXM4-40GB (paper constants)",
    peak_flop_per_s: float | None = PAPER.inference.peak_flop_per_s,
    memory_bytes: int | None = 40 * 10**9,
    memory_bandwidth_bytes_per_s: float | None = 1555e9,
    usd_per_h: float = PAPER.inference.usd_per_h,
    mfu_input: float = PAPER.mfu_input,
    curve: dict[int, float] | None = None,
    mfu_output: float = PAPER.mfu_output,
    operating_concurrency: int = 8,
    params_matmul: int = 7_000_000_000,
    tpot_p90_s: float = 0.2,
    ttft_p90_s: float = 2.0,
    energy_j_per_request: float | None = None,
    device_count: int = 1,
    model_name: str = "synthetic",
    performance_model: dict | None = None,
):
    """A `core.schema.profile.Profile` built from stated constants, not from measurements.

    Defaults reproduce the paper's inference setting (A100-40GB INT8 peak, $1.10/h, MFU 50 %/1 %).
    `curve` maps concurrency -> decode MFU (flat at `mfu_output` when None). `performance_model`:
    stated step-model constants ({"form": ..., "params": {...}, "request_overhead_s": ...}, see
    `synthetic_performance_model`), or None for a profile of one model size. Marked
    provenance.inputs = "synthetic" so nothing downstream mistakes it for a measurement.
    For tests and for reports made before any profile was measured.
    """
    from core.schema.profile import (
        Costs,
        CurvePoint,
        Estimate,
        OperatingPoint,
        Profile,
        ProfileHardware,
        ProfileModel,
        ProfileProvenance,
        Slo,
    )

    peak = peak_flop_per_s if peak_flop_per_s is not None else 1e14  # rates need some scale
    curve = curve or {c: mfu_output for c in (1, 2, 4, 8, 16, 32, 64)}
    n2 = 2.0 * params_matmul
    a_in = mfu_input * peak * device_count
    a_out = curve.get(operating_concurrency, mfu_output) * peak * device_count

    def est(v):
        return Estimate(value=v, low=v, high=v, n_boot=0)

    s_in, s_out = n2 * device_count / a_in, n2 * device_count / a_out
    usd_dev_s = usd_per_h / SECONDS_PER_HOUR

    def mfu_or_none(v):
        return None if peak_flop_per_s is None else est(v)

    return Profile(
        hardware=ProfileHardware(
            name=hardware_name, kind="gpu", device_name=device_name, device_count=device_count,
            peak_dtype="int8", peak_flop_per_s=peak_flop_per_s, peak_source="assumption: synthetic",
            memory_bytes=memory_bytes, memory_bandwidth_bytes_per_s=memory_bandwidth_bytes_per_s,
            bandwidth_source="assumption: synthetic", usd_per_h=usd_per_h, usd_per_h_source="assumption: synthetic",
        ),
        model=ProfileModel(
            name=model_name, quantization="w8a8-int8", params_matmul=params_matmul,
            params_total=params_matmul, num_layers=32, hidden_size=4096, num_kv_heads=8, head_dim=128,
            weight_bytes=params_matmul, bytes_per_param=1.0,
        ),
        operating_concurrency=operating_concurrency,
        seconds_per_input_token=est(s_in),
        seconds_per_output_token=est(s_out),
        achieved_flop_per_s_input=est(a_in),
        achieved_flop_per_s_output=est(a_out),
        mfu_input=mfu_or_none(mfu_input),
        mfu_output=mfu_or_none(a_out / (peak * device_count)),
        decode_curve=[
            CurvePoint(
                concurrency=c, output_tokens_per_s=m * peak * device_count / n2,
                achieved_flop_per_s=m * peak * device_count, mfu_output=None if peak_flop_per_s is None else m,
                tpot_p90_s=c * n2 / (m * peak * device_count), run_ids=[f"synthetic-c{c}"],
            )
            for c, m in sorted(curve.items())
        ],
        slo=Slo(ttft_p90_s=ttft_p90_s, tpot_p90_s=tpot_p90_s, source="assumption: synthetic"),
        operating_point=OperatingPoint(
            concurrency=operating_concurrency, output_tokens_per_s=a_out / n2,
            mfu_output=None if peak_flop_per_s is None else a_out / (peak * device_count), meets_slo=True,
        ),
        costs=Costs(
            usd_per_request_paper_mix=est(usd_dev_s * (PAPER.input_tokens_per_request * s_in + PAPER.output_tokens_per_request * s_out)),
            usd_per_million_input_tokens=est(usd_dev_s * s_in * 1e6),
            usd_per_million_output_tokens=est(usd_dev_s * s_out * 1e6),
            energy_j_per_request=energy_j_per_request,
        ),
        provenance=ProfileProvenance(
            runs=[], dropped=[], vllm_version=None, created_utc="1970-01-01T00:00:00Z",
            tool="tests/solver_synthetic.py", inputs="synthetic",
            method="synthetic: constants stated, not measured",
        ),
        performance_model=None if performance_model is None else synthetic_performance_model(**performance_model),
    )


def synthetic_performance_model(form: str, params: dict, request_overhead_s: float = 1e-9,
                                max_num_seqs: int = 256, kv_dtype_bytes: int = 2):
    """A `core.schema.perfmodel.PerformanceModel` with stated (assumed) constants: no ladder, no validation."""
    from core.schema.perfmodel import FittedParam, Parallelism, PerformanceModel, Scheduler

    units = {"t0_s": "s", "layer_s": "s", "bandwidth_bytes_per_s": "bytes/s"}

    def p(v, unit):
        return FittedParam(value=v, low=v, high=v, unit=unit, provenance="assumed", source="synthetic")

    return PerformanceModel(
        form=form, formula=form, params={k: p(v, units.get(k, "flop/s")) for k, v in params.items()},
        request_overhead_s=p(request_overhead_s, "s"), bootstrap=[], fitted_on=[],
        scheduler=Scheduler(max_num_seqs=max_num_seqs, max_num_batched_tokens=8192, source="synthetic"),
        kv_dtype_bytes=kv_dtype_bytes,
        parallelism=Parallelism(provenance="assumed", allreduce_latency_s=0.0, interconnect_bytes_per_s=None,
                                source="synthetic: ideal scaling"),
        forms=[], held_out=[], held_out_max_abs_error={}, target_error=0.15, meets_target=True, warning=None,
        method="synthetic: constants stated, not fitted",
    )


def paper_equivalent_model(mfu_input: float = PAPER.mfu_input, mfu_output: float = PAPER.mfu_output,
                           peak: float = PAPER.inference.peak_flop_per_s) -> dict:
    """Step time = decode tokens·2N/(mfu_output·peak) + prompt tokens·2N/(mfu_input·peak): the paper's
    constant MFUs as a step model (no overhead, weights read for free)."""
    return {"form": "split", "params": {"t0_s": 1e-12, "bandwidth_bytes_per_s": 1e30,
                                        "decode_flop_per_s": mfu_output * peak, "prefill_flop_per_s": mfu_input * peak}}


def overhead_model(t0_s: float = 0.02, bandwidth: float = 1.2e12, decode_mfu: float = 0.3, prefill_mfu: float = 0.5,
                   peak: float = PAPER.inference.peak_flop_per_s) -> dict:
    """A GPU-like step model: fixed per-step overhead, weights over a bandwidth, matmuls at some MFU."""
    return {"form": "split", "params": {"t0_s": t0_s, "bandwidth_bytes_per_s": bandwidth,
                                        "decode_flop_per_s": decode_mfu * peak, "prefill_flop_per_s": prefill_mfu * peak},
            "request_overhead_s": 0.005}
