"""The import rule (docs/architecture.md), enforced by import-linter's contracts in pyproject.toml:
pipeline -> solver -> calibrate | bench -> core (downward only; bench and calibrate independent; solver
never imports bench), and no import cycles among a package's subpackages and modules."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def test_import_contracts_are_kept():
    exe = Path(sys.executable).with_name("lint-imports")
    if not exe.exists():
        found = shutil.which("lint-imports")
        if found is None:
            pytest.fail("lint-imports not found: install the dev extra (pip install -e '.[dev]')")
        exe = Path(found)
    done = subprocess.run([str(exe), "--no-cache"], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "BROKEN" not in done.stdout


def test_contracts_name_every_layer():
    """The contracts cover the five packages; a new top-level package must be placed in the layers."""
    text = (REPO / "pyproject.toml").read_text(encoding="utf-8")
    assert 'layers = ["pipeline", "solver", "bench | calibrate", "core"]' in text
    assert 'root_packages = ["core", "bench", "calibrate", "solver", "pipeline"]' in text
    packages = {p.parent.name for p in REPO.glob("*/__init__.py")} - {"tests", "benchmarks", "scripts"}
    assert packages == {"core", "bench", "calibrate", "solver", "pipeline"}, packages
