"""`python -m bench operators`: measure this device's operator profile into
results/hardware/operators/<hardware>.json.

The file is written atomically and never over an existing one: an older profile is renamed
`<hardware>.replaced-<UTC>.json` (kept, core.files.set_aside). `--quick` (CI) times a small grid into
`<hardware>-quick.json` so it never displaces a full profile. Printing lives here only: a
progress line on stderr, a short table on stdout, and the written path as the last line.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from bench.operators.store import DEFAULT_MAX_SECONDS, DEFAULT_OUT, measure_into
from core.cli import bad_input, seconds

PROG = "python -m bench operators"


def add_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", default=str(DEFAULT_OUT), metavar="DIR",
                   help=f"directory of the profile (default {DEFAULT_OUT})")
    p.add_argument("--quick", action="store_true", help="a small grid for CI (seconds), written as *-operators-quick.json")
    p.add_argument("--max-seconds", type=seconds, default=DEFAULT_MAX_SECONDS, metavar="S",
                   help=f"wall-clock budget of the measurement (default {DEFAULT_MAX_SECONDS:g}); points that "
                        "would overrun it are skipped and listed in the file")
    p.add_argument("--device", choices=("cpu", "cuda", "auto"), default="auto",
                   help="cpu: vLLM's CPU ops; cuda: torch stand-ins on CUDA device 0; auto: cuda when torch sees one")


def _bad(message: str) -> int:
    return bad_input(PROG, message)


def _resolve_device(choice: str) -> str:
    if choice != "auto":
        return choice
    try:
        import torch

        return "cuda" if getattr(torch.version, "cuda", None) and torch.cuda.is_available() else "cpu"
    except ImportError:
        return "cpu"


def _fmt_s(t: float) -> str:
    if t < 1e-3:
        return f"{t * 1e6:.1f} µs"
    if t < 1.0:
        return f"{t * 1e3:.2f} ms"
    return f"{t:.2f} s"


def table_lines(profile) -> list[str]:
    """Points, skips, time range and implementation per operator (pure)."""
    from bench.hardware.hostload import host_load_lines
    from core.schema.operators import OPERATORS

    lines = [(f"{profile.name} ({profile.device_name}, {profile.device_kind}, {profile.threads} threads, "
              f"activations {profile.activation_dtype}): {len(profile.records)} points in "
              f"{profile.measurement_wall_s:.0f} s, {len(profile.skipped)} skipped")]
    lines += [f"  {line}" for line in host_load_lines(profile.provenance.other_cpu_share, profile.notes)]
    for op in OPERATORS:
        recs = profile.of(op)
        skipped = sum(1 for s in profile.skipped if s.op == op)
        if not recs and not skipped:
            continue
        if recs:
            lo, hi = min(r.median_s for r in recs), max(r.median_s for r in recs)
            impls = sorted({r.impl.split(" (")[0] for r in recs})
            lines.append(f"  {op:<18} {len(recs):>5} points {skipped:>4} skipped  {_fmt_s(lo):>10} .. "
                         f"{_fmt_s(hi):<10} {', '.join(impls)}")
        else:
            lines.append(f"  {op:<18} {0:>5} points {skipped:>4} skipped  ({profile.skipped[0].reason})")
    return lines


def run(args: argparse.Namespace) -> int:
    started = time.perf_counter()  # the budget covers the whole command, imports included
    from bench.operators import kernels
    from bench.operators.grid import full_grid, quick_grid

    out_dir = Path(args.out)
    if out_dir.exists() and not out_dir.is_dir():
        return _bad(f"--out {out_dir}: exists and is not a directory")
    budget = float(args.max_seconds)
    if not (budget > 0 and budget < float("inf")):
        return _bad(f"--max-seconds {args.max_seconds!r}: need a finite number of seconds > 0")
    device = _resolve_device(args.device)
    size = (quick_grid() if args.quick else full_grid()).size()
    tty = sys.stderr.isatty()
    step = max(1, size // 20)

    def progress(done: int, total: int, what: str) -> None:
        if done % step == 0 or done == total:
            end = "\r" if tty and done < total else "\n"
            print(f"{PROG}: {done}/{total} {what}"[:120].ljust(120 if tty else 0), end=end, file=sys.stderr, flush=True)

    try:
        left = max(1.0, budget - (time.perf_counter() - started))
        stored = measure_into(out_dir, device=device, quick=args.quick, budget_s=left, progress=progress)
    except kernels.KernelUnavailable as exc:
        if args.device == "auto" or device == "cpu" and "vLLM" in str(exc):
            print(f"{PROG}: {exc}; nothing written", file=sys.stderr)
            return 1
        return _bad(f"--device {args.device}: {exc}")
    for line in table_lines(stored.profile):
        print(line)
    if stored.kept is not None:
        print(f"(the earlier profile was kept as {stored.kept})")
    print(stored.path)
    return 0
