"""`--consistency flow`: the previous output frame carried along the optical flow onto this
one, as consistency.py blends it. Host work in OpenCV and NumPy float32: H×W×3 pictures,
H×W brightness and weights.

Why OpenCV: per frame the step upsamples a flow, warps two pictures and takes a dozen box
means, small work that PyTorch on a CPU does in one slow thread (consistency.py says why one):
at 512 px its contrast restoration alone took 24 ms there (four 5×5 avg_pool2d), several
times what cv2.blur's running sums take. In all, the step's CPU time beyond `blend`'s fell
from 15 to 5 ms per frame at 256 px and from 48 to 15 ms at 512 px (benchmarks/video_step.py).
Every OpenCV call here computes each pixel alike with 1, 2 or 4 threads (checked), so two
runs give the same bits.

How the previous output P is lined up with this frame, per pixel:

- the flow: DIS (flow.py) from this frame back to the previous one on frames shrunk to
  FLOW_SIDE, scaled up; the previous output warped along it with Keys' cubic (bilinear
  softens the held strokes a little more at every frame, and those losses add up);
- or standing still: where the previous input, left in place, matches this frame at least as
  well over a STILL_WINDOW window as the warped one. DIS at 160 px smears the motion of a
  walking person over the still floor around them, and carrying strokes along that smear
  repaints the floor (on vtest this took the warping error from 0.61× to 0.51× `blend`'s);
- trusted, k = D · matching(this input, the previous input lined up the same way) and 0 where
  the flow points outside the previous frame: what the previous frame did not show does not
  match, so no forward flow or motion-boundary test is needed (without the motion-boundary
  test the warping error fell or stayed on every clip, vtest's from 0.59× to 0.56×: the
  160 px flow marks broad bands around moving people as boundaries).
- the matching is on brightness only: as good as on the three colours (the warping error
  within 1% on every clip) at a third of the work.

Two stroke patterns that do not line up mix to a paler picture, so the blend's local contrast
is brought back up to the mix of the two it came from (`with_contrast_of`). The constants
were chosen on benchmarks/video.py's six clips at 256 px (docs/benchmarks/video.md: "How the
flow step got here"), never on its grading flow.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import cv2
import numpy as np

from .. import flow

FLOW_SIDE = 160  # long side of the frames the flow is computed on
STILL_WINDOW = 0.08  # side of the window (× the long side) over which standing still is compared with the flow
SEAM = 5  # px: the still/flow choice is softened over this window, so no seam shows
MOTION_SCALE = 0.3  # mean input difference (in [0, 1]) at which trust has fallen to 0.4
GAIN = 2.0  # most contrast a blend gets back
BOX = 5  # side of the window local contrast is measured over, in pixels


@dataclass
class Seen:
    """What the step keeps of a frame: its input's brightness (H×W float32 in [0, 1]), the
    small 8-bit version of it the flow is computed on, and the output written for it (H×W×3)."""

    picture: np.ndarray
    small: np.ndarray
    out: np.ndarray


def brightness(planes: np.ndarray) -> np.ndarray:
    """A 3×H×W frame (RGB planes, as the network's tensors hold them) -> its H×W luma (BT.601,
    as cv2.COLOR_RGB2GRAY): the photometric checks and the flow need no colour, and this
    spares turning the frame into OpenCV's H×W×3 layout."""
    return cv2.addWeighted(cv2.addWeighted(planes[0], 0.299, planes[1], 0.587, 0), 1, planes[2], 0.114, 0)


def small_gray(luma: np.ndarray) -> np.ndarray:
    """The frame's brightness shrunk to FLOW_SIDE on its long side (never enlarged), 8-bit, for DIS."""
    h, w = luma.shape
    scale = min(1.0, FLOW_SIDE / max(h, w))
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    if size != (w, h):
        luma = cv2.resize(luma, size, interpolation=cv2.INTER_AREA)
    return cv2.convertScaleAbs(luma, alpha=255)


def backward_flow(small: np.ndarray, previous_small: np.ndarray, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Where each pixel of this frame (w × h = size) was in the previous one, as sampling maps
    (x, y) for cv2.remap, and how far that point lies inside the previous frame (1: inside;
    judged on the small flow and scaled up like it)."""
    w, h = size
    backward = flow.gray_flow(small, previous_small)
    sh, sw = small.shape
    xs, ys = grid(sw, sh)
    x, y = xs + backward[..., 0], ys + backward[..., 1]
    inside = ((x >= 0) & (x <= sw - 1) & (y >= 0) & (y <= sh - 1)).astype(np.float32)
    if (sw, sh) != (w, h):
        backward = cv2.resize(backward, (w, h), interpolation=cv2.INTER_LINEAR)
        inside = cv2.resize(inside, (w, h), interpolation=cv2.INTER_LINEAR)
    xs, ys = grid(w, h)
    x = cv2.scaleAdd(backward[..., 0], w / sw, xs)
    return x, cv2.scaleAdd(backward[..., 1], h / sh, ys), inside


@functools.lru_cache(maxsize=4)
def grid(w: int, h: int) -> tuple[np.ndarray, np.ndarray]:
    """Each pixel's own x and y (h × w float32 each); kept, as every frame of a video needs them."""
    xs = np.broadcast_to(np.arange(w, dtype=np.float32)[None, :], (h, w)).copy()
    ys = np.broadcast_to(np.arange(h, dtype=np.float32)[:, None], (h, w)).copy()
    xs.flags.writeable = ys.flags.writeable = False
    return xs, ys


def warp(picture: np.ndarray, xs: np.ndarray, ys: np.ndarray, cubic: bool = False) -> np.ndarray:
    """picture(x, y) at each pixel's sampling point, bilinear or Keys' cubic (clamped to
    [0, 1]), points outside taken from the nearest edge."""
    mode = cv2.INTER_CUBIC if cubic else cv2.INTER_LINEAR
    out = cv2.remap(picture, xs, ys, mode, borderMode=cv2.BORDER_REPLICATE)
    return np.clip(out, 0, 1, out=out) if cubic else out


def box(picture: np.ndarray, side: int) -> np.ndarray:
    return cv2.blur(picture, (side, side), borderType=cv2.BORDER_REFLECT)


def mix(a: np.ndarray, b: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """weight·a + (1 − weight)·b per pixel (weight H×W), in one OpenCV call (it divides by the
    weights' sum plus 1e-5: 1e-5 relative, far below an 8-bit level)."""
    return cv2.blendLinear(a, b, weight, 1 - weight)


def lined_up(current: np.ndarray, previous: Seen, xs: np.ndarray, ys: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The previous input and output lined up with `current` (standing still or along the
    flow, whichever explains `current` better nearby) and the weight of the flow (H×W)."""
    moved_in = warp(previous.picture, xs, ys)
    window = max(3, round(STILL_WINDOW * max(current.shape[:2])) | 1)
    along = box(cv2.absdiff(current, moved_in), window) < box(cv2.absdiff(current, previous.picture), window)
    moved = box(along.astype(np.float32), SEAM)
    out = mix(warp(previous.out, xs, ys, cubic=True), previous.out, moved)
    return mix(moved_in, previous.picture, moved), out, moved


def matching(frame: np.ndarray, previous: np.ndarray, scale: float) -> np.ndarray:
    """1 where two pictures agree, fading as their mean difference u grows: (1 + u / 4·scale)⁻⁴,
    about exp(−u / scale) (consistency.matching, the same on the host; H×W)."""
    near = cv2.absdiff(frame, previous)
    near += 4 * scale
    near = np.divide(4 * scale, near, out=near)
    near *= near
    return near * near


def gray(picture: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(picture, cv2.COLOR_RGB2GRAY)


def spread(picture: np.ndarray) -> np.ndarray:
    """Local standard deviation of a gray picture over BOX × BOX."""
    mean = box(picture, BOX)
    variance = box(cv2.multiply(picture, picture), BOX) - cv2.multiply(mean, mean)
    return cv2.sqrt(np.maximum(variance, 0, out=variance))


def with_contrast_of(blend: np.ndarray, stylized: np.ndarray, held: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """`blend` = keep·held + (1 − keep)·stylized with its detail (what differs from its local
    mean) scaled up to keep·contrast(held) + (1 − keep)·contrast(stylized), at most GAIN×: the
    contrast the two had, which their mix loses where their strokes do not line up. Aiming at
    that mix rather than at the network's own contrast holds still where the held picture is
    already as crisp as the new one (gain 1). Contrast is measured on brightness, a third of
    the work of measuring it per channel."""
    held_gray, stylized_gray = gray(held), gray(stylized)
    blend_gray = mix(held_gray, stylized_gray, keep)  # gray(blend), as the blend is linear
    gain = mix(spread(held_gray), spread(stylized_gray), keep) / (spread(blend_gray) + 1e-4)
    np.clip(gain, 1.0, GAIN, out=gain)
    mean = box(blend, BOX)
    detail = blend - mean
    detail *= gain[..., None]
    detail += mean
    return np.clip(detail, 0, 1, out=detail)


def blended(current: np.ndarray, stylized: np.ndarray, previous: Seen, small: np.ndarray, strength: float) -> np.ndarray:
    """k·P + (1 − k)·stylized with its contrast restored, as the module's docstring says."""
    h, w = current.shape[:2]
    xs, ys, inside = backward_flow(small, previous.small, (w, h))
    picture, held, moved = lined_up(current, previous, xs, ys)
    keep = matching(current, picture, MOTION_SCALE) * (1 - moved * (1 - inside))
    keep *= strength
    return with_contrast_of(mix(held, stylized, keep), stylized, held, keep)
