"""The three ideas of Gatys-style transfer, one small class each.

Normalization, and why: every term is a *relative* error, so its size does not depend on
the image size, the layer's channel count or the feature magnitudes of a layer.

* Gram matrix: G = F Fᵀ / (H·W) for features F of shape C×(H·W). Dividing by the number of
  positions makes G an average over the image, so a 256 px and a 1024 px render of the same
  texture have the same G.
* Style loss of a layer: ‖G(x) − G_target‖² / ‖G_target‖². Dividing by the target's own
  energy puts relu1_1 (values ~10³) and relu5_1 (values ~10⁰) on one scale, so equal layer
  weights really mean equal say. Layer weights are normalized to sum to 1, so the total is
  a weighted mean and adding a layer does not change the balance against content.
* Content loss of a layer: ‖F(x) − F_target‖² / ‖F_target‖², likewise a weighted mean.
* Total variation: mean squared difference between neighbouring pixels (image in [0, 1]).

With these, `content_weight=1, style_weight=5` give comparable results at every size, and the
objective is exactly the score used by `brushwork score` and the benchmarks
(content distance + 5 · style distance) plus TV.

Gram matrices and sums are computed in fp32 even under bf16 autocast: a bf16 Gram of a
large feature map loses the small differences the optimizer is steering by.
"""

from __future__ import annotations

import torch
from torch import nn


class _Gram(torch.autograd.Function):
    """F Fᵀ / P whose backward is one matrix product, (dG + dGᵀ) F / P, instead of autograd's
    two products and the sum of two C×P gradients: about a third of a style step's loss time."""

    @staticmethod
    def forward(ctx, flat: torch.Tensor, positions: int) -> torch.Tensor:
        ctx.save_for_backward(flat)
        ctx.positions = positions
        return flat @ flat.transpose(1, 2) / positions

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        (flat,) = ctx.saved_tensors
        return (grad + grad.transpose(1, 2)) @ flat / ctx.positions, None


def gram_matrix(features: torch.Tensor, positions: int | None = None) -> torch.Tensor:
    """N×C×H×W features -> N×C×C Gram matrices, averaged over positions, in fp32.

    `positions` divides instead of H·W when `features` are one tile of a larger map: the
    tiles' Grams, each divided by the whole map's positions, then add up to the whole's."""
    n, c, h, w = features.shape
    with torch.autocast(features.device.type, enabled=False):
        return _Gram.apply(features.float().reshape(n, c, h * w), positions or h * w)


def relative_error(value: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """‖value − target‖² / ‖target‖². A one-image target against a batch of N counts the target
    N times, so a batch's error is the mean of its images' errors (fast-mode training)."""
    with torch.autocast(value.device.type, enabled=False):
        value, target = value.float(), target.float().expand_as(value)
        return (value - target).pow(2).sum() / target.pow(2).sum().clamp_min(1e-12)


def _normalized(weights: dict[str, float]) -> dict[str, float]:
    total = sum(weights.values())
    return {name: w / total for name, w in weights.items()}


class ContentLoss(nn.Module):
    """Weighted mean over layers of the relative feature error against the content image."""

    def __init__(self, targets: dict[str, torch.Tensor], layer_weights: dict[str, float]):
        super().__init__()
        self.targets = {name: t.detach() for name, t in targets.items()}
        self.layer_weights = _normalized(layer_weights)
        self._energy: dict[str, torch.Tensor] = {}

    def forward(self, features: dict[str, torch.Tensor]) -> torch.Tensor:
        return sum(w * relative_error(features[name], self.targets[name]) for name, w in self.layer_weights.items())

    def part(self, features: dict[str, torch.Tensor], targets: dict[str, torch.Tensor]) -> torch.Tensor:
        """One tile's share of the loss: its squared error over the whole target's energy, so
        that the tiles' shares add up to forward() of the whole image."""
        total = 0.0
        with torch.autocast(next(iter(features.values())).device.type, enabled=False):
            for name, w in self.layer_weights.items():
                error = (features[name].float() - targets[name].float()).pow(2).sum()
                total = total + w * error / self.energy(name)
        return total

    def energy(self, name: str) -> torch.Tensor:
        if name not in self._energy:
            self._energy[name] = self.targets[name].float().pow(2).sum().clamp_min(1e-12)
        return self._energy[name]


class StyleLoss(nn.Module):
    """Weighted mean over layers of the relative Gram error against the target Grams.

    Several style images blend by averaging their Gram matrices with the style weights,
    which is the Gram of a texture that is those styles in those proportions.
    """

    def __init__(self, target_grams: dict[str, torch.Tensor], layer_weights: dict[str, float]):
        super().__init__()
        self.targets = {name: g.detach() for name, g in target_grams.items()}
        self.layer_weights = _normalized(layer_weights)

    @staticmethod
    def blend(grams: list[dict[str, torch.Tensor]], style_weights: list[float]) -> dict[str, torch.Tensor]:
        total = sum(style_weights)
        return {name: sum(w / total * g[name] for g, w in zip(grams, style_weights)) for name in grams[0]}

    def forward(self, features: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.compare({name: gram_matrix(features[name]) for name in self.layer_weights})

    def compare(self, grams: dict[str, torch.Tensor]) -> torch.Tensor:
        """The loss of given Gram matrices (the tiled evaluation accumulates them tile by tile)."""
        return sum(w * relative_error(grams[name], self.targets[name]) for name, w in self.layer_weights.items())


class TVLoss(nn.Module):
    """Mean squared difference between neighbouring pixels; smooths high-frequency noise.

    With `wrap` (seamless output) the last column neighbours the first and the last row the
    first, so the smoothing also holds across the join when the picture is repeated."""

    def __init__(self, wrap: bool = False):
        super().__init__()
        self.wrap = wrap

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        with torch.autocast(image.device.type, enabled=False):
            image = image.float()
            if self.wrap:
                dx = (image.roll(-1, -1) - image).pow(2).mean()
                dy = (image.roll(-1, -2) - image).pow(2).mean()
            else:
                dx = (image[..., :, 1:] - image[..., :, :-1]).pow(2).mean()
                dy = (image[..., 1:, :] - image[..., :-1, :]).pow(2).mean()
            return dx + dy
