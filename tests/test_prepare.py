"""bench.model.prepare / bench.model.quantize: build and quantize a tiny model (no vLLM here; the end-to-end
vLLM load is the session fixture of tests/conftest.py)."""

from __future__ import annotations

import argparse
import json
import os

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("compressed_tensors")

from bench.model import checkpoint as bc  # noqa: E402
from bench.model import cli as bcli  # noqa: E402
from bench.model import prepare as bp  # noqa: E402
from bench.model import quantize as bq  # noqa: E402
from core.physics import model_info_from_dir  # noqa: E402

# Small but not degenerate: GQA (4 heads, 2 KV heads), SwiGLU, untied head.
SIZE = dict(hidden_size=256, num_layers=2, num_heads=4, num_kv_heads=2, vocab_size=1024, seed=3)
LINEAR = ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
          "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj")


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("prepare")
    base = bp.build_tiny_model(root / "tiny", **SIZE)
    w8a8 = bq.quantize_w8a8(base, root / "tiny-w8a8")
    return root, base, w8a8


def _tensors(model_dir):
    from safetensors.torch import load_file

    out = {}
    for f in sorted(model_dir.glob("*.safetensors")):
        out.update(load_file(f))
    return out


def test_build_files_and_config(models):
    _, base, _ = models
    for name in ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json",
                 "generation_config.json", "prepared.json"):
        assert (base / name).is_file(), name
    config = json.loads((base / "config.json").read_text())
    assert config["architectures"] == ["LlamaForCausalLM"]
    assert (config["hidden_size"], config["num_hidden_layers"], config["num_attention_heads"],
            config["num_key_value_heads"], config["vocab_size"]) == (256, 2, 4, 2, 1024)
    assert config["intermediate_size"] == 768  # 8/3 * 256 rounded up to a multiple of 256
    assert "quantization_config" not in config
    tensors = _tensors(base)
    assert all(t.dtype == torch.bfloat16 for t in tensors.values())
    gen = json.loads((base / "generation_config.json").read_text())
    assert gen["eos_token_id"] == [1, 4] and gen["bos_token_id"] == 0


def test_build_is_seeded(models, tmp_path):
    _, base, _ = models
    again = bp.build_tiny_model(tmp_path / "again", **SIZE)
    other = bp.build_tiny_model(tmp_path / "other", **{**SIZE, "seed": 4})
    a, b, c = _tensors(base), _tensors(again), _tensors(other)
    name = "model.layers.0.self_attn.q_proj.weight"
    assert torch.equal(a[name], b[name])
    assert not torch.equal(a[name], c[name])


def test_tokenizer_round_trip_and_chat_template(models):
    from transformers import AutoTokenizer

    _, base, _ = models
    tok = AutoTokenizer.from_pretrained(str(base))
    assert len(tok) == 1024
    text = "Hello world, the model said 42 times: naïve café ✓\n  def f(x): return x"
    ids = tok(text)["input_ids"]
    assert ids[0] == tok.bos_token_id == 0
    assert all(0 <= i < 1024 for i in ids)
    assert tok.decode(ids, skip_special_tokens=True) == text
    assert len(ids) < len(text.encode())  # BPE merged something
    chat = tok.apply_chat_template(
        [{"role": "user", "content": "Hi there"}], add_generation_prompt=True, tokenize=False
    )
    assert chat == "<|bos|><|im_start|>user\nHi there<|im_end|>\n<|im_start|>assistant\n"
    assert tok.eos_token == "<|eos|>" and tok.pad_token == "<|pad|>"


def test_quantized_config_is_compressed_tensors_w8a8(models):
    _, _, w8a8 = models
    qc = json.loads((w8a8 / "config.json").read_text())["quantization_config"]
    assert qc["quant_method"] == "compressed-tensors"
    assert qc["format"] == "int-quantized"
    assert qc["quantization_status"] == "compressed"
    assert qc["ignore"] == ["lm_head"]
    (group,) = qc["config_groups"].values()
    assert group["targets"] == ["Linear"]
    w, a = group["weights"], group["input_activations"]
    assert (w["num_bits"], w["type"], w["strategy"], w["symmetric"], w["dynamic"]) == (8, "int", "channel", True, False)
    assert (a["num_bits"], a["type"], a["strategy"], a["symmetric"], a["dynamic"]) == (8, "int", "token", True, True)
    # what vLLM's loader parses it with
    from compressed_tensors.quantization import QuantizationConfig

    parsed = QuantizationConfig.model_validate(qc)
    assert parsed.config_groups["group_0"].weights.strategy == "channel"
    info = model_info_from_dir(w8a8, name="x")
    assert (info.quantization, info.matmul_dtype) == ("w8a8-int8", "int8")


def test_quantized_tensors_and_round_trip(models):
    _, base, w8a8 = models
    src, q = _tensors(base), _tensors(w8a8)
    for layer in range(2):
        for lin in LINEAR:
            key = f"model.layers.{layer}.{lin}"
            w, qw, scale = src[f"{key}.weight"], q[f"{key}.weight"], q[f"{key}.weight_scale"]
            assert qw.dtype == torch.int8 and qw.shape == w.shape
            assert scale.dtype == torch.float32 and scale.shape == (w.shape[0], 1)
            assert f"{key}.weight_zero_point" not in q  # symmetric: no zero point stored
            # every row spans the int8 range: its absmax element maps to +-127.5, which rounds
            # to 128 and clamps to 127, or to -128 (round half to even) and stays
            assert set(qw.to(torch.int16).abs().amax(dim=1).tolist()) <= {127, 128}
            deq = qw.float() * scale
            err_steps = ((w.float() - deq).abs() / scale).max().item()
            assert err_steps <= 0.5 + 1e-4
            # and the scale is the per-row absmax over 127.5 (compressed-tensors' symmetric range)
            torch.testing.assert_close(scale[:, 0], w.float().abs().amax(dim=1) / 127.5)
    # untouched: lm_head, embedding, norms stay bf16 and identical
    for key in ("lm_head.weight", "model.embed_tokens.weight", "model.norm.weight"):
        assert q[key].dtype == torch.bfloat16 and torch.equal(q[key], src[key])
    assert "lm_head.weight_scale" not in q
    # one byte per quantized weight: weights shrink
    assert model_info_from_dir(w8a8, name="x").weight_bytes < model_info_from_dir(base, name="x").weight_bytes


def test_prepared_json(models):
    _, base, w8a8 = models
    built = json.loads((base / "prepared.json").read_text())
    assert built["request"]["kind"] == "tiny-llama" and built["request"]["seed"] == 3
    assert built["model"]["params_matmul"] == model_info_from_dir(base, name="x").params_matmul
    assert built["tokenizer"]["vocab_size"] == 1024
    assert built["packages"]["torch"] == torch.__version__
    quant = json.loads((w8a8 / "prepared.json").read_text())
    assert quant["quantization"]["scheme"] == "w8a8-int8"
    assert quant["quantization"]["layers_quantized"] == 14
    assert quant["quantization"]["layers_kept_dense"] == ["lm_head"]
    assert 0.4 < quant["quantization"]["round_trip_max_error_steps"] <= 0.5 + 1e-4
    assert quant["request"]["source"]["prepared_request"] == built["request"]
    assert quant["model"]["params_total"] == built["model"]["params_total"]


def test_reuse_and_refuse(models, tmp_path):
    root, base, w8a8 = models
    mtime = (base / "model.safetensors").stat().st_mtime_ns
    assert bp.build_tiny_model(base, **SIZE) == base  # same request: reused
    assert (base / "model.safetensors").stat().st_mtime_ns == mtime
    assert bq.quantize_w8a8(base, w8a8) == w8a8
    with pytest.raises(bp.PrepareError, match="differs in: seed"):
        bp.build_tiny_model(base, **{**SIZE, "seed": 9})
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "config.json").write_text("{}")
    with pytest.raises(bp.PrepareError, match="without prepared.json"):
        bp.build_tiny_model(foreign, **SIZE)
    with pytest.raises(bp.PrepareError, match="refusing to overwrite"):
        bq.quantize_w8a8(base, foreign)
    assert (foreign / "config.json").read_text() == "{}"
    with pytest.raises(bp.PrepareError, match="already quantized"):
        bq.quantize_w8a8(w8a8, tmp_path / "twice")


def test_staged_dir_leaves_nothing_on_error(tmp_path):
    target = tmp_path / "m"
    with pytest.raises(RuntimeError):
        with bc.staged_dir(target) as tmp:
            (tmp / "config.json").write_text("{}")
            raise RuntimeError("crash")
    assert not target.exists()
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "kw, match",
    [
        (dict(hidden_size=250), "multiple of num_heads"),
        (dict(hidden_size=128, num_heads=8), "head_dim"),
        (dict(num_kv_heads=3), "multiple of num_kv_heads"),
        (dict(vocab_size=100), "vocab_size=100"),
        (dict(num_layers=0), "num_layers=0"),
        (dict(seed=-1), "seed"),
    ],
)
def test_bad_sizes(kw, match, tmp_path):
    with pytest.raises(bp.PrepareError, match=match):
        bp.build_tiny_model(tmp_path / "x", **kw)
    assert not (tmp_path / "x").exists()


def _args(**kw):
    parser = argparse.ArgumentParser()
    bcli.add_prepare_args(parser)
    argv = []
    for key, value in kw.items():
        argv += [f"--{key.replace('_', '-')}"] + ([] if value is True else [str(value)])
    return parser.parse_args(argv)


def test_cli_bad_input_exits_2(tmp_path, capsys, monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    cases = [
        (dict(model=str(tmp_path / "missing")), "no such directory"),
        (dict(model="some-org/not-cached-model", models_dir=tmp_path), "cannot fetch this hub id"),
        (dict(hidden_size=100, models_dir=tmp_path), "hidden_size=100"),
    ]
    for kw, match in cases:
        assert bcli.run_prepare(_args(**kw)) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and match in err, err
    with pytest.raises(bp.PrepareError, match="quantization='fp4'"):
        bp.prepare(quantization="fp4")


def test_prepare_existing_dirs(models, tmp_path, capsys):
    root, base, w8a8 = models
    # a pre-quantized checkpoint is served as it is
    assert bp.prepare(model=str(w8a8), quantization="w8a8-int8") == w8a8.resolve()
    with pytest.raises(bp.PrepareError, match="already quantized"):
        bp.prepare(model=str(w8a8), quantization="bnb-int8")
    # a bf16 directory is quantized into <models-dir>/<name>-w8a8, and the CLI names it last
    args = _args(model=str(base), models_dir=tmp_path)
    assert bcli.run_prepare(args) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert out[-1] == f"prepared: {tmp_path / 'tiny-w8a8'}"
    assert any("w8a8-int8 (matmuls in int8)" in line for line in out)
    assert bc.read_prepared(tmp_path / "tiny-w8a8")["quantization"]["scheme"] == "w8a8-int8"


def test_llmcompressor_missing_is_clear(models, tmp_path):
    try:
        import llmcompressor  # noqa: F401
    except ImportError:
        _, base, _ = models
        with pytest.raises(RuntimeError, match="llmcompressor is not importable"):
            bq.quantize_w8a8_llmcompressor(base, tmp_path / "lc")
    else:
        pytest.skip("llmcompressor installed here")


def test_kernel_lines():
    log = ("(Worker pid=1) INFO 11-23 14:53:18 [__init__.py:846] Selected CPUInt8ScaledMMLinearKernel "
           "for CompressedTensorsW8A8Int8\nINFO other line\n")
    assert bq.kernel_lines(log) == [log.splitlines()[0].strip()]


def test_bnb_int8_generates(models, tmp_path):
    pytest.importorskip("bitsandbytes")
    pytest.importorskip("accelerate")
    _, base, _ = models
    out = bq.quantize_bnb_int8(base, tmp_path / "bnb")
    config = json.loads((out / "config.json").read_text())
    assert config["quantization_config"]["quant_method"] == "bitsandbytes"
    assert config["quantization_config"]["load_in_8bit"] is True
    info = model_info_from_dir(out, name="b")
    assert (info.quantization, info.matmul_dtype) == ("bnb-int8", "int8")
    check = bc.read_prepared(out)["quantization"]["transformers_check"]
    assert len(check["generated_token_ids"]) == 4
    assert all(0 <= i < 1024 for i in check["generated_token_ids"])
    assert "vllm-bnb-plugin" in bc.read_prepared(out)["quantization"]["vllm"]
    int8 = [t for t in _tensors(out).values() if t.dtype == torch.int8]
    assert len(int8) == 14


def test_directory_modes_are_normal(models):
    _, base, _ = models
    umask = os.umask(0)
    os.umask(umask)
    assert base.stat().st_mode & 0o777 == 0o777 & ~umask
