"""`python -m solver optimize`: --peak-to-mean / --demand-profile, --max-train-tokens / --no-repeat, warnings."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from solver.optimize.data_limit import R_D_STAR, effective_tokens
from solver.optimize.laws import DEFAULT_LAW as CH
from solver.optimize.laws import chinchilla_loss_for_params
from solver.optimize.laws import loss as law_loss
from solver.optimize.paper import paper_cost_settings
from solver.optimize.solve import optimize_cost
from tests.test_solver_cli import run_main  # the solver CLI's in-process runner, defined once

ROOT = Path(__file__).resolve().parents[1]
COST = ["optimize", "--objective", "cost", "--chinchilla-params", "30e9", "--requests", "17.5e9"]
PLAN_KEYS = ("params", "train_tokens", "tokens_per_param", "loss", "train_flop", "inference_flop", "total_flop",
             "train_cost_usd", "inference_cost_usd", "total_cost_usd")



def opt_json(capsys, *argv):
    rc, out, err = run_main(capsys, *argv, "--json")
    assert rc == 0, err
    return json.loads(out)


# --------------------------------------------------------------------------- peak-to-mean


def test_peak_to_mean_one_is_todays_answer_exactly(capsys):
    today = opt_json(capsys, *COST)
    one = opt_json(capsys, *COST, "--peak-to-mean", "1")
    c = optimize_cost(float(chinchilla_loss_for_params(CH, 30e9)), 17.5e9, paper_cost_settings())
    for key in PLAN_KEYS:
        assert one[key] == today[key]
        assert one["chinchilla"][key] == today["chinchilla"][key]
    assert (one["saving_usd"], one["saving_fraction"]) == (today["saving_usd"], today["saving_fraction"])
    assert today["params"] == float(c.optimal.params) and today["total_cost_usd"] == float(c.optimal.total_usd)
    assert today["inputs"]["peak_to_mean"] == 1.0 and today["inputs"]["utilisation"] == 1.0
    assert "data_limit" not in today and "warnings" not in today  # 1,540 tokens/param: inside the paper's range


def test_peak_to_mean_is_the_paper_optimum_at_r_times_the_inference_price(capsys):
    r = 2.0
    prov = opt_json(capsys, *COST, "--peak-to-mean", str(r))
    priced = opt_json(capsys, *COST, "--inference-usd-per-hour", str(1.10 * r))
    for key in PLAN_KEYS:
        assert prov[key] == pytest.approx(priced[key], rel=1e-12)
    assert prov["inputs"]["peak_to_mean"] == 2.0 and prov["inputs"]["utilisation"] == 0.5
    shape = prov["inputs"]["demand_shape"]
    assert shape["source"] == "--peak-to-mean"
    assert shape["output_usd_per_useful_flop_provisioned"] == pytest.approx(
        2 * prov["inputs"]["inference"]["usd_per_useful_flop_output"], rel=1e-15)


def test_larger_peak_to_mean_never_raises_n_star(capsys):
    rng = np.random.default_rng(11)
    for _ in range(3):
        loss = float(rng.uniform(1.85, 2.6))
        requests = float(10 ** rng.uniform(8, 11))
        rs = np.sort(1 + 10 ** rng.uniform(-3, 1.5, size=5))
        base = ["optimize", "--objective", "cost", "--loss", repr(loss), "--requests", repr(requests)]
        prev = opt_json(capsys, *base)
        for r in rs:
            cur = opt_json(capsys, *base, "--peak-to-mean", repr(float(r)))
            assert cur["params"] <= prev["params"] * (1 + 1e-12)
            assert cur["train_tokens"] >= prev["train_tokens"] * (1 - 1e-12)
            assert cur["total_cost_usd"] >= prev["total_cost_usd"] * (1 - 1e-12)
            assert cur["loss"] == prev["loss"] == loss
            prev = cur


def test_demand_profile_gives_its_peak_to_mean(capsys, tmp_path):
    p = tmp_path / "day.csv"
    p.write_text("hour,load\n" + "".join(f"{h},{1.0 if h < 12 else 3.0}\n" for h in range(24)))  # peak/mean 1.5
    prof = opt_json(capsys, *COST, "--demand-profile", str(p))
    flag = opt_json(capsys, *COST, "--peak-to-mean", "1.5")
    assert prof["inputs"]["peak_to_mean"] == 1.5
    assert prof["inputs"]["demand_shape"]["hours"] == 24 and prof["inputs"]["demand_shape"]["source"] == str(p)
    for key in PLAN_KEYS:
        assert prof[key] == flag[key]
    rc, out, _ = run_main(capsys, *COST, "--demand-profile", str(p))
    assert rc == 0 and "peak-to-mean 1.5" in out and "utilisation 66.7 %" in out


@pytest.mark.parametrize("body, needle", [
    ("1\n" * 23, "23 hourly loads; need 24 (a day) or 168 (a week)"),
    ("load\n" + "1\n" * 10 + "-1\n" + "1\n" * 13, "row 12: load '-1' is negative"),
    ("0\n" * 24, "every load is 0"),
])
def test_bad_demand_profile_exit_2_one_line(capsys, tmp_path, body, needle):
    p = tmp_path / "d.csv"
    p.write_text(body)
    rc, out, err = run_main(capsys, *COST, "--demand-profile", str(p))
    assert rc == 2 and out == ""
    assert err.count("\n") == 1 and "--demand-profile" in err and needle in err


@pytest.mark.parametrize("argv, needle", [
    (COST + ["--peak-to-mean", "0.5"], "--peak-to-mean: '0.5'; need a finite number in [1, "),
    (COST + ["--peak-to-mean", "nan"], "not finite"),
    (COST + ["--peak-to-mean", "2", "--demand-profile", "x.csv"], "not allowed with"),
    (["optimize", "--objective", "flops", "--loss", "2.0", "--inference-tokens", "1e12", "--peak-to-mean", "2"],
     "--peak-to-mean: applies only to --objective cost"),
    (COST + ["--no-repeat"], "--no-repeat applies only with --max-train-tokens"),
    (COST + ["--max-train-tokens", "0"], "--max-train-tokens: '0'; need a finite number > 0"),
    (COST + ["--max-train-tokens", "1e10"], "unreachable with 1e+10 unique tokens"),
    (COST + ["--max-train-tokens", "1e11", "--no-repeat"], "unreachable with 1e+11 unique tokens"),
])
def test_bad_input_exit_2_one_line(capsys, argv, needle):
    rc, out, err = run_main(capsys, *argv)
    assert rc == 2 and out == ""
    assert err.count("\n") == 1 and needle in err, err


# --------------------------------------------------------------------------- data limit


def test_data_limit_above_d_star_changes_nothing(capsys):
    today = opt_json(capsys, *COST)
    for u in (today["train_tokens"], 2 * today["train_tokens"], 1e15):
        for extra in ([], ["--no-repeat"]):
            lim = opt_json(capsys, *COST, "--max-train-tokens", repr(u), *extra)
            for key in PLAN_KEYS:
                assert lim[key] == today[key] and lim["chinchilla"][key] == today["chinchilla"][key]
            assert lim["saving_usd"] == today["saving_usd"]
            assert lim["data_limit"]["binding"] is False and lim["data_limit"]["limit_cost_usd"] == 0.0


@pytest.mark.parametrize("objective", ["cost", "flops"])
def test_constrained_plan_meets_the_loss_within_the_data(capsys, objective):
    rng = np.random.default_rng(5)
    for _ in range(4):
        loss = float(rng.uniform(1.85, 2.5))
        demand = float(10 ** rng.uniform(9, 13))
        base = (["optimize", "--objective", "cost", "--loss", repr(loss), "--requests", repr(demand / 285)]
                if objective == "cost" else
                ["optimize", "--objective", "flops", "--loss", repr(loss), "--inference-tokens", repr(demand)])
        free = opt_json(capsys, *base)
        for frac in (0.5, 0.05):
            for extra in ([], ["--no-repeat"]):
                u = free["train_tokens"] * frac
                rc, out, err = run_main(capsys, *base, "--max-train-tokens", repr(u), *extra, "--json")
                if rc == 2:  # unreachable with this little data: one line, and really out of reach
                    d_min = (CH.B / (loss - CH.E)) ** (1 / CH.beta)
                    assert err.count("\n") == 1 and "unreachable" in err
                    assert d_min >= (u * (1 + R_D_STAR) if not extra else u) * (1 - 1e-9)
                    continue
                r = json.loads(out)
                lim = r["data_limit"]
                assert lim["binding"] is True and lim["repeat"] is (not extra)
                assert lim["unique_tokens_used"] <= u
                d_eff = lim["effective_train_tokens"]
                assert d_eff == pytest.approx(effective_tokens(r["train_tokens"], u), rel=1e-12)
                assert float(law_loss(CH, r["params"], d_eff)) == pytest.approx(loss, rel=1e-9)
                assert r["loss"] == loss
                total = "total_cost_usd" if objective == "cost" else "total_flop"
                # never cheaper than without the limit, never dearer than its own Chinchilla-style baseline
                assert r[total] >= free[total] * (1 - 1e-12)
                assert r[total] <= r["chinchilla"][total]
                assert r["params"] >= free["params"] * (1 - 1e-9)
                if extra:
                    assert r["train_tokens"] <= u and lim["epochs"] == 1.0


def test_paper_case_with_15t_unique_tokens_and_text(capsys):
    """The issue's case (d): 30B-quality, 17.5B requests, 15T unique tokens: D* = 12.9T fits, nothing changes."""
    r = opt_json(capsys, *COST, "--max-train-tokens", "15e12")
    assert r["data_limit"]["binding"] is False and r["train_tokens"] < 15e12
    rc, out, _ = run_main(capsys, *COST, "--max-train-tokens", "2e12", "--peak-to-mean", "2")
    assert rc == 0
    assert "data limit 2e+12 unique tokens: binding: 2e+12 unique tokens x" in out
    assert "the limit costs $" in out and "peak-to-mean 2" in out


def test_warning_beyond_the_papers_tokens_per_param(capsys):
    argv = ["optimize", "--objective", "cost", "--chinchilla-params", "30e9", "--requests", "17.5e12"]
    r = opt_json(capsys, *argv)
    assert r["tokens_per_param"] > 10_000
    assert len(r["warnings"]) == 1 and "10,000" in r["warnings"][0]
    rc, out, _ = run_main(capsys, *argv)
    assert rc == 0 and out.count("warning: ") == 1
    # a data limit that brings the plan inside the range removes the warning
    r2 = opt_json(capsys, *argv, "--max-train-tokens", "1e12", "--no-repeat")
    assert r2["tokens_per_param"] <= 10_000 and "warnings" not in r2


def test_subprocess_unreachable_is_one_line_exit_2():
    p = subprocess.run([sys.executable, "-m", "solver", *COST, "--max-train-tokens", "1e10"], cwd=ROOT,
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 2 and p.stdout == ""
    assert p.stderr.count("\n") == 1 and "Traceback" not in p.stderr
    assert "loss 1.95825" in p.stderr and "1e+10 unique tokens" in p.stderr and "need more than" in p.stderr
