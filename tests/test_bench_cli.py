"""`python -m bench` on bad input: exit 2 and one line naming the bad value and what is allowed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def bench(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bench", *args], capture_output=True, text=True, cwd=REPO,
                          timeout=120)


@pytest.mark.parametrize(
    "args, must_say",
    [
        (("run", "--workload", "foo"), ["'foo'", "prefill", "decode", "mixed"]),
        (("run", "--concurrency", "0,2"), ["'0,2'", "positive integers"]),
        (("run", "--num-requests", "0"), ["--num-requests", "'0'", "> 0"]),
        (("run", "--warmup", "x"), ["--warmup", "'x'", "integer"]),
        (("run", "--usd-per-hour", "nan"), ["--usd-per-hour", "'nan'", ">= 0"]),
        (("run", "--peak-flop-per-s", "int9=1"), ["'int9=1'", "int8"]),
        (("sweep", "--config", "/nonexistent.toml"), ["/nonexistent.toml", "no such file"]),
        (("run",), ["no model", "--model"]),
        (("run", "--model", "/nonexistent", "--workload", "decode", "--concurrency", "1"), ["/nonexistent"]),
        (("prepare", "--quantization", "bogus"), ["'bogus'", "w8a8-int8"]),
        (("hardware", "--device", "-1"), ["--device", "'-1'", ">= 0"]),
        (("hardware", "--seconds", "inf"), ["--seconds", "'inf'", "finite"]),
        (("sweep", "--config", "bench/data/sweep_cpu.toml", "--endpoint", "notaurl"), ["'notaurl'", "http://"]),
    ],
)
def test_bad_input_exits_2_with_one_line(args, must_say):
    done = bench(*args)
    assert done.returncode == 2, (done.returncode, done.stderr[-2000:])
    lines = [ln for ln in done.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    for text in must_say:
        assert text in lines[0], (text, lines[0])


def test_help_shows_examples():
    for sub in ("run", "sweep", "prepare", "hardware"):
        done = bench(sub, "--help")
        assert done.returncode == 0
        assert "python -m bench " + sub in done.stdout, sub


HEAVY = ("vllm", "transformers", "tokenizers", "safetensors", "compressed_tensors", "aiohttp", "rich",
         "prometheus_client", "huggingface_hub", "calibrate", "solver")


def test_hardware_gpu_without_cuda_fails_soft_and_imports_only_what_it_needs():
    """`python -m bench hardware --gpu` needs torch, numpy, pydantic and nvidia-ml-py only (a plain
    checkout on a GPU node); where CUDA is absent it says so in one line, writes nothing, exits 1."""
    pytest.importorskip("torch")
    import torch

    if torch.cuda.is_available():
        pytest.skip("CUDA is available here: this test is for machines without it")
    done = subprocess.run([sys.executable, "-X", "importtime", "-m", "bench", "hardware", "--gpu",
                           "--cache-dir", "/nonexistent/hw"], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert done.returncode == 1
    lines = [ln for ln in done.stderr.splitlines() if ln.strip() and not ln.startswith("import time:")]
    assert len(lines) == 1 and "no CUDA device to measure" in lines[0] and "nothing written" in lines[0], lines
    imported = {ln.split("|")[-1].strip().split(".")[0] for ln in done.stderr.splitlines() if ln.startswith("import time:")}
    assert not imported & set(HEAVY), sorted(imported & set(HEAVY))


@pytest.mark.parametrize("args, needle", [
    (["--model", "models/x"], "--ladder-model"),
    (["--ladder-model", "/nonexistent/dir"], "/nonexistent/dir"),
    (["--ladder-model", "./nope", "--concurrency", "0"], "--concurrency"),
])
def test_ladder_bad_input_one_line_exit_2(args, needle):
    done = subprocess.run([sys.executable, "-m", "bench", "ladder", *args], capture_output=True, text=True,
                          cwd=REPO, timeout=120)
    assert done.returncode == 2, done.stdout + done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0] and "Traceback" not in done.stderr
