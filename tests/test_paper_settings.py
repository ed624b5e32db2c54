"""core.paper: the paper's settings, and their agreement with the GPU table."""

import dataclasses

import pytest

from core.gpus import DTYPES, get_device, peak_flop_per_s
from core.paper import PAPER, SECONDS_PER_HOUR


def test_paper_settings_values():
    assert (PAPER.input_tokens_per_request, PAPER.output_tokens_per_request) == (70, 215)
    assert PAPER.mfu == {"train": 0.5, "input": 0.5, "output": 0.01}
    assert (PAPER.inference.usd_per_h, PAPER.inference.peak_flop_per_s, PAPER.inference.dtype) == (1.10, 624e12, "int8")
    assert (PAPER.training.usd_per_h, PAPER.training.peak_flop_per_s, PAPER.training.dtype) == (1.50, 312e12, "bf16")
    assert SECONDS_PER_HOUR == 3600.0
    for src in (PAPER.tokens_source, PAPER.mfu_source, PAPER.inference.source, PAPER.training.source):
        assert "Sardana et al. 2024" in src


@pytest.mark.parametrize("gpu", [PAPER.inference, PAPER.training])
def test_paper_gpus_agree_with_the_table(gpu):
    dev = get_device(gpu.gpu)
    assert gpu.dtype in DTYPES
    assert dev.usd_per_h == gpu.usd_per_h
    assert peak_flop_per_s(dev, gpu.dtype) == gpu.peak_flop_per_s


def test_paper_settings_are_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        PAPER.mfu_train = 0.4  # type: ignore[misc]
