"""`python -m solver`: the contract spellings, JSON output and one-line exit-2 errors."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from solver import cli

ROOT = Path(__file__).resolve().parents[1]


def run_main(capsys, *argv):
    try:
        rc = cli.main(list(argv))
    except SystemExit as exc:  # argparse errors
        rc = exc.code
    out, err = capsys.readouterr()
    return rc, out, err


def test_flops_json_contract(capsys):
    rc, out, err = run_main(capsys, "optimize", "--objective", "flops", "--chinchilla-params", "7e9",
                            "--inference-tokens", "2e11", "--json")
    assert rc == 0, err
    r = json.loads(out)
    for key in ("params", "train_tokens", "loss", "total_flop"):
        assert key in r and key in r["chinchilla"]
    assert r["chinchilla"]["params"] == pytest.approx(7e9, rel=1e-12)
    # Table 2 row 2: 5.4B params, 367B tokens, 2.6 % reduction
    assert r["params"] == pytest.approx(5.4e9, rel=5e-3)
    assert r["train_tokens"] == pytest.approx(367e9, rel=5e-3)
    assert r["saving_fraction"] == pytest.approx(0.026, abs=5e-4)
    assert r["saving_flop"] == pytest.approx(r["chinchilla"]["total_flop"] - r["total_flop"], rel=1e-12)
    assert r["provenance"]["kind"] == "computed"


def test_cost_json_contract_with_paper_defaults(capsys):
    rc, out, err = run_main(capsys, "optimize", "--objective", "cost", "--chinchilla-params", "30e9",
                            "--requests", "1.5e9", "--input-tokens", "70", "--output-tokens", "215",
                            "--train-gpu", "a100-80gb", "--inference-gpu", "a100-40gb", "--train-dtype", "bf16",
                            "--inference-dtype", "int8", "--mfu-train", "0.5", "--mfu-input", "0.5",
                            "--mfu-output", "0.01", "--json")
    assert rc == 0, err
    r = json.loads(out)
    assert "total_cost_usd" in r and "total_cost_usd" in r["chinchilla"]
    rc2, out2, _ = run_main(capsys, "optimize", "--objective", "cost", "--chinchilla-params", "30e9",
                            "--requests", "1.5e9", "--json")
    assert json.loads(out2)["total_cost_usd"] == r["total_cost_usd"]  # the defaults are the paper's settings
    assert r["inputs"]["train"]["usd_per_h"] == 1.50
    assert r["inputs"]["inference"]["usd_per_h"] == 1.10
    assert r["inputs"]["inference"]["peak_flop_per_s"] == 624e12
    assert r["total_cost_usd"] < r["chinchilla"]["total_cost_usd"]
    assert r["saving_usd"] == pytest.approx(r["chinchilla"]["total_cost_usd"] - r["total_cost_usd"], rel=1e-12)


def test_price_override_and_law_names(capsys):
    base = ["optimize", "--objective", "cost", "--loss", "2.0", "--requests", "1e9", "--json"]
    _, a, _ = run_main(capsys, *base)
    _, b, _ = run_main(capsys, *base, "--inference-usd-per-hour", "2.2")
    ra, rb = json.loads(a), json.loads(b)
    assert rb["chinchilla"]["inference_cost_usd"] == pytest.approx(2 * ra["chinchilla"]["inference_cost_usd"], rel=1e-12)
    _, c, _ = run_main(capsys, "optimize", "--objective", "flops", "--loss", "2.0", "--inference-tokens", "1e12",
                       "--law", "sardana-all", "--json")
    assert json.loads(c)["law"]["name"] == "sardana-all"


def test_law_file(capsys, tmp_path):
    p = tmp_path / "law.json"
    p.write_text(json.dumps({"name": "f", "A": 406.4, "B": 410.7, "E": 1.69, "alpha": 0.336, "beta": 0.283}))
    _, a, _ = run_main(capsys, "optimize", "--objective", "flops", "--loss", "2.0", "--inference-tokens", "1e12",
                       "--law", str(p), "--json")
    _, b, _ = run_main(capsys, "optimize", "--objective", "flops", "--loss", "2.0", "--inference-tokens", "1e12",
                       "--json")
    assert json.loads(a)["params"] == json.loads(b)["params"]


def test_text_output(capsys):
    rc, out, _ = run_main(capsys, "optimize", "--objective", "flops", "--loss", "2.0", "--inference-tokens", "1e12")
    assert rc == 0
    assert "chinchilla-style" in out and "optimal" in out and "saving" in out


BAD = [
    (["--objective", "flops", "--loss", "1.69", "--inference-tokens", "1"], "1.69"),
    (["--objective", "flops", "--loss", "1.2", "--inference-tokens", "1"], "E = 1.69"),
    (["--objective", "flops", "--loss", "-2", "--inference-tokens", "1"], "-2"),
    (["--objective", "flops", "--loss", "inf", "--inference-tokens", "1"], "inf"),
    (["--objective", "flops", "--loss", "abc", "--inference-tokens", "1"], "abc"),
    (["--objective", "flops", "--loss", "2", "--inference-tokens", "-5"], "-5"),
    (["--objective", "flops", "--loss", "2", "--inference-tokens", "nan"], "nan"),
    (["--objective", "flops", "--chinchilla-params", "0", "--inference-tokens", "1"], "'0'"),
    (["--objective", "flops", "--loss", "2"], "--inference-tokens"),
    (["--objective", "flops", "--loss", "1e300", "--inference-tokens", "1"], "1-parameter"),
    (["--objective", "flops", "--chinchilla-params", "0.5", "--inference-tokens", "1"], ">= 1"),
    (["--objective", "flops", "--loss", "2", "--inference-tokens", "1", "--law", "kaplan"], "kaplan"),
    (["--objective", "flops", "--loss", "2", "--inference-tokens", "1", "--mfu-train", "0.5"], "--mfu-train"),
    (["--objective", "cost", "--loss", "2", "--requests", "1", "--mfu-train", "0"], "(0, 1]"),
    (["--objective", "cost", "--loss", "2", "--requests", "1", "--mfu-output", "1.01"], "1.01"),
    (["--objective", "cost", "--loss", "2", "--requests", "1", "--train-gpu", "tpu-v5"], "tpu-v5"),
    (["--objective", "cost", "--loss", "2", "--requests", "1", "--inference-dtype", "int4"], "int4"),
    (["--objective", "cost", "--loss", "2", "--requests", "1", "--inference-gpu", "l4"], "--inference-usd-per-hour"),
    (["--objective", "cost", "--loss", "2", "--requests", "1", "--train-usd-per-hour", "0"], "'0'"),
    (["--objective", "cost", "--loss", "2"], "--requests"),
    (["--objective", "cost", "--loss", "2", "--requests", "1", "--inference-tokens", "5"], "--inference-tokens"),
    (["--objective", "cost", "--loss", "2", "--requests", "1", "--input-tokens", "0", "--output-tokens", "0"], "0"),
    (["--objective", "speed", "--loss", "2", "--requests", "1"], "speed"),
    (["--objective", "flops", "--loss", "2", "--chinchilla-params", "1e9", "--inference-tokens", "1"], "not allowed"),
]


@pytest.mark.parametrize("argv, needle", BAD)
def test_bad_input_one_line_exit_2(capsys, argv, needle):
    rc, out, err = run_main(capsys, "optimize", *argv)
    assert rc == 2
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert needle in lines[0]
    assert "Traceback" not in err


def test_subprocess_entry_point_and_bad_input():
    ok = subprocess.run([sys.executable, "-m", "solver", "optimize", "--objective", "flops", "--loss", "2.1",
                         "--inference-tokens", "1e12", "--json"], cwd=ROOT, capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["objective"] == "flops"
    bad = subprocess.run([sys.executable, "-m", "solver", "optimize", "--objective", "cost", "--loss", "1.5",
                          "--requests", "1e9"], cwd=ROOT, capture_output=True, text=True)
    assert bad.returncode == 2
    assert len(bad.stderr.strip().splitlines()) == 1 and "Traceback" not in bad.stderr


def test_paper_tables_command(capsys):
    rc, out, _ = run_main(capsys, "paper-tables")
    assert rc == 0
    assert "Table 2" in out and "Table 3" in out and "rel diff" in out
    rc, out, _ = run_main(capsys, "paper-tables", "--json")
    r = json.loads(out)
    assert {e["table"] for e in r["entries"]} == {"table2", "table3", "section2", "section6", "figure1"}


def test_profile_options_are_wired_and_fail_cleanly(capsys, tmp_path):
    rc, out, err = run_main(capsys, "optimize", "--objective", "cost", "--loss", "2", "--requests", "1e9",
                            "--inference-profile", str(tmp_path / "missing.json"))
    assert rc == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and "missing.json" in err
    rc, _, err = run_main(capsys, "optimize", "--objective", "flops", "--loss", "2", "--inference-tokens", "1",
                          "--inference-profile", str(tmp_path / "p.json"))
    assert rc == 2 and "--inference-profile" in err
