"""The HTML report in a real browser (headless Chromium, solver.report.output.browser): every image decodes,
nothing scripted runs, tables fit a 1280-px page, a PNG of the page is written beside it, and the
Markdown and the HTML carry the same numbers.

Chromium comes from scripts/setup.sh (Debian's `chromium`). Without it these tests skip on a
developer's machine and fail under CI (env CI set), where setup must have installed it.
"""

from __future__ import annotations

import os
import re
import struct
from collections import Counter
from pathlib import Path

import pytest
from solver_synthetic import overhead_model, synthetic_profile

from solver.optimize.laws import LossLaw, chinchilla_loss_for_params, get_law
from solver.report.compute import ReportInputs, compute_solution
from solver.report.output import browser as report_browser
from solver.report.output.plots import make_plots
from solver.report.output.render import CSP, build_document, to_html, to_markdown
from solver.report.output.write import PNG, write_report

ROOT = Path(__file__).resolve().parents[1]
MARK = "__infercost_pwned"
EVIL_MODEL = f"<script>window.{MARK}=1;alert(1)</script>"
EVIL_LAW = f'"><img src=x onerror="window.{MARK}=2;alert(2)">'
EVIL_TITLE = f"</title><script>window.{MARK}=3</script>"
PWNED = f"window.{MARK} === undefined ? null : window.{MARK}"


@pytest.fixture(scope="module")
def chromium() -> str:
    exe = report_browser.find_chromium()
    if exe is None:
        msg = "no chromium on PATH: scripts/setup.sh installs Debian's chromium (apt-get install -y chromium)"
        if os.environ.get("CI"):
            pytest.fail("CI: " + msg)
        pytest.skip(msg)
    return exe


@pytest.fixture(scope="module")
def hostile_report(tmp_path_factory, chromium):
    """A report whose model name, law name and title are markup, written as `solver report` writes it."""
    base = get_law("chinchilla")
    law = LossLaw(EVIL_LAW, base.A, base.B, base.E, base.alpha, base.beta, "test: a hostile law name")
    prof = synthetic_profile(model_name=EVIL_MODEL, curve={1: 0.004, 4: 0.015, 16: 0.05, 64: 0.11},
                             performance_model=overhead_model())
    inputs = ReportInputs(target_loss=float(chinchilla_loss_for_params(base, 30e9)), requests=17.5e9,
                          train_usd_per_flop=1.5 / 3600 / (312e12 * 0.5), train_description={"gpu": "a100"},
                          law=law, chinchilla_params=30e9, map_points=7)
    sol = compute_solution(inputs, prof, {"path": "synthetic", "model": EVIL_MODEL})
    sol.report_name = EVIL_TITLE
    images = make_plots(sol)
    doc = build_document(sol, EVIL_TITLE, list(images))
    out = write_report(tmp_path_factory.mktemp("reports"), "hostile", sol, to_markdown(doc),
                       to_html(doc, images, EVIL_TITLE), images)
    return out, images


@pytest.fixture(scope="module")
def page(hostile_report):
    out, _ = hostile_report
    return report_browser.inspect_page(out / "report.html", expressions={"pwned": PWNED})


def test_every_image_decodes(page, hostile_report):
    _, images = hostile_report
    imgs = page.probe["images"]
    assert len(imgs) == len(images) >= 5
    for im in imgs:
        assert im["complete"] and im["natural_width"] > 0 and im["natural_height"] > 0, im


def test_nothing_scripted_runs_and_the_names_are_text(page):
    assert page.values["pwned"] is None
    assert not page.dialogs and not page.console and not page.exceptions
    assert page.probe["scripts"] == 0 and page.probe["on_attributes"] == []
    text = page.probe["text"]
    assert EVIL_MODEL in text and EVIL_LAW in text and EVIL_TITLE in text  # shown as written, as text
    assert page.probe["title"] == EVIL_TITLE


def test_escaping_alone_stops_scripts(hostile_report, tmp_path, chromium):
    """The CSP is a second guard: without it, html.escape alone still lets nothing run."""
    out, _ = hostile_report
    html_text = (out / "report.html").read_text()
    meta = f'<meta http-equiv="Content-Security-Policy" content="{CSP.replace(chr(39), "&#x27;")}">'
    assert meta in html_text
    bare = tmp_path / "no-csp.html"
    bare.write_text(html_text.replace(meta, ""))
    rep = report_browser.inspect_page(bare, expressions={"pwned": PWNED})
    assert rep.values["pwned"] is None and not rep.scripted
    assert EVIL_MODEL in rep.probe["text"]


def test_tables_fit_the_page_at_1280_px(page):
    pr = page.probe
    assert pr["viewport_width"] == report_browser.WIDTH_PX
    assert pr["page_width"] <= pr["viewport_width"], "the page scrolls sideways"
    assert pr["tables"]
    for t in pr["tables"]:
        assert t["right"] <= pr["content_right"] + 0.5 and t["scroll_width"] <= t["width"] + 1, t
    for im in pr["images"]:
        assert im["right"] <= pr["content_right"] + 0.5, im


def test_png_of_the_rendered_page_is_written_beside_it(hostile_report, page):
    out, _ = hostile_report
    data = (out / PNG).read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])  # IHDR
    assert width == report_browser.WIDTH_PX and height == pytest.approx(page.probe["page_height"], abs=2)
    from PIL import Image  # matplotlib's dependency

    with Image.open(out / PNG) as im:
        gray = im.convert("L")
        assert gray.getextrema()[0] < 100 < 200 < gray.getextrema()[1]  # dark text on a light page, not blank
        assert len(gray.getcolors(256)) > 50


def test_the_checks_can_fail(tmp_path, chromium):
    """A page with a live script, an event handler, a broken image and a wide table: each check sees it."""
    bad = tmp_path / "bad.html"
    bad.write_text("<!DOCTYPE html><html><body style='margin:0'>"
                   f"<script>window.{MARK}=1; console.log('ran')</script>"
                   f"<img src='data:image/png;base64,AAAA' onerror='window.{MARK}=2'>"
                   "<table><tr><td style='white-space:nowrap'>" + "wide " * 400 + "</td></tr></table>"
                   "</body></html>")
    rep = report_browser.inspect_page(bad, expressions={"pwned": PWNED})
    assert rep.values["pwned"] == 2 and rep.console == ["ran"] and rep.scripted
    assert rep.probe["images"][0]["natural_width"] == 0
    assert rep.probe["page_width"] > report_browser.WIDTH_PX
    alert = tmp_path / "alert.html"
    alert.write_text("<html><body><p>x</p><script>alert('hi')</script></body></html>")
    assert report_browser.inspect_page(alert).dialogs == ["hi"]  # a dialog is seen and dismissed


_NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")


def _numbers(text: str) -> Counter:
    return Counter(_NUMBER.findall(text))


def test_markdown_and_html_carry_the_same_numbers(hostile_report, page):
    out, _ = hostile_report
    md = (out / "report.md").read_text()
    md = re.sub(r"!\[[^\]]*\]\([^)]*\)", "", md)  # image links: the HTML shows the picture, not its name
    md = md.replace("&lt;", "<").replace("\\|", "|")  # Markdown's escapes, as a Markdown viewer shows them
    html_text = page.probe["text"]  # the text the browser rendered
    assert _numbers(md) == _numbers(html_text)
    assert len(_numbers(md)) > 100


@pytest.mark.parametrize("report", sorted((ROOT / "results" / "reports").glob("*/report.html")),
                         ids=lambda p: p.parent.name[:40])
def test_committed_reports_render(report, chromium):
    rep = report_browser.inspect_page(report)
    pr = rep.probe
    assert not rep.scripted
    assert pr["images"] and all(im["natural_width"] > 0 for im in pr["images"])
    assert pr["page_width"] <= pr["viewport_width"]
    for t in pr["tables"]:
        assert t["right"] <= pr["content_right"] + 0.5, (report, t)


def test_without_chromium_the_report_is_written_with_a_note(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("INFERCOST_CHROMIUM", str(tmp_path / "no-such-browser"))
    assert report_browser.find_chromium() is None
    out = write_report(tmp_path, "r", {"x": 1.0}, "md", "<p>h</p>", {})
    assert (out / "report.html").is_file() and not (out / PNG).exists()
    err = capsys.readouterr().err
    assert f"{PNG} not written: no chromium" in err and "scripts/setup.sh" in err
    with pytest.raises(report_browser.BrowserError, match="no chromium"):
        report_browser.inspect_page(out / "report.html")
