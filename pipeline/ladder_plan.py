"""The ladder's sweep time, predicted from the device's operators, and the default CPU ladder's top
size chosen per host so that the sweep fits the main command's time budget.

The main command must end within 15 minutes after setup on the slowest host seen (issue 17), and
the ladder wants the widest span the host can afford (>= 100x in N). Both depend on the host: the
2.6M-136M ladder swept in 403 s on the AMX Xeon and far longer on the AVX2-only EPYC (int8 GEMMs
25x slower). So, once stage 1 has the operator profile, every run of the sweep is predicted for
each candidate top size (calibrate.operators.sweeptime), the largest whose whole sweep fits
`budget_s` is taken, and the plan is printed with what it rests on (the overheads are assumed until
a ladder of the device has been fitted). The candidates are the family of the default ladder
(d = 128·L, L layers, 2L heads of 64, L KV heads, vocab 4096): L = 12 (N = 3.2e8, 121x the
smallest) down to 5 (3.4e7). The lower rungs stay the default ladder's (2.6M and 14.7M). A ladder
the user names (`--ladder-model`) is neither planned nor changed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from bench.config import RunSpec, SweepConfig, with_overrides, workload_of
from bench.model.prepare import TinySpec
from bench.run.ladder import DEFAULT_CPU_LADDER, Rung
from calibrate.operators.interpolate import OperatorGridError, OperatorTable
from calibrate.operators.sweeptime import ASSUMED_BASIS, RUN_FIXED_S, ModelSweepTime, PlannedRun, sweep_time
from core.dims import ModelDims, llama_intermediate, params_of

# Of the main command's 15 minutes (900 s): the operators at most 170 s (their measurement's cap),
# preparing the models ~10-30 s, the profile and the report ~40 s (measured 8 s, 28 s and 13 s on
# the AMX Xeon, 2026-12-07, docs/measurements.md): the sweep gets the rest.
SWEEP_BUDGET_S = 660.0
# A plan fits when its predicted seconds x MARGIN are within the budget: the sweep's requests were
# predicted at 0.96x of the measured on the ladder the assumed overheads come from (sweeptime).
MARGIN = 1.1
# A run whose measured phase is predicted longer than this gets fewer requests (never below 5 per
# client, calibrate's least): on the 318M model of 2026-12-07 the prefill runs of the ladder config
# took 22-34 s each, their per-token figures settled long before.
RUN_CAP_S = 10.0
SHORTER_CAPS_S = (5.0, 2.5)  # tried in turn, on the smallest top size, only when no top size fits
TOP_LAYERS = (12, 11, 10, 9, 8, 7, 6, 5)  # candidate top sizes, largest first


def family_spec(layers: int) -> TinySpec:
    """The default ladder's family at `layers`: d = 128·L, 2L heads of 64, L KV heads, vocab 4096."""
    return TinySpec(hidden_size=128 * layers, num_layers=layers, num_heads=2 * layers, num_kv_heads=layers,
                    vocab_size=4096)


def dims_of_spec(spec: TinySpec) -> ModelDims:
    """The integer dims of a locally built model (bench.model.prepare's shape rules)."""
    head_dim = spec.hidden_size // spec.num_heads
    return ModelDims(hidden=spec.hidden_size, heads=spec.num_heads, kv_heads=spec.num_kv_heads, head_dim=head_dim,
                     intermediate=spec.intermediate_size or llama_intermediate(spec.hidden_size),
                     vocab=spec.vocab_size, layers=spec.num_layers)


def planned_runs(cfg: SweepConfig) -> list[PlannedRun] | None:
    """Every run of the sweep (replicates one by one) as the predictor needs it; None when one cannot
    be predicted (a request-rate run or a length distribution: no closed loop of fixed lengths)."""
    out = []
    for s in cfg.specs():
        w = s.workload
        if s.mode != "concurrency" or w.kind == "distribution":
            return None
        out.append(PlannedRun(replace(s, replicate=0).label(), s.concurrency, s.num_requests, s.warmup_requests,
                              w.input_tokens, w.output_tokens))
    return out


@dataclass(frozen=True)
class LadderPlan:
    """The sizes to sweep and their predicted sweep times."""

    specs: tuple[TinySpec, ...]
    times: tuple[ModelSweepTime, ...]
    budget_s: float
    note: str = ""
    run_cap_s: float = RUN_CAP_S

    @property
    def seconds(self) -> float:
        return sum(t.seconds for t in self.times)

    @property
    def fits(self) -> bool:
        return self.seconds * MARGIN <= self.budget_s

    @property
    def span(self) -> float:
        n = [params_of(t.dims) for t in self.times]
        return max(n) / min(n)

    def lines(self) -> list[str]:
        """What the plan says, a line each: every size's predicted sweep, the total against the budget."""
        out = [f"sweep time predicted from the operator profile ({ASSUMED_BASIS}; "
               f"{self.times[0].server_start_s:g} s per server start and {RUN_FIXED_S:g} s per run, assumed):"]
        for t in self.times:
            d = t.dims
            cut = sorted({f"{r.label} {r.planned_requests} -> {r.num_requests}" for r in t.runs
                          if r.num_requests < r.planned_requests})
            out.append(f"  h{d.hidden}-l{d.layers} ({params_of(d) / 1e6:.1f}M): {t.seconds:.0f} s, {len(t.runs)} runs"
                       + (f"; requests cut to ~{self.run_cap_s:g} s per run: " + ", ".join(cut) if cut else ""))
        verdict = "within" if self.fits else "OVER"
        out.append(f"  total {self.seconds:.0f} s (x {MARGIN:g} margin: {self.seconds * MARGIN:.0f} s), {verdict} the sweep "
                   f"budget of {self.budget_s:.0f} s; span {self.span:.0f}x in N" + (f"; {self.note}" if self.note else ""))
        return out

    def rungs(self) -> list[Rung]:
        return [Rung(spec=s) for s in self.specs]

    def requests(self, i: int) -> dict[str, int]:
        """Measured requests per point (its label, e.g. `prefill-p256-g1-c4`) of the i-th size."""
        return {r.label: r.num_requests for r in self.times[i].runs}


def capped_config(cfg: SweepConfig, requests: dict[str, int]) -> SweepConfig:
    """`cfg` with each point's measured requests set from `requests` (keyed by point label); `cfg`
    itself when nothing changes (so the spec keys, and the runs already measured, stay the same).
    A run entry with several concurrencies is split into one per concurrency."""
    entries, changed = [], False
    for e in cfg.runs:
        n = e.num_requests or cfg.num_requests
        w = cfg.warmup if e.warmup is None else e.warmup
        wl = workload_of(e.workload, e.input_tokens, e.output_tokens, e.distribution_file)
        for c in e.concurrency or []:
            want = requests.get(RunSpec(wl, "concurrency", c, None, n, w, cfg.seed).label(), n)
            changed |= want != n
            entries.append(e.model_copy(update={"concurrency": [c], "num_requests": want}).model_dump())
        if e.request_rate_per_s:
            entries.append(e.model_dump())
    return with_overrides(cfg, {"runs": entries}) if changed else cfg


def _times(table: OperatorTable, specs: Sequence[TinySpec], runs: Sequence[PlannedRun],
           max_num_seqs: int, run_cap_s: float | None = RUN_CAP_S) -> tuple[ModelSweepTime, ...]:
    return tuple(sweep_time(table, dims_of_spec(s), runs, max_num_seqs=max_num_seqs, run_cap_s=run_cap_s)
                 for s in specs)


def plan_default_ladder(table: OperatorTable, cfg: SweepConfig, budget_s: float = SWEEP_BUDGET_S,
                        top_layers: Sequence[int] = TOP_LAYERS) -> LadderPlan | None:
    """The default CPU ladder with the largest top size (of `top_layers`) whose predicted sweep fits
    `budget_s` with runs cut to RUN_CAP_S; when none does, the smallest candidate with runs cut
    shorter (SHORTER_CAPS_S) until it fits, or at the shortest, over the budget (said so in `note`);
    None when the sweep's runs cannot be predicted (see `planned_runs`)."""
    runs = planned_runs(cfg)
    if runs is None:
        return None
    max_seqs = cfg.server.max_num_seqs or 256
    lower = tuple(DEFAULT_CPU_LADDER[:-1])
    try:
        base = _times(table, lower, runs, max_seqs)
    except OperatorGridError:  # a profile cut short by its time budget before the small sizes' shapes
        return None
    tried = []
    for layers in top_layers:
        top = family_spec(layers)
        try:
            t = _times(table, [top], runs, max_seqs)
        except OperatorGridError:  # a shape the operator profile does not cover: not a candidate
            continue
        plan = LadderPlan(lower + (top,), base + t, budget_s)
        tried.append(plan)
        if plan.fits:
            return plan
    if not tried:
        return None
    plan = tried[-1]
    for cap in SHORTER_CAPS_S:
        plan = LadderPlan(plan.specs, _times(table, plan.specs, runs, max_seqs, run_cap_s=cap), budget_s,
                          note=f"no top size fits with runs of {RUN_CAP_S:g} s: the smallest, runs cut to {cap:g} s",
                          run_cap_s=cap)
        if plan.fits:
            return plan
    return replace(plan, note=f"no candidate fits even with runs cut to {plan.run_cap_s:g} s: the smallest top size is "
                              "swept, over the budget")
