"""Reproduction of Sardana et al. 2024: Table 2 and the compute-side claims within 0.5 %."""

import pytest

from solver.optimize import paper


def _by(entries, table, row, quantity):
    (e,) = [e for e in entries if e.table == table and e.row == row and e.quantity == quantity]
    return e


def test_table2_reproduces_within_half_a_percent():
    entries = paper.recompute_table2()
    assert len(entries) == 5 * 8
    for e in entries:
        if e.quantity == "saving_fraction":
            continue  # printed with 2 significant digits; checked below against its rounding
        if (e.table, e.row, e.quantity) in paper.KNOWN_TYPOS:
            continue
        assert abs(e.rel_diff) <= 0.005, (e.label, e.quantity, e.printed_text, e.computed)


def test_table2_reductions_match_printed_rounding_except_row1():
    entries = paper.recompute_table2()
    for row in range(1, 5):
        assert _by(entries, "table2", row, "saving_fraction").within_rounding
    e = _by(entries, "table2", 0, "saving_fraction")
    assert e.computed == pytest.approx(0.0901, abs=2e-4)  # printed 9.1 %; the row's own FLOPs say 8.7 %
    assert e.note


def test_table2_typo_6_33m_is_633m():
    e = _by(paper.recompute_table2(), "table2", 0, "optimal_params")
    assert e.status == "typo"
    assert e.computed == pytest.approx(633e6, rel=5e-3)


def test_worked_compute_claims_within_tolerance():
    for e in paper.worked_numbers():
        if e.table in ("section2", "figure1") or e.quantity == "chinchilla_extra_flop_fraction":
            assert e.status == "ok", (e.label, e.quantity, e.printed_text, e.computed)
    w = paper.worked_numbers()
    assert _by(w, "section2", 0, "optimal_params").computed == pytest.approx(6e9, rel=5e-3)
    assert _by(w, "section2", 1, "optimal_params").computed == pytest.approx(13.6e9, rel=5e-3)
    assert _by(w, "section2", 1, "train_tokens_ratio").computed == pytest.approx(2.84, rel=5e-3)
    assert _by(w, "figure1", 0, "saving_flop").computed == pytest.approx(1.7e22, rel=5e-3)


def test_table3_under_stated_settings():
    # The chinchilla side and the demand reproduce; the dollar side does not (docs/solver.md).
    entries = paper.recompute_table3()
    for e in entries:
        if e.quantity in ("requests", "loss", "chinchilla_params", "chinchilla_train_tokens"):
            assert e.status == "ok", (e.label, e.quantity)
    # stated settings: the Chinchilla total is ~10 % above the printed one on every row
    for row in range(5):
        assert 0.085 < _by(entries, "table3", row, "chinchilla_total_usd").rel_diff < 0.11
    # first row under B.2/B.3, recomputed independently by hand: 6·N·D·1.5/(3600·312e12·0.5)
    # + 2·N·(50e9/285)·(70/0.5 + 215/0.01)·1.1/(3600·624e12)
    n, d, req = 1e9, 27.43e9, 50e9 / 285
    hand = 6 * n * d * 1.5 / (3600 * 312e12 * 0.5) + 2 * n * req * (70 / 0.5 + 215 / 0.01) * 1.1 / (3600 * 624e12)
    assert _by(entries, "table3", 0, "chinchilla_total_usd").computed == pytest.approx(hand, rel=1e-3)


def test_table3_typo_430b():
    e = _by(paper.recompute_table3(), "table3", 2, "optimal_params")
    assert e.status == "typo"
    assert e.computed < 13e9


def test_table3_implied_factor_is_consistent_across_rows():
    ks = [paper.implied_inference_cost_factor(i) for i in range(5)]
    assert all(0.885 < k < 0.905 for k in ks), ks


def test_printed_parsing():
    assert paper.Printed("27.4B").value == 27.4e9
    assert paper.Printed("3.77K").value == 3770.0
    assert paper.Printed("9.1%").value == pytest.approx(0.091)
    assert paper.Printed("2.64e20").value == 2.64e20
    assert paper.Printed("27T").rounding_rel == pytest.approx(0.5 / 27)
