"""bench.run.adaptive: adaptive stopping of a sweep point (pure rules, then real sweeps against the fake
streaming server of tests/test_faults.py)."""

from __future__ import annotations

import dataclasses

import pytest
from test_faults import HARDWARE, MODEL, fake_server

from bench.config import RunSpec, load_config, workload_of
from bench.run import adaptive as A
from bench.run.execute import Target
from bench.run.sweep import extend_until_narrow, sweep

SPEC = RunSpec(workload_of("decode", 8, 16), "concurrency", 2, None, 10, 1, 0)


def test_half_width_is_the_t_interval_of_the_mean():
    # m = 4, mean 10, sd 2: t(0.975, 3) = 3.182 -> 3.182 * 2 / 2 / 10
    assert A.half_width([8, 10, 10, 12]) == pytest.approx(3.182446 * (8 / 3) ** 0.5 / 2 / 10, rel=1e-5)
    assert A.half_width([5.0]) is None and A.half_width([]) is None


@pytest.mark.parametrize("kw, word", [({"until_width": 0}, "until_width=0"), ({"until_width": 1.5}, "until_width=1.5"),
                                      ({"until_width": 0.05, "max_repeats": 1}, "max_repeats=1"),
                                      ({"until_width": 0.05, "max_extend_s": 0}, "max_extend_s=0")])
def test_rule_rejects_bad_values(kw, word):
    with pytest.raises(ValueError, match=word):
        A.StopRule(**kw)


class _Rec:
    """The fields of a RunRecord that device_s_per_request reads."""

    def __init__(self, device_s_per_req):
        self.status, self.derived = "complete", type("D", (), {"device_count": 1})()
        self.config = type("C", (), {"mode": "concurrency"})()
        w = type("W", (), {"requests": 10, "duration_s": 10 * device_s_per_req})()
        self.summary = type("S", (), {"valid": True, "window": w, "duration_s": 0.0, "num_ok": 10})()


def test_plan_extends_only_open_points_with_the_next_replicate():
    other = dataclasses.replace(SPEC, concurrency=4)
    specs = [SPEC, dataclasses.replace(SPEC, replicate=1), other, dataclasses.replace(other, replicate=1)]
    recs = [_Rec(1.00), _Rec(1.01), _Rec(1.0), _Rec(1.5)]  # c2: +-6.3 %; c4: +-254 %
    points = A.points_of(specs, recs)
    rule = A.StopRule(0.10, max_repeats=3)
    assert {p.spec.label(): p.status(rule) for p in points.values()} == {"decode-p8-g16-c2": "met",
                                                                        "decode-p8-g16-c4": "open"}
    nxt = A.plan(points, rule)
    assert [s.label() for s in nxt] == ["decode-p8-g16-c4-rep2"]
    lines = A.report_lines(points, rule, time_up=False)
    assert any("c2" in x and ": met" in x for x in lines) and any("c4" in x and "+-254.1 %" in x and ": open" in x for x in lines)


def test_a_failed_or_rate_run_counts_as_an_attempt_not_a_value():
    rec = _Rec(1.0)
    rec.status = "failed"
    rate = RunSpec(workload_of("decode", 8, 16), "rate", None, 2.0, 10, 1, 0)
    points = A.points_of([SPEC, rate], [rec, _Rec(1.0)])
    assert list(points) == [SPEC.key()] and points[SPEC.key()].attempts == 1 and points[SPEC.key()].values == []
    assert A.plan(points, A.StopRule(0.1))[0].replicate == 1


def _extend(tmp_path, rule):
    srv = fake_server(tmp_path)
    lines: list[str] = []
    try:
        kw = dict(target=Target(srv, MODEL.name), model=MODEL, hardware=HARDWARE, results=tmp_path / "runs",
                  token_ids=(0, 2047))
        specs = [SPEC, dataclasses.replace(SPEC, replicate=1)]
        first = sweep(specs, **kw)
        out = extend_until_narrow(specs, first, rule, say=lines.append, **kw)
    finally:
        srv.stop()
    return out, lines


def test_a_point_is_replicated_until_its_repeat_limit_and_says_the_width_reached(tmp_path):
    out, lines = _extend(tmp_path, A.StopRule(1e-6, max_repeats=4))  # never narrow enough
    assert out.ok and len(out.results) == 4
    assert sorted(r.record.config.replicate for r in out.results) == [0, 1, 2, 3]
    assert len({r.run_dir for r in out.results}) == 4  # each replicate its own directory
    assert lines[-1].startswith("decode-p8-g16-c2: 4 complete run(s) of 4") and lines[-1].endswith("max repeats")


def test_a_narrow_point_gets_no_extra_run(tmp_path):
    out, lines = _extend(tmp_path, A.StopRule(0.99, max_repeats=4))
    assert len(out.results) == 2 and lines[-1].endswith(": met")


def test_the_config_and_flags_take_the_rule(tmp_path):
    p = tmp_path / "s.toml"
    p.write_text('until_width = 0.05\nmax_repeats = 5\n[[runs]]\nworkload = "decode"\nconcurrency = [1]\n')
    cfg = load_config(p)
    assert (cfg.until_width, cfg.max_repeats, cfg.max_extend_s) == (0.05, 5, 600.0)
    p.write_text('until_width = 2\n[[runs]]\nworkload = "decode"\nconcurrency = [1]\n')
    with pytest.raises(ValueError, match="until_width"):
        load_config(p)
