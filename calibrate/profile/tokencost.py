"""Per-token device-time costs of prefill and decode: the joint fit, phase-isolated estimates and
their bootstrap intervals.

The cost model is the paper's Eq. 6 (Sardana et al. 2024): serving a request of `n_in` input and
`n_out` output tokens costs

    device_seconds = a * n_in + b * (n_out - 1)   a, b: device-seconds per input / output token

The first output token of a request is sampled from the logits of its prefill pass (vLLM does no
decode step for it), so it is billed with the prompt and b is the cost of each *decode* token (an
output token after the first). Without this, a prefill-only run (max_tokens = 1) would be charged
one full decode step per request, which at small batch is as long as the whole prefill and makes a
too small. Eq. 6 bills 215 output tokens per request at b: one b more than here (0.5 %).

Why the fit is on per-run totals, not per request: a closed-loop run at concurrency C keeps C
requests in flight, so the wall time of the run is *shared* by C requests. Dividing each request's
latency by its tokens would bill every token C times. The run's wall time, on the other hand,
covers every token processed in it exactly once:

    duration_s * device_count  ~=  a_C * input_tokens_total + b_C * decode_tokens_total

is the device time actually spent per token at that concurrency (batch size); the totals are those
of the steady-state window (calibrate.runs.window). Costs fall as C grows (weights are read once per
step for the whole batch), so a, b are fitted separately for each concurrency C over the runs at C
with different input/output mixes (prefill-only, decode-only, mixed), by least squares on relative
residuals (the noise is multiplicative: a long run and a short run get equal say).

When a concurrency has runs of only one mix the fit is underdetermined; phase-isolated estimates
are then used: a = device-seconds / input tokens over prefill-only runs, b = device-seconds /
decode tokens over decode-only runs (this bills their short prompts to decode: an upper bound on
b by the prompts' share, a few %).

Uncertainty: 95 % percentile-bootstrap intervals (seeded) meant to cover a fresh measurement:
  - whole runs are resampled with replacement *within each (concurrency, mix) stratum* (run-to-run
    variation: machine state, scheduling; stratifying keeps every resample's fit determined), their
    deviations from the stratum mean scaled by sqrt(m / (m - 1)) for m replicates (the plain
    bootstrap's variance is short by (m - 1) / m);
  - a stratum of ONE run resamples the time blocks of its window instead (up to 8 equal blocks, at
    most one per wave of the batch). Requests are not resampled: in a closed loop they share the
    machine and their latencies are not independent, and fixed-length workloads make token sums
    constant, so request resampling gave intervals of a fraction of a per cent;
  - with few replicates the spread itself is uncertain: each coefficient's bootstrap deviations are
    scaled by t(0.975, df) / z(0.975), df by Welch-Satterthwaite over the strata's replicates
    (`replicate_dof`), so 3 replicates give a t interval's width (a z-width interval from 3 runs
    covers ~81 %);
  - the fit's misfit is carried: the additive, context-free model's mean relative residual of each
    stratum enters each replicate with a random sign (a wild bootstrap, scaled sqrt(S / (S - 2)) for S
    strata), so a mix the model does not fit widens the interval instead of vanishing in it.
Runs without per-request records are resampled at the run level only.

Pure numpy; the random generator is passed in, and the order of draws is part of the result
(same seed, same numbers).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from calibrate.runs.load import LoadedRun
from calibrate.runs.window import WINDOW, decode_total, totals
from core.errors import BadFile
from core.metrics import decode_tokens_in
from core.paper import PAPER
from core.schema.profile import Estimate

DEFAULT_BOOTSTRAP = 2000
MIN_MIX_SPREAD = 0.02  # runs at one concurrency must differ by >= 2 points of input-token share to fit a, b
MAX_CONDITION = 1e8


# --------------------------------------------------------------------------- the least-squares fit


def fit_token_costs(cost: np.ndarray, input_tokens: np.ndarray, output_tokens: np.ndarray
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Least squares of cost ~= a * input_tokens + b * output_tokens on relative residuals
    (minimise sum(((a I + b O - c) / c)^2)), vectorised over leading axes (runs on the last axis).

    Closed form of the 2x2 normal equations with x1 = I/c, x2 = O/c, y = 1. Returns (a, b)."""
    x1 = input_tokens / cost
    x2 = output_tokens / cost
    s11 = (x1 * x1).sum(-1)
    s12 = (x1 * x2).sum(-1)
    s22 = (x2 * x2).sum(-1)
    t1 = x1.sum(-1)
    t2 = x2.sum(-1)
    det = s11 * s22 - s12 * s12
    with np.errstate(divide="ignore", invalid="ignore"):
        a = (t1 * s22 - t2 * s12) / det
        b = (s11 * t2 - s12 * t1) / det
    return a, b


def fit_is_determined(input_tokens: np.ndarray, output_tokens: np.ndarray) -> bool:
    """True when runs span at least two input/output mixes (input-token share differing by
    >= MIN_MIX_SPREAD) and the relative design matrix is well conditioned."""
    total = input_tokens + output_tokens
    if len(total) < 2 or np.any(total <= 0):
        return False
    share = input_tokens / total
    if share.max() - share.min() < MIN_MIX_SPREAD:
        return False
    x = np.stack([input_tokens / total, output_tokens / total], axis=1)
    return bool(np.linalg.cond(x) < MAX_CONDITION)


def mix_key(run: LoadedRun) -> tuple:
    s = run.record.summary
    n = max(s.num_ok, 1)
    return (run.record.config.workload.kind, round(s.input_tokens_total / n, 1),
            round(s.output_tokens_total / n, 1))


# --------------------------------------------------------------------------- bootstrap


@dataclass
class Replicates:
    """Per-run (cost, input tokens, decode tokens): the observed values and B bootstrap replicates.
    `cost` is device-seconds (or joules when built for energy); `output_tokens` holds decode tokens
    (output tokens after each request's first)."""

    cost: np.ndarray  # (R,)
    input_tokens: np.ndarray  # (R,)
    output_tokens: np.ndarray  # (R,)
    boot_cost: np.ndarray  # (B, R)
    boot_input: np.ndarray  # (B, R)
    boot_output: np.ndarray  # (B, R)


BLOCKS_MAX = 8  # time blocks of a run's window for the block bootstrap (at most one per wave)


def block_totals(run: LoadedRun) -> np.ndarray | None:
    """(K, 3) device-seconds, input tokens, decode tokens of K equal time blocks of the run's window
    (the window's counting rules applied to each block: calibrate.runs.window); None when the run has
    no window or it holds fewer than 2 waves (then it is resampled at the run level only)."""
    t = totals(run)
    req, c = run.requests, run.record.config.concurrency or 1
    if t.basis != WINDOW or req is None:
        return None
    k = int(min(BLOCKS_MAX, t.requests // c))
    if k < 2:
        return None
    edges = np.linspace(t.start_s, t.end_s, k + 1)
    devices = run.record.environment.hardware.device_count
    out = np.zeros((k, 3))
    out[:, 0] = np.diff(edges) * devices
    chunks = req.chunk_times_s or (None,) * len(req.send_s)
    for j in range(k):
        lo, hi = edges[j], edges[j + 1]
        pre = (req.first_token_s > lo) & (req.first_token_s <= hi)
        out[j, 1] = req.input_tokens[pre].sum()
        out[j, 2] = sum(decode_tokens_in(lo, hi, req.first_token_s[i], req.end_s[i], req.output_tokens[i], chunks[i])
                        for i in range(len(req.send_s)))
    return out


def resample_strata(obs: np.ndarray, strata: Sequence, n_boot: int, rng: np.random.Generator,
                    blocks: dict[int, np.ndarray | None] | None = None) -> np.ndarray:
    """(n_boot, R, k) replicates of per-run totals `obs` (R, k): runs resampled within each stratum
    of >= 2 (deviations from the stratum mean scaled by sqrt(m / (m - 1))); a run alone in its
    stratum resamples its time blocks `blocks[j]` (K, k) when given, else stays fixed."""
    R = len(obs)
    boot = np.broadcast_to(obs, (n_boot, R, obs.shape[1])).copy()
    if n_boot == 0:
        return boot
    groups: dict = {}
    for j, key in enumerate(strata):
        groups.setdefault(key, []).append(j)
    for members in groups.values():
        m = np.array(members)
        if len(m) >= 2:
            centre = obs[m].mean(0)
            pick = m[rng.integers(0, len(m), size=(n_boot, len(m)))]
            boot[:, m] = centre + np.sqrt(len(m) / (len(m) - 1)) * (obs[pick] - centre)
            continue
        b = (blocks or {}).get(int(m[0]))
        if b is not None:
            idx = rng.integers(0, len(b), size=(n_boot, len(b)))
            boot[:, m[0]] = b[idx].sum(1)
    return boot


def bootstrap_replicates(runs: Sequence[LoadedRun], n_boot: int, rng: np.random.Generator,
                         cost_of=None) -> Replicates:
    """Bootstrap replicates of each run's (cost, input, decode) totals (module docstring): whole runs
    resampled within each (concurrency, mix) stratum of >= 2 runs, their deviations from the stratum
    mean scaled by sqrt(m / (m - 1)) (the plain bootstrap's variance is short by (m - 1) / m, which
    at m = 2-3 replicates is most of the interval's miss); a stratum of one run resamples the time
    blocks of its window (calibrate.profile.tokencost.block_totals; requests in a closed loop share the
    machine and are not independent). `cost_of(run)` gives a run's cost (default device-seconds;
    then whole-run token totals are used and strata of one run stay fixed)."""
    R = len(runs)
    if cost_of is None:
        tot = [totals(r) for r in runs]
        cost = np.array([t.device_s for t in tot], dtype=float)
        inp = np.array([t.input_tokens for t in tot], dtype=float)
        out = np.array([t.decode_tokens for t in tot], dtype=float)
    else:
        cost = np.array([cost_of(r) for r in runs], dtype=float)
        inp = np.array([r.record.summary.input_tokens_total for r in runs], dtype=float)
        out = np.array([decode_total(r) for r in runs], dtype=float)
    obs = np.stack([cost, inp, out], axis=1)  # (R, 3)
    strata = [mix_key(r) for r in runs]
    single = {} if cost_of is not None else {
        j: block_totals(runs[j]) for j in range(R) if strata.count(strata[j]) == 1}
    boot = resample_strata(obs, strata, n_boot, rng, blocks=single)
    return Replicates(cost=cost, input_tokens=inp, output_tokens=out,
                      boot_cost=boot[..., 0], boot_input=boot[..., 1], boot_output=boot[..., 2])


def estimate(value: float, samples: np.ndarray) -> Estimate:
    """Point estimate with the 95 % percentile interval of finite samples. The interval is widened
    to include the point estimate if a skewed bootstrap puts it outside (so low <= value <= high)."""
    samples = samples[np.isfinite(samples)]
    if len(samples) < 2:
        return Estimate(value=float(value), low=float(value), high=float(value), n_boot=0)
    low, high = np.percentile(samples, [2.5, 97.5])
    return Estimate(value=float(value), low=float(min(low, value)), high=float(max(high, value)),
                    n_boot=int(len(samples)))


# --------------------------------------------------------------------------- costs at one concurrency


@dataclass
class TokenCosts:
    """Device-seconds per input and output token at one concurrency, with bootstrap samples."""

    a: float
    b: float
    boot_a: np.ndarray
    boot_b: np.ndarray
    method: str  # "joint" | "phase-isolated"
    concurrency_input: int
    concurrency_output: int
    run_ids: list[str] = field(default_factory=list)


def replicate_dof(estimator, cost: np.ndarray, strata: Sequence) -> np.ndarray:
    """Welch-Satterthwaite degrees of freedom of each coefficient `estimator(cost)` returns (a 1-D
    array; `estimator` must broadcast over leading axes of `cost`), from its linearisation in the
    runs' costs: v_s = sum_{j in s} (d coef / d c_j)^2 var_s over strata of m_s >= 2 replicates
    (var_s their sample variance), df = (sum v_s)^2 / sum(v_s^2 / (m_s - 1)); inf when no stratum
    has replicates (then the block bootstrap alone stands)."""
    cost = np.asarray(cost, dtype=float)
    R = len(cost)
    h = 1e-6
    base = np.asarray(estimator(cost), dtype=float)
    bumped = np.asarray(estimator(cost[None, :] * (1 + h * np.eye(R))), dtype=float)  # (R, k) or (k, R)
    if bumped.shape[0] != R:
        bumped = bumped.T
    grad = (bumped - base[None, :]) / (h * cost[:, None])  # (R, k)
    groups: dict = {}
    for j, key in enumerate(strata):
        groups.setdefault(key, []).append(j)
    num = np.zeros(base.shape)
    den = np.zeros(base.shape)
    for members in groups.values():
        if len(members) < 2:
            continue
        m = np.array(members)
        v = (grad[m] ** 2).sum(0) * cost[m].var(ddof=1)
        num += v
        den += v ** 2 / (len(m) - 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, num ** 2 / den, np.inf)


def t_scale(df) -> np.ndarray:
    """t(0.975, df) / z(0.975): how much wider a 95 % interval is when its spread is estimated from
    df degrees of freedom (1 for df = inf). The bootstrap's deviations are scaled by it, so a
    percentile interval from 2-3 replicates is as wide as a t interval."""
    from scipy.stats import norm, t

    df = np.asarray(df, dtype=float)
    return np.where(np.isfinite(df), t.ppf(0.975, np.maximum(df, 1e-9)) / norm.ppf(0.975), 1.0)


def carry_misfit(runs: Sequence[LoadedRun], rep: Replicates, a: float, b: float, rng) -> np.ndarray:
    """`misfit_shift` of the runs' strata applied to the bootstrap costs."""
    return misfit_shift(rep.cost, rep.input_tokens, rep.output_tokens, [mix_key(r) for r in runs], a, b,
                        rep.boot_cost, rng)


def misfit_shift(cost: np.ndarray, inp: np.ndarray, out: np.ndarray, strata: Sequence, a: float, b: float,
                 boot_cost: np.ndarray, rng) -> np.ndarray:
    """The bootstrap costs with the fit's misfit carried: each stratum's mean relative residual
    r_s = mean((a I + b O - c) / c) is what the additive, context-free model does not explain about
    that mix; each replicate shifts the stratum's costs by s r_s sqrt(S / (S - 2)) (s = +-1 at
    random, a wild bootstrap; S strata, 2 fitted coefficients). With S <= 2 the fit through the
    strata is exact and there is nothing to carry."""
    n_boot = boot_cost.shape[0]
    groups: dict = {}
    for j, key in enumerate(strata):
        groups.setdefault(key, []).append(j)
    S = len(groups)
    if n_boot == 0 or S <= 2:
        return boot_cost
    rel = (a * inp + b * out - cost) / cost
    shift = np.zeros((n_boot, len(cost)))
    signs = rng.choice([-1.0, 1.0], size=(n_boot, S))
    for k, members in enumerate(groups.values()):
        shift[:, members] = signs[:, [k]] * rel[members].mean() * np.sqrt(S / (S - 2))
    return boot_cost * (1.0 + shift)


def joint_costs(runs: Sequence[LoadedRun], concurrency: int, n_boot: int, rng) -> TokenCosts | None:
    """Joint fit at one concurrency; None when underdetermined or not positive (then the caller
    falls back to phase-isolated estimates)."""
    rep = bootstrap_replicates(runs, n_boot, rng)
    if not fit_is_determined(rep.input_tokens, rep.output_tokens):
        return None
    a, b = fit_token_costs(rep.cost, rep.input_tokens, rep.output_tokens)
    if not (a > 0 and b > 0):
        return None
    boot_cost = carry_misfit(runs, rep, a, b, rng)
    ba, bb = fit_token_costs(boot_cost, rep.boot_input, rep.boot_output)
    df = replicate_dof(lambda c: np.stack(fit_token_costs(c, rep.input_tokens, rep.output_tokens), -1), rep.cost,
                       [mix_key(r) for r in runs])
    ka, kb = t_scale(df)
    ba, bb = a + ka * (ba - a), b + kb * (bb - b)
    ok = np.isfinite(ba) & np.isfinite(bb)
    # An interval reaching 0 would make MFU unbounded: the mixes do not separate a from b well enough.
    if n_boot and ok.any() and (np.percentile(ba[ok], 2.5) <= 0 or np.percentile(bb[ok], 2.5) <= 0):
        return None
    return TokenCosts(float(a), float(b), ba, bb, "joint", concurrency, concurrency,
                      [r.record.run_id for r in runs])


def ratio_cost(runs: Sequence[LoadedRun], phase: str, n_boot: int, rng) -> tuple[float, np.ndarray]:
    """Phase-isolated device-seconds per token: sum(device-seconds) / sum(tokens of the phase)."""
    rep = bootstrap_replicates(runs, n_boot, rng)
    tokens, boot_tokens = ((rep.input_tokens, rep.boot_input) if phase == "input"
                           else (rep.output_tokens, rep.boot_output))
    value = rep.cost.sum() / tokens.sum()
    with np.errstate(divide="ignore", invalid="ignore"):
        boot = rep.boot_cost.sum(-1) / boot_tokens.sum(-1)
    df = replicate_dof(lambda c: (c.sum(-1) / tokens.sum())[..., None], rep.cost, [mix_key(r) for r in runs])
    return float(value), value + t_scale(df)[0] * (boot - value)


# --------------------------------------------------------------------------- choosing the costs


def nearest(candidates: Sequence[int], target: int | None) -> int | None:
    """Target if present, else the largest candidate below it, else the smallest above it;
    with no target, the largest candidate."""
    if not candidates:
        return None
    cs = sorted(candidates)
    if target is None:
        return cs[-1]
    below = [c for c in cs if c <= target]
    return below[-1] if below else cs[0]


@dataclass
class ChosenCosts:
    costs: TokenCosts
    concurrency: int | None  # where a and b were both taken (None when from different concurrencies)
    how: str  # for provenance.method
    phase: dict[str, float | None]  # Profile.phase_isolated
    notes: list[str]


def paper_mfu(seconds_per_token: float, n_mm: int, peak: float | None) -> float | None:
    """MFU of a per-device cost: 2N flop per token (paper convention) / (seconds x peak); None without a peak."""
    return None if peak is None else 2 * n_mm / (seconds_per_token * peak)


def choose_token_costs(by_c: dict[int, list[LoadedRun]], target: int | None, *, n_boot: int, rng,
                       peak: float | None, n_mm: int) -> ChosenCosts:
    """Joint fits at every concurrency and phase-isolated estimates; the costs are the joint fit
    nearest the target concurrency (at or below it), or phase-isolated ones when no concurrency has
    a determined joint fit. Raises InputError when neither is possible."""
    notes: list[str] = []
    joint = {c: joint_costs(group, c, n_boot, rng) for c, group in sorted(by_c.items())}
    joint = {c: tc for c, tc in joint.items() if tc is not None}
    phase: dict[str, float | None] = {}
    iso_in: dict[int, tuple[float, np.ndarray]] = {}
    iso_out: dict[int, tuple[float, np.ndarray]] = {}
    for c, group in sorted(by_c.items()):
        pre = [r for r in group if r.record.config.workload.kind == "prefill"]
        dec = [r for r in group if r.record.config.workload.kind == "decode"]
        if pre:
            iso_in[c] = ratio_cost(pre, "input", n_boot, rng)
            phase[f"mfu_input@c{c}"] = paper_mfu(iso_in[c][0], n_mm, peak)
        if dec:
            iso_out[c] = ratio_cost(dec, "output", n_boot, rng)
            phase[f"mfu_output@c{c}"] = paper_mfu(iso_out[c][0], n_mm, peak)
    for c, tc in joint.items():
        phase[f"joint_mfu_input@c{c}"] = paper_mfu(tc.a, n_mm, peak)
        phase[f"joint_mfu_output@c{c}"] = paper_mfu(tc.b, n_mm, peak)

    no_fit = [c for c in sorted(by_c) if c not in joint]
    if no_fit:
        notes.append(f"No joint fit at concurrency {', '.join(map(str, no_fit))} (fewer than two input/output "
                     "mixes, or a coefficient not separable from 0).")
    if joint:
        c_op = nearest(list(joint), target)
        costs = joint[c_op]
        how = (f"joint fit at concurrency {c_op} over {len(by_c[c_op])} runs "
               f"({len({mix_key(r) for r in by_c[c_op]})} input/output mixes)")
    elif iso_in and iso_out:
        c_in, c_out = nearest(list(iso_in), target), nearest(list(iso_out), target)
        costs = TokenCosts(iso_in[c_in][0], iso_out[c_out][0], iso_in[c_in][1], iso_out[c_out][1],
                           "phase-isolated", c_in, c_out)
        how = ("phase-isolated estimates (the joint fit was underdetermined at every concurrency: "
               f"fewer than two input/output mixes): input from prefill-only runs at concurrency {c_in}, "
               f"output from decode-only runs at concurrency {c_out}")
        c_op = c_out if c_in == c_out else None
    else:
        raise BadFile(
            next(iter(by_c.values()))[0].path, "config.workload.kind",
            "cannot separate input from output token costs: need runs of >= 2 input/output mixes at one "
            "concurrency, or prefill-only and decode-only runs")
    if iso_in:
        c_in = nearest(list(iso_in), costs.concurrency_input)
        phase["mfu_input"] = paper_mfu(iso_in[c_in][0], n_mm, peak)
        phase["mfu_input_concurrency"] = float(c_in)
        phase["seconds_per_input_token"] = iso_in[c_in][0]
    if iso_out:
        c_out = nearest(list(iso_out), costs.concurrency_output)
        phase["mfu_output"] = paper_mfu(iso_out[c_out][0], n_mm, peak)
        phase["mfu_output_concurrency"] = float(c_out)
        phase["seconds_per_output_token"] = iso_out[c_out][0]

    return ChosenCosts(costs, c_op, how, phase, notes)


def _energy_basis(run: LoadedRun) -> tuple[float, float, float, int, bool]:
    """(joules, input tokens, decode tokens, requests, on_window): the NVML energy over the run's
    completion window with the window's totals when bench recorded it (derived.energy_window_j),
    else the whole run's energy (warm-up included) with the whole run's totals."""
    d = run.record.derived
    t = totals(run)
    if d.energy_window_j is not None and t.basis == WINDOW:
        return d.energy_window_j, t.input_tokens, t.decode_tokens, t.requests, True
    s = run.record.summary
    return d.energy_j, float(s.input_tokens_total), float(decode_total(run)), s.num_ok, False


def energy_per_request(runs: Sequence[LoadedRun], concurrency: int | None, n_boot: int, rng
                        ) -> tuple[float | None, str]:
    """Joules for the paper's 70/215 request: the same joint fit with energy in place of
    device-seconds (runs at the operating concurrency with measured energy); else the mean measured
    energy per request of mixed runs; else None. Energy is over each run's completion window
    where bench recorded it (else the whole run's, warm-up included: said in the text)."""
    with_e = [r for r in runs if r.record.derived is not None and r.record.derived.energy_j is not None]
    if not with_e:
        return None, "not measured (no NVML energy counter)"
    basis = {id(r): _energy_basis(r) for r in with_e}
    where = ("over each run's completion window" if all(b[4] for b in basis.values())
             else "over the whole run for some runs (no window energy recorded; includes the warm-up)")
    at_c = [r for r in with_e if r.record.config.concurrency == concurrency]
    if at_c:
        e = np.array([basis[id(r)][0] for r in at_c])
        i = np.array([basis[id(r)][1] for r in at_c])
        o = np.array([basis[id(r)][2] for r in at_c])
        if fit_is_determined(i, o):
            e_in, e_out = fit_token_costs(e, i, o)
            if e_in > 0 and e_out > 0:
                return (float(e_in * PAPER.input_tokens_per_request + e_out * (PAPER.output_tokens_per_request - 1)),
                        f"joint fit of NVML energy ({where}) at concurrency {concurrency}, evaluated at 70/215 tokens")
    mixed = [r for r in with_e if r.record.config.workload.kind in ("mixed", "distribution")]
    if mixed:
        e = sum(basis[id(r)][0] for r in mixed) / sum(basis[id(r)][3] for r in mixed)
        return float(e), f"mean NVML energy per request of the mixed-workload runs ({where}; measured mix)"
    return None, "measured only on single-phase runs; not enough to price a request"
