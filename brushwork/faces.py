"""Where the faces are, for --protect-faces: a soft mask that keeps portraits recognizable.

The detector is the LBP frontal-face cascade that ships inside scikit-image's wheel
(`skimage.data.lbp_frontal_face_cascade_filename()`), so nothing is downloaded at run time.
Its parameters were chosen on scikit-image's and opencv-doc's sample pictures, every picture
scaled so its longer side is WORK_SIDE px (so the counts below mean the same at any size):

- A cascade fires many times around a real face (overlapping windows, neighbouring scales)
  and a few times on texture. With windows 1.1× apart, one window step apart, the
  astronaut's face gathered 20-23 detections and the (small) face in opencv-doc's
  messi5.jpg 16-23, while the most any faceless picture gathered was 8 (gravel; brick,
  coffee, rocket, starry_night, ihc and others 2-6). MIN_NEIGHBOURS = 12 sits between.
  With it, 109 pictures (scikit-image's and opencv-doc's samples, the shared paintings)
  gave the astronaut's, Messi's, the frontal face in basketball1/2.png and the four of
  facereg.jpg, and nothing else.
- Faces smaller than MIN_FACE of the shorter side are not looked for: below that the
  false detections on texture pile up, and a face that small hardly changes a stylized
  picture. A face must also span about 25 px in the picture itself (the astronaut's is
  found from 128 px up, not at 96).
- Frontal faces only: profiles are missed, and so is Matisse's painted *Woman with a Hat*.
  Scikit-image's cat (chelsea) gets no detection: the cascade was trained on human faces.

The box a cascade returns covers eyes, nose and mouth; the ellipse drawn around it is wider
and taller (FACE_ELLIPSE) so forehead and chin are kept too, and its edge is blurred by a
Gaussian of FEATHER × the face's width, so protection fades out instead of ending in a seam.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

if TYPE_CHECKING:
    from skimage.feature import Cascade

WORK_SIDE = 512  # px: the longer side pictures are scaled to before detection
SCALE_STEP = 1.1  # ratio between successive window sizes
MIN_FACE = 0.08  # smallest face looked for, as a fraction of the shorter side
MIN_NEIGHBOURS = 12  # detections that must agree on a face (see above)
FACE_ELLIPSE = (0.75, 0.95)  # semi-axes as fractions of the box's width and height
FACE_DROP = 0.1  # the ellipse's centre lies this fraction of the box's height below the box's
FEATHER = 0.12  # Gaussian sigma of the mask's edge, as a fraction of the face's width


@functools.lru_cache(maxsize=1)
def cascade() -> Cascade:
    """Loaded once: parsing the XML takes longer than a detection on a small picture."""
    from skimage.data import lbp_frontal_face_cascade_filename
    from skimage.feature import Cascade

    return Cascade(lbp_frontal_face_cascade_filename())


def work_size(image: Image.Image) -> tuple[int, int]:
    """The picture's size with its longer side at WORK_SIDE, where the parameters were chosen."""
    scale = WORK_SIDE / max(image.size)
    return max(1, round(image.width * scale)), max(1, round(image.height * scale))


def detect_faces(image: Image.Image) -> list[tuple[float, float, float, float]]:
    """Face boxes (x, y, width, height) in the picture's own pixels."""
    work = image.convert("RGB").resize(work_size(image), Image.LANCZOS)
    scale = image.width / work.width
    short = min(work.size)
    found = cascade().detect_multi_scale(
        img=np.asarray(work), scale_factor=SCALE_STEP, step_ratio=1, min_size=(round(MIN_FACE * short),) * 2,
        max_size=(short, short), min_neighbor_number=MIN_NEIGHBOURS,
    )  # fmt: skip
    return [(d["c"] * scale, d["r"] * scale, d["width"] * scale, d["height"] * scale) for d in found]


Box = tuple[float, float, float, float]  # x, y, width, height in the picture's pixels


def face_mask(image: Image.Image, boxes: list[Box] | None = None) -> np.ndarray:
    """H×W float32 in [0, 1]: 1 on every detected face (or on `boxes`, where a video's tracked
    boxes are given), fading to 0 around it; all 0 without faces.

    Drawn and blurred at the detector's working size, then scaled to the picture's: the edge
    is smooth, so a poster-size mask costs no more than a small one. SciPy (and scikit-image,
    in `cascade`) are imported here, not with the module: `brushwork --help` need not wait."""
    from scipy.ndimage import gaussian_filter

    width, height = work_size(image)
    scale = width / image.width
    mask = np.zeros((height, width), np.float32)
    rows, cols = np.ogrid[:height, :width]
    for x, y, w, h in detect_faces(image) if boxes is None else boxes:
        x, y, w, h = x * scale, y * scale, w * scale, h * scale
        cx, cy = x + w / 2, y + h / 2 + FACE_DROP * h
        rx, ry = FACE_ELLIPSE[0] * w, FACE_ELLIPSE[1] * h
        ellipse = (((cols - cx) / rx) ** 2 + ((rows - cy) / ry) ** 2 <= 1).astype(np.float32)
        mask = np.maximum(mask, gaussian_filter(ellipse, FEATHER * w))
    if mask.shape != (image.height, image.width):
        mask = np.asarray(Image.fromarray(mask, "F").resize(image.size, Image.BILINEAR))
    return np.clip(mask, 0, 1)


class FaceTrack:
    """Face boxes of a video, smoothed over time so that protection does not flicker.

    A detector run per frame jitters by a few pixels and misses a face now and then; a mask
    drawn from its raw boxes would make the protected area shimmer and blink. Each detection
    joins the tracked face whose centre is nearest (within half the face's width) and moves it
    by SMOOTHING of the way; a face not seen is kept for HOLD frames before it is dropped."""

    SMOOTHING = 0.3
    HOLD = 5

    def __init__(self) -> None:
        self.faces: list[dict] = []  # box, and frames since it was last seen

    def update(self, image: Image.Image) -> list[Box]:
        """This frame's detections folded in; the boxes to draw for it."""
        for face in self.faces:
            face["missed"] += 1
        for box in detect_faces(image):
            face = self._nearest(box)
            if face is None:
                self.faces.append({"box": box, "missed": 0})
            else:
                face["box"] = tuple(a + self.SMOOTHING * (b - a) for a, b in zip(face["box"], box))
                face["missed"] = 0
        self.faces = [f for f in self.faces if f["missed"] <= self.HOLD]
        return [f["box"] for f in self.faces]

    def _nearest(self, box: Box) -> dict | None:
        def distance(face: dict) -> float:
            (x, y, w, h), (bx, by, bw, bh) = face["box"], box
            return float(np.hypot(x + w / 2 - bx - bw / 2, y + h / 2 - by - bh / 2))

        near = [f for f in self.faces if distance(f) < 0.5 * f["box"][2]]
        return min(near, key=distance, default=None)
