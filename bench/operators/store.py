"""Where a device's operator profile lives, and measuring one into it (the typed call the pipeline
and `python -m bench operators` share).

`results/hardware/operators/<hardware>.json` (`<hardware>-quick.json` for the small CI grid). A file
is never overwritten: with `reuse` an existing profile of this device is returned as it is (the
pipeline: measured once per host, then reused); without it the older one is set aside as
`<hardware>.replaced-<UTC>.json` (core.files.set_aside) and the new one written atomically.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from bench.operators import kernels
from bench.operators.grid import full_grid, quick_grid
from bench.operators.measure import Progress, device_identity, measure_profile
from core.files import set_aside, write_atomic
from core.schema.operators import OperatorProfile, load_profile, profile_to_json

DEFAULT_OUT = Path("results/hardware/operators")
DEFAULT_MAX_SECONDS = 170.0


@dataclass(frozen=True)
class Stored:
    """A profile and its file: `reused` when it was there already; `kept` the set-aside older file."""

    path: Path
    profile: OperatorProfile
    reused: bool = False
    kept: Path | None = None


def profile_path(out_dir: str | Path, name: str, quick: bool = False) -> Path:
    return Path(out_dir) / f"{name}{'-quick' if quick else ''}.json"


def measure_into(out_dir: str | Path = DEFAULT_OUT, *, device: str = "cpu", quick: bool = False,
                 budget_s: float = DEFAULT_MAX_SECONDS, reuse: bool = False,
                 progress: Progress | None = None) -> Stored:
    """The operator profile of this `device` ("cpu" | "cuda") under `out_dir`: the stored one when
    `reuse` and it exists, else measured within `budget_s` and written. KernelUnavailable (one line)
    when the device or vLLM's CPU ops are missing; OperatorProfileError when a reused file is bad."""
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise NotADirectoryError(f"{out_dir}: exists and is not a directory")
    env = kernels.open_env(device)
    path = profile_path(out_dir, device_identity(env)["name"], quick)
    if reuse and path.is_file():
        return Stored(path, load_profile(path), reused=True)
    profile = measure_profile(quick_grid() if quick else full_grid(), device=device, budget_s=budget_s,
                              progress=progress, env=env)
    path = profile_path(out_dir, profile.name, quick)
    kept = set_aside(path)
    write_atomic(path, profile_to_json(profile))
    return Stored(path, profile, kept=kept)
