"""Optical flow between video frames, warping along it, and where it can be trusted.

Interface: frames are RGB numpy arrays, H×W×3 uint8 (what PyAV and Pillow give); flows are
float32 torch tensors 1×2×H×W in pixels, channel 0 the horizontal (x) and channel 1 the
vertical (y) displacement; images to warp are torch tensors 1×C×H×W.

Conventions, for consecutive frames `previous` and `current`:

- `backward` lives on the current frame's grid: pixel p of `current` shows what `previous`
  showed at p + backward(p). `warp(previous_output, backward)` therefore lines the previous
  output up with the current frame.
- `forward` lives on the previous frame's grid and points the other way.

The flow is OpenCV's DIS (dense inverse search): no weights to download, a few milliseconds
per frame at 512 px. Reliability follows Ruder, Dosovitskiy and Brox, "Artistic style
transfer for videos" (2016): a pixel is unreliable where the forward and backward flows
disagree (it was hidden in the previous frame: a disocclusion) or where the flow changes
sharply (a motion boundary, where the flow is blurred across two motions). Those two tests
also fire on a good flow that is merely noisy (DIS on smooth areas of a small frame: 7% of
a slowly zooming photo at 128 px); where the previous frame, warped, matches the current one
(`agreement`), the flow evidently brought the right content, and the pixel is trusted.
"""

from __future__ import annotations

import threading

import numpy as np
import torch

_per_thread = threading.local()
DIS_PRESET = "medium"  # "fast" misses fine motion; "ultrafast" more so; medium is a few ms per 512 px frame
# The optimization's flow (`optical_flow`) is refined down to full resolution (the preset
# stops at half): on the benchmark's zoom, rotation and pan at 128 px the painted video's
# warping error fell by 5-17% at the same J. Fast mode's 160 px flow (`gray_flow`) keeps the
# preset: its frame rate counts, and its frames are small already.
FINEST_SCALE = 0
# Mean |warped previous − current| (colour channels in [0, 1]) under which the flow's tests
# are overruled: the median over the flow's false alarms on the benchmark's clips is 0.003-
# 0.013, over its trusted pixels 0.001-0.007 (their 90th percentile 0.005-0.03).
AGREEMENT = 0.03


def _gray(frame: np.ndarray) -> np.ndarray:
    import cv2

    return cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_RGB2GRAY)


def _dis(finest_scale: int | None = None):
    """One DIS object per thread and finest scale (None: the preset's), kept: creating it costs
    about as much as a 160 px flow, and fast mode computes one per video frame; not shared
    across threads, as it keeps buffers."""
    import cv2

    presets = {
        "ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST,
        "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
        "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM,
    }
    kept = _per_thread.__dict__.setdefault("dis", {})
    key = (DIS_PRESET, finest_scale)
    if key not in kept:
        kept[key] = cv2.DISOpticalFlow_create(presets[DIS_PRESET])
        if finest_scale is not None:
            kept[key].setFinestScale(finest_scale)
    return kept[key]


def optical_flow(source: np.ndarray, target: np.ndarray) -> torch.Tensor:
    """The flow on `source`'s grid: pixel p of `source` moves to p + flow(p) in `target`.
    Both frames RGB uint8 of one size; refined down to FINEST_SCALE."""
    if source.shape != target.shape:
        raise ValueError(f"frames differ in size: {source.shape} and {target.shape}")
    flow = gray_flow(_gray(source), _gray(target), FINEST_SCALE)
    return torch.from_numpy(np.ascontiguousarray(flow.transpose(2, 0, 1)))[None].float()


def gray_flow(source: np.ndarray, target: np.ndarray, finest_scale: int | None = None) -> np.ndarray:
    """The flow between two 8-bit gray pictures of one size, as an H×W×2 float32 array, with
    the preset's finest scale unless told."""
    return _dis(finest_scale).calc(source, target, None)


def flows(previous: np.ndarray, current: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """(forward, backward) between two consecutive frames; see the module's conventions."""
    return optical_flow(previous, current), optical_flow(current, previous)


def _sample_points(flow: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Where each output pixel reads from: (x, y) coordinates, not clamped."""
    _, _, h, w = flow.shape
    ys = torch.arange(h, dtype=flow.dtype, device=flow.device).view(1, h, 1)
    xs = torch.arange(w, dtype=flow.dtype, device=flow.device).view(1, 1, w)
    return xs + flow[:, 0], ys + flow[:, 1]


def _linear(t: torch.Tensor) -> tuple[range, list[torch.Tensor]]:
    return range(0, 2), [1 - t, t]


def _cubic(t: torch.Tensor) -> tuple[range, list[torch.Tensor]]:
    """Keys' cubic convolution (a = −0.5) at fraction t: weights of the pixels at −1, 0, 1, 2;
    (0, 1, 0, 0) at t = 0, so an integer flow still copies pixels exactly."""
    return range(-1, 3), [((-0.5 * t + 1) * t - 0.5) * t, (1.5 * t - 2.5) * t * t + 1,
                          ((-1.5 * t + 2) * t + 0.5) * t, (0.5 * t - 0.5) * t * t]


def warp(image: torch.Tensor, flow: torch.Tensor, cubic: bool = False) -> torch.Tensor:
    """Backward warping: output(p) = image(p + flow(p)), points outside the picture taken from
    its nearest edge. Bilinear, or with `cubic` Keys' cubic, clamped to [0, 1], for pictures:
    a video's painted frame is warped once per frame down the chain, and bilinear's blur would
    add up from frame to frame. Written out rather than grid_sample, whose normalised
    coordinates round: here an integer flow copies pixels exactly."""
    n, c, h, w = image.shape
    px, py = _sample_points(flow.to(image.device, torch.float32))
    px, py = px.clamp(0, w - 1), py.clamp(0, h - 1)
    x0, y0 = px.floor(), py.floor()
    kernel = _cubic if cubic else _linear
    (xs, wx), (ys, wy) = kernel((px - x0).unsqueeze(1)), kernel((py - y0).unsqueeze(1))
    flat = image.reshape(n, c, h * w)
    out = torch.zeros_like(image)
    for dy, weight_y in zip(ys, wy):
        y = (y0 + dy).clamp(0, h - 1).long()
        for dx, weight_x in zip(xs, wx):
            x = (x0 + dx).clamp(0, w - 1).long()
            index = (y * w + x).reshape(n, 1, h * w).expand(n, c, h * w)
            out += flat.gather(2, index).reshape(n, c, h, w) * (weight_x * weight_y)
    return out.clamp(0, 1) if cubic else out


def _squared_norm(flow: torch.Tensor) -> torch.Tensor:
    return (flow**2).sum(1, keepdim=True)


def outside(backward: torch.Tensor) -> torch.Tensor:
    """Pixels whose flow points outside the previous frame (1 = outside): what a pan brings
    into view. The consistency test misses them, since the flow there is extrapolated from
    the inside and so agrees with itself."""
    _, _, h, w = backward.shape
    x, y = _sample_points(backward)
    return ((x < 0) | (x > w - 1) | (y < 0) | (y > h - 1)).unsqueeze(1).float()


def disocclusions(forward: torch.Tensor, backward: torch.Tensor) -> torch.Tensor:
    """Pixels of the current frame the previous frame did not show (1 = disoccluded). The
    forward flow, warped onto the current grid, should undo the backward flow; where
    |w̃ + ŵ|² > 0.01 (|w̃|² + |ŵ|²) + 0.5 it does not (Ruder et al.'s test)."""
    forward_here = warp(forward, backward)
    mismatch = _squared_norm(forward_here + backward)
    inconsistent = mismatch > 0.01 * (_squared_norm(forward_here) + _squared_norm(backward)) + 0.5
    return torch.maximum(inconsistent.float(), outside(backward))


def motion_boundaries(backward: torch.Tensor) -> torch.Tensor:
    """Pixels where the flow changes sharply (1 = boundary): |∇û|² + |∇v̂|² > 0.01 |ŵ|² + 0.002,
    with forward differences (zero past the last row and column)."""
    dx = torch.zeros_like(backward)
    dy = torch.zeros_like(backward)
    dx[..., :, :-1] = backward[..., :, 1:] - backward[..., :, :-1]
    dy[..., :-1, :] = backward[..., 1:, :] - backward[..., :-1, :]
    gradient = _squared_norm(dx) + _squared_norm(dy)
    return (gradient > 0.01 * _squared_norm(backward) + 0.002).float()


def agreement(previous: np.ndarray, current: np.ndarray, backward: torch.Tensor) -> torch.Tensor:
    """Pixels of the current frame that the previous frame, warped along `backward`, shows
    within AGREEMENT (1 = they agree): what the flow brought is what is there."""
    def tensor(frame: np.ndarray) -> torch.Tensor:
        return torch.tensor(frame).permute(2, 0, 1)[None].float() / 255

    difference = (warp(tensor(previous), backward) - tensor(current)).abs().mean(1, keepdim=True)
    return (difference < AGREEMENT).float()


def reliability(forward: torch.Tensor, backward: torch.Tensor,
                frames: tuple[np.ndarray, np.ndarray] | None = None) -> torch.Tensor:
    """Per pixel of the current frame, 1 where warping the previous frame along `backward` can
    be trusted and 0 where not (disocclusions and motion boundaries): 1×1×H×W float32. With
    the (previous, current) `frames`, a pixel whose content the warp brings (`agreement`) is
    trusted whatever the two tests say; one whose flow leaves the frame never is."""
    doubtful = torch.maximum(disocclusions(forward, backward), motion_boundaries(backward))
    if frames is not None:
        doubtful = doubtful * (1 - agreement(*frames, backward))
    return 1 - torch.maximum(doubtful, outside(backward))
