"""The operator profile on disk: `results/hardware/<hardware-name>-operators.json`.

One `OperatorRecord` per timed point: the operator, the shape keys that operator has (the others
stay None), the median and the 10th/90th percentiles of its repeats, how many repeats, and which
implementation was timed (`impl`: vLLM's own op, e.g. "vllm._C.onednn_scaled_mm", or a torch
stand-in labelled "(stand-in)"). Shape keys per operator:

  gemm               m (rows = tokens in the step), k (input features), n (output features);
                     `dtype` says the weight type ("int8" for W8A8 layers; "bf16"/"fp32" for the
                     unquantised LM head); `role` (qkv, o, gate_up, down, lm_head) is informational
  attention_decode   batch (sequences, one query token each), context (cached tokens per sequence),
                     heads, kv_heads, head_dim
  attention_prefill  tokens (one sequence's prompt, causal, no cached prefix), heads, kv_heads, head_dim
  rms_norm           tokens, hidden
  rotary             tokens, heads, kv_heads, head_dim
  silu_and_mul       tokens, n (the MLP's intermediate width: input 2·n, output n)
  sampler            batch (sequences sampled), vocab
  step_overhead      calls (empty op dispatches timed together): a lower bound of the fixed per-step
                     cost, not the cost itself (bench.operators.measure explains)

Units are in the names (`_s`, `_bytes`, `_flop`). Every model rejects unknown keys, so a typo in a
file is an error and not a silently ignored field. pydantic only; `load_profile` is the one reader.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationError, model_validator

from core.errors import SchemaError
from core.schema.base import Strict, one_line

OPERATORS = (
    "gemm", "attention_decode", "attention_prefill", "rms_norm", "rotary", "silu_and_mul", "sampler",
    "step_overhead",
)  # fmt: skip
OperatorName = Literal[
    "gemm", "attention_decode", "attention_prefill", "rms_norm", "rotary", "silu_and_mul", "sampler",
    "step_overhead",
]

# The shape keys each operator must carry (and no others).
SHAPE_KEYS: dict[str, tuple[str, ...]] = {
    "gemm": ("m", "k", "n"),
    "attention_decode": ("batch", "context", "heads", "kv_heads", "head_dim"),
    "attention_prefill": ("tokens", "heads", "kv_heads", "head_dim"),
    "rms_norm": ("tokens", "hidden"),
    "rotary": ("tokens", "heads", "kv_heads", "head_dim"),
    "silu_and_mul": ("tokens", "n"),
    "sampler": ("batch", "vocab"),
    "step_overhead": ("calls",),
}
ALL_SHAPE_KEYS = ("m", "k", "n", "batch", "context", "heads", "kv_heads", "head_dim", "tokens", "hidden",
                  "vocab", "calls")  # fmt: skip


class OperatorProfileError(SchemaError):
    """A profile file that cannot be read or does not match the schema (one line)."""


class OperatorRecord(Strict):
    """One timed point: an operator at one shape on this device."""

    op: OperatorName
    impl: str  # what ran: "vllm._C.onednn_scaled_mm", "torch.nn.functional.scaled_dot_product_attention (stand-in)"
    dtype: str  # weights / activations the op ran on: "int8", "bf16", "fp32"
    role: str | None = None  # gemm only: qkv | o | gate_up | down | lm_head
    m: int | None = Field(default=None, gt=0)
    k: int | None = Field(default=None, gt=0)
    n: int | None = Field(default=None, gt=0)
    batch: int | None = Field(default=None, gt=0)
    context: int | None = Field(default=None, gt=0)
    heads: int | None = Field(default=None, gt=0)
    kv_heads: int | None = Field(default=None, gt=0)
    head_dim: int | None = Field(default=None, gt=0)
    tokens: int | None = Field(default=None, gt=0)
    hidden: int | None = Field(default=None, gt=0)
    vocab: int | None = Field(default=None, gt=0)
    calls: int | None = Field(default=None, gt=0)
    median_s: float = Field(gt=0)
    p10_s: float = Field(gt=0)
    p90_s: float = Field(gt=0)
    repeats: int = Field(gt=0)
    work_flop: float | None = Field(default=None, ge=0)  # useful arithmetic of one call (2·m·k·n for a GEMM)
    traffic_bytes: float | None = Field(default=None, ge=0)  # compulsory memory traffic of one call (weights, KV, activations)

    @model_validator(mode="after")
    def _shape_keys_match_op(self) -> OperatorRecord:
        want = SHAPE_KEYS[self.op]
        missing = [k for k in want if getattr(self, k) is None]
        extra = [k for k in ALL_SHAPE_KEYS if k not in want and getattr(self, k) is not None]
        if missing or extra:
            raise ValueError(f"{self.op} needs shape keys {', '.join(want)}"
                             + (f"; missing {', '.join(missing)}" if missing else "")
                             + (f"; not allowed {', '.join(extra)}" if extra else ""))
        for name in ("median_s", "p10_s", "p90_s"):
            if not math.isfinite(getattr(self, name)):
                raise ValueError(f"{name} must be finite")
        if not self.p10_s <= self.median_s <= self.p90_s:
            raise ValueError(f"need p10_s <= median_s <= p90_s, got {self.p10_s}, {self.median_s}, {self.p90_s}")
        return self

    def shape(self) -> dict[str, int]:
        """The shape keys of this record's operator, as a dict."""
        return {k: getattr(self, k) for k in SHAPE_KEYS[self.op]}


class SkippedPoint(Strict):
    """A grid point that was not timed (time budget spent, or the op could not run), and why."""

    op: OperatorName
    shape: dict[str, int]
    role: str | None = None
    reason: str


class ProfileProvenance(Strict):
    date_utc: str
    versions: dict[str, str | None]
    git_commit: str | None = None
    loadavg_1_5_15: list[float] | None = None  # at the end of the measurement (its own threads included)
    # measured: the share of the host's CPU time other processes took during the measurement
    # (bench.hardware.hostload; None where it cannot be read, and in profiles made before 2026-12-07)
    other_cpu_share: float | None = None
    method: str


class OperatorProfile(Strict):
    """results/hardware/<hardware-name>-operators.json: the operator table of one device."""

    schema_version: Literal[1] = 1
    kind: Literal["operator-profile"] = "operator-profile"
    name: str  # hardware name: cpu-intel-xeon-processor-amx-2c, or the GPU table key
    device_name: str  # what the CPU / CUDA reports
    device_kind: Literal["cpu", "cuda"]
    threads: int = Field(gt=0)  # torch intra-op threads used (CPU); 1 on CUDA
    isa_tier: str | None = None  # CPU only: amx | avx512 | avx2 | base
    activation_dtype: str  # dtype vLLM would run activations in here: bf16, or fp32 without bf16 units
    grid: Literal["full", "quick"]
    budget_s: float = Field(gt=0)  # the time budget the measurement was given
    measurement_wall_s: float = Field(ge=0)  # what it took, building tensors included
    notes: list[str] = Field(default_factory=list)  # what is a stand-in and why; what is not covered
    provenance: ProfileProvenance
    records: list[OperatorRecord]
    skipped: list[SkippedPoint] = Field(default_factory=list)

    def of(self, op: str, dtype: str | None = None) -> list[OperatorRecord]:
        """The records of one operator (and weight dtype, when given)."""
        return [r for r in self.records if r.op == op and (dtype is None or r.dtype == dtype)]


def profile_from_dict(data: object, *, where: str = "operator profile") -> OperatorProfile:
    """Validate a parsed JSON object; OperatorProfileError (one line) when it does not match."""
    try:
        return OperatorProfile.model_validate(data)
    except ValidationError as exc:
        raise OperatorProfileError(f"{where}: {one_line(exc)}") from None


def load_profile(path: str | os.PathLike) -> OperatorProfile:
    """The profile at `path`; OperatorProfileError (one line) when it is not JSON or does not match."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise OperatorProfileError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
    return profile_from_dict(data, where=str(path))


def profile_to_json(profile: OperatorProfile) -> str:
    """The file's text (indented JSON, trailing newline)."""
    return profile.model_dump_json(indent=2, exclude_none=True) + "\n"
