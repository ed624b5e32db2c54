"""`python -m solver optimize`: Eq. 3 or Eq. 6 for one loss and demand, as a table or one JSON object.

The spellings are a contract other tools call (docs/solver.md):

  optimize --objective flops (--loss L | --chinchilla-params N) --inference-tokens T [--law NAME|FILE] [--json]
  optimize --objective cost  (--loss L | --chinchilla-params N) --requests R [--input-tokens 70]
           [--output-tokens 215] [--train-gpu a100-80gb] [--inference-gpu a100-40gb] [--train-dtype bf16]
           [--inference-dtype int8] [--mfu-train 0.5] [--mfu-input 0.5] [--mfu-output 0.01]
           [--train-usd-per-hour X] [--inference-usd-per-hour Y] [--inference-profile P] [--train-profile P]
           [--law ...] [--json]
           [--peak-to-mean R | --demand-profile CSV]       (cost only; default R = 1: today's answer)
  either objective: [--max-train-tokens T [--no-repeat]]

--peak-to-mean R (or R = max/mean of an hourly CSV, solver.optimize.demand): the fleet is provisioned for the
peak and paid every hour, so the inference $/useful FLOP is divided by the utilisation mean/peak, i.e.
multiplied by R; with constant-MFU Eq. 6 the optimum is the paper's with that price (same JSON keys).
--max-train-tokens T: unique tokens available; the optimum is the cheapest (N, D) that meets the loss
with them, repeating data as Muennighoff et al. 2023 allow unless --no-repeat (solver.optimize.data_limit), or
exit 2 with one line when the loss is out of reach. A warning (text, and JSON `warnings`) when the
plan's tokens per parameter exceed the 10,000 Sardana et al. 2024 trained.

Defaults of the cost objective are the paper's settings (`core.paper.PAPER`). The JSON
object is `solver.optimize.schema.OptimizeResult`.
"""

from __future__ import annotations

import argparse

from core.cli import (
    CliError,
    at_least_one,
    flag,
    flag_error,
    fraction,
    non_negative,
    one_line,
    peak_to_mean_arg,
    positive,
    tokens,
)
from core.errors import InputError
from core.gpus import DTYPES, get_device, peak_flop_per_s
from core.paper import PAPER, SECONDS_PER_HOUR
from solver.optimize.checks import INFERENCE_FLOP_PER_PARAM_TOKEN, TRAIN_FLOP_PER_PARAM_TOKEN, check_loss
from solver.optimize.costs import add_profile_args, costs_from_profiles
from solver.optimize.data_limit import (
    DataLimitUnreachable,
    data_limited_optimum,
    limit_record,
    tokens_per_param_warning,
)
from solver.optimize.demand import DemandShape, demand_from_csv, provisioned_settings
from solver.optimize.laws import chinchilla_loss_for_params, resolve_law
from solver.optimize.schema import optimize_result
from solver.optimize.solve import CostSettings, ModelPlan, optimize_cost, optimize_flops, usd_per_flop

COST_DEFAULTS = {
    "input_tokens": float(PAPER.input_tokens_per_request),
    "output_tokens": float(PAPER.output_tokens_per_request),
    "train_gpu": PAPER.training.gpu,
    "inference_gpu": PAPER.inference.gpu,
    "train_dtype": PAPER.training.dtype,
    "inference_dtype": PAPER.inference.dtype,
    "mfu_train": PAPER.mfu_train,
    "mfu_input": PAPER.mfu_input,
    "mfu_output": PAPER.mfu_output,
}

_COST_ONLY = ("requests", "input_tokens", "output_tokens", "train_gpu", "inference_gpu", "train_dtype",
              "inference_dtype", "mfu_train", "mfu_input", "mfu_output", "train_usd_per_hour",
              "inference_usd_per_hour", "train_peak_flop_per_s", "inference_peak_flop_per_s",
              "inference_profile", "train_profile", "peak_to_mean", "demand_profile")

# The flags behind each value the solver API checks: (dest, exponent), value ∝ flag^exponent.
_TRAIN = [("train_usd_per_hour", 1), ("train_peak_flop_per_s", -1), ("mfu_train", -1), ("train_profile", 0),
          ("train_gpu", 0), ("train_dtype", 0)]
_INFERENCE = [("inference_usd_per_hour", 1), ("inference_peak_flop_per_s", -1), ("inference_profile", 0),
              ("inference_gpu", 0), ("inference_dtype", 0)]
SOURCES = {
    "inference_tokens": [("inference_tokens", 1)],
    "requests": [("requests", 1)],
    "train_usd_per_flop": _TRAIN,
    "input_usd_per_flop": _INFERENCE[:1] + [("mfu_input", -1)] + _INFERENCE[1:] + [("input_tokens", 0)],
    "output_usd_per_flop": _INFERENCE[:1] + [("mfu_output", -1)] + _INFERENCE[1:] + [("output_tokens", 0)],
    "input_tokens_per_request": [("input_tokens", 1)],
    "output_tokens_per_request": [("output_tokens", 1)],
}


def add_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--objective", required=True, choices=("flops", "cost"),
                   help="flops: Eq. 3 (total FLOPs); cost: Eq. 6 (total dollars)")
    add_target_args(p)
    p.add_argument("--json", action="store_true", help="print one JSON object (full precision)")
    f = p.add_argument_group("flops objective")
    f.add_argument("--inference-tokens", type=non_negative, metavar="T",
                   help="lifetime inference tokens (input + output)")
    c = p.add_argument_group("cost objective (defaults: the paper's B.2/B.3 settings)")
    c.add_argument("--requests", type=non_negative, metavar="R", help="lifetime inference requests")
    c.add_argument("--input-tokens", type=tokens,
                   help=f"input tokens per request (default {PAPER.input_tokens_per_request})")
    c.add_argument("--output-tokens", type=tokens,
                   help=f"output tokens per request (default {PAPER.output_tokens_per_request})")
    c.add_argument("--train-gpu", help=f"training GPU (default {PAPER.training.gpu})")
    c.add_argument("--inference-gpu", help=f"inference GPU (default {PAPER.inference.gpu})")
    c.add_argument("--train-dtype", help=f"datatype of training matmuls (default {PAPER.training.dtype})")
    c.add_argument("--inference-dtype", help=f"datatype of inference matmuls (default {PAPER.inference.dtype})")
    c.add_argument("--mfu-train", type=fraction, help=f"training MFU in (0, 1] (default {PAPER.mfu_train})")
    c.add_argument("--mfu-input", type=fraction, help=f"MFU on input (prefill) tokens (default {PAPER.mfu_input})")
    c.add_argument("--mfu-output", type=fraction, help=f"MFU on output (decode) tokens (default {PAPER.mfu_output})")
    c.add_argument("--train-usd-per-hour", type=positive, metavar="X", help="training $/GPU-hour (default: table)")
    c.add_argument("--inference-usd-per-hour", type=positive, metavar="Y", help="inference $/GPU-hour (default: table)")
    c.add_argument("--train-peak-flop-per-s", type=positive, metavar="F",
                   help="dense peak of the training GPU in --train-dtype (default: table)")
    c.add_argument("--inference-peak-flop-per-s", type=positive, metavar="F",
                   help="dense peak of the inference GPU in --inference-dtype (default: table)")
    add_profile_args(c)
    d = c.add_mutually_exclusive_group()
    d.add_argument("--peak-to-mean", type=peak_to_mean_arg, metavar="R",
                   help="peak / mean demand, >= 1: inference is priced per provisioned device-hour, i.e. its "
                        "$/FLOP divided by the utilisation 1/R (default 1: the paper's full utilisation)")
    d.add_argument("--demand-profile", metavar="CSV",
                   help="hourly relative load over a day (24 rows) or week (168 rows); R = max / mean")
    add_data_limit_args(p.add_argument_group("data limit (either objective)"))


def add_data_limit_args(g) -> None:
    """--max-train-tokens T and --no-repeat (solver.optimize.data_limit)."""
    g.add_argument("--max-train-tokens", type=positive, metavar="T",
                   help="unique training tokens available; beyond them data repeats (Muennighoff et al. 2023)")
    g.add_argument("--no-repeat", action="store_true",
                   help="with --max-train-tokens: never repeat data (train on at most T tokens)")


def demand_shape_from_args(args):
    """solver.optimize.demand.DemandShape from --peak-to-mean | --demand-profile (None given: R = 1)."""

    if getattr(args, "demand_profile", None):
        try:
            return demand_from_csv(args.demand_profile)
        except ValueError as exc:
            raise CliError(f"--demand-profile: {one_line(exc)}") from None
    r = getattr(args, "peak_to_mean", None)
    return DemandShape(1.0 if r is None else r, "--peak-to-mean" if r is not None else "default (full utilisation)")


def add_target_args(p: argparse.ArgumentParser) -> None:
    """--loss | --chinchilla-params and --law (shared with `report`)."""
    q = p.add_mutually_exclusive_group(required=True)
    q.add_argument("--loss", type=positive, help="target pre-training loss (must exceed the law's E)")
    q.add_argument("--chinchilla-params", type=at_least_one, metavar="N",
                   help="target the loss of a Chinchilla-style (training-compute-optimal) model of N params")
    p.add_argument("--law", default="chinchilla", metavar="NAME|FILE",
                   help="loss-law coefficients: a name (chinchilla, hoffmann-rounded, besiroglu2024, "
                        "sardana-le100, sardana-le250, sardana-le500, sardana-all) or a JSON law file")


def target_from_args(args):
    """(law, target loss, quality record) from --law and --loss | --chinchilla-params; CliError if unusable."""

    try:
        law = resolve_law(args.law)
    except ValueError as exc:
        raise CliError(f"--law: {one_line(exc)}") from None
    if args.loss is not None:
        target = args.loss
        if target <= law.E:
            raise CliError(f"--loss {target!r} is unreachable under law {law.name!r}: need a loss > E = {law.E!r} "
                           f"(the smallest reachable loss, approached only as N and D grow without bound)")
        upper = float(chinchilla_loss_for_params(law, 1.0))
        if target >= upper:  # fewer than one parameter: the law says nothing useful
            raise CliError(f"--loss {target!r} is at or above the loss of a 1-parameter Chinchilla-style model "
                           f"under law {law.name!r}; need {law.E!r} < loss < {upper:.6g}")
        quality = {"loss": target}
    else:
        target = float(chinchilla_loss_for_params(law, args.chinchilla_params))
        if target <= law.E:
            raise CliError(f"--chinchilla-params {args.chinchilla_params:g}: its loss rounds to E = {law.E!r} under "
                           f"law {law.name!r}; need a smaller model")
        quality = {"chinchilla_params": args.chinchilla_params, "loss": target}
    try:
        check_loss(law, target)
    except ValueError as exc:
        raise _api_error(exc, args) from None
    return law, target, quality


def _api_error(exc: ValueError, args) -> CliError:
    """An API ValueError in terms of the flags behind it (solver.optimize.checks.InputError names its parameter)."""

    name = exc.name if isinstance(exc, InputError) else None
    if name == "loss":
        cands = [("loss", 1)] if args.loss is not None else [("chinchilla_params", 0)]
    else:
        cands = SOURCES.get(name, [])
    return flag_error(exc, args, cands)


def _gpu_side(args, side: str) -> dict:
    """Price, peak and their sources for the 'train' or 'inference' GPU of the cost objective."""

    gpu_name = getattr(args, f"{side}_gpu") or COST_DEFAULTS[f"{side}_gpu"]
    dtype = getattr(args, f"{side}_dtype") or COST_DEFAULTS[f"{side}_dtype"]
    peak = getattr(args, f"{side}_peak_flop_per_s", None)
    try:
        device = get_device(gpu_name)
        if peak is None:
            peak, peak_source = peak_flop_per_s(device, dtype), device.peak_source
        else:
            peak_source = f"--{side}-peak-flop-per-s"
            if dtype.strip().lower() not in DTYPES:
                raise ValueError(f"unknown dtype {dtype!r}; allowed: {', '.join(DTYPES)}")
    except ValueError as exc:
        raise CliError(f"--{side}-gpu/--{side}-dtype: {exc}") from None
    price = getattr(args, f"{side}_usd_per_hour")
    if price is not None:
        price_source = f"--{side}-usd-per-hour"
    elif device.usd_per_h is not None:
        price, price_source = device.usd_per_h, device.usd_per_h_source
    else:
        raise CliError(f"no default price for {device.key}; pass --{side}-usd-per-hour (a number > 0)")
    return {"gpu": device.key, "dtype": dtype, "peak_flop_per_s": peak, "peak_source": peak_source,
            "usd_per_h": price, "usd_per_h_source": price_source}


def _usd_per_flop(args, side: str, info: dict) -> float:
    try:
        return usd_per_flop(info["usd_per_h"], info["peak_flop_per_s"])
    except ValueError as exc:
        raise flag_error(exc, args, [(f"{side}_usd_per_hour", 1), (f"{side}_peak_flop_per_s", 0),
                                     (f"{side}_gpu", 0)]) from None


_FORMULA = f"usd_per_h / ({SECONDS_PER_HOUR:g} * peak_flop_per_s * mfu_%s)"


def train_from_gpu(args) -> tuple[float, dict]:
    """Training $ per useful FLOP from --train-gpu/--train-dtype/--mfu-train/--train-usd-per-hour, and its record."""
    tr = _gpu_side(args, "train")
    mfu = args.mfu_train if args.mfu_train is not None else COST_DEFAULTS["mfu_train"]
    usd = _usd_per_flop(args, "train", tr) / mfu
    return usd, tr | {"mfu": mfu, "usd_per_useful_flop": usd, "formula": _FORMULA % "train"}


def cost_settings_from_args(args):
    """Eq. 6 constants from the CLI (GPU table + MFUs, or calibration profiles) and their record."""

    d = COST_DEFAULTS
    mfu = {k: getattr(args, f"mfu_{k}") if getattr(args, f"mfu_{k}") is not None else d[f"mfu_{k}"]
           for k in ("train", "input", "output")}
    tokens_in = args.input_tokens if args.input_tokens is not None else d["input_tokens"]
    tokens_out = args.output_tokens if args.output_tokens is not None else d["output_tokens"]
    if tokens_in + tokens_out <= 0:
        raise CliError("--input-tokens + --output-tokens is 0; need at least one token per request")

    prof_train = prof_in = prof_out = None
    record: dict = {"input_tokens_per_request": tokens_in, "output_tokens_per_request": tokens_out}
    if args.inference_profile or args.train_profile:
        try:
            prof_train, prof_in, prof_out, prov = costs_from_profiles(args)
        except ValueError as exc:
            raise CliError(one_line(exc)) from None
        record["profiles"] = prov
    if prof_train is None:
        train_usd_per_flop, record["train"] = train_from_gpu(args)
    else:
        train_usd_per_flop = prof_train
        record["train"] = {"usd_per_useful_flop": prof_train, "source": "--train-profile"}
    if prof_in is None or prof_out is None:
        inf = _gpu_side(args, "inference")
        c_inf = _usd_per_flop(args, "inference", inf)
        input_usd, output_usd = c_inf / mfu["input"], c_inf / mfu["output"]
        record["inference"] = inf | {"mfu_input": mfu["input"], "mfu_output": mfu["output"],
                                     "usd_per_useful_flop_input": input_usd,
                                     "usd_per_useful_flop_output": output_usd,
                                     "formula": _FORMULA % "phase"}
    else:
        input_usd, output_usd = prof_in, prof_out
        record["inference"] = {"usd_per_useful_flop_input": prof_in, "usd_per_useful_flop_output": prof_out,
                               "source": "--inference-profile"}
    try:
        settings = CostSettings(train_usd_per_flop, input_usd, output_usd, tokens_in, tokens_out)
    except ValueError as exc:
        raise _api_error(exc, args) from None
    return settings, record


def run(args) -> int:
    law, target, quality = target_from_args(args)
    if args.no_repeat and args.max_train_tokens is None:
        raise CliError("--no-repeat applies only with --max-train-tokens T (the unique tokens available)")
    if args.objective == "flops":
        given = [flag(k) for k in _COST_ONLY if getattr(args, k, None) is not None]
        if given:
            raise CliError(f"{', '.join(given)}: applies only to --objective cost")
        if args.inference_tokens is None:
            raise CliError("--objective flops needs --inference-tokens T (a number >= 0)")
        try:
            comp = optimize_flops(target, args.inference_tokens, law)
        except ValueError as exc:
            raise _api_error(exc, args) from None
        inputs = quality | {"inference_tokens": args.inference_tokens}
        settings = None
    else:
        if args.inference_tokens is not None:
            raise CliError("--inference-tokens only applies to --objective flops; use --requests R "
                           "with --input-tokens/--output-tokens")
        if args.requests is None:
            raise CliError("--objective cost needs --requests R (a number >= 0)")
        busy, record = cost_settings_from_args(args)
        shape = demand_shape_from_args(args)
        settings = _provisioned(busy, shape)
        try:
            comp = optimize_cost(target, args.requests, settings, law)
        except ValueError as exc:
            raise _api_error(exc, args) from None
        inputs = quality | {"requests": args.requests, "inference_tokens": float(comp.inference_tokens)} | record
        inputs |= {"peak_to_mean": shape.peak_to_mean, "utilisation": shape.utilisation,
                   "demand_shape": shape.as_dict() | {
                       "input_usd_per_useful_flop_provisioned": settings.input_usd_per_flop,
                       "output_usd_per_useful_flop_provisioned": settings.output_usd_per_flop,
                       "formula": "usd_per_useful_flop / utilisation (= x peak_to_mean): the fleet is "
                                  "provisioned for the peak and paid for every hour"}}
    extra: dict = {}
    if args.max_train_tokens is not None:
        comp, extra["data_limit"] = _data_limited(comp, law, target, settings, args)
        inputs["max_train_tokens"] = args.max_train_tokens
        inputs["repeat"] = not args.no_repeat

    warning = tokens_per_param_warning(float(comp.optimal.params), float(comp.optimal.train_tokens))
    if warning:
        extra["warnings"] = [f"optimal plan: {warning}"]
    result = optimize_result(comp, inputs)
    if extra:  # data_limit / warnings: optional keys of the schema, validated with the rest
        result = type(result).model_validate(result.model_dump() | extra)
    print(result.model_dump_json(exclude_none=True) if args.json else format_text(result.model_dump(exclude_none=True)))
    return 0


def _provisioned(busy, shape):
    """CostSettings with inference $/FLOP x peak-to-mean (solver.optimize.demand.provisioned_settings)."""

    try:
        return provisioned_settings(busy, shape.peak_to_mean)
    except ValueError as exc:
        src = "--demand-profile" if shape.hours else "--peak-to-mean"
        raise CliError(f"{src} {shape.peak_to_mean:g}: the provisioned inference price leaves float range "
                       f"({one_line(exc)}); need a smaller peak-to-mean or prices") from None


def _plan(law, target, n, d, inference_tokens, settings, requests):
    """A scalar solver.optimize.solve.ModelPlan of N params trained on D tokens (FLOP, and dollars with settings)."""
    import numpy as np

    f = np.float64
    train, inference = TRAIN_FLOP_PER_PARAM_TOKEN * n * d, INFERENCE_FLOP_PER_PARAM_TOKEN * n * inference_tokens
    usd = {}
    if settings is not None:
        tr, inf = train * settings.train_usd_per_flop, n * requests * settings.inference_usd_per_param_request()
        usd = dict(train_usd=f(tr), inference_usd=f(inf), total_usd=f(tr + inf))
    return ModelPlan(params=f(n), train_tokens=f(d), loss=f(target), train_flop=f(train),
                     inference_flop=f(inference), total_flop=f(train + inference), **usd)


def _data_limited(comp, law, target, settings, args):
    """(Comparison under --max-train-tokens, its data_limit record): the optimum and the Chinchilla-style
    baseline (least training FLOP at the loss) both with at most T unique tokens; CliError when unreachable."""
    from dataclasses import replace

    u, repeat = args.max_train_tokens, not args.no_repeat
    d_inf = float(comp.inference_tokens)
    requests = float(comp.requests) if settings is not None else 0.0
    if settings is None:  # Eq. 3: total FLOP
        def cost(n, d):
            return TRAIN_FLOP_PER_PARAM_TOKEN * n * d + INFERENCE_FLOP_PER_PARAM_TOKEN * n * d_inf
        total_of = "total_flop"
    else:  # Eq. 6 with the (provisioned) constants
        k = TRAIN_FLOP_PER_PARAM_TOKEN * settings.train_usd_per_flop
        q = requests * settings.inference_usd_per_param_request()

        def cost(n, d):
            return k * n * d + n * q
        total_of = "total_usd"

    def solve(fn, plan):
        return data_limited_optimum(law, target, fn, u, repeat=repeat,
                                    unconstrained=(float(plan.params), float(plan.train_tokens)))

    try:
        opt = solve(cost, comp.optimal)
        chin = solve(lambda n, d: n * d, comp.chinchilla)  # least training compute 6·N·D at the loss
    except DataLimitUnreachable as exc:
        raise CliError(f"--max-train-tokens {u:g}{' --no-repeat' if not repeat else ''}: {one_line(exc)}") from None
    unconstrained_total = float(getattr(comp.optimal, total_of))
    record = limit_record(opt, u, repeat)
    record |= {"chinchilla": {"binding": chin.binding, "unique_tokens_used": chin.unique_tokens, "epochs": chin.epochs,
                              "effective_train_tokens": chin.effective_tokens},
               "unconstrained": {"params": float(comp.optimal.params), "train_tokens": float(comp.optimal.train_tokens),
                                 total_of: unconstrained_total}}
    if not (opt.binding or chin.binding):
        record[f"limit_cost_{'usd' if settings is not None else 'flop'}"] = 0.0
        return comp, record
    p_opt = _plan(law, target, opt.params, opt.train_tokens, d_inf, settings, requests)
    p_chin = _plan(law, target, chin.params, chin.train_tokens, d_inf, settings, requests)
    t_opt, t_chin = float(getattr(p_opt, total_of)), float(getattr(p_chin, total_of))
    if t_chin < t_opt:  # the baseline itself is a candidate of the optimum (scan tolerance)
        p_opt, t_opt, record = p_chin, t_chin, limit_record(chin, u, repeat) | {
            k: v for k, v in record.items() if k in ("chinchilla", "unconstrained")}
    saving = t_chin - t_opt
    record[f"limit_cost_{'usd' if settings is not None else 'flop'}"] = t_opt - unconstrained_total
    comp = replace(comp, optimal=p_opt, chinchilla=p_chin, saving=saving,
                   saving_fraction=saving / t_chin if t_chin > 0 else 0.0)
    return comp, record


def _si(value: float, unit: str = "") -> str:
    return f"{value:.4g}{unit}" if abs(value) < 1e3 else f"{value:.4e}{unit}"


def format_text(r: dict) -> str:
    """The table `optimize` prints without --json."""
    cost = r["objective"] == "cost"
    law = r["law"]
    lines = [f"objective {r['objective']} (Sardana et al. Eq. {'6' if cost else '3'}), law {law['name']} "
             f"(E={law['E']:g} A={law['A']:g} B={law['B']:g} alpha={law['alpha']:g} beta={law['beta']:g})",
             f"loss {r['loss']:.6g}, inference tokens {_si(r['inputs']['inference_tokens'])}"
             + (f", requests {_si(r['inputs']['requests'])}" if cost else "")]
    head = ["", "params", "train tokens", "tok/param", "total FLOP"] + (["train $", "inference $", "total $"] if cost else [])
    rows = []
    for name, plan in (("chinchilla-style", r["chinchilla"]), ("optimal", r)):
        row = [name, f"{plan['params']:.4g}", f"{plan['train_tokens']:.4g}", f"{plan['tokens_per_param']:.1f}",
               f"{plan['total_flop']:.4g}"]
        if cost:
            row += [f"{plan['train_cost_usd']:.4g}", f"{plan['inference_cost_usd']:.4g}", f"{plan['total_cost_usd']:.4g}"]
        rows.append(row)
    widths = [max(len(x[i]) for x in [head] + rows) for i in range(len(head))]
    for row in [head] + rows:
        lines.append("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))))
    saving = f"${r['saving_usd']:.4g}" if cost else f"{r['saving_flop']:.4g} FLOP"
    lines.append(f"saving {saving} ({100 * r['saving_fraction']:.2f} % of the Chinchilla-style total)")
    inputs = r["inputs"]
    if cost and inputs.get("peak_to_mean", 1.0) != 1.0:
        lines.append(f"provisioned for the peak: peak-to-mean {inputs['peak_to_mean']:.4g} "
                     f"({inputs['demand_shape']['source']}), utilisation {100 * inputs['utilisation']:.1f} %, "
                     f"inference $/FLOP x {inputs['peak_to_mean']:.4g}")
    lim = r.get("data_limit")
    if lim:
        unit = "$" if cost else ""
        key = "limit_cost_usd" if cost else "limit_cost_flop"
        state = (f"binding: {lim['unique_tokens_used']:.4g} unique tokens x {lim['epochs']:.3g} epochs, effective "
                 f"{lim['effective_train_tokens']:.4g} tokens (Muennighoff et al. 2023, R_D* = {lim['r_d_star']:g}); "
                 f"the limit costs {unit}{lim[key]:.4g}" + ("" if cost else " FLOP")) if lim["binding"] else \
            "not binding (the unconstrained optimum fits)"
        lines.append(f"data limit {lim['max_train_tokens']:.4g} unique tokens"
                     f"{'' if lim['repeat'] else ' (no repetition)'}: {state}")
    lines += [f"warning: {w}" for w in r.get("warnings", [])]
    return "\n".join(lines)
