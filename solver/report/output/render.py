"""Turn a `Solution` (solver.report.compute, solver.report.schema) into Markdown and a self-contained HTML page.

One document model (a list of blocks) renders to both formats, so they say the same thing.
In HTML every string, numbers included, passes through `html.escape`: a model or report name like
`<script>` ends up as text, never markup. PNGs come from matplotlib's Agg backend (no display) and are
embedded in the HTML as base64 data URIs, so report.html is one file that opens anywhere. The plots
themselves are drawn by solver.report.output.plots; each report section has a renderer in RENDERERS.
"""

from __future__ import annotations

import base64
import html
import math
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from solver.report.schema import Solution

# --------------------------------------------------------------------------- formatting


def fmt_count(x: float | None, unit: str = "") -> str:
    """1.23e10 -> '12.3B' (K, M, B, T, P, E)."""
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "n/a"
    for scale, suffix in ((1e18, "E"), (1e15, "P"), (1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "K")):
        if abs(x) >= scale:
            return f"{x / scale:.3g}{suffix}{unit}"
    return f"{x:.3g}{unit}"


def fmt_bytes(x: float | None) -> str:
    """Decimal units: 1.59e10 -> '15.9 GB'."""
    if x is None or not math.isfinite(x):
        return "n/a"
    for scale, suffix in ((1e15, "PB"), (1e12, "TB"), (1e9, "GB"), (1e6, "MB"), (1e3, "kB")):
        if abs(x) >= scale:
            return f"{x / scale:.3g} {suffix}"
    return f"{x:.3g} B"


def fmt_usd(x: float | None) -> str:
    if x is None or not math.isfinite(x):
        return "n/a"
    if abs(x) >= 1e3:
        return "$" + fmt_count(x)
    if abs(x) >= 1:
        return f"${x:.2f}"
    return f"${x:.3g}"


def fmt_pct(x: float | None, digits: int = 1) -> str:
    if x is None or not math.isfinite(x):
        return "n/a"
    return f"{100 * x:.{digits}f} %"


def fmt_num(x: float | None, digits: int = 3) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "n/a"
    return f"{x:.{digits}g}"


def fmt_s(x: float | None) -> str:
    if x is None or not math.isfinite(x):
        return "n/a"
    return f"{x * 1e3:.3g} ms" if x < 1 else f"{x:.3g} s"


# --------------------------------------------------------------------------- document model


@dataclass(frozen=True)
class Heading:
    level: int
    text: str


@dataclass(frozen=True)
class Para:
    text: str
    strong: bool = False


@dataclass(frozen=True)
class Table:
    headers: list[str]
    rows: list[list[str]]


@dataclass(frozen=True)
class Image:
    filename: str
    alt: str


@dataclass(frozen=True)
class Bullets:
    items: list[str]


PREDICTION_PLOT = "prediction_check.png"  # drawn by solver.report.prediction.plot

SCENARIO_LABELS = {
    "paper": "Paper constants (MFU 50 % / 1 %, A100-40GB INT8)",
    "calibrated": "Calibrated profile, constant MFU (Eq. 6)",
    "calibrated_n_dependent": "Calibrated profile, N-dependent serving cost",
}


def build_document(sol: Solution, title: str, images: list[str]) -> list:
    """The report as blocks (pure): the title, then each entry of RENDERERS in order."""
    doc: list = [Heading(1, f"Sizing report: {title}")]
    for render in RENDERERS:
        doc += render(sol, images)
    return doc


def render_intro(sol: Solution, images: list[str]) -> list:
    prov = sol.provenance.profile
    tgt, dem, law = sol.target, sol.demand, sol.law
    doc: list = []
    if prov.get("inputs") == "synthetic":
        doc.append(Para("SYNTHETIC PROFILE: its constants are stated, not measured. Treat every "
                        "'calibrated' figure below as an illustration.", strong=True))
    if prov.get("kind") == "cpu" or str(prov.get("hardware", "")).startswith("cpu"):
        doc.append(Para("This profile was measured on a CPU. CPU constants are not A100 constants: "
                        "use the calibrated columns for this machine only.", strong=True))
    target = f"loss {tgt.loss:.6g}"
    if tgt.chinchilla_params:
        target = f"the quality of a {fmt_count(tgt.chinchilla_params)}-parameter Chinchilla-style model ({target})"
    doc.append(Para(
        f"Target: {target}. Lifetime demand: {fmt_count(dem.requests)} requests of "
        f"{dem.input_tokens_per_request:g} input + {dem.output_tokens_per_request:g} output tokens "
        f"({fmt_count(dem.inference_tokens)} tokens). Law: {law.name} (A={law.A:g}, "
        f"B={law.B:g}, E={law.E:g}, alpha={law.alpha:g}, beta={law.beta:g}). "
        f"Inference profile: {prov.get('path')} (hardware {prov.get('hardware')}, {prov.get('device_name')}, "
        f"model {prov.get('model')}, {prov.get('quantization')}). Training: {_train_text(sol.train)}."
    ))
    return doc


def render_scenarios(sol: Solution, images: list[str]) -> list:
    scen = sol.scenarios
    rows = []
    for key, label in SCENARIO_LABELS.items():
        s = getattr(scen, key)
        if s is None:
            rows.append([label] + ["n/a"] * 7 + ["no performance model in the profile"])
            continue
        o, c = s.optimal, s.chinchilla
        rows.append([label, fmt_count(o.params), fmt_count(o.train_tokens), f"{o.tokens_per_param:.3g}",
                     fmt_usd(o.train_cost_usd), fmt_usd(o.inference_cost_usd), fmt_usd(o.total_cost_usd),
                     fmt_usd(c.total_cost_usd), fmt_pct(s.saving_fraction)])
    ch = scen.paper.chinchilla
    sh = sol.shift
    doc: list = [
        Heading(2, "Cost-optimal model, assumed vs calibrated"),
        Table(["Cost model", "Params N*", "Train tokens D*", "Tokens/param", "Training", "Inference",
               "Total", "Chinchilla-style total", "Saving"], rows),
        Para(f"The equal-loss Chinchilla-style model has {fmt_count(ch.params)} parameters trained on "
             f"{fmt_count(ch.train_tokens)} tokens (training-compute-optimal at this loss); each row's saving is "
             f"against that model priced with the same cost model."),
    ]
    if sh is None:
        doc.append(Para("N-dependent serving cost: not computed. The profile measured one model size, which cannot "
                        "say how serving cost grows with N; a profile from a ladder of sizes (python -m calibrate "
                        "profile RUNS --ladder) carries a performance model that can."))
    else:
        doc.append(Para(
            f"Beyond constant MFU: with N-dependent serving cost (predicted by the profile's performance model) "
            f"the optimum has {sh.params_ratio:.3f}x the parameters and {sh.train_tokens_ratio:.3f}x the "
            f"training tokens of the constant-MFU calibrated answer; its total is {sh.total_usd_ratio:.3f}x the "
            f"constant-MFU total. Building the constant-MFU plan instead would cost "
            f"{fmt_pct(sh.penalty_of_constant_mfu_plan, 2)} more under the N-dependent costs."))
    if "cost_vs_params.png" in images:
        doc.append(Image("cost_vs_params.png", "Lifetime cost against parameters at the target loss"))
    return doc + _constants_table(scen)


def _constants_table(scen) -> list:
    pk, cal = scen.paper.constants, scen.calibrated.constants

    def achieved(phase: str) -> str:
        lo, hi = getattr(cal, f"achieved_flop_per_s_{phase}_interval")
        return f"{fmt_num(getattr(cal, f'achieved_flop_per_s_{phase}'))} [{fmt_num(lo)}, {fmt_num(hi)}]"

    return [Heading(3, "Constants"), Table(["", "Paper (assumed)", "Calibrated (measured)"], [
        ["$ per useful input FLOP", fmt_num(pk.input_usd_per_flop), fmt_num(cal.input_usd_per_flop)],
        ["$ per useful output FLOP", fmt_num(pk.output_usd_per_flop), fmt_num(cal.output_usd_per_flop)],
        ["MFU input (equivalent)", fmt_pct(pk.mfu_input, 2), fmt_pct(cal.mfu_input, 3)],
        ["MFU output (equivalent)", fmt_pct(pk.mfu_output, 2), fmt_pct(cal.mfu_output, 3)],
        ["Achieved input FLOP/s (95 % interval)", "-", achieved("input")],
        ["Achieved output FLOP/s (95 % interval)", "-",
         f"{achieved('output')} at concurrency {cal.operating_concurrency}"],
        ["$ per device-hour", f"{pk.inference_usd_per_h:g}", f"{cal.inference_usd_per_h:g}"],
        ["$ per useful training FLOP", fmt_num(pk.train_usd_per_flop), fmt_num(cal.train_usd_per_flop)],
    ])]


def render_maps(sol: Solution, images: list[str]) -> list:
    doc: list = [
        Heading(2, "Figure-6-style maps: cost-optimal vs Chinchilla-style"),
        Para("Ratios of total cost, parameters and training tokens of the cost-optimal model to the "
             "equal-loss Chinchilla-style model, over model quality (as Chinchilla-equivalent size) and "
             "lifetime requests (constant-MFU Eq. 6, vectorised). The star marks this report's target."),
    ]
    for f, alt in (("fig6_paper.png", "Map under the paper's constants"),
                   ("fig6_calibrated.png", "Map under the calibrated profile")):
        if f in images:
            doc.append(Image(f, alt))
    return doc


def render_decode_curve(sol: Solution, images: list[str]) -> list:
    dc = sol.decode_curve
    doc: list = [Heading(2, "Decode of the profiled model: measured, predicted, roofline"), Para(
        "Decode FLOP rate (paper convention, 2N per token) of the profiled model against concurrency: as measured, "
        "as the performance model predicts it (decode-only workload), and the roofline of that model on this "
        "hardware (memory bandwidth and peak). Right: the chosen model's decode MFU per device against batch, "
        "predicted.")]
    if "decode_curve.png" in images:
        doc.append(Image("decode_curve.png", "Decode MFU against concurrency with the roofline"))
    if dc.measured:
        doc.append(Table(["Concurrency", "Output tok/s", "Achieved FLOP/s", "MFU", "TPOT p90"], [
            [str(p.concurrency), fmt_num(p.output_tokens_per_s), fmt_num(p.achieved_flop_per_s),
             fmt_pct(p.mfu_output, 3), fmt_s(p.tpot_p90_s)] for p in dc.measured]))
    return doc


def render_fleet(sol: Solution, images: list[str]) -> list:
    fl = sol.fleet
    scen = sol.scenarios.calibrated_n_dependent
    if scen is None:
        return []
    constrained = sol.sizing.constrained if sol.sizing is not None else None
    sv = constrained.serving if constrained else scen.serving_optimal
    which = "recommended (SLO-constrained)" if constrained else "N-dependent optimum"
    layout = (f"{sv.devices_per_replica} (tensor parallel {sv.tensor_parallel}"
              + (f", {sv.pipeline_parallel} pipeline stages" if sv.pipeline_parallel > 1 else "") + ")")
    frows = [
        [f"Model ({which})", f"{fmt_count(sv.params)} params, ~{sv.num_layers:.0f} layers, "
                             f"d={sv.hidden_size:.0f}, {sv.num_kv_heads:.0f} KV heads"],
        ["INT8 weights", fmt_bytes(sv.weight_bytes)],
        ["Devices per replica", layout],
        ["KV room: max batch", str(sv.max_batch_memory)],
        ["Batch used (limited by)", f"{sv.batch} ({sv.batch_limited_by})"],
        ["Output rate per replica (predicted)", f"{fmt_num(sv.output_tokens_per_s)} tok/s, "
                                                f"{fmt_num(sv.requests_per_s)} requests/s"],
        ["Decode MFU (effective)", fmt_pct(sv.decode_mfu, 3)],
        ["TPOT / TTFT mean (predicted, steady state)", f"{fmt_s(sv.tpot_s)} / {fmt_s(sv.ttft_s)}"],
        ["TPOT / TTFT p90 (predicted, with queueing)", f"{fmt_s(sv.tpot_p90_s)} / {fmt_s(sv.ttft_p90_s)}"],
        ["Meets SLO", "no SLO given" if sol.assumptions.workload.tpot_slo_s is None
         else "yes" if sv.meets_slo else "no"],
        ["$ per request", fmt_usd(sv.usd_per_request)],
    ]
    if fl:
        frows += [
            ["Peak rate", f"{fmt_num(fl.peak_requests_per_s)} req/s ({fl.peak_source})"],
            ["Replica capacity", f"{fmt_num(fl.replica_requests_per_s)} req/s"],
            ["Replicas / devices", f"{fl.replicas} / {fl.devices}"],
            ["Fleet $ per hour", fmt_usd(fl.fleet_usd_per_h)],
            ["Fleet TPOT / TTFT p90 at the peak", f"{fmt_s(fl.tpot_p90_s)} / {fmt_s(fl.ttft_p90_s)}"],
            ["$ per request / per 1M tokens (provisioned)",
             f"{fmt_usd(fl.provisioned_usd_per_request)} / {fmt_usd(fl.provisioned_usd_per_million_tokens)}"],
            ["$ per 1M tokens (devices busy)", fmt_usd(fl.usd_per_million_tokens)],
            ["Energy per request", "not measured" if fl.energy_j_per_request is None
             else f"{fmt_num(fl.energy_j_per_request)} J"],
        ]
    title = "Serving fleet for the recommended model" if fl else "Serving plan of the N-dependent optimum (no fleet)"
    doc: list = [Heading(2, title), Table(["", "Value"], frows)]
    if sv.notes:
        doc.append(Bullets(list(sv.notes)))
    return doc


def render_crossover(sol: Solution, images: list[str]) -> list:
    rows = [(k, getattr(sol.crossover, k)) for k in SCENARIO_LABELS]
    return [Heading(2, "Crossover: demand where inference cost equals training cost"),
            Table(["Cost model", "Chinchilla-style model", "Cost-optimal model"], [
                [SCENARIO_LABELS[k], fmt_count(cx.chinchilla_requests) + " requests",
                 fmt_count(cx.optimal_requests) + " requests" if cx.optimal_requests
                 else "not in [1, 1e20]"]
                for k, cx in rows if cx is not None])]


def render_assumptions(sol: Solution, images: list[str]) -> list:
    a, prov = sol.assumptions, sol.provenance.profile
    hw = a.hardware
    items = [f"Architecture from N: {a.shape.source}."]
    if hw is not None:
        link = f"{fmt_bytes(hw.interconnect_bytes_per_s)}/s" if hw.interconnect_bytes_per_s else "unknown"
        items += [
            f"Hardware per device: memory {fmt_bytes(hw.memory_bytes)}, peak "
            f"{fmt_count(hw.peak_flop_per_s, 'FLOP/s')}, ${hw.usd_per_h:g}/h; memory utilisation "
            f"{hw.memory_utilization:g}, activation reserve {fmt_bytes(hw.activation_reserve_bytes)}, at most "
            f"{hw.max_num_seqs} sequences (the ladder's server setting: no credit for batches it did not measure).",
            f"Tensor parallel up to 8 devices, then whole 8-device nodes as pipeline stages (a decode step does not "
            f"shrink with stages); all-reduce latency {fmt_s(hw.allreduce_latency_s)}, interconnect {link} "
            "(assumed: no run with tensor parallelism > 1 measured them).",
            f"Latency SLO: TPOT <= {fmt_s(a.workload.tpot_slo_s)}, TTFT <= "
            f"{fmt_s(a.workload.ttft_slo_s)} ({a.slo_source}), checked against the predicted steady-state "
            "TPOT and TTFT.",
            "Serving cost of a size that was never run: the profile's performance model (step time from a fixed "
            "overhead, bytes over bandwidth and FLOPs over compute rates, fitted on a ladder of sizes); its "
            "held-out errors are in the prediction check.",
        ]
    items += [
        f"Profile sha256 {prov.get('sha256')}, created {prov.get('created_utc')} by {prov.get('tool')}.",
        f"Report tool: {sol.provenance.tool}.",
        "Paper constants are assumptions (Sardana et al. 2024, Sec. 6, B.2, B.3); calibrated constants are "
        "measured; N-dependent costs are predicted from measured constants with the assumptions above. Full "
        "inputs in solution.json.",
    ]
    return [Heading(2, "Assumptions and provenance"), Bullets(items)]


def _yes(x) -> str:
    return "n/a" if x is None else "yes" if x else "no"


def render_warnings(sol: Solution, images: list[str]) -> list:
    """Every warning of the solution, and why there is no recommendation, before anything else."""
    doc: list = [Para(f"WARNING: {w}", strong=True) for w in sol.warnings]
    msg = sol.sizing.message if sol.sizing is not None else None
    if msg:
        doc.append(Para(f"NO RECOMMENDATION: {msg}", strong=True))
    return doc


def render_recommendation(sol: Solution, images: list[str]) -> list:
    rec = sol.recommendation
    if rec is None:
        return []
    reconciled = rec.fleet_usd_per_h * rec.lifetime_h
    return [Heading(2, "Recommendation: the cheapest model that meets the SLO, on a provisioned fleet"),
            Table(["", "Value"], [
                ["Params N", fmt_count(rec.params)],
                ["Train tokens D", f"{fmt_count(rec.train_tokens)} ({rec.train_tokens / rec.params:.3g} per param)"],
                ["Total lifetime cost", fmt_usd(rec.total_usd)],
                ["Training", fmt_usd(rec.train_usd)],
                ["Inference (provisioned fleet)", fmt_usd(rec.inference_usd)],
                ["Meets SLO", _yes(rec.meets_slo)],
                ["TPOT p90 / TTFT p90 at the peak (predicted)", f"{fmt_s(rec.tpot_p90_s)} / {fmt_s(rec.ttft_p90_s)}"],
                ["Fleet devices", str(rec.fleet_devices)],
                ["Fleet $ per hour", fmt_usd(rec.fleet_usd_per_h)],
                ["Lifetime hours", f"{rec.lifetime_h:g}"],
            ]),
            Para(f"Reconciliation: fleet {fmt_usd(rec.fleet_usd_per_h)}/h x {rec.lifetime_h:g} h = "
                 f"{fmt_usd(reconciled)}, the lifetime inference cost (devices are paid whether busy or not).")]


def _plan_cells(plan) -> list[str]:
    """A CostPlan's cells (None: no feasible plan)."""
    if plan is None:
        return ["none feasible"] + ["-"] * 5
    return [fmt_count(plan.params), fmt_count(plan.train_tokens), f"{plan.tokens_per_param:.3g}",
            fmt_usd(plan.train_cost_usd), fmt_usd(plan.inference_cost_usd), fmt_usd(plan.total_cost_usd)]


_PLAN_HEADERS = ["Params N", "Train tokens D", "Tokens/param", "Training", "Inference", "Total"]


def render_sizing(sol: Solution, images: list[str]) -> list:
    z = sol.sizing
    if z is None or z.status == "no_performance_model":
        return []
    full = z.full_utilisation
    rows = [["SLO-constrained, provisioned", *_plan_cells(z.constrained.optimal if z.constrained else None)],
            ["Unconstrained, provisioned", *_plan_cells(z.unconstrained.optimal)],
            ["SLO-constrained, full utilisation", *_plan_cells(full.constrained)],
            ["Unconstrained, full utilisation", *_plan_cells(full.unconstrained)]]
    doc: list = [Heading(2, "The SLO as a constraint, and what provisioning for the peak costs"),
                 Table(["N-dependent optimum", *_PLAN_HEADERS], rows)]
    if z.slo_cost_usd is not None:
        doc.append(Para(f"The SLO costs {fmt_usd(z.slo_cost_usd)} ({fmt_pct(z.slo_cost_fraction)}) over the "
                        "unconstrained optimum (provisioned)."))
    p90, slo = z.p90, z.slo
    doc.append(Bullets([x for x in (
        f"Utilisation (mean / peak) {fmt_pct(z.utilisation)}: {z.demand_source}.",
        f"SLO: TPOT p90 <= {fmt_s(slo.tpot_p90_s)}, TTFT p90 <= {fmt_s(slo.ttft_p90_s)}; p90 = "
        f"{fmt_num(p90.tpot_ratio)} x mean TPOT, {fmt_num(p90.ttft_ratio)} x mean TTFT ({p90.source}).",
        f"Queueing: {z.queueing}." if z.queueing else None,
        z.provenance) if x]))
    return doc


def render_provisioned(sol: Solution, images: list[str]) -> list:
    pv = sol.provisioned
    if not pv:
        return []
    scen = sol.scenarios
    rows = []
    for key in ("paper", "calibrated"):
        for what, s in (("full utilisation (Eq. 6 as in the paper)", getattr(scen, key)),
                        (f"utilisation {fmt_pct(pv.utilisation)} (provisioned)", getattr(pv, key))):
            if s is not None:
                rows.append([f"{SCENARIO_LABELS[key]}, {what}", *_plan_cells(s.optimal), fmt_pct(s.saving_fraction)])
    return [Heading(2, "Constant-MFU Eq. 6 with a provisioned fleet"),
            Para(f"Inference $ per useful FLOP divided by the utilisation ({pv.formula or 'mean / peak'}); "
                 f"demand: {pv.source}."),
            Table(["Cost model", *_PLAN_HEADERS, "Saving vs Chinchilla-style"], rows)]


def _assumed(row) -> str:
    assumed = str(row.provenance).startswith("assumed") and "assumed" not in str(row.label)
    return " (assumed)" if assumed else ""


def render_hardware(sol: Solution, images: list[str]) -> list:
    hw = sol.hardware
    if not hw or not hw.rows:
        return []
    rows = hw.rows
    plans = [[r.label + _assumed(r), r.status or "", fmt_count(r.params),
              fmt_count(r.train_tokens), fmt_usd(r.total_usd), _yes(r.meets_slo),
              f"{fmt_s(r.tpot_p90_s)} / {fmt_s(r.ttft_p90_s)}"] for r in rows]
    fleets = [[r.label + _assumed(r), str(r.fleet_devices) if r.fleet_devices is not None else "n/a",
               fmt_usd(r.fleet_usd_per_h), fmt_usd(r.usd_per_request),
               fmt_usd(r.usd_per_million_tokens),
               "not measured" if r.energy_j_per_request is None else f"{fmt_num(r.energy_j_per_request)} J"]
              for r in rows]
    doc: list = [Heading(2, "Hardware side by side"),
                 Table(["Hardware", "Status", "Params N", "Train tokens D", "Total", "Meets SLO", "TPOT / TTFT p90"],
                       plans),
                 Table(["Hardware", "Fleet devices", "Fleet $/h", "$/request", "$/1M tokens", "Energy/request"], fleets)]
    cheapest = hw.cheapest
    doc.append(Para(f"Cheapest for this demand: {cheapest}." if cheapest else
                    "No hardware serves this target within its SLO."))
    notes = [f"{r.label}: {r.provenance}" for r in rows]
    notes += [f"{r.label}: {r.message}" for r in rows if r.message]
    if hw.basis:
        notes.append(hw.basis)
    doc.append(Bullets(notes))
    return doc


def render_data_limit(sol: Solution, images: list[str]) -> list:
    dl = sol.data_limit
    if not dl:
        return []
    doc: list = [Heading(2, "Data limit"), Para(
        f"Unique training tokens available: {fmt_count(dl.max_train_tokens)}, repetition "
        f"{'allowed' if dl.repeat else 'not allowed'}; applies to {dl.applies_to}.")]
    if dl.message:
        doc.append(Para(dl.message, strong=True))
    rows = [[label, *_plan_cells(plan)] for label, plan in (("without the limit", dl.without_limit),
                                                            ("with the limit", dl.with_limit)) if plan]
    if rows:
        doc.append(Table(["Recommended plan", *_PLAN_HEADERS], rows))
    if dl.binding is not None:
        doc.append(Bullets([x for x in (
            f"Binding: {_yes(dl.binding)}; unique tokens used {fmt_count(dl.unique_tokens_used)}, "
            f"epochs {fmt_num(dl.epochs)}, effective tokens {fmt_count(dl.effective_train_tokens)}.",
            dl.formula, dl.source, dl.provenance) if x]))
    return doc


FRONT_PLOT = "front.png"  # drawn by solver.report.output.plots


def _front_series_name(se) -> str:
    name = se.model if se.model != "chosen" else f"chosen model ({fmt_count(se.params)} params)"
    stat = " (mean TPOT/TTFT)" if se.tpot_statistic == "mean" else ""
    return f"{name}, {se.input_tokens:g}/{se.output_tokens:g} tokens{stat}"


def _front_row(name: str, p, note: str = "") -> list[str]:
    """A FrontPoint or FrontOperatingPoint as a table row."""
    meets = {True: "yes", False: "no", None: "n/a"}[p.meets_slo]
    return [name, p.kind, f"{p.concurrency:g}", fmt_num(p.tokens_per_s_per_device),
            fmt_num(p.tokens_per_s_per_user), fmt_s(p.tpot_s), fmt_s(p.ttft_s),
            meets + (f" ({note})" if note else "")]


def render_front(sol: Solution, images: list[str]) -> list:
    fr = sol.front
    if not fr:
        return []
    doc: list = [Heading(2, "Throughput-latency front"), Para(
        "Output tokens per second per device against tokens per second per user (1 / TPOT p90), for each "
        "hardware: batching more sequences raises what a device delivers and slows each stream. Measured points "
        "(assumed, for a profile built from stated constants) are the profile's runs (the decode curve with its measured TPOT p90; the ladder's runs carry a mean TPOT "
        "only, so they are placed at 1 / mean TPOT and can only be seen to miss the SLO); predicted points are "
        "the performance model's steady state of the profiled model and of the chosen model on its devices per "
        "replica, with p90 = the measured p90/mean ratio x the predicted mean. The vertical line is the TPOT "
        "SLO (points left of it are too slow per user), a red cross marks a point whose TTFT p90 is above its "
        "SLO, and the star is the chosen model's operating point (TTFT p90 with queueing at the planned "
        "utilisation).")]
    if FRONT_PLOT in images:
        doc.append(Image(FRONT_PLOT, "Throughput per device against tokens per second per user, with the SLO"))
    for hw in fr.hardware:
        slo = hw.slo
        limit = ("no SLO" if slo.tpot_p90_s is None and slo.ttft_p90_s is None else
                 f"SLO: TPOT p90 <= {fmt_s(slo.tpot_p90_s)} (>= {fmt_num(slo.tokens_per_s_per_user_min)} "
                 f"tok/s per user), TTFT p90 <= {fmt_s(slo.ttft_p90_s)}")
        doc += [Heading(3, f"{hw.label} ({hw.device_name})"), Para(limit + ".")]
        rows = []
        op = hw.operating_point
        if op is not None:
            rows.append(_front_row(f"operating point: {op.chosen} "
                                   f"({fmt_count(op.params)} params, {op.devices_per_replica} device(s) "
                                   "per replica)", op,
                                   f"batch limited by {op.batch_limited_by}"))
        for se in hw.series:
            pts = se.points
            if se.model == "chosen":  # the predicted curve: its ends (the operating point is above)
                pts = [pts[0], pts[-1]] if len(pts) > 1 else pts
            elif se.kind == "predicted":
                continue  # drawn in the plot; its measured counterpart is in the rows
            rows += [_front_row(_front_series_name(se), p) for p in pts]
        doc.append(Table(["Series", "Kind", "Batch", "Tok/s per device", "Tok/s per user", "TPOT (p90 or mean)",
                          "TTFT (p90 or mean)", "Meets SLO"], rows))
    return doc


# The report's sections in order: each takes (solution, image names) and returns blocks.
def _err(x) -> str:
    return "n/a" if x is None else f"{x:+.1%}"


def render_prediction_check(sol: Solution, images: list[str]) -> list:
    pc = sol.prediction_check
    if not pc:
        return [Heading(2, "Prediction check"), Para(
            "This profile has no performance model (it measured one model size), so the N-dependent serving "
            "cost is not computed: build a profile from a ladder of sizes (python -m calibrate profile RUNS --ladder).")]
    worst = pc.held_out_max_abs_error
    doc: list = [Heading(2, "Prediction check: sizes the performance model never saw")]
    if pc.warning:
        doc.append(Para(f"WARNING: {pc.warning}", strong=True))
    doc.append(Para(
        f"Step-time form '{pc.form}': {pc.formula}, fitted on "
        + ", ".join(f"{m.name} ({fmt_count(m.params_matmul)})" for m in pc.fitted_on)
        + f". Each row is a run of one size predicted by the model refitted without that size (leave one "
        f"model out). Worst held-out error: output tok/s {fmt_pct(worst.get('output_tokens_per_s'))}, "
        f"$/request {fmt_pct(worst.get('usd_per_request'))}, TTFT {fmt_pct(worst.get('ttft_s'))}, "
        f"TPOT {fmt_pct(worst.get('tpot_s'))} (target {fmt_pct(pc.target_error, 0)})."))
    if pc.error_split:
        doc.append(Table(["Figure", "Error median", "Error worst", "Noise floor median", "Noise floor worst",
                          "Bias share"],
                         [[k.replace("_", " "), fmt_pct(e.error_median), fmt_pct(e.error_max), fmt_pct(e.noise_median),
                           fmt_pct(e.noise_max), fmt_pct(e.bias_share)] for k, e in pc.error_split.items()]))
        doc.append(Para("Noise floor: how far the replicates of one point lie from their mean (what an ideal "
                        "predictor of each point's mean would still miss). Bias share: the part of the squared log "
                        "error that getting each point's mean right would remove; near 100 % the model, not the "
                        "machine's noise, is what misses."))
    if pc.operator_check is not None:
        oc = pc.operator_check
        doc.append(Para(
            f"From the device's measured operators ({oc.operator_profile}): each size predicted with the steps "
            "composed from the operator profile, the engine's per-step overhead"
            + (" and a per-layer overhead" if oc.layer_term else "") + " fitted on the other sizes."))
        doc.append(Table(["Held-out size lies", "Figure", "Error median", "Error worst", "Noise floor worst",
                          "Bias share"],
                         [[where, k.replace("_", " "), fmt_pct(e.error_median), fmt_pct(e.error_max),
                           fmt_pct(e.noise_max), fmt_pct(e.bias_share)]
                          for where, split in oc.error_split.items() for k, e in split.items()]))
    if PREDICTION_PLOT in images:
        doc.append(Image(PREDICTION_PLOT, "Predicted against measured output tok/s and $/request for each ladder size"))
    rows = []
    for r in pc.held_out:
        m, p, e = r.measured, r.predicted, r.error
        rows.append([r.model, f"{r.input_tokens}/{r.output_tokens}", str(r.concurrency),
                     fmt_num(m.output_tokens_per_s), fmt_num(p.output_tokens_per_s), _err(e.output_tokens_per_s),
                     fmt_usd(m.usd_per_request), fmt_usd(p.usd_per_request), _err(e.usd_per_request)])
    doc.append(Table(["Held-out size", "In/out tokens", "Conc.", "Measured tok/s", "Predicted tok/s", "Error",
                      "Measured $/req", "Predicted $/req", "Error"], rows))
    doc.append(Table(["Form compared", "Worst held-out error (tok/s, $/req)", "Used"],
                     [[f.form, fmt_pct(f.score), "yes" if f.chosen else ""] for f in pc.forms]))
    return doc



RENDERERS = [render_intro, render_warnings, render_recommendation, render_sizing, render_hardware, render_scenarios,
             render_provisioned, render_data_limit, render_prediction_check, render_maps, render_decode_curve,
             render_front, render_fleet, render_crossover, render_assumptions]


def _train_text(train) -> str:
    """How the training price was obtained, from a Train section (only the keys of its route are set)."""
    t = train.model_dump()
    if "profile" in t:
        return f"from profile {t['profile']} ({t.get('assumption', '')})"
    return (f"{t.get('gpu', '?')} {t.get('dtype', '')} at MFU {t.get('mfu', '?')}, "
            f"${t.get('usd_per_h', '?')}/h")


# --------------------------------------------------------------------------- Markdown and HTML


def _md(text: str) -> str:
    """Markdown renderers pass raw HTML through: a '<' that could open a tag (<x, </, <!, <?) becomes
    '&lt;', so a name like '<script>' stays text there too; a plain '<=' stays readable."""
    return re.sub(r"<(?=[A-Za-z/!?])", "&lt;", str(text))


def _md_cell(text: str) -> str:
    return _md(text).replace("|", "\\|").replace("\n", " ")


def to_markdown(doc: list) -> str:
    out: list[str] = []
    for b in doc:
        if isinstance(b, Heading):
            out.append("#" * b.level + " " + _md(b.text))
        elif isinstance(b, Para):
            out.append(f"**{_md(b.text)}**" if b.strong else _md(b.text))
        elif isinstance(b, Table):
            out.append("| " + " | ".join(_md_cell(h) for h in b.headers) + " |")
            out.append("|" + "---|" * len(b.headers))
            out.extend("| " + " | ".join(_md_cell(c) for c in row) + " |" for row in b.rows)
        elif isinstance(b, Image):
            out.append(f"![{_md_cell(b.alt)}]({b.filename})")
        elif isinstance(b, Bullets):
            out.extend(f"- {_md(item)}" for item in b.items)
        out.append("")
    return "\n".join(out)


# Text wraps anywhere (a sha256 or a long name would otherwise push the page past 1280 px); table
# cells only break a word that cannot fit ("anywhere" there would let the layout squeeze short columns
# mid-word), so a table stays within the page unless one word is wider than it (the browser test checks).
_CSS = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:1em 0;max-width:100%}
td,th{border:1px solid #ccc;padding:4px 8px;text-align:left;overflow-wrap:break-word}
th{background:#f3f3f3}img{max-width:100%}p,li,h1,h2,h3{overflow-wrap:anywhere}.strong{font-weight:bold;color:#a00}"""

# No script, no fetch: the page shows its own text, inline style and data: images only. A second
# guard behind html.escape (tests/test_report_browser.py checks both, each on its own).
CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'"


def to_html(doc: list, images: dict[str, bytes], title: str) -> str:
    e = html.escape
    out = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
           f'<meta http-equiv="Content-Security-Policy" content="{e(CSP)}">',
           f"<title>{e(title)}</title>", f"<style>{_CSS}</style></head><body>"]
    for b in doc:
        if isinstance(b, Heading):
            out.append(f"<h{b.level}>{e(b.text)}</h{b.level}>")
        elif isinstance(b, Para):
            out.append(f'<p class="strong">{e(b.text)}</p>' if b.strong else f"<p>{e(b.text)}</p>")
        elif isinstance(b, Table):
            out.append("<table><thead><tr>" + "".join(f"<th>{e(h)}</th>" for h in b.headers) + "</tr></thead><tbody>")
            out.extend("<tr>" + "".join(f"<td>{e(c)}</td>" for c in row) + "</tr>" for row in b.rows)
            out.append("</tbody></table>")
        elif isinstance(b, Image):
            data = images.get(b.filename)
            if data is not None:
                uri = "data:image/png;base64," + base64.b64encode(data).decode("ascii")
                out.append(f'<p><img src="{e(uri)}" alt="{e(b.alt)}"></p>')
        elif isinstance(b, Bullets):
            out.append("<ul>" + "".join(f"<li>{e(item)}</li>" for item in b.items) + "</ul>")
    out.append("</body></html>")
    return "\n".join(out)
