"""tiles.py: the geometry that makes tiled features exact: cores that partition every layer's
map on the pooling grid, margins that cover the receptive field, wrapping for seamless output."""

from __future__ import annotations

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from brushwork import tiles


def test_downsampling_and_receptive_radius_follow_vggs_pools_and_convs():
    assert [tiles.downsampling(n) for n in ("relu1_1", "relu2_1", "relu3_1", "relu4_2", "relu5_1")] == [1, 2, 4, 8, 16]
    assert tiles.receptive_radius(("relu1_1",)) == 1  # one 3×3 conv
    assert tiles.receptive_radius(("relu1_1", "relu1_2")) == 2
    assert tiles.receptive_radius(("relu2_1",)) == 5  # two convs, a pool, one conv at stride 2
    assert tiles.margin_for(("relu2_1",)) == 16 and tiles.margin_for(("relu5_1",)) % 16 == 0
    assert tiles.margin_for(("relu5_1",)) >= tiles.receptive_radius(("relu5_1",))


def test_tiles_take_their_margins_and_wrap_around_the_edges():
    grid = tiles.tiles(96, 64, 32, 16)
    assert len(grid) == 3 * 2
    first, last = grid[0], grid[-1]
    assert (first.rows.start, first.rows.stop, first.cols.start, first.cols.stop) == (0, 48, 0, 48)  # clipped
    assert (last.rows.start, last.rows.stop, last.cols.start, last.cols.stop) == (16, 64, 48, 96)
    image = torch.arange(64 * 96, dtype=torch.float32).reshape(1, 1, 64, 96)
    assert first.take(image).shape[-2:] == (48, 48)
    wrapped = tiles.tiles(96, 64, 32, 16, wrap=True)[0]
    taken = wrapped.take(image)
    assert taken.shape[-2:] == (64, 64)  # 16 on each side of a 32 px core
    assert torch.equal(taken[..., 0, 0], image[..., -16, -16])  # the margin comes from the opposite edge
    assert max(t.cols.stop - t.cols.start for t in grid) <= tiles.tile_input_side(32, 16)


def test_a_tiles_core_is_the_same_positions_as_its_region_of_the_whole():
    whole = torch.rand(1, 2, 64, 96)
    for tile in tiles.tiles(96, 64, 32, 16):
        assert torch.equal(tile.core(tile.take(whole), "relu1_1"), tile.region(whole, "relu1_1"))


@settings(max_examples=30, deadline=None)
@given(width=st.integers(24, 120), height=st.integers(24, 120), core=st.integers(8, 64), wrap=st.booleans())
def test_put_back_adds_a_tiles_gradient_where_take_read_it(width, height, core, wrap):
    """put_back is the adjoint of take (what autograd through take would add to the image's
    gradient, wrapped pixels summed), computed without an image-sized tensor per tile."""
    image = torch.rand(1, 3, height, width).requires_grad_(True)
    ours = torch.zeros_like(image)
    for tile in tiles.tiles(width, height, core, 16, wrap):  # their margins overlap: the sums must add
        upstream = torch.rand_like(tile.take(image))
        (tile.take(image) * upstream).sum().backward()
        tile.put_back(upstream, ours)
    torch.testing.assert_close(ours, image.grad)


@settings(max_examples=60, deadline=None)
@given(
    length=st.integers(1, 900),
    core=st.integers(16, 300),
    layer=st.sampled_from(["relu1_1", "relu2_1", "relu3_1", "relu4_2", "relu5_1"]),
    wrap=st.booleans(),
)
def test_tile_cores_partition_every_feature_map(length, core, layer, wrap):
    if wrap:
        length = max(16, length // 16 * 16)  # seamless sizes are on the pooling grid
    factor = tiles.downsampling(layer)
    covered = []
    for span in tiles.spans(length, core, 80, wrap):
        local, whole = span.core(factor)
        tile_length = (span.stop - span.start) // factor
        assert 0 <= local.start <= local.stop <= tile_length
        assert local.stop - local.start == whole.stop - whole.start
        assert span.start % 16 == 0 or span.start == 0
        covered += range(whole.start, whole.stop)
    assert covered == list(range(length // factor))
