"""core.schema.run: every file bench writes has a model with schema_version, load_file/save_file and one
error format; the committed files (results/, models/ when present) still read."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.config import RunSpec, workload_of
from bench.run.rundir import complete_run_of_spec, new_run_dir, runs_of_spec
from core.errors import SchemaError
from core.schema.base import load_file, save_file
from core.schema.hardware import HardwareRecord
from core.schema.prepared import PreparedRecord
from core.schema.run import RunRecord, SpecFile

REPO = Path(__file__).resolve().parents[1]


def _spec() -> RunSpec:
    return RunSpec(workload=workload_of("decode", 8, 16), mode="concurrency", concurrency=2,
                   request_rate_per_s=None, num_requests=4, warmup_requests=1, seed=0)


def test_spec_file_round_trip_and_runs_of_spec(tmp_path):
    spec = _spec()
    run_dir = new_run_dir(tmp_path, spec.key())
    save_file(SpecFile(key=spec.key(), **spec.as_dict(), provenance="test"), run_dir / "spec.json")
    back = load_file(SpecFile, run_dir / "spec.json")
    assert back.key == spec.key() and back.schema_version == 1 and back.concurrency == 2
    assert runs_of_spec(tmp_path, spec.key()) == [run_dir]
    assert complete_run_of_spec(tmp_path, spec.key()) is None  # no run.json yet
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "spec.json").write_text("{not json")
    assert runs_of_spec(tmp_path, spec.key()) == [run_dir]  # an unreadable spec.json is no spec's run


@pytest.mark.parametrize(
    "text, must_say",
    [
        ("{not json", "not valid JSON"),
        ('{"schema_version": 1, "key": "k"}', "workload"),
        ('{"schema_version": 9}', "schema_version"),
    ],
)
def test_load_file_one_line_error_names_file_and_field(tmp_path, text, must_say):
    path = tmp_path / "spec.json"
    path.write_text(text)
    with pytest.raises(SchemaError) as info:
        load_file(SpecFile, path)
    msg = str(info.value)
    assert "\n" not in msg and str(path) in msg and must_say in msg, msg
    assert isinstance(info.value, ValueError)


def test_unknown_keys_are_refused(tmp_path):
    spec = _spec()
    data = {"key": spec.key(), **spec.as_dict(), "provenance": "x", "typo_field": 1}
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(data))
    with pytest.raises(SchemaError, match="typo_field"):
        load_file(SpecFile, path)


def test_missing_file_is_not_a_schema_error(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_file(SpecFile, tmp_path / "nothing.json")


def test_committed_results_files_read():
    runs = sorted((REPO / "results" / "runs").glob("*/*/*/run.json"))
    specs = sorted((REPO / "results" / "runs").glob("*/*/*/spec.json"))
    hardware = sorted((REPO / "results" / "hardware").glob("*.json"))
    assert runs and specs and hardware
    for path in runs:
        load_file(RunRecord, path)
    for path in specs:
        load_file(SpecFile, path)
    for path in hardware:
        rec = load_file(HardwareRecord, path)
        assert rec.schema_version in (1, 2)


def test_prepared_json_of_local_models_read():
    found = sorted((REPO / "models").glob("*/prepared.json"))
    if not found:
        pytest.skip("no prepared models in models/ (git-ignored; built by python -m bench prepare)")
    for path in found:
        rec = load_file(PreparedRecord, path)
        assert rec.kind == "bench.prepared_model" and rec.model.params_matmul > 0
