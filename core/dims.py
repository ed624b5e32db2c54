"""A decoder's integer dimensions, the numbers its operators depend on, and the real shape the shape
assumption gives a hidden size (whole heads, whole layers: what a model nobody has run looks like).

Shared by bench.operators (which shapes to time) and calibrate.operators (composing a step of any
shape); core.physics holds the continuous shape used for FLOP and byte counts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from core.physics import ShapeAssumption, shape_for_params


@dataclass(frozen=True)
class ModelDims:
    """The shape numbers of a Llama-style decoder that its operators depend on."""

    hidden: int
    heads: int
    kv_heads: int
    head_dim: int
    intermediate: int
    vocab: int
    layers: int = 1

    def __post_init__(self):
        for name in ("hidden", "heads", "kv_heads", "head_dim", "intermediate", "vocab", "layers"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
                raise ValueError(f"{name}={v!r}: must be a positive integer")
        if self.heads % self.kv_heads:
            raise ValueError(f"heads={self.heads} is not a multiple of kv_heads={self.kv_heads}")

    @property
    def q_width(self) -> int:
        return self.heads * self.head_dim

    def gemm_shapes(self) -> dict[str, tuple[int, int]]:
        """(K, N) of each linear layer of one decoder layer, and of the LM head."""
        d, k = self.hidden, self.head_dim
        return {
            "qkv": (d, (self.heads + 2 * self.kv_heads) * k),
            "o": (self.heads * k, d),
            "gate_up": (d, 2 * self.intermediate),
            "down": (self.intermediate, d),
            "lm_head": (d, self.vocab),
        }

    @property
    def attention_config(self) -> tuple[int, int, int]:
        return (self.heads, self.kv_heads, self.head_dim)


def llama_intermediate(hidden: int) -> int:
    """Llama's rule: 8/3 · hidden rounded up to a multiple of 256."""
    return 256 * math.ceil(8 * hidden / 3 / 256)


_ASSUMPTION = ShapeAssumption()


def assumed_dims(hidden: int, a: ShapeAssumption = _ASSUMPTION) -> ModelDims:
    """The integer shape of a d = `hidden` model under core.physics' shape assumption."""
    head_dim = int(a.head_dim)
    heads = max(1, hidden // head_dim)
    kv_heads = int(min(a.kv_heads_max, heads))
    while heads % kv_heads:
        kv_heads -= 1
    return ModelDims(hidden=hidden, heads=heads, kv_heads=kv_heads, head_dim=head_dim,
                     intermediate=llama_intermediate(hidden), vocab=int(a.vocab_size))


def dims_of(*, num_layers: int, hidden_size: int, num_attention_heads: int, num_kv_heads: int, head_dim: int,
            vocab_size: int, params_matmul: float) -> ModelDims:
    """The integer dimensions of a model described by a run's ModelInfo (core.schema.run), whose
    config does not store the MLP width: it is solved from N = L·(attention + 3·d·I) + V·d (the
    paper's N, layer matmuls plus the LM head; core.physics.count_params), and must come out whole."""
    d, L, h, g, k = hidden_size, num_layers, num_attention_heads, num_kv_heads, head_dim
    attention = d * (h + 2 * g) * k + h * k * d
    width = ((params_matmul - vocab_size * d) / L - attention) / (3 * d)
    inter = round(width)
    if inter <= 0 or abs(width - inter) > 1e-6 * max(1.0, width):
        raise ValueError(f"params_matmul={params_matmul:g} does not give a whole MLP width for hidden {d}, "
                         f"{L} layers, {h}/{g} heads of {k}, vocab {vocab_size} (got {width:.3f})")
    return ModelDims(hidden=d, heads=h, kv_heads=g, head_dim=k, intermediate=inter, vocab=vocab_size, layers=L)


def params_of(dims: ModelDims) -> int:
    """N (paper convention: layer matmuls + LM head) of integer dimensions."""
    d, k = dims.hidden, dims.head_dim
    attention = d * (dims.heads + 2 * dims.kv_heads) * k + dims.heads * k * d
    return dims.layers * (attention + 3 * d * dims.intermediate) + dims.vocab * d


def real_dims_for_params(params_matmul: float, a: ShapeAssumption = ShapeAssumption(), *,
                         num_layers: int | None = None, hidden_size: int | None = None,
                         num_kv_heads: int | None = None, head_dim: int | None = None,
                         vocab_size: int | None = None) -> ModelDims:
    """A real model shape near N under assumption `a`: whole layers, a hidden size that is a whole
    number of heads, whole KV heads dividing the heads, Llama's MLP width (8/3·d rounded up to 256).
    from kv_max heads up a multiple of the KV heads (grouped-query attention, as real models have them).
    For each hidden size within 0.5-2x the continuous solution of core.physics.shape_for_params, the
    whole layer counts either side of N; the shape scoring best on |log N ratio| + 0.05·|log (d/L) /
    aspect| wins (N first, then the assumed aspect ratio); pinned values are kept. Its N (`params_of`) differs from the one asked by the rounding."""

    pins = {"num_layers": num_layers, "hidden_size": hidden_size, "num_kv_heads": num_kv_heads,
            "head_dim": head_dim, "vocab_size": vocab_size}
    cont = shape_for_params(params_matmul, a, **{k: v for k, v in pins.items() if v is not None})
    hd = int(head_dim or a.head_dim)
    vocab = int(vocab_size or a.vocab_size)
    if hidden_size is not None and hidden_size % hd:
        raise ValueError(f"hidden_size={hidden_size} is not a multiple of head_dim={hd}")
    units = cont.hidden_size / hd
    kv_max = int(num_kv_heads or a.kv_heads_max)
    # whole heads; from kv_max heads up, a multiple of the KV heads (grouped-query attention, as real models)
    hidden_options = [hidden_size] if hidden_size else [
        hd * u for u in range(max(1, math.floor(0.5 * units)), math.ceil(2.0 * units) + 2) if u < kv_max or u % kv_max == 0]
    best = None
    for d in hidden_options:
        heads = d // hd
        kv = int(num_kv_heads or min(kv_max, heads))
        if heads % kv:
            if num_kv_heads:
                continue
            while heads % kv:
                kv -= 1
        one = ModelDims(hidden=d, heads=heads, kv_heads=kv, head_dim=hd, intermediate=llama_intermediate(d),
                        vocab=vocab, layers=1)
        per_layer = params_of(one) - vocab * d
        if num_layers:
            layer_options = [num_layers]
        else:
            est = (params_matmul - vocab * d) / per_layer
            layer_options = sorted({max(1, math.floor(est)), max(1, math.ceil(est))})
        for L in layer_options:
            dims = ModelDims(hidden=d, heads=heads, kv_heads=kv, head_dim=hd, intermediate=one.intermediate,
                             vocab=vocab, layers=int(L))
            # N first (a 1 % miss costs as much as a 20 % change of the aspect ratio), then d/L near the assumption
            score = abs(math.log(params_of(dims) / params_matmul)) + 0.05 * abs(math.log(d / L / a.aspect_ratio))
            if best is None or score < best[0]:
                best = (score, dims)
    if best is None:
        raise ValueError(f"no real shape with {num_kv_heads} KV heads dividing the heads near N={params_matmul:g}")
    return best[1]
