"""Fast mode on the page: the trained networks this server offers, and one picture through one.

A fast-mode network answers in about a second, so a request is served while the client
waits, outside the job line (which is for runs of minutes). The networks are the ones that
ship with brushwork plus the .safetensors files of `serve --models DIR`, each loaded once
and kept, checked by brushwork.fast's own reader. One picture is painted at a time: on a
small machine, two at once would only each take twice as long.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from PIL import Image

from ..errors import BrushworkError
from ..fast.apply import Settings, shipped_models, stylize_images
from ..fast.arbitrary import load_styles
from ..fast.backend import Stylizer
from ..fast.net import FastModel, load_model

SIZE_BOUNDS = (32, 2048)  # the longest side of a fast-mode picture, as for a job's `size`
DEFAULT_SIZE = 512


@dataclass(frozen=True)
class FastRequest:
    """What `brushwork apply` asks of a picture besides the model: its strength and colour
    options, and the size to paint it at. No model: the arbitrary-style network paints with
    the request's paintings (`apply --style`), blended by `weights` (None: equal)."""

    model: str | None
    strength: float = 1.0
    preserve_color: bool = False
    size: int = DEFAULT_SIZE
    weights: list[float] | None = None


class Models:
    """The networks by name: shipped ones first, then those in `folder` under names not taken."""

    def __init__(self, folder: Path | None, device: str = "auto", precision: str = "auto"):
        self.folder, self.device, self.precision = folder, device, precision
        self._loaded: dict[Path, tuple[float, FastModel]] = {}
        self._lock = threading.Lock()

    def files(self) -> dict[str, tuple[Path, str]]:
        """Name -> (file, where it comes from), read at each call so that a model trained into
        the folder while the server runs is offered at once."""
        found = {name: (path, "shipped") for name, path in sorted(shipped_models().items())}
        if self.folder is not None and self.folder.is_dir():
            for path in sorted(self.folder.glob("*.safetensors")):
                found.setdefault(path.stem, (path, "models"))
        return found

    def load(self, path: Path) -> FastModel:
        """A network, loaded again only if its file changed (a model retrained in place)."""
        stamp = path.stat().st_mtime
        cached = self._loaded.get(path)
        if cached is None or cached[0] != stamp:
            self._loaded[path] = (stamp, load_model(path))
        return self._loaded[path][1]

    def describe(self) -> list[dict]:
        """The networks as /api/models lists them; a file that is not a model is listed with
        the reason, rather than hidden, so the user sees why their model is missing."""
        entries = []
        for name, (path, source) in self.files().items():
            entry = {"name": name, "source": source}
            try:
                with self._lock:
                    model = self.load(path)
                entry.update(style=model.style, options=model.options)
            except (BrushworkError, OSError, ValueError) as e:
                entry["error"] = str(e)
            entries.append(entry)
        return entries

    def model_file(self, name: str) -> Path:
        files = self.files()
        if name not in files:
            raise BrushworkError(f"no model {name!r}; models: {', '.join(files) or 'none'}")
        return files[name][0]

    def stylizer(self, request: FastRequest, paintings: Sequence[Image.Image] = ()) -> Stylizer:
        """The named network ready for a video (batch and deflicker as `brushwork apply`'s
        defaults); the video job runs it outside the lock, on the worker thread. Without a
        model, the arbitrary-style network with `paintings`, as `apply --style` makes it: it
        runs on the CPU in fp32 (onnxruntime) whatever the server's device."""
        if request.model is None:
            settings = Settings(strength=request.strength, preserve_color=request.preserve_color, size=request.size)
            return Stylizer(load_styles(paintings, request.weights), settings)
        settings = Settings(strength=request.strength, preserve_color=request.preserve_color, size=request.size,
                            device=self.device, precision=self.precision)
        with self._lock:
            return Stylizer(self.load(self.model_file(request.model)), settings)

    def paint(self, picture: Image.Image, request: FastRequest) -> Image.Image:
        """One picture through the named network, as `brushwork apply` would paint it."""
        path = self.model_file(request.model)
        settings = Settings(strength=request.strength, preserve_color=request.preserve_color, size=request.size,
                            batch=1, device=self.device, precision=self.precision)
        with self._lock:
            model = self.load(path)
            return stylize_images(model, [picture], settings)[0]
