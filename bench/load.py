"""Async streaming load generator for OpenAI-compatible `/v1/completions` servers (vLLM and others).

What is sent: `prompt` as an exact list of token ids (so input lengths are exact), `max_tokens`,
`temperature=0`, `stream=True`, `stream_options={"include_usage": true}` and, unless
`exact_output=False`, vLLM's `ignore_eos=true` and `min_tokens=max_tokens` so output lengths are
exact too (FACTS.md: output length drifts from the request without them). Token counts are read
from the server's `usage`, never counted from chunks (one chunk may carry several tokens).

Two ways of loading the server:
  concurrency  closed loop: exactly C requests in flight; a worker sends its next request the
               moment its previous one ended. The connection pool holds C connections, so no
               request waits inside the client after its send time is taken: client-side queueing
               cannot leak into TTFT (vllm #54101).
  rate         open loop: Poisson arrivals, exponential inter-arrival times with mean 1/rate drawn
               from `seed`; optionally capped at `concurrency` in flight (the cap's queueing happens
               before the send time is taken, so it is not in TTFT either).

Per request (bench.schema.RequestRecord): send time (taken just before the request is written),
the arrival time of every streamed chunk that carried output (a non-empty `choices`, even with empty
text: random-weight models emit partial UTF-8 that the server holds back, as vLLM bench counts it),
first-token time (= the first such chunk), end time (the response complete), usage counts, error.
Times come from `time.perf_counter` (monotonic), relative to the run's start.

Warm-up requests run first (closed loop), are flagged `warmup=True` and excluded by bench.metrics.
By default their prompts are the measured prompts reversed: same lengths, but a different prefix, so
vLLM's prefix cache cannot hand a measured request a free prefill.

A server that dies mid-run: in-flight requests fail with the connection error; once a connection is
refused, every request not yet sent is recorded at once as an error without being sent, so the run
ends promptly and the caller (bench.run) decides the run failed.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import aiohttp
import numpy as np

from bench.schema import RequestRecord, Workload

Prompt = tuple[list[int], int]  # (prompt token ids, max_tokens)

DEFAULT_PREFILL_INPUT_TOKENS = 512
DEFAULT_DECODE_INPUT_TOKENS = 8
DEFAULT_DECODE_OUTPUT_TOKENS = 256
DEFAULT_MIXED_INPUT_TOKENS = 70  # LMSYS-Chat means used by the paper (Sardana et al. 2024, Table 3)
DEFAULT_MIXED_OUTPUT_TOKENS = 215

_DIST_COLUMNS = (("input_tokens", "output_tokens"), ("input", "output"), ("prompt_tokens", "completion_tokens"))


# --------------------------------------------------------------------------- prompts


def read_length_distribution(path: str | os.PathLike) -> list[tuple[int, int]]:
    """(input_tokens, output_tokens) pairs from a CSV (with a header) or a JSONL file.

    Column/key names accepted: input_tokens/output_tokens, input/output, prompt_tokens/completion_tokens.
    """
    p = Path(path)
    if not p.is_file():
        raise ValueError(f"distribution file {str(p)!r} does not exist")
    if p.suffix.lower() in (".jsonl", ".ndjson"):
        rows = [json.loads(line) for line in p.read_text().splitlines() if line.strip()]
    elif p.suffix.lower() == ".csv":
        with p.open(newline="") as fh:
            rows = list(csv.DictReader(fh))
    else:
        raise ValueError(f"distribution file {str(p)!r}: suffix must be .csv or .jsonl")
    if not rows:
        raise ValueError(f"distribution file {str(p)!r} holds no rows")
    keys = next((k for k in _DIST_COLUMNS if k[0] in rows[0] and k[1] in rows[0]), None)
    if keys is None:
        allowed = ", ".join("/".join(k) for k in _DIST_COLUMNS)
        raise ValueError(f"distribution file {str(p)!r}: columns {sorted(rows[0])} lack one of the pairs {allowed}")
    pairs = []
    for i, row in enumerate(rows):
        try:
            a, b = int(row[keys[0]]), int(row[keys[1]])
        except (TypeError, ValueError) as exc:
            raise ValueError(f"distribution file {str(p)!r} row {i + 1}: {exc}") from None
        if a < 1 or b < 1:
            raise ValueError(f"distribution file {str(p)!r} row {i + 1}: lengths must be >= 1, got ({a}, {b})")
        pairs.append((a, b))
    return pairs


def workload_lengths(workload: Workload, n: int, rng: np.random.Generator) -> list[tuple[int, int]]:
    """n (input_tokens, output_tokens) pairs for a workload (defaults in the module constants)."""
    if workload.kind == "prefill":
        return [(workload.input_tokens or DEFAULT_PREFILL_INPUT_TOKENS, 1)] * n
    if workload.kind == "decode":
        return [(workload.input_tokens or DEFAULT_DECODE_INPUT_TOKENS,
                 workload.output_tokens or DEFAULT_DECODE_OUTPUT_TOKENS)] * n
    if workload.kind == "mixed":
        return [(workload.input_tokens or DEFAULT_MIXED_INPUT_TOKENS,
                 workload.output_tokens or DEFAULT_MIXED_OUTPUT_TOKENS)] * n
    if workload.kind == "distribution":
        if not workload.distribution_file:
            raise ValueError("workload kind 'distribution' needs distribution_file")
        pairs = read_length_distribution(workload.distribution_file)
        picks = rng.integers(0, len(pairs), size=n)  # with replacement, reproducible from the seed
        return [pairs[i] for i in picks]
    raise ValueError(f"unknown workload kind {workload.kind!r}")


def make_prompts(workload: Workload, n: int, *, seed: int, token_id_low: int, token_id_high: int) -> list[Prompt]:
    """n prompts as (token ids, max_tokens); ids uniform in [token_id_low, token_id_high).

    Random ids make every prompt differ from its first token, so the server's prefix cache finds
    nothing to reuse between requests. Keep token_id_low above the tokenizer's special tokens.
    """
    if n < 0:
        raise ValueError(f"number of prompts must be >= 0, got {n}")
    if not 0 <= token_id_low < token_id_high:
        raise ValueError(f"token id range must satisfy 0 <= low < high, got [{token_id_low}, {token_id_high})")
    rng = np.random.default_rng(seed)
    lengths = workload_lengths(workload, n, rng)
    return [(rng.integers(token_id_low, token_id_high, size=inp).tolist(), out) for inp, out in lengths]


def make_warmup_prompts(prompts: Sequence[Prompt], n: int) -> list[Prompt]:
    """n warm-up prompts: the measured prompts (cycled) reversed, so same shapes, different prefixes."""
    if n and not prompts:
        raise ValueError("warm-up prompts need at least one measured prompt to copy the shape of")
    return [(list(reversed(prompts[i % len(prompts)][0])), prompts[i % len(prompts)][1]) for i in range(n)]


def request_body(model: str, prompt_ids: list[int], max_tokens: int, *, exact_output: bool = True) -> bytes:
    """The JSON body of one streamed completion request (encoded before the run, off the hot path)."""
    body = {
        "model": model,
        "prompt": prompt_ids,
        "max_tokens": max_tokens,
        "temperature": 0,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    if exact_output:  # vLLM sampling extensions: generate exactly max_tokens
        body["ignore_eos"] = True
        body["min_tokens"] = max_tokens
    return json.dumps(body, separators=(",", ":")).encode()


def api_key_from_env(var: str | None) -> str | None:
    """The API key held in environment variable `var` (never written anywhere); None when var is None."""
    if var is None:
        return None
    key = os.environ.get(var)
    if not key:
        raise ValueError(f"environment variable {var!r} (named by --api-key-env) is not set or empty")
    return key


# --------------------------------------------------------------------------- SSE parsing


def classify_event(data: bytes) -> tuple[bool, dict | None, str | None]:
    """(carries_output, usage, error) for one SSE `data:` payload (not `[DONE]`).

    Hot path: vLLM's compact token chunk is recognised by two substring tests without JSON
    decoding; anything else (the usage chunk, errors, other servers' spacing) is decoded. A key in
    raw bytes cannot come from inside a JSON string, where quotes are escaped.
    """
    if b'"choices":[{' in data and b'"usage":{' not in data:
        return True, None, None
    try:
        obj = json.loads(data)
    except ValueError:
        return False, None, f"malformed stream event: {data[:200]!r}"
    if not isinstance(obj, dict):
        return False, None, f"unexpected stream event: {data[:200]!r}"
    if "error" in obj or obj.get("object") == "error":
        err = obj.get("error", obj)
        msg = err.get("message", err) if isinstance(err, dict) else err
        return False, None, f"server error in stream: {msg}"
    usage = obj.get("usage")
    return bool(obj.get("choices")), usage if isinstance(usage, dict) else None, None


class SSEScanner:
    """Incremental parser of a `text/event-stream` body: appends the arrival time of every event
    carrying output to `chunk_times`, keeps the last usage and the first error.

    The hot path (a compact vLLM token chunk) costs one slice compare and two substring searches per
    event, with no JSON decoding; benchmarks/client_capacity.py measures it.
    """

    __slots__ = ("_buf", "_append", "usage", "error", "done")

    def __init__(self, chunk_times: list[float]):
        self._buf = b""
        self._append = chunk_times.append
        self.usage: dict | None = None
        self.error: str | None = None
        self.done = False

    def feed(self, piece: bytes, now: float) -> None:
        if self._buf:
            piece = self._buf + piece
        lines = piece.split(b"\n")
        self._buf = lines.pop()  # an incomplete last line waits for the next read
        append = self._append
        for line in lines:
            if line[:5] != b"data:":
                continue  # blank separator lines, SSE comments / pings
            data = line[6:] if line[5:6] == b" " else line[5:]
            if b'"choices":[{' in data and b'"usage":{' not in data:
                append(now)  # hot path: a compact token chunk
                continue
            if data == b"[DONE]":
                self.done = True
                continue
            has_output, usage, err = classify_event(data)
            if has_output:
                append(now)
            if usage is not None:
                self.usage = usage
            if err is not None and self.error is None:
                self.error = err


# --------------------------------------------------------------------------- the client


def poisson_arrivals_s(n: int, rate_per_s: float, seed: int) -> np.ndarray:
    """Arrival offsets of a Poisson process: exponential gaps with mean 1/rate (seeded), first at 0."""
    if not rate_per_s > 0:
        raise ValueError(f"request rate must be > 0 per second, got {rate_per_s!r}")
    gaps = np.random.default_rng(seed).exponential(1.0 / rate_per_s, size=n)
    return np.concatenate(([0.0], np.cumsum(gaps)[:-1])) if n else gaps


class _Job:
    __slots__ = ("index", "body", "input_tokens", "output_tokens", "warmup")

    def __init__(self, index: int, body: bytes, input_tokens: int, output_tokens: int, warmup: bool):
        self.index, self.body, self.warmup = index, body, warmup
        self.input_tokens, self.output_tokens = input_tokens, output_tokens


class _Runner:
    def __init__(self, session, url: str, t0: float, on_record: Callable[[RequestRecord], None] | None):
        self.session, self.url, self.t0, self.on_record = session, url, t0, on_record
        self.records: list[RequestRecord] = []
        self.server_gone: str | None = None  # reason, once a connection was refused

    def _emit(self, rec: RequestRecord) -> None:
        self.records.append(rec)
        if self.on_record is not None:
            self.on_record(rec)

    def _unsent(self, job: _Job) -> RequestRecord:
        now = time.perf_counter() - self.t0
        return RequestRecord(index=job.index, warmup=job.warmup, send_s=now, end_s=now,
                             requested_input_tokens=job.input_tokens, requested_output_tokens=job.output_tokens,
                             error=f"not sent: server unreachable ({self.server_gone})")

    async def request(self, job: _Job) -> RequestRecord:
        if self.server_gone is not None:
            return self._unsent(job)
        pc = time.perf_counter
        chunk_times: list[float] = []
        usage = error = None
        send = pc()
        try:
            async with self.session.post(self.url, data=job.body) as resp:
                if resp.status != 200:
                    text = (await resp.text(errors="replace"))[:300]
                    error = f"HTTP {resp.status}: {text}"
                else:
                    scan = SSEScanner(chunk_times)
                    feed = scan.feed
                    async for piece in resp.content.iter_any():
                        feed(piece, pc())  # one arrival time per socket read: events read together arrived together
                    usage, error = scan.usage, scan.error
        except asyncio.TimeoutError:
            error = f"timeout: no complete response within the client timeout after {pc() - send:.1f} s"
        except aiohttp.ClientConnectorError as exc:
            error = f"connection failed: {exc}"
            if isinstance(exc.os_error, ConnectionRefusedError):
                self.server_gone = "connection refused"
        except (aiohttp.ClientError, OSError) as exc:
            error = f"{type(exc).__name__}: {exc}"
        end = pc()
        if error is None:
            if not chunk_times:
                error = "stream ended without any output chunk"
            elif usage is None:
                error = "stream ended without usage (server must support stream_options.include_usage)"
        t0 = self.t0
        return RequestRecord(
            index=job.index,
            warmup=job.warmup,
            send_s=send - t0,
            first_token_s=chunk_times[0] - t0 if chunk_times else None,
            end_s=end - t0,
            chunk_times_s=[t - t0 for t in chunk_times],
            input_tokens=usage.get("prompt_tokens") if usage else None,
            output_tokens=usage.get("completion_tokens") if usage else None,
            requested_input_tokens=job.input_tokens,
            requested_output_tokens=job.output_tokens,
            error=error,
        )

    async def closed_loop(self, jobs: Sequence[_Job], concurrency: int) -> None:
        it = iter(jobs)  # shared by the workers: each pulls its next job only when its last one ended

        async def worker() -> None:
            for job in it:
                self._emit(await self.request(job))

        await asyncio.gather(*(worker() for _ in range(min(concurrency, len(jobs)))))

    async def poisson(self, jobs: Sequence[_Job], rate_per_s: float, seed: int, cap: int | None) -> None:
        arrivals = poisson_arrivals_s(len(jobs), rate_per_s, seed)
        sem = asyncio.Semaphore(cap) if cap else None

        async def one(job: _Job) -> None:
            if sem is None:
                self._emit(await self.request(job))
                return
            async with sem:  # waiting here happens before the send time is taken
                self._emit(await self.request(job))

        tasks = []
        start = time.perf_counter()
        for job, at in zip(jobs, arrivals):
            delay = start + at - time.perf_counter()
            if delay > 0 and self.server_gone is None:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(job)))
        await asyncio.gather(*tasks)


async def run_load(
    base_url: str,
    model: str,
    prompts: Sequence[Prompt],
    *,
    mode: str,
    concurrency: int | None = None,
    request_rate_per_s: float | None = None,
    warmup_requests: int = 0,
    seed: int = 0,
    api_key: str | None = None,
    timeout_s: float = 600,
    on_record: Callable[[RequestRecord], None] | None = None,
    warmup_prompts: Sequence[Prompt] | None = None,
    exact_output: bool = True,
    t0: float | None = None,
) -> list[RequestRecord]:
    """Send `prompts` to `base_url`/v1/completions and return one record per request, by index.

    Warm-up requests (indices 0..warmup_requests-1, warmup=True) run first, closed loop at
    `concurrency` (or all at once in rate mode without a cap); measured prompt i gets index
    warmup_requests + i. `on_record(rec)` is called as each request ends (warm-ups included).
    Times are relative to `t0` (a `time.perf_counter()` value; default: this call's start).
    Never raises for a failed request: the error is in its record.
    """
    if mode not in ("concurrency", "rate"):
        raise ValueError(f"mode must be 'concurrency' or 'rate', got {mode!r}")
    if mode == "concurrency" and (concurrency is None or concurrency < 1):
        raise ValueError(f"concurrency mode needs concurrency >= 1, got {concurrency!r}")
    if mode == "rate" and (request_rate_per_s is None or not request_rate_per_s > 0):
        raise ValueError(f"rate mode needs request_rate_per_s > 0, got {request_rate_per_s!r}")
    if concurrency is not None and concurrency < 1:
        raise ValueError(f"concurrency must be >= 1, got {concurrency!r}")
    if warmup_requests < 0:
        raise ValueError(f"warmup_requests must be >= 0, got {warmup_requests}")
    if not timeout_s > 0:
        raise ValueError(f"timeout_s must be > 0, got {timeout_s}")
    if warmup_prompts is None:
        warmup_prompts = make_warmup_prompts(prompts, warmup_requests)
    elif len(warmup_prompts) < warmup_requests:
        raise ValueError(f"{warmup_requests} warm-up requests asked for but only {len(warmup_prompts)} warm-up prompts")

    def job(index: int, prompt: Prompt, warmup: bool) -> _Job:
        ids, max_tokens = prompt
        return _Job(index, request_body(model, ids, max_tokens, exact_output=exact_output), len(ids), max_tokens, warmup)

    warm = [job(i, p, True) for i, p in enumerate(warmup_prompts[:warmup_requests])]
    measured = [job(warmup_requests + i, p, False) for i, p in enumerate(prompts)]

    # Enough pooled connections that no request ever waits for one after its send time is taken.
    limit = concurrency if concurrency is not None else 0  # 0 = unlimited (open-loop rate mode)
    connector = aiohttp.TCPConnector(limit=limit, limit_per_host=0, ttl_dns_cache=None)
    timeout = aiohttp.ClientTimeout(total=timeout_s, sock_connect=min(timeout_s, 30.0))
    headers = {"Content-Type": "application/json"}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    url = base_url.rstrip("/") + "/v1/completions"
    async with aiohttp.ClientSession(connector=connector, timeout=timeout, headers=headers) as session:
        runner = _Runner(session, url, time.perf_counter() if t0 is None else t0, on_record)
        if warm:
            await runner.closed_loop(warm, concurrency or len(warm))
        if mode == "concurrency":
            await runner.closed_loop(measured, concurrency)
        else:
            await runner.poisson(measured, request_rate_per_s, seed, concurrency)
    return sorted(runner.records, key=lambda r: r.index)


# --------------------------------------------------------------------------- CLI


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m bench.load",
        description="Stream a workload at an OpenAI-compatible /v1/completions server and print the summary.",
        epilog="example: python -m bench.load --base-url http://127.0.0.1:8000 --model m --workload mixed "
        "-n 200 --concurrency 16 --token-id-range 10 2000 --out requests.jsonl",
    )
    p.add_argument("--base-url", required=True)
    p.add_argument("--model", required=True, help="served model name")
    p.add_argument("--workload", choices=["prefill", "decode", "mixed", "distribution"], default="mixed")
    p.add_argument("--input-tokens", type=int, default=None)
    p.add_argument("--output-tokens", type=int, default=None)
    p.add_argument("--distribution-file", default=None)
    p.add_argument("-n", "--num-requests", type=int, default=100)
    p.add_argument("--concurrency", type=int, default=None, help="closed loop (or a cap with --request-rate)")
    p.add_argument("--request-rate", type=float, default=None, help="Poisson arrivals per second")
    p.add_argument("--warmup", type=int, default=0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--token-id-range", type=int, nargs=2, default=(10, 1000), metavar=("LOW", "HIGH"))
    p.add_argument("--api-key-env", default=None, help="name of the environment variable holding the API key")
    p.add_argument("--timeout-s", type=float, default=600)
    p.add_argument("--slo-ttft-s", type=float, default=None)
    p.add_argument("--slo-tpot-s", type=float, default=None)
    p.add_argument("--out", default=None, help="write requests.jsonl here (must not exist)")
    return p


def main(argv: list[str] | None = None) -> int:
    from bench.metrics import summarize

    args = build_parser().parse_args(argv)
    try:
        if args.request_rate is None and args.concurrency is None:
            raise ValueError("give --concurrency or --request-rate")
        if args.out and Path(args.out).exists():
            raise ValueError(f"--out {args.out!r} exists; nothing measured is overwritten")
        workload = Workload(kind=args.workload, input_tokens=args.input_tokens, output_tokens=args.output_tokens,
                            distribution_file=args.distribution_file)
        prompts = make_prompts(workload, args.num_requests, seed=args.seed,
                               token_id_low=args.token_id_range[0], token_id_high=args.token_id_range[1])
        api_key = api_key_from_env(args.api_key_env)
        mode = "rate" if args.request_rate is not None else "concurrency"
        records = asyncio.run(run_load(args.base_url, args.model, prompts, mode=mode, concurrency=args.concurrency,
                                       request_rate_per_s=args.request_rate, warmup_requests=args.warmup,
                                       seed=args.seed, api_key=api_key, timeout_s=args.timeout_s))
        summary = summarize(records, slo_ttft_s=args.slo_ttft_s, slo_tpot_s=args.slo_tpot_s)
    except ValueError as exc:  # pydantic's ValidationError is a ValueError too
        print(f"error: {str(exc).splitlines()[0]}", file=sys.stderr)
        return 2
    ms = lambda v: "-" if v is None else f"{v * 1e3:.2f}"  # noqa: E731
    print(f"ok {summary.num_ok}  failed {summary.num_failed}  valid {summary.valid}  duration {summary.duration_s:.2f} s")
    print(f"output {summary.output_tokens_per_s:.1f} tok/s  input {summary.input_tokens_per_s:.1f} tok/s  "
          f"requests {summary.request_throughput_per_s:.2f}/s")
    for name in ("ttft_s", "tpot_s", "itl_s", "e2e_s"):
        pc = getattr(summary, name)
        print(f"{name[:-2]:>5} ms  mean {ms(pc.mean)}  p50 {ms(pc.p50)}  p90 {ms(pc.p90)}  p99 {ms(pc.p99)}")
    if args.out:
        tmp = Path(args.out).with_suffix(".tmp")
        tmp.write_text("".join(r.model_dump_json() + "\n" for r in records))
        os.replace(tmp, args.out)
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
