"""The dashboard in a real browser: headless Chromium (Debian's ``chromium``, which ``.ci/run`` installs) driven by
Playwright (its own browsers are never downloaded: ``executable_path`` points at Debian's)."""

from __future__ import annotations

import io
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from serve_support import TOKEN, running_server, serve_args
from system_needs import require_system

pytestmark = pytest.mark.slow

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
SCREENSHOT = os.environ.get("EDGEAFF_DASHBOARD_SCREENSHOT")  # where to keep the screenshot (docs/dashboard.png)


@pytest.fixture(scope="module")
def chromium() -> str:
    require_system(None if Path(CHROMIUM).exists() else "Debian's chromium is not installed (apt-get install chromium)")
    return CHROMIUM


def test_the_dashboard_loads_cleanly_and_its_traces_move(chromium: str, serve_bundle, face_clip) -> None:
    from playwright.sync_api import sync_playwright

    problems: list[str] = []
    args = serve_args(serve_bundle, face_clip, "--loop")
    with running_server(args, env={"EDGEAFF_SERVE_TOKEN": TOKEN}) as server, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            page.on("console", lambda m: problems.append(f"{m.type}: {m.text}") if m.type in ("error", "warning")
                    else None)  # fmt: skip
            page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
            page.on("requestfailed", lambda r: problems.append(f"request failed: {r.url}"))
            page.goto(server.url + f"?token={TOKEN}")
            page.wait_for_function("() => window.edgeaffDashboard && window.edgeaffDashboard.received() > 10",
                                   timeout=60_000)  # fmt: skip
            page.wait_for_function("() => document.getElementById('state').textContent === 'running'",
                                   timeout=30_000)  # fmt: skip
            page.wait_for_function("() => document.getElementById('preview').naturalWidth > 0", timeout=30_000)
            first = page.evaluate("() => window.edgeaffDashboard.received()")
            traces_before = page.locator("#traces canvas").screenshot()
            page.wait_for_timeout(1500)
            after = page.evaluate("() => window.edgeaffDashboard.received()")
            traces_after = page.locator("#traces canvas").screenshot()
            assert after > first  # predictions keep arriving
            assert traces_after != traces_before  # and the traces are redrawn with them
            frames = int(page.locator("#frames").text_content() or "0")
            assert frames > 0
            assert page.locator("#valence").text_content() not in ("", "–")
            shot = page.screenshot(full_page=True)
        finally:
            browser.close()
    assert problems == []
    picture = np.asarray(Image.open(io.BytesIO(shot)).convert("RGB"))
    assert picture.shape[0] >= 900 and picture.shape[1] == 1200
    assert picture.std() > 20  # not blank
    assert len(np.unique(picture.reshape(-1, 3), axis=0)) > 500  # a photo, charts and text, not a flat page
    # the preview shows the frame: plenty of distinct colours where the image is
    box = page_box = picture[150:520, 40:650]
    assert box.std() > 30 and page_box.mean() > 20
    if SCREENSHOT:
        Path(SCREENSHOT).write_bytes(shot)


def test_the_dashboard_without_the_token_is_refused(chromium: str, serve_bundle, face_clip) -> None:
    from playwright.sync_api import sync_playwright

    with running_server(serve_args(serve_bundle, face_clip), env={"EDGEAFF_SERVE_TOKEN": TOKEN}) as server, \
            sync_playwright() as playwright:  # fmt: skip
        browser = playwright.chromium.launch(executable_path=chromium, headless=True)
        try:
            page = browser.new_page()
            response = page.goto(server.url)
            assert response is not None and response.status == 401
            assert page.content().count("unauthorized") == 1 and "valence" not in page.content()
        finally:
            browser.close()
