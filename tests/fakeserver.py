"""A small OpenAI-compatible streaming server for tests, fault injection and the client benchmark.

Not a model: it answers `/v1/completions` with `max_tokens` tokens of filler text after `ttft_s`,
one chunk every `itl_s`, `tokens_per_chunk` tokens per chunk, then (when asked with
`stream_options.include_usage`) a usage chunk with choices=[] and `data: [DONE]`, as vLLM does.
Also `/v1/models`, `/health`, `/metrics` (prometheus text with a few vLLM counters, including
`vllm:estimated_flops_per_gpu_total` = 2 * params_matmul * tokens), and `/stats` (JSON: requests
seen, max in flight, prompt lengths, per-request server-side timings on the system-wide monotonic clock).

Fault knobs:
    die_after_requests=N  once N responses have been completed, the server stops listening and
                          aborts every other open connection (as a crash would); run as a process it
                          then exits with status 3.
    error_rate=f          that fraction of requests (seeded) gets an HTTP 500 JSON error.
    api_key="K"           requests without `Authorization: Bearer K` get 401, as vLLM's --api-key does.
    strict_model=True     a request naming another model than `model` gets 404, as vLLM answers.
    keepalive_timeout_s   an idle connection is closed after this long (75 s; vLLM closes after 5 s).

In process:   async with FakeServer(ttft_s=0.01) as srv: ... srv.base_url ...
As a process: python -m fakeserver --port 8123 --itl-s 0.001 --tokens-per-chunk 1
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import time
from dataclasses import dataclass, field

from aiohttp import web

TOKEN_TEXT = " tok"  # what every generated token reads as


@dataclass
class FakeStats:
    requests_received: int = 0
    requests_completed: int = 0
    requests_errored: int = 0
    in_flight: int = 0
    max_in_flight: int = 0
    prompt_tokens_total: int = 0
    generation_tokens_total: int = 0
    prompt_lengths: list[int] = field(default_factory=list)
    # per completed streamed request: (received_s, first_chunk_written_s, last_chunk_written_s, prompt_key)
    # on time.perf_counter (CLOCK_MONOTONIC, the same clock in every process on Linux); prompt_key is
    # the first 4 prompt token ids (None for a text prompt), to match a client's record
    timings_s: list[tuple] = field(default_factory=list)
    request_bodies: list[dict] = field(default_factory=list)  # only when keep_bodies=True
    authorization_headers: list[str | None] = field(default_factory=list)  # only when keep_bodies=True

    def to_json(self) -> dict:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def _prompt_tokens(prompt) -> int:
    """Token count of a prompt: exact for token-id lists; for text (vLLM's bench client sends text)
    a whitespace split stands in for a tokenizer this server does not have."""
    if isinstance(prompt, list):
        if prompt and isinstance(prompt[0], list):
            raise ValueError("batched prompts (a list of lists) are not supported by the fake server")
        if not all(isinstance(t, int) and not isinstance(t, bool) for t in prompt):
            raise ValueError("prompt list must hold integer token ids")
        return len(prompt)
    if isinstance(prompt, str):
        return max(1, len(prompt.split()))
    raise ValueError(f"prompt must be a string or a list of token ids, got {type(prompt).__name__}")


class FakeServer:
    """OpenAI-compatible streaming server; an async context manager. See the module docstring."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        ttft_s: float = 0.0,
        itl_s: float = 0.0,
        tokens_per_chunk: int = 1,
        die_after_requests: int | None = None,
        error_rate: float = 0.0,
        seed: int = 0,
        model: str = "fake-model",
        params_matmul: int = 1_000_000,
        max_model_len: int = 1_000_000,
        keep_bodies: bool = False,
        exit_on_death: bool = False,
        api_key: str | None = None,
        strict_model: bool = False,
        keepalive_timeout_s: float = 75.0,
    ):
        if tokens_per_chunk < 1:
            raise ValueError(f"tokens_per_chunk must be >= 1, got {tokens_per_chunk}")
        if ttft_s < 0 or itl_s < 0:
            raise ValueError(f"ttft_s and itl_s must be >= 0, got {ttft_s}, {itl_s}")
        if not 0 <= error_rate <= 1:
            raise ValueError(f"error_rate must be in [0, 1], got {error_rate}")
        if die_after_requests is not None and die_after_requests < 0:
            raise ValueError(f"die_after_requests must be >= 0 or None, got {die_after_requests}")
        self.host, self.port = host, port
        self.ttft_s, self.itl_s, self.tokens_per_chunk = ttft_s, itl_s, tokens_per_chunk
        self.die_after_requests, self.error_rate = die_after_requests, error_rate
        self.model, self.params_matmul, self.max_model_len = model, params_matmul, max_model_len
        self.keep_bodies, self.exit_on_death = keep_bodies, exit_on_death
        self.api_key, self.strict_model = api_key, strict_model
        self.keepalive_timeout_s = keepalive_timeout_s  # an idle connection is closed after this long
        self._rng = random.Random(seed)
        self.stats = FakeStats()
        self.dead = False
        self._transports: set = set()
        self._handlers: set[asyncio.Task] = set()
        self._runner: web.AppRunner | None = None
        self._site: web.TCPSite | None = None
        self.base_url = ""

    # ------------------------------------------------------------------ lifecycle
    def make_app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1/completions", self._completions)
        app.router.add_get("/v1/models", self._models)
        app.router.add_get("/health", self._health)
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/stats", self._stats)
        return app

    async def start(self) -> FakeServer:
        self._runner = web.AppRunner(self.make_app(), access_log=None, handle_signals=False,
                                     keepalive_timeout=self.keepalive_timeout_s)
        await self._runner.setup()
        self._site = web.TCPSite(self._runner, self.host, self.port, backlog=1024)
        await self._site.start()
        sock = self._site._server.sockets[0]  # the bound port when port=0
        self.port = sock.getsockname()[1]
        self.base_url = f"http://{self.host}:{self.port}"
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            for tr in list(self._transports):
                tr.abort()
            for task in list(self._handlers):  # aiohttp does not cancel handlers of lost connections
                task.cancel()
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeServer:
        return await self.start()

    async def __aexit__(self, *exc) -> None:
        await self.stop()

    async def _die(self, keep_transport) -> None:
        """Stop listening and abort every other open connection, as a crashed server would."""
        self.dead = True
        if self._site is not None and self._site._server is not None:
            self._site._server.close()  # the listening socket: new connections are refused
        for tr in list(self._transports):
            if tr is not keep_transport:
                tr.abort()
        for task in list(self._handlers):
            if task is not asyncio.current_task():
                task.cancel()
        if keep_transport is not None:
            keep_transport.close()  # flush what this finished response wrote, then FIN
        if self.exit_on_death:
            await asyncio.sleep(0.05)
            os._exit(3)

    # ------------------------------------------------------------------ handlers
    async def _health(self, request: web.Request) -> web.Response:
        return web.Response(text="")

    async def _models(self, request: web.Request) -> web.Response:
        return web.json_response(
            {
                "object": "list",
                "data": [
                    {
                        "id": self.model,
                        "object": "model",
                        "created": 0,
                        "owned_by": "fake",
                        "root": self.model,
                        "max_model_len": self.max_model_len,
                    }
                ],
            }
        )

    async def _stats(self, request: web.Request) -> web.Response:
        return web.json_response(self.stats.to_json())

    async def _metrics(self, request: web.Request) -> web.Response:
        s, labels = self.stats, f'{{model_name="{self.model}"}}'
        flop = 2.0 * self.params_matmul * (s.prompt_tokens_total + s.generation_tokens_total)
        lines = [
            "# HELP vllm:num_requests_running Number of requests in model execution batches.",
            "# TYPE vllm:num_requests_running gauge",
            f"vllm:num_requests_running{labels} {float(s.in_flight)}",
            "# HELP vllm:prompt_tokens_total Number of prefill tokens processed.",
            "# TYPE vllm:prompt_tokens counter",
            f"vllm:prompt_tokens_total{labels} {float(s.prompt_tokens_total)}",
            "# HELP vllm:generation_tokens_total Number of generation tokens processed.",
            "# TYPE vllm:generation_tokens counter",
            f"vllm:generation_tokens_total{labels} {float(s.generation_tokens_total)}",
            "# HELP vllm:request_success_total Count of successfully processed requests.",
            "# TYPE vllm:request_success counter",
            f"vllm:request_success_total{labels} {float(s.requests_completed)}",
            "# HELP vllm:estimated_flops_per_gpu_total Estimated FLOPs per GPU (fake: 2 * params * tokens).",
            "# TYPE vllm:estimated_flops_per_gpu counter",
            f"vllm:estimated_flops_per_gpu_total{labels} {flop}",
        ]
        return web.Response(text="\n".join(lines) + "\n", content_type="text/plain")

    def _error(self, status: int, message: str, kind: str = "BadRequestError") -> web.Response:
        self.stats.requests_errored += 1
        body = {"object": "error", "message": message, "type": kind, "code": status}
        return web.json_response(body, status=status)

    async def _completions(self, request: web.Request) -> web.StreamResponse:
        s = self.stats
        received_s = time.perf_counter()
        if self.dead:  # a request on a kept-alive connection after the "crash": drop it
            request.transport.abort()
            return web.Response(status=503)
        s.requests_received += 1
        s.in_flight += 1
        s.max_in_flight = max(s.max_in_flight, s.in_flight)
        transport, task = request.transport, asyncio.current_task()
        self._transports.add(transport)
        self._handlers.add(task)
        try:
            return await self._serve_completion(request, received_s)
        finally:
            s.in_flight -= 1
            self._transports.discard(transport)
            self._handlers.discard(task)

    async def _serve_completion(self, request: web.Request, received_s: float) -> web.StreamResponse:
        s = self.stats
        if self.api_key is not None and request.headers.get("Authorization") != f"Bearer {self.api_key}":
            return self._error(401, "Unauthorized", kind="AuthenticationError")
        try:
            body = await request.json()
            if self.strict_model and body.get("model") != self.model:
                return self._error(404, f"The model `{body.get('model')}` does not exist.", kind="NotFoundError")
            prompt_tokens = _prompt_tokens(body.get("prompt"))
            max_tokens = int(body.get("max_tokens") or 16)
        except (ValueError, TypeError) as exc:
            return self._error(400, str(exc))
        if max_tokens < 1:
            return self._error(400, f"max_tokens must be >= 1, got {max_tokens}")
        if self.keep_bodies:
            s.request_bodies.append(body)
            s.authorization_headers.append(request.headers.get("Authorization"))
        s.prompt_lengths.append(prompt_tokens)
        if self.error_rate and self._rng.random() < self.error_rate:
            return self._error(500, "injected error (fake server error_rate)")

        rid = f"cmpl-fake-{s.requests_received}"
        created = int(time.time())
        if not body.get("stream"):
            await asyncio.sleep(self.ttft_s + self.itl_s * max(0, max_tokens - 1))
            self._count_done(prompt_tokens, max_tokens)
            return web.json_response(self._full_response(rid, created, prompt_tokens, max_tokens))

        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await resp.prepare(request)
        # Pre-encode the two chunk shapes once: the server must outrun the client being measured.
        head = f'data: {{"id":"{rid}","object":"text_completion","created":{created},"model":"{self.model}","choices":[{{"index":0,"text":"'
        mid = b'","logprobs":null,"finish_reason":null,"stop_reason":null}]}\n\n'
        end = b'","logprobs":null,"finish_reason":"length","stop_reason":null}]}\n\n'
        head_b = head.encode()
        if self.ttft_s:
            await asyncio.sleep(self.ttft_s)
        try:
            prompt = body.get("prompt")
            prompt_key = prompt[:4] if isinstance(prompt, list) else None
            return await self._stream(request, resp, head_b, mid, end, max_tokens, include_usage,
                                      rid, created, prompt_tokens, received_s, prompt_key)
        except ConnectionError:  # the client went away, or _die() aborted this connection
            return resp

    async def _stream(self, request, resp, head_b, mid, end, max_tokens, include_usage, rid, created,
                      prompt_tokens, received_s, prompt_key) -> web.StreamResponse:
        s = self.stats
        sent, first_s = 0, None
        while sent < max_tokens:
            n = min(self.tokens_per_chunk, max_tokens - sent)
            sent += n
            tail = end if sent == max_tokens else mid
            await resp.write(head_b + (TOKEN_TEXT * n).encode() + tail)
            if first_s is None:
                first_s = time.perf_counter()
            if sent < max_tokens and self.itl_s:
                await asyncio.sleep(self.itl_s)
        last_s = time.perf_counter()
        if include_usage:
            usage = {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens + max_tokens,
                     "completion_tokens": max_tokens}
            chunk = {"id": rid, "object": "text_completion", "created": created, "model": self.model,
                     "choices": [], "usage": usage}
            await resp.write(b"data: " + json.dumps(chunk, separators=(",", ":")).encode() + b"\n\n")
        await resp.write(b"data: [DONE]\n\n")
        await resp.write_eof()
        self._count_done(prompt_tokens, max_tokens)
        s.timings_s.append((received_s, first_s, last_s, prompt_key))
        if self.die_after_requests is not None and s.requests_completed >= self.die_after_requests and not self.dead:
            await self._die(keep_transport=request.transport)
        return resp

    def _count_done(self, prompt_tokens: int, max_tokens: int) -> None:
        self.stats.requests_completed += 1
        self.stats.prompt_tokens_total += prompt_tokens
        self.stats.generation_tokens_total += max_tokens

    def _full_response(self, rid: str, created: int, prompt_tokens: int, max_tokens: int) -> dict:
        return {
            "id": rid, "object": "text_completion", "created": created, "model": self.model,
            "choices": [{"index": 0, "text": TOKEN_TEXT * max_tokens, "logprobs": None,
                         "finish_reason": "length", "stop_reason": None}],
            "usage": {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens + max_tokens,
                      "completion_tokens": max_tokens},
        }


# ---------------------------------------------------------------------- CLI


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m fakeserver",
        description="Fake OpenAI-compatible streaming server (tests, fault injection, client benchmark).",
        epilog="example: python -m fakeserver --port 8123 --ttft-s 0.05 --itl-s 0.01 --die-after-requests 20",
    )
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8123, help="0 picks a free port (printed on start)")
    p.add_argument("--ttft-s", type=float, default=0.0)
    p.add_argument("--itl-s", type=float, default=0.0)
    p.add_argument("--tokens-per-chunk", type=int, default=1)
    p.add_argument("--die-after-requests", type=int, default=None)
    p.add_argument("--error-rate", type=float, default=0.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--model", default="fake-model")
    p.add_argument("--params-matmul", type=int, default=1_000_000)
    p.add_argument("--api-key", default=None, help="answer 401 unless `Authorization: Bearer KEY` (tests only)")
    p.add_argument("--strict-model", action="store_true", help="answer 404 for any other model name")
    return p


async def _serve_forever(args: argparse.Namespace) -> None:
    srv = FakeServer(
        args.host, args.port, ttft_s=args.ttft_s, itl_s=args.itl_s, tokens_per_chunk=args.tokens_per_chunk,
        die_after_requests=args.die_after_requests, error_rate=args.error_rate, seed=args.seed,
        model=args.model, params_matmul=args.params_matmul, exit_on_death=True,
        api_key=args.api_key, strict_model=args.strict_model,
    )
    async with srv:
        print(f"fake server listening on {srv.base_url}", flush=True)
        await asyncio.Event().wait()


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        FakeServer(ttft_s=args.ttft_s, itl_s=args.itl_s, tokens_per_chunk=args.tokens_per_chunk,
                   die_after_requests=args.die_after_requests, error_rate=args.error_rate)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        asyncio.run(_serve_forever(args))
    except KeyboardInterrupt:
        pass
    except OSError as exc:
        print(f"error: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
