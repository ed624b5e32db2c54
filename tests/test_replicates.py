"""Replicates in the sweep config (repeats, per-run override), the seeded random run order, and the
fail-soft prefix-cache reset (bench.config, bench.run.execute)."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from bench.config import ConfigError, load_config, parse_config, with_overrides
from bench.run.execute import reset_prefix_cache

BASE = {"model": "m", "runs": [{"workload": "decode", "concurrency": [1, 4]},
                               {"workload": "prefill", "concurrency": [2], "repeats": 4}]}


def test_repeats_expand_with_per_run_override_and_stable_keys():
    cfg = parse_config({**BASE, "repeats": 3})
    specs = cfg.specs()
    assert len(specs) == 2 * 3 + 4
    assert [s.replicate for s in specs[:3]] == [0, 1, 2]
    keys = [s.key() for s in specs]
    assert len(set(keys)) == len(keys)
    # replicate 0 keeps the key a spec had before replicates existed (complete runs are reused)
    one = parse_config(BASE).specs()
    assert specs[0].key() == one[0].key() and "rep" not in specs[0].key() and "-rep1-" in specs[1].key()


def test_run_order_is_a_seeded_permutation():
    cfg = parse_config({**BASE, "repeats": 3, "seed": 5})
    a, b = cfg.ordered_specs(), cfg.ordered_specs()
    assert a == b and sorted(s.key() for s in a) == sorted(s.key() for s in cfg.specs())
    assert a != cfg.specs()
    other = parse_config({**BASE, "repeats": 3, "seed": 5, "order_seed": 6})
    assert other.run_order_seed == 6 and other.ordered_specs() != a


def test_repeats_flag_beats_per_run_value_and_bad_values_refused():
    cfg = with_overrides(parse_config({**BASE, "repeats": 3}), {"repeats": 2})
    assert len(cfg.specs()) == 3 * 2
    with pytest.raises(ConfigError, match="repeats"):
        parse_config({**BASE, "repeats": 0})


@pytest.mark.parametrize("name,want", [("sweep_a100.toml", 3), ("sweep_cpu.toml", 2)])
def test_shipped_configs_replicate_and_hold_three_waves(name, want):
    cfg = load_config(f"bench/data/{name}")
    assert cfg.repeats == want
    for s in cfg.specs():
        if s.concurrency:  # the steady-state window (C-th .. (n-C)-th completion) holds >= 3 waves
            assert s.num_requests >= 5 * s.concurrency, s.label()


class _Handler(BaseHTTPRequestHandler):
    status = 200

    def do_POST(self):  # noqa: N802 - http.server's name
        self.send_response(self.status)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.mark.parametrize("status,want", [(200, "reset"), (404, "VLLM_SERVER_DEV_MODE")])
def test_prefix_cache_reset_answers_or_says_why(status, want):
    handler = type("H", (_Handler,), {"status": status})
    srv = HTTPServer(("127.0.0.1", 0), handler)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        assert want in reset_prefix_cache([f"http://127.0.0.1:{srv.server_port}"])
    finally:
        srv.shutdown()


def test_prefix_cache_reset_fails_soft_when_nothing_listens():
    out = reset_prefix_cache(["http://127.0.0.1:9"], timeout_s=2)
    assert out.startswith("not reset:")
