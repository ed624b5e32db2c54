"""The peer cross-check (issue 10): vLLM's own client, `vllm bench serve` from the installed vLLM,
and this project's client against the session's vLLM CPU server, with prompts of the same lengths,
the same output length, concurrency and warm-ups (bench.load.peer; docs/peer-check.md has the figures).

Paired mode: both tools load the server at the same time, so both time the same engine steps and
the drift of this 2-core machine (15-40 % between sequential runs) falls on both alike. A metric
agrees when the median over 3 rounds of ours/peer - 1 is within 5 % (TTFT: 30 %, see
docs/peer-check.md), or within that difference's own range over the rounds, never above 30 %, or
(a percentile) within 5 percentile points of the peer's own samples (bench.load.peer.compare).
Requests of either tool that awaited their first token through a shared stall of the server's
output are left out of both tools' TTFT (bench.load.peer.shared_stalls): a CI run failed on TTFT p90
+160 % when such stalls fell on ours, which is chance, not the client.
Measured here (5 paired rounds): TPOT, ITL and output tok/s within 0-3 %; TTFT p50 and p90 ours
5-18 % lower.
"""

from __future__ import annotations

import json

import pytest

from bench.load import peer as P

pytestmark = pytest.mark.vllm
WORKLOAD = P.PeerWorkload(input_tokens=64, output_tokens=64, concurrency=4, num_requests=96)
ROUNDS = 3


@pytest.fixture(scope="module")
def peer_check(cpu_vllm, tmp_path_factory):
    work = tmp_path_factory.mktemp("peer")
    return P.cross_check(cpu_vllm.base_url, cpu_vllm.served_name, cpu_vllm.model_dir, WORKLOAD, work,
                         rounds=ROUNDS, mode="paired"), work


def test_both_tools_get_exactly_the_tokens_asked(peer_check):
    check, _ = peer_check
    for f in check.ours + check.peer:
        assert f.num_ok == WORKLOAD.num_requests, f.tool
        assert f.output_tokens_total == WORKLOAD.num_requests * WORKLOAD.output_tokens, f.tool
        assert set(f.output_lengths) == {WORKLOAD.output_tokens}, f.tool


def test_our_definitions_give_vllm_bench_figures_on_its_own_timestamps(peer_check):
    """Noise-free: vLLM bench's per-request timestamps through core.metrics give its own summary."""
    _, work = peer_check
    for r in range(ROUNDS):
        result = json.loads((work / f"peer-{r}.json").read_text())
        theirs = P.figures_from_peer(result)
        ours = P.figures_from_records(P.records_from_peer(result))
        for m in P.METRICS:
            tol = 0.02 if m == "output_tokens_per_s" else 1e-6  # its duration starts before the first send
            assert getattr(ours, m) == pytest.approx(getattr(theirs, m), rel=tol), (r, m)


def test_ttft_tpot_itl_and_throughput_agree_with_vllm_bench(peer_check):
    check, _ = peer_check
    print("\n" + check.table())
    bad = [r for r in check.rows if not r.agrees]
    assert not bad, check.table()
