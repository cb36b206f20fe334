"""Where the style goes: --mask, --style-masks, --style-regions and --protect-faces in a run.

Following Gatys et al., "Controlling Perceptual Factors in Neural Style Transfer" (CVPR 2017),
a region's style is matched by *guided* statistics: each style layer's features are weighted
by the region's mask downsampled to that layer (masks.layer_maps), and the statistics are
weighted averages, Σ w·s(f) / Σ w, normalized by the region's area, so a small region is
held to its style as firmly as a large one (losses.py: the weighted Gram and mean/covariance,
the sliced loss's weighted quantiles). The paper multiplies the features by the mask, which
weights positions by w²; here they are multiplied by √w, so the weight is w itself: a pixel
half in the sky and half in the ground (0.5 in both masks) counts half in each. For binary
masks the two are the same.

The masks of a run, with S the --style-masks (one per style) and M the --mask (all white
if none), times (1 − protect_faces · faces) with --protect-faces:
* region statistics: styles whose --style-masks are the same picture share a region and blend
  in it (--style-weights within it, as without masks); a region's positions are weighted by
  M · S. Its loss counts in the style term by the mean --style-weight of its styles, the
  weights of the regions summing to 1 (so one region covering everything is exactly the
  unmasked loss), and a region left empty counts nothing.
* pixels: where the picture may change, P = M · min(1, Σ S) (S = 1 without --style-masks);
  pixels no style mask covers are treated like black ones of --mask. See KeepContent.
* style targets: --style-regions weights the style image's positions the same way (which part
  of a painting feeds its region).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image
from torch import nn

from . import masks
from .objective import Objective, style_loss_for
from .run_description import RunDescription
from .style_terms import GuidedStyleTerm


@dataclass
class RunMasks:
    """A run's masks at the content's size (and each style image's), as read once."""

    where: torch.Tensor  # M, times the face protection: 1×1×H×W
    regions: list[torch.Tensor] | None  # S, one per style; None: no --style-masks
    style_regions: list[torch.Tensor | None]  # one per style image, at its (cropped) size

    def picture_mask(self, size: tuple[int, int]) -> torch.Tensor:
        """P at (w, h): where the picture may leave the content."""
        mask = masks.resize(self.where, size)
        if self.regions is not None:
            mask = mask * sum(masks.resize(r, size) for r in self.regions).clamp(max=1)
        return mask

    def groups(self) -> list[tuple[list[int], torch.Tensor | None]]:
        """(styles, region mask) of each region: styles given the same mask share one."""
        if self.regions is None:
            return [(list(range(len(self.style_regions))), None)]
        groups: list[tuple[list[int], torch.Tensor | None]] = []
        for i, region in enumerate(self.regions):
            shared = next((members for members, mask in groups if torch.equal(mask, region)), None)
            if shared is None:
                groups.append(([i], region))
            else:
                shared.append(i)
        return groups

    def style_term(self, run: RunDescription, targets: list[dict], draw: int, size: tuple[int, int],
                   device: torch.device) -> "RegionStyle":
        """RegionStyle's factory: the style term at one scale (size), a loss per region (built
        by its kind's factory, objective.style_loss_for) against its styles' targets."""
        style_layers = run.style_layers
        style_weights = list(run.style_weights)
        where = masks.resize(self.where, size)
        regions = []
        for members, region in self.groups():
            pixels = where if region is None else where * masks.resize(region, size)
            weights = tuple(style_weights[i] for i in members)
            if sum(weights) <= 0 or float(pixels.sum()) <= 0:
                continue  # an empty region, or one whose styles weigh nothing, counts nothing
            loss = style_loss_for(run.replace(style_weights=weights), [targets[i] for i in members], draw)
            regions.append(Region(loss, masks.layer_maps(pixels.to(device), style_layers), sum(weights) / len(weights)))
        if not regions:  # nothing to paint anywhere: a style term of 0 (that still has a gradient, of 0)
            nowhere = masks.layer_maps(torch.zeros_like(where).to(device), style_layers)
            return RegionStyle([Region(style_loss_for(run, targets, draw), nowhere, 0.0)])
        total = sum(r.share for r in regions)
        return RegionStyle([Region(r.loss, r.weights, r.share / total) for r in regions])


def prepare(run: RunDescription, content: Image.Image, styles: list[Image.Image]) -> RunMasks | None:
    """Read and check a run's masks (before --style-crop is applied to `styles`); None if it has none."""
    if (run.mask is None and run.style_masks is None and run.style_regions is None
            and not run.protect_faces):
        return None
    where = torch.ones(1, 1, content.height, content.width)
    if run.mask is not None:
        where = masks.read(run.mask, content.size, "--mask")
    if run.protect_faces:
        from .faces import face_mask  # scikit-image's detector, loaded only when asked for

        faces = torch.from_numpy(np.ascontiguousarray(face_mask(content), np.float32))[None, None]
        where = where * (1 - run.protect_faces * masks.resize(faces, content.size))
    regions = None
    if run.style_masks is not None:
        regions = [masks.read(m, content.size, f"--style-masks ({i + 1})") for i, m in enumerate(run.style_masks)]
    style_regions: list[torch.Tensor | None] = [None] * len(styles)
    for i, source in enumerate(run.style_regions or ()):
        if source is not None:
            region = masks.read(source, styles[i].size, f"--style-regions ({i + 1})", "style image")
            style_regions[i] = region if run.style_crop is None else masks.crop(region, run.style_crop)
    return RunMasks(where, regions, style_regions)


@dataclass
class Region:
    loss: GuidedStyleTerm  # a style loss (losses.STYLE_LOSSES) against the region's styles' targets
    weights: dict[str, torch.Tensor]  # per style layer: the region's mask at that layer
    share: float  # of the style term; the regions' shares sum to 1


class RegionStyle(nn.Module):
    """The style term of a masked run: Σ over regions of share × the region's guided loss.
    A StyleTerm (style_terms.py), and a TileableStyleTerm when its regions' loss is tileable:
    each region's statistics are then added up tile by tile under their own keys."""

    def __init__(self, regions: list[Region]):
        super().__init__()
        self.regions = regions
        first = regions[0].loss
        self.name, self.layer_weights = first.name, first.layer_weights
        self.tileable = first.tileable
        self.totals = [{name: w.float().sum().clamp_min(1e-12) for name, w in r.weights.items()} for r in regions]

    def forward(self, features: dict[str, torch.Tensor]) -> torch.Tensor:
        return sum(r.share * r.loss(features, r.weights) for r in self.regions)

    def tile_statistics(self, tile, feats: dict[str, torch.Tensor], positions: dict[str, int]) -> dict:
        """One tile's share of each region's statistics: its positions' weights cut from the
        whole-image maps, divided by the region's whole Σ w (so the shares add up exactly)."""
        return {
            (i, name): share
            for i, r in enumerate(self.regions)
            for name, share in r.loss.tile_statistics(
                tile, feats, self.totals[i], {n: tile.region(w, n) for n, w in r.weights.items()}).items()
        }

    def compare(self, statistics: dict) -> torch.Tensor:
        return sum(r.share * r.loss.compare({name: statistics[(i, name)] for name in self.layer_weights})
                   for i, r in enumerate(self.regions))


class KeepContent:
    """The objective of a masked run, in terms of the optimized image x: the picture that is
    scored (and the output) is content + P·(x − content), P the pixel mask (RunMasks).

    Why: black must mean "kept as it is". Restricting the style statistics to the region
    does not keep the rest: the style's gradient reaches up to 78 px beyond a region's edge
    (relu5_1's receptive radius, tiles.receptive_radius), and the content term, at relu4_2 (one
    position per 8 px), holds the picture only loosely, so weighting it up where the mask is
    black would resist the drift, not stop it. Composing the picture through the mask keeps black pixels
    exactly the content's, whatever the start (an all-black mask gives the content itself,
    which no content-only run beats), and costs one multiply-add per evaluation. A gray
    pixel P can move at most P of the way from the content's colour towards any other:
    partial style; soft mask edges give soft transitions. The gradient is the chain rule by
    hand, P·∂J/∂picture, so the wrapped objective (whole or tiled) needs no change.
    """

    def __init__(self, inner: Objective, mask: torch.Tensor, content: torch.Tensor):
        self.inner, self.mask, self.content = inner, mask, content
        self.graphable = inner.graphable

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        picture = compose(x.detach(), self.content, self.mask).requires_grad_(True)
        terms = self.inner(picture)
        x.grad = picture.grad * self.mask
        return terms


def compose(x: torch.Tensor, content: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The picture that an optimized image x stands for: content + mask·(x − content)."""
    return torch.lerp(content, x, mask)
