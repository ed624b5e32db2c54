"""core.metrics against hand-built records with known times (pure, no server)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.metrics import duration_s, e2e_s, itl_s, meets_slo, percentiles, summarize, tpot_s, ttft_s
from core.schema.run import RequestRecord


def rec(index=0, *, send=0.0, chunks=(), end=None, out=None, inp=10, error=None, warmup=False, req_out=None):
    chunks = list(chunks)
    return RequestRecord(
        index=index,
        warmup=warmup,
        send_s=send,
        first_token_s=chunks[0] if chunks else None,
        end_s=end,
        chunk_times_s=chunks,
        input_tokens=None if error else inp,
        output_tokens=None if error else out,
        requested_input_tokens=inp,
        requested_output_tokens=req_out if req_out is not None else (out or 1),
        error=error,
    )


def test_single_request_ttft_tpot_e2e_itl():
    # send at 1.0, first chunk 1.5, then one token every 0.1 s up to 10 tokens, done at 2.4
    chunks = [1.5 + 0.1 * i for i in range(10)]
    r = rec(send=1.0, chunks=chunks, end=2.4, out=10)
    assert ttft_s(r) == pytest.approx(0.5)
    assert e2e_s(r) == pytest.approx(1.4)
    assert tpot_s(r) == pytest.approx((1.4 - 0.5) / 9)
    assert itl_s(r) == pytest.approx([0.1] * 9)


def test_multi_token_chunks_tpot_counts_tokens_not_chunks():
    # 12 tokens in 4 chunks of 3: TPOT uses the server's 12, ITL the per-chunk gaps
    r = rec(send=0.0, chunks=[0.2, 0.5, 0.8, 1.1], end=1.1, out=12)
    assert tpot_s(r) == pytest.approx(0.9 / 11)
    assert itl_s(r) == pytest.approx([0.3, 0.3, 0.3])
    s = summarize([r])
    assert s.output_tokens_total == 12
    assert s.itl_s.mean == pytest.approx(0.3)
    assert s.tpot_s.mean == pytest.approx(0.9 / 11)
    assert s.tpot_s.mean != pytest.approx(s.itl_s.mean)


def test_one_token_output_has_no_tpot():
    r = rec(send=0.0, chunks=[0.25], end=0.26, out=1)
    assert tpot_s(r) is None
    assert itl_s(r) == []
    s = summarize([r])
    assert s.tpot_s.mean is None and s.tpot_s.p99 is None
    assert s.itl_s.p50 is None
    assert s.ttft_s.p50 == pytest.approx(0.25)
    assert s.num_ok == 1 and s.valid


def test_failures_excluded_and_counted():
    good = [rec(i, send=float(i), chunks=[i + 0.1, i + 0.2], end=i + 0.2, out=2, inp=5) for i in range(3)]
    bad = rec(3, send=0.5, error="ServerDisconnectedError", end=9.0, out=2)
    s = summarize(good + [bad])
    assert s.num_ok == 3 and s.num_failed == 1
    assert s.failure_fraction == pytest.approx(0.25)
    assert not s.valid
    assert s.input_tokens_total == 15 and s.output_tokens_total == 6
    assert s.ttft_s.mean == pytest.approx(0.1)
    assert s.e2e_s.p99 == pytest.approx(0.2)
    # the failed request's end still bounds the run window (it occupied the server until then)
    assert s.duration_s == pytest.approx(9.0)
    assert ttft_s(bad) is None and tpot_s(bad) is None and itl_s(bad) == []


def test_record_without_usage_counts_as_failed():
    r = RequestRecord(index=0, send_s=0.0, first_token_s=0.1, end_s=0.2, chunk_times_s=[0.1],
                      requested_input_tokens=3, requested_output_tokens=1)
    s = summarize([r])
    assert s.num_ok == 0 and s.num_failed == 1 and not s.valid


@pytest.mark.parametrize("n_failed, valid", [(1, True), (2, False)])
def test_more_than_one_percent_failures_is_invalid(n_failed, valid):
    ok = [rec(i, send=i * 0.01, chunks=[i * 0.01 + 0.05], end=i * 0.01 + 0.05, out=1) for i in range(200 - n_failed)]
    bad = [rec(1000 + i, send=0.0, error="HTTP 500: boom") for i in range(n_failed)]
    s = summarize(ok + bad)  # 0.5 % and 1 %: both within the default 1 %
    assert s.num_failed == n_failed
    assert s.failure_fraction == pytest.approx(n_failed / 200)
    assert s.valid  # 1 % is not *more* than 1 %
    s_strict = summarize(ok + bad, max_failure_fraction=0.005)
    assert s_strict.valid is valid


def test_just_over_one_percent_is_invalid():
    ok = [rec(i, send=0.0, chunks=[0.1], end=0.1, out=1) for i in range(98)]
    bad = [rec(100 + i, send=0.0, error="x") for i in range(2)]  # 2 / 100 = 2 %
    assert not summarize(ok + bad).valid
    ok99 = [rec(i, send=0.0, chunks=[0.1], end=0.1, out=1) for i in range(99)]
    assert summarize(ok99 + bad[:1]).valid  # 1 / 100 = 1 % exactly: valid


def test_warmup_excluded_from_everything():
    warm = rec(0, send=0.0, chunks=[5.0], end=50.0, out=1, warmup=True)
    meas = [rec(1, send=100.0, chunks=[100.5, 100.7], end=100.7, out=3), rec(2, send=100.2, chunks=[100.4], end=101.0, out=1)]
    s = summarize([warm] + meas)
    assert s.num_ok == 2
    assert s.duration_s == pytest.approx(1.0)  # 100.0 .. 101.0, warm-up ignored
    assert s.output_tokens_total == 4
    assert s.output_tokens_per_s == pytest.approx(4.0)
    assert s.request_throughput_per_s == pytest.approx(2.0)
    assert s.ttft_s.mean == pytest.approx((0.5 + 0.2) / 2)


def test_throughputs_and_duration():
    rs = [rec(i, send=i * 1.0, chunks=[i + 0.5, i + 1.0], end=i + 1.0, out=4, inp=100) for i in range(4)]
    s = summarize(rs)
    assert duration_s(rs) == pytest.approx(4.0)
    assert s.input_tokens_per_s == pytest.approx(400 / 4.0)
    assert s.output_tokens_per_s == pytest.approx(16 / 4.0)


def test_goodput_under_slo():
    # ttft 0.1/0.3/0.1 ; tpot 0.05/0.05/0.2 (out=3, e2e - ttft = 0.1/0.1/0.4)
    rs = [
        rec(0, send=0.0, chunks=[0.1, 0.2], end=0.2, out=3),
        rec(1, send=0.0, chunks=[0.3, 0.4], end=0.4, out=3),
        rec(2, send=0.0, chunks=[0.1, 0.5], end=0.5, out=3),
        rec(3, send=0.0, chunks=[0.1], end=1.0, out=1),  # one token: no TPOT, passes the TPOT limit
    ]
    s = summarize(rs, slo_ttft_s=0.2, slo_tpot_s=0.1)
    assert s.duration_s == pytest.approx(1.0)
    assert s.goodput_requests_per_s == pytest.approx(2.0)  # requests 0 and 3
    assert summarize(rs, slo_ttft_s=0.2).goodput_requests_per_s == pytest.approx(3.0)
    assert summarize(rs, slo_tpot_s=0.1).goodput_requests_per_s == pytest.approx(3.0)
    assert summarize(rs).goodput_requests_per_s is None
    assert meets_slo(rs[0], slo_ttft_s=0.2, slo_tpot_s=0.1)
    assert not meets_slo(rs[2], slo_ttft_s=0.2, slo_tpot_s=0.1)


def test_percentiles_linear_interpolation():
    p = percentiles([1.0, 2.0, 3.0, 4.0, 5.0])
    assert (p.mean, p.p50, p.p90, p.p99) == pytest.approx((3.0, 3.0, 4.6, 4.96))


def test_empty_and_all_failed_are_invalid_not_errors():
    s = summarize([])
    assert s.num_ok == 0 and not s.valid and s.duration_s == 0.0 and s.output_tokens_per_s == 0.0
    s = summarize([rec(0, send=0.0, error="connection refused", end=0.001)])
    assert s.num_failed == 1 and not s.valid and s.ttft_s.mean is None


def test_bad_slo_is_a_clear_error():
    with pytest.raises(ValueError, match="slo_ttft_s"):
        summarize([], slo_ttft_s=0)
    with pytest.raises(ValueError, match="max_failure_fraction"):
        summarize([], max_failure_fraction=1.5)


@given(st.lists(st.floats(min_value=1e-4, max_value=1.0), min_size=1, max_size=30),
       st.integers(min_value=1, max_value=5))
def test_tpot_times_tokens_reconstructs_e2e(gaps, tokens_per_chunk):
    chunks = list(np.cumsum([0.2] + gaps))
    out = len(chunks) * tokens_per_chunk
    r = rec(send=0.0, chunks=chunks, end=chunks[-1], out=out)
    if out < 2:
        assert tpot_s(r) is None
        return
    assert ttft_s(r) + tpot_s(r) * (out - 1) == pytest.approx(e2e_s(r))
    assert math.fsum(itl_s(r)) == pytest.approx(chunks[-1] - chunks[0])
