"""Shared fixtures: tiny test pictures and one loaded engine for the whole session.

Every picture comes from scikit-image's wheel (or is generated), so the tests run offline
and need nothing outside the repository.
"""

from __future__ import annotations

import contextlib
import importlib.resources
import io
import signal
import socket
import threading
import time
from pathlib import Path
from typing import Iterator

import pytest
from PIL import Image

from brushwork import api, devices, images
from brushwork.engine import Engine
from brushwork.options import Options

SKIMAGE_DATA = Path(str(importlib.resources.files("skimage") / "data"))
SHARED_IMAGES = Path(__file__).resolve().parents[1].parent / "shared" / "images"

# Small enough to keep every run around a second on a shared 2-core CPU.
TINY = Options(size=48, steps=5, device="cpu")


def pytest_configure(config: pytest.Config) -> None:
    """The Ctrl-C tests send SIGINT to the commands they start. A shell that starts the test
    run in the background (`.ci/run &`) has it ignore SIGINT, and an ignored signal stays
    ignored in every child, so the commands would never see it: catch it here instead, which
    every child then starts from the default again."""
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests marked `gpu` need a CUDA device: skipped where there is none."""
    import torch

    if not torch.cuda.is_available():
        for item in items:
            if item.get_closest_marker("gpu"):
                item.add_marker(pytest.mark.skip(reason="needs a CUDA GPU"))


def sample(name: str, long_side: int = 96) -> Image.Image:
    """A scikit-image sample photo as RGB, shrunk so that resizing costs nothing."""
    image = images.load_image(SKIMAGE_DATA / name)
    image.thumbnail((long_side, long_side), Image.LANCZOS)
    return image


@pytest.fixture(scope="session")
def engine() -> Engine:
    """The default VGG19 on CPU (cut after relu5_1), loaded once. It is the very engine that
    `brushwork.stylize(..., device="cpu")` and `brushwork stylize --device cpu` pick, so API
    and in-process CLI tests share it too."""
    return api.engine_for(TINY)


@pytest.fixture
def cpu_without_bf16(monkeypatch) -> Iterator[None]:
    """A CPU that lacks native bf16, whichever CPU the suite runs on; the notice that bf16 is
    emulated not yet given in this process."""
    monkeypatch.setattr(devices, "cpu_has_bf16", lambda: False)
    devices.notice_emulated_bf16.cache_clear()
    yield
    devices.notice_emulated_bf16.cache_clear()


@pytest.fixture
def runs(monkeypatch) -> list[Options]:
    """The options of every optimization that runs while the test does."""
    calls: list[Options] = []
    original = Engine.run

    def counting(self, content, styles, options, callback=None, **more):
        calls.append(options)
        return original(self, content, styles, options, callback, **more)

    monkeypatch.setattr(Engine, "run", counting)
    return calls


@pytest.fixture(scope="session")
def content() -> Image.Image:
    return sample("astronaut.png")


@pytest.fixture(scope="session")
def style() -> Image.Image:
    return sample("ihc.png")


@pytest.fixture(scope="session")
def style2() -> Image.Image:
    return sample("chelsea.png")


@pytest.fixture(scope="session")
def image_files(tmp_path_factory, content, style, style2) -> dict[str, Path]:
    """The test pictures as files, for the CLI and the path-taking API."""
    folder = tmp_path_factory.mktemp("images")
    paths = {}
    for name, image in (("content", content), ("style", style), ("style2", style2)):
        paths[name] = folder / f"{name}.png"
        image.save(paths[name])
    return paths


def local(app):
    """A web test client that addresses the app as a browser on this machine would (the app
    refuses requests for host names it is not served under, such as `testserver`)."""
    from fastapi.testclient import TestClient

    return TestClient(app, base_url="http://127.0.0.1:8000")


def png(image: Image.Image) -> bytes:
    """An upload's bytes."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


@contextlib.contextmanager
def serving(app) -> Iterator[str]:
    """`app` served by uvicorn in a thread, as a real server on a free 127.0.0.1 port; its URL."""
    import uvicorn

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                           timeout_graceful_shutdown=1))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        server.should_exit = True
        thread.join(60)
