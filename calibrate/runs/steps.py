"""Engine steps seen from a run's per-token timestamps (the per-step evidence of a run).

vLLM's scheduler runs the batch in *steps*: one forward pass that emits one token for every
sequence that is decoding, and the first token of every prompt whose prefill completed in it.
`requests.jsonl` holds, for every request, the client's receive time of each streamed token
(`chunk_times_s`, one chunk per token; the count is checked against the server's usage).

Each gap between two consecutive tokens of one request (an inter-token latency) spans one engine
step. For the gap (t₋, t] of a request we know, from every request of the run:

* the sequences decoding during it: requests whose first token came before the gap's midpoint and
  whose last came after it (the request itself included) — robust to the client's receive jitter,
  which on a loaded 2-core machine spreads one step's tokens over several milliseconds;
* their KV context: prompt + tokens received before the midpoint, summed;
* the prompts prefilled in it: requests whose first token arrived inside (t₋, t], shifted by a
  jitter allowance (30 % of the gap, at most 5 ms) so a token of the same step received a little
  later still counts in it.

All n sequences of a step see the same step, so each gap is weighted 1/n (a step counts once).
Gaps shorter than a tenth of the run's median are dropped: two tokens the client read together.
Warm-up requests are real engine work and count as neighbours (their metrics stay out of the
run's summary). Failed requests and requests whose chunk count differs from their token count are
left out; a run where they are more than 5 % of the requests gives no evidence.

Time to first token of a request that had the engine to itself (concurrency 1) is the other kind
of evidence: request overhead outside the engine + one prefill step (`alone_ttft`).

Everything here is pure (numpy over dict-like records); no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

MAX_BAD_FRACTION = 0.05
JITTER_FRACTION = 0.3  # of a gap: how late a token of the same step may be received
MAX_JITTER_S = 5e-3
MIN_GAP_FRACTION = 0.1  # of the run's median gap: shorter gaps are read-together artifacts


@dataclass(frozen=True)
class Steps:
    """Engine-step observations of one run, as arrays of equal length (one per inter-token gap)."""

    duration_s: np.ndarray
    decode_seqs: np.ndarray  # sequences that decoded one token in the step
    decode_context_tokens: np.ndarray  # sum over them of the tokens already in their KV cache
    prefill_tokens: np.ndarray  # prompt tokens prefilled in the step
    prefill_pairs: np.ndarray  # sum over those prompts of P(P+1)/2 (causal attention pairs)
    weight: np.ndarray  # 1 / decode_seqs: each engine step counts once

    FIELDS = ("duration_s", "decode_seqs", "decode_context_tokens", "prefill_tokens", "prefill_pairs", "weight")

    def __len__(self) -> int:
        return int(self.duration_s.size)

    @staticmethod
    def empty() -> "Steps":
        return Steps(*(np.zeros(0) for _ in Steps.FIELDS))

    def thin(self, max_rows: int) -> "Steps":
        """At most `max_rows` observations, evenly spaced (deterministic), for a fit that stays fast."""
        if len(self) <= max_rows:
            return self
        idx = np.linspace(0, len(self) - 1, max_rows).round().astype(int)
        return Steps(*(getattr(self, f)[idx] for f in Steps.FIELDS))

    @staticmethod
    def concat(parts: Sequence["Steps"]) -> "Steps":
        if not parts:
            return Steps.empty()
        return Steps(*(np.concatenate([getattr(p, f) for p in parts]) for f in Steps.FIELDS))


def _get(rec, key):
    return rec[key] if isinstance(rec, Mapping) else getattr(rec, key)


def _usable(rec) -> bool:
    chunks = _get(rec, "chunk_times_s") or []
    return (
        _get(rec, "error") is None
        and _get(rec, "end_s") is not None
        and len(chunks) > 0
        and len(chunks) == _get(rec, "output_tokens")
    )


def usable_records(records: Sequence) -> list:
    """The records that carry per-token evidence, or [] when too many do not (see the docstring)."""
    recs = [r for r in records if _get(r, "error") is None]
    usable = [r for r in recs if _usable(r)]
    if not usable or len(usable) < (1 - MAX_BAD_FRACTION) * len(recs):
        return []
    return usable


def extract_steps(records: Sequence) -> Steps:
    """Step observations from every inter-token gap of a run (see the module docstring)."""
    usable = usable_records(records)
    if not usable:
        return Steps.empty()
    first = np.array([_get(r, "chunk_times_s")[0] for r in usable], float)
    last = np.array([_get(r, "chunk_times_s")[-1] for r in usable], float)
    prompt = np.array([_get(r, "input_tokens") for r in usable], float)
    chunks = [np.asarray(_get(r, "chunk_times_s"), float) for r in usable]
    lo = np.concatenate([c[:-1] for c in chunks])
    hi = np.concatenate([c[1:] for c in chunks])
    if lo.size == 0:
        return Steps.empty()
    mid = (lo + hi) / 2
    decoding = (first[:, None] < mid[None, :]) & (last[:, None] >= mid[None, :])  # requests x gaps
    received = np.stack([np.searchsorted(c, mid, side="right") for c in chunks])  # tokens before mid
    n = decoding.sum(axis=0).astype(float)
    ctx = np.sum(decoding * (prompt[:, None] + received), axis=0)
    # a first token received up to `tol` after the gap's end came out of the same step (receive jitter)
    tol = np.minimum(JITTER_FRACTION * (hi - lo), MAX_JITTER_S)
    pre_in = (first[:, None] > (lo + tol)[None, :]) & (first[:, None] <= (hi + tol)[None, :])
    pre = np.sum(pre_in * prompt[:, None], axis=0)
    pairs = np.sum(pre_in * (prompt * (prompt + 1) / 2)[:, None], axis=0)
    n = np.maximum(n, 1.0)
    d = hi - lo
    # Two tokens read from the socket together (the client fell behind) give a gap of ~0 after one
    # spanning two steps: drop the ~0 ones (the long one is an outlier the robust fit discounts).
    keep = d > MIN_GAP_FRACTION * np.median(d)
    return Steps(d[keep], n[keep], ctx[keep], pre[keep], pairs[keep], 1.0 / n[keep])


def alone_ttft(records: Sequence, concurrency: int | None) -> tuple[np.ndarray, np.ndarray]:
    """(TTFT, prompt tokens) of the measured requests of a concurrency-1 run; empty otherwise."""
    if concurrency != 1:
        return np.zeros(0), np.zeros(0)
    ok = [r for r in usable_records(records) if not _get(r, "warmup")]
    t = np.array([_get(r, "first_token_s") - _get(r, "send_s") for r in ok], float)
    p = np.array([_get(r, "input_tokens") for r in ok], float)
    return t, p
