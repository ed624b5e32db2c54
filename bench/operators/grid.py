"""The grid of an operator profile, as data: which shapes are timed, in which order.

Rows (M: tokens in the step, or sequences for the LM head and the sampler). vLLM's CPU INT8 GEMMs
work on blocks of rows (the oneDNN path in blocks of 4, leftover rows costing about a single-row
pass each; the AMX kernel in tiles of 16/32), so time is *not* monotone in M: the grid puts points
either side of each block boundary (3, 4, 5; 15, 16, 17; 31, 32, 33; 63, 64, 65; 127, 128, 129)
and keeps them (calibrate.operators.interpolate never smooths them away). Above the decode range the
prefill chunk sizes follow, up to 2048 (the chunk vLLM schedules on CPU). The element-wise ops
(norms, rotary, SiLU·mul) have no row blocking: a sparser, doubling row grid serves them.

Shapes (K, N) of a Llama-style decoder with hidden d, h heads and g KV heads of size k,
intermediate I, vocabulary V:

  qkv      K = d,      N = (h + 2g)·k       (int8, W8A8)
  o        K = h·k,    N = d                (int8)
  gate_up  K = d,      N = 2·I              (int8; gate and up fused)
  down     K = I,      N = d                (int8)
  lm_head  K = d,      N = V                (the activation dtype: W8A8 checkpoints keep it unquantised)

for two families of models:
  * the shape assumption of core.physics (`ShapeAssumption`: head_dim 128, at most 8 KV heads,
    vocab 32000) at d = 256 … 8192 (doubling), with I = 8/3·d rounded up to a multiple of 256
    (Llama's rule, as bench's tiny models use): what a model nobody has run looks like;
  * the CPU ladder of bench.run.ladder (d 256 / 512 / 1152, head_dim 64, vocab 4096), so the models
    actually swept here are grid points rather than interpolations.

Order: points are grouped per model size (smallest first), so a measurement cut short by its time
budget leaves a complete profile of the smaller models rather than a patchy one of all.
Pure: no torch, no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from core.dims import ModelDims, assumed_dims

# Rows for GEMMs: decode batches with points either side of the row blocks, then prefill chunks.
GEMM_ROWS_DECODE = (1, 2, 3, 4, 5, 7, 8, 9, 12, 15, 16, 17, 24, 31, 32, 33, 48, 63, 64, 65, 96, 127, 128, 129,
                    192, 256)  # fmt: skip
PREFILL_CHUNKS = (512, 1024, 2048)
GEMM_ROWS = GEMM_ROWS_DECODE + PREFILL_CHUNKS
MAX_BATCH = GEMM_ROWS_DECODE[-1]  # sequences in one decode step (LM head rows, sampler batch)
# Element-wise ops: no blocking, time ~ affine in tokens.
TOKEN_ROWS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048)
DECODE_BATCHES = (1, 2, 4, 8, 16, 32, 64, 128, 256)
DECODE_CONTEXTS = (8, 32, 128, 512, 2048)  # 8: a decode workload of short prompts starts there
# Decode points hold at most this many cached tokens (batch · context): a CPU server's KV space
# (bench serves with VLLM_CPU_KVCACHE_SPACE=1 GiB) holds far fewer across all layers, and the cap
# keeps each attention group's cache at ~0.3 GiB (batch 256 stops at context 256, 64 at 1024).
DECODE_MAX_CACHED_TOKENS = 65536
PREFILL_TOKENS = (8, 16, 32, 64, 128, 256, 512, 1024, 2048)
SAMPLER_BATCHES = DECODE_BATCHES
STEP_OVERHEAD_CALLS = (1, 1000)

SHAPE_HIDDENS = (256, 512, 1024, 2048, 4096, 8192)


# The CPU ladder (bench.run.ladder.DEFAULT_CPU_LADDER: head_dim 64, vocab 4096), written out here
# so the grid stays data and bench.operators does not import the model-building code.
CPU_LADDER_DIMS = (
    ModelDims(hidden=256, heads=4, kv_heads=2, head_dim=64, intermediate=768, vocab=4096),
    ModelDims(hidden=512, heads=8, kv_heads=4, head_dim=64, intermediate=1536, vocab=4096),
    ModelDims(hidden=1152, heads=18, kv_heads=9, head_dim=64, intermediate=3072, vocab=4096),
)


def default_models(hiddens: Sequence[int] = SHAPE_HIDDENS) -> tuple[ModelDims, ...]:
    """The shape-assumption family at `hiddens` plus the CPU ladder, smallest hidden first."""
    models = [assumed_dims(h) for h in hiddens] + list(CPU_LADDER_DIMS)
    return tuple(sorted(models, key=lambda m: (m.hidden, m.head_dim)))


# --------------------------------------------------------------------------- the grid as groups


@dataclass(frozen=True)
class GridGroup:
    """Points of one operator that share everything but their row coordinates: built once (weights,
    KV cache) and timed at each row. `fixed` holds the shape keys common to all points (e.g. k, n),
    `rows` the varying ones (e.g. {"m": 4}); `tier` is the hidden size of the smallest model that
    needs the group (the measurement order)."""

    op: str
    fixed: tuple[tuple[str, int], ...]
    rows: tuple[tuple[tuple[str, int], ...], ...]
    tier: int
    role: str | None = None
    weight: str = "act"  # "int8" (W8A8 GEMM) or "act" (runs in the activation dtype)

    def fixed_dict(self) -> dict[str, int]:
        return dict(self.fixed)

    def points(self) -> list[dict[str, int]]:
        """Every point's full shape (fixed keys + row keys), in row order."""
        return [{**dict(self.fixed), **dict(r)} for r in self.rows]


@dataclass(frozen=True)
class Grid:
    name: str  # "full" | "quick"
    groups: tuple[GridGroup, ...]
    models: tuple[ModelDims, ...] = field(default=())

    def counts(self) -> dict[str, int]:
        """Points per operator."""
        out: dict[str, int] = {}
        for g in self.groups:
            out[g.op] = out.get(g.op, 0) + len(g.rows)
        return out

    def size(self) -> int:
        return sum(len(g.rows) for g in self.groups)


def _rows(key: str, values: Iterable[int]) -> tuple[tuple[tuple[str, int], ...], ...]:
    return tuple(((key, int(v)),) for v in values)


def _rows2(key1: str, values1: Iterable[int], key2: str, values2: Iterable[int], max_product: int | None = None):
    values2 = tuple(values2)
    return tuple(((key1, int(a)), (key2, int(b))) for a in values1 for b in values2
                 if max_product is None or a * b <= max_product)


def build_grid(
    models: Sequence[ModelDims], *, name: str = "full", gemm_rows: Sequence[int] = GEMM_ROWS,
    lm_head_rows: Sequence[int] | None = None, token_rows: Sequence[int] = TOKEN_ROWS,
    decode_batches: Sequence[int] = DECODE_BATCHES, decode_contexts: Sequence[int] = DECODE_CONTEXTS,
    prefill_tokens: Sequence[int] = PREFILL_TOKENS, sampler_batches: Sequence[int] = SAMPLER_BATCHES,
    step_overhead_calls: Sequence[int] = STEP_OVERHEAD_CALLS,
    decode_max_cached_tokens: int | None = DECODE_MAX_CACHED_TOKENS,
) -> Grid:
    """The groups timed for `models`: each distinct operator shape once, at the tier of the
    smallest model needing it. LM head rows default to the GEMM rows up to the largest decode
    batch (vLLM computes logits only for the sampled position of each sequence)."""
    max_b = max(sampler_batches) if sampler_batches else MAX_BATCH
    if lm_head_rows is None:
        lm_head_rows = [m for m in gemm_rows if m <= max(max_b, 1)]
    seen: dict[tuple, GridGroup] = {}

    def add(group: GridGroup) -> None:
        key = (group.op, group.role if group.op != "gemm" else group.weight, group.fixed)
        if key not in seen:
            seen[key] = group

    for md in sorted(models, key=lambda m: (m.hidden, m.head_dim)):
        tier = md.hidden
        heads, kv_heads, head_dim = md.attention_config
        cfg = (("heads", heads), ("kv_heads", kv_heads), ("head_dim", head_dim))
        for role, (k, n) in md.gemm_shapes().items():
            rows = lm_head_rows if role == "lm_head" else gemm_rows
            add(GridGroup("gemm", (("k", k), ("n", n)), _rows("m", rows), tier, role=role,
                          weight="act" if role == "lm_head" else "int8"))
        add(GridGroup("attention_decode", cfg, _rows2("batch", decode_batches, "context", decode_contexts,
                                                      decode_max_cached_tokens), tier))
        add(GridGroup("attention_prefill", cfg, _rows("tokens", prefill_tokens), tier))
        add(GridGroup("rms_norm", (("hidden", md.hidden),), _rows("tokens", token_rows), tier))
        add(GridGroup("rotary", cfg, _rows("tokens", token_rows), tier))
        add(GridGroup("silu_and_mul", (("n", md.intermediate),), _rows("tokens", token_rows), tier))
        add(GridGroup("sampler", (("vocab", md.vocab),), _rows("batch", sampler_batches), tier))
    groups = list(seen.values())
    if step_overhead_calls:
        groups.insert(0, GridGroup("step_overhead", (), _rows("calls", step_overhead_calls), 0))
    op_order = {"step_overhead": 0, "gemm": 1, "attention_decode": 2, "attention_prefill": 3, "rms_norm": 4,
                "rotary": 5, "silu_and_mul": 6, "sampler": 7}
    groups.sort(key=lambda g: (g.tier, op_order[g.op]))
    return Grid(name=name, groups=tuple(groups), models=tuple(models))


def full_grid() -> Grid:
    """The full grid: shape-assumption models d = 256 … 8192 and the CPU ladder."""
    return build_grid(default_models(), name="full")


def quick_grid() -> Grid:
    """A few seconds' worth for CI: the two smallest models, a handful of rows each side of a block."""
    models = (assumed_dims(256), CPU_LADDER_DIMS[0])
    return build_grid(
        models, name="quick", gemm_rows=(1, 3, 4, 5, 16, 17, 64), lm_head_rows=(1, 4),
        token_rows=(1, 16, 128), decode_batches=(1, 4), decode_contexts=(32, 128),
        prefill_tokens=(16, 128), sampler_batches=(1, 4), step_overhead_calls=(1, 100),
    )


# --------------------------------------------------------------------------- work per point


def work_of(op: str, shape: dict[str, int], *, act_bytes: int, weight_bytes: float) -> tuple[float, float]:
    """(work_flop, traffic_bytes) of one call: the useful arithmetic and the compulsory memory
    traffic (each operand read once, each result written once; caches ignored).

    gemm               2·m·k·n flop; k·n weight bytes + m·k + m·n activation bytes
    attention_decode   4·batch·heads·head_dim·context flop (Q·Kᵀ and P·V); KV read
                       2·batch·context·kv_heads·head_dim elements
    attention_prefill  4·heads·head_dim·T(T+1)/2 flop (causal pairs); Q, K, V, O once
    rms_norm           ~4 flop per element; x and residual read and written
    rotary             ~3 flop per rotated element; q and k read and written
    silu_and_mul       ~5 flop per output; 2·n read, n written per token
    sampler            ~5 flop per logit; the logits read (plus their fp32 copy written and read)
    step_overhead      0, 0
    """
    s = shape
    if op == "gemm":
        m, k, n = s["m"], s["k"], s["n"]
        return 2.0 * m * k * n, k * n * weight_bytes + (m * k + m * n) * act_bytes
    if op == "attention_decode":
        per = s["batch"] * s["context"] * s["head_dim"]
        return 4.0 * per * s["heads"], 2.0 * per * s["kv_heads"] * act_bytes
    if op == "attention_prefill":
        t = s["tokens"]
        return (4.0 * s["heads"] * s["head_dim"] * t * (t + 1) / 2,
                2.0 * t * s["head_dim"] * (s["heads"] + s["kv_heads"]) * act_bytes)
    if op == "rms_norm":
        e = s["tokens"] * s["hidden"]
        return 4.0 * e, 4.0 * e * act_bytes
    if op == "rotary":
        e = s["tokens"] * (s["heads"] + s["kv_heads"]) * s["head_dim"]
        return 3.0 * e, 2.0 * e * act_bytes
    if op == "silu_and_mul":
        e = s["tokens"] * s["n"]
        return 5.0 * e, 3.0 * e * act_bytes
    if op == "sampler":
        e = s["batch"] * s["vocab"]
        return 5.0 * e, e * (act_bytes + 8)
    return 0.0, 0.0
