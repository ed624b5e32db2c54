"""`python -m pipeline`'s flags become typed options (pipeline.__main__.options_from_args)."""

from __future__ import annotations

import pytest

from core.cli import Parser
from pipeline.__main__ import add_args, options_from_args
from pipeline.chain import PipelineError


def _opts(*argv: str):
    p = Parser(prog="pipeline")
    add_args(p)
    return options_from_args(p.parse_args(list(argv)))


def test_defaults_measure_operators_and_set_the_paper_gpu_beside():
    o = _opts()
    assert o.operators and o.paper_gpu and o.model is None and o.ladder is None
    assert o.operators_budget_s > 0
    assert o.sweep_budget_s == 660.0  # the default ladder's top size fitted to it (pipeline.ladder_plan)


def test_sweep_budget_zero_keeps_the_default_ladder_and_a_negative_one_is_refused(capsys):
    assert _opts("--sweep-budget-s", "0").sweep_budget_s is None
    assert _opts("--sweep-budget-s", "900").sweep_budget_s == 900.0
    with pytest.raises(SystemExit) as exc:
        _opts("--sweep-budget-s", "-5")
    assert exc.value.code == 2 and "-5" in capsys.readouterr().err


def test_flags_turn_stages_parts_off_and_reach_the_stage_options():
    o = _opts("--no-operators", "--no-paper-gpu", "--quick", "--sweep-args", "--repeats 1")
    assert not o.operators and not o.paper_gpu
    assert o.sweep_overrides["num_requests"] == 4 and o.sweep_overrides["repeats"] == 1


def test_a_bad_stage_flag_is_one_line_exit_2():
    with pytest.raises(PipelineError, match="bench sweep") as exc:
        _opts("--sweep-args", "--repeats zero")
    assert exc.value.returncode == 2


def _outcome(base, statuses):
    import types

    results = [types.SimpleNamespace(run_dir=base / f"run{i}", skipped=False,
                                     record=types.SimpleNamespace(status=s, error=None if s == "complete" else "x"))
               for i, s in enumerate(statuses)]
    return types.SimpleNamespace(base=base, results=results, not_run=[],
                                 ok=all(s == "complete" for s in statuses))


def test_a_failed_run_is_measured_once_more_then_the_stage_fails(tmp_path, monkeypatch):
    """Stage 3 retries a sweep's failed runs once (the failed run stays on disk; a second sweep measures
    its point again) and gives up, naming them, when they fail again."""
    import io

    from bench.run import sweep as run_sweep
    from pipeline import chain
    from pipeline.chain import PipelineOptions, sweep_models

    config = chain.default_config(False, ladder=True)
    answers = [["complete", "failed"], ["complete", "complete"]]
    calls = []

    def fake(cfg, **kw):
        calls.append(cfg.model)
        return _outcome(tmp_path / "series", answers[len(calls) - 1])

    monkeypatch.setattr(run_sweep, "run_from_config", fake)
    err = io.StringIO()
    runs = sweep_models(PipelineOptions(cwd=str(tmp_path)), [tmp_path / "m"], config, err=err)
    assert len(calls) == 2 and len(runs) == 2
    assert "1 run(s) failed (run1); kept, and their points measured again (retry 1 of 1)" in err.getvalue()

    calls.clear()
    answers[1] = ["complete", "failed"]
    with pytest.raises(PipelineError, match="1 run\\(s\\) failed"):
        sweep_models(PipelineOptions(cwd=str(tmp_path)), [tmp_path / "m"], config, err=io.StringIO())
    assert len(calls) == 2


def test_a_plans_request_cuts_reach_each_models_sweep(tmp_path, monkeypatch):
    """Stage 3 sweeps each model with the requests the plan set for it (pipeline.ladder_plan.capped_config)."""
    import io

    from bench.run import sweep as run_sweep
    from pipeline import chain
    from pipeline.chain import PipelineOptions, sweep_models

    config = chain.default_config(False, ladder=True)
    seen = []

    def fake(cfg, **kw):
        seen.append({s.label(): s.num_requests for s in cfg.specs()})
        return _outcome(tmp_path / f"series{len(seen)}", ["complete"])

    monkeypatch.setattr(run_sweep, "run_from_config", fake)
    sweep_models(PipelineOptions(cwd=str(tmp_path)), [tmp_path / "small", tmp_path / "large"], config,
                 [{}, {"prefill-p256-g1-c1": 30}], err=io.StringIO())
    assert seen[0]["prefill-p256-g1-c1"] == 96 and seen[1]["prefill-p256-g1-c1"] == 30  # bench/data/ladder_cpu.toml: 96
    assert seen[1]["prefill-p256-g1-c1-rep1"] == 30  # every replicate of the point
    assert {k: v for k, v in seen[1].items() if not k.startswith("prefill-p256-g1-c1")} == \
        {k: v for k, v in seen[0].items() if not k.startswith("prefill-p256-g1-c1")}
