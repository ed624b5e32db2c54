"""docs/architecture.md's file map lists every module of the packages, and nothing that is not there."""

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("core", "bench", "calibrate", "solver", "pipeline")


def test_file_map_matches_the_tree():
    doc = (REPO / "docs" / "architecture.md").read_text(encoding="utf-8")
    listed = set(re.findall(r"^((?:%s)/[\w/]+\.py)\s" % "|".join(PACKAGES), doc, re.M))
    present = {str(p.relative_to(REPO)) for pkg in PACKAGES for p in (REPO / pkg).rglob("*.py")
               if p.name != "__init__.py"}
    assert not present - listed, f"modules missing from docs/architecture.md: {sorted(present - listed)}"
    assert not listed - present, f"docs/architecture.md lists modules that do not exist: {sorted(listed - present)}"


def test_no_folder_holds_more_than_twelve_modules():
    for pkg in PACKAGES:
        for folder in [REPO / pkg, *(p for p in (REPO / pkg).rglob("*") if p.is_dir())]:
            modules = [p for p in folder.glob("*.py") if p.name not in ("__init__.py", "__main__.py")]
            assert len(modules) <= 12, f"{folder.relative_to(REPO)} holds {len(modules)} modules flat"
