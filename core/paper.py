"""The settings of Sardana et al. 2024 ("Beyond Chinchilla-Optimal", arXiv:2401.00448v2), in one object.

Appendix B.2/B.3 (and Figure 6's caption) state them: requests of 70 input and 215 output tokens
(the LMSYS-Chat means), 50 % MFU for training and for input tokens (prefill), 1 % for output tokens
(decode); inference on A100-40GB at $1.10/h with INT8 at 624e12 dense FLOP/s, training on A100-80GB
at $1.50/h with bf16 at 312e12 dense FLOP/s. The solver, the report and the CLI defaults read
`PAPER`; nothing else spells these numbers out. The GPU keys name rows of core/data/gpus.toml,
whose datasheet peaks agree with the paper's (tests/test_paper_settings.py checks that).
"""

from __future__ import annotations

from dataclasses import dataclass

SECONDS_PER_HOUR = 3600.0


@dataclass(frozen=True)
class PaperGpu:
    """One GPU as the paper prices it: table key, datatype, $/GPU-hour and dense peak of that datatype."""

    gpu: str  # alias in core/data/gpus.toml
    dtype: str  # one of core.gpus.DTYPES
    usd_per_h: float
    peak_flop_per_s: float
    source: str


@dataclass(frozen=True)
class PaperSettings:
    """Appendix B.2/B.3 of Sardana et al. 2024: request shape, MFUs, inference and training GPUs."""

    input_tokens_per_request: int
    output_tokens_per_request: int
    tokens_source: str
    mfu_train: float
    mfu_input: float  # prefill
    mfu_output: float  # decode
    mfu_source: str
    inference: PaperGpu
    training: PaperGpu

    @property
    def mfu(self) -> dict[str, float]:
        """{"train", "input", "output"} -> MFU (the phases' names used across the solver)."""
        return {"train": self.mfu_train, "input": self.mfu_input, "output": self.mfu_output}


PAPER = PaperSettings(
    input_tokens_per_request=70,
    output_tokens_per_request=215,
    tokens_source="Sardana et al. 2024, Appendix B.2: LMSYS-Chat mean input and output tokens per request",
    mfu_train=0.5,
    mfu_input=0.5,
    mfu_output=0.01,
    mfu_source="Sardana et al. 2024, Appendix B.3: 50 % MFU for training and input tokens, 1 % for output tokens",
    inference=PaperGpu(
        gpu="a100-40gb", dtype="int8", usd_per_h=1.10, peak_flop_per_s=624e12,
        source="Sardana et al. 2024, Appendix B.3: inference on A100-40GB, $1.10/h, INT8 624 TFLOP/s dense",
    ),
    training=PaperGpu(
        gpu="a100-80gb", dtype="bf16", usd_per_h=1.50, peak_flop_per_s=312e12,
        source="Sardana et al. 2024, Appendix B.3: training on A100-80GB, $1.50/h, bf16 312 TFLOP/s dense",
    ),
)  # fmt: skip
