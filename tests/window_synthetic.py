"""Synthetic closed-loop traces of a step-based engine with known per-token costs, and the window
estimator calibrate used before issue 10 (kept here as the failing case that motivates the fix).

The engine (vLLM-like continuous batching): every step decodes one token for each running
sequence and prefills waiting prompts first-come first-served up to a token budget; a step costs
a x (prompt tokens prefilled) + b x (decode tokens) seconds, and every token of a step arrives at
its end. A prompt's first output token comes out of its prefill step. The client keeps C requests
in flight and sends the next one `client_delay_s` after a completion. The truth is a and b: the
device time of any set of whole steps is a x its prefilled tokens + b x its decode tokens.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

from calibrate.runs.load import RequestArrays


@dataclass
class Trace:
    req: RequestArrays
    concurrency: int
    a: float
    b: float


def closed_loop_trace(*, concurrency: int, n: int, n_in: int, n_out: int, a: float = 2e-4, b: float = 3e-3,
                      budget_tokens: int = 2048, client_delay_s: float = 1e-4, jitter: float = 0.0,
                      seed: int = 0) -> Trace:
    """n requests of n_in prompt / n_out output tokens at concurrency C (module docstring).
    `jitter`: relative spread of output lengths (uniform, >= 1 token) to desynchronise the waves."""
    rng = np.random.default_rng(seed)
    outs = np.maximum(1, np.round(n_out * (1 + jitter * rng.uniform(-1, 1, n)))).astype(int) if jitter else \
        np.full(n, n_out)
    send = np.full(n, np.nan)
    first = np.full(n, np.nan)
    end = np.full(n, np.nan)
    chunks: list[list[float]] = [[] for _ in range(n)]
    arrivals: list[tuple[float, int]] = [(0.0, i) for i in range(min(concurrency, n))]  # (time, request)
    next_req = len(arrivals)
    waiting: deque[int] = deque()
    running: list[int] = []
    t = 0.0
    for tt, i in arrivals:
        send[i] = tt
    pending = sorted(arrivals)
    while True:
        while pending and pending[0][0] <= t:
            waiting.append(pending.pop(0)[1])
        if not waiting and not running:
            if not pending:
                break
            t = pending[0][0]
            continue
        pre, used = [], 0
        while waiting and (not pre or used + n_in <= budget_tokens):
            pre.append(waiting.popleft())
            used += n_in
        dec = list(running)
        t += a * used + b * len(dec)
        finished = []
        for i in pre:
            first[i] = t
            chunks[i].append(t)
            (finished if outs[i] == 1 else running).append(i)
        for i in dec:
            chunks[i].append(t)
            if len(chunks[i]) == outs[i]:
                running.remove(i)
                finished.append(i)
        for i in finished:
            end[i] = t
            if next_req < n:
                send[next_req] = t + client_delay_s
                pending.append((t + client_delay_s, next_req))
                next_req += 1
        pending.sort()
    req = RequestArrays(
        input_tokens=np.full(n, float(n_in)), output_tokens=outs.astype(float), e2e_s=end - send,
        ttft_s=first - send, tpot_s=np.where(outs > 1, (end - first) / np.maximum(outs - 1, 1), np.nan),
        send_s=send, first_token_s=first, end_s=end, chunk_times_s=tuple(np.array(c) for c in chunks),
        requested_output_tokens=outs.astype(float))
    return Trace(req=req, concurrency=concurrency, a=a, b=b)


def interpolated_totals(req: RequestArrays, concurrency: int) -> tuple[float, float, float] | None:
    """The estimator before issue 10: window [first send, last send]; a request in flight at the
    end W is credited with the elapsed share of its send-to-first-token interval for its prompt
    and of its first-token-to-end interval for its decode tokens. (seconds, input, decode)."""
    if len(req.send_s) < 2 * concurrency:
        return None
    start, w = req.send_s.min(), req.send_s.max()
    with np.errstate(divide="ignore", invalid="ignore"):
        f_in = np.where(req.first_token_s <= w, 1.0,
                        np.clip((w - req.send_s) / (req.first_token_s - req.send_s), 0.0, 1.0))
        f_out = np.where(req.end_s <= w, 1.0,
                         np.clip((w - req.first_token_s) / (req.end_s - req.first_token_s), 0.0, 1.0))
    dec = np.maximum(req.output_tokens - 1, 0)
    return float(w - start), float((req.input_tokens * np.nan_to_num(f_in)).sum()), \
        float((dec * np.nan_to_num(f_out)).sum())
