"""How each operator of a decoder step is built and called, on CPU through vLLM's own ops and on
CUDA through torch alone. torch and vLLM are imported inside functions only.

CPU (vLLM's CPU backend, as `vllm serve --enforce-eager` runs it; each choice mirrors vLLM's own
dispatch, so a host without AMX or AVX-512 gets the path vLLM would take there):

  gemm int8     W8A8 linear layers (`CPUInt8ScaledMMLinearKernel`): on x86 with AMX, when
                `check_cpu_sgl_kernel(N, K, int8)` holds, `_C.convert_weight_packed` once and
                `_C.int8_scaled_mm_with_quant` per call (dynamic per-token quantisation inside);
                else `create_onednn_scaled_mm` once and `onednn_scaled_int8_quant` +
                `onednn_scaled_mm` per call. Weights symmetric per output channel, activations
                symmetric dynamic per token, as bench's W8A8 checkpoints are.
  gemm lm_head  the unquantised LM head: `dispatch_cpu_unquantized_gemm` on a stand-in layer (it
                picks sgl `weight_packed_linear`, oneDNN `onednn_mm`, or `F.linear`) in the
                activation dtype.
  attention     `_C.cpu_attention_with_kv_cache` over a paged KV cache (block size 128, vLLM's CPU
                default; ISA from `cpu_attn._get_attn_isa`), preceded by `cpu_attn_reshape_and_cache`
                of the step's new K/V (vLLM's per-layer cache update). The scheduler metadata
                (`cpu_attn_get_scheduler_metadata`) is built once per step for all layers and is
                not in the timed call.
  rms_norm      `vllm.ir.ops.fused_add_rms_norm`, dispatched as vLLM's CPU platform sets it (its
                default priority is the native torch implementation; eager, no torch wrap).
  rotary        `_C.rotary_embedding` (what `RotaryEmbedding.forward_cpu` calls), neox style.
  silu_and_mul  `SiluAndMul.forward_native` (torch: vLLM runs the native form on x86 CPUs).
  sampler       vLLM's `Sampler` on logits in the activation dtype, temperature 1.0 and no
                top-k/top-p (vLLM's defaults: all-random sampling, `_C.fused_gumbel_argmax`).
  step_overhead a loop of `calls` empty torch op dispatches (an `add` of one-element tensors).

CUDA (torch alone; vLLM's CUDA kernels are not called, so each is labelled a stand-in where vLLM
runs something else): int8 GEMM by `torch._int_mm` with per-token activation quantisation and a
scale epilogue ("torch._int_mm (stand-in for vLLM's CUTLASS scaled_mm)"; rows padded to 17 where
`_int_mm` needs more than 16); the LM head by `F.linear`; attention by
`F.scaled_dot_product_attention` over a contiguous KV cache; norm, rotary, SiLU·mul and sampling
by their torch formulas.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bench.operators.grid import GridGroup

CPU_KV_BLOCK_SIZE = 128  # vLLM's CPU default block size (platforms/cpu.py) when none is given
ROPE_MAX_POSITIONS = 4096
RMS_EPS = 1e-6


class KernelUnavailable(RuntimeError):
    """An operator that cannot be built on this device (one line: why)."""


@dataclass
class Env:
    """The device side of a measurement: torch, the dtype activations run in, how to wait."""

    kind: str  # "cpu" | "cuda"
    torch: Any
    device: str
    act_dtype: Any
    act_dtype_name: str  # "bf16" | "fp32" | "fp16"
    threads: int
    sync: Callable[[], None]
    notes: list[str] = field(default_factory=list)

    @property
    def act_bytes(self) -> int:
        return 4 if self.act_dtype_name == "fp32" else 2


@dataclass
class Built:
    """An operator instance (weights, caches allocated): `make(shape)` returns the call to time."""

    impl: str
    dtype: str
    make: Callable[[dict[str, int]], Callable[[], Any]]


def cpu_has_bf16(torch: Any) -> bool:
    """bf16 activations where the CPU has native bf16 units (AVX-512 BF16 or AMX), else fp32: the
    rule bench's server start-up applies (vLLM's bf16 GEMMs crawl without them)."""
    try:
        return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())
    except AttributeError:
        return False


def open_env(kind: str) -> Env:
    """Import torch (and on CPU vLLM's ops), pick the activation dtype, and prepare the process as
    vLLM's worker does (AMX tile permission, IR op priorities, no torch wrap in eager mode).
    KernelUnavailable (one line) when the device or vLLM's CPU ops are missing."""
    try:
        import torch
    except ImportError as exc:
        raise KernelUnavailable(f"torch is not installed ({exc})") from None
    if kind == "cuda":
        if getattr(torch.version, "cuda", None) is None or not torch.cuda.is_available():
            raise KernelUnavailable("torch sees no CUDA device")
        dev = "cuda:0"
        return Env("cuda", torch, dev, torch.bfloat16, "bf16", 1, lambda: torch.cuda.synchronize(dev),
                   notes=[("CUDA: torch stand-ins for vLLM's CUDA kernels (see each record's impl); times are "
                           "wall time around torch.cuda.synchronize(), launch overhead included (no CUDA graphs)")])
    if kind != "cpu":
        raise KernelUnavailable(f"unknown device kind {kind!r}")
    try:
        import vllm._custom_ops  # noqa: F401  (loads vllm._C)
    except Exception as exc:  # noqa: BLE001 - ImportError, or an OSError from a broken install
        raise KernelUnavailable(f"vLLM's CPU ops cannot be imported ({type(exc).__name__}: {exc})") from None
    notes = []
    if torch.cpu._is_amx_tile_supported():
        # The kernel has to ask for the AMX tile state (arch_prctl XTILEDATA) before its first tile
        # instruction; vLLM's worker has it by the time attention runs. Without it: SIGILL.
        torch.cpu._init_amx()
        notes.append("AMX tile permission requested (torch.cpu._init_amx) as in vLLM's worker")
    try:
        from vllm import ir
        from vllm.platforms import current_platform

        current_platform.get_default_ir_op_priority(None).set_default()
        ir.set_default_torch_wrap(False)
    except Exception as exc:  # noqa: BLE001 - a vLLM without this IR API: noted, the ops still run
        notes.append(f"vLLM IR op priority not set ({type(exc).__name__}: {exc})")
    bf16 = cpu_has_bf16(torch)
    act = torch.bfloat16 if bf16 else torch.float32
    return Env("cpu", torch, "cpu", act, "bf16" if bf16 else "fp32", torch.get_num_threads(), lambda: None,
               notes=notes)


def prepare(env: Env, group: GridGroup) -> Built:
    """The operator instance for `group` (weights and caches built once for all its rows)."""
    f = group.fixed_dict()
    table = _CPU if env.kind == "cpu" else _CUDA
    if group.op == "gemm":
        if group.weight == "int8":
            return table["gemm_int8"](env, f["k"], f["n"])
        return table["gemm_act"](env, f["k"], f["n"])
    if group.op in ("attention_decode", "attention_prefill"):
        rows = [dict(r) for r in group.rows]
        return table[group.op](env, f["heads"], f["kv_heads"], f["head_dim"], rows)
    if group.op == "rms_norm":
        return table["rms_norm"](env, f["hidden"])
    if group.op == "rotary":
        return table["rotary"](env, f["heads"], f["kv_heads"], f["head_dim"])
    if group.op == "silu_and_mul":
        return table["silu_and_mul"](env, f["n"])
    if group.op == "sampler":
        return table["sampler"](env, f["vocab"])
    if group.op == "step_overhead":
        return _step_overhead(env)
    raise KernelUnavailable(f"no kernel for operator {group.op!r}")


# --------------------------------------------------------------------------- shared


def _tiled(torch, n: int, k: int, dtype, device: str):
    """An [n, k] tensor of random values tiled from a 64-row block: a kernel's time does not depend
    on the values, and drawing GiBs of random numbers would cost seconds per weight."""
    rows = min(n, 64)
    if dtype == torch.int8:
        tile = torch.randint(-127, 128, (rows, k), dtype=torch.int8, device=device)
    else:
        tile = (torch.randn((rows, k), device=device) * 0.02).to(dtype)
    return tile.repeat((n + rows - 1) // rows, 1)[:n].contiguous()


def _int8_weight(torch, k: int, n: int, device: str):
    """A [N, K] int8 weight with fp32 per-output-channel scales [N, 1]."""
    w = _tiled(torch, n, k, torch.int8, device)
    scales = torch.rand((n, 1), dtype=torch.float32, device=device) * 0.01 + 1e-3
    return w, scales


def _step_overhead(env: Env) -> Built:
    torch = env.torch
    a = torch.zeros(1, device=env.device)
    out = torch.empty_like(a)

    def make(shape):
        calls = shape["calls"]

        def run():
            for _ in range(calls):
                torch.add(a, a, out=out)
            env.sync()
        return run

    return Built("torch.add on one-element tensors (empty op dispatch loop)", env.act_dtype_name, make)


# --------------------------------------------------------------------------- CPU (vLLM's ops)


def _cpu_gemm_int8(env: Env, k: int, n: int) -> Built:
    torch = env.torch
    import vllm._custom_ops as ops
    from vllm.model_executor.layers.utils import check_cpu_sgl_kernel
    from vllm.platforms import current_platform
    from vllm.platforms.interface import CpuArchEnum

    w, scales = _int8_weight(torch, k, n, "cpu")
    act = env.act_dtype
    if current_platform.get_cpu_architecture() == CpuArchEnum.X86 and check_cpu_sgl_kernel(n, k, torch.int8):
        packed = torch.ops._C.convert_weight_packed(w)
        del w

        def make(shape):
            x = torch.randn(shape["m"], k, dtype=act)
            return lambda: torch.ops._C.int8_scaled_mm_with_quant(x, packed, scales, None, act, True)

        return Built("vllm._C.int8_scaled_mm_with_quant (sgl AMX kernel, dynamic per-token quant inside)",
                     "int8", make)
    handler = ops.create_onednn_scaled_mm(w.t(), scales, act, True, False, 32)
    del w

    def make(shape):
        m = shape["m"]
        x = torch.randn(m, k, dtype=act)

        def run():
            x_q, x_s, x_zp = ops.onednn_scaled_int8_quant(x, None, None, True)
            out = torch.empty((m, n), dtype=act)
            ops.onednn_scaled_mm(handler, x_q, out, x_s, x_zp, None, None)
            return out
        return run

    return Built("vllm._C.onednn_scaled_mm (+ dynamic_scaled_int8_quant per token)", "int8", make)


def _cpu_gemm_act(env: Env, k: int, n: int) -> Built:
    torch = env.torch
    from vllm import _custom_ops as ops
    from vllm.model_executor.layers.utils import check_cpu_sgl_kernel, dispatch_cpu_unquantized_gemm

    class _Head(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.weight = torch.nn.Parameter(_tiled(torch, n, k, env.act_dtype, "cpu"), requires_grad=False)
            self.bias = None

    layer = _Head()
    if check_cpu_sgl_kernel(n, k, env.act_dtype):
        impl = "vllm._C.weight_packed_linear (sgl kernel, via dispatch_cpu_unquantized_gemm)"
    elif getattr(ops, "_supports_onednn", False):
        impl = "vllm._C.onednn_mm (via dispatch_cpu_unquantized_gemm)"
    else:
        impl = "torch.nn.functional.linear (vLLM's CPU fallback, via dispatch_cpu_unquantized_gemm)"
    dispatch_cpu_unquantized_gemm(layer, remove_weight=False)

    def make(shape):
        x = torch.randn(shape["m"], k, dtype=env.act_dtype)
        return lambda: layer.cpu_linear(x, layer.weight, None)

    return Built(impl, env.act_dtype_name, make)


def _cpu_attention(env: Env, heads: int, kv_heads: int, head_dim: int, rows: list[dict], *, prefill: bool) -> Built:
    torch = env.torch
    import vllm._custom_ops as ops
    from vllm import envs
    from vllm.v1.attention.backends.cpu_attn import _get_attn_isa

    act, bs = env.act_dtype, CPU_KV_BLOCK_SIZE
    try:
        isa = _get_attn_isa(act, bs, head_dim, "auto")
    except NotImplementedError as exc:
        raise KernelUnavailable(f"vLLM's CPU attention: {exc}") from None
    if prefill:
        num_blocks = max(math.ceil(r["tokens"] / bs) for r in rows)
    else:
        num_blocks = max(r["batch"] * math.ceil(r["context"] / bs) for r in rows)
    # [num_blocks, kv_heads, block_size, 2·head_dim], as vLLM's CPU backend lays it out; every
    # sequence has blocks of its own (no block is read twice in a call, as in a real batch). Filled
    # with a constant: fast, and every page is touched (an untouched page reads as the shared zero
    # page, which would time a cache hit, not a memory read)
    kv = torch.empty((num_blocks, kv_heads, bs, 2 * head_dim), dtype=act).fill_(0.01)
    key_cache, value_cache = kv.view(kv.shape[0], kv_heads, bs * 2, head_dim).chunk(2, dim=2)
    scale = head_dim ** -0.5

    def make(shape):
        if prefill:
            b, q_len, ctx = 1, shape["tokens"], shape["tokens"]
        else:
            b, q_len, ctx = shape["batch"], 1, shape["context"]
        nblk = math.ceil(ctx / bs)
        block_table = torch.arange(b * nblk, dtype=torch.int32).view(b, nblk)
        seq_lens = torch.full((b,), ctx, dtype=torch.int32)
        qsl = torch.arange(0, b * q_len + 1, q_len, dtype=torch.int32)
        pos = torch.arange(ctx - q_len, ctx)
        slots = (block_table[:, pos // bs].long() * bs + (pos % bs)).reshape(-1)
        q = torch.randn(b * q_len, heads, head_dim, dtype=act)
        k_new = torch.randn(b * q_len, kv_heads, head_dim, dtype=act)
        v_new = torch.randn_like(k_new)
        out = torch.empty_like(q)
        meta = ops.cpu_attn_get_scheduler_metadata(
            num_reqs=b, num_heads=heads, num_kv_heads=kv_heads, head_dim=head_dim, seq_lens=seq_lens,
            dtype=act, query_start_loc=qsl, causal=True, sliding_window_size=-1, isa=isa,
            enable_kv_split=envs.VLLM_CPU_ATTN_SPLIT_KV)

        def run():
            ops.cpu_attn_reshape_and_cache(k_new, v_new, key_cache, value_cache, slots, isa)
            ops.cpu_attention_with_kv_cache(
                query=q, key_cache=key_cache, value_cache=value_cache, output=out, query_start_loc=qsl,
                seq_lens=seq_lens, scale=scale, causal=True, alibi_slopes=None, sliding_window=-1,
                block_table=block_table, softcap=0.0, scheduler_metadata=meta, s_aux=None)
        return run

    return Built(f"vllm._C.cpu_attention_with_kv_cache (isa {isa}, paged KV block {bs}) + cpu_attn_reshape_and_cache",
                 env.act_dtype_name, make)


def _cpu_rms_norm(env: Env, hidden: int) -> Built:
    torch = env.torch
    from vllm import ir

    weight = torch.ones(hidden, dtype=env.act_dtype)
    op = ir.ops.fused_add_rms_norm
    try:
        provider = op.dispatch(torch.zeros(1, hidden, dtype=env.act_dtype), torch.zeros(1, hidden, dtype=env.act_dtype),
                               weight, RMS_EPS).provider
    except Exception:  # noqa: BLE001 - only the label depends on it
        provider = "native"

    def make(shape):
        x = torch.randn(shape["tokens"], hidden, dtype=env.act_dtype)
        res = torch.randn_like(x)
        return lambda: op.maybe_inplace(x, res, weight, RMS_EPS)

    return Built(f"vllm.ir.ops.fused_add_rms_norm ({provider} impl, as vLLM's CPU platform dispatches it)",
                 env.act_dtype_name, make)


def _cpu_rotary(env: Env, heads: int, kv_heads: int, head_dim: int) -> Built:
    torch = env.torch
    import vllm._custom_ops as ops

    cos_sin = torch.randn(ROPE_MAX_POSITIONS, head_dim, dtype=env.act_dtype)

    def make(shape):
        t = shape["tokens"]
        pos = torch.arange(t) % ROPE_MAX_POSITIONS
        q = torch.randn(t, heads * head_dim, dtype=env.act_dtype)
        k = torch.randn(t, kv_heads * head_dim, dtype=env.act_dtype)
        return lambda: ops.rotary_embedding(pos, q, k, head_dim, cos_sin, True)

    return Built("vllm._C.rotary_embedding (neox, RotaryEmbedding.forward_cpu)", env.act_dtype_name, make)


def _cpu_silu_and_mul(env: Env, n: int) -> Built:
    torch = env.torch
    from vllm.model_executor.layers.activation import SiluAndMul

    def make(shape):
        x = torch.randn(shape["tokens"], 2 * n, dtype=env.act_dtype)
        return lambda: SiluAndMul.forward_native(x)

    return Built("vllm SiluAndMul.forward_native (torch F.silu·mul: what vLLM runs on x86 CPUs)",
                 env.act_dtype_name, make)


def _cpu_sampler(env: Env, vocab: int) -> Built:
    torch = env.torch
    from vllm.v1.sample.logits_processor.state import LogitsProcessors
    from vllm.v1.sample.metadata import SamplingMetadata
    from vllm.v1.sample.sampler import Sampler

    sampler = Sampler()

    def make(shape):
        b = shape["batch"]
        meta = SamplingMetadata(
            temperature=torch.ones(b, dtype=torch.float32), all_greedy=False, all_random=True, top_p=None,
            top_k=None, generators={}, max_num_logprobs=None, no_penalties=True, prompt_token_ids=None,
            frequency_penalties=torch.zeros(b), presence_penalties=torch.zeros(b),
            repetition_penalties=torch.ones(b), output_token_ids=[[] for _ in range(b)],
            allowed_token_ids_mask=None, bad_words_token_ids={}, logitsprocs=LogitsProcessors())
        logits = torch.randn(b, vocab, dtype=env.act_dtype)
        return lambda: sampler(logits, meta)

    return Built("vllm.v1.sample.sampler.Sampler (temperature 1.0, no top-k/top-p: _C.fused_gumbel_argmax)",
                 env.act_dtype_name, make)


_CPU: dict[str, Callable[..., Built]] = {
    "gemm_int8": _cpu_gemm_int8,
    "gemm_act": _cpu_gemm_act,
    "attention_decode": lambda env, h, g, d, rows: _cpu_attention(env, h, g, d, rows, prefill=False),
    "attention_prefill": lambda env, h, g, d, rows: _cpu_attention(env, h, g, d, rows, prefill=True),
    "rms_norm": _cpu_rms_norm,
    "rotary": _cpu_rotary,
    "silu_and_mul": _cpu_silu_and_mul,
    "sampler": _cpu_sampler,
}


# --------------------------------------------------------------------------- CUDA (torch alone)


def _cuda_gemm_int8(env: Env, k: int, n: int) -> Built:
    torch = env.torch
    if k % 8 or n % 8:
        raise KernelUnavailable(f"torch._int_mm needs k and n multiples of 8, got k={k} n={n}")
    w, scales = _int8_weight(torch, k, n, env.device)
    w_t = w.t()  # [K, N] column-major: the layout cuBLASLt's int8 GEMM wants
    w_s = scales.view(1, n)

    def make(shape):
        m = shape["m"]
        rows = max(m, 17)  # torch._int_mm needs more than 16 rows
        x = torch.randn(rows, k, dtype=env.act_dtype, device=env.device)

        def run():
            x_s = x.abs().amax(dim=1, keepdim=True).float().clamp_min(1e-8) / 127.0
            x_q = (x.float() / x_s).round_().clamp_(-127, 127).to(torch.int8)
            acc = torch._int_mm(x_q, w_t)
            return (acc.float() * x_s * w_s).to(env.act_dtype)[:m]
        return run

    return Built("torch._int_mm (stand-in for vLLM's CUTLASS scaled_mm; per-token quant + scale epilogue in torch)",
                 "int8", make)


def _cuda_gemm_act(env: Env, k: int, n: int) -> Built:
    torch = env.torch
    w = _tiled(torch, n, k, env.act_dtype, env.device)

    def make(shape):
        x = torch.randn(shape["m"], k, dtype=env.act_dtype, device=env.device)
        return lambda: torch.nn.functional.linear(x, w)

    return Built("torch.nn.functional.linear (cuBLAS; vLLM's unquantised GEMM on CUDA)", env.act_dtype_name, make)


def _cuda_attention(env: Env, heads: int, kv_heads: int, head_dim: int, rows: list[dict], *, prefill: bool) -> Built:
    torch = env.torch
    sdpa = torch.nn.functional.scaled_dot_product_attention
    dev, act = env.device, env.act_dtype

    def make(shape):
        if prefill:
            b, q_len, ctx = 1, shape["tokens"], shape["tokens"]
        else:
            b, q_len, ctx = shape["batch"], 1, shape["context"]
        q = torch.randn(b, heads, q_len, head_dim, dtype=act, device=dev)
        k = torch.full((b, kv_heads, ctx, head_dim), 0.01, dtype=act, device=dev)
        v = torch.full_like(k, 0.01)
        return lambda: sdpa(q, k, v, is_causal=prefill, enable_gqa=heads != kv_heads)

    return Built("torch.nn.functional.scaled_dot_product_attention (stand-in for vLLM's paged FlashAttention; "
                 "contiguous KV)", env.act_dtype_name, make)


def _cuda_rms_norm(env: Env, hidden: int) -> Built:
    torch = env.torch
    weight = torch.ones(hidden, dtype=env.act_dtype, device=env.device)

    def make(shape):
        x = torch.randn(shape["tokens"], hidden, dtype=env.act_dtype, device=env.device)
        res = torch.randn_like(x)

        def run():
            h = x.float() + res.float()
            y = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + RMS_EPS)
            return (y.to(env.act_dtype) * weight), h.to(env.act_dtype)
        return run

    return Built("torch fused-add RMSNorm formula (stand-in for vLLM's _C.fused_add_rms_norm)", env.act_dtype_name, make)


def _cuda_rotary(env: Env, heads: int, kv_heads: int, head_dim: int) -> Built:
    torch = env.torch
    half = head_dim // 2
    cos_sin = torch.randn(ROPE_MAX_POSITIONS, head_dim, dtype=env.act_dtype, device=env.device)

    def rotate(x, cos, sin):
        x = x.view(x.shape[0], -1, head_dim)
        x1, x2 = x[..., :half], x[..., half:]
        return torch.cat((x1 * cos - x2 * sin, x2 * cos + x1 * sin), dim=-1)

    def make(shape):
        t = shape["tokens"]
        pos = torch.arange(t, device=env.device) % ROPE_MAX_POSITIONS
        q = torch.randn(t, heads * head_dim, dtype=env.act_dtype, device=env.device)
        k = torch.randn(t, kv_heads * head_dim, dtype=env.act_dtype, device=env.device)

        def run():
            cs = cos_sin[pos]
            cos, sin = cs[:, None, :half], cs[:, None, half:]
            return rotate(q, cos, sin), rotate(k, cos, sin)
        return run

    return Built("torch neox rotary formula (stand-in for vLLM's _C.rotary_embedding)", env.act_dtype_name, make)


def _cuda_silu_and_mul(env: Env, n: int) -> Built:
    torch = env.torch

    def make(shape):
        x = torch.randn(shape["tokens"], 2 * n, dtype=env.act_dtype, device=env.device)
        return lambda: torch.nn.functional.silu(x[:, :n]) * x[:, n:]

    return Built("torch F.silu·mul (stand-in for vLLM's _C.silu_and_mul)", env.act_dtype_name, make)


def _cuda_sampler(env: Env, vocab: int) -> Built:
    torch = env.torch

    def make(shape):
        logits = torch.randn(shape["batch"], vocab, dtype=env.act_dtype, device=env.device)

        def run():
            probs = logits.float().softmax(dim=-1)
            q = torch.empty_like(probs).exponential_()
            return probs.div_(q).argmax(dim=-1)
        return run

    return Built("torch softmax + exponential-race argmax (stand-in for vLLM's sampler, temperature 1.0)",
                 env.act_dtype_name, make)


_CUDA: dict[str, Callable[..., Built]] = {
    "gemm_int8": _cuda_gemm_int8,
    "gemm_act": _cuda_gemm_act,
    "attention_decode": lambda env, h, g, d, rows: _cuda_attention(env, h, g, d, rows, prefill=False),
    "attention_prefill": lambda env, h, g, d, rows: _cuda_attention(env, h, g, d, rows, prefill=True),
    "rms_norm": _cuda_rms_norm,
    "rotary": _cuda_rotary,
    "silu_and_mul": _cuda_silu_and_mul,
    "sampler": _cuda_sampler,
}
