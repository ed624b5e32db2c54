"""The whole chain for real, as README's first command runs it: `python -m pipeline`.

prepare (the session's tiny INT8 W8A8 model, passed through as pre-quantized) -> a short sweep on
vLLM's CPU backend (the session's server, through --endpoint, so CI starts vLLM once) -> calibrate
-> report. Checks every stage's files and that the report's numbers are the profile's.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from core.schema.profile import Profile

REPO = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.vllm


def test_pipeline_runs_the_whole_chain(cpu_vllm, cpu_sweep_session, tmp_path):
    cfg = tmp_path / "short.toml"
    cfg.write_text(
        "num_requests = 4\nwarmup = 1\n[server]\nmax_model_len = 512\n"
        '[[runs]]\nworkload = "prefill"\ninput_tokens = 96\nconcurrency = [2]\n'
        '[[runs]]\nworkload = "decode"\ninput_tokens = 8\noutput_tokens = 24\nconcurrency = [2]\n'
        '[[runs]]\nworkload = "mixed"\ninput_tokens = 40\noutput_tokens = 40\nconcurrency = [2]\n'
    )
    peak = cpu_sweep_session.hardware.peak_flop_per_s["int8"]
    results = tmp_path / "results"
    argv = [
        sys.executable, "-m", "pipeline", "--quick", "--model", str(cpu_vllm.model_dir),
        "--config", str(cfg), "--results", str(results), "--models-dir", str(tmp_path / "models"),
        "--usd-per-hour", "0.1", "--name", "pipeline <script>alert(1)</script>",
        "--sweep-args", f"--endpoint {cpu_vllm.base_url} --served-name {cpu_vllm.served_name} "
                        f"--hardware-name cpu-session --peak-flop-per-s int8={peak}",
        "--calibrate-args", "--bootstrap 200 --min-run-duration-s 0 --min-run-waves 0 --min-run-requests 0",  # short by design
    ]  # fmt: skip
    done = subprocess.run(argv, capture_output=True, text=True, cwd=REPO, timeout=900,
                          env=dict(os.environ, PYTHONPATH=str(REPO)))
    assert done.returncode == 0, done.stderr[-4000:]
    report = Path(done.stdout.strip().splitlines()[-1])
    report = report if report.is_absolute() else REPO / report
    assert report.parent == results / "reports"
    for name in ("report.md", "report.html", "solution.json", "decode_curve.png"):
        assert (report / name).stat().st_size > 0, name

    runs = sorted(results.rglob("run.json"))
    assert len(runs) == 3  # one per spec, all complete
    assert all(json.loads(p.read_text())["status"] == "complete" for p in runs)

    (profile_path,) = (results / "calibration").glob("*.json")
    profile = Profile.model_validate_json(profile_path.read_text())
    assert 0 < profile.mfu_input.value < 1 and 0 < profile.mfu_output.value < 1
    assert len(profile.provenance.runs) == 3

    solution = json.loads((report / "solution.json").read_text())
    text = json.dumps(solution)
    assert profile_path.name in text  # the report names the profile it was computed from
    html = (report / "report.html").read_text()
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;" in html
