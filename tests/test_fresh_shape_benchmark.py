"""benchmarks/fresh_shape.py on the committed runs: a shape the ladder never saw, measured after the
profile, set beside both predictions; a ladder size measured again shows the drift between sessions.
Figures are not asserted (they belong to the closing note), only that each part is computed."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "benchmarks" / "fresh_shape.py"
PROFILE = REPO / "results" / "calibration" / "cpu-intel-xeon-processor-amx-2c-validation-20261207b-ladder.json"
FRESH = REPO / "results" / "validation" / "2026-12-07c"


def run(*args):
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], capture_output=True, text=True, cwd=REPO)


def test_fresh_shapes_are_predicted_both_ways_and_a_ladder_size_gives_the_drift():
    res = run(PROFILE, FRESH)
    assert res.returncode == 0, res.stderr
    out = res.stdout
    fresh = [line for line in out.splitlines() if line.strip().startswith("fresh ")]
    assert fresh and all("tiny-llama-h512-l4-w8a8" not in line for line in fresh)  # a ladder size is not "fresh"
    assert {m for line in fresh for m in re.findall(r"tiny-llama-h\d+-l\d+-w8a8", line)} == {
        "tiny-llama-h896-l5-w8a8", "tiny-llama-h1408-l11-w8a8"}
    assert all("operators" in line and "forms" in line for line in fresh)
    assert re.search(r"^operators: output_tokens_per_s median [\d.]+% worst [\d.]+%", out, re.M)
    assert re.search(r"^ +forms: output_tokens_per_s median", out, re.M)
    assert "drift of tiny-llama-h512-l4-w8a8" in out


def test_a_refit_needs_the_ladder_runs_and_known_terms():
    res = run(PROFILE, FRESH, "--refit-terms", "layer")
    assert res.returncode == 2 and "go together" in res.stderr
    res = run(PROFILE, FRESH, "--refit-terms", "layer,bogus", "--ladder-runs", REPO / "results/validation/2026-12-07b")
    assert res.returncode == 2 and "bogus" in res.stderr
