"""core.schema.profile: profiles and law files own their files (load/save), refuse unknown keys, and say
what is wrong in one line; the committed results stay readable."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from core.errors import InputError
from core.schema.law import LawFile
from core.schema.profile import Profile

REPO = Path(__file__).resolve().parents[1]
PROFILES = sorted((REPO / "results" / "calibration").glob("*.json"))
LAWS = sorted((REPO / "results" / "laws").glob("*.json"))


@pytest.mark.parametrize("path", PROFILES, ids=lambda p: p.name)
def test_committed_profiles_load_and_round_trip(path, tmp_path):
    prof = Profile.load(path)
    assert prof.kind == "calibration_profile" and prof.seconds_per_input_token.value > 0
    prof.save(tmp_path / "again.json")
    assert Profile.load(tmp_path / "again.json") == prof


@pytest.mark.parametrize("path", LAWS, ids=lambda p: p.name)
def test_committed_law_files_load(path):
    law = LawFile.load(path)
    assert law.kind == "loss_law" and law.E > 0 and law.provenance


def test_hand_written_law_file_needs_only_the_coefficients(tmp_path):
    p = tmp_path / "mine.json"
    p.write_text(json.dumps({"A": 406.4, "B": 410.7, "E": 1.69, "alpha": 0.336, "beta": 0.283}))
    law = LawFile.load(p)
    assert law.name == "mine" and law.provenance == {} and law.alpha == 0.336


@pytest.mark.parametrize("data, fragments", [
    ({"A": 1.0, "B": 1.0, "E": 1.0, "alpha": 0.3, "beta": 0.3, "Alpha": 0.3}, ["Alpha", "not permitted"]),
    ({"A": 1.0, "B": 1.0, "E": 1.0, "alpha": 0.3}, ["beta", "required"]),
    ({"A": -1.0, "B": 1.0, "E": 1.0, "alpha": 0.3, "beta": 0.3}, ["A", "greater than 0"]),
    ({"kind": "calibration_profile", "A": 1.0}, ["kind", "'loss_law'"]),
    ([1, 2], ["JSON object"]),
])
def test_bad_law_file_is_one_line_naming_file_and_field(tmp_path, data, fragments):
    p = tmp_path / "bad.json"
    p.write_text(json.dumps(data))
    with pytest.raises(InputError) as exc:
        LawFile.load(p)
    msg = str(exc.value)
    assert len(msg.splitlines()) == 1 and "bad.json" in msg
    for fragment in fragments:
        assert fragment in msg, (fragment, msg)


def test_unreadable_files(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        Profile.load(tmp_path / "missing.json")
    (tmp_path / "x.json").write_text("{not json")
    with pytest.raises(InputError, match=r"x\.json: not JSON"):
        LawFile.load(tmp_path / "x.json")


def test_profile_rejects_unknown_keys(tmp_path):
    data = json.loads(PROFILES[0].read_text())
    data["surprise"] = 1
    p = tmp_path / "p.json"
    p.write_text(json.dumps(data))
    with pytest.raises(InputError, match="surprise"):
        Profile.load(p)


def test_new_profiles_are_version_2_and_version_1_files_still_read(tmp_path):
    path = next(p for p in PROFILES if json.loads(p.read_text())["schema_version"] == 1)  # committed in v1
    v1 = json.loads(path.read_text())
    assert v1["schema_version"] == 1 and "performance_model" not in v1
    prof = Profile.load(path)
    assert prof.schema_version == 1 and prof.performance_model is None
    fresh = prof.model_copy(update={"schema_version": 2})
    fresh.save(tmp_path / "v2.json")
    data = json.loads((tmp_path / "v2.json").read_text())
    assert data["schema_version"] == 2 and data["performance_model"] is None
    ladder = [p for p in PROFILES if json.loads(p.read_text())["schema_version"] == 2]
    assert ladder and all(Profile.load(p).performance_model is not None for p in ladder)
    # schema 3 (issue 10: replicates, coverage, measured_mix, `source`); v1 and v2 files read unchanged
    assert Profile.model_fields["schema_version"].default == 3
    assert prof.replicates == [] and prof.coverage is None and prof.measured_mix is None
    data["schema_version"] = 4
    (tmp_path / "v3.json").write_text(json.dumps(data))
    with pytest.raises(InputError, match="schema_version"):
        Profile.load(tmp_path / "v3.json")
