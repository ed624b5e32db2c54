"""FLOP and byte estimators for a Llama-style decoder, from its Hugging Face config.

Why two conventions (ARCHITECTURE.md, "Two FLOP conventions"):

* **paper** — Sardana et al. 2024 (Sec. 2, after Kaplan et al. 2020) bill every inference token
  at 2·N flop, N = the parameters taking part in matrix multiplies. This is what the solver's
  cost-optimal Eq. 6 consumes (its MFU_inp / MFU_out constants), so MFU is reported against it.
* **hardware** — adds the attention work that 2·N leaves out: per layer and per token,
  Q·Kᵀ (2·heads·head_dim·context) and P·V (2·heads·head_dim·context), i.e.
  4·layers·heads·head_dim·context flop. It grows with context and is what the machine really does.

Parameter convention (stated once, used everywhere):

* ``params_matmul`` (= N of the paper) counts the **weight matrices** of the attention
  projections q, k, v, o, of the MLP gate, up, down, and of the ``lm_head`` (the logits
  matmul runs for every token whether or not it shares storage with the embedding).
  The embedding *lookup* is a gather, not a matmul, and is excluded. Biases and norm
  scales are element-wise adds/multiplies, not matmuls, and are excluded too (they are
  < 0.1 % of N for any real model).
* ``params_total`` counts every distinct parameter tensor the model holds: embedding,
  weight matrices, biases, norms, and ``lm_head`` only when it is *not* tied to the
  embedding (a tied head is the same tensor). This equals ``sum(p.numel() for p in
  model.parameters())`` of the transformers model.

Bytes (decode is bandwidth-bound; FACTS.md "Physics"): a decode step of a batch of b
sequences reads every weight it multiplies by once, plus each sequence's KV cache:
``bytes ≈ weight bytes read + b · context · kv_bytes_per_token``, with
``kv_bytes_per_token = 2 (K and V) · layers · kv_heads · head_dim · bytes per element``.

Everything here is pure: no torch, no transformers; ``model_info_from_dir`` only reads
``config.json`` and the safetensors headers. It is the one shape-physics module of the project
(counts, FLOP, bytes, and ``ModelShape``/``shape_for_params`` for a model that does not exist yet),
which is why it runs a little over 500 lines rather than being split in two homes.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from core.schema.run import ModelInfo

# HF config "dtype"/"torch_dtype" -> our dtype names (core.gpus.DTYPES).
# float32 maps to bf16 because vLLM's dtype=auto serves float32 checkpoints in bf16.
_TORCH_DTYPE_TO_NAME = {
    "bfloat16": "bf16",
    "float16": "fp16",
    "half": "fp16",
    "float32": "bf16",
    "float": "bf16",
}

_REQUIRED_KEYS = (
    "hidden_size",
    "num_hidden_layers",
    "num_attention_heads",
    "intermediate_size",
    "vocab_size",
)


# --------------------------------------------------------------------------- shapes


def _text_config(config: Mapping) -> Mapping:
    """Multimodal checkpoints nest the language model's shape under ``text_config``."""
    if "hidden_size" not in config and isinstance(config.get("text_config"), Mapping):
        return config["text_config"]
    return config


def _shape(config: Mapping) -> dict[str, int | bool]:
    cfg = _text_config(config)
    missing = [k for k in _REQUIRED_KEYS if k not in cfg or cfg[k] is None]
    if missing:
        raise ValueError(
            f"config is missing {', '.join(missing)}; a Llama-style config needs {', '.join(_REQUIRED_KEYS)}"
        )
    for key in ("num_local_experts", "num_experts", "n_routed_experts"):
        if (cfg.get(key) or 0) > 1:
            raise ValueError(
                f"config has {key}={cfg[key]}: mixture-of-experts models are not supported by "
                "core.physics (N would be the active parameters, which this dense count does not give)"
            )
    hidden = int(cfg["hidden_size"])
    heads = int(cfg["num_attention_heads"])
    kv_heads = int(cfg.get("num_key_value_heads") or heads)
    head_dim = int(cfg.get("head_dim") or hidden // heads)
    shape = {
        "hidden": hidden,
        "layers": int(cfg["num_hidden_layers"]),
        "heads": heads,
        "kv_heads": kv_heads,
        "head_dim": head_dim,
        "intermediate": int(cfg["intermediate_size"]),
        "vocab": int(cfg["vocab_size"]),
        # Llama: attention_bias puts a bias on q, k, v and o; Qwen2 has q, k, v biases always.
        "attention_bias": bool(cfg.get("attention_bias", False)),
        "qkv_bias_only": cfg.get("model_type") == "qwen2",
        "mlp_bias": bool(cfg.get("mlp_bias", False)),
        "tied": bool(config.get("tie_word_embeddings", cfg.get("tie_word_embeddings", False))),
    }
    for key in ("hidden", "layers", "heads", "kv_heads", "head_dim", "intermediate", "vocab"):
        if shape[key] <= 0:
            raise ValueError(f"config value for {key} must be positive, got {shape[key]}")
    if heads % kv_heads:
        raise ValueError(f"num_attention_heads={heads} is not a multiple of num_key_value_heads={kv_heads}")
    return shape


def count_params(config: Mapping) -> tuple[int, int]:
    """(params_total, params_matmul) of a Llama-style decoder from its HF config dict.

    Per layer, with d = hidden, h = heads, g = kv heads, k = head_dim, I = intermediate:
      attention weights  d·h·k (q) + 2·d·g·k (k, v) + h·k·d (o)
      MLP weights        3·d·I (gate, up, down; SwiGLU)
      norms              2·d (input and post-attention RMSNorm scales)
    plus the final norm d, the embedding V·d and the lm_head V·d.

    params_matmul = layers·(attention + MLP weights) + V·d (lm_head, tied or not).
    params_total  = layers·(attention + MLP weights + biases + norms) + d + V·d
                    + V·d again only when the head is untied.
    """
    s = _shape(config)
    d, h, g, k, i_, v = s["hidden"], s["heads"], s["kv_heads"], s["head_dim"], s["intermediate"], s["vocab"]
    attn_w = d * h * k + 2 * d * g * k + h * k * d
    mlp_w = 3 * d * i_
    bias = 0
    if s["attention_bias"]:
        bias += h * k + 2 * g * k + d
    elif s["qkv_bias_only"]:
        bias += h * k + 2 * g * k
    if s["mlp_bias"]:
        bias += 2 * i_ + d
    norms = 2 * d
    lm_head = v * d
    embedding = v * d
    params_matmul = s["layers"] * (attn_w + mlp_w) + lm_head
    params_total = s["layers"] * (attn_w + mlp_w + bias + norms) + d + embedding
    if not s["tied"]:
        params_total += lm_head
    return params_total, params_matmul


# --------------------------------------------------------------------------- quantization


def _base_dtype(config: Mapping) -> str:
    cfg = _text_config(config)
    raw = config.get("dtype") or config.get("torch_dtype") or cfg.get("dtype") or cfg.get("torch_dtype")
    if raw is None:
        return "bf16"
    return _TORCH_DTYPE_TO_NAME.get(str(raw).removeprefix("torch."), str(raw))


def _ct_scheme(weights: Mapping | None, acts: Mapping | None) -> tuple[str, str | None]:
    """(quantization name, matmul dtype or None for 'the base dtype') of one compressed-tensors group."""
    if not weights:
        return "compressed-tensors", None
    w_bits, w_type = weights.get("num_bits"), weights.get("type", "int")
    if acts:
        a_bits, a_type = acts.get("num_bits"), acts.get("type", "int")
        if w_bits == a_bits == 8 and w_type == a_type == "int":
            return "w8a8-int8", "int8"
        if w_bits == a_bits == 8 and w_type == a_type == "float":
            return "w8a8-fp8", "fp8"
        return f"w{w_bits}a{a_bits}-{w_type}", None
    # Weight-only: weights are dequantized and the matmul runs in the activation dtype.
    return f"w{w_bits}a16-{w_type}{w_bits}", None


_CT_PRESETS = {
    "W8A8": ("w8a8-int8", "int8"),
    "INT8": ("w8a8-int8", "int8"),
    "W8A16": ("w8a16-int8", None),
    "W4A16": ("w4a16-int4", None),
    "FP8": ("w8a8-fp8", "fp8"),
    "FP8_DYNAMIC": ("w8a8-fp8", "fp8"),
}


def quantization_of(config: Mapping) -> tuple[str, str]:
    """(quantization, matmul_dtype) declared by a HF config.

    The matmul dtype picks the peak (ARCHITECTURE.md): W8A8 INT8 -> "int8"; weight-only INT8
    -> the activation dtype ("bf16"); bitsandbytes LLM.int8 -> "int8"; fp8 W8A8 -> "fp8";
    no quantization -> the checkpoint's dtype.
    """
    base = _base_dtype(config)
    qc = config.get("quantization_config")
    if not qc:
        return "none", base
    method = str(qc.get("quant_method", "unknown"))
    if method == "compressed-tensors":
        found: list[tuple[str, str | None]] = []
        for name, group in (qc.get("config_groups") or {}).items():
            if isinstance(group, Mapping):
                found.append(_ct_scheme(group.get("weights"), group.get("input_activations")))
            elif str(name).upper() in _CT_PRESETS:
                found.append(_CT_PRESETS[str(name).upper()])
        if not found:
            return "compressed-tensors", base
        names = sorted({q for q, _ in found})
        quant, dtype = found[0]
        if len(names) > 1:
            # Groups differ: name them all; if any group runs its matmuls in the activation
            # dtype, that (slower) peak bounds the model, so bill the activation dtype.
            quant = "mixed:" + "+".join(names)
            dtype = None if any(dt is None for _, dt in found) else dtype
        return quant, dtype or base
    if method == "bitsandbytes":
        if qc.get("load_in_8bit"):
            return "bnb-int8", "int8"
        if qc.get("load_in_4bit"):
            return f"bnb-{qc.get('bnb_4bit_quant_type', 'nf4')}", base
        return "bitsandbytes", base
    if method == "fp8":
        return "fp8", "fp8"
    if method in ("gptq", "awq", "gptq_marlin", "awq_marlin"):
        return f"{method}-w{qc.get('bits', '?')}a16", base
    return method, base


# --------------------------------------------------------------------------- files


def safetensors_data_bytes(model_dir: str | Path) -> int | None:
    """Bytes of tensor data in every ``*.safetensors`` file of a directory (headers excluded).

    Reads only the JSON headers (8-byte little-endian length, then JSON with data_offsets).
    None when the directory holds no safetensors file.
    """
    files = sorted(Path(model_dir).glob("*.safetensors"))
    if not files:
        return None
    total = 0
    for path in files:
        with open(path, "rb") as fh:
            (n,) = struct.unpack("<Q", fh.read(8))
            header = json.loads(fh.read(n))
        for key, entry in header.items():
            if key == "__metadata__":
                continue
            start, end = entry["data_offsets"]
            total += end - start
    return total


def model_info_from_dir(model_dir: str | Path, *, name: str, source: str | None = None) -> ModelInfo:
    """ModelInfo from ``config.json`` (shape, quantization) and the safetensors (weight_bytes)."""
    model_dir = Path(model_dir)
    cfg_path = model_dir / "config.json"
    if not cfg_path.is_file():
        raise ValueError(f"{model_dir} has no config.json; give a Hugging Face model directory")
    config = json.loads(cfg_path.read_text())
    return model_info_from_config(
        config, name=name, source=source or str(model_dir), weight_bytes=safetensors_data_bytes(model_dir)
    )


def model_info_from_config(
    config: Mapping, *, name: str, source: str, weight_bytes: int | None = None
) -> ModelInfo:
    """ModelInfo from a config dict (for an --endpoint run where only the config is at hand)."""
    s = _shape(config)
    params_total, params_matmul = count_params(config)
    quantization, matmul_dtype = quantization_of(config)
    return ModelInfo(
        name=name,
        source=source,
        quantization=quantization,
        matmul_dtype=matmul_dtype,
        params_total=params_total,
        params_matmul=params_matmul,
        num_layers=s["layers"],
        hidden_size=s["hidden"],
        num_attention_heads=s["heads"],
        num_kv_heads=s["kv_heads"],
        head_dim=s["head_dim"],
        vocab_size=s["vocab"],
        weight_bytes=weight_bytes,
    )


# --------------------------------------------------------------------------- flop


def flop_per_token_paper(info: ModelInfo) -> float:
    """2·N flop per inference token, N = params_matmul (paper Sec. 2; Kaplan et al. 2020)."""
    return 2.0 * info.params_matmul


def attention_flop_per_token(info: ModelInfo, context_tokens: float) -> float:
    """Attention scores and values for one token attending to ``context_tokens`` keys.

    4 · layers · heads · head_dim · context: Q·Kᵀ is 2·heads·head_dim·context flop per layer,
    softmax(·)·V the same again (nanoGPT/PaLM's 12·L·H·Q·T training term is 3× this forward term).
    For a causal prefill of P tokens the mean context is (P + 1) / 2 (see
    ``prefill_mean_context_tokens``); vLLM's own counter does not halve, i.e. uses P.
    """
    if context_tokens < 0:
        raise ValueError(f"context_tokens must be >= 0, got {context_tokens}")
    return 4.0 * info.num_layers * info.num_attention_heads * info.head_dim * context_tokens


def flop_per_token_hardware(info: ModelInfo, context_tokens: float) -> float:
    """2·N + attention at the given mean context (ARCHITECTURE.md, hardware convention)."""
    return flop_per_token_paper(info) + attention_flop_per_token(info, context_tokens)


def prefill_mean_context_tokens(input_tokens: float, *, causal: bool = True) -> float:
    """Mean keys attended per prompt token: (P + 1) / 2 with the causal mask, P without it."""
    if input_tokens < 0:
        raise ValueError(f"input_tokens must be >= 0, got {input_tokens}")
    return (input_tokens + 1) / 2.0 if causal else float(input_tokens)


def decode_mean_context_tokens(input_tokens: float, output_tokens: float) -> float:
    """Mean keys attended per generated token: the i-th new token (i = 1..G) sees P + i keys,
    so the mean is P + (G + 1) / 2."""
    if input_tokens < 0 or output_tokens < 0:
        raise ValueError(f"token counts must be >= 0, got input={input_tokens}, output={output_tokens}")
    return input_tokens + (output_tokens + 1) / 2.0


def request_flop_paper(info: ModelInfo, input_tokens: int, output_tokens: int) -> float:
    """2·N·(P + G): the paper bills every input and output token at 2·N (Sec. 2)."""
    if input_tokens < 0 or output_tokens < 0:
        raise ValueError(f"token counts must be >= 0, got input={input_tokens}, output={output_tokens}")
    return flop_per_token_paper(info) * (input_tokens + output_tokens)


def request_flop_engine(
    info: ModelInfo, input_tokens: int, output_tokens: int, *, causal: bool = True
) -> float:
    """Flop an engine really spends on one request of P prompt and G ≥ 1 generated tokens
    (not the ARCHITECTURE.md hardware convention, which bills 2·N + attention to all P + G tokens).

    * layers (N − V·d, i.e. without the head): P prompt tokens + the G − 1 generated tokens fed
      back, each 2·(N − V·d);
    * lm_head: logits only where a token is sampled: the last prompt position and the G − 1
      decode steps, G · 2·V·d (prefill does not compute logits for the other P − 1 positions);
    * attention: 4·layers·heads·head_dim per (token, key) pair: prefill Σ_{j=1..P} j = P(P+1)/2
      pairs with the causal mask, P·P without it (``causal=False`` is vLLM's convention in
      ``vllm/v1/metrics/perf.py``, behind ``vllm:estimated_flops_per_gpu_total``); decode step i
      (i = 1..G−1) attends to P + i keys.

    With ``causal=False`` this equals vLLM's counter for a request prefilled in one chunk with
    no prefix-cache hit (tests/test_physics.py checks it against vLLM's own formulas).
    """
    if input_tokens < 1 or output_tokens < 1:
        raise ValueError(f"need input_tokens >= 1 and output_tokens >= 1, got {input_tokens}, {output_tokens}")
    p, g = input_tokens, output_tokens
    head = info.vocab_size * info.hidden_size
    layers = 2.0 * (info.params_matmul - head) * (p + g - 1)
    logits = 2.0 * head * g
    prefill_pairs = p * (p + 1) / 2 if causal else float(p * p)
    decode_pairs = (g - 1) * p + (g - 1) * g / 2
    attention = 4.0 * info.num_layers * info.num_attention_heads * info.head_dim * (prefill_pairs + decode_pairs)
    return layers + logits + attention


# --------------------------------------------------------------------------- bytes


def kv_bytes_per_token(info: ModelInfo, kv_dtype_bytes: int = 2) -> float:
    """KV-cache bytes one token occupies: 2 (K and V) · layers · kv_heads · head_dim · bytes."""
    if kv_dtype_bytes <= 0:
        raise ValueError(f"kv_dtype_bytes must be positive, got {kv_dtype_bytes}")
    return 2.0 * info.num_layers * info.num_kv_heads * info.head_dim * kv_dtype_bytes


def _dense_bytes_per_element(info: ModelInfo) -> int:
    # Embedding and norms stay in the activation dtype in every scheme we handle (INT8 W8A8,
    # bnb LLM.int8 keep them bf16/fp16); fp32 checkpoints are served in bf16 by vLLM.
    return 2


def weight_bytes_read_per_step(info: ModelInfo) -> float:
    """Weight bytes a decode step reads: every stored weight except an *untied* input embedding
    table, of which only the batch's rows are gathered (negligible).

    Untied is recognised from the counts: params_total - params_matmul >= vocab · hidden.
    When ``weight_bytes`` is unknown (no checkpoint at hand) it is estimated, as an assumption:
    layer matmul weights at 1 byte (int8/fp8 matmuls) or 2, the lm_head, norms and biases at 2.
    """
    embedding = info.vocab_size * info.hidden_size
    untied = info.params_total - info.params_matmul >= embedding
    dense_b = _dense_bytes_per_element(info)
    if info.weight_bytes is not None:
        total = float(info.weight_bytes)
        return total - embedding * dense_b if untied else total
    # Estimate: layer matmuls in the matmul dtype; lm_head (kept dense by every INT8 scheme here,
    # read once whether tied or not), norms and biases dense.
    matmul_b = 1 if info.matmul_dtype in ("int8", "fp8") else 2
    layer_matmul = info.params_matmul - embedding
    other = info.params_total - layer_matmul - embedding - (embedding if untied else 0)
    return float(layer_matmul * matmul_b + embedding * dense_b + max(other, 0) * dense_b)


def decode_bytes_per_step(
    info: ModelInfo, batch: int, mean_context_tokens: float, kv_dtype_bytes: int = 2
) -> float:
    """Bytes read from memory by one decode step of ``batch`` sequences (FACTS.md "Physics"):
    weight bytes read + batch · mean_context · kv_bytes_per_token."""
    if batch < 1:
        raise ValueError(f"batch must be >= 1, got {batch}")
    if mean_context_tokens < 0:
        raise ValueError(f"mean_context_tokens must be >= 0, got {mean_context_tokens}")
    return weight_bytes_read_per_step(info) + batch * mean_context_tokens * kv_bytes_per_token(
        info, kv_dtype_bytes
    )


# --------------------------------------------------------------------------- shapes for the step model


@dataclass(frozen=True)
class ModelShape:
    """What serving cost depends on in a model: sizes (floats, so a shape built from N is smooth in N)
    and the bytes a decode step reads / the server stores."""

    params_matmul: float  # N, paper convention (layer matmuls + lm_head)
    num_layers: float
    hidden_size: float
    num_heads: float
    num_kv_heads: float
    head_dim: float
    vocab_size: float
    weight_bytes: float  # stored for serving (memory)
    weight_bytes_read: float  # read by one decode step (no untied embedding table)
    kv_bytes_per_token: float  # 2 · layers · kv_heads · head_dim · kv bytes per element
    source: str = "config"

    @property
    def attention_flop_per_pair(self) -> float:
        """Attention flop per (query token, key) pair: 4 · layers · heads · head_dim."""
        return 4.0 * self.num_layers * self.num_heads * self.head_dim


def kv_dtype_bytes_for(server_dtype: str | None) -> int:
    """KV-cache bytes per element: vLLM's default kv_cache_dtype=auto stores the activation dtype."""
    return 4 if server_dtype in ("float32", "fp32") else 2


def shape_of(info: ModelInfo, kv_dtype_bytes: int = 2) -> ModelShape:
    """The ModelShape of a real checkpoint (from its config, weights as stored)."""
    read = weight_bytes_read_per_step(info)
    stored = float(info.weight_bytes) if info.weight_bytes is not None else read
    return ModelShape(
        params_matmul=float(info.params_matmul), num_layers=float(info.num_layers),
        hidden_size=float(info.hidden_size), num_heads=float(info.num_attention_heads),
        num_kv_heads=float(info.num_kv_heads), head_dim=float(info.head_dim),
        vocab_size=float(info.vocab_size), weight_bytes=stored, weight_bytes_read=read,
        kv_bytes_per_token=kv_bytes_per_token(info, kv_dtype_bytes), source=f"config of {info.name}",
    )  # fmt: skip


@dataclass(frozen=True)
class ShapeAssumption:
    """How a shape is built from N alone (a model that does not exist yet). Defaults: Llama-style.

    N = 12·L·d² + V·d (attention 4d² + SwiGLU MLP 8d² per layer, plus the lm_head), with a fixed
    aspect ratio d/L = 128 (GPT-3 175B 12288/96, Llama-2-7B 4096/32; Kaplan et al. 2020 Fig. 5: loss
    is flat in d/L over ~20-200), head_dim 128, at most 8 KV heads (GQA: Llama-2-70B, Llama-3),
    vocabulary 32000 (Llama-2). Weights INT8 (1 byte per layer matmul parameter + one fp32 scale per
    output channel), embedding and lm_head bf16, as W8A8 checkpoints keep them.
    """

    aspect_ratio: float = 128.0
    head_dim: float = 128.0
    kv_heads_max: float = 8.0
    vocab_size: float = 32000.0
    matmul_bytes_per_param: float = 1.0
    scale_bytes: float = 4.0
    dense_bytes_per_param: float = 2.0
    kv_dtype_bytes: float = 2.0

    def describe(self) -> str:
        return (f"assumed shape: N = 12·L·d² + V·d, d/L = {self.aspect_ratio:g}, head_dim {self.head_dim:g}, "
                f"≤{self.kv_heads_max:g} KV heads, vocab {self.vocab_size:g}, INT8 layer weights + fp32 "
                f"per-channel scales, bf16 embedding/lm_head, {self.kv_dtype_bytes:g}-byte KV cache")


def shape_for_params(params_matmul: float, a: ShapeAssumption = ShapeAssumption(), **known: float) -> ModelShape:
    """A continuous ModelShape for N matmul parameters under assumption `a`.

    `known` may pin num_layers, hidden_size, num_kv_heads, head_dim, vocab_size (what a user knows
    of the planned model); the rest follows from N. With d unknown it solves 12·d³/aspect + V·d = N
    (or 12·L·d² + V·d = N when L is known) for d.
    """
    import math

    if not (isinstance(params_matmul, (int, float)) and math.isfinite(params_matmul) and params_matmul > 0):
        raise ValueError(f"params_matmul={params_matmul!r}: must be a finite number > 0")
    allowed = {"num_layers", "hidden_size", "num_kv_heads", "head_dim", "vocab_size"}
    bad = set(known) - allowed
    if bad:
        raise ValueError(f"unknown shape keys {sorted(bad)}; allowed: {', '.join(sorted(allowed))}")
    for k, v in known.items():
        if v is not None and not (math.isfinite(v) and v > 0):
            raise ValueError(f"{k}={v!r}: must be a finite number > 0")
    known = {k: float(v) for k, v in known.items() if v is not None}
    vocab = known.get("vocab_size", a.vocab_size)
    d = known.get("hidden_size")
    layers = known.get("num_layers")
    if d is None:
        from scipy.optimize import brentq

        def excess(x: float) -> float:
            lay = layers if layers is not None else x / a.aspect_ratio
            return 12.0 * lay * x * x + vocab * x - params_matmul

        d = brentq(excess, 1e-9, max(params_matmul, 10.0), xtol=1e-12, rtol=1e-12, maxiter=500)
    if layers is None:
        layers = max((params_matmul - vocab * d) / (12.0 * d * d), 0.0) if "hidden_size" in known else d / a.aspect_ratio
    if layers <= 0:
        raise ValueError(f"N={params_matmul:g} leaves no layers beside a {vocab:g}x{d:g} lm_head")
    head_dim = known.get("head_dim", a.head_dim)
    heads = d / head_dim
    kv_heads = known.get("num_kv_heads", min(a.kv_heads_max, heads))
    head = vocab * d
    layer_params = max(params_matmul - head, 0.0)
    layer_bytes = layer_params * (a.matmul_bytes_per_param + a.scale_bytes / d)
    kv = 2.0 * layers * kv_heads * head_dim * a.kv_dtype_bytes
    return ModelShape(
        params_matmul=float(params_matmul), num_layers=layers, hidden_size=d, num_heads=heads,
        num_kv_heads=kv_heads, head_dim=head_dim, vocab_size=vocab,
        weight_bytes=layer_bytes + 2.0 * head * a.dense_bytes_per_param,
        weight_bytes_read=layer_bytes + head * a.dense_bytes_per_param,
        kv_bytes_per_token=kv, source=a.describe(),
    )  # fmt: skip
