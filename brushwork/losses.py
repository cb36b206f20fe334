"""The three ideas of Gatys-style transfer, one small class each, and two more style terms.

Style losses (--style-loss; STYLE_LOSSES, each a style_terms.StyleLossKind whose instances are
StyleTerms): `gram` (StyleLoss) matches Gram matrices,
`meancov` (MeanCovLoss) the features' mean and covariance separately, `sliced`
(sliced.SlicedWassersteinLoss, in its own module) their whole distribution along random
directions, fixed per scale (its docstring says why). Each is normalized like the Gram loss below, and scaled so that
one --style-weight strikes about the same balance with each (SCALE_ERROR).

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

from .sliced import SlicedWassersteinLoss
from .style_terms import SCALE_ERROR, StyleLossKind
from .style_terms import normalized as _normalized


class _Gram(torch.autograd.Function):
    """F Fᵀ / P whose backward is one matrix product, (dG + dGᵀ) F / P, instead of autograd's
    two products and the sum of two C×P gradients: about a third of a style step's loss time.
    With position weights w, F diag(w) Fᵀ / P, whose backward (dG + dGᵀ) (F diag(w)) / P
    reuses the forward's weighted features: one C×P product with w per evaluation, not two.
    The product is in fp32, but without weights what is kept for the backward is F as it came
    (bf16 under autocast): an fp32 copy of every style layer's features, kept from forward to
    backward, was a fifth of a bf16 evaluation's peak memory."""

    @staticmethod
    def forward(ctx, flat: torch.Tensor, positions, weights: torch.Tensor | None = None) -> torch.Tensor:
        full = flat.float()
        weighted = full if weights is None else full * weights
        ctx.save_for_backward(flat if weights is None else weighted)
        ctx.positions = positions
        return weighted @ full.transpose(1, 2) / positions

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None, None]:
        (weighted,) = ctx.saved_tensors
        return (grad + grad.transpose(1, 2)) @ weighted.float() / ctx.positions, None, None


def gram_matrix(
    features: torch.Tensor, positions: float | torch.Tensor | None = None, weights: torch.Tensor | None = None
) -> torch.Tensor:
    """N×C×H×W features -> N×C×C Gram matrices, averaged over positions, in fp32.

    `positions` divides instead of H·W when `features` are one tile of a larger map: the
    tiles' Grams, each divided by the whole map's positions, then add up to the whole's.
    `weights` (1×1×H×W, a region mask at this layer: masks.py) make it the weighted average
    Σ w f fᵀ / Σ w: Gatys et al.'s guided Gram matrix of the features times √w (regions.py
    says why √w); `positions` is then the whole map's Σ w."""
    n, c, h, w = features.shape
    with torch.autocast(features.device.type, enabled=False):
        flat = features.reshape(n, c, h * w)  # _Gram computes in fp32 and keeps F as it came
        if weights is None:
            return _Gram.apply(flat, h * w if positions is None else positions)
        weights = weights.float().reshape(1, 1, h * w)
        return _Gram.apply(flat, weights.sum().clamp_min(1e-12) if positions is None else positions, weights)


def relative_error(value: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """‖value − target‖² / ‖target‖². A one-image target against a batch of N counts the target
    N times, so a batch's error is the mean of its images' errors (fast-mode training)."""
    with torch.autocast(value.device.type, enabled=False):
        value, target = value.float(), target.float().expand_as(value)
        return (value - target).pow(2).sum() / target.pow(2).sum().clamp_min(1e-12)


# Style losses cost a uniform error of scale the same (style_terms.SCALE_ERROR says how).
# That rule alone puts the sliced loss at --style-weight 5 where the Gram loss is at 5 (in
# benchmarks/losses.py's sweep, mean content distance 0.485 against 0.476); meancov with its
# two terms averaged paid 1.4× gram's content at 5 in a first sweep (0.40 at weight 2), so
# its terms are summed and quartered instead (0.470 at 5).
MEANCOV_BALANCE = 0.25
ENERGY_CHANNELS = 8  # channels of a content target widened at once (ContentLoss.energy)


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
        """‖target‖², widened and squared a few channels at a time: the whole map at once would
        be two fp32 copies of it, 3.5 GiB for relu4_2 at 7680×7680 in bf16 (the peak of such a
        run, in its first tile, before this was counted in blocks)."""
        if name not in self._energy:
            blocks = self.targets[name].split(ENERGY_CHANNELS, dim=1)
            self._energy[name] = sum(block.float().pow(2).sum() for block in blocks).clamp_min(1e-12)
        return self._energy[name]


class StyleLoss(nn.Module):
    """`--style-loss gram`: weighted mean over layers of the relative Gram error against the
    target Grams.

    Several style images blend by averaging their Gram matrices with the style weights,
    which is the Gram of a texture that is those styles in those proportions (the second
    moment of the mixture of their features).

    A StyleLossKind and a TileableStyleTerm (style_terms.py): the statistics are averages over
    positions, so the tiled evaluation adds them up tile by tile (objective.TiledObjective).
    """

    name = "gram"
    summary = "Gram matrices: uncentred second moments of each layer's features (Gatys et al.)"
    tileable = True

    def __init__(self, target_grams: dict[str, torch.Tensor], layer_weights: dict[str, float]):
        super().__init__()
        self.targets = {name: g.detach() for name, g in target_grams.items()}
        self.layer_weights = _normalized(layer_weights)

    statistics = staticmethod(gram_matrix)

    @staticmethod
    def gather(total: torch.Tensor, share: torch.Tensor) -> torch.Tensor:
        """Two tiles' statistics together (objective.tiled_grams): averages over positions add up."""
        return total + share

    @classmethod
    def build(cls, targets: list[dict[str, torch.Tensor]], style_weights: list[float],
              layer_weights: dict[str, float], seed: int = 0) -> "StyleLoss":
        """The factory (StyleLossKind.build): the blended targets; no randomness, so no `seed`."""
        return cls(cls.blend(targets, style_weights), layer_weights)

    @staticmethod
    def blend(grams: list[dict[str, torch.Tensor]], style_weights: list[float]) -> dict[str, torch.Tensor]:
        total = sum(style_weights)
        return {name: sum(w / total * g[name] for g, w in zip(grams, style_weights)) for name in grams[0]}

    def forward(self, features: dict[str, torch.Tensor], weights: dict[str, torch.Tensor] | None = None
                ) -> torch.Tensor:
        """The loss of an image's features; `weights` (per layer, masks.py) restrict it to a region."""
        return self.compare({name: self.statistics(features[name], None, weights and weights[name])
                             for name in self.layer_weights})

    def tile_statistics(self, tile, feats: dict[str, torch.Tensor], positions: dict[str, int],
                        weights: dict[str, torch.Tensor] | None = None) -> dict:
        """One tile's share of every layer's statistics (objective.TiledObjective adds them up);
        with `weights` (a region's mask, cut to the tile), `positions` is each layer's Σ w."""
        return {name: self.statistics(tile.core(feats[name], name), positions[name], weights and weights[name])
                for name in self.layer_weights}

    def compare(self, grams: dict[str, torch.Tensor]) -> torch.Tensor:
        """The loss of given Gram matrices (the tiled evaluation accumulates them tile by tile)."""
        return sum(w * relative_error(grams[name], self.targets[name]) for name, w in self.layer_weights.items())


class MeanCovLoss(StyleLoss):
    """`--style-loss meancov`: each layer's feature mean and covariance, each as a relative
    error: ¼ (4 ‖μ − μ_s‖² / ‖μ_s‖² + ‖Σ − Σ_s‖² / ‖Σ_s‖²) (the 4: SCALE_ERROR; the ¼:
    MEANCOV_BALANCE).

    A Gram matrix is Σ + μμᵀ, and for ReLU features the μμᵀ part holds most of its energy,
    so the Gram error is mostly a mean error and the covariance (which features go together:
    the texture) gets little say. Matching them separately gives both equal say. These are
    the two statistics the Wasserstein-2 distance between Gaussians depends on (it is zero
    exactly when both match); its covariance term, the Bures distance, needs a matrix square
    root per evaluation whose gradient is unstable for the rank-deficient covariances of deep
    layers (relu5_1 has fewer positions than channels at 384 px), so the plain relative
    error of Σ stands in for it.

    The statistics are the Gram matrix of the features with a channel of ones added,
    [[Σ + μμᵀ, μ], [μᵀ, 1]]: averages over positions like a Gram, so they tile exactly and
    blend (averaged with the style weights) into the mean and covariance of the mixture.
    """

    name = "meancov"
    summary = "mean and covariance of each layer's features, separately (the Gaussian W2's statistics)"

    def __init__(self, targets: dict[str, torch.Tensor], layer_weights: dict[str, float]):
        super().__init__(targets, layer_weights)
        self.moments = {name: _mean_and_covariance(t) for name, t in self.targets.items()}

    @staticmethod
    def statistics(features: torch.Tensor, positions=None, weights: torch.Tensor | None = None) -> torch.Tensor:
        ones = features.new_ones(features.shape[0], 1, *features.shape[2:])
        return gram_matrix(torch.cat([features, ones], 1), positions, weights)

    def compare(self, statistics: dict[str, torch.Tensor]) -> torch.Tensor:
        total = 0.0
        for name, w in self.layer_weights.items():
            (mean, cov), (target_mean, target_cov) = _mean_and_covariance(statistics[name]), self.moments[name]
            error = SCALE_ERROR * relative_error(mean, target_mean) + relative_error(cov, target_cov)
            total = total + w * MEANCOV_BALANCE * error
        return total


def _mean_and_covariance(augmented: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """μ and Σ from MeanCovLoss.statistics' [[Σ + μμᵀ, μ], [μᵀ, 1]]."""
    c = augmented.shape[-1] - 1
    mean = augmented[..., :c, c]
    return mean, augmented[..., :c, :c] - mean[..., :, None] * mean[..., None, :]


STYLE_LOSSES: dict[str, StyleLossKind] = {kind.name: kind for kind in (StyleLoss, MeanCovLoss, SlicedWassersteinLoss)}


class TVLoss(nn.Module):
    """Mean squared difference between neighbouring pixels; smooths high-frequency noise.

    With `wrap` (seamless output) the last column neighbours the first and the last row the
    first, so the smoothing also holds across the join when the picture is repeated."""

    def __init__(self, wrap: bool = False):
        super().__init__()
        self.wrap = wrap

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return TotalVariation.apply(image, self.wrap)


class TotalVariation(torch.autograd.Function):
    """TVLoss's value and gradient, one channel at a time. Autograd's version of the same
    formula held six image-sized tensors at once (measured: the differences, their squares, the
    gradients of the slices); at print size each is 0.66 GiB (7680×7680), more than a tile's
    activations, and the tiled objective evaluates TV over the whole image. This holds one
    channel's differences at a time, and the gradient."""

    @staticmethod
    def forward(ctx, image: torch.Tensor, wrap: bool) -> torch.Tensor:
        ctx.save_for_backward(image)
        ctx.wrap = wrap
        total = torch.zeros((), device=image.device)
        for plane in planes(image):
            for dim in (-1, -2):
                total += neighbour_difference(plane, dim, wrap).square_().sum() / pair_count(image, dim, wrap)
        return total

    @staticmethod
    def backward(ctx, grad_total: torch.Tensor) -> tuple[torch.Tensor, None]:
        (image,) = ctx.saved_tensors
        grad = torch.zeros_like(image, dtype=torch.float32)
        for plane, into in zip(planes(image), planes(grad)):
            for dim in (-1, -2):
                step = neighbour_difference(plane, dim, ctx.wrap).mul_(2 * grad_total / pair_count(image, dim, ctx.wrap))
                if ctx.wrap:  # d(x[j+1] - x[j]) / dx: +1 at j+1 (cyclic), -1 at j
                    into.add_(step.roll(1, dim)).sub_(step)
                else:
                    into.narrow(dim, 1, step.shape[dim]).add_(step)
                    into.narrow(dim, 0, step.shape[dim]).sub_(step)
        return grad, None


def planes(image: torch.Tensor) -> list[torch.Tensor]:
    """The H×W planes of an N×C×H×W image (views)."""
    return [image[n, c] for n in range(image.shape[0]) for c in range(image.shape[1])]


def neighbour_difference(plane: torch.Tensor, dim: int, wrap: bool) -> torch.Tensor:
    """x[j+1] - x[j] along `dim` of an H×W plane, in fp32 (cyclic with `wrap`)."""
    plane = plane.float()
    if wrap:
        return plane.roll(-1, dim) - plane
    n = plane.shape[dim]
    return plane.narrow(dim, 1, n - 1) - plane.narrow(dim, 0, n - 1)


def pair_count(image: torch.Tensor, dim: int, wrap: bool) -> int:
    """How many neighbouring pairs the mean along `dim` is over."""
    return image.numel() if wrap else image.numel() // image.shape[dim] * (image.shape[dim] - 1)
