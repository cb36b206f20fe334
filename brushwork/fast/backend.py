"""Where and how the fast-mode network runs: uint8 frames in, uint8 frames out.

Frames cross between host and device as uint8 (a quarter of float32's bytes); on CUDA they go
up from pinned memory, asynchronously. Conversion to floats, resizing, the network, strength,
colour preservation and the rounding back to 8 bits all happen on the device.

On a CPU in fp32 the network runs in onnxruntime when it is installed (`--backend auto`):
on the project's 2-core CPU, `apply` on 1024² PNGs took two thirds of its time with PyTorch
(README, fast mode: Throughput). Its results differ from PyTorch's in float rounding only:
by at most 1 in 8 bits, in up to 3% of the pixels of a 1024² photo (PSNR 68 dB or more).
Elsewhere (CUDA, MPS, bf16) PyTorch runs it, and on a CPU its results are the float
pipeline's to the bit.

--mask and --protect-faces blend the stylized picture with the input per pixel (`finish`):
the network still paints the whole picture, since its strokes at a region's edge depend on
what lies beyond it, and the blend after it is a pixel-wise mix that costs next to nothing
(face detection costs more: faces.py).
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import io
import warnings
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch

from .. import faces, images, masks
from ..devices import one_torch_thread, pick_device, pick_dtype
from ..errors import BrushworkError
from .arbitrary import ArbitraryModel
from .net import FastModel, TransformNet

BACKENDS = ("auto", "torch", "onnxruntime")
CONSISTENCY = {"flow": 0.97, "blend": 0.5, "off": 0.0}  # video: each method and its default --deflicker (consistency.py)
OPSET = 17


@dataclass
class Settings:
    strength: float = 1.0  # 1: the network's output; 0: the input
    preserve_color: bool = False  # keep the input's chroma (YIQ), take the stylized luminance
    size: int | None = None  # longest side to resize inputs to; None keeps their size
    batch: int | None = None  # None: 1 on a CPU (no gain from more, and a shorter tail), 8 elsewhere
    consistency: str = "flow"  # video: how frames are held to each other (consistency.py)
    deflicker: float | None = None  # video: how much of the previous output a trusted pixel keeps; None: the method's default
    device: str = "auto"
    precision: str = "auto"
    backend: str = "auto"
    overlap: bool = True  # decode and encode in their own threads while the network runs
    workers: int | None = None  # network calls at once; None: one per CPU thread with onnxruntime, else 1
    mask: masks.MaskLike | None = None  # a file, PIL image or H×W array: white stylized, black the input; None: everywhere
    protect_faces: float = 0.0  # 0 off; s keeps each detected face's pixels s of the way to the input

    def validate(self) -> None:
        if not (0.0 <= self.strength <= 1.0):
            raise BrushworkError(f"--strength must be between 0 and 1, got {self.strength}")
        if self.consistency not in CONSISTENCY:
            raise BrushworkError(f"unknown --consistency {self.consistency!r}; use {', '.join(CONSISTENCY)}")
        if self.deflicker is not None and not (0.0 <= self.deflicker < 1.0):
            raise BrushworkError(f"--deflicker must be at least 0 and below 1, got {self.deflicker}")
        if self.batch is not None and self.batch < 1:
            raise BrushworkError(f"--batch must be at least 1, got {self.batch}")
        if self.size is not None and self.size < 4:
            raise BrushworkError(f"--size must be at least 4, got {self.size}")
        if self.backend not in BACKENDS:
            raise BrushworkError(f"unknown backend {self.backend!r}; use {', '.join(BACKENDS)}")
        if self.workers is not None and self.workers < 1:
            raise BrushworkError(f"--workers must be at least 1, got {self.workers}")
        if not (0.0 <= self.protect_faces <= 1.0):
            raise BrushworkError(f"--protect-faces must be between 0 and 1, got {self.protect_faces}")


@functools.lru_cache(maxsize=4)
def onnx_graph(net: TransformNet) -> bytes:
    """The network as ONNX (any batch, height and width). Cached per loaded network, since
    exporting takes about a second and models loaded for inference do not change."""
    example = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter announces its own deprecation
        torch.onnx.export(
            net, (example,), buffer, dynamo=False, opset_version=OPSET, input_names=["image"], output_names=["stylized"],
            dynamic_axes={"image": {0: "batch", 2: "height", 3: "width"}, "stylized": {0: "batch", 2: "height", 3: "width"}},
        )  # fmt: skip
    return buffer.getvalue()


def onnx_session(net: TransformNet, threads: int):
    """Spinning is off: idle onnxruntime threads that spin take the cores the reader and
    writer threads need, and measured slower on a shared 2-core CPU."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return onnxruntime.InferenceSession(onnx_graph(net), options, providers=["CPUExecutionProvider"])


def run_dtype(settings: Settings, device: torch.device) -> torch.dtype:
    """--precision auto picks bf16 where it is native, except that asking for onnxruntime,
    which runs fp32 only, means fp32: the backend named alone is enough."""
    if settings.backend == "onnxruntime" and settings.precision == "auto":
        return torch.float32
    return pick_dtype(settings.precision, device)


def pick_backend(name: str, device: torch.device, dtype: torch.dtype) -> str:
    """onnxruntime where it is installed and the run is fp32 on the CPU, else PyTorch."""
    if name == "torch":
        return name
    fits = device.type == "cpu" and dtype == torch.float32
    installed = all(importlib.util.find_spec(name) is not None for name in ("onnx", "onnxruntime"))  # onnx: for the export
    if name == "auto":
        return "onnxruntime" if fits and installed else "torch"
    if not fits:
        raise BrushworkError("--backend onnxruntime runs fp32 on the CPU only; use --device cpu --precision fp32")
    if not installed:
        raise BrushworkError('--backend onnxruntime needs onnx and onnxruntime: pip install "brushwork[fast]"')
    return name


class OnnxNet:
    """A trained model's onnxruntime session as a function of float batches."""

    def __init__(self, session) -> None:
        self.session = session

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        (out,) = self.session.run(None, {"image": batch.numpy()})
        return torch.from_numpy(out)


def check_arbitrary(settings: Settings) -> str:
    """The arbitrary-style network (arbitrary.py) is ONNX, run by onnxruntime on the CPU in fp32:
    --device auto and --precision auto pick that; asking for anything else is an error."""
    if settings.device not in ("auto", "cpu") or settings.precision == "bf16" or settings.backend == "torch":
        raise BrushworkError("--style runs on the CPU in fp32 with onnxruntime; drop --device, --precision and --backend")
    return "onnxruntime"


class Stylizer:
    """A loaded model (a trained one, or the arbitrary-style network with its style vector) on
    a device, used in steps: `upload` (uint8 frames to device floats), `network` (the only
    step that may run in several threads at once), `finish` (strength, colour), `download`
    (back to uint8); `stylize` is network and finish.

    With onnxruntime on a CPU, `workers` network calls run at once, one per thread, each
    single-threaded: one image per core needs no waiting between threads, so it keeps both
    cores busy while the reader and writer threads take their turns (measured on 2 cores:
    README, fast mode). A lone image then gets one core; --workers 1 gives it all of them."""

    def __init__(self, model: FastModel | ArbitraryModel, settings: Settings):
        settings.validate()
        self.settings = settings
        arbitrary = isinstance(model, ArbitraryModel)
        self.device = torch.device("cpu") if arbitrary else pick_device(settings.device)
        self.dtype = torch.float32 if arbitrary else run_dtype(settings, self.device)
        self.backend = check_arbitrary(settings) if arbitrary else pick_backend(settings.backend, self.device, self.dtype)
        self.batch = settings.batch or (1 if self.device.type == "cpu" else 8)
        threads = torch.get_num_threads()
        self.workers = settings.workers or (threads if self.backend == "onnxruntime" else 1)
        if self.workers > 1 and self.backend != "onnxruntime":
            raise BrushworkError("--workers above 1 needs the onnxruntime backend (fp32 on a CPU)")
        self.net = None if arbitrary else model.net.to(self.device)
        self.session: Callable[[torch.Tensor], torch.Tensor] | None = None  # the network in onnxruntime, if it runs there
        if self.backend == "onnxruntime":
            per_call = max(1, threads // self.workers)
            self.session = model.network(per_call) if arbitrary else OnnxNet(onnx_session(self.net, per_call))
        self.masks: dict[tuple[int, int], torch.Tensor] = {}  # --mask at each picture size met so far

    def host_threads(self) -> contextlib.AbstractContextManager[None]:
        """One PyTorch thread while onnxruntime runs the network: PyTorch then only converts and
        blends frames, element-wise work that a second OpenMP thread speeds up by milliseconds
        at best and slows down 4-100× on a busy 2-core CPU (measured), where the threads end up
        waiting for each other."""
        return one_torch_thread(self.session is not None)

    def upload(self, frames: Sequence[np.ndarray]) -> torch.Tensor:
        """Frames of one size -> N×3×H×W floats in [0, 1] on the device, resized per --size.

        The batch is stacked straight into pinned memory on CUDA (PyTorch's caching host
        allocator reuses it once the copy is done), so the copy up can run asynchronously."""
        host = torch.empty((len(frames), *frames[0].shape), dtype=torch.uint8, pin_memory=self.device.type == "cuda")
        stack = host.numpy()
        for i, frame in enumerate(frames):
            stack[i] = frame
        batch = host.to(self.device, non_blocking=True).permute(0, 3, 1, 2).float().div(255).contiguous()
        if self.settings.size is not None:
            batch = images.resize(batch, images.fit_size(batch.shape[-1], batch.shape[-2], self.settings.size))
        return batch

    def network(self, batch: torch.Tensor) -> torch.Tensor:
        """onnxruntime's session runs outside the interpreter lock and may be called from
        several threads at once; PyTorch's path stays in the caller's thread."""
        if self.session is not None:
            return self.session(batch)
        with torch.inference_mode(), torch.autocast(self.device.type, dtype=self.dtype, enabled=self.dtype != torch.float32):
            return self.net(batch).float()

    def finish(self, batch: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        """The network's output with colour, strength and the mask applied, on the device."""
        if self.settings.preserve_color:
            out = images.with_chroma_of(out, batch)
        region = self.region(batch)
        if self.settings.strength < 1.0 or region is not None:
            weight = self.settings.strength * (1.0 if region is None else region)
            out = weight * out + (1.0 - weight) * batch
        return out.clamp(0, 1)

    def region(self, batch: torch.Tensor) -> torch.Tensor | None:
        """Where the style goes (N×1×H×W, or None for everywhere): --mask at the pictures'
        size (stretched to it once per size, with a notice), times 1 − protect_faces × each
        picture's face mask."""
        if self.settings.mask is None and self.settings.protect_faces == 0:
            return None
        n, _, h, w = batch.shape
        region = torch.ones(1, 1, h, w, device=batch.device)
        if self.settings.mask is not None:
            if (w, h) not in self.masks:
                self.masks[(w, h)] = masks.read(self.settings.mask, (w, h), "--mask", "picture").to(batch.device)
            region = self.masks[(w, h)]
        if self.settings.protect_faces > 0:
            found = np.stack([faces.face_mask(images.to_pil(batch[i : i + 1])) for i in range(n)])[:, None]
            region = region * (1.0 - self.settings.protect_faces * torch.from_numpy(found).to(batch.device))
        return region

    def stylize(self, batch: torch.Tensor) -> torch.Tensor:
        return self.finish(batch, self.network(batch))

    def download(self, batch: torch.Tensor) -> np.ndarray:
        """Rounded to 8 bits on the device, so a quarter of the bytes come back."""
        return batch.clamp(0, 1).mul(255).round().byte().permute(0, 2, 3, 1).contiguous().cpu().numpy()

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        """Float N×3×H×W in [0, 1] on the host -> stylized floats on the host (no resizing)."""
        return self.stylize(batch.to(self.device)).cpu()
