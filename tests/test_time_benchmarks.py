"""benchmarks/sweep_time.py on the committed runs and benchmarks/host_speed.py for a second: each
part is computed (figures belong to the closing note and docs/measurements.md, not to a test)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RUNS = REPO / "results" / "validation" / "2026-12-08"
OPERATORS = RUNS / "operators" / "cpu-intel-xeon-processor-amx-2c.json"
FITTED = REPO / "results" / "calibration" / "cpu-intel-xeon-processor-amx-2c-validation-20261208-ladder.json"


def run(script: str, *args):
    return subprocess.run([sys.executable, str(REPO / "benchmarks" / script), *map(str, args)], capture_output=True,
                          text=True, cwd=REPO)


def test_sweep_time_sets_each_models_predicted_seconds_beside_the_measured():
    for extra in ((), ("--fitted", FITTED)):
        res = run("sweep_time.py", OPERATORS, RUNS, *extra)
        assert res.returncode == 0, res.stderr
        out = res.stdout
        models = re.findall(r"^(tiny-llama-h\d+-l\d+-w8a8) +14 +([\d.]+) +([\d.]+) +([\d.]+)", out, re.M)
        assert [m[0] for m in models] == ["tiny-llama-h256-l2-w8a8", "tiny-llama-h512-l4-w8a8",
                                          "tiny-llama-h1280-l10-w8a8"]
        assert all(float(p) > 0 and float(m) > 0 for _, p, m, _ in models)
        assert re.search(r"^all: 42 runs of 3 models; requests predicted \d+ s, measured \d+ s", out, re.M)
        assert ("fitted: " in out) == bool(extra)


def test_host_speed_times_every_cpu():
    res = run("host_speed.py", "--seconds", "1", "--period", "0.05")
    assert res.returncode == 0, res.stderr
    cpus = re.findall(r"^cpu (\d+): (\d+) samples, p5 \d+, p50 \d+, p95 \d+", res.stdout, re.M)
    assert cpus and all(int(n) > 0 for _, n in cpus)


def test_session_drift_sets_within_and_between_session_deviation_apart():
    v = REPO / "results" / "validation"
    res = run("session_drift.py", v / "2026-12-07d", v / "2026-12-08")
    assert res.returncode == 0, res.stderr
    shared = re.findall(r"^  (tiny-llama-h\d+-l\d+-w8a8) ", res.stdout, re.M)
    assert set(shared) == {"tiny-llama-h256-l2-w8a8", "tiny-llama-h512-l4-w8a8"}  # the sizes both sessions swept
    assert re.search(r"^within a session .* median [\d.]+%, worst [\d.]+% over \d+ runs", res.stdout, re.M)
    assert re.search(r"^between sessions .* median [\d.]+%, worst [\d.]+% over 28 session means", res.stdout, re.M)
    bad = run("session_drift.py", v / "2026-12-08")
    assert bad.returncode == 2 and "two or more" in bad.stderr
