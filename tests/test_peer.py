"""bench.load.peer without a server: prompts of exact length, vLLM bench's command, its per-request detail
read as our records, and the paired comparison (tests/test_peer_vllm.py runs both tools for real)."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from bench.load import peer as P
from bench.model.prepare import train_tokenizer
from core.metrics import summarize


@pytest.fixture(scope="module")
def tokenizer():
    tok, _ = train_tokenizer(2048, seed=0)
    return tok


def test_exact_text_prompts_tokenize_to_the_asked_length(tokenizer):
    pairs = P.exact_text_prompts(tokenizer, 12, 40, seed=3)
    assert len(pairs) == 12 and len({t for t, _ in pairs}) == 12
    for text, ids in pairs:
        assert len(ids) == 40
        assert tokenizer(text).input_ids == ids  # what the server builds from the text vLLM bench sends
    assert P.exact_text_prompts(tokenizer, 12, 40, seed=3) == pairs  # seeded


def test_exact_text_prompts_refuse_a_length_below_the_special_tokens(tokenizer):
    with pytest.raises(ValueError, match="input_tokens=1"):
        P.exact_text_prompts(tokenizer, 1, 1)


@pytest.mark.parametrize("kw, word", [({"input_tokens": 0}, "input_tokens=0"), ({"output_tokens": 1}, "output_tokens=1"),
                                      ({"concurrency": 2.5}, "concurrency=2.5"), ({"warmup": -1}, "warmup=-1")])
def test_workload_rejects_bad_values(kw, word):
    args = {"input_tokens": 8, "output_tokens": 8, "concurrency": 2, "num_requests": 4} | kw
    with pytest.raises(ValueError, match=word):
        P.PeerWorkload(**args)


def test_peer_command_asks_for_the_same_load(tmp_path):
    w = P.PeerWorkload(64, 96, 4, 48, warmup=3)
    argv = P.vllm_bench_argv(base_url="http://127.0.0.1:9/", served_name="m", tokenizer_dir="/models/m",
                             dataset=tmp_path / "p.jsonl", workload=w, result_dir=tmp_path, result_filename="r.json",
                             python="/py")
    assert argv[:2] == ["/py", "-c"] and "vllm.benchmarks.serve" in argv[2]
    opts = dict(zip(argv[3::1], argv[4::1]))
    assert opts["--base-url"] == "http://127.0.0.1:9" and opts["--endpoint"] == "/v1/completions"
    assert opts["--max-concurrency"] == "4" and opts["--num-prompts"] == "48" and opts["--num-warmups"] == "3"
    assert opts["--custom-output-len"] == "96" and opts["--temperature"] == "0"
    assert json.loads(opts["--extra-body"]) == {"min_tokens": 96}
    for flag in ("--ignore-eos", "--skip-chat-template", "--disable-shuffle", "--save-detailed", "--no-oversample"):
        assert flag in argv


def _peer_result():
    """A vLLM bench result (its JSON keys; seconds in the detail, milliseconds in the summary) of
    3 requests with known timestamps."""
    starts = [100.0, 100.0, 100.5]
    ttfts = [0.2, 0.3, 0.25]
    itls = [[0.1, 0.1, 0.2], [0.1, 0.3, 0.1], [0.05, 0.05, 0.1]]
    lat = [t + sum(g) for t, g in zip(ttfts, itls)]
    return {"start_times": starts, "ttfts": ttfts, "itls": itls, "latencies": lat, "input_lens": [5, 5, 5],
            "output_lens": [4, 4, 4], "errors": ["", "", ""], "completed": 3, "total_output_tokens": 12,
            "duration": 1.2}


def test_records_from_peer_keep_its_timestamps():
    recs = P.records_from_peer(_peer_result())
    assert [r.send_s for r in recs] == [0.0, 0.0, 0.5]
    assert recs[0].first_token_s == pytest.approx(0.2) and recs[0].chunk_times_s == pytest.approx([0.2, 0.3, 0.4, 0.6])
    assert recs[2].end_s == pytest.approx(0.5 + 0.25 + 0.2)
    s = summarize(recs)
    assert s.output_tokens_total == 12 and s.num_ok == 3
    assert s.tpot_s.mean == pytest.approx(sum(sum(g) / 3 for g in _peer_result()["itls"]) / 3)  # (E2E - TTFT) / (n - 1)


def test_records_from_peer_keep_a_failure():
    r = _peer_result()
    r["errors"][1] = "HTTP 500"
    r["ttfts"][1] = 0.0
    recs = P.records_from_peer(r)
    assert recs[1].error == "HTTP 500" and summarize(recs).num_failed == 1


def _fig(tool="x", scale=1.0, **over):
    base = {m: 0.01 * scale for m in P.METRICS} | {"output_tokens_per_s": 500 / scale}
    return P.Figures(tool=tool, output_tokens_total=100, num_ok=10, **(base | over))


def test_compare_pairs_rounds_so_shared_drift_cancels():
    # the machine drifts by 40 % between rounds, on both tools alike: the paired difference is 0
    ours = [_fig(scale=1.0), _fig(scale=1.4), _fig(scale=0.9)]
    peer = [_fig(scale=1.0), _fig(scale=1.4), _fig(scale=0.9)]
    rows = P.compare(ours, peer)
    assert all(r.agrees and r.difference == pytest.approx(0) and r.noise == pytest.approx(0) for r in rows)


def test_compare_finds_a_bias_above_the_noise():
    ours = [_fig(tpot_p50_s=0.012), _fig(tpot_p50_s=0.0121), _fig(tpot_p50_s=0.0119)]  # +20 %, steady
    rows = {r.metric: r for r in P.compare(ours, [_fig(), _fig(), _fig()])}
    assert rows["tpot_p50_s"].difference == pytest.approx(0.20) and not rows["tpot_p50_s"].agrees
    assert rows["itl_p50_s"].agrees


def test_ttft_has_its_explained_tolerance_and_no_more():
    ours = [_fig(ttft_p50_s=0.0082, ttft_p90_s=0.0065)] * 3  # -18 % (explained, allowed), -35 % (not)
    rows = {r.metric: r for r in P.compare(ours, [_fig()] * 3)}
    assert rows["ttft_p50_s"].allowance == pytest.approx(0.30) and rows["ttft_p50_s"].agrees
    assert not rows["ttft_p90_s"].agrees
    strict = {r.metric: r for r in P.compare(ours, [_fig()] * 3, tolerances={})}
    assert not strict["ttft_p50_s"].agrees  # at the plain 5 % it would not pass


def test_compare_allows_the_measured_noise_but_never_above_the_cap():
    noisy = [_fig(itl_p90_s=0.011), _fig(itl_p90_s=0.0095), _fig(itl_p90_s=0.0108)]  # +10, -5, +8 %: range 15 %
    row = {r.metric: r for r in P.compare(noisy, [_fig()] * 3)}["itl_p90_s"]
    assert row.noise == pytest.approx(0.15) and row.allowance == pytest.approx(0.15) and row.agrees
    wild = [_fig(itl_p90_s=0.02), _fig(itl_p90_s=0.004), _fig(itl_p90_s=0.016)]  # range 160 %
    row = {r.metric: r for r in P.compare(wild, [_fig()] * 3)}["itl_p90_s"]
    assert row.allowance == P.MAX_ALLOWANCE and not row.agrees


def _with_samples(fig, **samples):
    return dataclasses.replace(fig, samples={k: np.asarray(v, dtype=float) for k, v in samples.items()})


def test_a_median_between_two_clusters_agrees_by_rank():
    # the peer's gaps: two clusters (4 ms and 8 ms) with its median at 6 ms in the sparse middle; ours
    # reads 5.5 ms (-8 %, above the 5 % tolerance) but sits at the peer's 48th percentile
    gaps = [0.004] * 48 + [0.0055, 0.006, 0.0065, 0.007] + [0.008] * 48
    peer = [_with_samples(_fig(itl_p50_s=0.006), itl=gaps)] * 3
    ours = [_with_samples(_fig(itl_p50_s=0.0055), itl=gaps)] * 3
    row = {r.metric: r for r in P.compare(ours, peer)}["itl_p50_s"]
    assert row.difference == pytest.approx(-1 / 12) and row.allowance == pytest.approx(0.05)
    assert row.rank_difference == pytest.approx(0.49 - 0.5) and row.agrees


def test_a_real_shift_fails_in_value_and_in_rank():
    gaps = [0.001 * (1 + i / 100) for i in range(100)]  # dense: 1.00 .. 1.99 ms
    peer = [_with_samples(_fig(itl_p50_s=float(np.median(gaps))), itl=gaps)] * 3
    ours = [_with_samples(_fig(itl_p50_s=float(np.median(gaps)) * 1.15), itl=gaps)] * 3
    row = {r.metric: r for r in P.compare(ours, peer)}["itl_p50_s"]
    assert row.rank_difference > 0.15 and not row.agrees


def test_no_rank_without_samples_or_for_a_rate():
    rows = {r.metric: r for r in P.compare([_fig()], [_fig()])}
    assert rows["itl_p50_s"].rank_difference is None and rows["output_tokens_per_s"].rank_difference is None


def test_compare_needs_paired_rounds():
    with pytest.raises(ValueError, match="same number"):
        P.compare([_fig()], [_fig(), _fig()])


def test_cross_check_rejects_a_bad_mode(tmp_path):
    with pytest.raises(ValueError, match="mode='both'"):
        P.cross_check("http://127.0.0.1:9", "m", tmp_path, P.PeerWorkload(8, 8, 1, 1), tmp_path, mode="both")


# --------------------------------------------------------------------------- shared stalls


TTFT, GAP, CHUNKS = 0.02, 0.005, 64  # a synthetic engine: first token 20 ms after the send, then a chunk every 5 ms


def _round(offset, stalls=(), *, streams=4, per_stream=20, idle_after=None):
    """Records of one tool's closed loop on a synthetic server whose output is held back (delivered
    at the stall's end) during each of `stalls`; the engine itself keeps going. Stream k starts at
    offset + k ms. `idle_after=(i, s)`: each stream waits s seconds before its i-th request."""
    from core.schema.run import RequestRecord

    def deliver(t):
        for lo, hi in stalls:
            if lo < t < hi:
                return hi
        return t

    recs = []
    for k in range(streams):
        t = offset + 0.001 * k
        for i in range(per_stream):
            if idle_after is not None and i == idle_after[0]:
                t += idle_after[1]
            made = [t + TTFT + GAP * j for j in range(CHUNKS)]
            chunks = [deliver(x) for x in made]
            end = chunks[-1] + 0.0002
            recs.append(RequestRecord(index=len(recs), send_s=t, first_token_s=chunks[0], end_s=end,
                                      chunk_times_s=chunks, input_tokens=64, output_tokens=CHUNKS,
                                      requested_input_tokens=64, requested_output_tokens=CHUNKS))
            t = end
    return recs


def _planted_stalls():
    # 1 ms after tool A's fourth wave of sends (A awaits 4 first tokens through it), for 0.3 s; tool
    # B, 30 ms later in its period, is mid-decode then and sends nothing until the stall ends
    period = TTFT + GAP * (CHUNKS - 1) + 0.0002
    return [(0.003 + period * 3 + 0.001, 0.003 + period * 3 + 0.301)]


def test_a_stall_is_found_where_no_tool_received_anything():
    planted = _planted_stalls()
    found = P.shared_stalls([_round(0.0, planted), _round(0.03, planted)])
    assert len(found) == len(planted)
    for (lo, hi), (plo, phi) in zip(found, planted):
        assert hi == pytest.approx(phi) and lo <= plo and phi - lo < 0.31
    assert P.shared_stalls([_round(0.0), _round(0.03)]) == []  # none planted: no gap reaches 4 x TTFT


def test_an_idle_gap_is_no_stall():
    # both tools pause for 0.5 s between requests: nothing was in flight, nothing was held back
    assert P.shared_stalls([_round(0.0, idle_after=(5, 0.5)), _round(0.0005, idle_after=(5, 0.5))]) == []


def test_stalled_first_tokens_are_left_out_of_both_tools_ttft():
    planted = _planted_stalls()
    a, b = _round(0.0, planted, per_stream=8), _round(0.03, planted, per_stream=8)
    fa, fb = P.figures_from_records(a), P.figures_from_records(b)
    assert fa.ttft_p90_s > 10 * fb.ttft_p90_s  # 4 of A's 32 requests took the whole stall in TTFT: chance, not the client
    assert not {r.metric: r for r in P.compare([fa], [fb])}["ttft_p90_s"].agrees
    stalls = P.shared_stalls([a, b])
    ea, eb = P.excluding_stalled_ttft(fa, a, stalls), P.excluding_stalled_ttft(fb, b, stalls)
    assert (ea.ttft_stall_excluded, eb.ttft_stall_excluded) == (4, 0) and eb == fb
    # with the recovery span after it (80 ms here), the requests sent into the catch-up go too: B's
    # four sent as its held-back output arrived, and A's next four, sent as its stalled requests
    # (generated on through the stall) completed 33 ms after it
    recovery = P.stall_threshold_s([a, b])
    assert recovery == pytest.approx(4 * TTFT)
    assert P.excluding_stalled_ttft(fb, b, stalls, recovery).ttft_stall_excluded == 4
    assert P.excluding_stalled_ttft(fa, a, stalls, recovery).ttft_stall_excluded == 8
    assert ea.ttft_p90_s == pytest.approx(TTFT) and len(ea.samples["ttft"]) == 28
    assert ea.tpot_p90_s == fa.tpot_p90_s and ea.itl_p90_s == fa.itl_p90_s  # the stall stays in TPOT and ITL
    rows = {r.metric: r for r in P.compare([ea], [eb])}
    assert rows["ttft_p90_s"].agrees and rows["ttft_p50_s"].agrees


def test_peer_records_can_take_the_shared_clock():
    recs = P.records_from_peer(_peer_result(), origin=0.0)
    assert recs[0].send_s == pytest.approx(min(_peer_result()["start_times"]))
