"""Fast mode: training, the model file, apply (images, folders, video), ONNX export, bad input.

Networks here are width 4 on 32-64 px crops, so the whole file stays well under two minutes.
"""

from __future__ import annotations

import json
import threading
from fractions import Fraction
from pathlib import Path
from types import SimpleNamespace

import av
import numpy as np
import pytest
import torch
from PIL import Image

from brushwork import cli, images, videoio
from brushwork.batch import files
from brushwork.errors import BrushworkError
from brushwork.fast import apply, export, pipeline, train, video
from brushwork.fast.net import TransformNet, load_model, model_metadata
from brushwork.options import Options

from conftest import sample

CPU = Options(device="cpu", precision="fp32")


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny tensors gain nothing from a second thread, and on a busy machine two OpenMP threads
    waiting on each other make these tests several times slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("photos")
    for name in ("astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg"):
        sample(name, 96).save(folder / (Path(name).stem + ".png"))
    return folder


@pytest.fixture(scope="module")
def style_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("style") / "ihc.png"
    sample("ihc.png", 96).save(path)
    return path


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    """A random width-4 network saved as a model file (what it paints does not matter here)."""
    torch.manual_seed(0)
    net = TransformNet(width=4, blocks=1)
    path = tmp_path_factory.mktemp("model") / "tiny.safetensors"
    train.save_model(path, net, model_metadata(net, "ihc", {"style_weight": 5.0}, iteration=0))
    return path


def config(style_file: Path, data_dir: Path, output: Path, **changes) -> train.TrainConfig:
    base = dict(styles=[str(style_file)], data=str(data_dir), output=output, options=CPU.replace(lr=5e-3),
                iterations=12, batch=2, crop=48, width=4, blocks=1, holdout=1, sample_every=6, checkpoint_every=6, quiet=True)  # fmt: skip
    return train.TrainConfig(**{**base, **changes})


def test_training_lowers_the_loss_and_writes_model_samples_and_metadata(style_file, data_dir, tmp_path):
    out = tmp_path / "m.safetensors"
    result = train.train(config(style_file, data_dir, out))
    assert result.stop_reason == "done" and result.iteration == 12
    assert np.mean(result.losses[-3:]) < 0.8 * np.mean(result.losses[:3])
    model = load_model(out)
    assert model.style == "ihc" and model.net.width == 4 and model.net.blocks == 1
    assert model.options["style_weight"] == 5.0 and model.options["lr"] == 5e-3
    training = json.loads(model.metadata["training"])
    assert training["iteration"] == 12 and training["crop"] == 48
    assert len(training["photos"]) == 3  # one of the four held out
    samples = sorted(p.name for p in train.samples_dir(out).iterdir())
    assert len(samples) == 2 and samples[0].endswith("_000006.jpg")  # the held-out photo, at 6 and 12


def test_interrupted_training_keeps_its_checkpoint_and_resume_continues(style_file, data_dir, tmp_path, monkeypatch):
    out = tmp_path / "m.safetensors"
    original = train.TrainProgress.update

    def interrupt_at_3(self, iteration, *losses):
        original(self, iteration, *losses)
        if iteration == 3:
            raise KeyboardInterrupt

    monkeypatch.setattr(train.TrainProgress, "update", interrupt_at_3)
    result = train.train(config(style_file, data_dir, out, holdout=0))
    assert result.stop_reason == "interrupted" and result.iteration == 3
    assert not out.exists()
    checkpoint = train.checkpoint_path(out)
    assert load_model(checkpoint).metadata["iteration"] == "3"
    monkeypatch.setattr(train.TrainProgress, "update", original)

    resumed = train.train(config(style_file, data_dir, out, holdout=0, iterations=5, resume=True, width=None, blocks=None))
    assert resumed.stop_reason == "done" and resumed.iteration == 5 and len(resumed.losses) == 2
    assert load_model(out).metadata["iteration"] == "5"
    with pytest.raises(BrushworkError, match="differs from the checkpoint"):
        train.train(config(style_file, data_dir, out, holdout=0, iterations=6, resume=True, width=8))


def test_save_then_load_gives_identical_outputs_and_metadata(tmp_path):
    torch.manual_seed(1)
    net = TransformNet(width=4, blocks=2).eval()
    metadata = model_metadata(net, "starry_night", {"content_weight": 1.0, "style_layers": ["relu1_1"]}, iteration=7)
    path = tmp_path / "m.safetensors"
    train.save_model(path, net, metadata)
    model = load_model(path)
    assert model.metadata == metadata
    assert model.options == {"content_weight": 1.0, "style_layers": ["relu1_1"]}
    x = torch.rand(2, 3, 37, 50)  # odd sizes come back at their own size
    with torch.no_grad():
        expected = net(x)
    got = model.net(x)
    assert got.shape == x.shape and torch.equal(got, expected)


def test_onnx_export_matches_pytorch(tiny_model, tmp_path):
    import onnxruntime

    out = tmp_path / "m.onnx"
    assert cli.main(["export", str(tiny_model), "--onnx", str(out), "-q"]) == 0
    session = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    x = torch.rand(3, 3, 40, 56)
    (got,) = session.run(None, {"image": x.numpy()})
    with torch.no_grad():
        expected = load_model(tiny_model).net(x)
    assert np.abs(got - expected.numpy()).max() < export.TOLERANCE


def write_pictures(folder: Path) -> list[Path]:
    folder.mkdir()
    paths = []
    for i, (name, size) in enumerate((("astronaut.png", 64), ("coffee.png", 64), ("chelsea.png", 64), ("rocket.jpg", 48))):
        paths.append(folder / f"p{i}.png")
        sample(name, size).save(paths[-1])
    return paths


def test_folder_in_batches_equals_one_by_one(tiny_model, tmp_path):
    paths = write_pictures(tmp_path / "in")
    assert cli.main(["apply", "-m", str(tiny_model), str(tmp_path / "in"), "-o", str(tmp_path / "batched"), "--batch", "4", "-q"]) == 0
    for path in paths:
        single = tmp_path / f"single_{path.name}"
        assert cli.main(["apply", "-m", str(tiny_model), str(path), "-o", str(single), "--batch", "1", "-q"]) == 0
        batched = np.asarray(Image.open(tmp_path / "batched" / path.name))
        assert batched.shape == np.asarray(Image.open(path)).shape
        assert np.array_equal(batched, np.asarray(Image.open(single)))


def test_resume_writes_only_the_missing_outputs(tiny_model, tmp_path, capsys):
    write_pictures(tmp_path / "in")
    args = ["apply", "-m", str(tiny_model), str(tmp_path / "in"), "-o", str(tmp_path / "out"), "-q"]
    assert cli.main(args) == 0
    outputs = sorted((tmp_path / "out").iterdir())
    kept = {p.name: p.stat().st_mtime_ns for p in outputs[1:]}
    outputs[0].unlink()
    assert cli.main(args) == 2 and "--resume" in capsys.readouterr().err  # existing outputs are refused
    assert cli.main([*args, "--resume"]) == 0
    assert outputs[0].is_file() and {p.name: p.stat().st_mtime_ns for p in outputs[1:]} == kept


def test_strength_zero_returns_the_input_and_preserve_color_keeps_chroma(tiny_model):
    model = load_model(tiny_model)
    picture = sample("coffee.png", 64)
    (same,) = apply.stylize_images(model, [picture], apply.Settings(strength=0.0, device="cpu"))
    assert np.abs(np.asarray(same, int) - np.asarray(picture, int)).max() <= 1
    (kept,) = apply.stylize_images(model, [picture], apply.Settings(preserve_color=True, device="cpu"))
    chroma = lambda im: images.rgb_to_yiq(images.to_tensor(im))[:, 1:]  # noqa: E731
    (plain,) = apply.stylize_images(model, [picture], apply.Settings(device="cpu"))
    assert (chroma(kept) - chroma(picture)).abs().mean() < 0.5 * (chroma(plain) - chroma(picture)).abs().mean()


def make_video(path: Path, frames: int = 10, size: tuple[int, int] = (64, 48), fps: int = 12, audio: str | None = "aac", video: bool = True):
    """A square moving over a noise background, with a 440 Hz tone."""
    w, h = size
    container = av.open(str(path), "w")
    streams = []
    if video:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        background = (np.random.default_rng(0).random((h, w, 3)) * 255).astype(np.uint8)
        for i in range(frames):
            frame = background.copy()
            frame[8:24, 2 + 3 * i : 18 + 3 * i] = (255, 0, 0)
            streams.append((stream, av.VideoFrame.from_ndarray(frame, format="rgb24")))
    if audio:
        sound = container.add_stream(audio, rate=16000)
        tone = (0.3 * np.sin(np.arange(16000 * frames // fps) * 2 * np.pi * 440 / 16000)).astype(np.float32)
        for start in range(0, len(tone), 1024):
            chunk = av.AudioFrame.from_ndarray(tone[None, start : start + 1024], format="flt", layout="mono")
            chunk.sample_rate, chunk.pts = 16000, start
            streams.append((sound, chunk))
    for stream, frame in streams:
        container.mux(stream.encode(frame))
    for stream in container.streams:
        container.mux(stream.encode())
    container.close()


def video_facts(path: Path) -> tuple[int, int, int, Fraction, list[str]]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        audio = [s.codec_context.name for s in container.streams.audio]
        rate = stream.average_rate
        frames = sum(1 for _ in container.decode(video=0))
        return frames, stream.codec_context.width, stream.codec_context.height, rate, audio


def test_video_keeps_frames_size_rate_and_audio_and_reports_flicker(tiny_model, tmp_path, capsys):
    source, out = tmp_path / "in.mp4", tmp_path / "out.mp4"
    make_video(source)
    assert cli.main(["apply", "-m", str(tiny_model), str(source), "-o", str(out), "--batch", "3"]) == 0
    assert video_facts(out) == video_facts(source) == (10, 64, 48, Fraction(12), ["aac"])
    message = capsys.readouterr().err
    assert "10 frames" in message and "flicker" in message


def test_audio_that_mp4_cannot_hold_is_reencoded_and_mkv_copies_it(tiny_model, tmp_path):
    source = tmp_path / "in.mkv"
    make_video(source, audio="pcm_s16le")
    for target, codec in ((tmp_path / "out.mp4", "aac"), (tmp_path / "out.mkv", "pcm_s16le")):
        assert cli.main(["apply", "-m", str(tiny_model), str(source), "-o", str(target), "-q"]) == 0
        assert video_facts(target)[:3] == (10, 64, 48) and video_facts(target)[4] == [codec]


def test_deflicker_lowers_measured_flicker(tiny_model, tmp_path):
    source = tmp_path / "in.mp4"
    make_video(source, audio=None)
    model = load_model(tiny_model)
    ratios = []
    for strength in (0.0, 0.8):
        stylizer = apply.Stylizer(model, apply.Settings(deflicker=strength, device="cpu"))
        ratios.append(video.stylize_video(stylizer, source, tmp_path / f"out{strength}.mp4").flicker_ratio)
    assert ratios[1] < ratios[0]


def run_cli(args: list[str], capsys) -> tuple[int, str]:
    code = cli.main(args)
    return code, capsys.readouterr().err


def test_bad_inputs_fail_cleanly(tiny_model, style_file, tmp_path, capsys):
    picture = tmp_path / "p.png"
    sample("coffee.png", 48).save(picture)
    not_ours = tmp_path / "other.safetensors"
    from safetensors.torch import save_file

    save_file({"weight": torch.zeros(2)}, str(not_ours))
    corrupt = tmp_path / "corrupt.safetensors"
    corrupt.write_bytes(tiny_model.read_bytes()[:200])
    audio_only = tmp_path / "sound.mp4"
    make_video(audio_only, video=False)
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "fake.jpg").write_text("not a picture")
    cases = [
        (["apply", "-m", str(not_ours), str(picture), "-o", str(tmp_path / "o.png")], "not a brushwork fast-mode model"),
        (["apply", "-m", str(corrupt), str(picture), "-o", str(tmp_path / "o.png")], "corrupt"),
        (["apply", "-m", "no-such-style", str(picture), "-o", str(tmp_path / "o.png")], "neither a file nor a shipped model"),
        (["apply", "-m", str(tiny_model), str(audio_only), "-o", str(tmp_path / "o.mp4")], "has no video stream"),
        (["apply", "-m", str(tiny_model), str(picture), "-o", str(tmp_path / "missing" / "o.png")], "output folder does not exist"),
        (["apply", "-m", str(tiny_model), str(picture), "-o", str(picture)], "exists; pass --overwrite"),
        (["apply", "-m", str(tiny_model), str(picture), "-o", str(tmp_path / "o.png"), "--strength", "2"], "--strength"),
        (["export", str(corrupt), "--onnx", str(tmp_path / "m.onnx")], "corrupt"),
        (["train", "-s", str(style_file), "--data", str(empty), "-o", str(tmp_path / "m.safetensors")], "no readable images"),
        (["train", "-s", str(style_file), "--data", str(tmp_path / "nope"), "-o", str(tmp_path / "m.safetensors")], "not a folder"),
        (["train", "-s", str(style_file), "--data", str(empty), "-o", str(tmp_path / "m.safetensors"), "--resume"], "no checkpoint"),
    ]
    for args, message in cases:
        code, err = run_cli(args, capsys)
        assert code == 2, args
        last = err.strip().splitlines()[-1]
        assert last.startswith("brushwork: error:") and message in last, (args, err)
        assert "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["corrupt.safetensors", "empty", "other.safetensors", "p.png", "sound.mp4"]


def test_shipped_model_is_found_by_name():
    models = apply.shipped_models()
    assert "starry-night" in models
    model = load_model(apply.resolve_model("starry-night"))
    assert model.style == "starry_night"
    (out,) = apply.stylize_images(model, [sample("chelsea.png", 64)], apply.Settings(device="cpu"))
    assert out.size == sample("chelsea.png", 64).size


def test_size_follows_the_upright_picture(tiny_model, tmp_path):
    """A photo stored sideways with an EXIF rotation is resized as it is seen, not as stored."""
    path = tmp_path / "sideways.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90° to view
    Image.new("RGB", (80, 40), (200, 120, 40)).save(path, exif=exif)
    model = load_model(tiny_model)
    (out,) = apply.stylize_images(model, [Image.open(path)], apply.Settings(size=40, device="cpu"))
    assert out.size == (20, 40)


def test_apply_command_size_strength_batch_and_overwrite(tiny_model, tmp_path, capsys, monkeypatch):
    folder = tmp_path / "in"
    folder.mkdir()
    for i in range(5):
        sample("coffee.png", 64).rotate(i).save(folder / f"p{i}.png")
    batches = []
    original = apply.Stylizer.upload

    def recording(self, frames):
        batches.append(len(frames))
        return original(self, frames)

    monkeypatch.setattr(apply.Stylizer, "upload", recording)
    out = tmp_path / "out"
    args = ["apply", "-m", str(tiny_model), str(folder), "-o", str(out), "--size", "32", "--strength", "0", "--batch", "2", "-q"]
    code, err = run_cli(args, capsys)
    assert code == 0 and err == ""
    assert batches == [2, 2, 1]
    for i in range(5):
        result = Image.open(out / f"p{i}.png")
        picture = images.to_tensor(images.load_image(folder / f"p{i}.png"))
        expected = images.to_pil(images.resize(picture, images.fit_size(picture.shape[-1], picture.shape[-2], 32)))  # strength 0
        assert max(result.size) == 32 and result.size == expected.size
        assert np.abs(np.asarray(result, int) - np.asarray(expected, int)).max() <= 1
    code, err = run_cli(args, capsys)
    assert code == 2 and "exists; pass --overwrite" in err
    assert run_cli([*args, "--overwrite"], capsys)[0] == 0


def test_output_folders_are_checked_before_any_work(tmp_path):
    """A missing output folder fails while planning, not after the network has run; only the
    folder of several outputs may be missing (it is made then), and not its parent."""
    folder = tmp_path / "in"
    folder.mkdir()
    sample("coffee.png", 48).save(folder / "p.png")
    with pytest.raises(BrushworkError, match="output folder does not exist"):
        files.plan_jobs([str(folder / "p.png")], str(tmp_path / "missing" / "o.png"), overwrite=False)
    with pytest.raises(BrushworkError, match="output folder does not exist"):
        files.plan_jobs([str(folder)], str(tmp_path / "missing" / "out"), overwrite=False)
    assert not (tmp_path / "missing").exists()
    (job,) = files.plan_jobs([str(folder)], str(tmp_path / "out"), overwrite=False)
    assert job.target == tmp_path / "out" / "p.png" and job.target.parent.is_dir()


def test_export_refuses_to_overwrite_unless_asked(tiny_model, tmp_path, capsys):
    target = tmp_path / "m.onnx"
    target.write_bytes(b"keep me")
    code, err = run_cli(["export", str(tiny_model), "--onnx", str(target)], capsys)
    assert code == 2 and "exists; pass --overwrite" in err and target.read_bytes() == b"keep me"
    assert run_cli(["export", str(tiny_model), "--onnx", str(target), "--overwrite", "-q"], capsys)[0] == 0
    assert target.read_bytes() != b"keep me"


def test_train_command_passes_its_flags_on(style_file, data_dir, tmp_path, capsys):
    out = tmp_path / "m.safetensors"
    args = ["train", "-s", str(style_file), "--data", str(data_dir), "-o", str(out), "--iterations", "2", "--batch", "3",
            "--crop", "40", "--width", "3", "--blocks", "2", "--holdout", "1", "--device", "cpu", "--style-weight", "7",
            "--lr", "0.004", "--checkpoint-every", "1", "--sample-every", "1", "-q"]  # fmt: skip
    code, err = run_cli(args, capsys)
    assert code == 0 and err == ""
    model = load_model(out)
    assert (model.net.width, model.net.blocks) == (3, 2)
    assert model.options["style_weight"] == 7.0 and model.options["lr"] == 0.004
    training = json.loads(model.metadata["training"])
    assert (training["iterations"], training["batch"], training["crop"], len(training["photos"])) == (2, 3, 40, 3)
    assert len(list(train.samples_dir(out).iterdir())) == 2  # --sample-every 1
    code, err = run_cli(args, capsys)
    assert code == 2 and "exists; pass --overwrite" in err
    assert run_cli([*args, "--overwrite"], capsys)[0] == 0


def test_train_refuses_a_network_without_channels(style_file, data_dir, tmp_path):
    with pytest.raises(BrushworkError, match="network width must be at least 1"):
        train.train(config(style_file, data_dir, tmp_path / "m.safetensors", width=0))


@pytest.mark.parametrize("style_loss", ["meancov", "sliced"])
def test_training_with_another_style_loss(style_file, data_dir, tmp_path, capsys, style_loss):
    out = tmp_path / "m.safetensors"
    args = ["train", "-s", str(style_file), "--data", str(data_dir), "-o", str(out), "--iterations", "2", "--batch",
            "2", "--crop", "48", "--width", "4", "--blocks", "1", "--holdout", "0", "--device", "cpu", "--precision",
            "fp32", "--lr", "0.005", "--style-loss", style_loss, "-q"]  # fmt: skip
    assert run_cli(args, capsys) == (0, "")
    assert load_model(out).options["style_loss"] == style_loss
    losses = train.train(config(style_file, data_dir, out, overwrite=True, holdout=0,
                                options=CPU.replace(lr=5e-3, style_loss=style_loss))).losses
    assert np.mean(losses[-3:]) < 0.8 * np.mean(losses[:3])


# --- throughput: backends, the overlapped pipeline, timestamps ---------------------------------


def test_backends_agree_and_the_torch_path_keeps_the_float_pipeline(tiny_model):
    """onnxruntime, the default for fp32 on a CPU, differs from PyTorch by float rounding only (≤ 1 in 8
    bits), with one network call per thread or one for all; PyTorch through uint8 frames gives
    exactly what the float path (to_tensor, the network, to_pil) gave before; odd sizes and
    --size work in each."""
    model = load_model(tiny_model)
    frames = [(i, np.asarray(sample(name, 50).crop((0, 0, 50, 37)))) for i, name in enumerate(("chelsea.png", "coffee.png", "astronaut.png"))]
    torch.set_num_threads(2)
    try:
        fast = apply.Stylizer(model, apply.Settings(device="cpu", precision="fp32"))
        single = apply.Stylizer(model, apply.Settings(device="cpu", precision="fp32", workers=1))
        assert (fast.backend, fast.batch, fast.workers, single.workers) == ("onnxruntime", 1, 2, 1)
        got = [pixels for _, pixels in pipeline.stylize_batches(fast, frames)]
        assert torch.get_num_threads() == 2  # host_threads restores the process-wide setting
        assert all(np.array_equal(a, b) for a, b in zip(got, (p for _, p in pipeline.stylize_batches(single, frames))))
    finally:
        torch.set_num_threads(1)
    exact = apply.Stylizer(model, apply.Settings(device="cpu", precision="fp32", backend="torch"))
    reference = [pixels for _, pixels in pipeline.stylize_batches(exact, frames)]
    assert got[0].shape == reference[0].shape == (37, 50, 3) and got[0].dtype == np.uint8
    assert max(np.abs(a.astype(int) - b.astype(int)).max() for a, b in zip(got, reference)) <= 1
    with torch.no_grad():
        expected = [images.to_pil(model.net(images.to_tensor(Image.fromarray(f)))) for _, f in frames]
    assert all(np.array_equal(a, np.asarray(b)) for a, b in zip(reference, expected))
    resized = apply.Stylizer(model, apply.Settings(device="cpu", precision="fp32", size=20))
    assert next(pipeline.stylize_batches(resized, frames))[1].shape == (15, 20, 3)
    assert apply.Stylizer(model, apply.Settings(device="cpu", precision="bf16")).backend == "torch"
    named = apply.Stylizer(model, apply.Settings(device="cpu", backend="onnxruntime"))  # implies fp32 on any CPU
    assert (named.backend, named.dtype) == ("onnxruntime", torch.float32)
    with pytest.raises(BrushworkError, match="fp32 on the CPU only"):
        apply.Stylizer(model, apply.Settings(device="cpu", precision="bf16", backend="onnxruntime"))
    with pytest.raises(BrushworkError, match="needs the onnxruntime backend"):
        apply.Stylizer(model, apply.Settings(device="cpu", backend="torch", workers=2))


def test_overlapped_pipeline_writes_the_same_pictures_and_frames_as_the_sequential_one(tiny_model, tmp_path, monkeypatch):
    # The frames are compared as they reach the H.264 encoder: x264's frame threads may encode
    # the same frames to different bytes from run to run on a busy machine (seen in CI), which
    # says nothing about the pipeline.
    encoded: list[tuple[int, bytes]] = []
    write = videoio.Muxer.write

    def recording_write(self, item):
        if isinstance(item, videoio.Picture):
            encoded.append((item.pts, item.pixels.tobytes()))
        write(self, item)

    monkeypatch.setattr(videoio.Muxer, "write", recording_write)
    paths = write_pictures(tmp_path / "in")
    clip = tmp_path / "clip.mp4"
    make_video(clip, frames=7)
    model = load_model(tiny_model)
    pictures, frames = {}, {}
    for overlap in (True, False):
        settings = apply.Settings(device="cpu", precision="fp32", batch=2, overlap=overlap, workers=1 + overlap)
        stylizer = apply.Stylizer(model, settings)
        folder = tmp_path / f"out{overlap}"
        folder.mkdir()
        pipeline.stylize_files(stylizer, [(p, folder / p.name) for p in paths], lambda text: None)
        encoded.clear()
        video.stylize_video(stylizer, clip, folder / "clip.mp4")
        pictures[overlap] = {p.name: p.read_bytes() for p in folder.iterdir() if p.suffix == ".png"}
        frames[overlap] = list(encoded)
    assert sorted(pictures[True]) == sorted(p.name for p in paths)
    assert pictures[True] == pictures[False]
    assert len(frames[True]) == 7 and [pts for pts, _ in frames[True]] == sorted(pts for pts, _ in frames[True])
    assert frames[True] == frames[False]
    assert video_facts(tmp_path / "outTrue" / "clip.mp4")[:4] == (7, 64, 48, Fraction(12))


def test_a_failing_reader_or_writer_stops_the_pipeline_and_raises_here():
    def source():
        yield from range(3)
        raise BrushworkError("cannot decode item 3")

    written = []
    with pytest.raises(BrushworkError, match="cannot decode item 3"):
        pipeline.overlapped(source(), lambda items: (i * 10 for i in items), written.append, depth=1)
    assert written == [0, 10, 20]

    def sink(item):
        if item == 2:
            raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        pipeline.overlapped(range(1000), lambda items: iter(items), sink, depth=2)
    # The pipeline's own threads; the sliced loss's sorting pool (brushwork-sort) lives on by design.
    assert not [t for t in threading.enumerate() if t.name.startswith("brushwork-") and not t.name.startswith("brushwork-sort")]


def test_timestamps_sort_a_local_reordering_and_never_repeat():
    times = videoio.Timestamps()
    frames = [SimpleNamespace(pts=p, dts=None) for p in (1, 2, 3, 5, 4, 6, 8, 7, 9, 9, None)]
    out = []
    for i, frame in enumerate(frames):
        times.add(frame)
        if i >= videoio.REORDER:
            out.append(times.next())
    out += [times.next() for _ in range(videoio.REORDER)]
    assert out == [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]


def make_reordered_video(path: Path, frames: int = 12) -> list[int]:
    """MPEG-4 Part 2 whose decoded frames carry timestamps out of order, 1, 3, 2, 4, 6, 5, ..., as
    packed B-frame AVIs decode (opencv-doc's Megamind.avi). FFmpeg writes no packed B-frames,
    and an AVI stores no timestamps, so the frames go into Matroska with those timestamps."""
    order = list(range(frames))
    for i in range(1, frames - 1, 3):
        order[i], order[i + 1] = order[i + 1], order[i]
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        background = (np.random.default_rng(1).random((48, 64, 3)) * 255).astype(np.uint8)
        packets = []
        for i in range(frames):
            picture = background.copy()
            picture[8:24, 2 + 3 * i : 18 + 3 * i] = (255, 0, 0)
            packets += stream.encode(av.VideoFrame.from_ndarray(picture, format="rgb24"))
        packets += stream.encode()
        for i, packet in enumerate(packets):
            packet.pts, packet.dts = order[i] + 1, i
            container.mux(packet)
    with av.open(str(path)) as container:
        return [frame.pts for frame in container.decode(video=0)]


def frame_times(path: Path) -> tuple[list[float], Fraction]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        return [float(frame.time) for frame in container.decode(video=0)], stream.average_rate


def test_out_of_order_timestamps_are_written_in_order_keeping_frames_and_rate(tiny_model, tmp_path):
    source = tmp_path / "reordered.mkv"
    decoded = make_reordered_video(source)
    if decoded == sorted(decoded):
        pytest.skip("this FFmpeg build reorders the timestamps itself; no out-of-order file to test with")
    times_in, _ = frame_times(source)
    for target in (tmp_path / "out.mp4", tmp_path / "out.mkv"):
        assert cli.main(["apply", "-m", str(tiny_model), str(source), "-o", str(target), "-q"]) == 0
        times, rate = frame_times(target)
        assert rate == 25 and len(times) == len(times_in) == 12
        assert times == pytest.approx(sorted(times_in), abs=1e-3)  # strictly increasing, as in the input


MEGAMIND = Path("/usr/share/doc/opencv-doc/examples/data/Megamind.avi")


@pytest.mark.skipif(not MEGAMIND.is_file(), reason="opencv-doc is not installed (apt-get install opencv-doc)")
def test_megamind_avi_with_packed_b_frames_converts(tiny_model, tmp_path):
    target = tmp_path / "mega.mp4"
    assert cli.main(["apply", "-m", str(tiny_model), str(MEGAMIND), "-o", str(target), "--size", "48", "-q"]) == 0
    times, rate = frame_times(target)
    assert len(times) == 270 and rate == Fraction(2997, 125)
    assert all(b > a for a, b in zip(times, times[1:]))
    assert video_facts(target)[4] == ["ac3"]
