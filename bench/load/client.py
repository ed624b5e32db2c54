"""Async streaming load generator for OpenAI-compatible `/v1/completions` servers (vLLM and others).

What is sent: `prompt` as an exact list of token ids (so input lengths are exact), `max_tokens`,
`temperature=0`, `stream=True`, `stream_options={"include_usage": true}` and, unless
`exact_output=False`, vLLM's `ignore_eos=true` and `min_tokens=max_tokens` so output lengths are
exact too (without them the output length drifts from the request, as seen with vLLM 0.32). Token counts are read
from the server's `usage`, never counted from chunks (one chunk may carry several tokens).

Two ways of loading the server:
  concurrency  closed loop: exactly C requests in flight; a worker sends its next request the
               moment its previous one ended. The connection pool holds C connections, so no
               request waits inside the client after its send time is taken: client-side queueing
               cannot leak into TTFT (vllm #54101).
  rate         open loop: Poisson arrivals, exponential inter-arrival times with mean 1/rate drawn
               from `seed`; optionally capped at `concurrency` in flight (the cap's queueing happens
               before the send time is taken, so it is not in TTFT either).

Per request (core.schema.run.RequestRecord): send time (taken just before the request is written),
the arrival time of every streamed chunk that carried output (a non-empty `choices`, even with empty
text: random-weight models emit partial UTF-8 that the server holds back, as vLLM bench counts it),
first-token time (= the first such chunk), end time (the response complete), usage counts, error.
Times come from `time.perf_counter` (monotonic), relative to the run's start.

Warm-up requests run first (closed loop), are flagged `warmup=True` and excluded by core.metrics.
By default their prompts are the measured prompts reversed: same lengths, but a different prefix, so
vLLM's prefix cache cannot hand a measured request a free prefill.

A stale connection: an HTTP server closes a pooled connection that stayed idle past its keep-alive
timeout (vLLM's uvicorn: VLLM_HTTP_TIMEOUT_KEEP_ALIVE, 5 s by default). On two shared cores the
client process was seen unscheduled for up to 6 s between two requests, so the server had closed
connections the client then wrote to ("Server disconnected", "Can not write request body"). A request
that fails that way before any byte of a response came back was never read by the server: it is
written again on a fresh connection, at most MAX_RESENDS times, its send time taken anew and the
count kept in the record (`resends`). Servers bench starts get a keep-alive of
bench.server.args.KEEP_ALIVE_S, so this is the exception.

A server that dies mid-run: in-flight requests fail with the connection error; once a connection is
refused, every request not yet sent is recorded at once as an error without being sent, so the run
ends promptly and the caller (bench.run.execute) decides the run failed. The same happens when the first
requests of a run all fail with 401, 403, 404 or a refused connection (`fail_fast_reason` names the
status and the likely cause: key, model name, URL): such an endpoint can serve no request.

Stopped by SIGINT/SIGTERM/SIGHUP: the load is cancelled, every request in flight is recorded with
error `INTERRUPTED_ERROR`, the connections are closed (so a server stopped next has no stream to
wait for), and `bench.server.stopping.Interrupted` is raised.

Several endpoints of one deployment: `run_load([url1, url2, ...])` deals the closed loop's streams,
or the open loop's arrivals, round-robin among them.

No command line of its own: `python -m bench run --endpoint URL ...` measures a running server.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Callable, Sequence

import aiohttp
import numpy as np

from bench.load.prompts import (  # noqa: F401 - re-exported
    DEFAULT_DECODE_INPUT_TOKENS,
    DEFAULT_DECODE_OUTPUT_TOKENS,
    DEFAULT_MIXED_INPUT_TOKENS,
    DEFAULT_MIXED_OUTPUT_TOKENS,
    DEFAULT_PREFILL_INPUT_TOKENS,
    Prompt,
    make_prompts,
    make_warmup_prompts,
    read_length_distribution,
    workload_lengths,
)
from bench.server.stopping import Interrupted
from core.schema.run import RequestRecord


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


MAX_RESENDS = 2  # a request whose connection the server closed before answering is written again at most this often
FAIL_FAST_REQUESTS = 3  # the first this many finished requests of a run decide "dead endpoint"
INTERRUPTED_ERROR = "interrupted: the run was stopped (SIGINT/SIGTERM) while this request was in flight"


def failure_kind(error: str | None) -> str | None:
    """The kind of a request error that means the endpoint cannot serve ANY request: "HTTP 401",
    "HTTP 403", "HTTP 404" or "connection refused"; None for other errors (a 500, a timeout, ...)."""
    if not error:
        return None
    for status in ("401", "403", "404"):
        if error.startswith(f"HTTP {status}") or f"endpoint failing (HTTP {status})" in error:
            return f"HTTP {status}"
    if "connection refused" in error.lower():
        return "connection refused"
    return None


_LIKELY_CAUSE = {
    "HTTP 401": "the API key is missing or wrong (give the NAME of the environment variable holding it: --api-key-env)",
    "HTTP 403": "the API key is not allowed to use this server or model (--api-key-env)",
    "HTTP 404": "the model name is not served there (--served-name; GET <url>/v1/models lists the names) "
                "or the URL is not the server's base URL (--endpoint http://host:port)",
    "connection refused": "nothing listens at that URL (check the --endpoint host and port; a server bench started has died)",
}  # fmt: skip


def fail_fast_reason(records: Sequence[RequestRecord], url: str = "the server",
                     n: int = FAIL_FAST_REQUESTS) -> str | None:
    """One line when the first `n` finished requests (by end time; all of them when fewer) failed the
    same way in a way that means every request will (401/403/404/refused); else None."""
    first = sorted(records, key=lambda r: (r.end_s if r.end_s is not None else float("inf"), r.index))[:n]
    if not first:
        return None
    kinds = {failure_kind(r.error) for r in first}
    if len(kinds) != 1 or None in kinds:
        return None
    kind = kinds.pop()
    return f"the first {len(first)} requests to {url} all failed with {kind}: likely {_LIKELY_CAUSE[kind]}"


class _Runner:
    def __init__(self, session, urls: Sequence[str], t0: float, on_record: Callable[[RequestRecord], None] | None,
                 total_jobs: int):
        self.session, self.urls, self.t0, self.on_record = session, list(urls), t0, on_record
        self.records: list[RequestRecord] = []
        self.server_gone: str | None = None  # reason, once a connection was refused
        self.dead_endpoint: str | None = None  # fail_fast_reason, once the first requests decided it
        self._fail_fast_at = min(FAIL_FAST_REQUESTS, total_jobs)

    @property
    def stopped(self) -> str | None:
        """Why no further request is sent (None: keep sending)."""
        if self.dead_endpoint is not None:
            return self.dead_endpoint
        return f"server unreachable ({self.server_gone})" if self.server_gone is not None else None

    def _emit(self, rec: RequestRecord) -> None:
        self.records.append(rec)
        if self.on_record is not None:
            self.on_record(rec)
        if self.dead_endpoint is None and len(self.records) == self._fail_fast_at:
            base = self.urls[0].rsplit("/v1/", 1)[0] if len(self.urls) == 1 else f"{len(self.urls)} endpoints"
            self.dead_endpoint = fail_fast_reason(self.records, base)

    def _unsent(self, job: _Job) -> RequestRecord:
        now = time.perf_counter() - self.t0
        reason = f"endpoint failing ({failure_kind(self.records[0].error)})" if self.dead_endpoint else self.stopped
        return RequestRecord(index=job.index, warmup=job.warmup, send_s=now, end_s=now,
                             requested_input_tokens=job.input_tokens, requested_output_tokens=job.output_tokens,
                             error=f"not sent: {reason}")

    async def request(self, job: _Job, url: str) -> RequestRecord:
        if self.stopped is not None:
            return self._unsent(job)
        resends = 0
        while True:
            rec = await self._try(job, url, resends)
            if rec is not None:
                return rec
            resends += 1

    async def _try(self, job: _Job, url: str, resends: int) -> RequestRecord | None:
        """One try of `job`; None when it should be written again: the connection was closed by the
        server before any byte of a response came back (a stale pooled connection), fewer than
        MAX_RESENDS resends were made, and the run goes on."""
        pc = time.perf_counter
        chunk_times: list[float] = []
        usage = error = None
        responded = False
        send = pc()
        t0 = self.t0
        try:
            async with self.session.post(url, data=job.body) as resp:
                responded = True
                if resp.status != 200:
                    text = (await resp.text(errors="replace"))[:300]
                    error = f"HTTP {resp.status}: {text}"
                else:
                    scan = SSEScanner(chunk_times)
                    feed = scan.feed
                    async for piece in resp.content.iter_any():
                        feed(piece, pc())  # one arrival time per socket read: events read together arrived together
                    usage, error = scan.usage, scan.error
        except asyncio.CancelledError:
            # the run is being stopped: this request was in flight; record it, then let the cancel go on
            end = pc()
            self._emit(RequestRecord(
                index=job.index, warmup=job.warmup, send_s=send - t0,
                first_token_s=chunk_times[0] - t0 if chunk_times else None, end_s=end - t0,
                chunk_times_s=[t - t0 for t in chunk_times], requested_input_tokens=job.input_tokens,
                requested_output_tokens=job.output_tokens, error=INTERRUPTED_ERROR, resends=resends,
            ))  # fmt: skip
            raise
        except asyncio.TimeoutError:
            error = f"timeout: no complete response within the client timeout after {pc() - send:.1f} s"
        except aiohttp.ClientConnectorError as exc:
            error = f"connection failed: {exc}"
            if isinstance(exc.os_error, ConnectionRefusedError):
                self.server_gone = "connection refused"
                if "refused" not in error.lower():
                    error += " (connection refused)"
        except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError) as exc:
            if not responded and resends < MAX_RESENDS and self.stopped is None:
                return None  # never read by the server: write it again on a fresh connection
            error = f"{type(exc).__name__}: {exc}" + (f" (after {resends} resends)" if resends else "")
        except (aiohttp.ClientError, OSError) as exc:
            error = f"{type(exc).__name__}: {exc}"
        end = pc()
        if error is None:
            if not chunk_times:
                error = "stream ended without any output chunk"
            elif usage is None:
                error = "stream ended without usage (server must support stream_options.include_usage)"
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
            resends=resends,
        )

    async def closed_loop(self, jobs: Sequence[_Job], concurrency: int) -> None:
        it = iter(jobs)  # shared by the workers: each pulls its next job only when its last one ended
        urls = self.urls

        async def worker(w: int) -> None:
            url = urls[w % len(urls)]  # several endpoints: the C streams are dealt out among them
            for job in it:
                self._emit(await self.request(job, url))

        await asyncio.gather(*(worker(w) for w in range(min(concurrency, len(jobs)))))

    async def poisson(self, jobs: Sequence[_Job], rate_per_s: float, seed: int, cap: int | None) -> None:
        arrivals = poisson_arrivals_s(len(jobs), rate_per_s, seed)
        sem = asyncio.Semaphore(cap) if cap else None
        urls = self.urls

        async def one(job: _Job, url: str) -> None:
            if sem is None:
                self._emit(await self.request(job, url))
                return
            async with sem:  # waiting here happens before the send time is taken
                self._emit(await self.request(job, url))

        tasks = []
        start = time.perf_counter()
        for i, (job, at) in enumerate(zip(jobs, arrivals)):
            delay = start + at - time.perf_counter()
            if delay > 0 and self.stopped is None:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(job, urls[i % len(urls)])))  # arrivals dealt round-robin
        await asyncio.gather(*tasks)


async def run_load(
    base_url: str | Sequence[str],
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
    stop_signals: Sequence[int] | None = None,
) -> list[RequestRecord]:
    """Send `prompts` to `base_url`/v1/completions and return one record per request, by index.

    `base_url` may be several URLs of one deployment: closed loop, the `concurrency` streams are
    dealt out among them (stream w to URL w mod E); rate mode, arrival i goes to URL i mod E.
    Warm-up requests (indices 0..warmup_requests-1, warmup=True) run first, closed loop at
    `concurrency` (or all at once in rate mode without a cap); measured prompt i gets index
    warmup_requests + i. `on_record(rec)` is called as each request ends (warm-ups included).
    Times are relative to `t0` (a `time.perf_counter()` value; default: this call's start).
    Never raises for a failed request: the error is in its record. When the first requests all fail
    the same hopeless way (fail_fast_reason: 401, 403, 404, connection refused), the rest are recorded
    as not sent at once.

    Stopping: on SIGINT, SIGTERM or SIGHUP (`stop_signals`, default those three; only from the main
    thread) the load is cancelled, each request in flight is recorded with error INTERRUPTED_ERROR
    (through `on_record` too), the connections are closed, and bench.server.stopping.Interrupted is raised.
    """
    _check_load_args(mode, concurrency, request_rate_per_s, warmup_requests, timeout_s)
    bases = [base_url] if isinstance(base_url, str) else list(base_url)
    if not bases:
        raise ValueError("base_url: give at least one URL")
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
    urls = [b.rstrip("/") + "/v1/completions" for b in bases]
    with _StopOnSignals(asyncio.current_task(), stop_signals) as stop:
        try:
            async with aiohttp.ClientSession(connector=connector, timeout=timeout, headers=headers) as session:
                runner = _Runner(session, urls, time.perf_counter() if t0 is None else t0, on_record,
                                 len(warm) + len(measured))
                if warm:
                    await runner.closed_loop(warm, concurrency or len(warm))
                if mode == "concurrency":
                    await runner.closed_loop(measured, concurrency)
                else:
                    await runner.poisson(measured, request_rate_per_s, seed, concurrency)
        except asyncio.CancelledError:
            if stop.signum is None:
                raise  # cancelled by someone else

            raise Interrupted(stop.signum) from None
    return sorted(runner.records, key=lambda r: r.index)


def _check_load_args(mode: str, concurrency: int | None, request_rate_per_s: float | None, warmup_requests: int,
                     timeout_s: float) -> None:
    """ValueError naming the argument for a load that cannot run (run_load's checks, before any request)."""
    if mode not in ("concurrency", "rate"):
        raise ValueError(f"mode must be 'concurrency' or 'rate', got {mode!r}")
    if mode == "concurrency" and (concurrency is None or concurrency < 1):
        raise ValueError(f"concurrency mode needs concurrency >= 1, got {concurrency!r}")
    if mode == "rate" and (request_rate_per_s is None or not 0 < request_rate_per_s < float("inf")):
        raise ValueError(f"rate mode needs a finite request_rate_per_s > 0, got {request_rate_per_s!r}")
    if concurrency is not None and concurrency < 1:
        raise ValueError(f"concurrency must be >= 1, got {concurrency!r}")
    if warmup_requests < 0:
        raise ValueError(f"warmup_requests must be >= 0, got {warmup_requests}")
    if not timeout_s > 0:
        raise ValueError(f"timeout_s must be > 0, got {timeout_s}")


class _StopOnSignals:
    """While the load runs, a stop signal cancels `task` (the run_load coroutine) instead of
    raising at a random point of the event loop; the previous handlers come back afterwards."""

    def __init__(self, task: asyncio.Task | None, signals: Sequence[int] | None):
        import signal as _signal

        self.task, self.signum = task, None
        default = (_signal.SIGINT, _signal.SIGTERM, _signal.SIGHUP)
        self.signals = tuple(default if signals is None else signals)
        self._previous: dict[int, object] = {}

    def _on_signal(self, signum: int) -> None:
        if self.signum is None:
            self.signum = signum
            if self.task is not None:
                self.task.cancel()

    def __enter__(self) -> "_StopOnSignals":
        import signal as _signal
        import threading

        if self.task is None or threading.current_thread() is not threading.main_thread():
            return self
        loop = asyncio.get_running_loop()
        for sig in self.signals:
            try:
                self._previous[sig] = _signal.getsignal(sig)
                loop.add_signal_handler(sig, self._on_signal, sig)
            except (ValueError, RuntimeError, NotImplementedError):
                self._previous.pop(sig, None)
        return self

    def __exit__(self, *exc) -> None:
        import signal as _signal

        if not self._previous:
            return
        loop = asyncio.get_running_loop()
        for sig, prev in self._previous.items():
            loop.remove_signal_handler(sig)
            try:
                _signal.signal(sig, prev if prev is not None else _signal.SIG_DFL)
            except (TypeError, ValueError):
                pass


