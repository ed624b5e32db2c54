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


def test_flags_turn_stages_parts_off_and_reach_the_stage_options():
    o = _opts("--no-operators", "--no-paper-gpu", "--quick", "--sweep-args", "--repeats 1")
    assert not o.operators and not o.paper_gpu
    assert o.sweep_overrides["num_requests"] == 4 and o.sweep_overrides["repeats"] == 1


def test_a_bad_stage_flag_is_one_line_exit_2():
    with pytest.raises(PipelineError, match="bench sweep") as exc:
        _opts("--sweep-args", "--repeats zero")
    assert exc.value.returncode == 2
