"""`python -m calibrate predict PROFILE ...`: closed-loop figures of any model on a profile's hardware.

    python -m calibrate predict PROFILE (--model DIR | --params N [--layers L --hidden D --kv-heads K
        --head-dim H --vocab V]) --input-tokens P --output-tokens G --concurrency 1,4,16
        [--from forms|operators] [--json]

A contract other tools call: with --json, one object with `points`, one per concurrency, each with
`concurrency`, `output_tokens_per_s`, `input_tokens_per_s`, `ttft_s`, `tpot_s`, `usd_per_request`
and `<key>_interval: [low, high]` (95 %, from the profile's bootstrap refits; with `--from operators`
the range over the fits leaving one ladder size out; `interval_method` says which). The figures are
defined as in run.json's `summary` of a closed-loop run of the same workload (a steady state of
8 waves of requests). --model reads the shape from a checkpoint's config.json; otherwise the
shape is a real one near N by the stated assumption (core.physics.ShapeAssumption, made whole by
core.dims.real_dims_for_params: whole layers and heads; `params_requested` is the N asked,
`shape.params_matmul` the real shape's), where any of --layers/--hidden/--kv-heads/--head-dim/--vocab
pins that part of it.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

from calibrate.operators.interpolate import OperatorTable
from calibrate.operators.predict import INTERVAL_METHOD, check_usable, operator_points
from calibrate.operators.validate import dims_of_shape
from calibrate.perfmodel.build import predict_points
from core.cli import int_list, positive_float, positive_int
from core.dims import params_of, real_dims_for_params
from core.errors import BadFile
from core.files import sha256_file
from core.physics import ShapeAssumption, model_info_from_dir, shape_for_params, shape_of
from core.schema.operators import load_profile
from core.schema.profile import Profile

NAME = "predict"
HELP = "predict throughput, TTFT, TPOT and $/request of any model size from a profile's performance model"


def _params(text: str) -> float:
    v = positive_float(text)
    if v < 1e3 or v > 1e15:
        raise argparse.ArgumentTypeError(f"{text!r}: must be a parameter count between 1e3 and 1e15")
    return v


def add_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("profile", type=Path, metavar="PROFILE", help="a profile with a performance model (calibrate profile --ladder)")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--model", type=Path, default=None, metavar="DIR", help="checkpoint directory (shape from its config.json)")
    src.add_argument("--params", type=_params, default=None, metavar="N", help="matmul parameters (shape from N by the assumption)")
    g = p.add_argument_group("shape pins for --params")
    g.add_argument("--layers", type=positive_int, default=None)
    g.add_argument("--hidden", type=positive_int, default=None)
    g.add_argument("--kv-heads", type=positive_int, default=None)
    g.add_argument("--head-dim", type=positive_int, default=None)
    g.add_argument("--vocab", type=positive_int, default=None)
    p.add_argument("--input-tokens", type=positive_int, required=True, metavar="P")
    p.add_argument("--output-tokens", type=positive_int, required=True, metavar="G")
    p.add_argument("--concurrency", type=int_list, default=[1, 4, 16], metavar="1,4,16")
    p.add_argument("--usd-per-hour", type=positive_float, default=None, help="price per device-hour (default: the profile's)")
    p.add_argument("--from", dest="source", choices=("forms", "operators"), default="forms",
                   help="forms: the profile's chosen step-time form (default); operators: the device's operator "
                        "profile composed into steps, with the overheads the profile's operator check fitted")
    p.add_argument("--json", action="store_true", help="print one JSON object (the contract above)")


def _shape(args: argparse.Namespace, pm):
    pins = {"num_layers": args.layers, "hidden_size": args.hidden, "num_kv_heads": args.kv_heads,
            "head_dim": args.head_dim, "vocab_size": args.vocab}
    if args.model is not None:
        if any(v is not None for v in pins.values()):
            raise BadFile(None, "--layers/--hidden/--kv-heads/--head-dim/--vocab", "only with --params (a --model's config gives the shape)")
        if not (args.model / "config.json").is_file():
            raise BadFile(args.model, None, "not a model directory (no config.json)")
        try:
            info = model_info_from_dir(args.model, name=args.model.name)
        except (ValueError, OSError) as exc:
            raise BadFile(args.model / "config.json", None, str(exc)) from None
        return shape_of(info, pm.kv_dtype_bytes)
    hd = args.head_dim
    hidden = args.hidden
    if hidden is not None and hd is not None and hidden % hd:
        raise BadFile(None, "--hidden", f"{hidden} is not a multiple of --head-dim {hd}")
    a = ShapeAssumption(kv_dtype_bytes=pm.kv_dtype_bytes)
    try:  # a real shape: whole layers and heads (core.dims), its own N within the rounding of the one asked
        d = real_dims_for_params(args.params, a, **{k: v for k, v in pins.items() if v is not None})
        return shape_for_params(params_of(d), a, num_layers=d.layers, hidden_size=d.hidden,
                                num_kv_heads=d.kv_heads, head_dim=d.head_dim, vocab_size=d.vocab)
    except ValueError as exc:
        raise BadFile(None, "--params", str(exc)) from None


def _load(path: Path):
    profile = Profile.load(path)
    if getattr(profile, "performance_model", None) is None:
        raise BadFile(path, "performance_model", "this profile has none (build one from a ladder: "
                         "python -m calibrate profile RUNS_OF_SEVERAL_SIZES --ladder)")
    return profile


def run(args: argparse.Namespace) -> dict:
    profile = _load(args.profile)
    pm = profile.performance_model
    shape = _shape(args, pm)
    usd = args.usd_per_hour if args.usd_per_hour is not None else profile.hardware.usd_per_h
    source = getattr(args, "source", "forms")
    if source == "operators":
        points = _operator_points(args.profile, pm, shape, args, usd, profile.hardware.device_count)
        form, interval_method = "operators", INTERVAL_METHOD
        split = pm.operator_check.error_split.get("all", {})
        held = {k: (split[k].error_max if k in split else None) for k in ("output_tokens_per_s", "usd_per_request")}
        warning = (f"the operator check's held-out error (each ladder size left out, terms chosen without it): "
                   f"output tok/s worst {held['output_tokens_per_s']:.0%}"
                   if (held["output_tokens_per_s"] or 0) > pm.target_error else None)
        provenance = ("predicted: the device's operator profile composed into steps + the overheads the profile's "
                      "operator check fitted (closed-loop simulation of continuous batching)")
    else:
        points = predict_points(pm, shape, input_tokens=args.input_tokens, output_tokens=args.output_tokens,
                                concurrencies=args.concurrency, usd_per_h=usd,
                                devices=profile.hardware.device_count)
        form, interval_method = pm.form, "95 % of the profile's bootstrap refits"
        held, warning = pm.held_out_max_abs_error, pm.warning
        provenance = "predicted: performance model of the profile (closed-loop simulation of continuous batching)"
    return {
        "kind": "prediction",
        "schema_version": 1,
        "profile": str(args.profile),
        "hardware": profile.hardware.name,
        "usd_per_h": usd,
        "form": form,
        "interval_method": interval_method,
        "held_out_max_abs_error": held,
        "warning": warning,
        "shape": {k: getattr(shape, k) for k in ("params_matmul", "num_layers", "hidden_size", "num_heads",
                                                  "num_kv_heads", "head_dim", "vocab_size", "weight_bytes_read",
                                                  "kv_bytes_per_token", "source")},
        "params_requested": args.params,  # --params as given (None with --model); shape.params_matmul is the real shape's
        "input_tokens": args.input_tokens,
        "output_tokens": args.output_tokens,
        "points": points,
        "provenance": provenance,
    }


def _operator_points(profile_path: Path, pm, shape, args: argparse.Namespace, usd, devices: int) -> list[dict]:
    """The points from the operator profile named by the profile's operator check (BadFile: one line)."""
    try:
        check = check_usable(pm.operator_check)
    except ValueError as exc:
        raise BadFile(profile_path, "performance_model.operator_check", str(exc)) from None
    ops = Path(check.operator_profile)
    if not ops.is_file():
        raise BadFile(ops, None, "the operator profile the check was made with is not here "
                                 "(python -m bench operators, or run from the directory the profile was made in)")
    if sha256_file(ops) != check.sha256:
        raise BadFile(ops, None, "changed since the profile's operator check was made (sha256 differs); "
                                 "run calibrate profile again")
    try:
        return operator_points(check, OperatorTable(load_profile(ops).records), dims_of_shape(shape),
                               input_tokens=args.input_tokens, output_tokens=args.output_tokens,
                               concurrencies=args.concurrency, usd_per_h=usd, devices=devices,
                               max_num_seqs=pm.scheduler.max_num_seqs,
                               max_num_batched_tokens=pm.scheduler.max_num_batched_tokens)
    except ValueError as exc:  # a shape off the operator grid (OperatorGridError), dims that are not whole
        raise BadFile(None, "--model/--params", str(exc)) from None


def _fmt(x, spec=".4g") -> str:
    return "-" if x is None or (isinstance(x, float) and not math.isfinite(x)) else format(x, spec)


def _table(out: dict) -> str:
    lines = []
    if out["warning"]:
        lines.append(f"WARNING: {out['warning']}")
    s = out["shape"]
    lines.append(f"{out['hardware']}: N = {s['params_matmul']:.4g} ({s['num_layers']:.3g} layers, hidden "
                 f"{s['hidden_size']:.4g}), {out['input_tokens']} in / {out['output_tokens']} out tokens, "
                 f"form {out['form']} (predicted)")
    lines.append(f"{'conc':>5} {'out tok/s':>22} {'TTFT s':>22} {'TPOT s':>22} {'$/request':>26}")
    for p in out["points"]:
        def cell(k):
            iv = p.get(f"{k}_interval")
            return f"{_fmt(p[k])} [{_fmt(iv[0], '.3g')}, {_fmt(iv[1], '.3g')}]" if iv else _fmt(p[k])
        lines.append(f"{p['concurrency']:>5} {cell('output_tokens_per_s'):>22} {cell('ttft_s'):>22} "
                     f"{cell('tpot_s'):>22} {cell('usd_per_request'):>26}")
    return "\n".join(lines)


def main(args: argparse.Namespace) -> int:
    out = run(args)
    print(json.dumps(out, indent=2, allow_nan=False) if args.json else _table(out))
    return 0
