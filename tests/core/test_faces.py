"""The face mask behind --protect-faces: where it finds faces, where it does not, its edge, its cost."""

from __future__ import annotations

from types import SimpleNamespace

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


def test_a_poster_is_detected_and_drawn_at_the_working_size(monkeypatch):
    """Detection and the mask's drawing happen at WORK_SIDE px whatever the picture's size; only
    the final resize grows with it, so a poster's mask costs about what a small picture's does."""
    small = sample("astronaut.png", 512)
    big = small.resize((2048, 2048))
    detector, seen = faces.cascade(), []

    def detect_multi_scale(img, **settings):
        seen.append(img.shape)
        return detector.detect_multi_scale(img=img, **settings)

    monkeypatch.setattr(faces, "cascade", lambda: SimpleNamespace(detect_multi_scale=detect_multi_scale))
    small_mask, big_mask = faces.face_mask(small), faces.face_mask(big)
    assert seen == [(faces.WORK_SIDE, faces.WORK_SIDE, 3)] * 2
    assert big_mask.shape == (2048, 2048) and small_mask.max() == 1
    assert np.abs(big_mask[2::4, 2::4] - small_mask).mean() < 0.01  # the same mask, scaled
