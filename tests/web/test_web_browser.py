"""End to end in a real browser: Debian's headless Chromium, driven by Playwright, against
`brushwork serve`'s app under uvicorn on a free loopback port.

The first test is refused a file that is no picture where it picks it, uploads two small
pictures, starts a tiny job, watches the live preview change, waits for the result,
downloads it, and leaves a screenshot (web.png in its tmp folder). The second paints in fast
mode, runs a two-cell compare grid and its downloads, and uses the history's delete, retry
and edit and run (screenshots web-fast.png and web-compare.png). The third uses the brush: a
mask file, invert and clear, a stroke and an eraser stroke, a run that changes the photo
only inside the stroke, and with a second style a second colour whose stroke becomes its own
region mask (web-mask.png). Keyboard, screen-reader and phone checks are in test_web_access.py.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFilter

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]

pytestmark = [pytest.mark.browser, pytest.mark.slow,
              pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium")]
pytest.importorskip("fastapi", reason="the web extra is not installed")
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
from conftest import serving  # noqa: E402

from brushwork.options import SETTINGS  # noqa: E402
from brushwork.web.app import create_app  # noqa: E402


@pytest.fixture
def server_url(tmp_path):
    """The app served by uvicorn in a thread, as a real server on 127.0.0.1."""
    with serving(create_app(tmp_path / "data", preview_interval=0)) as url:
        yield url


def open_image(path: str | Path) -> Image.Image:
    image = Image.open(path)
    image.load()
    return image


def check_form(page) -> None:
    """The form's inputs are built from the settings table's web rows, limits and starts included."""
    web = {setting.field: setting for setting in SETTINGS if setting.web and setting.field != "style_regions"}
    assert page.eval_on_selector_all("#settings [name]", "nodes => nodes.map(n => n.name)") == list(web)
    assert page.input_value("#size") == str(web["size"].web_default)
    assert page.get_attribute("#steps", "max") == str(web["steps"].bounds[1])
    assert page.locator("#preserve_color option").all_inner_texts() == list(web["preserve_color"].choices)


def test_page_paints_downloads_and_keeps_history(server_url, tmp_path, content, style):
    photo, texture, notes = tmp_path / "photo.png", tmp_path / "texture.jpg", tmp_path / "notes.png"
    content.save(photo)
    style.save(texture)
    notes.write_bytes(b"this is not a picture")
    page_errors: list[str] = []

    with sync_api.sync_playwright() as playwright:
        browser = launch(playwright)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 860}, accept_downloads=True)
            page.on("pageerror", lambda error: page_errors.append(str(error)))
            page.goto(server_url)
            page.wait_for_selector("body[data-ready=true]")

            check_form(page)

            # A file that is no picture is refused where it was picked; Start waits for a photo.
            page.set_input_files("#content-input", notes)
            page.set_input_files("#style-input", texture)
            sync_api.expect(page.locator("#content-problem")).to_contain_text("notes.png is not a picture")
            assert page.is_disabled("#start") and page.inner_text("#start-hint") == "Pick a content photo."
            assert page.is_hidden("#mask-editor")  # no brush over a photo the browser cannot show

            # The real run: a tiny job, watched live.
            page.set_input_files("#content-input", photo)
            page.fill("#size", "64")
            page.fill("#steps", "5")
            page.click("#start")
            previews = set()
            deadline = time.monotonic() + 300
            while not page.is_visible("#result"):
                assert time.monotonic() < deadline, page.inner_text("#status")
                assert page.is_hidden("#error"), page.inner_text("#error")  # a failed job: say why at once
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


def launch(playwright):
    return playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)


def download(page, selector: str) -> Path:
    with page.expect_download() as started:
        page.click(selector)
    return Path(started.value.path())


def fast_mode(page, photo: Path, tmp_path: Path) -> None:
    """Pick the shipped model, drop a photo, and the picture comes at once."""
    page.click("#mode-fast")
    assert page.is_hidden("#style-pick") and page.is_visible("#fast-settings")
    assert "starry-night" in page.locator("#model option").all_inner_texts()[0]
    page.fill("#fast-size", "64")
    page.eval_on_selector("#strength", "e => { e.value = '0.5'; e.dispatchEvent(new Event('input')); }")
    page.check("#fast-color")
    page.set_input_files("#content-input", photo)  # painting starts by itself
    sync_api.expect(page.locator("#fast-image")).to_have_js_property("naturalWidth", 64, timeout=60_000)
    sync_api.expect(page.locator("#status")).to_contain_text("Painted with starry-night in")
    painted = open_image(download(page, "#download-fast"))
    assert painted.format == "PNG" and painted.size == (64, 64)
    page.screenshot(path=tmp_path / "web-fast.png", full_page=True)


def compare_grid(page, texture: Path, tmp_path: Path) -> None:
    """The photo stays picked; vary steps over a tiny grid and watch it fill, then download."""
    page.click("#mode-compare")
    assert page.is_visible("#vary") and page.is_hidden("#fast-settings")
    page.set_input_files("#style-input", texture)
    page.fill("#size", "32")
    page.select_option("#vary-1-field", "steps")
    page.fill("#vary-1-values", "1,2")
    page.click("#start")
    sync_api.expect(page.locator("#grid td")).to_have_count(2, timeout=30_000)
    sync_api.expect(page.locator("#grid td.done")).to_have_count(2, timeout=300_000)
    for text in page.locator("#grid .scores").all_inner_texts():
        assert " s · content " in text and " · style " in text
    sync_api.expect(page.locator("#grid-downloads")).to_be_visible(timeout=60_000)
    assert page.inner_text("#status").startswith("Done: 2 cells")
    assert open_image(download(page, "#download-sheet")).format == "PNG"
    assert "<table" in download(page, "#download-html").read_text()
    rows = download(page, "#download-csv").read_text().splitlines()
    assert rows[0].startswith("cell,image,seconds,content_distance") and len(rows) == 3
    page.screenshot(path=tmp_path / "web-compare.png", full_page=True)


def history_actions(page, data: Path) -> None:
    """Delete the grid, files and all; cancel a run, retry it, cancel it again, edit and run it."""
    grid = page.locator("#history li.done").first
    grid_id = grid.get_attribute("id").removeprefix("job-")
    assert (data / "jobs" / grid_id).is_dir()
    grid.locator("button", has_text="Delete").click()
    sync_api.expect(page.locator(f"#job-{grid_id}")).to_have_count(0)
    assert not (data / "jobs" / grid_id).exists()

    page.click("#mode-stylize")
    page.fill("#steps", "5000")
    page.click("#start")
    for attempt in ("first", "retried"):
        sync_api.expect(page.locator("#status")).to_contain_text("Step ", timeout=120_000)
        page.click("#cancel")
        sync_api.expect(page.locator("#history li.cancelled")).to_have_count(1, timeout=60_000)
        if attempt == "first":
            page.locator("#history li.cancelled button", has_text="Retry").click()
    cancelled = page.locator("#history li.cancelled")
    opened = cancelled.get_attribute("id").removeprefix("job-")
    cancelled.locator("button", has_text="Edit and run").click()  # its settings, then one changed
    page.wait_for_selector(f"body[data-opened='{opened}']")
    assert page.input_value("#steps") == "5000"
    page.fill("#steps", "2")
    page.click("#start")
    sync_api.expect(page.locator("#status")).to_contain_text("Done: 32×32, 2 steps", timeout=120_000)
    sync_api.expect(page.locator("#history li.done")).to_have_count(1)


def test_fast_mode_a_compare_grid_and_history_actions(server_url, tmp_path, content, style):
    photo, texture = tmp_path / "photo.png", tmp_path / "texture.png"
    content.save(photo)
    style.save(texture)
    page_errors: list[str] = []
    with sync_api.sync_playwright() as playwright:
        browser = launch(playwright)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900}, accept_downloads=True)
            page.on("pageerror", lambda error: page_errors.append(str(error)))
            page.goto(server_url)
            page.wait_for_selector("body[data-ready=true]")
            fast_mode(page, photo, tmp_path)
            compare_grid(page, texture, tmp_path)
            history_actions(page, tmp_path / "data")
        finally:
            browser.close()
    assert not page_errors


def painted(page) -> list[float]:
    """The share of the photo each of the brush's canvases (one per style) has painted."""
    return page.eval_on_selector_all("#mask-stage canvas", """layers => layers.map(layer => {
        const rgba = layer.getContext("2d").getImageData(0, 0, layer.width, layer.height).data;
        let count = 0;
        for (let i = 3; i < rgba.length; i += 4) count += rgba[i] > 127;
        return count / (layer.width * layer.height);
    })""")


def settled(page, check, timeout: float = 10) -> list[float]:
    """The painted shares once `check` holds for them (a loaded mask file arrives a moment later)."""
    deadline = time.monotonic() + timeout
    while not check(shares := painted(page)):
        assert time.monotonic() < deadline, shares
        time.sleep(0.05)
    return shares


def stroke(page, start: tuple[float, float], end: tuple[float, float]) -> None:
    """A mouse stroke over the photo, from and to points given as fractions of its width and height."""
    page.locator("#mask-stage").scroll_into_view_if_needed()
    box = page.locator("#mask-stage").bounding_box()
    at = lambda point: (box["x"] + point[0] * box["width"], box["y"] + point[1] * box["height"])  # noqa: E731
    page.mouse.move(*at(start))
    page.mouse.down()
    page.mouse.move(*at(end), steps=12)
    page.mouse.up()


def finished(page, count: int) -> None:
    """Wait until the history has `count` finished jobs; a failed one stops the wait at once."""
    deadline = time.monotonic() + 120
    while page.locator("#history li.done").count() < count:
        assert page.is_hidden("#error") and time.monotonic() < deadline, page.inner_text("#status")
        time.sleep(0.05)


def job_folder(page, data: Path, index: int) -> Path:
    """The folder of the `index`-th newest finished job in the history."""
    return data / "jobs" / page.locator("#history li.done").nth(index).get_attribute("id").removeprefix("job-")


def mean_change(result: Image.Image, photo: Image.Image, where: np.ndarray) -> float:
    """Mean absolute difference (0 to 1) of the two pictures' pixels where `where` holds."""
    difference = np.abs(np.asarray(result, float) - np.asarray(photo.resize(result.size, Image.LANCZOS), float))
    return float(difference[where].mean() / 255)


def check_painted_job(folder: Path) -> None:
    """The mask came at the photo's resolution; the result changed inside the stroke and kept
    the photo outside it (well away from its soft edge)."""
    photo, mask, result = (open_image(folder / name) for name in ("content.png", "mask.png", "result.png"))
    assert mask.mode == "L" and mask.size == photo.size
    small = mask.resize(result.size, Image.BILINEAR)
    inside = np.asarray(small.filter(ImageFilter.MinFilter(5))) > 250
    outside = np.asarray(small.filter(ImageFilter.MaxFilter(9))) == 0
    assert inside.mean() > 0.1 and outside.mean() > 0.3, (inside.mean(), outside.mean())
    changed_inside, changed_outside = mean_change(result, photo, inside), mean_change(result, photo, outside)
    assert changed_inside > 0.05 and changed_inside > 4 * changed_outside, (changed_inside, changed_outside)


def two_regions(page, other: Path, data: Path) -> None:
    """With a second style, a second colour: its stroke becomes its own region mask."""
    page.set_input_files("#style-input", other)
    sync_api.expect(page.locator("#mask-stage canvas")).to_have_count(2)
    page.locator("#mask-styles button", has_text="style 2").click()
    stroke(page, (0.8, 0.05), (0.8, 0.95))
    first, second = painted(page)
    assert first > 0.1 and second > 0.1
    page.fill("#size", "48")
    page.fill("#steps", "1")
    page.click("#start")
    finished(page, 2)
    folder = job_folder(page, data, 0)
    assert not (folder / "mask.png").exists()  # what no region covers is kept anyway
    masks = [np.asarray(open_image(folder / f"style-{i}-mask.png")) for i in (0, 1)]
    width = masks[0].shape[1]
    left, right = (slice(None), width // 4), (slice(None), 4 * width // 5)
    assert masks[0][left].max() == 255 and masks[0][right].max() == 0
    assert masks[1][right].max() == 255 and masks[1][left].max() == 0
    sync_api.expect(page.locator("#history li.done").first.locator(".masks img")).to_have_count(2)


def test_a_brushed_region_is_painted_and_the_rest_stays_the_photo(server_url, tmp_path, content, style, style2):
    photo, texture, other, quarter = (tmp_path / f"{name}.png" for name in ("photo", "texture", "other", "quarter"))
    content.save(photo)
    style.save(texture)
    style2.save(other)
    mask = Image.new("L", (40, 40), 0)
    mask.paste(255, (0, 0, 10, 40))  # any size: stretched to the photo
    mask.save(quarter)
    page_errors: list[str] = []
    with sync_api.sync_playwright() as playwright:
        browser = launch(playwright)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.on("pageerror", lambda error: page_errors.append(str(error)))
            page.goto(server_url)
            page.wait_for_selector("body[data-ready=true]")
            page.set_input_files("#content-input", photo)
            page.set_input_files("#style-input", texture)
            sync_api.expect(page.locator("#mask-stage canvas")).to_have_count(1)
            assert page.is_hidden("#mask-styles")  # one style: no colours to choose

            page.set_input_files("#mask-input", quarter)
            settled(page, lambda shares: abs(shares[0] - 0.25) < 0.02)
            page.click("#mask-invert")
            settled(page, lambda shares: abs(shares[0] - 0.75) < 0.02)
            page.click("#mask-clear")
            settled(page, lambda shares: shares == [0])

            page.eval_on_selector("#brush-size", "e => { e.value = '120'; }")
            stroke(page, (0.25, 0.05), (0.25, 0.95))
            [share] = painted(page)
            page.check("#brush-erase")
            stroke(page, (0.05, 0.9), (0.6, 0.9))
            page.uncheck("#brush-erase")
            assert 0.1 < painted(page)[0] < share < 0.5

            page.fill("#size", "64")
            page.fill("#steps", "10")
            page.click("#start")
            finished(page, 1)
            sync_api.expect(page.locator("#history li.done .masks img")).to_have_count(1)
            check_painted_job(job_folder(page, tmp_path / "data", 0))
            sync_api.expect(page.locator("#result-image")).to_have_js_property("naturalWidth", 64)
            page.screenshot(path=tmp_path / "web-mask.png", full_page=True)
            two_regions(page, other, tmp_path / "data")
        finally:
            browser.close()
    assert not page_errors
