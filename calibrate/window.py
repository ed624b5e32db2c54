"""The token and device-time totals of one run, over its steady-state window.

A closed-loop run at concurrency C holds exactly C requests in flight only until its last request
is sent; after that the loop drains (C-1, C-2, ... in flight) and the server idles part of the
time, which `duration_s` would bill to the tokens. With few requests per slot this drain is a
large share of the run (tens of per cent). So when per-request records exist and every slot served
at least two requests (n >= 2C), the totals are taken over the window [first send, last send]:

    device_seconds = (last_send - first_send) * devices
    input tokens   = sum_i in_i  * clip((W - send_i) / (first_token_i - send_i), 0, 1)
    decode tokens  = sum_i (out_i - 1) * clip((W - first_token_i) / (end_i - first_token_i), 0, 1)

(W = last send; a request's prompt is processed before its first token, its output tokens between
first token and end). Otherwise the whole run (`duration_s`, token totals) is used; the returned
basis says which.

Decode tokens are the output tokens after each request's first: the first output token is sampled
from the logits of the prefill pass (vLLM does no decode step for it), so it is billed with the
prompt (see calibrate.tokencost).
"""

from __future__ import annotations

import numpy as np

from calibrate.runs import LoadedRun, RequestArrays


def decode_tokens(req: RequestArrays) -> np.ndarray:
    """Output tokens after the first, per request: the first comes out of the prefill pass."""
    return np.maximum(req.output_tokens - 1.0, 0.0)


def decode_total(run: LoadedRun) -> int:
    """Decode tokens of a run: output tokens minus one per ok request."""
    s = run.record.summary
    return max(s.output_tokens_total - s.num_ok, 0)


def run_totals(run: LoadedRun) -> tuple[float, float, float, str]:
    """(device_seconds, input_tokens, decode_tokens, basis) of one run, over the steady-state
    window [first send, last send] when per-request records allow (module docstring), else over the
    whole run. decode_tokens = output tokens after each request's first."""
    s = run.record.summary
    devices = run.record.environment.hardware.device_count
    whole = (s.duration_s * devices, float(s.input_tokens_total), float(decode_total(run)), "whole run")
    req, c = run.requests, run.record.config.concurrency
    if req is None or c is None or len(req.send_s) < 2 * c:
        return whole
    start, w = req.send_s.min(), req.send_s.max()
    if not (w > start):
        return whole
    with np.errstate(divide="ignore", invalid="ignore"):
        f_in = np.where(req.first_token_s <= w, 1.0,
                        np.clip((w - req.send_s) / (req.first_token_s - req.send_s), 0.0, 1.0))
        f_out = np.where(req.end_s <= w, 1.0,
                         np.clip((w - req.first_token_s) / (req.end_s - req.first_token_s), 0.0, 1.0))
    f_in, f_out = np.nan_to_num(f_in), np.nan_to_num(f_out)
    inp, out = float((req.input_tokens * f_in).sum()), float((decode_tokens(req) * f_out).sum())
    if inp + out <= 0:
        return whole
    return (w - start) * devices, inp, out, "steady-state window"
