"""`brushwork train`: fit a TransformNet to one style with brushwork's perceptual loss.

Each iteration takes a batch of random crops (random scale, random horizontal flip) of the
photos in --data, runs them through the network, and scores the outputs with exactly the
losses of `brushwork stylize`: content = relative feature error against the crop itself,
style = relative Gram error against the style image, plus TV, with the same layers,
weights and presets. The style image is resized so its longest side is
crop × --style-scale, which is what `stylize --size CROP` would use.

A checkpoint (network + Adam state, itself a loadable model) is written every
--checkpoint-every iterations and on Ctrl-C; `--resume` continues from it.
"""

from __future__ import annotations

import functools
import json
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from tqdm import tqdm

from .. import images
from ..engine import engine_for
from ..errors import BrushworkError
from ..losses import STYLE_LOSSES
from ..devices import pick_dtype
from ..engine import image_key
from ..objective import Objective, content_loss_for, style_loss_for
from ..options import Options
from ..plan import min_side
from ..run_description import RunDescription
from .net import TransformNet, model_metadata, read_model_file

PHOTO_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff"}
# The stylize options that mean something for training (the others are about one optimization run).
TRAIN_FIELDS = (
    "preset", "style_layers", "content_layers", "style_layer_weights", "style_weights", "content_weight",
    "style_weight", "tv_weight", "style_loss", "lr", "seed", "style_scale", "style_crop", "pooling", "weights",
    "weights_format", "device", "precision",
)  # fmt: skip
DEFAULT_LR = 1e-3
# Training keeps the Gram loss by default: the sliced default was chosen on optimization runs
# (docs/benchmarks/default-loss.md); the fast networks and their benchmarks are Gram-trained.
TRAIN_STYLE_LOSS = "gram"


@dataclass
class TrainConfig:
    styles: list[str]
    data: str
    output: Path
    options: Options = field(default_factory=lambda: Options(style_loss=TRAIN_STYLE_LOSS))
    iterations: int = 2000
    batch: int = 4
    crop: int = 256
    width: int | None = None  # None: the checkpoint's when resuming, else 16
    blocks: int | None = None  # None: likewise, else 5
    holdout: int = 2
    sample_every: int = 200
    checkpoint_every: int = 200
    resume: bool = False
    overwrite: bool = False
    quiet: bool = False


@dataclass
class TrainResult:
    iteration: int
    losses: list[float]  # total loss of every iteration run in this call
    stop_reason: str  # "done" | "interrupted"
    seconds: float


def checkpoint_path(output: Path) -> Path:
    return output.with_name(output.stem + ".ckpt.safetensors")


def samples_dir(output: Path) -> Path:
    return output.with_name(output.stem + "_samples")


def find_photos(folder: str | Path) -> list[Path]:
    """Image files in `folder` (and its subfolders) whose headers Pillow can read, sorted."""
    folder = Path(folder)
    if not folder.is_dir():
        raise BrushworkError(f"--data must be a folder of photos: {folder} is not a folder")
    readable = []
    for path in sorted(p for p in folder.rglob("*") if p.suffix.lower() in PHOTO_SUFFIXES and p.is_file()):
        try:
            with Image.open(path) as image:
                image.verify()
            readable.append(path)
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
            print(f"brushwork: warning: skipping unreadable image {path}", file=sys.stderr)
    if not readable:
        raise BrushworkError(f"no readable images in {folder} (looked for {', '.join(sorted(PHOTO_SUFFIXES))})")
    return readable


def split_holdout(photos: list[Path], holdout: int) -> tuple[list[Path], list[Path]]:
    """(training photos, held-out photos): `holdout` photos spread evenly over the sorted list."""
    if holdout < 0 or holdout >= len(photos):
        raise BrushworkError(f"--holdout {holdout} leaves no training photos out of {len(photos)}")
    held = {round((i + 0.5) * len(photos) / holdout) for i in range(holdout)} if holdout else set()
    return [p for i, p in enumerate(photos) if i not in held], [p for i, p in enumerate(photos) if i in held]


@functools.lru_cache(maxsize=1024)
def _reduced(path: Path, short_side: int) -> torch.Tensor:
    """A photo shrunk so its shorter side is at most `short_side`, as 1×3×H×W uint8 (a quarter of
    float's memory): crops are cut from this without decoding the file again."""
    image = images.load_image(path)
    if min(image.size) > short_side:
        scale = short_side / min(image.size)
        image = image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))), Image.BICUBIC)
    return torch.from_numpy(np.asarray(image).copy()).permute(2, 0, 1).unsqueeze(0)


def random_crop(path: Path, crop: int, generator: torch.Generator) -> torch.Tensor:
    """A crop×crop piece of the photo seen with its shorter side between crop and 2·crop, maybe
    mirrored. The square is cut first and then resized, so each crop costs one small resize."""
    photo = _reduced(path, 2 * crop)
    h, w = photo.shape[-2:]
    u = torch.rand(3, generator=generator).tolist()
    side = max(1, round(min(h, w) / (1 + u[0])))  # the square, in photo pixels, that becomes the crop
    x, y = round(u[1] * (w - side)), round(u[2] * (h - side))
    tensor = images.resize(photo[..., y : y + side, x : x + side].float() / 255.0, (crop, crop))
    if torch.rand(1, generator=generator).item() < 0.5:
        tensor = tensor.flip(-1)
    return tensor


def training_batch(photos: list[Path], config: TrainConfig, generator: torch.Generator) -> torch.Tensor:
    """`batch` random crops; an unreadable photo is dropped from `photos` with a warning."""
    crops = []
    while len(crops) < config.batch:
        if not photos:
            raise BrushworkError(f"none of the photos in {config.data} could be decoded")
        path = photos[int(torch.randint(len(photos), (1,), generator=generator))]
        try:
            crops.append(random_crop(path, config.crop, generator))
        except BrushworkError as e:
            print(f"brushwork: warning: dropping a photo: {e}", file=sys.stderr)
            photos.remove(path)
    return torch.cat(crops)


def save_model(path: Path, net: TransformNet, metadata: dict[str, str], optimizer: torch.optim.Optimizer | None = None) -> None:
    """Write a model (and, for a checkpoint, the Adam state as `optimizer.*` tensors) atomically."""
    from safetensors.torch import save

    tensors = {k: v.detach().float().cpu().contiguous() for k, v in net.state_dict().items()}
    if optimizer is not None:
        for index, state in optimizer.state_dict()["state"].items():
            for key, value in state.items():
                tensors[f"optimizer.{index}.{key}"] = torch.as_tensor(value).detach().float().cpu().contiguous()
    images.write_atomic(path, save(tensors, metadata=metadata))


def restore_optimizer(optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor]) -> None:
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        if key.startswith("optimizer."):
            _, index, name = key.split(".", 2)
            state.setdefault(int(index), {})[name] = value
    full = optimizer.state_dict()
    full["state"] = state
    optimizer.load_state_dict(full)


def style_name(styles: list[str]) -> str:
    return " + ".join(Path(s).stem for s in styles)


def check_config(config: TrainConfig) -> None:
    """Everything that can be wrong with the request, before loading any network."""
    if config.output.suffix != ".safetensors":
        raise BrushworkError(f"the model file must end in .safetensors, got {config.output}")
    if config.output.exists() and not (config.overwrite or config.resume):
        raise BrushworkError(f"{config.output} exists; pass --overwrite to replace it or --resume to continue it")
    images.check_writable(config.output, overwrite=True)  # a folder that exists and can be written
    if config.resume and not checkpoint_path(config.output).is_file():
        raise BrushworkError(f"--resume: no checkpoint {checkpoint_path(config.output)} to continue from")
    for name in ("iterations", "batch", "sample_every", "checkpoint_every"):
        if getattr(config, name) < 1:
            raise BrushworkError(f"--{name.replace('_', '-')} must be at least 1")
    smallest = min_side(tuple(sum(config.options.layers, ())))
    if config.crop < smallest:
        raise BrushworkError(f"--crop {config.crop} is too small for the chosen layers (at least {smallest} px)")
    config.options.validate(len(config.styles))


@dataclass
class StartingPoint:
    """Where a run begins: fresh, or where the checkpoint of --output left off."""

    width: int
    blocks: int
    iteration: int = 0
    seconds: float = 0.0  # training time already spent, so the model's metadata counts all of it
    tensors: dict[str, torch.Tensor] | None = None  # the checkpoint's network and Adam state


def starting_point(config: TrainConfig) -> StartingPoint:
    """A resumed run must keep the checkpoint's shape: its weights fit no other network."""
    if not config.resume:
        return StartingPoint(16 if config.width is None else config.width, 5 if config.blocks is None else config.blocks)
    tensors, saved = read_model_file(checkpoint_path(config.output))
    iteration = int(saved.get("iteration", 0))
    seconds = float(json.loads(saved.get("training", "{}")).get("seconds", 0.0))
    for key, requested in (("width", config.width), ("blocks", config.blocks)):
        if requested is not None and requested != int(saved[key]):
            raise BrushworkError(f"--{key} {requested} differs from the checkpoint's {saved[key]}")
    return StartingPoint(int(saved["width"]), int(saved["blocks"]), iteration, seconds, tensors)


def train(config: TrainConfig) -> TrainResult:
    """Train (or continue training) and write config.output; see the module docstring."""
    return TrainingRun(config).run()


class TrainingRun:
    """One call of `train`: the network, its optimizer, the style targets and the sample photos
    prepared once, then iterations until done or Ctrl-C, writing samples and checkpoints on the way."""

    def __init__(self, config: TrainConfig):
        check_config(config)
        self.config, self.options = config, config.options
        styles = [images.load_image(s) for s in config.styles]
        self.description = RunDescription.from_options(self.options, len(styles))  # what the losses read
        self.photos, self.held_out = split_holdout(find_photos(config.data), config.holdout)
        self.begin = starting_point(config)
        torch.manual_seed(self.options.seed)  # the network's initial weights
        self.net = TransformNet(self.begin.width, self.begin.blocks)
        self.engine = engine_for(self.options)
        self.device = self.engine.device
        self.dtype = pick_dtype(self.options.precision, self.device)
        self.net.to(self.device).train()
        self.optimizer = torch.optim.Adam(self.net.parameters(), lr=self.options.lr or DEFAULT_LR)
        if self.begin.tensors is not None:
            self.net.load_state_dict({k: v for k, v in self.begin.tensors.items() if not k.startswith("optimizer.")})
            restore_optimizer(self.optimizer, self.begin.tensors)
        self.style_loss = style_loss_for(self.description, self.style_targets(styles))
        style_layers, self.content_layers = self.options.layers
        all_layers = tuple(dict.fromkeys(style_layers + self.content_layers))
        self.features = functools.partial(self.engine.features, layers=all_layers, dtype=self.dtype)
        self.sample_inputs = self.load_samples()
        self.iteration = self.begin.iteration
        self.losses: list[float] = []  # the total of every iteration run in this call

    def style_targets(self, styles: list[Image.Image]) -> list[dict[str, torch.Tensor]]:
        """Style targets (Grams, or the --style-loss's statistics) of each style image at the
        size `stylize --size CROP` would use, so a trained model paints what an optimization
        at that size would."""
        style_layers, _ = self.options.layers
        grams = []
        for style in images.crop_styles(styles, self.options.style_crop):
            style_side = self.options.style_side(self.config.crop, max(style.size))
            tensor = images.resize(images.to_tensor(style), images.fit_size(style.width, style.height, style_side))
            if min(tensor.shape[-2:]) < min_side(style_layers):
                raise BrushworkError(f"the style image at {style_side} px is too small for the style layers; raise --style-scale")
            grams.append(self.engine.style_grams((image_key(style),), tensor, style_layers, self.dtype,
                                                 statistics=STYLE_LOSSES[self.options.style_loss].statistics))
        return grams

    def load_samples(self) -> list[torch.Tensor]:
        """The held-out photos, decoded once: samples are written many times during a run."""
        if self.held_out:
            samples_dir(self.config.output).mkdir(exist_ok=True)
        inputs = []
        for path in self.held_out:
            photo = images.load_image(path)
            inputs.append(images.resize(images.to_tensor(photo), images.fit_size(*photo.size, 2 * self.config.crop)))
        return inputs

    def run(self) -> TrainResult:
        """Iterate until --iterations; Ctrl-C stops with a checkpoint instead of losing the run."""
        config = self.config
        generator = torch.Generator().manual_seed(self.options.seed * 1_000_003 + self.begin.iteration)  # crops
        self.started = time.perf_counter()
        reporter = TrainProgress(self.begin.iteration, config.iterations, config.quiet)
        stop_reason = "done"
        try:
            while self.iteration < config.iterations:
                content, style, _, total = self.step(training_batch(self.photos, config, generator).to(self.device))
                self.iteration += 1
                self.losses.append(total)
                reporter.update(self.iteration, total, content, style)
                self.write_along_the_way()
        except KeyboardInterrupt:
            stop_reason = "interrupted"
        finally:
            reporter.close()
        seconds = self.finish(stop_reason)
        return TrainResult(self.iteration, self.losses, stop_reason, seconds)

    def step(self, batch: torch.Tensor) -> list[float]:
        """One Adam step on a batch of crops, scored like `stylize` scores an image: each crop is
        its own content target. Returns [content, style, tv, total], read in one device sync."""
        with torch.no_grad():
            content_loss = content_loss_for(self.description, self.engine.features(batch, self.content_layers, self.dtype))
        objective = Objective.for_run(self.description, self.features, content_loss, self.style_loss)
        with torch.autocast(self.device.type, dtype=self.dtype, enabled=self.dtype != torch.float32):
            output = self.net(batch)
        terms = objective.terms(objective.features(output), output)
        values = terms.tolist()
        if not math.isfinite(values[3]):
            raise BrushworkError(f"training diverged (loss became NaN/inf) at iteration {self.iteration + 1}; try a lower --lr")
        self.optimizer.zero_grad(set_to_none=True)
        terms[3].backward()
        self.optimizer.step()
        return values

    def write_along_the_way(self) -> None:
        """Samples show how the style develops; checkpoints bound what a crash can lose."""
        config, iteration = self.config, self.iteration
        if self.held_out and (iteration % config.sample_every == 0 or iteration == config.iterations):
            self.write_samples()
        if iteration % config.checkpoint_every == 0:
            self.save_checkpoint(time.perf_counter() - self.started)

    def write_samples(self) -> None:
        """The network on the held-out photos, in eval mode as `apply` will run it."""
        self.net.eval()
        with torch.no_grad(), torch.autocast(self.device.type, dtype=self.dtype, enabled=self.dtype != torch.float32):
            for path, tensor in zip(self.held_out, self.sample_inputs):
                image = images.to_pil(self.net(tensor.to(self.device)).float())
                images.save_image(image, samples_dir(self.config.output) / f"{path.stem}_{self.iteration:06d}.jpg", overwrite=True)
        self.net.train()

    def finish(self, stop_reason: str) -> float:
        """The last checkpoint (unless just written) and, if training ran to the end, the model;
        returns the seconds this call trained."""
        seconds = time.perf_counter() - self.started
        if self.iteration % self.config.checkpoint_every != 0 or stop_reason == "interrupted":
            self.save_checkpoint(seconds)
        if stop_reason == "done":
            save_model(self.config.output, self.net.eval(), self.metadata(seconds))
        return seconds

    def save_checkpoint(self, seconds: float) -> None:
        save_model(checkpoint_path(self.config.output), self.net, self.metadata(seconds), self.optimizer)

    def metadata(self, seconds: float) -> dict[str, str]:
        """What `--resume` needs to continue, and what a model's user may want to know of its training."""
        config, options = self.config, self.options
        training = {
            "iteration": self.iteration, "iterations": config.iterations, "batch": config.batch, "crop": config.crop,
            "lr": options.lr or DEFAULT_LR, "photos": [p.name for p in self.photos],
            "seconds": round(self.begin.seconds + seconds, 1), "device": str(self.device),
            "dtype": str(self.dtype).removeprefix("torch."),
        }  # fmt: skip
        return model_metadata(
            self.net, style_name(config.styles), {f: getattr(options, f) for f in TRAIN_FIELDS}, iteration=self.iteration,
            training=json.dumps(training),
        )


class TrainProgress:
    """A tqdm bar with the loss and ETA on a terminal; about twenty plain lines otherwise."""

    def __init__(self, start: int, total: int, quiet: bool, stream: TextIO | None = None):
        self.stream = stream or sys.stderr
        self.start, self.total, self.quiet = start, total, quiet
        self.started = time.perf_counter()
        self.tty = not quiet and self.stream.isatty()
        self.bar = tqdm(total=total, initial=start, desc="train", unit="it", file=self.stream, dynamic_ncols=True) if self.tty else None
        self.every = max(1, (total - start) // 20)

    def update(self, iteration: int, total: float, content: float, style: float) -> None:
        if self.bar is not None:
            self.bar.set_postfix_str(f"loss={total:.4g} content={content:.3g} style={style:.3g}", refresh=False)
            self.bar.update(iteration - self.bar.n)
        elif not self.quiet and ((iteration - self.start) % self.every == 0 or iteration in (self.start + 1, self.total)):
            elapsed = time.perf_counter() - self.started
            per_iteration = elapsed / (iteration - self.start)
            eta = per_iteration * (self.total - iteration)
            print(
                f"train: iteration {iteration}/{self.total} loss {total:.4g} (content {content:.4g}, style {style:.4g}) "
                f"{per_iteration:.2f} s/it, ETA {int(eta // 60)}:{int(eta % 60):02d}",
                file=self.stream,
                flush=True,
            )

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
