"""The three ideas of Gatys-style transfer, one small class each, and two more style terms.

Style losses (--style-loss; STYLE_LOSSES, each a style_terms.StyleLossKind whose instances are
StyleTerms): `gram` (StyleLoss) matches Gram matrices,
`meancov` (MeanCovLoss) the features' mean and covariance separately, `sliced`
(SlicedWassersteinLoss) their whole distribution along random directions, fixed per scale
(its docstring says why). Each is normalized like the Gram loss below, and scaled so that
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

import numpy as np
import torch
from torch import nn

from .style_terms import StyleLossKind


class _Gram(torch.autograd.Function):
    """F Fᵀ / P whose backward is one matrix product, (dG + dGᵀ) F / P, instead of autograd's
    two products and the sum of two C×P gradients: about a third of a style step's loss time.
    With position weights w, F diag(w) Fᵀ / P, whose backward (dG + dGᵀ) (F diag(w)) / P
    reuses the forward's weighted features: one C×P product with w per evaluation, not two."""

    @staticmethod
    def forward(ctx, flat: torch.Tensor, positions, weights: torch.Tensor | None = None) -> torch.Tensor:
        weighted = flat if weights is None else flat * weights
        ctx.save_for_backward(weighted)
        ctx.positions = positions
        return weighted @ flat.transpose(1, 2) / positions

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None, None]:
        (weighted,) = ctx.saved_tensors
        return (grad + grad.transpose(1, 2)) @ weighted / ctx.positions, None, None


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
        flat = features.float().reshape(n, c, h * w)
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


# Style losses cost a uniform error of scale, features ε too large, the same: 4ε² (to first
# order), what it costs the Gram loss (a Gram matrix is quadratic in the features, so its
# relative error is (2ε)²). Relative errors of first-order statistics (a mean, the sorted
# values of the sliced loss) are ε², so they are multiplied by this; second-order ones (a
# covariance) are not. So one --style-weight strikes about the same balance with every loss.
SCALE_ERROR = 4.0
# That rule alone puts the sliced loss at --style-weight 5 where the Gram loss is at 5 (in
# benchmarks/losses.py's sweep, mean content distance 0.485 against 0.476); meancov with its
# two terms averaged paid 1.4× gram's content at 5 in a first sweep (0.40 at weight 2), so
# its terms are summed and quartered instead (0.470 at 5).
MEANCOV_BALANCE = 0.25


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

    def tile_statistics(self, tile, feats: dict[str, torch.Tensor], positions: dict[str, int]) -> dict:
        """One tile's share of every layer's statistics (objective.TiledObjective adds them up)."""
        return {name: self.statistics(tile.core(feats[name], name), positions[name]) for name in self.layer_weights}

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


class SlicedWassersteinLoss(nn.Module):
    """`--style-loss sliced`: the sliced Wasserstein distance between the output's and the
    style's features at each layer (Heitz, Vanhoey, Chambon & Belcour, CVPR 2021).

    Each layer's C-channel features are projected on C random unit directions; along each,
    the output's P values, sorted, are matched to the style's quantiles at the same P levels
    (k + ½)/P: the squared distance between two 1-D distributions is the squared distance
    between their sorted values. That matches whole distributions, not their second moments.
    Relative like the others: 4 ‖sorted − quantiles‖² / ‖quantiles‖² (the 4: SCALE_ERROR), a
    weighted mean over layers. Reading the style's quantile function at the output's own P
    levels makes it size-invariant: output and style need not have the same number of positions.

    Random directions and L-BFGS. The paper's code draws new directions at every evaluation
    (under torch's L-BFGS): the objective changes under the optimizer at every step, which
    it tolerates because every draw measures the same distance. Here the directions are
    fixed for one objective, drawn from --seed and the scale's index, so each scale of a run
    (three by default) measures along its own set: L-BFGS sees one smooth objective, the
    style's quantiles are computed once per scale, and a CUDA graph can replay the
    evaluation. Tried at 128 px, one scale, 100 steps, scored by content + 5 × a sliced
    distance along other seeds' directions: a redraw at every evaluation ended 0.8-1.6% lower
    than fixed directions, a redraw every 25 steps with the L-BFGS history reset 0.7-1.2%
    lower (seeds of the fixed draw spread 0.4%). For that, the first re-projects and re-sorts
    the style at every evaluation (twice the sorting, and no CUDA graph), the second makes the
    engine restart its optimizer: not worth it.

    A blend of styles is the mixture of their feature samples: every style's positions,
    each style weighing its style weight in all, so its quantiles are those of the mixture.
    """

    name = "sliced"
    summary = "the whole distribution of each layer's features along random directions (sliced Wasserstein)"
    tileable = False  # the sort needs every position of the image at once: a StyleTerm, not tileable

    def __init__(self, targets: dict[str, torch.Tensor | tuple[torch.Tensor, torch.Tensor]],
                 layer_weights: dict[str, float], seed: int = 0):
        """`targets`: per layer, the style's samples (N×C×Q, `statistics`), or samples and their
        weights (`blend`); `seed` draws the directions."""
        super().__init__()
        self.layer_weights = _normalized(layer_weights)
        generator = torch.Generator().manual_seed(seed)
        self.directions: dict[str, torch.Tensor] = {}
        self.targets: dict[str, Quantiles] = {}
        for name in self.layer_weights:
            samples, weights = targets[name] if isinstance(targets[name], tuple) else (targets[name], None)
            directions = random_directions(samples.shape[-2], generator).to(samples.device)
            self.directions[name] = directions
            self.targets[name] = Quantiles(directions @ samples.detach().float(), weights)

    @staticmethod
    def statistics(features: torch.Tensor, positions=None, weights: torch.Tensor | None = None):
        """The samples themselves: every position's feature vector, N×C×P, in fp32; with
        `weights` (a --style-regions mask), the positions it covers and their weights."""
        with torch.autocast(features.device.type, enabled=False):
            samples = features.float().flatten(2)
        if weights is None:
            return samples
        weights = weights.float().flatten()
        return samples[..., weights > 0], weights[weights > 0]

    @classmethod
    def build(cls, targets: list[dict], style_weights: list[float], layer_weights: dict[str, float],
              seed: int = 0) -> "SlicedWassersteinLoss":
        """The factory (StyleLossKind.build): the blended samples, directions drawn from `seed`."""
        return cls(cls.blend(targets, style_weights), layer_weights, seed)

    @staticmethod
    def blend(samples: list[dict], style_weights: list[float]) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """The mixture: all styles' samples side by side, each weighing its style's share / its
        count (or, for weighted samples, its share in proportion to each sample's weight)."""
        total = sum(style_weights)
        kept = [(s, w) for s, w in zip(samples, style_weights) if w > 0]

        def share(sample, w: float) -> torch.Tensor:
            if isinstance(sample, tuple):
                return sample[1] * (w / total / sample[1].sum().clamp_min(1e-12))
            return sample.new_full((sample.shape[-1],), w / total / sample.shape[-1])

        return {
            name: (torch.cat([s[name][0] if isinstance(s[name], tuple) else s[name] for s, _ in kept], -1),
                   torch.cat([share(s[name], w) for s, w in kept]))
            for name in samples[0]
        }

    def forward(self, features: dict[str, torch.Tensor], weights: dict[str, torch.Tensor] | None = None
                ) -> torch.Tensor:
        """The loss of an image's features; `weights` (per layer, masks.py) restrict it to a
        region: see weighted_error."""
        total = 0.0
        for name, w in self.layer_weights.items():
            f = features[name]
            with torch.autocast(f.device.type, enabled=False):
                projected = self.directions[name] @ f.float().flatten(2)  # N×M×P
                # Each value's target: the style's quantile at the value's rank. Scattering the
                # quantiles to the values' places (rather than gathering the values into sorted
                # order) leaves autograd one fused squared error, not a gather's scatter back.
                order = sorting_order(projected.detach())
                quantiles, energy = self.targets[name].at(projected.shape[-1])
                if weights is None:
                    target = torch.empty_like(projected).scatter_(-1, order, quantiles.expand_as(projected))
                    error = nn.functional.mse_loss(projected, target, reduction="sum") / (energy * len(projected))
                else:
                    error = weighted_error(projected, order, quantiles, energy, weights[name])
                total = total + w * SCALE_ERROR * error
        return total


def weighted_error(
    projected: torch.Tensor, order: torch.Tensor, quantiles: torch.Tensor, energy: torch.Tensor, weights: torch.Tensor
) -> torch.Tensor:
    """The sliced error of a region: positions weighted by its mask (masks.py), by weighted
    quantiles rather than by a sample of the positions it covers, so soft edges and overlaps
    count in proportion. A value's target is the style's quantile at its weighted mid-rank
    (Σ w before it + w/2) / Σ w, read off the P-level quantiles by linear interpolation (with
    equal weights: exactly the unweighted targets); squared errors are weighted alike and
    divided by the style's mean energy times Σ w, so the region's size does not matter."""
    p = projected.shape[-1]
    w = weights.flatten().to(projected)
    total = w.sum().clamp_min(1e-12)
    ranked = w[order]
    levels = (ranked.cumsum(-1) - ranked / 2) / total * p - 0.5
    low = levels.floor().clamp(0, p - 2).long()
    q = quantiles.expand_as(projected)
    below = q.gather(-1, low)
    in_order = torch.lerp(below, q.gather(-1, low + 1), (levels - low).clamp(0, 1))
    target = torch.empty_like(projected).scatter_(-1, order, in_order)
    return (w * (projected - target).pow(2)).sum() / (energy * total / p * len(projected))


def random_directions(channels: int, generator: torch.Generator) -> torch.Tensor:
    """`channels` unit vectors in R^channels, uniform on the sphere (as many as the paper's code)."""
    directions = torch.randn(channels, channels, generator=generator)
    return directions / directions.norm(dim=1, keepdim=True)


def sorting_order(values: torch.Tensor) -> torch.Tensor:
    """Indices that sort `values` along the last axis.

    On a CPU, numpy's argsort is 2-3× faster than torch's sort (relu1_1's 64×98304 projections
    at 384 px: 0.3 s against 0.9 s on this project's 2-core machine, loaded). Starting from
    the previous evaluation's order, which a stable sort of nearly sorted values exploits,
    was tried: after an L-BFGS step the order is not near enough, and it was slower. Other
    devices sort fast, and must not wait for the host (CUDA graphs): torch's sort there."""
    if values.device.type != "cpu":
        return values.argsort(-1)
    return torch.from_numpy(np.argsort(values.numpy(), -1))


class Quantiles:
    """The quantile function of one layer's style projections (M×Q, maybe weighted samples),
    read at the P levels (k + ½)/P of an output with P positions: linear between the samples'
    own levels, flat beyond them; computed once per P (in float64: with a million samples the
    levels are closer than fp32 can tell apart)."""

    def __init__(self, projected: torch.Tensor, weights: torch.Tensor | None = None):
        values = projected.reshape(-1, projected.shape[-1]).cpu()
        order = sorting_order(values)
        self.values = values.gather(-1, order).double().numpy()
        count = values.shape[-1]
        if weights is None:
            self.levels = np.broadcast_to((np.arange(count) + 0.5) / count, self.values.shape)
        else:
            w = weights.cpu().double()[order].numpy()
            self.levels = np.cumsum(w, -1) - w / 2
        self.device = projected.device
        self._at: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}

    def at(self, positions: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The 1×M×P quantiles, and their energy (sum of squares: the relative error's divisor)."""
        if positions not in self._at:
            u = (np.arange(positions) + 0.5) / positions
            rows = np.stack([np.interp(u, levels, values) for levels, values in zip(self.levels, self.values)])
            quantiles = torch.from_numpy(rows).float().unsqueeze(0).to(self.device)
            self._at[positions] = quantiles, quantiles.pow(2).sum().clamp_min(1e-12)
        return self._at[positions]


STYLE_LOSSES: dict[str, StyleLossKind] = {kind.name: kind for kind in (StyleLoss, MeanCovLoss, SlicedWassersteinLoss)}


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
