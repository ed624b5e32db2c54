"""`python -m calibrate predict`: the contract's JSON keys, and bad input refused in one line (exit 2)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from perf_synthetic import synthetic_ladder

from calibrate.perfmodel.build import build_performance_model
from core.schema.profile import Profile

REPO = Path(__file__).resolve().parents[1]
# a committed profile of one model (no performance model): the base the synthetic ones are built on
COMMITTED = next(p for p in sorted((REPO / "results" / "calibration").glob("*.json"))
                 if json.loads(p.read_text()).get("performance_model") is None)
KEYS = ("output_tokens_per_s", "input_tokens_per_s", "ttft_s", "tpot_s", "usd_per_request")


@pytest.fixture(scope="module")
def profiles(tmp_path_factory):
    root = tmp_path_factory.mktemp("predict")
    base = Profile.load(COMMITTED)
    assert base.performance_model is None
    pm = build_performance_model(synthetic_ladder(seed=2), n_boot=6, forms=("layered",))
    with_pm = root / "with.json"
    base.model_copy(update={"performance_model": pm, "schema_version": 2}).save(with_pm)
    without = root / "without.json"
    base.save(without)
    return with_pm, without


def run(*args):
    return subprocess.run([sys.executable, "-m", "calibrate", "predict", *map(str, args)], capture_output=True,
                          text=True, cwd=REPO, timeout=300)


def test_json_contract(profiles):
    res = run(profiles[0], "--params", "3e8", "--input-tokens", "70", "--output-tokens", "215",
              "--concurrency", "1,4,16", "--json")
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert [p["concurrency"] for p in out["points"]] == [1, 4, 16]
    for p in out["points"]:
        for k in KEYS:
            assert p[k] > 0
            lo, hi = p[f"{k}_interval"]
            assert lo <= p[k] <= hi
    tput = [p["output_tokens_per_s"] for p in out["points"]]
    assert tput == sorted(tput)  # more in flight, more throughput
    assert out["provenance"].startswith("predicted")


def test_model_dir_shape(profiles, tiny_w8a8_model):
    res = run(profiles[0], "--model", tiny_w8a8_model, "--input-tokens", "8", "--output-tokens", "16", "--json")
    assert res.returncode == 0, res.stderr
    shape = json.loads(res.stdout)["shape"]
    cfg = json.loads((Path(tiny_w8a8_model) / "config.json").read_text())
    assert shape["num_layers"] == cfg["num_hidden_layers"] and shape["hidden_size"] == cfg["hidden_size"]


def test_table_output(profiles):
    res = run(profiles[0], "--params", "1e8", "--input-tokens", "70", "--output-tokens", "215", "--concurrency", "2")
    assert res.returncode == 0, res.stderr
    assert "predicted" in res.stdout and "out tok/s" in res.stdout


@pytest.mark.parametrize("args, needle", [
    (["--params", "0"], "--params"),
    (["--params", "-5e9"], "--params"),
    (["--params", "nan"], "--params"),
    (["--params", "1e400"], "--params"),
    (["--params", "1e9", "--layers", "0"], "--layers"),
    (["--params", "1e9", "--hidden", "1000", "--head-dim", "128"], "--hidden"),
    (["--params", "1e9", "--concurrency", "0,4"], "--concurrency"),
    (["--params", "1e9", "--concurrency", "a"], "--concurrency"),
    (["--params", "1e9", "--usd-per-hour", "-1"], "--usd-per-hour"),
    (["--model", "/nonexistent-dir"], "/nonexistent-dir"),
])
def test_bad_input_one_line_exit_2(profiles, args, needle):
    full = [profiles[0], *args]
    if "--input-tokens" not in args:
        full += ["--input-tokens", "70", "--output-tokens", "215"]
    res = run(*full)
    assert res.returncode == 2, res.stdout + res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0] and "Traceback" not in res.stderr


@pytest.mark.parametrize("bad", ["0", "-3", "x"])
def test_bad_token_counts(profiles, bad):
    res = run(profiles[0], "--params", "1e9", "--input-tokens", bad, "--output-tokens", "215")
    assert res.returncode == 2 and "--input-tokens" in res.stderr and len(res.stderr.strip().splitlines()) == 1


def test_profile_without_performance_model_is_refused(profiles):
    res = run(profiles[1], "--params", "1e9", "--input-tokens", "70", "--output-tokens", "215")
    assert res.returncode == 2
    assert "performance_model" in res.stderr and "--ladder" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1
