"""`python -m bench prepare`: the model a benchmark serves.

Three ways to get one (docs/bench-prepare.md):

1. **Built here** (the default where nothing can be downloaded): a small Llama-architecture
   model from a ``transformers.LlamaConfig`` with seeded random weights saved in bf16, a
   byte-level BPE tokenizer trained locally with ``tokenizers`` on generated text, a chat
   template and a ``generation_config.json``. Random weights cost exactly the same flop and
   bytes per token as trained ones, which is all a throughput benchmark needs.
2. **An existing directory or hub id** (``--model``), loaded through transformers'
   ``AutoConfig`` / ``AutoModelForCausalLM.from_pretrained``. A checkpoint that already
   declares a ``quantization_config`` (the usual pre-quantized INT8 model on a GPU node) is
   used as it is.
3. **Quantized** (``bench.model.quantize``): INT8 W8A8 in the compressed-tensors format (what vLLM
   runs on INT8 kernels on A100 and on this CPU), or bitsandbytes LLM.int8.

Every directory written here carries a ``prepared.json`` (how it was built, seed, sizes,
parameter counts, quantization, package versions; core.schema.prepared.PreparedRecord). bench.model.checkpoint
reuses a directory only for the same request and builds each in a temporary sibling renamed into
place; bench.model.corpus is the generated text the tokenizer is trained on.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

from bench.model import quantize as q
from bench.model.checkpoint import PrepareError, check_reuse, prepared_record, staged_dir, write_prepared
from bench.model.corpus import BOS, EOS, IM_END, PAD, SPECIAL_TOKENS, training_corpus
from core.physics import quantization_of

BUILDER_VERSION = 1  # bump when build_tiny_model's output for the same arguments changes

PROG = "python -m bench prepare"
SCHEMES = ("w8a8-int8", "bnb-int8", "none")
QUANTIZERS = ("direct", "llmcompressor")

# ChatML-style; BOS comes from the template because chat requests are tokenized without
# special tokens (transformers' apply_chat_template, vLLM's chat endpoint).
CHAT_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
MIN_VOCAB_SIZE = 512  # 5 special tokens + 256 byte symbols + room for merges
# Head sizes vLLM's CPU attention backend accepts (vllm/v1/attention/backends/cpu_attn.py).
CPU_HEAD_SIZES = (32, 64, 80, 96, 112, 128, 160, 192, 224, 256, 512)


# --------------------------------------------------------------------------- tiny model spec


@dataclass(frozen=True)
class TinySpec:
    """Shape of the locally built model. The CLI default (hidden 512, 4 layers, 8 heads of 64,
    4 KV heads, intermediate 1536, vocab 4096: 14.7 M matmul parameters) is large enough that
    matmuls, not per-step overhead, are a visible share of a decode step on vLLM's CPU backend,
    and small enough for a CPU sweep in minutes (docs/bench-prepare.md)."""

    hidden_size: int = 256
    num_layers: int = 2
    num_heads: int = 4
    num_kv_heads: int = 4
    intermediate_size: int | None = None
    vocab_size: int = 2048
    max_position: int = 2048
    seed: int = 0
    tie_embeddings: bool = False

    def resolved_intermediate(self) -> int:
        """Llama's rule: 8/3 · hidden rounded up to a multiple of 256 (SwiGLU keeps 3 matrices
        at ~the flop of a 4·hidden GELU MLP)."""
        if self.intermediate_size is not None:
            return self.intermediate_size
        return 256 * math.ceil(8 * self.hidden_size / 3 / 256)

    def validate(self) -> None:
        positive = ("hidden_size", "num_layers", "num_heads", "num_kv_heads", "vocab_size", "max_position")
        for key in positive:
            value = getattr(self, key)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise PrepareError(f"{key}={value!r}: must be a positive integer")
        if self.intermediate_size is not None and (
            not isinstance(self.intermediate_size, int) or self.intermediate_size <= 0
        ):
            raise PrepareError(f"intermediate_size={self.intermediate_size!r}: must be a positive integer or None")
        if self.hidden_size % self.num_heads:
            raise PrepareError(
                f"hidden_size={self.hidden_size} is not a multiple of num_heads={self.num_heads}"
            )
        head_dim = self.hidden_size // self.num_heads
        if head_dim not in CPU_HEAD_SIZES:
            raise PrepareError(
                f"head_dim = hidden_size / num_heads = {head_dim}; vLLM's CPU attention allows "
                f"{', '.join(map(str, CPU_HEAD_SIZES))}"
            )
        if self.num_heads % self.num_kv_heads:
            raise PrepareError(
                f"num_heads={self.num_heads} is not a multiple of num_kv_heads={self.num_kv_heads}"
            )
        if self.vocab_size < MIN_VOCAB_SIZE:
            raise PrepareError(f"vocab_size={self.vocab_size}: must be >= {MIN_VOCAB_SIZE}")
        if not isinstance(self.seed, int) or self.seed < 0:
            raise PrepareError(f"seed={self.seed!r}: must be an integer >= 0")

    def default_name(self) -> str:
        return f"tiny-llama-h{self.hidden_size}-l{self.num_layers}"


CLI_DEFAULT_SPEC = TinySpec(hidden_size=512, num_layers=4, num_heads=8, num_kv_heads=4, vocab_size=4096)

# For the --help epilog of `python -m bench prepare` (bench/cli.py).
PREPARE_EXAMPLES = """examples:
  python -m bench prepare                        # tiny local Llama (N = 14.7 M), INT8 W8A8 -> models/tiny-llama-h512-l4-w8a8
  python -m bench prepare --quantization none    # the bf16 tiny model -> models/tiny-llama-h512-l4
  python -m bench prepare --hidden-size 256 --num-layers 2 --vocab-size 2048   # smaller, faster sweeps
  python -m bench prepare --quantization bnb-int8  # bitsandbytes LLM.int8 (vLLM needs vllm-bnb-plugin)
  python -m bench prepare --model /data/Llama-3.1-8B-Instruct          # quantize a local bf16 model to W8A8
  python -m bench prepare --model RedHatAI/Meta-Llama-3.1-8B-Instruct-quantized.w8a8   # pre-quantized: used as is
  python -m bench prepare --check-vllm           # also load it in vLLM and name the linear kernel chosen
"""


# --------------------------------------------------------------------------- tokenizer

def train_tokenizer(vocab_size: int, *, seed: int = 0, max_position: int = 2048):
    """A byte-level BPE ``PreTrainedTokenizerFast`` with exactly ``vocab_size`` entries.

    Ids 0..4 are the special tokens (bos, eos, pad, im_start, im_end), then the 256 byte
    symbols and the learned merges; if the corpus cannot supply enough merges the remainder
    is filled with ``<|reserved_i|>`` special tokens (as Llama 3 does), so model and tokenizer
    agree on the vocabulary size. Returns (tokenizer, info dict for prepared.json).
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    corpus = training_corpus(seed, vocab_size)
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    # Train on lines so one corpus string does not become one giant "word" per whitespace run.
    tok.train_from_iterator(corpus.splitlines(keepends=True), trainer=trainer)
    trained = tok.get_vocab_size()
    reserved = max(0, vocab_size - trained)
    if reserved:
        tok.add_special_tokens([f"<|reserved_{i}|>" for i in range(reserved)])
    if tok.get_vocab_size() != vocab_size:
        raise RuntimeError(f"tokenizer has {tok.get_vocab_size()} entries, expected {vocab_size}")
    bos_id = tok.token_to_id(BOS)
    tok.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A", pair=f"{BOS} $A $B:1", special_tokens=[(BOS, bos_id)]
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=BOS,
        eos_token=EOS,
        pad_token=PAD,
        model_max_length=max_position,
        chat_template=CHAT_TEMPLATE,
        clean_up_tokenization_spaces=False,
    )
    info = {
        "kind": "byte-level BPE trained locally with tokenizers",
        "trained_on": f"{len(corpus.encode())} bytes of generated text "
                      f"(bench.model.corpus.training_corpus, seed {seed}, vocab_size {vocab_size})",
        "vocab_size": vocab_size,
        "learned_vocab_size": trained,
        "reserved_tokens": reserved,
        # Ordinary (non-special) token ids: the range bench.load.client should draw prompt ids from.
        "ordinary_token_id_low": len(SPECIAL_TOKENS),
        "ordinary_token_id_high": trained - 1,
        "special_tokens": {name: tok.token_to_id(name) for name in SPECIAL_TOKENS},
        "chat_template": "ChatML (<|im_start|>role\\ncontent<|im_end|>)",
    }
    return fast, info


# --------------------------------------------------------------------------- build


def build_tiny_model(
    out_dir: str | Path,
    *,
    hidden_size: int = 256,
    num_layers: int = 2,
    num_heads: int = 4,
    num_kv_heads: int = 4,
    intermediate_size: int | None = None,
    vocab_size: int = 2048,
    max_position: int = 2048,
    seed: int = 0,
    tie_embeddings: bool = False,
    name: str | None = None,
) -> Path:
    """Build (or reuse) a random-weight Llama model with its tokenizer in ``out_dir``; bf16.

    Weights: ``LlamaForCausalLM(config)`` initialised after ``torch.manual_seed(seed)``
    (normal, std = initializer_range 0.02), cast to bf16, saved with ``save_pretrained``.
    """
    spec = TinySpec(
        hidden_size=hidden_size, num_layers=num_layers, num_heads=num_heads, num_kv_heads=num_kv_heads,
        intermediate_size=intermediate_size, vocab_size=vocab_size, max_position=max_position, seed=seed,
        tie_embeddings=tie_embeddings,
    )
    spec.validate()
    out_dir = Path(out_dir)
    name = name or out_dir.name
    request = {"kind": "tiny-llama", "builder_version": BUILDER_VERSION, **asdict(spec),
               "intermediate_size": spec.resolved_intermediate()}
    if check_reuse(out_dir, request):
        return out_dir

    import torch
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    tokenizer, tok_info = train_tokenizer(spec.vocab_size, seed=spec.seed, max_position=spec.max_position)
    special = tok_info["special_tokens"]
    config = LlamaConfig(
        vocab_size=spec.vocab_size,
        hidden_size=spec.hidden_size,
        intermediate_size=spec.resolved_intermediate(),
        num_hidden_layers=spec.num_layers,
        num_attention_heads=spec.num_heads,
        num_key_value_heads=spec.num_kv_heads,
        max_position_embeddings=spec.max_position,
        bos_token_id=special[BOS],
        eos_token_id=special[EOS],
        pad_token_id=special[PAD],
        tie_word_embeddings=spec.tie_embeddings,
        rms_norm_eps=1e-5,
        initializer_range=0.02,
    )
    with torch.random.fork_rng(devices=[]):  # seed the init without touching the caller's RNG
        torch.manual_seed(spec.seed)
        model = LlamaForCausalLM(config).to(torch.bfloat16).eval()
    model.generation_config = GenerationConfig(
        bos_token_id=special[BOS],
        eos_token_id=[special[EOS], special[IM_END]],  # stop at end of text and at end of a chat turn
        pad_token_id=special[PAD],
    )
    with staged_dir(out_dir) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        record = prepared_record(
            name=name, request=request, model_dir=tmp, built_by="bench.model.prepare.build_tiny_model",
            weights={
                "init": "random: LlamaForCausalLM init, normal(0, 0.02) after torch.manual_seed(seed), cast to bf16",
                "seed": spec.seed,
                "dtype": "bf16",
            },
            tokenizer=tok_info,
            quantization={"scheme": "none"},
        )
        write_prepared(tmp, record)
    return out_dir


# --------------------------------------------------------------------------- the prepare flow


def _resolve_source(model: str) -> tuple[str, dict]:
    """(local directory or hub id, raw config dict) through transformers' loading path."""
    path = Path(model).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise PrepareError(f"--model {model}: directory has no config.json (not a Hugging Face model)")
        return str(path.resolve()), json.loads((path / "config.json").read_text())
    if path.exists():
        raise PrepareError(f"--model {model}: is a file; give a model directory or a hub id")
    if model.startswith((".", "/", "~")) or model.count("/") != 1:
        raise PrepareError(f"--model {model}: no such directory, and not a hub id of the form owner/name")
    try:
        from huggingface_hub import snapshot_download

        # Config, tokenizer and weights; the real loading path on a machine with a hub connection.
        local = snapshot_download(
            model, allow_patterns=["*.json", "*.safetensors", "*.jinja", "*.model", "*.txt", "*.py"]
        )
    except Exception as exc:  # offline, gated, missing: all end the same way for the user
        raise PrepareError(
            f"--model {model}: cannot fetch this hub id ({type(exc).__name__}); this machine may be offline "
            "(HF_HUB_OFFLINE) or the repository gated; download it elsewhere and pass the local directory"
        ) from None
    return local, json.loads((Path(local) / "config.json").read_text())


def _suffix(quantization: str) -> str:
    return {"w8a8-int8": "-w8a8", "bnb-int8": "-bnb-int8", "none": ""}[quantization]


def prepare(
    *,
    model: str | None = None,
    quantization: str = "w8a8-int8",
    out_dir: str | Path | None = None,
    name: str | None = None,
    models_dir: str | Path = "models",
    spec: TinySpec = CLI_DEFAULT_SPEC,
    quantizer: str = "direct",
    check_generate: bool = True,
) -> Path:
    """The whole ``python -m bench prepare`` flow; returns the directory to serve.

    No ``model``: build the tiny model ``models/<name>`` (bf16) and, unless quantization is
    "none", quantize it into ``models/<name>-w8a8`` (or ``-bnb-int8``). With ``model`` (a local
    directory or hub id): a checkpoint declaring a ``quantization_config`` is returned as it is;
    otherwise it is quantized into ``models/<name><suffix>``.
    """
    if quantization not in SCHEMES:
        raise PrepareError(f"quantization={quantization!r}: allowed {', '.join(SCHEMES)}")
    if quantizer not in QUANTIZERS:
        raise PrepareError(f"quantizer={quantizer!r}: allowed {', '.join(QUANTIZERS)}")
    if quantizer == "llmcompressor" and quantization != "w8a8-int8":
        raise PrepareError("quantizer='llmcompressor' produces w8a8-int8 only")
    models_dir = Path(models_dir)

    if model is None:
        spec.validate()
        base_name = spec.default_name()
        if quantization == "none":
            target = Path(out_dir) if out_dir else models_dir / (name or base_name)
            return build_tiny_model(target, name=name or target.name, **asdict(spec))
        src = build_tiny_model(models_dir / base_name, name=base_name, **asdict(spec))
        final_name = name or base_name + _suffix(quantization)
    else:
        local, config = _resolve_source(model)
        if config.get("quantization_config"):
            declared, _ = quantization_of(config)
            if quantization not in ("none", declared):
                raise PrepareError(
                    f"--model {model} is already quantized ({declared}); re-quantizing to {quantization} is not "
                    f"supported: pass --quantization none (or {declared}) to serve it as it is"
                )
            return Path(local)
        if quantization == "none":
            return Path(local)
        src = Path(local)
        final_name = name or Path(model.rstrip("/")).name.lower() + _suffix(quantization)

    target = Path(out_dir) if out_dir else models_dir / final_name

    if quantization == "bnb-int8":
        return q.quantize_bnb_int8(src, target, name=final_name, check_generate=check_generate)
    if quantizer == "llmcompressor":
        return q.quantize_w8a8_llmcompressor(src, target, name=final_name)
    return q.quantize_w8a8(src, target, name=final_name)

