"""solver.report.compute / report_render / report_cli: the report's numbers are the solver's, the HTML is safe."""

from __future__ import annotations

import hashlib
import json
from html.parser import HTMLParser
from pathlib import Path

import pytest
from solver_synthetic import overhead_model, paper_equivalent_model, synthetic_profile

from solver import cli
from solver.optimize.costs import phase_costs
from solver.optimize.laws import chinchilla_loss_for_params, get_law
from solver.optimize.solve import CostSettings, optimize_cost, optimize_cost_general
from solver.report.compute import ReportInputs, compute_solution, serving_model

LAW = get_law("chinchilla")
LOSS_30B = float(chinchilla_loss_for_params(LAW, 30e9))
TRAIN_USD_PER_FLOP = 1.50 / 3600 / (312e12 * 0.5)  # paper: A100-80GB bf16 at 50 %
CURVE = {1: 0.004, 2: 0.008, 4: 0.015, 8: 0.028, 16: 0.05, 32: 0.08, 64: 0.11}


def inputs(**kw) -> ReportInputs:
    base = dict(target_loss=LOSS_30B, requests=17.5e9, train_usd_per_flop=TRAIN_USD_PER_FLOP,
                train_description={"gpu": "a100-80gb-sxm"}, law=LAW, chinchilla_params=30e9, map_points=7)
    base.update(kw)
    return ReportInputs(**base)


@pytest.fixture(scope="module")
def curved():
    prof = synthetic_profile(curve=CURVE, performance_model=overhead_model())
    return prof, compute_solution(inputs(), prof, {"path": "synthetic"}).model_dump()


def test_paper_scenario_equals_solver(curved):
    _, sol = curved
    settings = CostSettings.from_hardware(train_usd_per_h=1.5, train_peak_flop_per_s=312e12, mfu_train=0.5,
                                          inference_usd_per_h=1.10, inference_peak_flop_per_s=624e12,
                                          mfu_input=0.5, mfu_output=0.01)
    c = optimize_cost(LOSS_30B, 17.5e9, settings, LAW)
    s = sol["scenarios"]["paper"]
    assert s["optimal"]["params"] == pytest.approx(float(c.optimal.params), rel=1e-12)
    assert s["optimal"]["train_tokens"] == pytest.approx(float(c.optimal.train_tokens), rel=1e-12)
    assert s["optimal"]["total_cost_usd"] == pytest.approx(float(c.optimal.total_usd), rel=1e-12)
    assert s["chinchilla"]["total_cost_usd"] == pytest.approx(float(c.chinchilla.total_usd), rel=1e-12)
    assert s["saving_fraction"] == pytest.approx(float(c.saving_fraction), rel=1e-12)


def test_calibrated_scenarios_equal_solver(curved):
    prof, sol = curved
    pc = phase_costs(prof)
    c = optimize_cost(LOSS_30B, 17.5e9, CostSettings(TRAIN_USD_PER_FLOP, pc.usd_per_flop_input,
                                                     pc.usd_per_flop_output), LAW)
    s = sol["scenarios"]["calibrated"]
    assert s["optimal"]["params"] == pytest.approx(float(c.optimal.params), rel=1e-12)
    assert s["optimal"]["total_cost_usd"] == pytest.approx(float(c.optimal.total_usd), rel=1e-12)
    model = serving_model(inputs(), prof)
    g = optimize_cost_general(LOSS_30B, LAW, TRAIN_USD_PER_FLOP, lambda n: 17.5e9 * model.usd_per_request(n))
    s = sol["scenarios"]["calibrated_n_dependent"]
    assert s["optimal"]["params"] == pytest.approx(g.params, rel=1e-12)
    assert s["optimal"]["total_cost_usd"] == pytest.approx(g.total_usd, rel=1e-12)
    assert s["saving_fraction"] == pytest.approx(g.saving_fraction, rel=1e-12)
    # the optimum is never worse than the Chinchilla-style model under the same costs
    for key in ("paper", "calibrated", "calibrated_n_dependent"):
        assert sol["scenarios"][key]["saving_fraction"] >= 0


def test_crossover_is_where_inference_equals_training(curved):
    _, sol = curved
    cx = sol["crossover"]["paper"]
    r = cx["optimal_requests"]
    settings = CostSettings.from_hardware(train_usd_per_h=1.5, train_peak_flop_per_s=312e12, mfu_train=0.5,
                                          inference_usd_per_h=1.10, inference_peak_flop_per_s=624e12,
                                          mfu_input=0.5, mfu_output=0.01)
    c = optimize_cost(LOSS_30B, r, settings, LAW)
    assert float(c.optimal.inference_usd) == pytest.approx(float(c.optimal.train_usd), rel=1e-6)
    c = optimize_cost(LOSS_30B, cx["chinchilla_requests"], settings, LAW)
    assert float(c.chinchilla.inference_usd) == pytest.approx(float(c.chinchilla.train_usd), rel=1e-9)
    assert sol["crossover"]["calibrated_n_dependent"]["optimal_requests"] > 0


def test_paper_equivalent_step_model_gives_eq6():
    """A step model with the paper's constant MFUs and no overhead: the N-dependent optimum is Eq. 6's
    (within the one output token per request that comes out of the prefill step, ~0.5 %)."""
    prof = synthetic_profile(memory_bytes=None, performance_model=paper_equivalent_model())
    sol = compute_solution(inputs(no_slo=True), prof, {"path": "synthetic"}).model_dump()
    const, ndep = sol["scenarios"]["calibrated"], sol["scenarios"]["calibrated_n_dependent"]
    assert ndep["optimal"]["params"] == pytest.approx(const["optimal"]["params"], rel=0.01)
    assert ndep["optimal"]["total_cost_usd"] == pytest.approx(const["optimal"]["total_cost_usd"], rel=0.01)
    assert const["optimal"]["params"] == pytest.approx(sol["scenarios"]["paper"]["optimal"]["params"], rel=1e-12)


def test_profile_without_performance_model_has_no_n_dependent_scenario(tmp_path, capsys):
    prof = synthetic_profile(curve=CURVE)
    sol = compute_solution(inputs(), prof, {"path": "synthetic"}).model_dump()
    assert sol["scenarios"]["calibrated_n_dependent"] is None
    assert sol["shift"] is None and sol["fleet"] is None and sol["prediction_check"] is None
    assert sol["crossover"]["calibrated_n_dependent"] is None
    ppath = tmp_path / "one-model.json"
    ppath.write_text(prof.model_dump_json())
    out = _run_report(tmp_path, capsys, ppath, "one-model")
    md = (out / "report.md").read_text()
    assert "no performance model" in md and "--ladder" in md


def test_fixed_overhead_moves_the_optimum(curved):
    _, sol = curved
    # a fixed per-step overhead and memory-bound weights make a small model dearer per FLOP than the
    # constant-MFU profile says: the N-dependent optimum differs and the constant-MFU plan costs more
    assert sol["scenarios"]["calibrated_n_dependent"]["serving_optimal"]["batch"] > 8
    assert abs(sol["shift"]["params_ratio"] - 1.0) > 0.01
    assert sol["shift"]["penalty_of_constant_mfu_plan"] > 0


def test_slo_overrides(curved):
    prof, sol = curved
    tight = compute_solution(inputs(slo_tpot_p90_s=0.01), prof, {"path": "synthetic"}).model_dump()
    free = compute_solution(inputs(no_slo=True), prof, {"path": "synthetic"}).model_dump()
    b = {k: s["scenarios"]["calibrated_n_dependent"]["serving_optimal"]["batch"]
         for k, s in (("tight", tight), ("profile", sol), ("free", free))}
    assert b["tight"] <= b["profile"] <= b["free"], b
    assert tight["scenarios"]["calibrated_n_dependent"]["optimal"]["total_cost_usd"] >= \
        free["scenarios"]["calibrated_n_dependent"]["optimal"]["total_cost_usd"]
    assert free["assumptions"]["workload"]["tpot_slo_s"] is None
    # the constant-MFU answers do not depend on the SLO
    assert tight["scenarios"]["calibrated"] == sol["scenarios"]["calibrated"]


class _Tags(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags = set()

    def handle_starttag(self, tag, attrs):
        self.tags.add(tag)


def _run_report(tmp_path, capsys, profile_path, name):
    rc = cli.main(["report", "--chinchilla-params", "30e9", "--requests", "17.5e9",
                   "--inference-profile", str(profile_path), "--name", name, "--out-dir", str(tmp_path / "reports")])
    out = capsys.readouterr().out.strip().splitlines()
    assert rc == 0
    from pathlib import Path

    return Path(out[-1])


def test_cli_report_files_numbers_and_escaping(tmp_path, capsys):
    evil = "<script>alert(1)</script>"
    prof = synthetic_profile(curve=CURVE, model_name=evil + "<img src=x onerror=alert(2)>",
                             performance_model=overhead_model())
    ppath = tmp_path / "profile.json"
    ppath.write_text(prof.model_dump_json())
    out = _run_report(tmp_path, capsys, ppath, evil)
    assert out.parent == tmp_path / "reports" and out.is_dir()
    assert "/" not in out.name and "<" not in out.name
    for f in ("report.md", "report.html", "solution.json", "cost_vs_params.png", "fig6_paper.png",
              "fig6_calibrated.png", "decode_curve.png"):
        assert (out / f).stat().st_size > 0, f
    sol = json.loads((out / "solution.json").read_text())
    assert sol["provenance"]["profile"]["sha256"] == hashlib.sha256(ppath.read_bytes()).hexdigest()
    assert sol["provenance"]["inputs"]["requests"] == 17.5e9 and sol["law"]["name"] == "chinchilla"
    direct = compute_solution(inputs(map_points=31), prof, {"path": str(ppath)}).model_dump()
    for key in ("paper", "calibrated", "calibrated_n_dependent"):
        assert sol["scenarios"][key]["optimal"]["params"] == pytest.approx(
            direct["scenarios"][key]["optimal"]["params"], rel=1e-12)
    html_text = (out / "report.html").read_text()
    assert "<script" not in html_text.lower() and "<img src=x" not in html_text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html_text
    parser = _Tags()
    parser.feed(html_text)
    assert parser.tags <= {"html", "head", "meta", "title", "style", "body", "h1", "h2", "h3", "p", "table",
                           "thead", "tbody", "tr", "th", "td", "img", "ul", "li"}, parser.tags
    assert html_text.count("data:image/png;base64,") == 5  # + front.png
    md = (out / "report.md").read_text()
    assert "<script>" not in md
    from solver.report.output.render import fmt_count

    assert fmt_count(sol["scenarios"]["calibrated_n_dependent"]["optimal"]["params"]) in md
    # a second report of the same name never overwrites the first
    from solver.report.output.write import write_report

    before = (out / "solution.json").read_bytes()
    out2 = write_report(out.parent, out.name, {"x": 1.0}, "md", "<p>h</p>", {})
    assert out2 != out and out2.name == out.name + "-2"
    assert (out / "solution.json").read_bytes() == before
    assert json.loads((out2 / "solution.json").read_text()) == {"x": 1.0}
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")]  # no temp dir left


def test_pipeline_glue_with_fake_stages(tmp_path, monkeypatch, capsys):
    """The four stages are called in order with each other's outputs; the report stage runs for real."""
    import types

    import bench.model.prepare
    import bench.run.ladder
    import bench.run.sweep
    import calibrate.profile.make
    from core.errors import BadFile
    from core.schema.profile import Profile
    from pipeline import chain as pipeline
    from pipeline.chain import PipelineError, PipelineOptions, run_pipeline

    prof = tmp_path / "prof.json"
    prof.write_text(synthetic_profile(curve=CURVE, performance_model=overhead_model()).model_dump_json())
    work = tmp_path / "work"
    (work / "results" / "calibration").mkdir(parents=True)
    (work / "results" / "calibration" / "cpu-test-ladder.json").write_text("{}")  # taken: must not be overwritten
    calls = []

    def fake_prepare(**kw):
        calls.append(("prepare", kw))
        out = Path(kw["models_dir"]) / f"tiny-h{kw['spec'].hidden_size}"
        out.mkdir(parents=True, exist_ok=True)
        return out

    def fake_sweep(cfg, **kw):
        calls.append(("sweep", cfg))
        base = Path(cfg.results) / "cpu-test" / Path(cfg.model).name
        (base / "run1").mkdir(parents=True, exist_ok=True)
        run = types.SimpleNamespace(run_dir=base / "run1")
        return types.SimpleNamespace(base=base, results=[run], not_run=[], ok=True)

    def fake_profile(run_dirs, opts):
        calls.append(("calibrate", (run_dirs, opts)))
        src = Path(os.environ["PIPELINE_PROFILE"])
        if not src.is_file():
            raise BadFile(src, None, "no such file")
        return Profile.load(src)

    def fake_write(profile, out, force=False):
        calls.append(("write", out))
        Path(out).write_text(profile.to_json())
        return Path(out)

    import os

    monkeypatch.setattr(bench.model.prepare, "prepare", fake_prepare)
    monkeypatch.setattr(bench.run.ladder, "prepare", fake_prepare)  # the ladder's rungs are prepared there
    monkeypatch.setattr(bench.run.sweep, "run_from_config", fake_sweep)
    monkeypatch.setattr(calibrate.profile.make, "profile_runs", fake_profile)
    monkeypatch.setattr(calibrate.profile.make, "write_profile", fake_write)
    monkeypatch.setattr(pipeline, "has_nvidia_gpu", lambda: False)

    def fake_operators(out, **kw):  # stage 1: the device's operators, measured once, then reused
        calls.append(("operators", (out, kw)))
        raise pipeline.operator_kernels.KernelUnavailable("vLLM's CPU ops are not importable here (test)")

    monkeypatch.setattr(pipeline.operator_store, "measure_into", fake_operators)
    monkeypatch.setenv("PIPELINE_PROFILE", str(prof))
    report = run_pipeline(PipelineOptions(cwd=str(work), sweep_overrides={"num_requests": 4}, name="glue"))
    assert (report / "report.html").is_file()
    assert report == work / "results" / "reports" / "glue"
    # the default on a CPU: the ladder, each size prepared, then each swept with the ladder config
    assert [c[0] for c in calls] == ["operators"] + ["prepare"] * 3 + ["sweep"] * 3 + ["calibrate", "write"]
    out, kw = calls.pop(0)[1]
    assert out == work / "results" / "hardware" / "operators" and kw["reuse"] and kw["device"] == "cpu"
    assert calls[0][1]["models_dir"] == work / "models"
    from bench.run.ladder import DEFAULT_CPU_LADDER

    sizes = [spec.hidden_size for spec in DEFAULT_CPU_LADDER]  # the default CPU ladder, whatever its sizes
    assert [c[1]["spec"].hidden_size for c in calls[:3]] == sizes
    cfg = calls[3][1]
    assert cfg.model == str(work / "models" / f"tiny-h{sizes[0]}") and cfg.num_requests == 4
    assert cfg.runs and cfg.server.max_num_seqs == 16  # bench/data/ladder_cpu.toml
    run_dirs, popts = calls[6][1]
    assert popts.ladder
    assert [str(d) for d in run_dirs] == [str(work / "results" / "runs" / "cpu-test" / f"tiny-h{h}" / "run1")
                                          for h in sizes]
    assert Path(calls[7][1]) == work / "results" / "calibration" / "cpu-test-ladder-2.json"
    assert (work / "results" / "calibration" / "cpu-test-ladder.json").read_text() == "{}"
    sol = json.loads((report / "solution.json").read_text())
    assert sol["provenance"]["profile"]["path"] == str(work / "results" / "calibration" / "cpu-test-ladder-2.json")
    err = capsys.readouterr().err
    assert "[1/5]" in err and "[5/5]" in err
    assert "no operator profile: vLLM's CPU ops are not importable here (test)" in err  # soft: it is a check
    # a failing stage stops the chain with its exit code and names it
    monkeypatch.setenv("PIPELINE_PROFILE", str(tmp_path / "missing.json"))
    with pytest.raises(PipelineError, match="stage 4") as exc:
        run_pipeline(PipelineOptions(cwd=str(work)))
    assert exc.value.returncode == 2


@pytest.mark.vllm
def test_report_from_profile_of_real_cpu_runs(cpu_sweep_runs, tmp_path, capsys):
    """Runs measured on vLLM's CPU backend in this session -> calibrate profile -> report."""
    from calibrate.profile import build as P
    from calibrate.runs.load import load_runs

    runs, dropped = load_runs(cpu_sweep_runs)
    prof = P.build_profile(runs, dropped=dropped, n_boot=100, min_requests=2,  # session runs: short by design
                           min_run={"duration_s": 0.0, "waves": 0.0, "requests": 0})
    ppath = tmp_path / "cpu.json"
    ppath.write_text(prof.model_dump_json())
    out = _run_report(tmp_path, capsys, ppath, "cpu-session")
    sol = json.loads((out / "solution.json").read_text())
    assert sol["provenance"]["profile"]["kind"] == "cpu"
    for key in ("paper", "calibrated"):
        s = sol["scenarios"][key]
        assert s["saving_fraction"] >= 0 and s["optimal"]["total_cost_usd"] > 0
        assert s["optimal"]["params"] < s["chinchilla"]["params"]  # Eq. 6 with demand > 0: a smaller model
    # a profile of one model has no performance model: no N-dependent serving cost, and it says so
    assert sol["scenarios"]["calibrated_n_dependent"] is None and sol["fleet"] is None
    assert "no performance model" in (out / "report.md").read_text()
    assert "CPU constants are not A100 constants" in (out / "report.md").read_text()


def test_committed_version_1_solution_still_reads():
    from solver.optimize.schema import SOLUTION_SCHEMA_VERSION
    from solver.report.schema import load_solution

    root = Path(__file__).resolve().parents[1] / "results" / "reports"
    files = sorted(root.glob("*/solution.json"))
    assert files, "no committed report"
    for f in files:
        sol = load_solution(f)
        assert sol.schema_version == SOLUTION_SCHEMA_VERSION
        for scen in (sol.scenarios.paper, sol.scenarios.calibrated, sol.scenarios.calibrated_n_dependent):
            if scen is None:
                continue
            assert scen.optimal.total_cost_usd <= scen.chinchilla.total_cost_usd * (1 + 1e-9)
            assert scen.optimal.total_cost_usd == pytest.approx(
                scen.optimal.train_cost_usd + scen.optimal.inference_cost_usd, rel=1e-12)
