"""Client capacity: streamed tokens per second that bench.load.client sustains at 256 concurrent streams,
next to vLLM's own benchmark client (`vllm bench serve`) against the same fake server, plus the
client's timestamp overhead.

    .venv/bin/python benchmarks/client_capacity.py                 # defaults: 256 streams, 1024 x 256 tokens
    .venv/bin/python benchmarks/client_capacity.py --skip-vllm --requests 512

How: for each client a fresh `tests/fakeserver.py` process (so client and server never share
an event loop or a core's time slice by construction), then the client in a child process of its own:
  ours   bench.load.client.run_load, closed loop at --streams, prompts as token ids, 1 token per chunk
  vllm   vllm.benchmarks.serve (what `vllm bench serve` runs): --backend vllm, --dataset-name random,
         --max-concurrency --streams, --request-rate inf, --ignore-eos, a tiny byte-level BPE
         tokenizer trained here (the fake server ignores token identities)
Figures per client:
  wall tok/s         output tokens (server usage) / the client's own measured duration
  tok per CPU-s      output tokens / the client process's CPU seconds during the run (time.process_time
                     around the load loop only): the capacity the client would have on a core of its
                     own, robust to a shared machine and to a server that is the bottleneck
  server CPU share   fake-server CPU seconds (since it listened) / the client's run duration: near
                     1.0 means the server, not the client, limited the wall figure
Timestamp overhead (ours): per-call cost of `append(perf_counter())` and of SSEScanner.feed on one
vLLM-shaped event, and, request by request (matched by prompt ids), the gap between the server's own
perf_counter at writing the first / last chunk and our client's first-chunk / last-chunk times
(same CLOCK_MONOTONIC across processes on Linux), i.e. the delay our recorded times carry.
A "paced" pass (--paced-itl-s, server emits one token per stream every itl) checks that the offered
rate is sustained and that the client-side ITL matches the server's.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
import timeit
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

VLLM_CHUNK = (b'data: {"id":"cmpl-0123456789abcdef","object":"text_completion","created":1763900000,'
              b'"model":"fake-model","choices":[{"index":0,"text":" tok","logprobs":null,'
              b'"finish_reason":null,"stop_reason":null}]}\n\n')


# --------------------------------------------------------------------------- helpers


def build_tokenizer(out_dir: Path) -> Path:
    """A tiny byte-level BPE tokenizer directory loadable by transformers / vLLM (trained here)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    words = "the quick brown fox jumps over a lazy dog while benchmark clients stream many tokens".split()
    corpus = [" ".join(words[(i * 7 + j) % len(words)] for j in range(12)) for i in range(500)]
    trainer = trainers.BpeTrainer(vocab_size=512, special_tokens=["<s>", "</s>"], show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(corpus, trainer)
    out_dir.mkdir(parents=True, exist_ok=True)
    tok.save(str(out_dir / "tokenizer.json"))
    (out_dir / "tokenizer_config.json").write_text(json.dumps(
        {"tokenizer_class": "PreTrainedTokenizerFast", "bos_token": "<s>", "eos_token": "</s>",
         "model_max_length": 1_000_000}))
    (out_dir / "config.json").write_text(json.dumps({"model_type": "llama", "vocab_size": tok.get_vocab_size()}))
    return out_dir


def cpu_s_of(pid: int) -> float | None:
    """utime + stime of a process from /proc (Linux), None where unavailable."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


class FakeServerProcess:
    def __init__(self, itl_s: float, tokens_per_chunk: int = 1):
        self.args = [sys.executable, str(Path(__file__).resolve().parents[1] / "tests" / "fakeserver.py"), "--port", "0", "--itl-s", str(itl_s),
                     "--tokens-per-chunk", str(tokens_per_chunk)]

    def __enter__(self):
        self.proc = subprocess.Popen(self.args, cwd=REPO, stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        if "listening on" not in line:
            self.proc.kill()
            raise RuntimeError(f"fake server did not start: {line!r}")
        self.url = line.split()[-1]
        self.cpu_start_s = cpu_s_of(self.proc.pid)
        return self

    def stats(self) -> dict:
        import urllib.request

        with urllib.request.urlopen(self.url + "/stats", timeout=60) as r:
            return json.load(r)

    def cpu_s(self) -> float | None:
        """CPU seconds the server spent since it started listening (it idles while the client imports)."""
        cpu = cpu_s_of(self.proc.pid)
        return None if cpu is None or self.cpu_start_s is None else cpu - self.cpu_start_s

    def __exit__(self, *exc):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def run_child(args: list[str], timeout_s: float) -> dict:
    res = subprocess.run([sys.executable, __file__, *args], cwd=REPO, capture_output=True, text=True,
                         timeout=timeout_s)
    lines = [ln for ln in res.stdout.splitlines() if ln.startswith("RESULT ")]
    if res.returncode != 0 or not lines:
        tail = "\n".join((res.stderr or res.stdout).strip().splitlines()[-6:])
        return {"error": f"exit {res.returncode}: {tail}"}
    return json.loads(lines[-1][len("RESULT "):])


# --------------------------------------------------------------------------- children


def child_ours(url: str, streams: int, requests: int, input_tokens: int, output_tokens: int) -> dict:
    import gc

    import aiohttp  # noqa: F401  imported before the clock starts, as vLLM's client has it imported
    import numpy as np

    from bench.load.client import make_prompts, run_load
    from core.metrics import summarize
    from core.schema.run import Workload

    prompts = make_prompts(Workload(kind="mixed", input_tokens=input_tokens, output_tokens=output_tokens),
                           requests, seed=0, token_id_low=10, token_id_high=30_000)
    gc.collect()
    gc.freeze()  # as vLLM's client does: the prompts are static, keep them out of GC passes
    t0 = time.perf_counter()
    cpu0 = time.process_time()
    records = asyncio.run(run_load(url, "fake-model", prompts, mode="concurrency", concurrency=streams, t0=t0))
    cpu = time.process_time() - cpu0
    s = summarize(records)

    import urllib.request

    with urllib.request.urlopen(url + "/stats", timeout=60) as r:
        server = json.load(r)
    by_key = {tuple(k): (recv, first, last) for recv, first, last, k in server["timings_s"]}
    first_gap, last_gap = [], []
    for (ids, _), rec in zip(prompts, records):
        srv = by_key.get(tuple(ids[:4]))
        if srv and rec.error is None:
            first_gap.append(t0 + rec.first_token_s - srv[1])
            last_gap.append(t0 + rec.chunk_times_s[-1] - srv[2])
    q = lambda a, p: float(np.percentile(a, p)) if a else None  # noqa: E731
    return {
        "ok": s.num_ok, "failed": s.num_failed, "duration_s": s.duration_s,
        "output_tokens": s.output_tokens_total, "chunks": sum(len(r.chunk_times_s) for r in records),
        "tokens_per_s": s.output_tokens_per_s, "cpu_s": cpu,
        "ttft_p50_s": s.ttft_s.p50, "itl_p50_s": s.itl_s.p50, "itl_p99_s": s.itl_s.p99, "tpot_mean_s": s.tpot_s.mean,
        "first_chunk_gap_p50_s": q(first_gap, 50), "first_chunk_gap_p99_s": q(first_gap, 99),
        "last_chunk_gap_p50_s": q(last_gap, 50), "last_chunk_gap_p99_s": q(last_gap, 99),
        "matched": len(first_gap),
    }


def child_vllm(url: str, streams: int, requests: int, input_tokens: int, output_tokens: int, tokenizer: str) -> dict:
    import contextlib
    import io

    import vllm.benchmarks.serve as vserve
    from vllm.utils.argparse_utils import FlexibleArgumentParser

    parser = FlexibleArgumentParser()
    vserve.add_cli_args(parser)
    args = parser.parse_args([
        "--backend", "vllm", "--base-url", url, "--endpoint", "/v1/completions",
        "--model", "fake-model", "--tokenizer", tokenizer,
        "--dataset-name", "random", "--random-input-len", str(input_tokens),
        "--random-output-len", str(output_tokens), "--random-range-ratio", "0",
        "--num-prompts", str(requests), "--max-concurrency", str(streams), "--request-rate", "inf",
        "--ignore-eos", "--temperature", "0", "--disable-tqdm", "--num-warmups", "0",
        "--percentile-metrics", "ttft,tpot,itl", "--metric-percentiles", "50,99", "--seed", "0",
    ])
    cpu_box = {}
    original = vserve.benchmark

    async def timed_benchmark(*a, **kw):  # CPU of the load loop only, as for our client
        cpu0 = time.process_time()
        try:
            return await original(*a, **kw)
        finally:
            cpu_box["cpu_s"] = time.process_time() - cpu0

    vserve.benchmark = timed_benchmark
    with contextlib.redirect_stdout(io.StringIO()):
        res = vserve.main(args)
    return {
        "ok": res["completed"], "failed": res.get("failed", requests - res["completed"]),
        "duration_s": res["duration"], "output_tokens": res["total_output_tokens"],
        "tokens_per_s": res["output_throughput"], "cpu_s": cpu_box.get("cpu_s"),
        "ttft_p50_s": res["median_ttft_ms"] / 1e3, "itl_p50_s": res["median_itl_ms"] / 1e3,
        "itl_p99_s": res["p99_itl_ms"] / 1e3, "tpot_mean_s": res["mean_tpot_ms"] / 1e3,
    }


# --------------------------------------------------------------------------- micro-benchmarks


def timestamp_overhead() -> dict:
    from bench.load.client import SSEScanner

    n = 200_000
    times: list[float] = []
    append, pc = times.append, time.perf_counter
    # CPU time, not wall time: on a shared machine the wall clock also counts other processes' slices
    cpu = time.process_time
    append_s = min(timeit.repeat(lambda: append(pc()), number=n, repeat=5, timer=cpu)) / n
    times.clear()
    scan = SSEScanner(times)
    feed = scan.feed
    feed_s = min(timeit.repeat(lambda: feed(VLLM_CHUNK, 0.0), number=n, repeat=5, timer=cpu)) / n
    json_s = min(timeit.repeat(lambda: json.loads(VLLM_CHUNK[6:]), number=n, repeat=5, timer=cpu)) / n
    return {"perf_counter_append_s": append_s, "sse_feed_per_event_s": feed_s, "json_loads_per_event_s": json_s}


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--streams", type=int, default=256)
    p.add_argument("--requests", type=int, default=1024)
    p.add_argument("--input-tokens", type=int, default=32)
    p.add_argument("--output-tokens", type=int, default=256)
    p.add_argument("--paced-itl-s", type=float, default=0.02, help="0 skips the paced pass")
    p.add_argument("--paced-output-tokens", type=int, default=64)
    p.add_argument("--skip-vllm", action="store_true")
    p.add_argument("--timeout-s", type=float, default=900)
    p.add_argument("--_child", choices=["ours", "vllm"], help=argparse.SUPPRESS)
    p.add_argument("--_url", help=argparse.SUPPRESS)
    p.add_argument("--_tokenizer", help=argparse.SUPPRESS)
    args = p.parse_args(argv)

    if args._child:
        common = (args._url, args.streams, args.requests, args.input_tokens, args.output_tokens)
        res = child_ours(*common) if args._child == "ours" else child_vllm(*common, args._tokenizer)
        print("RESULT " + json.dumps(res))
        return 0

    for name in ("streams", "requests", "input_tokens", "output_tokens"):
        if getattr(args, name) < 1:
            print(f"error: --{name.replace('_', '-')} must be >= 1", file=sys.stderr)
            return 2

    print(f"client capacity: {args.streams} streams, {args.requests} requests x {args.output_tokens} output tokens "
          f"(input {args.input_tokens}), fake server in its own process, 1 token per chunk; "
          f"{os.cpu_count()} CPUs; load average {os.getloadavg()[0]:.1f}", flush=True)
    micro = timestamp_overhead()

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tok_dir = str(build_tokenizer(Path(tmp) / "tokenizer"))
        passes = [("saturating", 0.0, args.output_tokens, args.requests)]
        if args.paced_itl_s > 0:
            paced_requests = max(args.streams, args.requests // 2)
            passes.append((f"paced {args.paced_itl_s * 1e3:g} ms", args.paced_itl_s, args.paced_output_tokens,
                           paced_requests))
        clients = ["ours"] + ([] if args.skip_vllm else ["vllm"])
        for label, itl_s, out_tokens, n_req in passes:
            for client in clients:
                with FakeServerProcess(itl_s) as srv:
                    child_args = ["--_child", client, "--_url", srv.url, "--_tokenizer", tok_dir,
                                  "--streams", str(args.streams), "--requests", str(n_req),
                                  "--input-tokens", str(args.input_tokens), "--output-tokens", str(out_tokens)]
                    res = run_child(child_args, args.timeout_s)
                    server_cpu_s = srv.cpu_s()
                    res["server_cpu_share"] = (server_cpu_s / res["duration_s"]
                                               if server_cpu_s is not None and res.get("duration_s") else None)
                res.update(client=client, pass_=label, itl_s=itl_s)
                rows.append(res)
                print(f"  done: {label} / {client}: " + (res.get("error") or f"{res['tokens_per_s']:.0f} tok/s"),
                      flush=True)

    def f(v, scale=1.0, fmt="{:.0f}"):
        return "-" if v is None else fmt.format(v * scale)

    print()
    print("| pass | client | ok/failed | wall tok/s | tok per client CPU-s | client CPU-s | server CPU share "
          "| TTFT p50 ms | ITL p50 ms | ITL p99 ms | TPOT mean ms |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        name = "bench.load.client" if r["client"] == "ours" else "vllm bench serve"
        if "error" in r:
            print(f"| {r['pass_']} | {name} | could not run: {r['error'].splitlines()[-1][:160]} |")
            continue
        per_cpu = r["output_tokens"] / r["cpu_s"] if r.get("cpu_s") else None
        print(f"| {r['pass_']} | {name} | {r['ok']}/{r['failed']} | {f(r['tokens_per_s'])} | {f(per_cpu)} "
              f"| {f(r.get('cpu_s'), fmt='{:.2f}')} | {f(r['server_cpu_share'], fmt='{:.2f}')} "
              f"| {f(r['ttft_p50_s'], 1e3, '{:.1f}')} | {f(r['itl_p50_s'], 1e3, '{:.2f}')} "
              f"| {f(r['itl_p99_s'], 1e3, '{:.2f}')} | {f(r['tpot_mean_s'], 1e3, '{:.3f}')} |")
    print()
    print("timestamp overhead of bench.load.client (best of 5, this machine):")
    print(f"  perf_counter() + list.append per chunk: {micro['perf_counter_append_s'] * 1e9:.0f} ns")
    print(f"  SSEScanner.feed, one vLLM-shaped event per read: {micro['sse_feed_per_event_s'] * 1e9:.0f} ns "
          f"(json.loads of the same event: {micro['json_loads_per_event_s'] * 1e9:.0f} ns)")
    for r in rows:
        if r["client"] == "ours" and "error" not in r and r.get("matched"):
            print(f"  {r['pass_']}: client time - server write time, first chunk p50/p99 "
                  f"{f(r['first_chunk_gap_p50_s'], 1e3, '{:.2f}')}/{f(r['first_chunk_gap_p99_s'], 1e3, '{:.2f}')} ms, "
                  f"last chunk p50/p99 {f(r['last_chunk_gap_p50_s'], 1e3, '{:.2f}')}/"
                  f"{f(r['last_chunk_gap_p99_s'], 1e3, '{:.2f}')} ms ({r['matched']} requests matched)")
    ours = {r["pass_"]: r for r in rows if r["client"] == "ours" and "error" not in r}
    theirs = {r["pass_"]: r for r in rows if r["client"] == "vllm" and "error" not in r}
    for label in ours.keys() & theirs.keys():
        a, b = ours[label], theirs[label]
        if a.get("cpu_s") and b.get("cpu_s"):
            ratio = (a["output_tokens"] / a["cpu_s"]) / (b["output_tokens"] / b["cpu_s"])
            print(f"  {label}: bench.load.client streams {ratio:.2f}x the tokens per CPU-second of vLLM's client; "
                  f"wall throughput ratio {a['tokens_per_s'] / b['tokens_per_s']:.2f}x")
    print("(figures measured on a shared 2-core machine under other load unless stated otherwise)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
