"""bench.load.client against the in-process fake server (fakeserver); no vLLM, no timing assertions."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from fakeserver import FakeServer

from bench.load.client import (
    api_key_from_env,
    classify_event,
    make_prompts,
    make_warmup_prompts,
    poisson_arrivals_s,
    read_length_distribution,
    request_body,
    run_load,
)
from core.metrics import summarize
from core.schema.run import Workload

FAKESERVER = Path(__file__).with_name("fakeserver.py")  # the fake OpenAI server, run as a script

HANG_GUARD_S = 60  # a hang fails the test instead of blocking CI


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, HANG_GUARD_S))


def prompts_for(kind="mixed", n=10, inp=12, out=7, seed=0):
    return make_prompts(Workload(kind=kind, input_tokens=inp, output_tokens=out), n, seed=seed,
                        token_id_low=5, token_id_high=500)


# --------------------------------------------------------------------------- prompts (pure)


def test_make_prompts_exact_lengths_range_and_seed():
    ps = prompts_for("mixed", n=20, inp=33, out=9)
    assert len(ps) == 20
    assert all(len(ids) == 33 and out == 9 for ids, out in ps)
    assert all(5 <= t < 500 for ids, _ in ps for t in ids)
    assert ps == prompts_for("mixed", n=20, inp=33, out=9)  # reproducible from the seed
    assert ps != prompts_for("mixed", n=20, inp=33, out=9, seed=1)
    assert len({tuple(ids[:4]) for ids, _ in ps}) == 20  # distinct prefixes: nothing for a prefix cache


def test_workload_defaults():
    w = lambda **kw: make_prompts(Workload(**kw), 2, seed=0, token_id_low=1, token_id_high=9)  # noqa: E731
    assert [(len(i), o) for i, o in w(kind="prefill", input_tokens=300)] == [(300, 1)] * 2
    assert [(len(i), o) for i, o in w(kind="decode", output_tokens=40)] == [(8, 40)] * 2
    assert [(len(i), o) for i, o in w(kind="mixed")] == [(70, 215)] * 2


def test_distribution_csv_and_jsonl(tmp_path):
    csv_path = tmp_path / "lens.csv"
    csv_path.write_text("input_tokens,output_tokens\n5,2\n40,30\n")
    jsonl_path = tmp_path / "lens.jsonl"
    jsonl_path.write_text('{"prompt_tokens": 5, "completion_tokens": 2}\n{"prompt_tokens": 40, "completion_tokens": 30}\n')
    assert read_length_distribution(csv_path) == [(5, 2), (40, 30)]
    assert read_length_distribution(jsonl_path) == [(5, 2), (40, 30)]
    ps = make_prompts(Workload(kind="distribution", distribution_file=str(csv_path)), 200, seed=3,
                      token_id_low=1, token_id_high=50)
    shapes = [(len(i), o) for i, o in ps]
    assert set(shapes) == {(5, 2), (40, 30)}
    assert 60 < shapes.count((5, 2)) < 140  # sampled with replacement, about half each
    again = make_prompts(Workload(kind="distribution", distribution_file=str(jsonl_path)), 200, seed=3,
                         token_id_low=1, token_id_high=50)
    assert ps == again


def test_distribution_bad_files(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match="lack one of the pairs"):
        read_length_distribution(bad)
    with pytest.raises(ValueError, match="does not exist"):
        read_length_distribution(tmp_path / "missing.csv")
    zero = tmp_path / "zero.csv"
    zero.write_text("input,output\n0,3\n")
    with pytest.raises(ValueError, match="row 1"):
        read_length_distribution(zero)


def test_bad_token_range_is_an_error():
    with pytest.raises(ValueError, match="token id range"):
        make_prompts(Workload(kind="mixed"), 1, seed=0, token_id_low=10, token_id_high=10)


def test_request_body_asks_for_exact_output():
    body = json.loads(request_body("m", [1, 2, 3], 17))
    assert body == {"model": "m", "prompt": [1, 2, 3], "max_tokens": 17, "temperature": 0, "stream": True,
                    "stream_options": {"include_usage": True}, "ignore_eos": True, "min_tokens": 17}
    assert "ignore_eos" not in json.loads(request_body("m", [1], 2, exact_output=False))


def test_classify_event():
    tok = b'{"id":"c","object":"text_completion","choices":[{"index":0,"text":"a","finish_reason":null}],"usage":null}'
    assert classify_event(tok) == (True, None, None)
    empty_text = b'{"id": "c", "choices": [{"index": 0, "text": ""}]}'  # spaced JSON, partial UTF-8 held back
    assert classify_event(empty_text) == (True, None, None)
    usage = b'{"id":"c","choices":[],"usage":{"prompt_tokens":4,"completion_tokens":9,"total_tokens":13}}'
    assert classify_event(usage) == (False, {"prompt_tokens": 4, "completion_tokens": 9, "total_tokens": 13}, None)
    has, u, err = classify_event(b'{"error":{"message":"out of memory","code":500}}')
    assert not has and u is None and "out of memory" in err
    assert "malformed" in classify_event(b"{not json")[2]


def test_poisson_arrivals_seeded():
    a = poisson_arrivals_s(20000, 50.0, seed=7)
    assert a[0] == 0.0 and np.all(np.diff(a) >= 0)
    assert np.mean(np.diff(a)) == pytest.approx(1 / 50.0, rel=0.03)
    assert np.std(np.diff(a)) == pytest.approx(1 / 50.0, rel=0.05)  # exponential: std = mean
    assert np.array_equal(a, poisson_arrivals_s(20000, 50.0, seed=7))
    assert not np.array_equal(a, poisson_arrivals_s(20000, 50.0, seed=8))


def test_api_key_from_env(monkeypatch):
    monkeypatch.setenv("BENCH_TEST_KEY", "sk-123")
    assert api_key_from_env("BENCH_TEST_KEY") == "sk-123"
    assert api_key_from_env(None) is None
    monkeypatch.delenv("BENCH_TEST_KEY")
    with pytest.raises(ValueError, match="BENCH_TEST_KEY"):
        api_key_from_env("BENCH_TEST_KEY")


def test_warmup_prompts_same_shape_different_prefix():
    ps = prompts_for(n=3, inp=10)
    warm = make_warmup_prompts(ps, 5)
    assert [(len(i), o) for i, o in warm] == [(len(ps[k % 3][0]), ps[k % 3][1]) for k in range(5)]
    assert all(w[0] != ps[k % 3][0] for k, w in enumerate(warm))


# --------------------------------------------------------------------------- against the fake server


def test_closed_loop_counts_concurrency_usage_and_exact_prompts():
    prompts = prompts_for("mixed", n=30, inp=12, out=10)
    seen = []

    async def go():
        async with FakeServer(ttft_s=0.002, itl_s=0.001, tokens_per_chunk=3, keep_bodies=True) as srv:
            recs = await run_load(srv.base_url, "fake-model", prompts, mode="concurrency", concurrency=4,
                                  warmup_requests=3, on_record=seen.append)
            return recs, srv.stats

    recs, stats = run(go())
    assert stats.requests_received == 33  # 3 warm-up + 30 measured, no retries, no extras
    assert stats.max_in_flight == 4  # exactly C in flight, never more
    assert len(recs) == 33 and len(seen) == 33
    assert [r.index for r in recs] == list(range(33))
    assert [r.warmup for r in recs] == [True] * 3 + [False] * 30
    assert all(r.error is None for r in recs)
    # usage comes from the server: 10 tokens in chunks of 3 -> 4 chunks, 10 tokens
    assert all(r.output_tokens == 10 and len(r.chunk_times_s) == 4 for r in recs)
    assert all(r.input_tokens == 12 == r.requested_input_tokens for r in recs)
    # prompts arrive as exact token-id lists; warm-ups are not the measured prompts
    sent = [b["prompt"] for b in stats.request_bodies]
    assert sorted(map(tuple, sent[3:])) == sorted(tuple(ids) for ids, _ in prompts)
    assert sent[:3] == [ids for ids, _ in make_warmup_prompts(prompts, 3)]
    assert not {tuple(p) for p in sent[:3]} & {tuple(ids) for ids, _ in prompts}
    assert all(b["ignore_eos"] is True and b["min_tokens"] == b["max_tokens"] == 10 and b["temperature"] == 0
               for b in stats.request_bodies)
    # warm-ups all ended before the first measured request was sent
    assert max(r.end_s for r in recs[:3]) <= min(r.send_s for r in recs[3:])
    for r in recs:
        assert r.send_s <= r.first_token_s <= r.chunk_times_s[-1] <= r.end_s
    s = summarize(recs)
    assert s.num_ok == 30 and s.valid and s.output_tokens_total == 300 and s.input_tokens_total == 360


def test_prefill_workload_one_token():
    prompts = make_prompts(Workload(kind="prefill", input_tokens=257), 6, seed=1, token_id_low=3, token_id_high=99)

    async def go():
        async with FakeServer() as srv:
            return await run_load(srv.base_url, "fake-model", prompts, mode="concurrency", concurrency=2), srv.stats

    recs, stats = run(go())
    assert stats.prompt_lengths == [257] * 6
    assert all(r.output_tokens == 1 and r.input_tokens == 257 and r.error is None for r in recs)
    s = summarize(recs)
    assert s.tpot_s.mean is None and s.ttft_s.mean is not None


def test_rate_mode_poisson_with_cap():
    prompts = prompts_for("decode", n=25, out=5)
    rate = 400.0

    async def go():
        async with FakeServer(itl_s=0.003) as srv:
            t0 = time.perf_counter()
            recs = await run_load(srv.base_url, "fake-model", prompts, mode="rate", request_rate_per_s=rate,
                                  concurrency=3, seed=11, t0=t0)
            return recs, srv.stats

    recs, stats = run(go())
    assert stats.requests_received == 25 and stats.max_in_flight <= 3
    assert all(r.error is None for r in recs)
    arrivals = poisson_arrivals_s(25, rate, seed=11)
    # no request is sent before its scheduled arrival (sleep never wakes early)
    assert all(r.send_s >= at for r, at in zip(recs, arrivals))


def test_rate_mode_uncapped():
    prompts = prompts_for("mixed", n=15, out=3)

    async def go():
        async with FakeServer(ttft_s=0.05) as srv:
            return await run_load(srv.base_url, "fake-model", prompts, mode="rate", request_rate_per_s=1e6,
                                  warmup_requests=2), srv.stats

    recs, stats = run(go())
    assert stats.requests_received == 17
    assert stats.max_in_flight > 3  # open loop: arrivals do not wait for completions
    assert sum(r.warmup for r in recs) == 2 and sum(r.error is None for r in recs) == 17


def test_http_errors_recorded():
    prompts = prompts_for(n=40, out=2)

    async def go():
        async with FakeServer(error_rate=0.5, seed=1) as srv:
            return await run_load(srv.base_url, "fake-model", prompts, mode="concurrency", concurrency=4), srv.stats

    recs, stats = run(go())
    failed = [r for r in recs if r.error]
    assert len(failed) == stats.requests_errored > 0
    assert all(r.error.startswith("HTTP 500") for r in failed)
    assert not summarize(recs).valid


def test_server_dies_mid_run_exact_with_one_stream():
    prompts = prompts_for("decode", n=50, out=20)

    async def go():
        async with FakeServer(itl_s=0.0005, die_after_requests=5) as srv:
            return await run_load(srv.base_url, "fake-model", prompts, mode="concurrency", concurrency=1)

    recs = run(go())
    assert len(recs) == 50
    assert [r.error is None for r in recs] == [True] * 5 + [False] * 45  # completed ones kept
    assert all(r.output_tokens == 20 for r in recs[:5])
    assert any("not sent: server unreachable" in r.error for r in recs[5:])
    s = summarize(recs)
    assert s.num_ok == 5 and s.num_failed == 45 and not s.valid


def test_server_dies_mid_run_many_streams():
    prompts = prompts_for("decode", n=200, out=30)

    async def go():
        async with FakeServer(itl_s=0.001, die_after_requests=10) as srv:
            return await run_load(srv.base_url, "fake-model", prompts, mode="concurrency", concurrency=8)

    recs = run(go())
    ok = [r for r in recs if r.error is None]
    assert len(recs) == 200
    # the 10th completion kills the server; others in flight at that moment may just have finished
    assert 10 <= len(ok) < 10 + 8
    assert all(r.output_tokens == 30 for r in ok)
    assert all(r.end_s is not None for r in recs)


def test_no_server_at_all_fails_fast():
    import socket

    with socket.socket() as s:  # a port with nobody listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    recs = run(run_load(f"http://127.0.0.1:{port}", "m", prompts_for(n=100), mode="rate", request_rate_per_s=1.0))
    assert len(recs) == 100 and all(r.error for r in recs)
    # once refused, the rest are not sent and not waited for (rate 1/s would otherwise take ~100 s)
    assert recs[-1].end_s < 30


def test_bad_mode_arguments():
    with pytest.raises(ValueError, match="concurrency"):
        run(run_load("http://x", "m", [], mode="concurrency"))
    with pytest.raises(ValueError, match="request_rate_per_s"):
        run(run_load("http://x", "m", [], mode="rate"))
    with pytest.raises(ValueError, match="mode"):
        run(run_load("http://x", "m", [], mode="burst", concurrency=1))


def test_fake_server_metrics_parse():
    from prometheus_client.parser import text_string_to_metric_families

    async def go():
        import aiohttp

        async with FakeServer(params_matmul=1000) as srv:
            await run_load(srv.base_url, "fake-model", prompts_for(n=2, inp=10, out=5), mode="concurrency", concurrency=1)
            async with aiohttp.ClientSession() as s:
                async with s.get(srv.base_url + "/metrics") as r:
                    text = await r.text()
                async with s.get(srv.base_url + "/v1/models") as r:
                    models = await r.json()
                async with s.get(srv.base_url + "/health") as r:
                    health = r.status
            return text, models, health

    text, models, health = run(go())
    samples = {s.name: s.value for fam in text_string_to_metric_families(text) for s in fam.samples}
    assert samples["vllm:estimated_flops_per_gpu_total"] == 2 * 1000 * (2 * 10 + 2 * 5)
    assert samples["vllm:generation_tokens_total"] == 10
    assert models["data"][0]["id"] == "fake-model" and health == 200


def test_fake_server_process_dies_after_requests():
    proc = subprocess.Popen([sys.executable, str(FAKESERVER), "--port", "0", "--die-after-requests", "3"],
                            stdout=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert "listening on" in line
        url = line.split()[-1]
        recs = run(run_load(url, "fake-model", prompts_for(n=10, out=4), mode="concurrency", concurrency=1))
        assert [r.error is None for r in recs] == [True] * 3 + [False] * 7
        assert proc.wait(timeout=20) == 3  # a crash, not a clean exit
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_fake_server_cli_bad_value_exits_2():
    res = subprocess.run([sys.executable, str(FAKESERVER), "--tokens-per-chunk", "0"],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 2 and "tokens_per_chunk" in res.stderr and "Traceback" not in res.stderr


def test_sse_scanner_events_split_across_reads():
    from bench.load.client import SSEScanner

    tok = b'data: {"id":"c","choices":[{"index":0,"text":"x","finish_reason":null}]}\n\n'
    usage = b'data: {"id":"c","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":2}}\n\n'
    stream = b": ping\n\n" + tok + tok + usage + b"data: [DONE]\n\n"
    times: list[float] = []
    scan = SSEScanner(times)
    for i in range(0, len(stream), 7):  # 7-byte reads split every event
        scan.feed(stream[i:i + 7], float(i))
    assert len(times) == 2 and times[0] < times[1]
    assert scan.usage == {"prompt_tokens": 3, "completion_tokens": 2}
    assert scan.done and scan.error is None
    whole: list[float] = []
    one = SSEScanner(whole)
    one.feed(stream, 1.0)  # one read holding both chunks: both get that read's time
    assert whole == [1.0, 1.0] and one.usage["completion_tokens"] == 2


def test_client_timeout_is_an_error_record_and_api_key_is_sent():
    async def go():
        async with FakeServer(ttft_s=30.0, keep_bodies=True) as srv:
            recs = await run_load(srv.base_url, "fake-model", prompts_for(n=2, out=2), mode="concurrency",
                                  concurrency=2, timeout_s=0.3, api_key="sk-test")
            return recs, srv.stats

    recs, stats = run(go())
    assert all(r.error and r.error.startswith("timeout") for r in recs)
    assert stats.authorization_headers == ["Bearer sk-test"] * 2


def test_load_split_across_several_endpoints():
    prompts = prompts_for(n=24, out=4)

    async def go():
        async with FakeServer(itl_s=0.002) as a, FakeServer(itl_s=0.002) as b:
            recs = await run_load([a.base_url, b.base_url], "fake-model", prompts, mode="concurrency", concurrency=4)
            peaks = (a.stats.max_in_flight, b.stats.max_in_flight)
            rate = await run_load([a.base_url, b.base_url], "fake-model", prompts[:10], mode="rate",
                                  request_rate_per_s=200.0)
            return recs, rate, peaks, a.stats, b.stats

    recs, rate, peaks, sa, sb = run(go())
    assert all(r.error is None for r in recs + rate)
    assert sa.requests_completed + sb.requests_completed == 34
    assert peaks == (2, 2)  # the 4 closed-loop streams dealt out 2 + 2
    assert sa.requests_completed >= 5 + 5 and sb.requests_completed >= 5 + 5  # both got a share


def _stall_client_once(seconds: float):
    """An on_record callback that blocks the client's event loop once, after the first record (as the
    client process went unscheduled for seconds on two shared cores)."""
    state = {"done": False}

    def on_record(rec):
        if not state["done"]:
            state["done"] = True
            time.sleep(seconds)

    return on_record


@pytest.mark.parametrize("concurrency", [1, 3])
def test_a_connection_the_server_closed_while_the_client_stalled_is_written_again(concurrency):
    """The server's keep-alive closes the pooled connections while the client stalls; the next
    requests go out on them, fail before any response ('Server disconnected') and are resent once."""
    prompts = prompts_for("decode", n=8, out=3)

    async def go():
        async with FakeServer(keepalive_timeout_s=0.1) as srv:
            recs = await run_load(srv.base_url, "fake-model", prompts, mode="concurrency",
                                  concurrency=concurrency, on_record=_stall_client_once(0.5))
            return recs, srv.stats

    recs, stats = run(go())
    assert all(r.error is None for r in recs), [r.error for r in recs if r.error]
    assert summarize(recs).num_ok == 8
    resent = [r for r in recs if r.resends]
    assert resent and all(r.resends == 1 for r in resent)  # the stale connections, no more
    assert stats.requests_received == 8  # a resent request was never read the first time


def test_resends_are_bounded():
    """A server that closes every connection without answering: each request fails after
    MAX_RESENDS resends, with the error and the count in its record (never an endless loop)."""
    from bench.load import client as C

    prompts = prompts_for("decode", n=3, out=3)
    accepted = []

    async def hang_up(reader, writer):
        accepted.append(1)
        writer.close()

    async def go():
        server = await asyncio.start_server(hang_up, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        async with server:
            return await run_load(f"http://127.0.0.1:{port}", "fake-model", prompts, mode="concurrency",
                                  concurrency=1)

    recs = run(go())
    assert len(recs) == 3 and all(r.error and "disconnected" in r.error.lower() for r in recs), recs
    assert all(r.resends == C.MAX_RESENDS for r in recs)
    assert len(accepted) == 3 * (C.MAX_RESENDS + 1)
