"""--protect-faces on a portrait: scikit-image's astronaut in a painting's style,
without protection and with it, side by side, and how close the face stays to the photo.

Measures, none of which the method optimizes (it only blends masks into the run):
  face SSIM      structural similarity of the face (the box around the ellipse faces.py
                 draws) to the photo's, in gray levels (skimage.metrics)
  face content   brushwork.score's relu4_2 content distance of that crop to the photo's crop
  style          brushwork.score's style distance of the whole picture to the painting
  outside        mean |difference| (8-bit) between the two outputs where the face mask is 0

    python benchmarks/faces.py      # two 384 px runs of 300 steps: 36 min on this project's 2-core CPU
                                    # shared with other benchmarks (load 10-14); one such run alone takes about 64 s

Writes docs/images/protect-faces.jpg and benchmarks/results/faces.json. Not a test.
"""

from __future__ import annotations

import argparse
import importlib.resources
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont
from skimage.metrics import structural_similarity

from brushwork import api, faces, images
from brushwork.options import PROTECT_FACES_BARE, Options
from brushwork.score import score

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
CONTENT = Path(str(importlib.resources.files("skimage") / "data" / "astronaut.png"))
STYLE = ROOT.parent / "shared" / "images" / "styles" / "starry_night.jpg"


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--style", default=str(STYLE))
    p.add_argument("--size", type=int, default=384)
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--strength", type=float, default=PROTECT_FACES_BARE, help="--protect-faces of the second run")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--json", default=str(HERE / "results" / "faces.json"))
    p.add_argument("--picture", default=str(ROOT / "docs" / "images" / "protect-faces.jpg"))
    return p.parse_args()


def face_box(content: Image.Image) -> tuple[int, int, int, int]:
    """The box around every pixel faces.py protects at all (left, top, right, bottom)."""
    rows, cols = np.nonzero(faces.face_mask(content) > 0.5)
    return int(cols.min()), int(rows.min()), int(cols.max()) + 1, int(rows.max()) + 1


def measure(output: Image.Image, content: Image.Image, style: Image.Image, box: tuple[int, int, int, int]) -> dict:
    gray = lambda image: np.asarray(image.crop(box).convert("L"), np.float64)  # noqa: E731
    crop_score = score(output.crop(box), content.crop(box), style)
    return {
        "face_ssim": round(float(structural_similarity(gray(output), gray(content), data_range=255)), 4),
        "face_content": round(crop_score.content, 4),
        "style": round(score(output, content, style).style, 5),
    }


def draw(cells: list[tuple[str, Image.Image]], box: tuple[int, int, int, int], path: str) -> None:
    """The photo and the outputs side by side, each titled, the face box outlined on the photo."""
    font, pad, label = ImageFont.load_default(size=15), 6, 24
    width, height = cells[0][1].size
    sheet = Image.new("RGB", (len(cells) * (width + pad) + pad, height + label + pad), "white")
    pen = ImageDraw.Draw(sheet)
    for i, (title, image) in enumerate(cells):
        x = pad + i * (width + pad)
        sheet.paste(image, (x, label))
        pen.text((x, 4), title, fill="black", font=font)
    left, top, right, bottom = box
    pen.rectangle((pad + left, label + top, pad + right, label + bottom), outline=(255, 200, 0), width=2)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path, quality=85)


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    style = images.load_image(args.style)
    photo = images.load_image(CONTENT)
    # The photo at the output's size, resized as the engine resizes it: what the outputs are measured against.
    content = images.to_pil(images.resize(images.to_tensor(photo), images.fit_size(*photo.size, args.size)))
    box = face_box(content)
    load_before, runs, pictures = os.getloadavg(), {}, []
    for strength in (0.0, args.strength):
        options = Options(size=args.size, steps=args.steps, device=args.device, protect_faces=strength)
        started = time.perf_counter()
        output = api.run(photo, style, options).image  # as `brushwork stylize astronaut.png --size 384 ...` runs
        runs[str(strength)] = {"seconds": round(time.perf_counter() - started, 1), **measure(output, content, style, box)}
        pictures.append(output)
        print(f"--protect-faces {strength}: {runs[str(strength)]}", flush=True)
    outside = faces.face_mask(content) == 0
    difference = np.abs(np.asarray(pictures[0], np.float64) - np.asarray(pictures[1], np.float64))[outside].mean()
    reference = measure(content, content, style, box)
    draw([("photo", content), ("stylized", pictures[0]), (f"--protect-faces {args.strength:g}", pictures[1])], box, args.picture)
    record = {
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "torch": torch.__version__,
                    "load_average_before": load_before, "load_average_after": os.getloadavg()},
        "settings": {k: v for k, v in vars(args).items() if k not in ("json", "picture")},
        "face_box": box, "photo": reference, "runs": runs, "outside_face_mean_abs_difference": round(float(difference), 2),
    }  # fmt: skip
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(record, indent=1))
    print(f"outside the face the outputs differ by {difference:.2f} (8-bit mean); wrote {args.picture} and {args.json}")


if __name__ == "__main__":
    main()
