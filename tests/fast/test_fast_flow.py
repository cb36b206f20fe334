"""Fast mode's consistency step on video (--consistency flow|blend|off): a photo shifted by
known amounts, so the true motion, and with it the warping error, is exact."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest
import torch

from brushwork import cli, videoio
from brushwork.errors import BrushworkError
from brushwork.fast import apply, video
from brushwork.fast.consistency import Consistency
from brushwork.fast.net import load_model

from conftest import sample
from test_fast import tiny_model  # noqa: F401  (a fixture: the random width-4 model file)

SHIFT = 2  # pixels per frame, to the left: frame t+1 at x shows what frame t showed at x + SHIFT


def shifted_frames(count: int = 6, size: tuple[int, int] = (64, 48)) -> list[np.ndarray]:
    """A photo panned SHIFT whole pixels per frame: frame t is the window at x = SHIFT·t."""
    w, h = size
    photo = np.asarray(sample("coffee.png", 128))
    return [np.ascontiguousarray(photo[20 : 20 + h, SHIFT * t : SHIFT * t + w]) for t in range(count)]


def warping_error(outputs: list[torch.Tensor]) -> float:
    """Mean |out_t(x + SHIFT) − out_{t+1}(x)| in the interior: the exact flow, nothing to estimate."""
    inner = slice(4, -4)
    pairs = [(a[..., inner, SHIFT + 4 : -4], b[..., inner, 4 : -4 - SHIFT]) for a, b in zip(outputs, outputs[1:])]
    return float(np.mean([(a - b).abs().mean() for a, b in pairs]))


def repainted(method: str) -> list[torch.Tensor]:
    """The step's outputs for a network that paints every frame anew: the frame plus fresh
    strokes (noise), the same strokes for every method."""
    noise = torch.Generator().manual_seed(0)
    hold = Consistency(method, 0.8)
    outputs = []
    for frame in shifted_frames():
        x = torch.from_numpy(frame).permute(2, 0, 1)[None].float() / 255
        strokes = 0.2 * (torch.rand(x.shape, generator=noise) - 0.5)
        outputs.append(hold(x, (x + strokes).clamp(0, 1)))
    return outputs


def test_flow_step_lowers_the_warping_error_of_a_pan():
    errors = {method: warping_error(repainted(method)) for method in ("off", "blend", "flow")}
    assert errors["flow"] < 0.6 * errors["off"], errors
    assert errors["flow"] < 0.7 * errors["blend"], errors  # blending in place does not follow a pan


def test_the_first_frame_is_the_network_s():
    x = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    assert torch.equal(Consistency("flow", 0.8)(x, x * 0.5), x * 0.5)


def write_clip(frames: list[np.ndarray], path: Path) -> None:
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=12)
        stream.width, stream.height, stream.pix_fmt = frames[0].shape[1], frames[0].shape[0], "yuv420p"
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())


def timestamps(path: Path) -> list[float]:
    with av.open(str(path)) as container:
        return [float(frame.pts * frame.time_base) for frame in container.decode(video=0)]


@pytest.mark.parametrize("method", ["flow", "blend", "off"])
def test_every_method_keeps_frame_count_and_timestamps(tiny_model, tmp_path, method):
    source, out = tmp_path / "in.mp4", tmp_path / "out.mp4"
    write_clip(shifted_frames(8), source)
    stylizer = apply.Stylizer(load_model(tiny_model), apply.Settings(consistency=method, device="cpu", precision="fp32"))
    report = video.stylize_video(stylizer, source, out)
    assert report.frames == 8
    assert timestamps(out) == timestamps(source)


@pytest.fixture
def encoded(monkeypatch) -> list[np.ndarray]:
    """Every frame handed to the H.264 encoder, in order. Runs are compared here rather than in
    the files: libx264 was seen to encode the same frames differently from run to run."""
    frames: list[np.ndarray] = []
    write = videoio.Muxer.write

    def keep(muxer: videoio.Muxer, item: videoio.Item) -> None:
        if isinstance(item, videoio.Picture):
            frames.append(item.pixels.copy())
        write(muxer, item)

    monkeypatch.setattr(videoio.Muxer, "write", keep)
    return frames


def test_flow_is_the_default_and_a_named_method_changes_the_output(tiny_model, tmp_path, encoded):
    source = tmp_path / "in.mp4"
    write_clip(shifted_frames(6), source)
    frames = {}
    for name, extra in (("default", []), ("flow", ["--consistency", "flow"]), ("blend", ["--consistency", "blend"])):
        target = tmp_path / f"{name}.mp4"
        assert cli.main(["apply", "-m", str(tiny_model), str(source), "-o", str(target), "-q", "--precision", "fp32"] + extra) == 0
        frames[name] = np.stack(encoded)
        encoded.clear()
    assert np.array_equal(frames["default"], frames["flow"])
    assert not np.array_equal(frames["blend"][1:], frames["flow"][1:])


@pytest.mark.parametrize("backend", ["torch", "onnxruntime"])
def test_flow_paints_a_clip_the_same_every_time(tiny_model, tmp_path, encoded, backend):
    """Byte for byte: the step runs in the caller's thread while the network's worker threads
    (onnxruntime) and the codecs' run beside it, and its trust map once came out differently
    from run to run (consistency.py)."""
    source = tmp_path / "in.mp4"
    write_clip(shifted_frames(8), source)
    runs = []
    for run in range(2):
        settings = apply.Settings(consistency="flow", device="cpu", precision="fp32", backend=backend)
        video.stylize_video(apply.Stylizer(load_model(tiny_model), settings), source, tmp_path / f"{run}.mp4")
        runs.append(b"".join(frame.tobytes() for frame in encoded))
        encoded.clear()
    assert len(runs[0]) == 8 * 48 * 64 * 3 and runs[0] == runs[1]


def test_bad_consistency_options_fail_in_one_line(tiny_model, tmp_path, capsys):
    source = tmp_path / "in.mp4"
    write_clip(shifted_frames(3), source)
    for extra, message in ((["--consistency", "wobble"], "--consistency"), (["--deflicker", "1.5"], "--deflicker")):
        try:
            code = cli.main(["apply", "-m", str(tiny_model), str(source), "-o", str(tmp_path / "o.mp4")] + extra)
        except SystemExit as e:  # argparse's own check of a choice
            code = e.code
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 2 and len(err) == 1 and "error:" in err[0] and message in err[0], err
    with pytest.raises(BrushworkError, match="unknown --consistency 'wobble'; use flow, blend, off"):
        apply.Settings(consistency="wobble").validate()
    assert not (tmp_path / "o.mp4").exists()
