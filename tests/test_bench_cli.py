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
    for sub in ("run", "sweep", "prepare"):
        done = bench(sub, "--help")
        assert done.returncode == 0
        assert "python -m bench " + sub in done.stdout, sub
