"""solver.optimize.costs: profiles -> dollars per useful FLOP, and bad files refused in one line."""

from __future__ import annotations

import argparse
import json

import pytest
from solver_synthetic import synthetic_profile

from solver import cli
from solver.optimize.costs import ProfileError, costs_from_profiles, load_profile, phase_costs


def write(tmp_path, profile, name="p.json"):
    path = tmp_path / name
    path.write_text(profile.model_dump_json())
    return path


def test_paper_constants_profile_gives_paper_dollars_per_flop():
    pc = phase_costs(synthetic_profile())
    assert pc.usd_per_flop_input == pytest.approx(1.10 / 3600 / (624e12 * 0.5), rel=1e-12)
    assert pc.usd_per_flop_output == pytest.approx(1.10 / 3600 / (624e12 * 0.01), rel=1e-12)
    assert pc.mfu_input == pytest.approx(0.5) and pc.mfu_output == pytest.approx(0.01)


def test_device_count_and_price_override():
    prof = synthetic_profile(device_count=4)  # achieved rates are of all 4 devices
    pc = phase_costs(prof)
    assert pc.usd_per_flop_input == pytest.approx(1.10 * 4 / 3600 / (624e12 * 0.5 * 4))
    assert pc.mfu_input == pytest.approx(0.5)
    assert phase_costs(prof, usd_per_h=2.2).usd_per_flop_input == pytest.approx(2 * pc.usd_per_flop_input)


def test_unknown_peak_keeps_dollars_and_drops_mfu():
    pc = phase_costs(synthetic_profile(peak_flop_per_s=None))
    assert pc.mfu_input is None and pc.usd_per_flop_input > 0


def test_costs_from_profiles(tmp_path):
    path = write(tmp_path, synthetic_profile())
    ns = argparse.Namespace(inference_profile=str(path), train_profile=str(path),
                            inference_usd_per_hour=None, train_usd_per_hour=3.0)
    train, inp, out, prov = costs_from_profiles(ns)
    assert inp == pytest.approx(1.10 / 3600 / (624e12 * 0.5))
    assert out == pytest.approx(1.10 / 3600 / (624e12 * 0.01))
    assert train == pytest.approx(3.0 / 3600 / (624e12 * 0.5))  # prefill rate, overridden price
    assert len(prov["inference_profile"]["sha256"]) == 64
    assert "lower bound" in prov["train_profile"]["caution"]  # an int8 profile stands for bf16 training
    assert costs_from_profiles(argparse.Namespace())[:3] == (None, None, None)


def _bad_files(tmp_path):
    good = json.loads(synthetic_profile().model_dump_json())
    cases = {}
    cases["missing.json"] = (None, "no such file")
    cases["notjson.json"] = ("{not json", "not JSON")
    cases["list.json"] = ("[1, 2]", "JSON object")
    cases["law.json"] = (json.dumps({"kind": "loss_law", "A": 1}), "kind")
    no_field = dict(good)
    del no_field["achieved_flop_per_s_output"]
    cases["nofield.json"] = (json.dumps(no_field), "achieved_flop_per_s_output")
    negative = json.loads(json.dumps(good))
    negative["achieved_flop_per_s_input"]["value"] = -1.0
    cases["negative.json"] = (json.dumps(negative), "achieved_flop_per_s_input.value")
    typo = dict(good, extra_key=1)
    cases["typo.json"] = (json.dumps(typo), "extra_key")
    zero_price = json.loads(json.dumps(good))
    zero_price["hardware"]["usd_per_h"] = 0
    cases["price.json"] = (json.dumps(zero_price), "hardware.usd_per_h")
    out = []
    for name, (text, field) in cases.items():
        path = tmp_path / name
        if text is not None:
            path.write_text(text)
        out.append((path, field))
    return out


def test_bad_profiles_raise_one_line_naming_file_and_field(tmp_path):
    for path, field in _bad_files(tmp_path):
        with pytest.raises(ProfileError) as exc:
            load_profile(path)
        msg = str(exc.value)
        assert "\n" not in msg and str(path) in msg and field in msg, msg


@pytest.mark.parametrize("command", ["report", "optimize"])
def test_cli_refuses_bad_profile_with_exit_2_and_one_line(tmp_path, capsys, command):
    for path, field in _bad_files(tmp_path):
        argv = [command, "--chinchilla-params", "7e9", "--requests", "1e9", "--inference-profile", str(path)]
        if command == "optimize":
            argv[1:1] = ["--objective", "cost"]
        else:
            argv += ["--out-dir", str(tmp_path / "reports")]
        assert cli.main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and str(path) in err and field in err, err
    assert not (tmp_path / "reports").exists() or not any((tmp_path / "reports").iterdir())
