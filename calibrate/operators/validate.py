"""Leave one ladder size out, predicting it from the device's measured operators.

For each size of a ladder: the overheads the operators do not cover are fitted on the *other* sizes'
runs (calibrate.operators.stepmodel: `engine_step_overhead_s`, with `layer_term` also
`layer_overhead_s`; `request_overhead_s` = arithmetic mean of TTFT alone − its composed prefill step),
then every run of the held-out size is simulated closed-loop (calibrate.perfmodel.simulate) with steps
composed from the operator table, and its figures set beside what was measured. Sizes inside the
ladder's range are "interpolated"; the smallest and the largest "extrapolated". The rows feed
calibrate.perfmodel.errorsplit (error, noise floor, bias share).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from calibrate.operators.interpolate import OperatorTable
from calibrate.operators.plan import check_size, log_spaced, median_overheads, scan, to_records
from calibrate.operators.stepmodel import OperatorStepModel, Overheads, composed_share, fit_all_overheads_s
from calibrate.perfmodel.errorsplit import error_split
from calibrate.perfmodel.selection import LadderRun, figures
from calibrate.perfmodel.simulate import simulate
from core.dims import ModelDims, dims_of
from core.files import sha256_file
from core.schema.operators import load_profile
from core.schema.perfmodel import ErrorSplit, OperatorCheck


@dataclass(frozen=True)
class HeldOut:
    """One run of a held-out size: measured and predicted figures, and what was fitted without it."""

    model: str
    input_tokens: int
    output_tokens: int
    concurrency: int
    where: str  # "interpolated" | "extrapolated (smallest)" | "extrapolated (largest)"
    measured: dict
    predicted: dict
    request_overhead_s: float
    overheads: Overheads  # the step's overheads fitted without this size
    operator_share: float  # the operators' share of the size's batch-1 decode step
    terms: tuple[str, ...] = ()  # the optional overhead terms fitted (calibrate.operators.stepmodel.TERMS)

    @property
    def engine_step_overhead_s(self) -> float:
        return self.overheads.engine

    @property
    def layer_overhead_s(self) -> float:
        return self.overheads.layer


def dims_of_shape(s) -> ModelDims:
    """The integer dims of a core.physics.ModelShape (a run's, or one calibrate predict builds)."""
    return dims_of(num_layers=int(s.num_layers), hidden_size=int(s.hidden_size), num_attention_heads=int(s.num_heads),
                   num_kv_heads=int(s.num_kv_heads), head_dim=int(s.head_dim), vocab_size=int(s.vocab_size),
                   params_matmul=s.params_matmul)


def step_model(table: OperatorTable, run: LadderRun, overheads: Overheads = Overheads()) -> OperatorStepModel:
    """The operator step model of a ladder run's model (its integer dims from the run's shape)."""
    return OperatorStepModel(table, dims_of_shape(run.shape)).set_overheads(overheads)


def fit_request_overhead_s(models_runs: Sequence[tuple[OperatorStepModel, LadderRun]]) -> float:
    """Arithmetic mean of (TTFT of a request alone − its composed prefill step) over concurrency-1 runs."""
    res = [t - m(0.0, 0.0, float(p), p * (p + 1) / 2)
           for m, r in models_runs for t, p in zip(r.evidence.first_token_s, r.evidence.first_token_prompt)]
    return max(0.0, float(np.mean(res))) if res else 0.0


def sizes_of(runs: Sequence[LadderRun]) -> list[str]:
    """The ladder's model names, smallest N first."""
    return sorted({r.model for r in runs}, key=lambda m: next(r.shape.params_matmul for r in runs if r.model == m))


CANDIDATE_TERMS: tuple[tuple[str, ...], ...] = ((), ("layer",), ("context",), ("layer", "context"),
                                                ("layer", "sequence", "context"))


def _where(held: str, sizes: Sequence[str]) -> str:
    return ("extrapolated (largest)" if held == sizes[-1] else "extrapolated (smallest)" if held == sizes[0]
            else "interpolated")


def _models(table: OperatorTable, runs: Sequence[LadderRun]) -> dict[str, OperatorStepModel]:
    """One step model per ladder size: its composed-step cache serves every fold (the overheads are set per fold)."""
    return {m: step_model(table, next(r for r in runs if r.model == m)) for m in sizes_of(runs)}


def fit_overheads_on(models: dict[str, OperatorStepModel], runs: Sequence[LadderRun],
                     terms: Sequence[str]) -> tuple[Overheads, float]:
    """(step overheads with `terms`, request overhead) fitted on `runs` (arithmetic means, see stepmodel)."""
    fitted = fit_all_overheads_s([(models[r.model], r.evidence.steps) for r in runs], terms)
    for m in {r.model for r in runs}:
        models[m].set_overheads(fitted)
    return fitted, fit_request_overhead_s([(models[r.model], r) for r in runs])


def _predict(models: dict[str, OperatorStepModel], train: Sequence[LadderRun], test: Sequence[LadderRun],
             terms: Sequence[str], where: str) -> list[HeldOut]:
    fitted, request = fit_overheads_on(models, train, terms)
    out = []
    for r in test:
        m = models[r.model].set_overheads(fitted)
        sim = simulate(m, concurrency=r.concurrency, num_requests=r.num_requests,
                       lengths=[(r.input_tokens, r.output_tokens)], request_overhead_s=request,
                       max_num_seqs=r.max_num_seqs)
        out.append(HeldOut(model=r.model, input_tokens=r.input_tokens, output_tokens=r.output_tokens,
                           concurrency=r.concurrency, where=where, measured=dict(r.measured),
                           predicted=figures(sim, r.devices, r.usd_per_h), request_overhead_s=request,
                           overheads=fitted, operator_share=composed_share(m),
                           terms=tuple(terms)))
    return out


def feasible(terms: Sequence[str], sizes: int) -> bool:
    """Whether leaving one of `sizes` ladder sizes out leaves enough to fit `terms` (a per-layer term
    needs two layer counts, so three sizes)."""
    return sizes >= (3 if "layer" in terms else 2)


def leave_one_size_out(table: OperatorTable, runs: Sequence[LadderRun], *, terms: Sequence[str] = (),
                       models: dict[str, OperatorStepModel] | None = None) -> list[HeldOut]:
    """Every run predicted from the operators with the overheads fitted on the other sizes: per step,
    and the optional `terms` of calibrate.operators.stepmodel.TERMS ("layer" needs 3 sizes or more)."""
    sizes = sizes_of(runs)
    if not feasible(terms, len(sizes)):
        raise ValueError(f"leaving a size out with terms {list(terms)} needs {3 if 'layer' in terms else 2} sizes "
                         f"or more; got {len(sizes)}")
    models = models if models is not None else _models(table, runs)
    out = []
    for held in sizes:
        out += _predict(models, [r for r in runs if r.model != held], [r for r in runs if r.model == held], terms,
                        _where(held, sizes))
    return out


def cv_score(rows: Sequence[HeldOut]) -> float:
    """What the inner cross-validation minimises: the mean |log(predicted / measured)| over output tok/s
    and $/request of the held-out runs (a mean, so one odd point does not decide; logs, so over- and
    under-prediction weigh alike)."""
    e = [abs(np.log(r.predicted[k] / r.measured[k])) for r in rows for k in ("output_tokens_per_s", "usd_per_request")
         if r.predicted.get(k) and r.measured.get(k)]
    return float(np.mean(e)) if e else float("inf")


def choose_terms(table: OperatorTable, runs: Sequence[LadderRun], candidates=CANDIDATE_TERMS,
                 models: dict[str, OperatorStepModel] | None = None) -> tuple[tuple[str, ...], dict]:
    """(the candidate term set with the lowest leave-one-size-out `cv_score` on `runs`, {terms: score});
    ties go to the fewer terms. Sets the sizes cannot fit are left out."""
    n = len(sizes_of(runs))
    models = models if models is not None else _models(table, runs)
    scores = {tuple(t): cv_score(leave_one_size_out(table, runs, terms=t, models=models))
              for t in candidates if feasible(t, n)}
    if not scores:
        raise ValueError(f"no candidate overhead terms can be cross-validated on {n} sizes")
    best = min(scores, key=lambda t: (scores[t], len(t)))
    return best, scores


def nested_leave_one_size_out(table: OperatorTable, runs: Sequence[LadderRun],
                              candidates=CANDIDATE_TERMS) -> list[HeldOut]:
    """Every run predicted with the overhead terms chosen *without* its size: for each size left out,
    the terms are chosen by leave-one-size-out on the other sizes (`choose_terms`), fitted on them, and
    the left-out size predicted. The error of these rows is that of the whole procedure (choice
    included), never the error the choice was made on."""
    sizes = sizes_of(runs)
    if len(sizes) < 3:
        raise ValueError(f"nested cross-validation needs 3 sizes or more (2 to choose on); got {len(sizes)}")
    models = _models(table, runs)
    out = []
    for held in sizes:
        train = [r for r in runs if r.model != held]
        terms, _ = choose_terms(table, train, candidates, models)
        out += _predict(models, train, [r for r in runs if r.model == held], terms, _where(held, sizes))
    return out


def operator_check(profile_path, runs: Sequence[LadderRun]):
    """core.schema.perfmodel.OperatorCheck of these ladder runs from the operator profile at `profile_path`:
    each size predicted with overhead terms chosen without it (nested leave-one-size-out, 3 sizes or
    more; with 2, the per-step overhead alone), then the terms chosen and fitted on all sizes."""

    table = OperatorTable(load_profile(profile_path).records)
    sizes = sizes_of(runs)
    models = _models(table, runs)
    if len(sizes) >= 3:
        rows = nested_leave_one_size_out(table, runs)
        selection = (f"nested leave-one-size-out: for each size, the terms among {_names(CANDIDATE_TERMS)} with "
                     "the lowest mean |log error| of output tok/s and $/request predicting each other size "
                     "from the rest; the errors are of sizes their choice never saw")
    else:
        rows = leave_one_size_out(table, runs, models=models)
        selection = "2 sizes: the per-step overhead alone (no size left to choose terms on)"
    terms, scores = choose_terms(table, runs, models=models)
    fitted, request = fit_overheads_on(models, runs, terms)
    checks, answering = size_checks(table, runs, rows)
    flat = [vars(r) for r in rows]
    wheres = sorted({r.where for r in rows}) + ["all"]
    split = {w: {k: ErrorSplit(**v) for k, v in error_split([f for f in flat if w in ("all", f["where"])]).items()}
             for w in wheres}
    return OperatorCheck(
        operator_profile=str(profile_path), sha256=sha256_file(profile_path), layer_term="layer" in terms,
        engine_step_overhead_s={r.model: r.engine_step_overhead_s for r in rows},
        layer_overhead_s={r.model: r.layer_overhead_s for r in rows}, error_split=split,
        size_checks=checks, answering=answering, selection=selection,
        terms_by_size={r.model: list(r.terms) for r in rows}, cv_scores={"+".join(t): v for t, v in scores.items()},
        terms=list(terms), overheads_s=fitted._asdict(), request_overhead_s=request,
        overheads_by_size={r.model: {**r.overheads._asdict(), "request": r.request_overhead_s} for r in rows})


def _names(candidates) -> str:
    return ", ".join("{" + ", ".join(("step",) + tuple(t)) + "}" for t in candidates)


def size_checks(table: OperatorTable, runs: Sequence[LadderRun], rows: Sequence[HeldOut]):
    """Each ladder size's predicted batch-1 decode step against the criteria of calibrate.operators.plan,
    and the smallest size of the shape family (at the ladder's vocabulary) meeting them, with the median
    of the overheads fitted without each size."""
    overheads = median_overheads([r.overheads for r in rows])
    first = {m: next(r for r in runs if r.model == m) for m in sizes_of(runs)}
    sizes = [(m, check_size(table, step_model(table, r).dims, overheads)) for m, r in first.items()]
    vocab = int(next(iter(first.values())).shape.vocab_size)
    found = scan(table, log_spaced(1e6, 1e11, 4), overheads, vocab_size=vocab)
    return to_records(sizes, found)
