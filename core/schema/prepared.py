"""A prepared model's record, `models/<name>/prepared.json` (bench.model.checkpoint writes it)."""

from __future__ import annotations

from typing import Any, Literal

from core.schema.base import Strict
from core.schema.run import ModelShapeFields

PREPARED_FILE = "prepared.json"
PREPARED_SCHEMA_VERSION = 1


class PreparedModelShape(ModelShapeFields):
    """prepared.json `model`: the shape and sizes of the prepared checkpoint (core.physics)."""

    architecture: str
    params_total: int
    params_matmul: int
    params_provenance: str
    weight_bytes: int | None
    weight_bytes_provenance: str
    quantization: str
    matmul_dtype: str


class PreparedRecord(Strict):
    """prepared.json: how a model directory was built (bench.model.prepare / bench.model.quantize).

    `request` is what was asked for (a directory is reused only for the same request); the
    sections say how: `weights` (built here), `source` (quantized from), `tokenizer`, `quantization`.
    """

    schema_version: Literal[1] = PREPARED_SCHEMA_VERSION
    kind: Literal["bench.prepared_model"] = "bench.prepared_model"
    name: str
    created_utc: str
    built_by: str
    # Extension points (documented in docs/bench-prepare.md): what each quantizer and source records
    # differs by path (round-to-nearest, llmcompressor, LLM.int8; a tiny build, a local checkpoint, a hub id),
    # so these stay open mappings; `model` (the shape every reader needs) is typed.
    request: dict[str, Any]  # the prepare request as given (flags), echoed
    model: PreparedModelShape
    weights: dict[str, Any] | None = None  # per-source weight facts (files, bytes, dtype)
    source: dict[str, Any] | None = None  # the source's fingerprint (a hub revision, a directory's hashes)
    tokenizer: dict[str, Any] | None = None  # how the tokenizer was built or found
    quantization: dict[str, Any]  # the quantizer's own settings and its check
    packages: dict[str, str | None]


# --------------------------------------------------------------------------- hardware cache
