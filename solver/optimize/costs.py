"""Calibration profiles as solver input: dollars per useful FLOP of each phase.

A profile (`core.schema.profile.Profile`, written by `python -m calibrate profile`) carries the
*achieved* FLOP rate of prefill (input tokens) and decode (output tokens) on one piece of
hardware, under the paper's convention of 2·N flop per inference token, and the price of that
hardware. The paper's Eq. 6 needs, per phase, C_inf / MFU = dollars per useful FLOP:

    usd_per_flop = usd_per_h × device_count / 3600 / achieved_flop_per_s        (Eq. 6 constants)

where achieved_flop_per_s is the rate of all `device_count` devices together. The equivalent MFU
at the profile's peak, achieved / (peak × devices), is reported beside it (None when the profile
does not know its peak): the dollars per FLOP do not depend on which peak table is right.

A training profile (`--train-profile`) is read the same way, with one stated assumption: training
runs at the profile's *prefill* FLOP rate per device (the paper's 50 %/50 % convention treats
training and prefill alike: both are large dense matmuls). The 6·N training FLOP of Eq. 6 are then
priced at that rate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from core.files import sha256_file
from core.schema.profile import Profile
from solver.optimize.solve import usd_per_flop


class ProfileError(ValueError):
    """A profile file that cannot be used; the message is one line naming the file and the field."""


@dataclass(frozen=True)
class PhaseCosts:
    """Dollars per useful FLOP (paper convention) of each inference phase, from one profile."""

    usd_per_flop_input: float
    usd_per_flop_output: float
    achieved_flop_per_s_input: float  # all devices
    achieved_flop_per_s_output: float  # all devices, at the profile's operating concurrency
    mfu_input: float | None  # achieved / (peak * devices); None when the peak is unknown
    mfu_output: float | None
    peak_flop_per_s: float | None  # per device, of peak_dtype
    peak_dtype: str
    device_count: int
    usd_per_h: float  # per device-hour
    hardware_name: str
    model_name: str
    operating_concurrency: int | None


def load_profile(path: str | Path):
    """Read and validate a profile JSON file (`core.schema.profile.Profile.load`) -> `core.schema.profile.Profile`.

    Raises ProfileError with one line "profile FILE: FIELD: problem" on anything wrong, including a
    rate or price the solver divides by that is not a finite number > 0.
    """

    p = Path(path)
    try:
        profile = Profile.load(p)
    except ValueError as exc:
        msg = str(exc).splitlines()[0] if str(exc) else "invalid"
        if "kind" in msg:
            msg += " (a law file goes to --law, a run.json to `python -m calibrate profile`)"
        raise ProfileError(f"profile {msg}") from None
    _check_usable(profile, p)
    return profile


def _check_usable(profile, path: Path) -> None:
    """The numbers the solver divides by must be finite and positive."""
    checks = {
        "achieved_flop_per_s_input.value": profile.achieved_flop_per_s_input.value,
        "achieved_flop_per_s_output.value": profile.achieved_flop_per_s_output.value,
        "hardware.usd_per_h": profile.hardware.usd_per_h,
        "model.params_matmul": float(profile.model.params_matmul),
    }
    if profile.hardware.peak_flop_per_s is not None:
        checks["hardware.peak_flop_per_s"] = profile.hardware.peak_flop_per_s
    for i, pt in enumerate(profile.decode_curve):
        checks[f"decode_curve.{i}.achieved_flop_per_s"] = pt.achieved_flop_per_s
        checks[f"decode_curve.{i}.concurrency"] = float(pt.concurrency)
    for field, value in checks.items():
        if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
            raise ProfileError(f"profile {path}: {field}: must be a finite number > 0, got {value!r}")


def equivalent_mfu(achieved_flop_per_s: float, peak_flop_per_s: float | None, device_count: int) -> float | None:
    """achieved / (peak × devices): the MFU that gives the same dollars per FLOP at that peak."""
    if peak_flop_per_s is None:
        return None
    return achieved_flop_per_s / (peak_flop_per_s * device_count)


def phase_costs(profile, *, usd_per_h: float | None = None) -> PhaseCosts:
    """Dollars per useful FLOP of the input and output phases of a profile (pure).

    `usd_per_h` overrides the profile's price per device-hour (e.g. --inference-usd-per-hour).
    """
    hw = profile.hardware
    price = hw.usd_per_h if usd_per_h is None else usd_per_h
    a_in = profile.achieved_flop_per_s_input.value
    a_out = profile.achieved_flop_per_s_output.value
    return PhaseCosts(
        usd_per_flop_input=usd_per_flop(price * hw.device_count, a_in),  # all devices' price and rate
        usd_per_flop_output=usd_per_flop(price * hw.device_count, a_out),
        achieved_flop_per_s_input=a_in,
        achieved_flop_per_s_output=a_out,
        mfu_input=equivalent_mfu(a_in, hw.peak_flop_per_s, hw.device_count),
        mfu_output=equivalent_mfu(a_out, hw.peak_flop_per_s, hw.device_count),
        peak_flop_per_s=hw.peak_flop_per_s,
        peak_dtype=hw.peak_dtype,
        device_count=hw.device_count,
        usd_per_h=price,
        hardware_name=hw.name,
        model_name=profile.model.name,
        operating_concurrency=profile.operating_concurrency,
    )


def train_usd_per_flop_from_profile(profile, *, usd_per_h: float | None = None) -> float:
    """Training $/FLOP from a profile: assumption, training runs at the prefill FLOP rate."""
    hw = profile.hardware
    price = hw.usd_per_h if usd_per_h is None else usd_per_h
    return usd_per_flop(price * hw.device_count, profile.achieved_flop_per_s_input.value)


def train_profile_caution(profile) -> str | None:
    """Why an INT8 profile's prefill rate flatters training (None for other profiles)."""
    dtype = str(profile.hardware.peak_dtype)
    if not dtype.startswith("int8"):
        return None
    return (f"the profile's matmuls run in {dtype}: training in bf16 on the same device runs slower, by about "
            "its bf16/int8 peak ratio (typically 1/2 on GPUs), so this training price is a lower bound; give a "
            "bf16 profile or --train-gpu/--mfu-train instead")


def profile_provenance(profile, path: str | Path) -> dict:
    """What a result computed from this profile must carry to be traceable."""
    return {
        "path": str(path),
        "sha256": sha256_file(path),
        "hardware": profile.hardware.name,
        "kind": profile.hardware.kind,
        "device_name": profile.hardware.device_name,
        "device_count": profile.hardware.device_count,
        "model": profile.model.name,
        "quantization": profile.model.quantization,
        "usd_per_h": profile.hardware.usd_per_h,
        "usd_per_h_source": profile.hardware.usd_per_h_source,
        "peak_flop_per_s": profile.hardware.peak_flop_per_s,
        "peak_dtype": profile.hardware.peak_dtype,
        "peak_source": profile.hardware.peak_source,
        "created_utc": profile.provenance.created_utc,
        "inputs": profile.provenance.inputs,
        "tool": profile.provenance.tool,
    }


# --------------------------------------------------------------------------- CLI glue


def add_profile_args(parser) -> None:
    """`--inference-profile P` and `--train-profile P` for `python -m solver optimize|report`."""
    parser.add_argument(
        "--inference-profile",
        metavar="FILE",
        default=None,
        help="calibration profile JSON (python -m calibrate profile): its achieved prefill/decode FLOP "
        "rates and price replace --inference-gpu/--mfu-input/--mfu-output",
    )
    parser.add_argument(
        "--train-profile",
        metavar="FILE",
        default=None,
        help="calibration profile JSON whose prefill FLOP rate and price stand for training "
        "(assumption: training runs at the prefill rate); replaces --train-gpu/--mfu-train",
    )


def costs_from_profiles(args) -> tuple[float | None, float | None, float | None, dict]:
    """(train_usd_per_flop, input_usd_per_flop, output_usd_per_flop, provenance) from the CLI args.

    An entry is None where no profile was given for it (the caller keeps its GPU/MFU path).
    `args.inference_usd_per_hour` / `args.train_usd_per_hour`, if present and set, override
    the profile's price. Raises ProfileError (one line) on a bad file.
    """
    provenance: dict = {}
    train = inp = out = None
    inf_path = getattr(args, "inference_profile", None)
    if inf_path:
        prof = load_profile(inf_path)
        costs = phase_costs(prof, usd_per_h=getattr(args, "inference_usd_per_hour", None))
        inp, out = costs.usd_per_flop_input, costs.usd_per_flop_output
        provenance["inference_profile"] = profile_provenance(prof, inf_path) | {
            "usd_per_flop_input": inp,
            "usd_per_flop_output": out,
            "mfu_input_equivalent": costs.mfu_input,
            "mfu_output_equivalent": costs.mfu_output,
            "usd_per_h_used": costs.usd_per_h,
            "formula": "usd_per_h * device_count / 3600 / achieved_flop_per_s (paper convention, 2N flop/token)",
        }
    train_path = getattr(args, "train_profile", None)
    if train_path:
        prof = load_profile(train_path)
        train = train_usd_per_flop_from_profile(prof, usd_per_h=getattr(args, "train_usd_per_hour", None))
        provenance["train_profile"] = profile_provenance(prof, train_path) | {
            "usd_per_flop_train": train,
            "assumption": "training runs at the profile's prefill (input) FLOP rate per device",
        }
        caution = train_profile_caution(prof)
        if caution:
            provenance["train_profile"]["caution"] = caution
    return train, inp, out, provenance
