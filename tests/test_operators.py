"""bench.operators: the grid, the interpolation rules, the step composition, the profile file, and
one real short measurement of the --quick grid through vLLM's CPU ops."""

from __future__ import annotations

import argparse
import importlib
import itertools
import json
import math
from pathlib import Path

import numpy as np
import pytest

from bench.operators import cli
from bench.operators.grid import GEMM_ROWS, build_grid, full_grid, quick_grid
from calibrate.operators.compose import StepBatch, decode_step_time, step_time
from calibrate.operators.interpolate import OperatorGridError, OperatorTable
from core.cli import OneLineParser
from core.dims import ModelDims, assumed_dims
from core.files import set_aside
from core.schema.operators import (
    SHAPE_KEYS,
    OperatorProfile,
    OperatorProfileError,
    OperatorRecord,
    load_profile,
    profile_from_dict,
    profile_to_json,
)


def rec(op: str, t: float, dtype: str = "bf16", **shape) -> dict:
    return {"op": op, "dtype": dtype, "impl": "synthetic", "median_s": t, "p10_s": t, "p90_s": t, "repeats": 1, **shape}


# --------------------------------------------------------------------------- grid


def test_full_grid_brackets_the_row_blocks_and_covers_the_shape_family():
    for block in (4, 16, 32, 64, 128):
        assert {block - 1, block, block + 1} <= set(GEMM_ROWS)
    assert max(GEMM_ROWS) == 2048
    g = full_grid()
    counts = g.counts()
    assert set(counts) == set(SHAPE_KEYS)
    hiddens = {m.hidden for m in g.models}
    assert {256, 512, 1024, 2048, 4096, 8192} <= hiddens
    d = assumed_dims(4096)
    assert (d.heads, d.kv_heads, d.head_dim, d.vocab) == (32, 8, 128, 32000)
    # groups run smallest model first
    tiers = [grp.tier for grp in g.groups]
    assert tiers == sorted(tiers)
    assert quick_grid().size() < 100


# --------------------------------------------------------------------------- interpolation


def _gemm_table(f_m, shapes=((256, 256), (1024, 1024)), rows=(1, 2, 3, 4, 8, 16), exponent=0.8):
    """t = (k·n)^exponent · f_m(m) · 1e-9: a power law across shapes, anything in m."""
    return [rec("gemm", (k * n) ** exponent * f_m(m) * 1e-9, dtype="int8", m=m, k=k, n=n)
            for k, n in shapes for m in rows]


def test_interpolation_is_exact_on_grid_points_and_keeps_non_monotone_rows():
    # CPU-like: 3 rows cost more than 4 (a leftover row costs a single-row pass)
    sawtooth = {1: 1.0, 2: 2.0, 3: 3.0, 4: 1.8, 8: 2.0, 16: 2.2}
    records = _gemm_table(lambda m: sawtooth[m])
    table = OperatorTable(records)
    for r in records:
        assert table.time_s("gemm", "int8", m=r["m"], k=r["k"], n=r["n"]) == pytest.approx(r["median_s"], rel=1e-12)
    t3 = table.time_s("gemm", "int8", m=3, k=256, n=256)
    t4 = table.time_s("gemm", "int8", m=4, k=256, n=256)
    assert t3 > t4  # the measured saw-tooth is kept, not smoothed
    # between measured rows: the straight line between them
    t6 = table.time_s("gemm", "int8", m=6, k=256, n=256)
    assert t6 == pytest.approx((t4 + table.time_s("gemm", "int8", m=8, k=256, n=256)) / 2)


def test_interpolation_is_monotone_between_monotone_neighbours():
    table = OperatorTable(_gemm_table(lambda m: 1.0 + 0.3 * m))
    for k, n in ((256, 256), (512, 512), (300, 700), (1024, 1024)):
        ts = [table.time_s("gemm", "int8", m=m, k=k, n=n) for m in [1 + 0.25 * i for i in range(61)]]
        assert all(b >= a for a, b in itertools.pairwise(ts))
    # across shapes: monotone in k·n at fixed m
    sizes = [256 * 2 ** (i / 8) for i in range(17)]
    ts = [table.time_s("gemm", "int8", m=5, k=s, n=s) for s in sizes]
    assert all(b > a for a, b in itertools.pairwise(ts))


def test_interpolation_across_shapes_is_a_power_law_in_size():
    table = OperatorTable(_gemm_table(lambda m: 1.0 + m, exponent=0.8))
    got = table.time_s("gemm", "int8", m=4, k=512, n=512)
    assert got == pytest.approx((512 * 512) ** 0.8 * 5.0 * 1e-9, rel=1e-9)


def test_out_of_grid_names_operator_shape_and_range():
    table = OperatorTable(_gemm_table(lambda m: 1.0))
    with pytest.raises(OperatorGridError) as e:
        table.time_s("gemm", "int8", m=17, k=256, n=256)
    msg = str(e.value)
    assert "\n" not in msg and "gemm" in msg and "m=17" in msg and "1..16" in msg
    with pytest.raises(OperatorGridError) as e:
        table.time_s("gemm", "int8", m=4, k=4096, n=4096)
    assert "k=4096" in str(e.value) and "k·n" in str(e.value) and "65536..1.04858e+06" in str(e.value)
    with pytest.raises(OperatorGridError, match="no rotary records"):
        table.time_s("rotary", "bf16", tokens=1, heads=2, kv_heads=2, head_dim=128)
    with pytest.raises(OperatorGridError, match="missing n"):
        table.time_s("gemm", "int8", m=1, k=256)


def test_attention_axes_exact_and_between():
    records = [rec("attention_decode", 1e-6 * (5 + b * c * h / 64), batch=b, context=c, heads=h, kv_heads=min(h, 8),
                   head_dim=128)
               for h in (2, 16) for b in (1, 4, 16) for c in (32, 512)]
    table = OperatorTable(records)
    assert table.time_s("attention_decode", batch=4, context=512, heads=16, kv_heads=8,
                        head_dim=128) == pytest.approx(1e-6 * (5 + 4 * 512 * 16 / 64))
    # linear in context and batch: exact for an affine kernel at a measured config
    assert table.time_s("attention_decode", batch=8, context=200, heads=2, kv_heads=2,
                        head_dim=128) == pytest.approx(1e-6 * (5 + 8 * 200 * 2 / 64))
    mid = table.time_s("attention_decode", batch=4, context=512, heads=8, kv_heads=8, head_dim=128)
    lo = table.time_s("attention_decode", batch=4, context=512, heads=2, kv_heads=2, head_dim=128)
    hi = table.time_s("attention_decode", batch=4, context=512, heads=16, kv_heads=8, head_dim=128)
    assert lo < mid < hi


# --------------------------------------------------------------------------- composition


def _planted(model: ModelDims, batch_rows: tuple[int, ...], seqs: tuple[int, ...]) -> tuple[list[dict], dict]:
    """Records on a grid around the step's shapes, with a distinct constant time per operator and
    GEMM role (so any query inside returns that constant)."""
    per = {"qkv": 1e-3, "o": 2e-3, "gate_up": 3e-3, "down": 4e-3, "lm_head": 5e-3, "attention_decode": 6e-4,
           "attention_prefill": 7e-4, "rms_norm": 8e-5, "rotary": 9e-5, "silu_and_mul": 1.1e-4, "sampler": 1.2e-4}
    grid = build_grid([model], gemm_rows=batch_rows, lm_head_rows=seqs, token_rows=batch_rows,
                      decode_batches=seqs, decode_contexts=(64, 1024), prefill_tokens=(64, 512),
                      sampler_batches=seqs, step_overhead_calls=())
    records = []
    for g in grid.groups:
        t = per[g.role] if g.op == "gemm" else per[g.op]
        dtype = "int8" if g.op == "gemm" and g.weight == "int8" else "bf16"
        records += [rec(g.op, t, dtype=dtype, **shape) for shape in g.points()]
    return records, per


def test_compose_recovers_a_planted_step():
    model = ModelDims(hidden=512, heads=8, kv_heads=4, head_dim=64, intermediate=1536, vocab=4096, layers=4)
    records, per = _planted(model, batch_rows=(1, 2, 600, 2048), seqs=(1, 4))
    table = OperatorTable(records)
    batch = StepBatch(decode_contexts=(100, 300), prefill_tokens=(128, 256))
    got = step_time(table, model, batch, engine_step_overhead_s=0.004)
    layers = model.layers
    expected = (layers * (per["qkv"] + per["o"] + per["gate_up"] + per["down"] + per["attention_decode"]
                          + 2 * per["attention_prefill"] + 2 * per["rms_norm"] + per["rotary"] + per["silu_and_mul"])
                + per["rms_norm"] + per["lm_head"] + per["sampler"] + 0.004)
    assert got.total_s == pytest.approx(expected)
    assert got.tokens == 2 + 128 + 256 and got.sequences == 4
    assert got.gemm_qkv_s == pytest.approx(layers * per["qkv"])
    assert got.attention_prefill_s == pytest.approx(layers * 2 * per["attention_prefill"])
    assert got.by_kind()["total_s"] == pytest.approx(expected)
    dec = decode_step_time(table, model, [64, 64], engine_step_overhead_s=0.0)
    assert dec.attention_prefill_s == 0 and dec.tokens == 2


def test_compose_missing_operator_is_one_line():
    model = ModelDims(hidden=512, heads=8, kv_heads=4, head_dim=64, intermediate=1536, vocab=4096, layers=2)
    records, _ = _planted(model, batch_rows=(1, 4), seqs=(1, 4))
    table = OperatorTable([r for r in records if r["op"] != "rotary"])
    with pytest.raises(OperatorGridError) as e:
        decode_step_time(table, model, [64], engine_step_overhead_s=0.0)
    assert "rotary" in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(ValueError):
        step_time(table, model, StepBatch(decode_contexts=(64,)), engine_step_overhead_s=-1.0)
    with pytest.raises(ValueError):
        StepBatch()


# --------------------------------------------------------------------------- schema and files


def _profile(records: list[dict]) -> dict:
    return {
        "schema_version": 1, "kind": "operator-profile", "name": "cpu-test-2c", "device_name": "Test CPU",
        "device_kind": "cpu", "threads": 2, "isa_tier": "avx2", "activation_dtype": "bf16", "grid": "quick",
        "budget_s": 10.0, "measurement_wall_s": 1.5,
        "provenance": {"date_utc": "2026-12-07T00:00:00+00:00", "versions": {"torch": "2.13.0"},
                       "git_commit": None, "method": "synthetic"},
        "records": records,
    }


def test_schema_round_trips_and_rejects_unknown_keys(tmp_path):
    records = _gemm_table(lambda m: 1.0)[:3] + [rec("sampler", 1e-4, batch=1, vocab=4096)]
    prof = profile_from_dict(_profile(records))
    path = tmp_path / "p.json"
    path.write_text(profile_to_json(prof))
    again = load_profile(path)
    assert again == prof
    assert OperatorTable(again.records).time_s("sampler", batch=1, vocab=4096) == 1e-4
    bad = _profile(records)
    bad["extra"] = 1
    with pytest.raises(OperatorProfileError, match="extra"):
        profile_from_dict(bad)
    bad = _profile([{**records[0], "colour": "red"}])
    with pytest.raises(OperatorProfileError, match="colour"):
        profile_from_dict(bad)
    with pytest.raises(OperatorProfileError, match="needs shape keys"):  # a gemm without n
        profile_from_dict(_profile([{k: v for k, v in records[0].items() if k != "n"}]))
    with pytest.raises(OperatorProfileError):
        profile_from_dict({**_profile(records), "schema_version": 2})
    path.write_text("{not json")
    with pytest.raises(OperatorProfileError, match="not valid JSON"):
        load_profile(path)


def test_set_aside_renames_never_overwrites(tmp_path):
    p = tmp_path / "cpu-x.json"
    assert set_aside(p) is None
    p.write_text("old")
    kept = set_aside(p)
    assert kept is not None and kept.read_text() == "old" and not p.exists()
    assert kept.name.startswith("cpu-x.replaced-") and kept.suffix == ".json"
    p.write_text("newer")
    again = set_aside(p)  # the same second: a second name, the first kept
    assert again != kept and again.read_text() == "newer" and kept.read_text() == "old"


def test_cli_bad_input_is_one_line_exit_2(tmp_path, capsys):
    f = tmp_path / "file"
    f.write_text("")
    p = argparse.ArgumentParser()
    cli.add_args(p)
    assert cli.run(p.parse_args(["--out", str(f)])) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "--out" in err
    q = OneLineParser(prog="bench operators")
    cli.add_args(q)
    with pytest.raises(SystemExit) as e:
        q.parse_args(["--max-seconds", "0"])
    assert e.value.code == 2


# --------------------------------------------------------------------------- a real measurement


def _vllm_cpu_ops_reason() -> str | None:
    try:
        importlib.import_module("vllm._custom_ops")
    except Exception as exc:  # noqa: BLE001 - ImportError, or an OSError from a broken install
        return f"vllm._custom_ops cannot be imported: {type(exc).__name__}: {exc}"
    import torch

    if getattr(torch.version, "cuda", None) and torch.cuda.is_available():
        return "a CUDA build: vLLM's CPU ops are not the ones this checks"
    return None


@pytest.mark.timeout(180)
def test_quick_grid_on_this_cpu(tmp_path, capsys):
    reason = _vllm_cpu_ops_reason()
    if reason:
        pytest.skip(reason)
    p = argparse.ArgumentParser()
    cli.add_args(p)
    assert cli.run(p.parse_args(["--quick", "--device", "cpu", "--out", str(tmp_path), "--max-seconds", "120"])) == 0
    out = capsys.readouterr().out.strip().splitlines()
    path = tmp_path / out[-1].rsplit("/", 1)[-1]
    assert path.exists() and path.name.endswith("-quick.json")
    prof = load_profile(path)
    assert prof.grid == "quick" and prof.device_kind == "cpu" and not prof.skipped
    # what other processes took of the cores meanwhile is measured, stored and printed
    assert prof.provenance.other_cpu_share is not None and 0 <= prof.provenance.other_cpu_share <= 1
    assert any("of the host's CPU time meanwhile (measured)" in line for line in out)
    assert len(prof.records) == quick_grid().size()
    for r in prof.records:
        assert math.isfinite(r.median_s) and 0 < r.p10_s <= r.median_s <= r.p90_s
        assert r.impl
    assert {r.op for r in prof.records} == set(SHAPE_KEYS)
    assert any(r.impl.startswith("vllm._C.") for r in prof.of("gemm", "int8"))
    json.loads(path.read_text())  # plain JSON
    # the table answers inside its grid
    table = OperatorTable(prof.records)
    assert table.time_s("gemm", "int8", m=2, k=256, n=256) > 0
    OperatorRecord.model_validate(prof.records[0].model_dump())
    assert isinstance(prof, OperatorProfile)
    # the pipeline's call: a stored profile of this device is reused as it is, not measured again
    from bench.operators.store import measure_into

    before = path.read_bytes()
    stored = measure_into(tmp_path, device="cpu", quick=True, reuse=True)
    assert stored.reused and stored.path == path and stored.kept is None
    assert path.read_bytes() == before and stored.profile == prof


# --------------------------------------------------------------------------- the step model on top


def test_dims_of_solves_the_mlp_width_from_n():
    from core.dims import dims_of

    # the CPU ladder's 2.6M model: hidden 256, 2 layers, 4/2 heads of 64, MLP 768, vocab 4096
    d = dims_of(num_layers=2, hidden_size=256, num_attention_heads=4, num_kv_heads=2, head_dim=64,
                vocab_size=4096, params_matmul=2621440)
    assert d.intermediate == 768 and d.layers == 2
    with pytest.raises(ValueError, match="whole MLP width"):
        dims_of(num_layers=2, hidden_size=256, num_attention_heads=4, num_kv_heads=2, head_dim=64,
                vocab_size=4096, params_matmul=2621440 + 1000)


def test_engine_overhead_fit_recovers_a_planted_overhead():
    """Steps simulated from a planted table + 3 ms overhead (with zero-mean jitter) give back 3 ms,
    and the step model then reproduces the planted steps."""
    from calibrate.operators.stepmodel import OperatorStepModel, fit_all_overheads_s
    from calibrate.runs.steps import Steps

    model = ModelDims(hidden=512, heads=8, kv_heads=4, head_dim=64, intermediate=1536, vocab=4096, layers=4)
    records, _ = _planted(model, batch_rows=(1, 2, 4, 8, 600, 2048), seqs=(1, 2, 4, 8))
    sm = OperatorStepModel(OperatorTable(records), model)
    n = np.array([1, 2, 4, 8, 4, 2], float)
    ctx = n * 100
    composed = np.array([sm.composed_s(a, b, 0, 0) for a, b in zip(n, ctx)])
    jitter = np.array([1, -1, 1, -1, 1, -1]) * 2e-4
    steps = Steps(duration_s=composed + 3e-3 + jitter, decode_seqs=n, decode_context_tokens=ctx,
                  prefill_tokens=np.zeros(6), prefill_pairs=np.zeros(6), weight=np.ones(6))
    fitted = fit_all_overheads_s([(sm, steps)]).engine  # no optional terms: the weighted mean
    assert fitted == pytest.approx(3e-3, rel=1e-9)
    sm.engine_step_overhead_s = fitted
    assert sm(4, 400, 0, 0) == pytest.approx(sm.composed_s(4, 400, 0, 0) + 3e-3)
    # a prefill step: the prompt count is read from the causal pairs (two prompts of 128)
    two = sm.composed_s(0, 0, 256, 2 * 128 * 129 / 2)
    one = sm.composed_s(0, 0, 256, 256 * 257 / 2)
    assert two > one  # two prefill attention calls cost more than one in the planted table


def test_real_dims_for_params_are_whole_and_near_n():
    from core.dims import params_of, real_dims_for_params

    for n in (1e8, 1.3e9, 7e9, 13e9, 70e9):
        d = real_dims_for_params(n)
        assert d.hidden % d.head_dim == 0 and d.heads * d.head_dim == d.hidden and d.heads % d.kv_heads == 0
        assert abs(params_of(d) / n - 1) < 0.02, (n, d)
    pinned = real_dims_for_params(7e9, num_layers=32, hidden_size=4096)
    assert (pinned.layers, pinned.hidden, pinned.heads, pinned.kv_heads) == (32, 4096, 32, 8)
    with pytest.raises(ValueError, match="multiple of head_dim"):
        real_dims_for_params(7e9, hidden_size=4100)


def test_layer_overhead_fit_recovers_planted_terms():
    """Two models of 2 and 6 layers whose steps carry 2 ms + layers x 0.5 ms beyond their operators."""
    from calibrate.operators.stepmodel import OperatorStepModel, fit_all_overheads_s
    from calibrate.runs.steps import Steps

    pairs = []
    for layers in (2, 6):
        model = ModelDims(hidden=512, heads=8, kv_heads=4, head_dim=64, intermediate=1536, vocab=4096, layers=layers)
        records, _ = _planted(model, batch_rows=(1, 2, 4, 600, 2048), seqs=(1, 2, 4))
        sm = OperatorStepModel(OperatorTable(records), model)
        n = np.array([1, 2, 4, 2], float)
        composed = np.array([sm.composed_s(a, a * 100, 0, 0) for a in n])
        steps = Steps(duration_s=composed + 2e-3 + layers * 5e-4, decode_seqs=n, decode_context_tokens=n * 100,
                      prefill_tokens=np.zeros(4), prefill_pairs=np.zeros(4), weight=1 / n)
        pairs.append((sm, steps))
    engine, layer, _, _ = fit_all_overheads_s(pairs, ("layer",))
    assert engine == pytest.approx(2e-3, rel=1e-6) and layer == pytest.approx(5e-4, rel=1e-6)
    with pytest.raises(ValueError, match="two layer counts"):
        fit_all_overheads_s(pairs[:1], ("layer",))


def test_sequence_overhead_fit_recovers_planted_host_work():
    """Steps carrying 2 ms + layers x 0.5 ms + sequences x 0.3 ms (a prefill of two prompts counts two
    sequences) + cached tokens x layers x 0.2 µs give the four terms back, and the step model then adds them; a term the data make
    negative is dropped rather than kept below 0."""
    from calibrate.operators.stepmodel import OperatorStepModel, fit_all_overheads_s
    from calibrate.runs.steps import Steps

    pairs = []
    for layers in (2, 6):
        model = ModelDims(hidden=512, heads=8, kv_heads=4, head_dim=64, intermediate=1536, vocab=4096, layers=layers)
        records, _ = _planted(model, batch_rows=(1, 2, 4, 8, 256, 600, 2048), seqs=(1, 2, 4, 8))
        sm = OperatorStepModel(OperatorTable(records), model)
        n = np.array([1, 2, 4, 8, 0], float)
        pre = np.array([0, 0, 0, 0, 256], float)
        pairs_ = np.array([0, 0, 0, 0, 2 * 128 * 129 / 2])  # two prompts of 128
        ctx = n * np.array([100, 300, 50, 200, 0])
        composed = np.array([sm.composed_s(a, c, p, q) for a, c, p, q in zip(n, ctx, pre, pairs_)])
        seqs = n + np.array([0, 0, 0, 0, 2])
        steps = Steps(duration_s=composed + 2e-3 + layers * 5e-4 + seqs * 3e-4 + ctx * layers * 2e-7, decode_seqs=n,
                      decode_context_tokens=ctx, prefill_tokens=pre, prefill_pairs=pairs_, weight=np.ones(5))
        pairs.append((sm, steps))
    o = fit_all_overheads_s(pairs, ("layer", "sequence", "context"))
    assert o == (pytest.approx(2e-3, rel=1e-6), pytest.approx(5e-4, rel=1e-6), pytest.approx(3e-4, rel=1e-6),
                 pytest.approx(2e-7, rel=1e-6))
    sm = OperatorStepModel(pairs[0][0].table, pairs[0][0].dims).set_overheads(o)
    assert sm(4, 400, 0, 0) == pytest.approx(sm.composed_s(4, 400, 0, 0) + 2e-3 + 2 * 5e-4 + 4 * 3e-4
                                             + 400 * 2 * 2e-7)
    # steps that shorten with the batch: the per-sequence term would be < 0, so it is dropped
    for sm_, st in pairs:
        st.duration_s[:] = st.duration_s - 2 * _sequences_of(st) * 3e-4 - st.decode_context_tokens * sm_.dims.layers * 2e-7
    engine, layer, seq, _ = fit_all_overheads_s(pairs, ("layer", "sequence"))
    assert seq == 0.0 and engine >= 0 and layer >= 0
    with pytest.raises(ValueError, match="allowed layer, sequence, context"):
        fit_all_overheads_s(pairs, ("batch",))


def _sequences_of(steps):
    from calibrate.operators.stepmodel import _sequences

    return _sequences(steps)


def test_leave_one_size_out_on_the_committed_ladder_and_operator_profile():
    """The committed same-host evidence (results/validation/2026-12-07 and this host's operator profile):
    every run is predicted, each size labelled by where it lies, and the error stays within a loose bound
    (the real figures are in docs/measurements.md; this catches order-of-magnitude breakage)."""
    from calibrate.operators.validate import leave_one_size_out, sizes_of
    from calibrate.perfmodel.errorsplit import error_split
    from calibrate.perfmodel.selection import load_ladder
    from core.schema.operators import load_profile

    repo = Path(__file__).resolve().parents[1]
    profile = repo / "results" / "hardware" / "operators" / "cpu-intel-xeon-processor-amx-2c.json"
    runs, _ = load_ladder([repo / "results" / "validation" / "2026-12-07"])
    table = OperatorTable(load_profile(profile).records)
    sizes = sizes_of(runs)
    assert len(sizes) == 3
    rows = leave_one_size_out(table, runs, terms=("layer",))
    assert len(rows) == len(runs)
    assert {r.where for r in rows if r.model == sizes[1]} == {"interpolated"}
    assert {r.where for r in rows if r.model == sizes[-1]} == {"extrapolated (largest)"}
    for r in rows:
        assert r.engine_step_overhead_s >= 0 and r.layer_overhead_s >= 0
        assert 0 < r.predicted["output_tokens_per_s"] < math.inf
    split = error_split([vars(r) for r in rows])["output_tokens_per_s"]
    assert split["error_max"] < 1.5 and split["replicated_points"] == 21
    with pytest.raises(ValueError, match="3 sizes or more"):
        leave_one_size_out(table, [r for r in runs if r.model != sizes[0]], terms=("layer",))


def test_nested_choice_never_sees_the_size_it_is_scored_on(monkeypatch):
    """Nested leave-one-size-out: the terms that predict a size are chosen on the other sizes only, and
    on 2 inner sizes a per-layer term (needing two layer counts to fit) is never a candidate."""
    from calibrate.operators import validate
    from calibrate.perfmodel.selection import load_ladder
    from core.schema.operators import load_profile

    repo = Path(__file__).resolve().parents[1]
    runs, _ = load_ladder([repo / "results" / "validation" / "2026-12-07"])
    table = OperatorTable(load_profile(repo / "results/hardware/operators/cpu-intel-xeon-processor-amx-2c.json").records)
    sizes = validate.sizes_of(runs)
    seen = []
    real = validate.choose_terms

    def spy(table_, train, *a, **kw):
        best, scores = real(table_, train, *a, **kw)
        seen.append(({r.model for r in train}, best, scores))
        return best, scores

    monkeypatch.setattr(validate, "choose_terms", spy)
    rows = validate.nested_leave_one_size_out(table, runs)
    assert len(rows) == len(runs) and len(seen) == len(sizes)
    for held, (train_sizes, best, scores) in zip(sizes, seen):
        assert held not in train_sizes and len(train_sizes) == len(sizes) - 1
        assert all("layer" not in t for t in scores)  # 2 sizes to choose on: no per-layer term
        assert {r.terms for r in rows if r.model == held} == {best}
    with pytest.raises(ValueError, match="3 sizes or more"):
        validate.nested_leave_one_size_out(table, [r for r in runs if r.model != sizes[0]])


def test_cv_score_is_the_mean_absolute_log_error():
    from calibrate.operators.validate import cv_score

    class Row:
        def __init__(self, p, m):
            self.predicted = {"output_tokens_per_s": p, "usd_per_request": 1 / p}
            self.measured = {"output_tokens_per_s": m, "usd_per_request": 1 / m}

    assert cv_score([Row(2.0, 1.0), Row(1.0, 1.0)]) == pytest.approx(math.log(2) / 2)
    assert cv_score([Row(0.5, 1.0)]) == pytest.approx(cv_score([Row(2.0, 1.0)]))  # over and under alike
    assert cv_score([]) == math.inf


def test_calibrate_profile_carries_the_operator_check(tmp_path):
    """calibrate profile --ladder --operator-profile: the profile's performance model holds the check, and
    it reads back; the flag without --ladder is refused in one line."""
    from calibrate.profile.make import ProfileOptions, profile_runs, write_profile
    from core.errors import InputError
    from core.schema.profile import Profile

    repo = Path(__file__).resolve().parents[1]
    ops = repo / "results" / "hardware" / "operators" / "cpu-intel-xeon-processor-amx-2c.json"
    runs = [repo / "results" / "validation" / "2026-12-07"]
    opts = ProfileOptions(ladder=True, ladder_bootstrap=2, bootstrap=50, operator_profile=ops)
    prof = profile_runs(runs, opts)
    check = prof.performance_model.operator_check
    assert check is not None and set(check.error_split) >= {"interpolated", "all"}
    # the terms: chosen without each size (nested), and on all sizes (with the overheads fitted there)
    assert set(check.terms_by_size) == {"tiny-llama-h256-l2-w8a8", "tiny-llama-h512-l4-w8a8", "tiny-llama-h1152-l9-w8a8"}
    assert check.selection.startswith("nested") and "layer" in check.cv_scores
    assert check.layer_term == ("layer" in check.terms) and check.overheads_s["engine"] >= 0
    assert check.error_split["all"]["output_tokens_per_s"].runs == 42
    # each size's predicted step against the criteria a ladder must meet, and the smallest size meeting them
    assert [c.model for c in check.size_checks] == ["tiny-llama-h256-l2-w8a8", "tiny-llama-h512-l4-w8a8",
                                                    "tiny-llama-h1152-l9-w8a8"]
    for c in check.size_checks:
        assert c.ticks == pytest.approx(c.step_s / check.answering.tick_s) and 0 < c.operator_share < 1
    assert not check.size_checks[0].meets_ticks  # the 2.6M size steps at ~2 ticks: it cannot identify N terms
    a = check.answering
    assert a.smallest_params is None or a.top_params == pytest.approx(a.span * a.smallest_params)
    from calibrate.profile.cli import size_check_lines

    text = "\n".join(size_check_lines(check))
    assert "tiny-llama-h1152-l9-w8a8" in text and "ticks" in text
    back = Profile.load(write_profile(prof, tmp_path / "p.json"))
    assert back.performance_model.operator_check == check
    assert set(check.overheads_by_size) == set(check.terms_by_size)

    # calibrate predict --from operators: the contract's points, from the operator profile and these overheads
    import subprocess
    import sys

    def predict(*extra):
        return subprocess.run([sys.executable, "-m", "calibrate", "predict", str(tmp_path / "p.json"), *extra,
                               "--input-tokens", "70", "--output-tokens", "215", "--concurrency", "1,16"],
                              capture_output=True, text=True, cwd=repo)

    res = predict("--params", "50e6", "--from", "operators", "--json")
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["form"] == "operators" and "one ladder size out" in out["interval_method"]
    assert [p["concurrency"] for p in out["points"]] == [1, 16]
    for p in out["points"]:
        lo, hi = p["output_tokens_per_s_interval"]
        assert 0 < lo <= p["output_tokens_per_s"] <= hi
    assert out["points"][1]["output_tokens_per_s"] > out["points"][0]["output_tokens_per_s"]
    forms = json.loads(predict("--params", "50e6", "--json").stdout)
    assert forms["form"] == prof.performance_model.form and forms["interval_method"].startswith("95 %")
    changed = tmp_path / "ops.json"  # the operator profile edited after the check: refused, not silently used
    changed.write_text(ops.read_text() + "\n")
    data = json.loads((tmp_path / "p.json").read_text())
    data["performance_model"]["operator_check"]["operator_profile"] = str(changed)
    (tmp_path / "p.json").write_text(json.dumps(data))
    res = predict("--params", "50e6", "--from", "operators")
    assert res.returncode == 2 and "changed since" in res.stderr
    data["performance_model"]["operator_check"]["operator_profile"] = str(ops)
    (tmp_path / "p.json").write_text(json.dumps(data))
    off = predict("--params", "1e13", "--from", "operators")  # far outside the operator grid
    assert off.returncode == 2 and "outside the measured grid" in off.stderr and len(off.stderr.strip().splitlines()) == 1
    by_size = data["performance_model"]["operator_check"].pop("overheads_by_size")  # an older profile:
    (tmp_path / "p.json").write_text(json.dumps(data))  # no interval to give, so no zero-width one either
    old = predict("--params", "50e6", "--from", "operators")
    assert old.returncode == 2 and "no fits leaving one size out" in old.stderr
    data["performance_model"]["operator_check"]["overheads_by_size"] = by_size
    (tmp_path / "p.json").write_text(json.dumps(data))
    with pytest.raises(InputError, match="only with --ladder"):
        profile_runs(runs, ProfileOptions(operator_profile=ops))
    with pytest.raises(InputError, match="no such operator profile"):
        profile_runs(runs, ProfileOptions(ladder=True, ladder_bootstrap=2, operator_profile=tmp_path / "none.json"))
