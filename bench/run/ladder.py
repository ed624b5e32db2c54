"""The model ladder: several sizes of one family, each prepared and swept with the same runs.

A profile that must carry to model sizes nobody has run needs more than one size (calibrate fits
a performance model of the hardware on the ladder and checks it on sizes left out). On this
machine the ladder is built locally (random weights, INT8 W8A8): `DEFAULT_CPU_LADDER`, 2.6M, 14.7M
and 136M matmul parameters (52x), all with d/L = 128 and vocab 4096 (the earlier 15M / 98M / 763M
ladder took 39 min on a 2-core AVX2 host; its sizes stay buildable with `bench prepare`); each builds in well under a
minute and is never committed. On a GPU node the ladder is checkpoint directories or hub ids of
one family (README: the RedHatAI W8A8 Llama 3.x checkpoints, 3B / 8B / 70B).

`run_ladder` prepares every rung, then sweeps each with the same config and server settings (one
server at a time, started and stopped by `bench.run.sweep.run_from_config`), and returns the series
directories it wrote (complete runs are skipped on a re-run, as every sweep does).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.config import with_overrides
from bench.model.prepare import TinySpec, prepare
from bench.run.sweep import run_from_config

DEFAULT_CPU_CONFIG = Path(__file__).resolve().parents[1] / "data" / "ladder_cpu.toml"

DEFAULT_CPU_LADDER = (
    TinySpec(hidden_size=256, num_layers=2, num_heads=4, num_kv_heads=2, vocab_size=4096),  # 2.6M
    TinySpec(hidden_size=512, num_layers=4, num_heads=8, num_kv_heads=4, vocab_size=4096),  # 14.7M
    TinySpec(hidden_size=1152, num_layers=9, num_heads=18, num_kv_heads=9, vocab_size=4096),  # 136M
)
# Published INT8 W8A8 checkpoints of one family (Llama 3.x, compressed-tensors, from the RedHatAI
# model cards) for a GPU ladder: pass them as --ladder-model (hub access needed on that node).
GPU_LADDER_EXAMPLE = (
    "RedHatAI/Llama-3.2-3B-Instruct-quantized.w8a8",
    "RedHatAI/Meta-Llama-3.1-8B-Instruct-quantized.w8a8",
    "RedHatAI/Meta-Llama-3.1-70B-Instruct-quantized.w8a8",
)


@dataclass(frozen=True)
class Rung:
    """One ladder size: a locally built shape, or an existing model (directory or hub id)."""

    spec: TinySpec | None = None
    model: str | None = None

    def __post_init__(self):
        if (self.spec is None) == (self.model is None):
            raise ValueError("a ladder rung is either a tiny-model spec or a model, not both or neither")


def default_rungs(models: Sequence[str] | None = None) -> list[Rung]:
    """The given models as rungs, else the CPU ladder."""
    if models:
        return [Rung(model=m) for m in models]
    return [Rung(spec=s) for s in DEFAULT_CPU_LADDER]


def prepare_ladder(rungs: Sequence[Rung], *, models_dir: str | Path = "models",
                   on_status: Callable[[str], None] | None = None) -> list[Path]:
    """Prepared (INT8 W8A8) model directories of the rungs, in order; identical ones are reused."""

    say = on_status or (lambda msg: None)
    out = []
    for r in rungs:
        d = prepare(model=r.model, spec=r.spec or TinySpec(), models_dir=models_dir)
        say(f"ladder rung prepared: {d}")
        out.append(Path(d))
    return out


def run_ladder(cfg, rungs: Sequence[Rung], *, models_dir: str | Path = "models",
               on_status: Callable[[str], None] | None = None, **sweep_kwargs) -> list:
    """Prepare every rung, sweep each with `cfg` (a bench.config.SweepConfig); the sweeps' outcomes."""

    outcomes = []
    for d in prepare_ladder(rungs, models_dir=models_dir, on_status=on_status):
        outcomes.append(run_from_config(with_overrides(cfg, {"model": str(d), "model_name": None}),
                                        on_status=on_status, **sweep_kwargs))
    return outcomes
