"""solver.optimize.demand: peak-to-mean from a flag or an hourly profile, and provisioned prices."""

import argparse
import math

import pytest

from core.cli import peak_to_mean_arg
from solver.optimize.demand import DemandShape, demand_from_csv, provisioned_settings
from solver.optimize.solve import CostSettings


def write(tmp_path, lines, name="demand.csv"):
    p = tmp_path / name
    p.write_text("\n".join(lines) + "\n")
    return p


def test_flat_day_is_one(tmp_path):
    s = demand_from_csv(write(tmp_path, ["3.5"] * 24))
    assert s == DemandShape(1.0, str(tmp_path / "demand.csv"), 24)
    assert s.utilisation == 1.0


def test_day_with_header_and_hour_column(tmp_path):
    loads = [1.0] * 12 + [3.0] * 12  # mean 2, peak 3
    p = write(tmp_path, ["hour,relative_load"] + [f"{h},{v}" for h, v in enumerate(loads)])
    s = demand_from_csv(p)
    assert s.peak_to_mean == 1.5 and s.hours == 24 and s.source == str(p)
    assert s.utilisation == pytest.approx(2 / 3, rel=1e-15)
    assert s.as_dict()["provenance"].startswith("computed")


def test_week_and_blank_lines(tmp_path):
    loads = [0.0] * 84 + [2.0] * 84  # mean 1, peak 2
    p = write(tmp_path, ["load", ""] + [str(v) for v in loads] + ["", ""])
    s = demand_from_csv(p)
    assert (s.peak_to_mean, s.hours) == (2.0, 168)


@pytest.mark.parametrize("rows, needle", [
    (["1"] * 23, "23 hourly loads; need 24 (a day) or 168 (a week)"),
    (["1"] * 25, "25 hourly loads"),
    ([], "0 hourly loads"),
    (["load"], "0 hourly loads"),
    (["1"] * 5 + ["abc"] + ["1"] * 18, "row 6: load 'abc' is not a number"),
    (["load"] + ["1"] * 5 + ["-2"] + ["1"] * 18, "row 7: load '-2' is negative"),
    (["1"] * 3 + ["nan"] + ["1"] * 20, "row 4: load 'nan' is not finite"),
    (["1"] * 3 + ["inf"] + ["1"] * 20, "row 4: load 'inf' is not finite"),
    (["0"] * 24, "every load is 0; need at least one hourly load > 0"),
    (["h,load", "0,1", "1,x"] + ["1"] * 22, "row 3: load 'x' is not a number"),
])
def test_bad_profiles_name_the_row_and_what_is_allowed(tmp_path, rows, needle):
    p = write(tmp_path, rows)
    with pytest.raises(ValueError) as e:
        demand_from_csv(p)
    msg = str(e.value)
    assert needle in msg and str(p) in msg and "\n" not in msg


def test_unreadable_profile(tmp_path):
    with pytest.raises(ValueError, match="cannot read the demand profile"):
        demand_from_csv(tmp_path / "missing.csv")
    (tmp_path / "bin.csv").write_bytes(b"\xff\xfe\x00\x81")
    with pytest.raises(ValueError, match="cannot read"):
        demand_from_csv(tmp_path / "bin.csv")


@pytest.mark.parametrize("text, value", [("1", 1.0), ("2", 2.0), ("1e6", 1e6), ("3.25", 3.25)])
def test_peak_to_mean_arg_accepts(text, value):
    assert peak_to_mean_arg(text) == value


@pytest.mark.parametrize("text, needle", [("0.99", "'0.99'; need a finite number in [1, "),
                                          ("0", "'0'; need"), ("-2", "'-2'; need"), ("nan", "not finite"),
                                          ("inf", "not finite"), ("two", "not a number"), ("2e6", "'2e6'; need")])
def test_peak_to_mean_arg_refuses(text, needle):
    with pytest.raises(argparse.ArgumentTypeError) as e:
        peak_to_mean_arg(text)
    assert needle in str(e.value) and "\n" not in str(e.value)


def test_provisioned_settings():
    s = CostSettings(1e-18, 2e-18, 5e-17, 70, 215)
    assert provisioned_settings(s, 1.0) is s  # R = 1: the same object, today's answer bit for bit
    p = provisioned_settings(s, 2.5)
    assert (p.input_usd_per_flop, p.output_usd_per_flop) == (2e-18 * 2.5, 5e-17 * 2.5)
    assert p.train_usd_per_flop == s.train_usd_per_flop
    assert p.tokens_per_request == s.tokens_per_request
    assert p.inference_usd_per_param_request() == pytest.approx(2.5 * s.inference_usd_per_param_request(), rel=1e-15)
    assert math.isclose(DemandShape(4.0, "--peak-to-mean").utilisation, 0.25)
