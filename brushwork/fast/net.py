"""The transformation network of fast mode, and its .safetensors file format.

Johnson et al., "Perceptual Losses for Real-Time Style Transfer" (2016), with Ulyanov et al.'s
instance normalization: a 9×9 conv, two stride-2 convs down, residual blocks, two
upsample-then-conv stages up (Odena et al.: nearest upsampling plus a conv leaves no
checkerboard pattern, unlike transposed convs), a 9×9 conv back to RGB. Channels are
width, 2·width and 4·width; Johnson's network is width 32, and width 8-16 is about 4-16× cheaper
per pixel, which is what a CPU needs for big images.

Images in and out are RGB in [0, 1]. Each upsample goes to the exact size of the matching
encoder stage, so any input size works (odd sizes too) and the output has the input's size.

File format: a .safetensors whose tensors are the network's state dict (a training checkpoint
adds `optimizer.*` tensors, which loading ignores) and whose header metadata says
`format: brushwork-fast` plus the network shape, style name and training options.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import BrushworkError

FORMAT = "brushwork-fast"
FORMAT_VERSION = "1"


def conv(c_in: int, c_out: int, kernel: int, stride: int = 1) -> nn.Conv2d:
    """Reflection padding: zero padding makes a dark frame that the style loss then paints."""
    return nn.Conv2d(c_in, c_out, kernel, stride, padding=kernel // 2, padding_mode="reflect")


class ConvNormReLU(nn.Sequential):
    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int = 1):
        super().__init__(conv(c_in, c_out, kernel, stride), nn.InstanceNorm2d(c_out, affine=True), nn.ReLU())


class Residual(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.body = nn.Sequential(
            ConvNormReLU(channels, channels, 3),
            conv(channels, channels, 3),
            nn.InstanceNorm2d(channels, affine=True),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class TransformNet(nn.Module):
    """N×3×H×W RGB in [0, 1] -> stylized N×3×H×W RGB in [0, 1]."""

    def __init__(self, width: int = 16, blocks: int = 5):
        super().__init__()
        if width < 1 or blocks < 0:
            raise BrushworkError(f"network width must be at least 1 and blocks at least 0, got {width} and {blocks}")
        self.width, self.blocks = width, blocks
        self.stem = ConvNormReLU(3, width, 9)
        self.down1 = ConvNormReLU(width, 2 * width, 3, stride=2)
        self.down2 = ConvNormReLU(2 * width, 4 * width, 3, stride=2)
        self.residuals = nn.Sequential(*(Residual(4 * width) for _ in range(blocks)))
        self.up1 = ConvNormReLU(4 * width, 2 * width, 3)
        self.up2 = ConvNormReLU(2 * width, width, 3)
        self.head = conv(width, 3, 9)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        x0 = self.stem(image)
        x1 = self.down1(x0)
        x = self.residuals(self.down2(x1))
        x = self.up1(F.interpolate(x, size=x1.shape[-2:], mode="nearest"))
        x = self.up2(F.interpolate(x, size=x0.shape[-2:], mode="nearest"))
        return torch.sigmoid(self.head(x))


@dataclass
class FastModel:
    """A loaded network and what its file says about it."""

    net: TransformNet
    metadata: dict[str, str]

    @property
    def style(self) -> str:
        return self.metadata.get("style", "?")

    @property
    def options(self) -> dict:
        return json.loads(self.metadata.get("options", "{}"))


def model_metadata(net: TransformNet, style: str, options: dict, **extra: object) -> dict[str, str]:
    """The header of a model file: safetensors metadata is str -> str, so values are text/JSON."""
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "width": str(net.width),
        "blocks": str(net.blocks),
        "style": style,
        "options": json.dumps(options, sort_keys=True),
        **{key: str(value) for key, value in extra.items()},
    }


def read_model_file(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """All tensors and the metadata of a brushwork fast model (or checkpoint), else BrushworkError."""
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    if not path.is_file():
        raise BrushworkError(f"model file not found: {path}")
    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
            if metadata.get("format") != FORMAT:
                raise BrushworkError(f"{path} is not a brushwork fast-mode model (its header has no format: {FORMAT})")
            tensors = {key: f.get_tensor(key) for key in f.keys()}
    except (SafetensorError, OSError, ValueError) as e:
        raise BrushworkError(f"cannot read model {path} (not a .safetensors file, or corrupt): {e}") from None
    if metadata.get("format_version") != FORMAT_VERSION:
        raise BrushworkError(f"{path} has model format version {metadata.get('format_version')}; this brushwork reads {FORMAT_VERSION}")
    return tensors, metadata


def load_model(path: str | Path) -> FastModel:
    tensors, metadata = read_model_file(path)
    try:
        net = TransformNet(int(metadata["width"]), int(metadata["blocks"]))
        net.load_state_dict({k: v for k, v in tensors.items() if not k.startswith("optimizer.")})
    except (KeyError, ValueError, RuntimeError) as e:
        raise BrushworkError(f"{path} is damaged: its tensors do not match the network its header describes ({e})") from None
    return FastModel(net.eval().requires_grad_(False), metadata)
