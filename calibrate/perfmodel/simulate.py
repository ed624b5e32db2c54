"""Closed-loop load on a continuous-batching engine, simulated step by step from a step model.

Mirrors what `bench` measures and how vLLM schedules (V1 scheduler, chunked prefill):

* `concurrency` clients each keep one request in flight; when a request ends its client sends the
  next at once (closed loop), until `num_requests` have been sent. All clients start together, as
  bench's measured phase does after its warm-up phase.
* A sent request reaches the engine `request_overhead_s` later (HTTP, tokenising), then waits
  in FIFO order.
* Each step decodes one token for every running sequence and admits waiting prompts while fewer
  than `max_num_seqs` sequences run and the step's token budget (`max_num_batched_tokens`, decode
  tokens first) has room; a prompt larger than the room is prefilled in chunks over several
  steps. A prompt whose last chunk runs in a step emits its first token at the step's end.
* The step's duration is the step model's, for that step's decode count, KV context and prefill.

The figures are computed as `core.metrics.summarize` computes them from a run's records:
duration from the first send to the last end; throughput = tokens / duration; TTFT = first token −
send; TPOT = (end − first token) / (output − 1); ITL = gaps between a request's tokens.
"""

from __future__ import annotations

import heapq
import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

# vLLM's default token budget per step for online serving with chunked prefill (V1 scheduler,
# `--max-num-batched-tokens`); the CPU backend's servers in this repo's runs log it at start-up.
DEFAULT_MAX_BATCHED_TOKENS = 2048
MAX_STEPS = 2_000_000


@dataclass(frozen=True)
class SimResult:
    duration_s: float
    num_requests: int
    input_tokens_per_s: float
    output_tokens_per_s: float
    request_throughput_per_s: float
    ttft_mean_s: float
    ttft_p90_s: float
    tpot_mean_s: float | None
    tpot_p90_s: float | None
    itl_p90_s: float | None
    mean_batch: float
    records: tuple[dict, ...] = ()  # requests.jsonl-like records, when asked for (`trace=True`)


StepFn = Callable[[float, float, float, float], float]  # (decode_seqs, context, prefill tokens, pairs) -> s


class _Req:
    __slots__ = ("i", "p", "g", "send", "ready", "done_prompt", "tokens", "first", "end", "times")

    def __init__(self, i: int, p: int, g: int, send: float, overhead: float):
        self.i, self.p, self.g, self.send, self.ready = i, p, g, send, send + overhead
        self.done_prompt, self.tokens, self.first, self.end = 0, 0, None, None
        self.times: list[float] = []


def _check(concurrency, num_requests, lengths, max_num_seqs, budget):
    if not (isinstance(concurrency, int) and concurrency >= 1):
        raise ValueError(f"concurrency={concurrency!r}: must be an integer >= 1")
    if not (isinstance(num_requests, int) and num_requests >= 1):
        raise ValueError(f"num_requests={num_requests!r}: must be an integer >= 1")
    if not lengths or any(p < 1 or g < 1 for p, g in lengths):
        raise ValueError("every request needs input_tokens >= 1 and output_tokens >= 1")
    if max_num_seqs < 1 or budget < 1:
        raise ValueError(f"max_num_seqs={max_num_seqs!r} and max_num_batched_tokens={budget!r} must be >= 1")


def simulate(
    step_fn: StepFn,
    *,
    concurrency: int,
    num_requests: int,
    lengths: list[tuple[int, int]],
    request_overhead_s: float = 0.0,
    max_num_seqs: int = 256,
    max_num_batched_tokens: int = DEFAULT_MAX_BATCHED_TOKENS,
    trace: bool = False,
) -> SimResult:
    """Simulate the closed loop; request i has (input, output) tokens `lengths[i % len(lengths)]`."""
    _check(concurrency, num_requests, lengths, max_num_seqs, max_num_batched_tokens)
    reqs: list[_Req] = []
    arrivals: list[tuple[float, int]] = []  # (ready time, request) not yet in the waiting queue

    def send(now: float) -> None:
        i = len(reqs)
        if i < num_requests:
            p, g = lengths[i % len(lengths)]
            reqs.append(_Req(i, int(p), int(g), now, request_overhead_s))
            heapq.heappush(arrivals, (reqs[-1].ready, i))

    for _ in range(min(concurrency, num_requests)):
        send(0.0)
    now, waiting, running, batch_sum, steps = 0.0, deque(), [], 0.0, 0
    while arrivals or waiting or running:
        while arrivals and arrivals[0][0] <= now + 1e-12:
            waiting.append(reqs[heapq.heappop(arrivals)[1]])
        if not waiting and not running:
            now = arrivals[0][0]
            continue
        decoding = [r for r in running if r.first is not None]
        room = max_num_batched_tokens - len(decoding)
        chunks: list[tuple[_Req, int]] = []
        for r in [r for r in running if r.first is None]:  # partly prefilled prompts continue first
            take = min(room, r.p - r.done_prompt)
            if take > 0:
                chunks.append((r, take))
                room -= take
        while waiting and len(running) < max_num_seqs and room > 0:
            r = waiting.popleft()
            running.append(r)
            take = min(room, r.p)
            chunks.append((r, take))
            room -= take
        ctx = float(sum(r.p + r.tokens for r in decoding))
        pre = float(sum(t for _, t in chunks))
        pairs = float(sum((r.done_prompt + t) * (r.done_prompt + t + 1) / 2 - r.done_prompt * (r.done_prompt + 1) / 2
                          for r, t in chunks))
        dt = float(step_fn(float(len(decoding)), ctx, pre, pairs))
        if not (dt > 0 and math.isfinite(dt)):
            raise ValueError(f"step model gave a step time of {dt!r} s")
        now += dt
        batch_sum += len(decoding) + len(chunks)
        steps += 1
        if steps > MAX_STEPS:
            raise RuntimeError("simulation did not finish (more than 2e6 engine steps)")
        emitted = decoding + [r for r, t in chunks if r.done_prompt + t == r.p]
        for r, t in chunks:
            r.done_prompt += t
        finished = []
        for r in emitted:
            if r.first is None:
                r.first = now
            r.tokens += 1
            r.times.append(now)
            if r.tokens >= r.g:
                r.end = now
                finished.append(r)
        if finished:
            running = [r for r in running if r.end is None]
            for _ in finished:
                send(now)
    return _summary(reqs, batch_sum / max(steps, 1), trace)


def _record(r: _Req) -> dict:
    return {"index": r.i, "warmup": False, "send_s": r.send, "first_token_s": r.first, "end_s": r.end,
            "chunk_times_s": list(r.times), "input_tokens": r.p, "output_tokens": r.g,
            "requested_input_tokens": r.p, "requested_output_tokens": r.g, "error": None}


def _summary(reqs: list[_Req], mean_batch: float, trace: bool = False) -> SimResult:
    start = min(r.send for r in reqs)
    end = max(r.end for r in reqs)
    dur = end - start
    ttft = np.array([r.first - r.send for r in reqs])
    tpot = np.array([(r.end - r.first) / (r.g - 1) for r in reqs if r.g > 1])
    itl = np.concatenate([np.diff(r.times) for r in reqs if len(r.times) > 1] or [np.zeros(0)])
    return SimResult(
        duration_s=dur,
        num_requests=len(reqs),
        input_tokens_per_s=sum(r.p for r in reqs) / dur,
        output_tokens_per_s=sum(r.g for r in reqs) / dur,
        request_throughput_per_s=len(reqs) / dur,
        ttft_mean_s=float(ttft.mean()),
        ttft_p90_s=float(np.percentile(ttft, 90)),
        tpot_mean_s=float(tpot.mean()) if tpot.size else None,
        tpot_p90_s=float(np.percentile(tpot, 90)) if tpot.size else None,
        itl_p90_s=float(np.percentile(itl, 90)) if itl.size else None,
        mean_batch=mean_batch,
        records=tuple(_record(r) for r in reqs) if trace else (),
    )
