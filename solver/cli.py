"""`python -m solver optimize|paper-tables` (and `report` when solver.report_cli exists).

The spellings of `optimize` are a contract other tools call (issue 2):

  optimize --objective flops (--loss L | --chinchilla-params N) --inference-tokens T [--law NAME|FILE] [--json]
  optimize --objective cost  (--loss L | --chinchilla-params N) --requests R [--input-tokens 70]
           [--output-tokens 215] [--train-gpu a100-80gb] [--inference-gpu a100-40gb] [--train-dtype bf16]
           [--inference-dtype int8] [--mfu-train 0.5] [--mfu-input 0.5] [--mfu-output 0.01]
           [--train-usd-per-hour X] [--inference-usd-per-hour Y] [--law ...] [--json]

Bad input exits 2 with one line on stderr naming the value and what is allowed.

Extension hooks (no behaviour is faked when the modules are absent):
  * a subcommand module listed in _OPTIONAL_SUBCOMMANDS (e.g. solver.report_cli with
    add_args(parser) and main(args) -> int) is registered if it can be found;
  * if solver.profile_input provides add_profile_args(parser) and costs_from_profiles(args),
    `optimize` gains --inference-profile / --train-profile, whose dollars per useful FLOP replace
    the GPU/MFU-derived ones of the cost objective.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import math
import sys
from typing import Callable, Sequence

PROG = "python -m solver"


class CliError(Exception):
    """Bad input found after parsing: reported as one line, exit code 2."""


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (no usage block) and exit code 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message}\n")


# --------------------------------------------------------------------------- argument types


def _number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not finite; need a finite number")
    return value


def positive(text: str) -> float:
    value = _number(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r}; need a finite number > 0")
    return value


def at_least_one(text: str) -> float:
    value = _number(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r}; need a finite number >= 1")
    return value


def non_negative(text: str) -> float:
    value = _number(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r}; need a finite number >= 0")
    return value


def fraction(text: str) -> float:
    value = _number(text)
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"{text!r}; need a fraction in (0, 1]")
    return value


# --------------------------------------------------------------------------- optimize

# Paper defaults (Sardana et al. 2024, Sec. 6 / Appendix B.2-B.3)
COST_DEFAULTS = {
    "input_tokens": 70.0,
    "output_tokens": 215.0,
    "train_gpu": "a100-80gb",
    "inference_gpu": "a100-40gb",
    "train_dtype": "bf16",
    "inference_dtype": "int8",
    "mfu_train": 0.5,
    "mfu_input": 0.5,
    "mfu_output": 0.01,
}


def _profile_module():
    """solver.profile_input if it exists and offers the hook functions, else None."""
    if importlib.util.find_spec("solver.profile_input") is None:
        return None
    mod = importlib.import_module("solver.profile_input")
    if hasattr(mod, "add_profile_args") and hasattr(mod, "costs_from_profiles"):
        return mod
    return None


def add_optimize_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--objective", required=True, choices=("flops", "cost"),
                   help="flops: Eq. 3 (total FLOPs); cost: Eq. 6 (total dollars)")
    q = p.add_mutually_exclusive_group(required=True)
    q.add_argument("--loss", type=positive, help="target pre-training loss (must exceed the law's E)")
    q.add_argument("--chinchilla-params", type=at_least_one, metavar="N",
                   help="target the loss of a Chinchilla-style (training-compute-optimal) model of N params")
    p.add_argument("--law", default="chinchilla", metavar="NAME|FILE",
                   help="loss-law coefficients: a name (chinchilla, hoffmann-rounded, besiroglu2024, "
                        "sardana-le100, sardana-le250, sardana-le500, sardana-all) or a JSON law file")
    p.add_argument("--json", action="store_true", help="print one JSON object (full precision)")
    f = p.add_argument_group("flops objective")
    f.add_argument("--inference-tokens", type=non_negative, metavar="T",
                   help="lifetime inference tokens (input + output)")
    c = p.add_argument_group("cost objective (defaults: the paper's B.2/B.3 settings)")
    c.add_argument("--requests", type=non_negative, metavar="R", help="lifetime inference requests")
    c.add_argument("--input-tokens", type=non_negative, help="input tokens per request (default 70)")
    c.add_argument("--output-tokens", type=non_negative, help="output tokens per request (default 215)")
    c.add_argument("--train-gpu", help="training GPU (default a100-80gb)")
    c.add_argument("--inference-gpu", help="inference GPU (default a100-40gb)")
    c.add_argument("--train-dtype", help="datatype of training matmuls (default bf16)")
    c.add_argument("--inference-dtype", help="datatype of inference matmuls (default int8)")
    c.add_argument("--mfu-train", type=fraction, help="training MFU in (0, 1] (default 0.5)")
    c.add_argument("--mfu-input", type=fraction, help="MFU on input (prefill) tokens (default 0.5)")
    c.add_argument("--mfu-output", type=fraction, help="MFU on output (decode) tokens (default 0.01)")
    c.add_argument("--train-usd-per-hour", type=positive, metavar="X", help="training $/GPU-hour (default: table)")
    c.add_argument("--inference-usd-per-hour", type=positive, metavar="Y", help="inference $/GPU-hour (default: table)")
    c.add_argument("--train-peak-flop-per-s", type=positive, metavar="F",
                   help="dense peak of the training GPU in --train-dtype (default: table)")
    c.add_argument("--inference-peak-flop-per-s", type=positive, metavar="F",
                   help="dense peak of the inference GPU in --inference-dtype (default: table)")
    mod = _profile_module()
    if mod is not None:
        mod.add_profile_args(c)


_COST_ONLY = ("requests", "input_tokens", "output_tokens", "train_gpu", "inference_gpu", "train_dtype",
              "inference_dtype", "mfu_train", "mfu_input", "mfu_output", "train_usd_per_hour",
              "inference_usd_per_hour", "train_peak_flop_per_s", "inference_peak_flop_per_s",
              "inference_profile", "train_profile")


def _flag(dest: str) -> str:
    return "--" + dest.replace("_", "-")


def _gpu_side(args, side: str) -> dict:
    """Price, peak and their sources for the 'train' or 'inference' GPU of the cost objective."""
    from bench.gpus import DTYPES, get_device, peak_flop_per_s

    gpu_name = getattr(args, f"{side}_gpu") or COST_DEFAULTS[f"{side}_gpu"]
    dtype = getattr(args, f"{side}_dtype") or COST_DEFAULTS[f"{side}_dtype"]
    peak = getattr(args, f"{side}_peak_flop_per_s")
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


def cost_settings_from_args(args) -> tuple["CostSettings", dict]:  # noqa: F821
    """Eq. 6 constants from the CLI (GPU table + MFUs, or calibration profiles), and their record."""
    from solver.optimize import CostSettings, usd_per_flop

    d = COST_DEFAULTS
    mfu = {k: getattr(args, f"mfu_{k}") if getattr(args, f"mfu_{k}") is not None else d[f"mfu_{k}"]
           for k in ("train", "input", "output")}
    tokens_in = args.input_tokens if args.input_tokens is not None else d["input_tokens"]
    tokens_out = args.output_tokens if args.output_tokens is not None else d["output_tokens"]
    if tokens_in + tokens_out <= 0:
        raise CliError("--input-tokens + --output-tokens is 0; need at least one token per request")

    prof_train = prof_in = prof_out = None
    record: dict = {"input_tokens_per_request": tokens_in, "output_tokens_per_request": tokens_out}
    mod = _profile_module()
    if mod is not None and (getattr(args, "inference_profile", None) or getattr(args, "train_profile", None)):
        try:
            prof_train, prof_in, prof_out, prov = mod.costs_from_profiles(args)
        except ValueError as exc:
            raise CliError(str(exc).splitlines()[0] if str(exc) else "bad profile") from None
        record["profiles"] = prov

    if prof_train is None:
        tr = _gpu_side(args, "train")
        train_usd_per_flop = usd_per_flop(tr["usd_per_h"], tr["peak_flop_per_s"]) / mfu["train"]
        record["train"] = tr | {"mfu": mfu["train"], "usd_per_useful_flop": train_usd_per_flop,
                                "formula": "usd_per_h / (3600 * peak_flop_per_s * mfu_train)"}
    else:
        train_usd_per_flop = prof_train
        record["train"] = {"usd_per_useful_flop": prof_train, "source": "--train-profile"}
    if prof_in is None or prof_out is None:
        inf = _gpu_side(args, "inference")
        c_inf = usd_per_flop(inf["usd_per_h"], inf["peak_flop_per_s"])
        input_usd, output_usd = c_inf / mfu["input"], c_inf / mfu["output"]
        record["inference"] = inf | {"mfu_input": mfu["input"], "mfu_output": mfu["output"],
                                     "usd_per_useful_flop_input": input_usd,
                                     "usd_per_useful_flop_output": output_usd,
                                     "formula": "usd_per_h / (3600 * peak_flop_per_s * mfu_phase)"}
    else:
        input_usd, output_usd = prof_in, prof_out
        record["inference"] = {"usd_per_useful_flop_input": prof_in, "usd_per_useful_flop_output": prof_out,
                               "source": "--inference-profile"}
    settings = CostSettings(train_usd_per_flop, input_usd, output_usd, tokens_in, tokens_out)
    return settings, record


def _plan_dict(plan, cost: bool) -> dict:
    out = {
        "params": float(plan.params),
        "train_tokens": float(plan.train_tokens),
        "tokens_per_param": float(plan.train_tokens / plan.params),
        "loss": float(plan.loss),
        "train_flop": float(plan.train_flop),
        "inference_flop": float(plan.inference_flop),
        "total_flop": float(plan.total_flop),
    }
    if cost:
        out |= {"train_cost_usd": float(plan.train_usd), "inference_cost_usd": float(plan.inference_usd),
                "total_cost_usd": float(plan.total_usd)}
    return out


def run_optimize(args) -> int:
    from solver.law import chinchilla_loss_for_params, resolve_law
    from solver.optimize import optimize_cost, optimize_flops

    try:
        law = resolve_law(args.law)
    except ValueError as exc:
        raise CliError(f"--law: {exc}") from None
    if args.loss is not None:
        target = args.loss
        if target <= law.E:
            raise CliError(f"--loss {target!r} is unreachable under law {law.name!r}: need a loss > E = {law.E!r} "
                           f"(the smallest reachable loss, approached only as N and D grow without bound)")
        upper = float(chinchilla_loss_for_params(law, 1.0))
        if target >= upper:
            # beyond this the "model" has fewer than one parameter: the law says nothing useful
            raise CliError(f"--loss {target!r} is at or above the loss of a 1-parameter Chinchilla-style model "
                           f"under law {law.name!r}; need {law.E!r} < loss < {upper:.6g}")
        quality = {"loss": target}
    else:
        target = float(chinchilla_loss_for_params(law, args.chinchilla_params))
        quality = {"chinchilla_params": args.chinchilla_params, "loss": target}

    if args.objective == "flops":
        given = [_flag(k) for k in _COST_ONLY if getattr(args, k, None) is not None]
        if given:
            raise CliError(f"{', '.join(given)}: applies only to --objective cost")
        if args.inference_tokens is None:
            raise CliError("--objective flops needs --inference-tokens T (a number >= 0)")
        comp = optimize_flops(target, args.inference_tokens, law)
        inputs = quality | {"inference_tokens": args.inference_tokens}
    else:
        if args.inference_tokens is not None:
            raise CliError("--inference-tokens only applies to --objective flops; use --requests R "
                           "with --input-tokens/--output-tokens")
        if args.requests is None:
            raise CliError("--objective cost needs --requests R (a number >= 0)")
        settings, record = cost_settings_from_args(args)
        comp = optimize_cost(target, args.requests, settings, law)
        inputs = quality | {"requests": args.requests, "inference_tokens": float(comp.inference_tokens)} | record

    cost = args.objective == "cost"
    result = {"objective": args.objective, **_plan_dict(comp.optimal, cost),
              "chinchilla": _plan_dict(comp.chinchilla, cost),
              "saving_fraction": float(comp.saving_fraction)}
    result["saving_usd" if cost else "saving_flop"] = float(comp.saving)
    result["law"] = law.as_dict()
    result["inputs"] = inputs
    result["provenance"] = {
        "kind": "computed",
        "tool": "python -m solver optimize",
        "method": ("Sardana et al. 2024 Eq. 6" if cost else "Sardana et al. 2024 Eq. 3")
        + ", solved exactly (Eq. 12 in ln y, safeguarded Halley); Chinchilla-style baseline minimises 6ND at equal loss",
        "flop_convention": "6N per training token, 2N per inference token",
    }
    if args.json:
        print(json.dumps(result))
    else:
        print(_format_optimize(result))
    return 0


def _si(value: float, unit: str = "") -> str:
    return f"{value:.4g}{unit}" if abs(value) < 1e3 else f"{value:.4e}{unit}"


def _format_optimize(r: dict) -> str:
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
    return "\n".join(lines)


# --------------------------------------------------------------------------- paper-tables


def add_paper_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print one JSON object with every entry")


def run_paper_tables(args) -> int:
    from solver import paper

    entries = paper.all_entries()
    factors = [paper.implied_inference_cost_factor(i) for i in range(len(paper.TABLE3))]
    if args.json:
        print(json.dumps({
            "entries": [{"table": e.table, "row": e.row, "label": e.label, "quantity": e.quantity,
                         "printed_text": e.printed_text, "printed": e.printed, "computed": e.computed,
                         "rel_diff": e.rel_diff, "status": e.status, "note": e.note} for e in entries],
            "table3_implied_inference_cost_factor": factors,
            "settings": {"law": "chinchilla", "table3": "A100-80GB $1.50/h bf16 312e12 MFU 0.5 (train); "
                         "A100-40GB $1.10/h int8 624e12 MFU 0.5 input / 0.01 output; 70 + 215 tokens/request"},
        }))
        return 0
    titles = {
        "table2": "Table 2 (Eq. 3): Chinchilla-style vs compute-optimal, law 'chinchilla'",
        "table3": "Table 3 (Eq. 6), settings of B.2/B.3: train A100-80GB $1.50/h bf16 MFU 0.5; "
                  "inference A100-40GB $1.10/h int8, MFU 0.5 input / 0.01 output; 70+215 tokens/request",
        "section2": "Section 2 worked numbers (Eq. 3)",
        "figure1": "Figure 1 caption (Eq. 3)",
        "section6": "Section 6 worked numbers (Eq. 3 and Eq. 6, B.2/B.3 settings)",
    }
    shown = []
    for table in ("table2", "table3", "section2", "figure1", "section6"):
        sel = [e for e in entries if e.table == table]
        shown.append(f"\n{titles[table]}")
        shown.append(f"  {'row':<46} {'quantity':<31} {'printed':>8} {'computed':>12} {'rel diff':>9}  status")
        for e in sel:
            comp = f"{100 * e.computed:.2f}%" if e.printed_text.endswith("%") else f"{e.computed:.4g}"
            shown.append(f"  {e.label:<46} {e.quantity:<31} {e.printed_text:>8} {comp:>12} {100 * e.rel_diff:>+8.2f}%  "
                         f"{e.status}{' - ' + e.note if e.note else ''}")
    shown.append("\nTable 3 diagnostic (not used by the solver): factor on the stated inference $/FLOP that "
                 "reproduces each row's printed cost-optimal params: " + ", ".join(f"{k:.3f}" for k in factors))
    shown.append("'ok': within 0.5 % or the printed rounding; 'typo': printed value off by 100x (see docs/solver.md); "
                 "'differs': see docs/solver.md, 'Table 3'.")
    print("\n".join(shown).lstrip("\n"))
    return 0


# --------------------------------------------------------------------------- dispatch

Subcommand = tuple[str, str, Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int]]

SUBCOMMANDS: list[Subcommand] = [
    ("optimize", "compute- or cost-optimal N*, D* for a loss and a demand (Eq. 3 / Eq. 6)", add_optimize_args, run_optimize),
    ("paper-tables", "recompute the paper's Tables 2 and 3 and worked numbers next to the printed ones",
     add_paper_args, run_paper_tables),
]

# (name, module, help): registered only if the module exists; it must define add_args(parser) and main(args) -> int.
_OPTIONAL_SUBCOMMANDS = [("report", "solver.report_cli", "deployment sizing report (Markdown/HTML/plots)")]


def _subcommands() -> list[Subcommand]:
    subs = list(SUBCOMMANDS)
    for name, module, help_text in _OPTIONAL_SUBCOMMANDS:
        if importlib.util.find_spec(module) is not None:
            mod = importlib.import_module(module)
            subs.append((name, help_text, mod.add_args, mod.main))
    return subs


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=PROG, description="Cost-optimal model size and training data (Sardana et al. 2024).")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_Parser)
    for name, help_text, add_args, run in _subcommands():
        p = sub.add_parser(name, help=help_text, description=help_text)
        add_args(p)
        p.set_defaults(_run=run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args._run(args) or 0)
    except (CliError, ValueError) as exc:
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        print(f"{PROG} {args.command}: error: {message}", file=sys.stderr)
        return 2
