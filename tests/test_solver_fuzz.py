"""No number that is not a number: fuzzing the solver API and the command line's number parsing.

API: every call returns a finite plan or raises ValueError; a returned plan meets the loss constraint to
1e-9, costs no more than the equal-loss Chinchilla-style model, is no larger, and saves >= 0.
CLI: every command line exits 0 with finite JSON, or 2 with one line naming a flag, and no warning.
"""

from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from solver import cli
from solver.optimize.laws import LAWS, LossLaw
from solver.optimize.laws import loss as law_loss
from solver.optimize.solve import CostSettings, optimize_cost, optimize_cost_general, optimize_flops

FUZZ = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

laws = st.one_of(
    st.sampled_from(sorted(LAWS.values(), key=lambda law: law.name)),
    st.builds(lambda A, B, E, a, b: LossLaw("fuzz", A, B, E, a, b, "hypothesis"),
              st.floats(1e-3, 1e5), st.floats(1e-3, 1e5), st.floats(1e-3, 10.0),
              st.floats(0.02, 2.0), st.floats(0.02, 2.0)),
)
# the distance of the loss above E: from rounding level to far above the 1-parameter model
gaps = st.one_of(st.floats(1e-300, 1e3), st.sampled_from([1e-16, 2.2e-16, 1e-15, 1e-12, 1e-9, 1e-6]),
                 st.floats(0.0, 10.0))
demands = st.one_of(st.just(0.0), st.floats(0.0, 1.7e308), st.floats(1.0, 1e20), st.sampled_from([1e308, 5e-324]))
prices = st.one_of(st.floats(1e-300, 1e300), st.floats(1e-20, 1e-14))
tokens = st.one_of(st.floats(0.0, 1e6), st.sampled_from([0.0, 70.0, 215.0]))


def _loss(law, gap):
    return law.E + gap


def _check_plan(comp, law, target, total_key):
    for plan in (comp.optimal, comp.chinchilla):
        for name, value in vars(plan).items():
            assert value is None or np.all(np.isfinite(value)), (name, value)
    assert np.all(np.isfinite(comp.saving)) and np.all(np.isfinite(comp.saving_fraction))
    got = float(law_loss(law, comp.optimal.params, comp.optimal.train_tokens))
    assert abs(got - target) <= 1e-9 * target
    opt, chin = float(getattr(comp.optimal, total_key)), float(getattr(comp.chinchilla, total_key))
    assert opt <= chin * (1 + 1e-12)
    assert float(comp.optimal.params) <= float(comp.chinchilla.params) * (1 + 1e-12)
    assert float(comp.saving) >= 0 and float(comp.saving_fraction) >= 0


@FUZZ
@given(law=laws, gap=gaps, demand=demands)
def test_flops_api_finite_or_value_error(law, gap, demand):
    target = _loss(law, gap)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no numpy warning on the way either
        try:
            comp = optimize_flops(target, demand, law)
        except ValueError:
            return
    _check_plan(comp, law, target, "total_flop")


@FUZZ
@given(law=laws, gap=gaps, requests=demands, c_tr=prices, c_in=prices, c_out=prices, t_in=tokens, t_out=tokens)
def test_cost_api_finite_or_value_error(law, gap, requests, c_tr, c_in, c_out, t_in, t_out):
    target = _loss(law, gap)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        try:
            comp = optimize_cost(target, requests, CostSettings(c_tr, c_in, c_out, t_in, t_out), law)
        except ValueError:
            return
    _check_plan(comp, law, target, "total_usd")


@settings(max_examples=60, deadline=None)
@given(law=laws, gap=gaps, c_tr=prices, per_param=st.floats(0.0, 1e300))
def test_general_api_finite_or_value_error(law, gap, c_tr, per_param):
    target = _loss(law, gap)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        try:
            g = optimize_cost_general(target, law, c_tr, lambda n: n * per_param)
        except (ValueError, OverflowError) as exc:
            assert isinstance(exc, ValueError), exc
            return
    assert all(math.isfinite(v) for v in vars(g).values())
    assert g.total_usd <= g.chinchilla_total_usd and g.saving_usd >= 0 and g.saving_fraction >= 0


# --------------------------------------------------------------------------- the command line

number_texts = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(["1e308", "-1e308", "1e-308", "1e-320", "5e-324", "0", "-0", "nan", "inf", "-inf", "1e400",
                     "abc", "", "0x10", "1_000", " 2 "]),
    st.floats(1e-12, 1e40).map(lambda v: f"{v:.6g}"),
)
COST_FLAGS = ["--requests", "--input-tokens", "--output-tokens", "--mfu-train", "--mfu-input", "--mfu-output",
              "--train-usd-per-hour", "--inference-usd-per-hour", "--train-peak-flop-per-s",
              "--inference-peak-flop-per-s", "--chinchilla-params", "--loss"]


def _run(capsys, argv):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        try:
            rc = cli.main(argv)
        except SystemExit as exc:
            rc = exc.code
    out, err = capsys.readouterr()
    return rc, out, err


def _assert_clean(rc, out, err, flag):
    assert rc in (0, 2), (rc, err)
    assert "Traceback" not in err and "Warning" not in err
    if rc == 2:
        assert out == "" and len(err.strip().splitlines()) == 1, err
        assert flag in err or "--" in err, err
    else:
        r = json.loads(out)  # strict JSON: NaN/Infinity would not parse as numbers below
        assert all(math.isfinite(r[k]) for k in ("params", "train_tokens", "total_flop", "saving_fraction"))
        assert r["saving_fraction"] >= 0


@FUZZ
@given(flag=st.sampled_from(COST_FLAGS), text=number_texts)
def test_cli_cost_number_parsing(capsys, flag, text):
    base = {"--requests": "1e9"}
    if flag not in ("--chinchilla-params", "--loss"):
        base["--chinchilla-params"] = "30e9"
    base[flag] = text
    argv = ["optimize", "--objective", "cost", "--json"] + [x for k, v in base.items() for x in (k, v)]
    _assert_clean(*_run(capsys, argv), flag)


@FUZZ
@given(flag=st.sampled_from(["--inference-tokens", "--chinchilla-params", "--loss"]), text=number_texts,
       law=st.sampled_from(sorted(LAWS)))
def test_cli_flops_number_parsing(capsys, flag, text, law):
    base = {"--inference-tokens": "1e12", "--law": law}
    if flag == "--inference-tokens":
        base["--chinchilla-params"] = "7e9"
    base[flag] = text
    argv = ["optimize", "--objective", "flops", "--json"] + [x for k, v in base.items() for x in (k, v)]
    _assert_clean(*_run(capsys, argv), flag)


# --------------------------------------------------------------------------- the classes found by hand

ISSUE_CASES = [
    (["--objective", "flops", "--chinchilla-params", "70e9", "--inference-tokens", "1e308"], "--inference-tokens"),
    (["--objective", "cost", "--chinchilla-params", "30e9", "--requests", "1e9", "--train-usd-per-hour", "1e308"],
     "--train-usd-per-hour"),
    (["--objective", "cost", "--chinchilla-params", "30e9", "--requests", "1e308"], "--requests"),
    (["--objective", "cost", "--chinchilla-params", "30e9", "--requests", "1e9", "--mfu-output", "1e-320"],
     "--mfu-output"),
    (["--objective", "cost", "--chinchilla-params", "30e9", "--requests", "1e9", "--inference-usd-per-hour",
      "1e-308"], "--inference-usd-per-hour"),
    (["--objective", "cost", "--chinchilla-params", "30e9", "--requests", "1e9", "--inference-usd-per-hour",
      "1e-300"], "--inference-usd-per-hour"),
    (["--objective", "flops", "--chinchilla-params", "1e300", "--inference-tokens", "1"], "--chinchilla-params"),
    (["--objective", "flops", "--loss", "0.17000000000000004", "--law", "sardana-le100", "--inference-tokens", "1"],
     "--loss"),
    (["--objective", "cost", "--chinchilla-params", "30e9", "--requests", "1e9", "--input-tokens", "1e300"],
     "--input-tokens"),
]


@pytest.mark.parametrize("argv, flag", ISSUE_CASES)
def test_out_of_range_inputs_name_the_flag(capsys, argv, flag):
    rc, out, err = _run(capsys, ["optimize", *argv])
    assert rc == 2 and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert flag in lines[0] and "need" in lines[0], lines[0]
    assert "Traceback" not in err and "Warning" not in err
    for internal in ("r=", "input_usd_per_flop=", "output_usd_per_flop=", "train_usd_per_flop="):
        assert internal not in lines[0], lines[0]


def test_rounding_level_saving_prints_as_zero(capsys):
    rc, out, _ = _run(capsys, ["optimize", "--objective", "flops", "--loss", "1.6900000000000002",
                               "--inference-tokens", "1e12"])
    assert rc == 0
    assert "saving 0 FLOP (0.00 %" in out and "saving -" not in out and "(-0.00" not in out


REPORT_CASES = [("--peak-requests-per-s", "1e308"), ("--requests", "1e308"), ("--lifetime-days", "1e308"),
                ("--peak-to-mean", "inf"), ("--slo-tpot-p90-s", "1e-320"), ("--inference-usd-per-hour", "1e-308"),
                ("--input-tokens", "1e300"), ("--chinchilla-params", "1e300"), ("--train-usd-per-hour", "1e308"),
                ("--peak-to-mean", "0.5"), ("--max-train-tokens", "0"), ("--peak-requests-per-s", "1e-3"),
                ("--demand-profile", "/nonexistent/demand.csv"), ("--datasheet-profile", "a100-40gb:mfu_in=0.5")]


@pytest.mark.parametrize("flag, text", REPORT_CASES)
def test_report_refuses_out_of_range_numbers_before_any_work(tmp_path, capsys, flag, text):
    from solver_synthetic import synthetic_profile

    prof = tmp_path / "p.json"
    prof.write_text(synthetic_profile().model_dump_json())
    args = {"--chinchilla-params": "30e9", "--requests": "17.5e9", "--inference-profile": str(prof),
            "--out-dir": str(tmp_path / "reports")}
    args[flag] = text
    rc, out, err = _run(capsys, ["report"] + [x for k, v in args.items() for x in (k, v)])
    assert rc == 2 and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and flag in lines[0] and "Traceback" not in err, err
    assert not (tmp_path / "reports").exists()
