"""The report opened in a real headless Chromium (Debian's ``chromium``,
driven by Playwright through its executable): it loads with no console
error, fetches nothing, shows the checkpoint's resources and statuses, and
runs no markup planted in the bank."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from protectflow import cli
from tests import needs
from tests.report.test_report import PLANTED, failed_checkpoint

CHROMIUM = shutil.which("chromium")

pytestmark = needs.tool("chromium", "chromium")


def open_report(path: Path) -> tuple[dict[str, Any], list[str], list[str]]:
    """What the browser shows of ``path``: the page's facts, its console
    errors and uncaught exceptions, and every URL it asked for."""
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason=f"playwright {needs.TEST_EXTRA}")
    errors: list[str] = []
    requests: list[str] = []
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run"])
        try:
            page = browser.new_page()
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(f"uncaught: {e}"))
            page.on("request", lambda r: requests.append(r.url))
            page.goto(path.as_uri())
            page.wait_for_selector("body[data-ready='1']")
            rows = page.eval_on_selector_all(
                "#resources tbody tr",
                "rows => rows.map(r => Array.from(r.cells, c => c.textContent))")
            # A click on a box marks its resource's row (the page's own script runs).
            page.click("g.res[data-key='OS::Cinder::Volume#data']")
            marked = page.eval_on_selector_all("tr.hl", "rows => rows.map(r => r.dataset.key)")
            facts = {"rows": rows, "marked": marked, "title": page.title(),
                     "pwned": page.evaluate("typeof window.pwned"),
                     "text": page.inner_text("body"), "boxes": page.locator("g.res").count()}
        finally:
            browser.close()
    return facts, errors, requests


def test_the_report_opens_in_chromium_and_shows_the_resources(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    checkpoint = failed_checkpoint(tmp_path / "bank")
    out = tmp_path / "report.html"
    assert cli.main(["report", checkpoint.id, "--bank", str(tmp_path / "bank"),
                     "-o", str(out)]) == 0
    facts, errors, requests = open_report(out)
    assert errors == []
    assert requests == [out.as_uri()]  # self-contained: nothing else fetched
    statuses = {row[0]: row[2] for row in facts["rows"]}
    assert statuses == {key: s.status for key, s in checkpoint.resources.items()}
    assert statuses["OS::Cinder::Volume#data"] == "error"
    assert facts["marked"] == ["OS::Cinder::Volume#data"]
    assert facts["title"] == f"protectflow report: checkpoint {checkpoint.id}"
    assert facts["boxes"] == 3 + 12  # the resource graph's boxes and the hook DAG's
    # The planted markup is text on the page, and ran nothing.
    assert facts["pwned"] == "undefined"
    assert facts["text"].count(PLANTED) >= 2
