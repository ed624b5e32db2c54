"""Writing a sizing report: results/reports/<name>/ with solution.json, report.md, report.html, PNGs.

The directory is built under a temporary name in the parent and renamed into place, so a
half-written report never appears; an existing report is never overwritten (the new one takes the
first free suffix -2, -3, ...). solution.json is a `solver.report.schema.Solution` (strict JSON: its
models refuse NaN and infinities; a plain dict, written as it is, has them made null first). report.png is report.html as headless Chromium renders it at 1280 px
(`solver.report.output.browser`), written when a chromium is installed (scripts/setup.sh installs Debian's);
without one the report is written without it and a note on stderr says so.
"""

from __future__ import annotations

import math
import os
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

from core.files import safe_name
from solver.report.output import browser as report_browser
from solver.report.schema import Solution


def report_dirname(name: str) -> str:
    """A safe directory name for a report: core.files.safe_name, at most 120 characters."""
    return safe_name(name)[:120]


def free_dir(parent: Path, name: str) -> tuple[Path, bool]:
    """parent/name, or parent/name-2, -3, ... if taken; (path, suffixed). A directory name keeps its dots
    (core.files.free_path would put the suffix before a file's extension)."""
    cand = parent / name
    k = 2
    while cand.exists():
        cand = parent / f"{name}-{k}"
        k += 1
    return cand, cand.name != name


def finite_or_none(o):
    """NaN and infinities become null (JSON has neither); recursive over dicts and lists, numpy scalars too."""
    if isinstance(o, np.generic):
        o = o.item()
    if isinstance(o, np.ndarray):
        o = o.tolist()
    if isinstance(o, float):
        return o if math.isfinite(o) else None
    if isinstance(o, dict):
        return {k: finite_or_none(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [finite_or_none(v) for v in o]
    return o


def solution_json(solution) -> str:
    """solution.json's text: a Solution's JSON; a dict is validated as a Solution when it is one (kind
    sizing_report), else written as strict JSON."""
    import json

    if isinstance(solution, Solution):
        return solution.model_dump_json(indent=1) + "\n"
    clean = finite_or_none(solution)
    if clean.get("kind") == Solution.model_fields["kind"].default:
        return Solution.model_validate(clean).model_dump_json(indent=1) + "\n"
    return json.dumps(clean, indent=1, allow_nan=False) + "\n"


PNG = "report.png"


def write_png(html_path: Path, png_path: Path) -> str | None:
    """Render html_path to png_path in headless Chromium; None when written, else a one-line note why not."""

    if report_browser.find_chromium() is None:
        return (f"{PNG} not written: no chromium on PATH (scripts/setup.sh installs Debian's chromium; "
                f"or set INFERCOST_CHROMIUM)")
    try:
        report_browser.screenshot(html_path, png_path)
    except report_browser.BrowserError as exc:
        return f"{PNG} not written: {exc}"
    return None


def write_report(parent: Path, dirname: str, solution, markdown: str, html_text: str,
                 images: dict[str, bytes], *, png: bool = True) -> Path:
    """Write all files into a temp dir under parent, then rename it to a free name (never overwrites).
    With png, also report.png (the page in headless Chromium) when a chromium is installed."""
    parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dirname}.tmp-", dir=parent))
    try:
        (tmp / "solution.json").write_text(solution_json(solution))
        (tmp / "report.md").write_text(markdown)
        (tmp / "report.html").write_text(html_text)
        for fname, data in images.items():
            (tmp / fname).write_bytes(data)
        if png:
            note = write_png(tmp / "report.html", tmp / PNG)
            if note:
                print(note, file=sys.stderr)
        os.chmod(tmp, 0o755)
        while True:
            final, suffixed = free_dir(parent, dirname)
            try:
                os.rename(tmp, final)  # fails if `final` appeared meanwhile and is non-empty
                break
            except OSError:
                if not final.exists():
                    raise
        if suffixed:
            print(f"{parent / dirname} exists; wrote {final.name} instead (reports are never overwritten)",
                  file=sys.stderr)
        return final
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
