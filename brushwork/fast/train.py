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

import argparse
import functools
import json
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from tqdm import tqdm

from .. import images
from ..api import engine_for
from ..errors import BrushworkError
from ..losses import ContentLoss, StyleLoss, TVLoss
from ..devices import pick_dtype
from ..engine import image_key
from ..options import Options, add_flags, options_from_args
from ..plan import min_side
from .net import TransformNet, model_metadata, read_model_file

PHOTO_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff"}
# The stylize options that mean something for training (the others are about one optimization run).
TRAIN_FIELDS = (
    "preset", "style_layers", "content_layers", "style_layer_weights", "style_weights", "content_weight",
    "style_weight", "tv_weight", "lr", "seed", "style_scale", "style_crop", "pooling", "weights",
    "weights_format", "device", "precision",
)  # fmt: skip
DEFAULT_LR = 1e-3


@dataclass
class TrainConfig:
    styles: list[str]
    data: str
    output: Path
    options: Options = field(default_factory=Options)
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


def train(config: TrainConfig) -> TrainResult:
    """Train (or continue training) and write config.output; see the module docstring."""
    check_config(config)
    options = config.options
    styles = [images.load_image(s) for s in config.styles]
    train_photos, held_out = split_holdout(find_photos(config.data), config.holdout)

    shape = {"width": config.width, "blocks": config.blocks}
    start, seconds_before, tensors = 0, 0.0, None
    if config.resume:
        tensors, saved = read_model_file(checkpoint_path(config.output))
        start = int(saved.get("iteration", 0))
        seconds_before = float(json.loads(saved.get("training", "{}")).get("seconds", 0.0))
        for key in shape:
            if shape[key] is not None and shape[key] != int(saved[key]):
                raise BrushworkError(f"--{key} {shape[key]} differs from the checkpoint's {saved[key]}")
            shape[key] = int(saved[key])
    torch.manual_seed(options.seed)  # the network's initial weights
    net = TransformNet(16 if shape["width"] is None else shape["width"], 5 if shape["blocks"] is None else shape["blocks"])
    engine = engine_for(options)
    device = engine.device
    dtype = pick_dtype(options.precision, device)
    net.to(device).train()
    optimizer = torch.optim.Adam(net.parameters(), lr=options.lr or DEFAULT_LR)
    if tensors is not None:
        net.load_state_dict({k: v for k, v in tensors.items() if not k.startswith("optimizer.")})
        restore_optimizer(optimizer, tensors)

    style_layers, content_layers = options.layers
    all_layers = tuple(dict.fromkeys(style_layers + content_layers))
    if options.style_crop is not None:
        styles = [images.crop(s, options.style_crop) for s in styles]
    style_side = max(1, round(config.crop * options.style_scale))
    grams = []
    for style in styles:
        tensor = images.to_tensor(style)
        tensor = images.resize(tensor, images.fit_size(style.width, style.height, style_side))
        if min(tensor.shape[-2:]) < min_side(style_layers):
            raise BrushworkError(f"the style image at {style_side} px is too small for the style layers; raise --style-scale")
        grams.append(engine.style_grams((image_key(style),), tensor, style_layers, dtype))
    style_loss = StyleLoss(
        StyleLoss.blend(grams, list(options.style_weights or [1.0] * len(styles))),
        dict(zip(style_layers, options.style_layer_weights or [1.0] * len(style_layers))),
    )
    content_layer_weights = dict.fromkeys(content_layers, 1.0)
    tv_loss = TVLoss()

    def metadata(iteration: int, seconds: float) -> dict[str, str]:
        training = {
            "iteration": iteration, "iterations": config.iterations, "batch": config.batch, "crop": config.crop,
            "lr": options.lr or DEFAULT_LR, "photos": [p.name for p in train_photos], "seconds": round(seconds_before + seconds, 1),
            "device": str(device), "dtype": str(dtype).removeprefix("torch."),
        }  # fmt: skip
        return model_metadata(
            net, style_name(config.styles), {f: getattr(options, f) for f in TRAIN_FIELDS}, iteration=iteration,
            training=json.dumps(training),
        )

    samples = samples_dir(config.output)
    if held_out:
        samples.mkdir(exist_ok=True)
    sample_inputs = []
    for path in held_out:
        photo = images.load_image(path)
        sample_inputs.append(images.resize(images.to_tensor(photo), images.fit_size(*photo.size, 2 * config.crop)))

    def write_samples(iteration: int) -> None:
        net.eval()
        with torch.no_grad(), torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32):
            for path, tensor in zip(held_out, sample_inputs):
                image = images.to_pil(net(tensor.to(device)).float())
                images.save_image(image, samples / f"{path.stem}_{iteration:06d}.jpg", overwrite=True)
        net.train()

    generator = torch.Generator().manual_seed(options.seed * 1_000_003 + start)  # crops
    started = time.perf_counter()
    losses: list[float] = []
    reporter = TrainProgress(start, config.iterations, config.quiet)
    iteration, stop_reason = start, "done"
    try:
        while iteration < config.iterations:
            batch = training_batch(train_photos, config, generator).to(device)
            with torch.no_grad():
                content_loss = ContentLoss(engine.features(batch, content_layers, dtype), content_layer_weights)
            with torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32):
                output = net(batch)
            feats = engine.features(output, all_layers, dtype)
            c, s, t = content_loss(feats), style_loss(feats), tv_loss(output)
            total = options.content_weight * c + options.style_weight * s + options.tv_weight * t
            values = torch.stack([total, c, s]).tolist()  # one read from the device per iteration
            if not math.isfinite(values[0]):
                raise BrushworkError(f"training diverged (loss became NaN/inf) at iteration {iteration + 1}; try a lower --lr")
            optimizer.zero_grad(set_to_none=True)
            total.backward()
            optimizer.step()
            iteration += 1
            losses.append(values[0])
            reporter.update(iteration, *values)
            if held_out and (iteration % config.sample_every == 0 or iteration == config.iterations):
                write_samples(iteration)
            if iteration % config.checkpoint_every == 0:
                save_model(checkpoint_path(config.output), net, metadata(iteration, time.perf_counter() - started), optimizer)
    except KeyboardInterrupt:
        stop_reason = "interrupted"
    finally:
        reporter.close()
    seconds = time.perf_counter() - started
    if iteration % config.checkpoint_every != 0 or stop_reason == "interrupted":  # else just written
        save_model(checkpoint_path(config.output), net, metadata(iteration, seconds), optimizer)
    if stop_reason == "done":
        save_model(config.output, net.eval(), metadata(iteration, seconds))
    return TrainResult(iteration, losses, stop_reason, seconds)


class TrainProgress:
    """A tqdm bar with the loss and ETA on a terminal; about twenty plain lines otherwise."""

    def __init__(self, start: int, total: int, quiet: bool, stream=None):
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


def cmd_train(args: argparse.Namespace) -> int:
    config = TrainConfig(
        styles=args.style, data=args.data, output=Path(args.output), options=options_from_args(args),
        iterations=args.iterations, batch=args.batch, crop=args.crop, width=args.width, blocks=args.blocks,
        holdout=args.holdout, sample_every=args.sample_every, checkpoint_every=args.checkpoint_every,
        resume=args.resume, overwrite=args.overwrite, quiet=args.quiet,
    )  # fmt: skip
    if args.threads is not None:
        torch.set_num_threads(max(1, args.threads))
    result = train(config)
    if result.stop_reason == "interrupted":
        print(
            f"brushwork: interrupted at iteration {result.iteration}; checkpoint saved to "
            f"{checkpoint_path(config.output)} (continue with --resume)",
            file=sys.stderr,
        )
        return 130
    if not args.quiet:
        print(f"wrote {config.output} ({result.iteration} iterations, {result.seconds:.0f} s this run)", file=sys.stderr)
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a fast-mode network for a style (then use `brushwork apply`)")
    p.add_argument("--style", "-s", required=True, nargs="+", action="extend", help="style image(s)")
    p.add_argument("--data", required=True, metavar="DIR", help="folder of training photos (searched recursively)")
    p.add_argument("--output", "-o", required=True, metavar="NAME.safetensors", help="model file to write")
    p.add_argument("--iterations", type=int, default=2000, help="training iterations in all (default 2000)")
    p.add_argument("--batch", type=int, default=4, help="crops per iteration (default 4)")
    p.add_argument("--crop", type=int, default=256, help="side of the square training crops in px (default 256)")
    p.add_argument("--width", type=int, help="channels of the network's first layer; 32 is Johnson et al.'s (default 16)")
    p.add_argument("--blocks", type=int, help="residual blocks (default 5)")
    p.add_argument("--holdout", type=int, default=2, help="photos kept out of training for samples (default 2)")
    p.add_argument("--sample-every", type=int, default=200, metavar="N", help="write samples every N iterations")
    p.add_argument("--checkpoint-every", type=int, default=200, metavar="N", help="write a checkpoint every N iterations")
    p.add_argument("--resume", action="store_true", help="continue from the checkpoint of --output")
    p.add_argument("--overwrite", action="store_true", help="replace an existing model file")
    p.add_argument("--threads", type=int, help="CPU threads for torch (default: torch's choice)")
    p.add_argument("--quiet", "-q", action="store_true")
    add_flags(p, TRAIN_FIELDS, "loss options (as for `brushwork stylize`; --lr is Adam's, default 1e-3)", False)
    p.set_defaults(func=cmd_train)
