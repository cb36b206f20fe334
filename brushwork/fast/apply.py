"""Trained fast-mode models applied to pictures: the shipped models, a model by name or file,
and the Python API over PIL images. `brushwork apply` (commands/apply.py) runs the same
network on files, folders and videos through pipeline.py and video.py.
"""

from __future__ import annotations

import importlib.resources
from pathlib import Path

import numpy as np
from PIL import Image

from .. import images
from ..errors import BrushworkError
from .backend import Settings, Stylizer
from .net import FastModel
from .pipeline import stylize_batches

__all__ = ["Settings", "Stylizer", "resolve_model", "shipped_models", "stylize_images"]


def shipped_models() -> dict[str, Path]:
    """Models inside the package, by name (file name without .safetensors)."""
    folder = importlib.resources.files("brushwork.fast") / "models"
    return {Path(p.name).name.removesuffix(".safetensors"): Path(str(p)) for p in folder.iterdir() if p.name.endswith(".safetensors")}


def resolve_model(name: str) -> Path:
    """A model file path, or the name of a shipped model such as `starry-night`."""
    path = Path(name)
    if path.is_file():
        return path
    models = shipped_models()
    if name in models:
        return models[name]
    raise BrushworkError(f"model {name!r} is neither a file nor a shipped model (shipped: {', '.join(sorted(models)) or 'none'})")


def stylize_images(model: FastModel, pictures: list[Image.Image], settings: Settings) -> list[Image.Image]:
    """The Python API: stylize PIL images, batching those of equal size that follow each other."""
    stylizer = Stylizer(model, settings)
    frames = ((i, np.asarray(images.load_image(p))) for i, p in enumerate(pictures))
    return [Image.fromarray(pixels, "RGB") for _, pixels in stylize_batches(stylizer, frames)]
