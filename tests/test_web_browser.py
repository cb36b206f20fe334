"""End to end in a real browser: Debian's headless Chromium, driven by Playwright, against
`brushwork serve`'s app under uvicorn on a free loopback port.

The test uploads two small pictures, starts a tiny job, watches the live preview change,
waits for the result, downloads it, and leaves a screenshot (web.png in its tmp folder;
the README's docs/images/web.png is a copy of one).
"""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import pytest
from PIL import Image

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium")
pytest.importorskip("fastapi", reason="the web extra is not installed")
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
import uvicorn  # noqa: E402

from brushwork.options import SETTINGS  # noqa: E402
from brushwork.web.app import create_app  # noqa: E402


@pytest.fixture
def server_url(tmp_path):
    """The app served by uvicorn in a thread, as a real server on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = uvicorn.Config(create_app(tmp_path / "data", preview_interval=0), host="127.0.0.1", port=port,
                            log_level="warning", timeout_graceful_shutdown=1)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}/"
    server.should_exit = True
    thread.join(60)


def open_image(path: str | Path) -> Image.Image:
    image = Image.open(path)
    image.load()
    return image


def test_page_paints_downloads_and_keeps_history(server_url, tmp_path, content, style):
    photo, texture, notes = tmp_path / "photo.png", tmp_path / "texture.jpg", tmp_path / "notes.png"
    content.save(photo)
    style.save(texture)
    notes.write_bytes(b"this is not a picture")
    page_errors: list[str] = []

    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 860}, accept_downloads=True)
            page.on("pageerror", lambda error: page_errors.append(str(error)))
            page.goto(server_url)
            page.wait_for_selector("body[data-ready=true]")

            # The form's inputs are built from the settings table's web rows, limits and starts included.
            web = {setting.field: setting for setting in SETTINGS if setting.web}
            assert page.eval_on_selector_all("#settings [name]", "nodes => nodes.map(n => n.name)") == list(web)
            assert page.input_value("#size") == str(web["size"].web_default)
            assert page.get_attribute("#steps", "max") == str(web["steps"].bounds[1])
            assert page.locator("#preserve_color option").all_inner_texts() == list(web["preserve_color"].choices)

            # A file that is no picture: the server's JSON error is shown on the page.
            page.set_input_files("#content-input", notes)
            page.set_input_files("#style-input", texture)
            page.click("#start")
            sync_api.expect(page.locator("#error")).to_contain_text("is not an image", timeout=30_000)

            # The real run: a tiny job, watched live.
            page.set_input_files("#content-input", photo)
            page.fill("#size", "64")
            page.fill("#steps", "5")
            page.click("#start")
            previews = set()
            deadline = time.monotonic() + 300
            while not page.is_visible("#result"):
                assert time.monotonic() < deadline, page.inner_text("#status")
                source = page.get_attribute("#preview", "src")
                if source:
                    previews.add(source)
                time.sleep(0.03)
            assert len(previews) >= 2, previews  # the live preview changed while it ran
            assert page.is_hidden("#error")
            assert page.inner_text("#status").startswith("Done: 64×64, 5 steps")
            sync_api.expect(page.locator("#result-image")).to_have_js_property("naturalWidth", 64)
            assert page.locator("#plot polyline").count() == 1

            for button, fmt in (("#download-png", "PNG"), ("#download-jpg", "JPEG")):
                with page.expect_download() as download:
                    page.click(button)
                image = open_image(download.value.path())
                assert image.format == fmt and image.size == (64, 64)

            sync_api.expect(page.locator("#history li.done")).to_have_count(1)
            page.screenshot(path=tmp_path / "web.png", full_page=True)

            # The history is this server's: a fresh page shows the result again.
            page.reload()
            page.wait_for_selector("body[data-ready=true]")
            page.click("#history li.done button")
            sync_api.expect(page.locator("#result-image")).to_have_js_property("naturalWidth", 64)
        finally:
            browser.close()
    assert not page_errors
