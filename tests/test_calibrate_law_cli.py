"""`python -m calibrate law`: law file written and readable, bad input -> exit 2 with one line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from calibrate.cli import main
from core.schema.law import LawFile

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "calibrate" / "data"
EPOCH_CSV = DATA / "epoch2024_chinchilla_svg_extracted.csv"
SARDANA_CSV = DATA / "sardana2024_training_runs.csv"
SARDANA_ARGS = ["--params-col", "Parameters", "--tokens-col", "Tokens", "--loss-col", "Smoothed Loss"]


def run_cli(args, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.run([sys.executable, "-m", "calibrate", *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def test_law_cli_writes_valid_law_file_readable_by_solver(tmp_path, capsys):
    out = tmp_path / "laws" / "epoch.json"
    rc = main(["law", str(EPOCH_CSV), "--params-col", "Model Size", "--flop-col", "Training FLOP",
               "--loss-col", "loss", "--exclude-highest-loss", "5", "--bootstrap", "20", "--n-starts", "24",
               "--out", str(out)])
    assert rc == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[-1] == str(out)
    law = LawFile.model_validate_json(out.read_text())
    assert law.E == pytest.approx(1.8172, rel=1e-3) and law.alpha == pytest.approx(0.3473, rel=1e-3)
    assert set(law.intervals) == {"A", "B", "E", "alpha", "beta"}
    lo, hi = law.intervals["E"]
    assert lo < law.E < hi
    prov = law.provenance
    assert len(prov["input_sha256"]) == 64 and prov["excluded_rows"] and prov["n_points_fitted"] == 240
    assert "Huber" in prov["method"] and prov["created_utc"].endswith("Z") and "calibrate law" in prov["command"]
    try:
        from solver.optimize.laws import load_law_file
    except ImportError:
        pytest.skip("solver.optimize.laws not importable")
    loaded = load_law_file(out)
    assert loaded.A == pytest.approx(law.A) and loaded.beta == pytest.approx(law.beta)


def test_law_cli_json_default_path_and_no_overwrite(tmp_path):
    res = run_cli(["law", SARDANA_CSV, *SARDANA_ARGS, "--n-starts", "16", "--json"], cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    obj = json.loads(res.stdout)
    for key in ("A", "B", "E", "alpha", "beta"):
        assert isinstance(obj[key], float)
    assert obj["alpha"] == pytest.approx(0.1788, rel=2e-3)
    written = tmp_path / "results" / "laws" / "sardana2024_training_runs.json"
    assert Path(obj["path"]) == Path("results/laws/sardana2024_training_runs.json") and written.is_file()
    before = written.read_bytes()
    again = run_cli(["law", SARDANA_CSV, *SARDANA_ARGS, "--n-starts", "16"], cwd=tmp_path)
    assert again.returncode == 2 and "exists" in again.stderr and "--force" in again.stderr
    assert written.read_bytes() == before
    forced = run_cli(["law", SARDANA_CSV, *SARDANA_ARGS, "--n-starts", "16", "--force"], cwd=tmp_path)
    assert forced.returncode == 0 and forced.stdout.strip().splitlines()[-1] == "results/laws/sardana2024_training_runs.json"


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


GOOD_ROWS = "".join(f"{n},{n * 20},{3.0 - i * 0.1}\n" for i, n in enumerate([1e8, 2e8, 4e8, 8e8, 1.6e9, 3.2e9]))


@pytest.mark.parametrize(
    "csv_text, args, expect",
    [
        (None, ["--params-col", "n", "--tokens-col", "d", "--loss-col", "l"], ["missing.csv", "no such file"]),
        ("n,d,l\n" + GOOD_ROWS, ["--params-col", "N", "--tokens-col", "d", "--loss-col", "l"],
         ["bad.csv", "'N'", "columns present", "'n', 'd', 'l'"]),
        ("n,d,l\n" + GOOD_ROWS + "1e9,2e10,nan\n", ["--params-col", "n", "--tokens-col", "d", "--loss-col", "l"],
         ["bad.csv", "'l'", "finite"]),
        ("n,d,l\n" + GOOD_ROWS + "1e9,-5,2.0\n", ["--params-col", "n", "--tokens-col", "d", "--loss-col", "l"],
         ["bad.csv", "'d'", "> 0"]),
        ("n,d,l\n" + GOOD_ROWS + "1e9,abc,2.0\n", ["--params-col", "n", "--tokens-col", "d", "--loss-col", "l"],
         ["bad.csv", "'d'", "'abc'"]),
        ("n,d,l\n" + GOOD_ROWS, ["--params-col", "n", "--tokens-col", "d", "--loss-col", "l",
                                 "--exclude-highest-loss", "4"], ["bad.csv", "exclude_highest_loss"]),
        ("n,d,l\n" + GOOD_ROWS, ["--params-col", "n", "--tokens-col", "d", "--loss-col", "l", "--n-starts", "x"],
         ["--n-starts"]),
        ("n,d,l\n", ["--params-col", "n", "--tokens-col", "d", "--loss-col", "l"], ["bad.csv", "no rows"]),
    ],
)
def test_law_cli_bad_input_exits_2_with_one_line(tmp_path, capsys, csv_text, args, expect):
    csv = tmp_path / "missing.csv" if csv_text is None else _write(tmp_path / "bad.csv", csv_text)
    try:
        rc = main(["law", str(csv), *args, "--out", str(tmp_path / "law.json")])
    except SystemExit as exc:  # a bad flag value is a usage error: argparse exits 2
        rc = exc.code
    err = capsys.readouterr().err
    assert rc == 2
    assert len(err.strip().splitlines()) == 1, err
    for fragment in expect:
        assert fragment in err, (fragment, err)
    assert not (tmp_path / "law.json").exists()


def test_profile_subcommand_is_dispatched(tmp_path):
    res = run_cli(["profile", "--help"], cwd=tmp_path)
    assert res.returncode == 0 and "RUN_DIR" in res.stdout


@pytest.mark.parametrize(
    "argv, fragment",
    [
        (["law", "x.csv", "--params-col", "n", "--loss-col", "l"], "--tokens-col"),
        (["law", "x.csv", "--params-col", "n", "--tokens-col", "d", "--flop-col", "f", "--loss-col", "l"], "not allowed"),
        ([], "required"),
    ],
)
def test_usage_errors_are_one_line(capsys, argv, fragment):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    err = capsys.readouterr().err
    assert exc.value.code == 2 and fragment in err and len(err.strip().splitlines()) == 1, err


@pytest.mark.parametrize("flag, value", [("--exclude-highest-loss", "-1"), ("--bootstrap", "1"), ("--bootstrap", "-2"),
                                         ("--seed", "-1"), ("--n-starts", "0"), ("--extra-starts", "-1")])
def test_law_numeric_flags_are_validated(tmp_path, capsys, flag, value):
    with pytest.raises(SystemExit) as exc:
        main(["law", str(SARDANA_CSV), *SARDANA_ARGS, flag, value, "--out", str(tmp_path / "law.json")])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and len(err.strip().splitlines()) == 1 and flag in err and repr(value) in err, err
    assert not (tmp_path / "law.json").exists()
