"""The face mask behind --protect-faces: where it finds faces, where it does not, its edge, its cost."""

from __future__ import annotations

import time

import numpy as np
import pytest

from brushwork import faces

from conftest import SHARED_IMAGES, sample

# Eileen Collins's face in scikit-image's 512² astronaut photo, read off the picture: from the
# hairline to the chin and from cheek to cheek (x0, y0, x1, y1).
ASTRONAUT_FACE = (180, 75, 270, 180)


def scaled(box: tuple[float, float, float, float], factor: float) -> tuple[float, ...]:
    return tuple(v * factor for v in box)


@pytest.mark.parametrize("side", [128, 512])
def test_finds_the_astronauts_face_where_it_is(side):
    picture = sample("astronaut.png", side)
    (box,) = faces.detect_faces(picture)
    x0, y0, x1, y1 = scaled(ASTRONAUT_FACE, side / 512)
    x, y, w, h = box
    assert x0 <= x + w / 2 <= x1 and y0 <= y + h / 2 <= y1  # centred on the face
    assert 0.6 * (x1 - x0) <= w <= 1.4 * (x1 - x0)  # about the face's size
    mask = faces.face_mask(picture)
    assert mask.shape == (side, side) and mask.dtype == np.float32
    cx, cy = round((x0 + x1) / 2), round((y0 + y1) / 2)
    assert mask[cy, cx] > 0.99
    # Helmet (bottom right), flag (left), shuttle (top right) and suit stay unprotected.
    for px, py in ((400, 420), (30, 200), (420, 100), (200, 400)):
        assert mask[round(py * side / 512), round(px * side / 512)] == 0


@pytest.mark.parametrize("name", ["coffee.png", "rocket.jpg", "chelsea.png", "camera.png"])
def test_nothing_on_faceless_photos_or_the_cat(name):
    """camera.png's photographer looks down at his camera: not a frontal face."""
    assert not faces.face_mask(sample(name, 256)).any()


@pytest.mark.skipif(not SHARED_IMAGES.is_dir(), reason="needs ../shared/images")
@pytest.mark.parametrize("name", ["starry_night.jpg", "kandinsky_composition_vii.jpg"])
def test_nothing_on_paintings_without_faces(name):
    from brushwork import images

    assert not faces.face_mask(images.load_image(SHARED_IMAGES / "styles" / name)).any()


def test_the_edge_fades_out_over_a_band_without_jumps():
    mask = faces.face_mask(sample("astronaut.png", 512))
    cy = (ASTRONAUT_FACE[1] + ASTRONAUT_FACE[3]) // 2
    row = mask[cy, (ASTRONAUT_FACE[0] + ASTRONAUT_FACE[2]) // 2 :]  # from the face's centre to the right
    assert row[0] > 0.99 and row[-1] == 0
    assert np.all(np.diff(row) <= 1e-6)  # falls monotonically
    assert np.abs(np.diff(row)).max() < 0.05  # no seam
    band = np.count_nonzero((row > 0.05) & (row < 0.95))
    assert band >= 15  # px of partial protection at 512 px, face about 100 px wide


def test_a_poster_costs_about_what_a_small_picture_does():
    """Detection and the mask's drawing happen at 512 px; only the final resize grows."""
    small, big = sample("astronaut.png", 512), sample("astronaut.png", 512).resize((2048, 2048))
    faces.face_mask(small)  # loads the cascade
    seconds = []
    for picture in (small, big):
        started = time.perf_counter()
        mask = faces.face_mask(picture)
        seconds.append(time.perf_counter() - started)
        assert mask.shape == (picture.height, picture.width)
    assert seconds[0] < 3.0 and seconds[1] < 3 * seconds[0] + 0.5
