"""calibrate.operators.plan: which ladder sizes can answer (steps of >= 5 ticks, operators >= half
the step), predicted from an operator table and the engine's overheads."""

from __future__ import annotations

from pathlib import Path

import pytest

from calibrate.operators.interpolate import OperatorTable
from calibrate.operators.plan import TICK_S, check_size, log_spaced, median_overheads, scan
from calibrate.operators.stepmodel import OperatorStepModel, Overheads
from core.dims import real_dims_for_params
from core.schema.operators import load_profile

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def table():  # the committed AMX host's operator profile (a real table)
    return OperatorTable(load_profile(REPO / "results/hardware/operators/cpu-intel-xeon-processor-amx-2c.json").records)


def test_check_size_is_the_composed_step_plus_overheads(table):
    dims = real_dims_for_params(100e6, vocab_size=4096)
    composed = OperatorStepModel(table, dims)(1.0, 64.0, 0.0, 0.0)
    c = check_size(table, dims, Overheads(engine=5e-3, layer=1e-3))
    assert c.step_s == pytest.approx(composed + 5e-3 + dims.layers * 1e-3)
    assert c.operator_share == pytest.approx(composed / c.step_s)
    assert c.ticks == pytest.approx(c.step_s / TICK_S)
    # no overhead: the step is all operators; a huge one: they are a sliver, and the step is long
    assert check_size(table, dims, Overheads()).meets_share
    big = check_size(table, dims, Overheads(engine=1.0))
    assert big.meets_ticks and not big.meets_share and not big.ok and "misses 50% N-dependent" in big.line()


def test_scan_finds_the_first_size_meeting_both_and_names_sizes_off_the_grid(table):
    ns = log_spaced(1e6, 1e11, 2)
    assert ns[0] == pytest.approx(1e6) and ns[-1] == pytest.approx(1e11) and len(ns) == 11
    s = scan(table, ns, Overheads(engine=5e-3, layer=1.5e-3), vocab_size=4096)
    assert s.first_ok is not None and s.first_ok.ok
    assert all(not c.ok for c in s.checked if c.params_matmul < s.first_ok.params_matmul)
    assert s.top_params == pytest.approx(100 * s.first_ok.params_matmul)
    assert any("outside the measured grid" in w for w in s.outside_grid)  # 1e6 and 1e11 lie off it
    assert "a 100x ladder reaches" in s.lines()[-1]
    # the larger the overheads, the larger the smallest size that answers
    s2 = scan(table, ns, Overheads(engine=20e-3, layer=1.5e-3), vocab_size=4096)
    assert s2.first_ok is None or s2.first_ok.params_matmul >= s.first_ok.params_matmul


def test_median_overheads_and_bad_ranges():
    fits = [Overheads(3.0, 0.5), Overheads(1.0, 0.1), Overheads(2.0, 0.3, 0.0, 1e-7)]
    assert median_overheads(fits) == Overheads(2.0, 0.3, 0.0, 0.0)
    with pytest.raises(ValueError, match="no fitted overheads"):
        median_overheads([])
    with pytest.raises(ValueError, match="lo=2"):
        log_spaced(2.0, 1.0)
