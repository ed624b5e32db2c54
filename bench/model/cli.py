"""`python -m bench prepare`: the flags, and the CLI body over bench.model.prepare.prepare."""

from __future__ import annotations

import argparse
import sys

from bench.model.prepare import CLI_DEFAULT_SPEC, PROG, QUANTIZERS, SCHEMES, TinySpec, prepare
from bench.model.quantize import check_vllm
from core.cli import bad_input
from core.physics import model_info_from_dir


def add_prepare_args(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``python -m bench prepare``."""
    d = CLI_DEFAULT_SPEC
    parser.add_argument("--model", default=None, metavar="DIR|OWNER/NAME",
                        help="existing model directory or hub id (default: build the tiny local model)")
    parser.add_argument("--quantization", default="w8a8-int8", choices=SCHEMES,
                        help="w8a8-int8: compressed-tensors INT8 W8A8 (vLLM INT8 kernels); bnb-int8: bitsandbytes "
                             "LLM.int8 via transformers (vLLM needs the vllm-bnb-plugin); none: bf16 (default %(default)s)")
    parser.add_argument("--quantizer", default="direct", choices=QUANTIZERS,
                        help="direct: round-to-nearest with torch + compressed-tensors (default); llmcompressor: "
                             "SmoothQuant + GPTQ, needs llmcompressor importable (a venv of its own, see docs)")
    parser.add_argument("--out", default=None, help="output directory (default: <models-dir>/<name>)")
    parser.add_argument("--name", default=None, help="model name used in paths (default: from the size or source)")
    parser.add_argument("--models-dir", default="models", help="where prepared models go (default %(default)s, git-ignored)")
    g = parser.add_argument_group("tiny model (when --model is not given)")
    g.add_argument("--hidden-size", type=int, default=d.hidden_size)
    g.add_argument("--num-layers", type=int, default=d.num_layers)
    g.add_argument("--num-heads", type=int, default=d.num_heads)
    g.add_argument("--num-kv-heads", type=int, default=d.num_kv_heads)
    g.add_argument("--intermediate-size", type=int, default=d.intermediate_size)
    g.add_argument("--vocab-size", type=int, default=d.vocab_size)
    g.add_argument("--max-position", type=int, default=d.max_position)
    g.add_argument("--seed", type=int, default=d.seed)
    g.add_argument("--tie-embeddings", action="store_true", help="share the embedding with the lm_head")
    parser.add_argument("--no-check", action="store_true", help="skip the transformers generation check (bnb-int8)")
    parser.add_argument("--check-vllm", action="store_true",
                        help="after preparing, load the model in vLLM (offline, CPU or GPU), generate a few tokens "
                             "and report the linear kernel it chose (~30-60 s on CPU)")


def run_prepare(args: argparse.Namespace) -> int:
    """CLI body: prepare, print a short table, name the directory on the last line; 2 on bad input."""
    spec = TinySpec(
        hidden_size=args.hidden_size, num_layers=args.num_layers, num_heads=args.num_heads,
        num_kv_heads=args.num_kv_heads, intermediate_size=args.intermediate_size, vocab_size=args.vocab_size,
        max_position=args.max_position, seed=args.seed, tie_embeddings=args.tie_embeddings,
    )
    try:
        path = prepare(
            model=args.model, quantization=args.quantization, out_dir=args.out, name=args.name,
            models_dir=args.models_dir, spec=spec, quantizer=args.quantizer, check_generate=not args.no_check,
        )
    except ValueError as exc:  # PrepareError and bad configs (core.physics): the input is wrong
        return bad_input(PROG, str(exc))
    except RuntimeError as exc:  # a check that failed (generation, llmcompressor missing)
        print(f"{PROG}: failed: {exc}", file=sys.stderr)
        return 1

    info = model_info_from_dir(path, name=path.name)
    rows = [
        ("model", str(path)),
        ("quantization", f"{info.quantization} (matmuls in {info.matmul_dtype})"),
        ("shape", f"{info.num_layers} layers, hidden {info.hidden_size}, heads {info.num_attention_heads} "
                  f"(kv {info.num_kv_heads}, dim {info.head_dim}), vocab {info.vocab_size}"),
        ("params_total", f"{info.params_total:,}"),
        ("params_matmul (N)", f"{info.params_matmul:,}"),
        ("weight bytes", "unknown" if info.weight_bytes is None else f"{info.weight_bytes / 2**20:.2f} MiB"),
    ]
    if args.check_vllm:
        try:
            result = check_vllm(path)
        except RuntimeError as exc:
            print(f"{PROG}: vLLM check failed: {exc}", file=sys.stderr)
            return 1
        rows.append(("vLLM linear kernel", result["kernel_line"] or "not logged"))
        rows.append(("vLLM generated", f"{len(result['token_ids'])} tokens"))
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"{key:<{width}}  {value}")
    print(f"prepared: {path}")
    return 0
