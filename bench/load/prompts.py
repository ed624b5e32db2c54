"""The prompts a run sends: exact-length token-id prompts for each workload kind, the warm-up prompts
derived from them, and (input, output) length pairs read from a distribution file (CSV or JSONL).
Used by bench.load.client (the client) and bench.config (a distribution file is read before any run).
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from core.schema.run import Workload

Prompt = tuple[list[int], int]  # (prompt token ids, max_tokens)

DEFAULT_PREFILL_INPUT_TOKENS = 512
DEFAULT_DECODE_INPUT_TOKENS = 8
DEFAULT_DECODE_OUTPUT_TOKENS = 256
DEFAULT_MIXED_INPUT_TOKENS = 70  # LMSYS-Chat means used by the paper (Sardana et al. 2024, Table 3)
DEFAULT_MIXED_OUTPUT_TOKENS = 215

_DIST_COLUMNS = (("input_tokens", "output_tokens"), ("input", "output"), ("prompt_tokens", "completion_tokens"))


# --------------------------------------------------------------------------- prompts


def read_length_distribution(path: str | os.PathLike) -> list[tuple[int, int]]:
    """(input_tokens, output_tokens) pairs from a CSV (with a header) or a JSONL file.

    Column/key names accepted: input_tokens/output_tokens, input/output, prompt_tokens/completion_tokens.
    """
    p = Path(path)
    if not p.is_file():
        raise ValueError(f"distribution file {str(p)!r} does not exist")
    if p.suffix.lower() in (".jsonl", ".ndjson"):
        rows = [json.loads(line) for line in p.read_text().splitlines() if line.strip()]
    elif p.suffix.lower() == ".csv":
        with p.open(newline="") as fh:
            rows = list(csv.DictReader(fh))
    else:
        raise ValueError(f"distribution file {str(p)!r}: suffix must be .csv or .jsonl")
    if not rows:
        raise ValueError(f"distribution file {str(p)!r} holds no rows")
    keys = next((k for k in _DIST_COLUMNS if k[0] in rows[0] and k[1] in rows[0]), None)
    if keys is None:
        allowed = ", ".join("/".join(k) for k in _DIST_COLUMNS)
        raise ValueError(f"distribution file {str(p)!r}: columns {sorted(rows[0])} lack one of the pairs {allowed}")
    pairs = []
    for i, row in enumerate(rows):
        try:
            a, b = int(row[keys[0]]), int(row[keys[1]])
        except (TypeError, ValueError) as exc:
            raise ValueError(f"distribution file {str(p)!r} row {i + 1}: {exc}") from None
        if a < 1 or b < 1:
            raise ValueError(f"distribution file {str(p)!r} row {i + 1}: lengths must be >= 1, got ({a}, {b})")
        pairs.append((a, b))
    return pairs


def workload_lengths(workload: Workload, n: int, rng: np.random.Generator) -> list[tuple[int, int]]:
    """n (input_tokens, output_tokens) pairs for a workload (defaults in the module constants)."""
    if workload.kind == "prefill":
        return [(workload.input_tokens or DEFAULT_PREFILL_INPUT_TOKENS, 1)] * n
    if workload.kind == "decode":
        return [(workload.input_tokens or DEFAULT_DECODE_INPUT_TOKENS,
                 workload.output_tokens or DEFAULT_DECODE_OUTPUT_TOKENS)] * n
    if workload.kind == "mixed":
        return [(workload.input_tokens or DEFAULT_MIXED_INPUT_TOKENS,
                 workload.output_tokens or DEFAULT_MIXED_OUTPUT_TOKENS)] * n
    if workload.kind == "distribution":
        if not workload.distribution_file:
            raise ValueError("workload kind 'distribution' needs distribution_file")
        pairs = read_length_distribution(workload.distribution_file)
        picks = rng.integers(0, len(pairs), size=n)  # with replacement, reproducible from the seed
        return [pairs[i] for i in picks]
    raise ValueError(f"unknown workload kind {workload.kind!r}")


def make_prompts(workload: Workload, n: int, *, seed: int, token_id_low: int, token_id_high: int) -> list[Prompt]:
    """n prompts as (token ids, max_tokens); ids uniform in [token_id_low, token_id_high).

    Random ids make every prompt differ from its first token, so the server's prefix cache finds
    nothing to reuse between requests. Keep token_id_low above the tokenizer's special tokens.
    """
    if n < 0:
        raise ValueError(f"number of prompts must be >= 0, got {n}")
    if not 0 <= token_id_low < token_id_high:
        raise ValueError(f"token id range must satisfy 0 <= low < high, got [{token_id_low}, {token_id_high})")
    rng = np.random.default_rng(seed)
    lengths = workload_lengths(workload, n, rng)
    return [(rng.integers(token_id_low, token_id_high, size=inp).tolist(), out) for inp, out in lengths]


def make_warmup_prompts(prompts: Sequence[Prompt], n: int) -> list[Prompt]:
    """n warm-up prompts: the measured prompts (cycled) reversed, so same shapes, different prefixes."""
    if n and not prompts:
        raise ValueError("warm-up prompts need at least one measured prompt to copy the shape of")
    return [(list(reversed(prompts[i % len(prompts)][0])), prompts[i % len(prompts)][1]) for i in range(n)]
