"""The temporal term: what keeps a painted video from boiling.

Stylized one by one, each frame of a video puts its brush strokes somewhere else, and the
picture shimmers even where nothing moved. Following Ruder, Dosovitskiy and Brox ("Artistic
style transfer for videos", 2016), frame t is held to the previous output warped along the
optical flow onto frame t, wherever the flow can be trusted:

    temporal(x) = Σ_k mean over pixels and channels of  c_k · (x − warped_k)²

with c_k the reliability of target k (flow.reliability: 0 where the pixel was hidden in the
earlier frame or sits on a motion boundary). A mean, not a sum, so one --temporal-weight means
the same at every size, like the content and style terms. Several targets are the long-term
terms (previous frames t−1, t−2, t−4, ...): each pixel is held only to the most recent frame
where it is reliable (`long_term_weights`), so an area hidden for a frame is still held to
the frame before.

The term is per pixel of the image, like total variation, so it adds to any objective:
`Temporal` wraps the whole-image or the tiled objective and adds its value and its gradient,
2·weight·c·(x − warped)/N, written out rather than back-propagated. It is computed in fp32
whatever the network's precision, and its tensors are made once and never replaced, so the
wrapped evaluation can still be recorded as a CUDA graph.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from . import images


@dataclass
class TemporalTarget:
    """What a frame is held to: K previous outputs warped onto it (K×3×H×W, in the space the
    optimization works in) and how much each pixel of each is trusted (K×1×H×W, 0 to 1)."""

    warped: torch.Tensor
    weights: torch.Tensor

    def at(self, size: tuple[int, int], device: torch.device) -> "TemporalTarget":
        """The target at another (width, height), for a coarser scale of the frame's schedule."""
        warped, weights = self.warped, self.weights
        if (warped.shape[-1], warped.shape[-2]) != size:
            warped, weights = images.resize(warped, size), images.resize(weights, size).clamp(0, 1)
        return TemporalTarget(warped.to(device, torch.float32).contiguous(), weights.to(device, torch.float32).contiguous())


def long_term_weights(reliabilities: list[torch.Tensor]) -> torch.Tensor:
    """Per target, ordered from the most recent frame back: c_k = max(0, r_k − Σ_{j<k} r_j), so
    each pixel counts once, for the most recent frame where the flow is reliable."""
    weights, covered = [], torch.zeros_like(reliabilities[0])
    for r in reliabilities:
        weights.append((r - covered).clamp_min(0))
        covered = covered + weights[-1]
    return torch.cat(weights)


class Temporal:
    """An objective plus weight × the temporal term: [content, style, tv, total, temporal],
    the total including the term and its gradient added to x.grad."""

    def __init__(self, inner: Callable[[torch.Tensor], torch.Tensor], target: TemporalTarget, weight: float):
        self.inner, self.target, self.weight = inner, target, weight
        self.graphable = getattr(inner, "graphable", False)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        terms = self.inner(x)
        with torch.no_grad():
            difference = x.detach().float() - self.target.warped
            weighted = self.target.weights * difference
            value = (weighted * difference).sum(0).mean()
            x.grad.add_((weighted.sum(0, keepdim=True) * (2 * self.weight / x.numel())).to(x.grad.dtype))
        total = terms[3] + self.weight * value
        return torch.cat([terms[:3], total[None], value[None]])
