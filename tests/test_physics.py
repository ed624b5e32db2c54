"""core.physics: parameter counts against transformers models, FLOP and byte formulas by hand."""

from __future__ import annotations

import json

import pytest

from core import physics as flops
from core.schema.run import ModelInfo

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")


def _llama(**kw):
    base = dict(
        vocab_size=1000, hidden_size=128, intermediate_size=352, num_hidden_layers=3,
        num_attention_heads=4, num_key_value_heads=4,
    )
    base.update(kw)
    return transformers.LlamaConfig(**base)


def _build(config, cls=None):
    cls = cls or transformers.LlamaForCausalLM
    with torch.device("meta"):  # shapes only: no memory, no init time
        return cls(config)


def _counts_from_model(model):
    total = sum(p.numel() for p in model.parameters())  # tied tensors appear once
    matmul = sum(m.weight.numel() for m in model.modules() if isinstance(m, torch.nn.Linear))
    embedding = model.get_input_embeddings().weight.numel()
    norms_and_biases = sum(
        p.numel() for n, p in model.named_parameters() if "norm" in n or n.endswith(".bias")
    )
    return total, matmul, embedding, norms_and_biases


CASES = {
    "untied-mha": dict(),
    "tied-gqa": dict(num_key_value_heads=2, tie_word_embeddings=True),
    "gqa-mqa-biases": dict(num_key_value_heads=1, attention_bias=True, mlp_bias=True),
    "explicit-head-dim": dict(head_dim=64, num_attention_heads=4, num_key_value_heads=2),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_count_params_matches_transformers(case):
    config = _llama(**CASES[case])
    model = _build(config)
    total, matmul, embedding, other = _counts_from_model(model)
    got_total, got_matmul = flops.count_params(config.to_dict())
    assert got_total == total
    assert got_matmul == matmul
    # N of the paper = every parameter but the embedding lookup, norms and biases; a tied head
    # still multiplies, so it counts once more than it is stored.
    tied = bool(CASES[case].get("tie_word_embeddings"))
    assert got_matmul == total - embedding - other + (embedding if tied else 0)


def test_count_params_qwen2_qkv_bias():
    config = transformers.Qwen2Config(
        vocab_size=800, hidden_size=128, intermediate_size=256, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=False,
    )
    model = _build(config, transformers.Qwen2ForCausalLM)
    total, matmul, _, _ = _counts_from_model(model)
    assert flops.count_params(config.to_dict()) == (total, matmul)


def test_count_params_by_hand():
    # 2 layers, d=64, 2 heads of 32, 1 kv head, I=128, V=100, untied.
    cfg = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1,
               intermediate_size=128, vocab_size=100)
    attn = 64 * 64 + 2 * 64 * 32 + 64 * 64  # q, k, v, o
    mlp = 3 * 64 * 128
    matmul = 2 * (attn + mlp) + 100 * 64
    total = 2 * (attn + mlp + 2 * 64) + 64 + 100 * 64 + 100 * 64
    assert flops.count_params(cfg) == (total, matmul)
    assert flops.count_params({**cfg, "tie_word_embeddings": True}) == (total - 100 * 64, matmul)


def test_count_params_bad_configs():
    with pytest.raises(ValueError, match="intermediate_size"):
        flops.count_params({"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2, "vocab_size": 10})
    moe = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=2, intermediate_size=128,
               vocab_size=100, num_local_experts=8)
    with pytest.raises(ValueError, match="mixture-of-experts"):
        flops.count_params(moe)
    with pytest.raises(ValueError, match="multiple"):
        flops.count_params({**moe, "num_local_experts": 1, "num_attention_heads": 4, "num_key_value_heads": 3})


def _info(**kw) -> ModelInfo:
    base = dict(
        name="t", source="t", quantization="none", matmul_dtype="bf16", params_total=0, params_matmul=0,
        num_layers=2, hidden_size=256, num_attention_heads=4, num_kv_heads=2, head_dim=64, vocab_size=2048,
    )
    base.update(kw)
    return ModelInfo(**base)


def test_flop_conventions_by_hand():
    info = _info(params_matmul=2_228_224)
    assert flops.flop_per_token_paper(info) == 4_456_448
    # 4 * layers * heads * head_dim * context = 4 * 2 * 4 * 64 * 100
    assert flops.attention_flop_per_token(info, 100) == 204_800
    assert flops.flop_per_token_hardware(info, 100) == 4_456_448 + 204_800
    assert flops.flop_per_token_hardware(info, 0) == flops.flop_per_token_paper(info)
    with pytest.raises(ValueError, match="context_tokens"):
        flops.attention_flop_per_token(info, -1)


def test_mean_context():
    assert flops.prefill_mean_context_tokens(128) == 64.5
    assert flops.prefill_mean_context_tokens(128, causal=False) == 128
    # new tokens see P+1 .. P+G keys
    assert flops.decode_mean_context_tokens(70, 215) == pytest.approx(sum(70 + i for i in range(1, 216)) / 215)


def test_kv_and_decode_bytes_by_hand():
    d, v = 256, 2048
    # untied: params_total - params_matmul >= V*d
    info = _info(params_total=2_753_792, params_matmul=2_228_224, weight_bytes=3_826_176)
    kv = 2 * 2 * 2 * 64 * 2  # K and V * layers * kv_heads * head_dim * bf16
    assert flops.kv_bytes_per_token(info) == kv
    assert flops.kv_bytes_per_token(info, kv_dtype_bytes=1) == kv / 2
    expected = 3_826_176 - v * d * 2 + 8 * 300 * kv  # the untied embedding table is not read
    assert flops.decode_bytes_per_step(info, batch=8, mean_context_tokens=300) == expected
    tied = _info(params_total=2_753_792 - v * d, params_matmul=2_228_224, weight_bytes=3_000_000)
    assert flops.decode_bytes_per_step(tied, batch=1, mean_context_tokens=0) == 3_000_000
    with pytest.raises(ValueError, match="batch"):
        flops.decode_bytes_per_step(info, batch=0, mean_context_tokens=1)


def test_decode_bytes_estimate_without_checkpoint():
    d, v = 256, 2048
    layer_matmul = 2_228_224 - v * d
    norms = 2 * (2 * d) + d
    info = _info(params_total=layer_matmul + norms + 2 * v * d, params_matmul=2_228_224, matmul_dtype="int8")
    assert flops.weight_bytes_read_per_step(info) == layer_matmul * 1 + v * d * 2 + norms * 2


W8A8 = {
    "quant_method": "compressed-tensors", "format": "int-quantized",
    "config_groups": {"group_0": {
        "targets": ["Linear"],
        "weights": {"num_bits": 8, "type": "int", "strategy": "channel", "symmetric": True, "dynamic": False},
        "input_activations": {"num_bits": 8, "type": "int", "strategy": "token", "symmetric": True, "dynamic": True},
    }},
    "ignore": ["lm_head"],
}


@pytest.mark.parametrize(
    "qc, dtype, expected",
    [
        (None, "bfloat16", ("none", "bf16")),
        (None, "float16", ("none", "fp16")),
        (W8A8, "bfloat16", ("w8a8-int8", "int8")),
        ({**W8A8, "config_groups": {"group_0": {**W8A8["config_groups"]["group_0"], "input_activations": None}}},
         "bfloat16", ("w8a16-int8", "bf16")),
        ({"quant_method": "compressed-tensors", "config_groups": {"group_0": {
            "weights": {"num_bits": 8, "type": "float"}, "input_activations": {"num_bits": 8, "type": "float"}}}},
         "bfloat16", ("w8a8-fp8", "fp8")),
        ({"quant_method": "bitsandbytes", "load_in_8bit": True}, "float16", ("bnb-int8", "int8")),
        ({"quant_method": "bitsandbytes", "load_in_4bit": True, "bnb_4bit_quant_type": "nf4"}, "float16",
         ("bnb-nf4", "fp16")),
        ({"quant_method": "gptq", "bits": 4}, "float16", ("gptq-w4a16", "fp16")),
    ],
)
def test_quantization_of(qc, dtype, expected):
    config = {"dtype": dtype}
    if qc is not None:
        config["quantization_config"] = qc
    assert flops.quantization_of(config) == expected


def test_model_info_from_dir(tmp_path):
    from safetensors.torch import save_file

    config = _llama(num_key_value_heads=2).to_dict()
    config["quantization_config"] = W8A8
    (tmp_path / "config.json").write_text(json.dumps(config))
    save_file({"a": torch.zeros(10, 20, dtype=torch.int8), "b": torch.zeros(10, 1, dtype=torch.float32)},
              tmp_path / "model-00001-of-00002.safetensors")
    save_file({"c": torch.zeros(7, dtype=torch.bfloat16)}, tmp_path / "model-00002-of-00002.safetensors")
    info = flops.model_info_from_dir(tmp_path, name="m")
    assert info.weight_bytes == 200 + 40 + 14
    assert (info.quantization, info.matmul_dtype) == ("w8a8-int8", "int8")
    assert (info.num_kv_heads, info.head_dim, info.num_layers) == (2, 32, 3)
    assert (info.params_total, info.params_matmul) == flops.count_params(config)
    assert info.source == str(tmp_path)
    with pytest.raises(ValueError, match="config.json"):
        flops.model_info_from_dir(tmp_path / "nope", name="m")


def test_request_flop_by_hand():
    d, v, layers, heads, hd = 256, 2048, 2, 4, 64
    info = _info(params_matmul=2_228_224)
    head = v * d
    p, g = 10, 3
    layer_part = 2 * (2_228_224 - head) * (p + g - 1)
    logits = 2 * head * g
    attn_causal = 4 * layers * heads * hd * (sum(range(1, p + 1)) + (p + 1) + (p + 2))
    assert flops.request_flop_engine(info, p, g) == layer_part + logits + attn_causal
    attn_full = 4 * layers * heads * hd * (p * p + (p + 1) + (p + 2))
    assert flops.request_flop_engine(info, p, g, causal=False) == layer_part + logits + attn_full
    assert flops.request_flop_paper(info, p, g) == 2 * 2_228_224 * 13
    with pytest.raises(ValueError, match="output_tokens"):
        flops.request_flop_engine(info, 5, 0)


def test_request_flop_matches_vllm_counter_formulas():
    """Our causal=False count against vLLM's own estimator (vllm/v1/metrics/perf.py, the source of
    vllm:estimated_flops_per_gpu_total), stepped the way its scheduler reports a request."""
    perf = pytest.importorskip("vllm.v1.metrics.perf")
    cfg = _llama(num_key_value_heads=2, vocab_size=4096, hidden_size=512, num_attention_heads=8,
                 intermediate_size=1536, num_hidden_layers=4).to_dict()
    info = flops.model_info_from_config(cfg, name="m", source="m")
    common = dict(num_hidden_layers=4, hidden_size=512, activation_byte_size=2, pp_size=1, weight_byte_size=1)
    metrics = [
        perf.AttentionMetrics(**common, num_attention_heads=8, tp_size=1, num_key_value_heads=2, head_dim=64,
                              cache_byte_size=2),
        perf.FfnMetrics(**common, ffn_tp_size=1, ffn_ep_size=1, intermediate_size=1536, num_moe_layers=0),
        perf.UnembedMetrics(hidden_size=512, vocab_size=4096, weight_byte_size=2, activation_byte_size=2, tp_size=1),
    ]
    p, g = 70, 215
    steps = [perf.ExecutionContext.from_single_request(p, p, is_prefill=True)]
    steps += [perf.ExecutionContext.from_single_request(1, p + i, is_prefill=False) for i in range(1, g)]
    vllm_total = sum(m.get_num_flops(ctx, per_gpu=True) for ctx in steps for m in metrics)
    assert flops.request_flop_engine(info, p, g, causal=False) == vllm_total
