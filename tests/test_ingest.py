"""calibrate.runs.ingest: vllm bench serve and guidellm result files as profile inputs.

The files under tests/data/ingest/ are small hand-made results with known costs: at concurrency 2
each request occupies its slot for 2 x (a n_in + b (n_out - 1)) seconds with a = 1 ms per input
token and b = 20 ms per decode token on one device (jitter of a few per cent), laid out as a closed loop."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from calibrate.cli import main as calibrate_main
from calibrate.profile import build as P
from calibrate.runs import ingest as I
from calibrate.runs import load as R
from core.errors import InputError
from core.files import sha256_file
from core.schema.profile import Profile

DATA = Path(__file__).parent / "data" / "ingest"
A_TRUE, B_TRUE = 1e-3, 2e-2


@pytest.fixture
def model():
    return I.model_info(name="auto", params_matmul=1_000_000, quantization="w8a8-int8")


@pytest.fixture
def hw():
    return I.hardware_info(name="my-test-gpu", peak_flop_per_s=1e12, usd_per_h=2.0)


def test_vllm_detailed_decode(model, hw):
    path = DATA / "vllm_bench_decode_c2.json"
    (run,) = I.load_vllm_bench_json(path, model=model, hardware=hw)
    raw = json.loads(path.read_text())
    rec = run.record
    assert run.source == "vllm-bench-serve" and run.sha256 == sha256_file(path)
    assert rec.config.mode == "concurrency" and rec.config.concurrency == 2
    assert rec.config.workload.kind == "decode"
    assert rec.config.model.name == "meta-llama-Llama-2-7b-hf" and rec.config.model.params_matmul == 1_000_000
    s = rec.summary
    assert (s.num_ok, s.num_failed, s.input_tokens_total, s.output_tokens_total) == (8, 0, 64, 256)
    assert s.valid
    assert s.duration_s == pytest.approx(raw["duration"], rel=1e-6)
    # seconds, not milliseconds
    assert s.ttft_s.mean == pytest.approx(raw["mean_ttft_ms"] / 1000, rel=1e-3)
    assert s.tpot_s.p90 == pytest.approx(raw["p90_tpot_ms"] / 1000, rel=1e-3)
    assert run.requests is not None and len(run.requests.e2e_s) == 8
    assert run.requests.e2e_s[0] == pytest.approx(raw["latencies"][0])


def test_vllm_summary_only(model, hw):
    (run,) = I.load_vllm_bench_json(DATA / "vllm_bench_mixed_c2_summary_only.json", model=model, hardware=hw)
    raw = json.loads((DATA / "vllm_bench_mixed_c2_summary_only.json").read_text())
    assert run.requests is None
    s = run.record.summary
    assert s.output_tokens_total == raw["total_output_tokens"] and s.duration_s == raw["duration"]
    assert s.tpot_s.p90 == pytest.approx(raw["p90_tpot_ms"] / 1000)
    assert s.ttft_s.p50 == pytest.approx(raw["median_ttft_ms"] / 1000)
    assert run.record.config.workload.kind == "mixed"
    assert run.record.config.workload.input_tokens == 70


def test_vllm_appended_results_and_failures(model, hw):
    runs = I.load_vllm_bench_json(DATA / "vllm_bench_appended.jsonl", model=model, hardware=hw)
    assert [r.record.config.concurrency for r in runs] == [1, 2]
    assert runs[0].path.endswith("#0") and runs[1].path.endswith("#1")
    (bad,) = I.load_vllm_bench_json(DATA / "vllm_bench_decode_c2_failures.json", model=model, hardware=hw)
    assert bad.record.summary.num_failed == 1 and not bad.record.summary.valid
    _, dropped = R.screen_runs([bad])
    assert dropped[0].reason.startswith("summary.valid is false")


def test_vllm_open_loop_is_rate_mode(model, hw, tmp_path):
    data = json.loads((DATA / "vllm_bench_mixed_c2_summary_only.json").read_text())
    data["request_rate"] = 4.0
    data["max_concurrency"] = None
    f = tmp_path / "rate.json"
    f.write_text(json.dumps(data))
    (run,) = I.load_vllm_bench_json(f, model=model, hardware=hw)
    assert run.record.config.mode == "rate" and run.record.config.request_rate_per_s == 4.0


def test_vllm_missing_field_names_it(model, hw, tmp_path):
    data = json.loads((DATA / "vllm_bench_decode_c2.json").read_text())
    del data["duration"]
    f = tmp_path / "bad.json"
    f.write_text(json.dumps(data))
    with pytest.raises(InputError, match=r"bad\.json: duration: missing"):
        I.load_vllm_bench_json(f, model=model, hardware=hw)


def test_guidellm_report(model, hw):
    runs = I.load_guidellm_json(DATA / "guidellm_benchmarks.json", model=model, hardware=hw)
    assert [r.record.config.concurrency for r in runs] == [1, 2]
    assert [r.record.config.workload.kind for r in runs] == ["prefill", "decode"]
    assert runs[1].record.summary.output_tokens_total == 8 * 32
    assert all(r.source == "guidellm" for r in runs)


def test_guidellm_sampled_requests_refused(model, hw, tmp_path):
    data = json.loads((DATA / "guidellm_benchmarks.json").read_text())
    data["benchmarks"][1]["scheduler_metrics"]["requests_made"]["successful"] = 100
    f = tmp_path / "benchmarks.json"
    f.write_text(json.dumps(data))
    with pytest.raises(InputError, match="sampled"):
        I.load_guidellm_json(f, model=model, hardware=hw)


def test_infer_workload():
    assert I.infer_workload([128] * 3, [1] * 3) == "prefill"
    assert I.infer_workload([8] * 3, [128] * 3) == "decode"
    assert I.infer_workload([70] * 3, [215] * 3) == "mixed"
    assert I.infer_workload([70, 90], [215, 100]) == "distribution"


def test_profile_from_vllm_bench_recovers_costs(model, hw):
    runs = []
    for name in ("vllm_bench_prefill_c2.json", "vllm_bench_decode_c2.json"):
        runs += I.load_vllm_bench_json(DATA / name, model=model, hardware=hw)
    prof = P.build_profile(runs, n_boot=300)
    assert prof.provenance.inputs == "vllm-bench-serve"
    assert prof.operating_concurrency == 2
    assert prof.seconds_per_input_token.value == pytest.approx(A_TRUE, rel=0.1)
    assert prof.seconds_per_output_token.value == pytest.approx(B_TRUE, rel=0.1)


def run_cli(argv, capsys):
    try:
        code = calibrate_main(["profile", *(str(a) for a in argv)])
    except SystemExit as exc:  # a usage error (bad flag value): argparse exits 2
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_with_foreign_results(tmp_path, capsys):
    out = tmp_path / "p.json"
    common = ["--params", "1000000", "--hardware", "my-test-gpu", "--usd-per-hour", "2",
              "--peak-flop-per-s", "1e12", "--quantization", "w8a8-int8", "--bootstrap", "100", "--out", out]
    code, stdout, err = run_cli(["--vllm-bench-json", DATA / "vllm_bench_prefill_c2.json",
                                 DATA / "vllm_bench_decode_c2.json", *common], capsys)
    assert code == 0, err
    assert stdout.strip().splitlines()[-1] == str(out)
    prof = Profile.model_validate_json(out.read_text())
    assert prof.hardware.usd_per_h == 2.0 and prof.hardware.peak_flop_per_s == 1e12
    assert prof.mfu_output.value == pytest.approx(2e6 / (prof.seconds_per_output_token.value * 1e12))
    code, _, err = run_cli(["--guidellm-json", DATA / "guidellm_benchmarks.json", *common, "--force"], capsys)
    assert code == 0, err  # prefill at c=1 and decode at c=2: phase-isolated
    assert "phase-isolated" in Profile.model_validate_json(out.read_text()).provenance.method


def test_cli_foreign_bad_input(tmp_path, capsys):
    f = DATA / "vllm_bench_decode_c2.json"
    code, _, err = run_cli(["--vllm-bench-json", f, "--hardware", "x", "--usd-per-hour", "1"], capsys)
    assert code == 2 and "--params" in err and len(err.strip().splitlines()) == 1
    code, _, err = run_cli(["--vllm-bench-json", f, "--params", "1000", "--hardware", "no-such-hardware"], capsys)
    assert code == 2 and "--usd-per-hour" in err
    bad = tmp_path / "nan.json"
    data = json.loads(f.read_text())
    data["duration"] = float("nan")
    bad.write_text(json.dumps(data))
    code, _, err = run_cli(["--vllm-bench-json", bad, "--params", "1000", "--hardware", "x", "--usd-per-hour", "1"],
                           capsys)
    assert code == 2 and "nan.json: duration" in err
