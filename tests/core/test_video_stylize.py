"""`brushwork stylize` on video: clips of a photo panned by known amounts, encoded here with PyAV,
painted at 64 px with a few steps (precision fixed to fp32, so CPUs with and without bf16 agree)."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from brushwork import cli, faces
from brushwork.engine import Engine
from brushwork.options import Options
from brushwork.video import ClipSettings, Frame, FrameStore, paint_clip, shot_starts

from conftest import sample

FAST = ["--size", "64", "--steps", "2", "--frame-steps", "2", "--precision", "fp32", "--device", "cpu", "-q"]
PAN = 2  # pixels the scene moves right per frame


def panned(count: int, photo: str = "astronaut.png", start: int = 0) -> list[np.ndarray]:
    """64×48 windows of a photo, the scene moving PAN px to the right from frame to frame."""
    pixels = np.asarray(sample(photo, 128))
    x0 = 40 - PAN * start
    return [np.ascontiguousarray(pixels[30:78, x0 - PAN * i : x0 - PAN * i + 64]) for i in range(count)]


def make_clip(path: Path, frames: list[np.ndarray], audio: bool = True, rotation: int = 0) -> None:
    """H.264 at 12 frames/s, with a 440 Hz AAC tone as long as the video."""
    with av.open(str(path), "w") as container:
        video = container.add_stream("libx264", rate=12)
        video.height, video.width = frames[0].shape[:2]
        video.pix_fmt = "yuv420p"
        if rotation:
            video.set_display_rotation(rotation)
        sound = container.add_stream("aac", rate=16000) if audio else None
        for frame in frames:
            container.mux(video.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(video.encode())
        if sound is not None:
            tone = (0.3 * np.sin(np.arange(16000 * len(frames) // 12) * 2 * np.pi * 440 / 16000)).astype(np.float32)
            for start in range(0, len(tone), 1024):
                chunk = av.AudioFrame.from_ndarray(tone[None, start : start + 1024], format="flt", layout="mono")
                chunk.sample_rate, chunk.pts = 16000, start
                container.mux(sound.encode(chunk))
            container.mux(sound.encode())


def facts(path: Path) -> tuple[int, tuple[int, int], Fraction, list[float], list[str], float]:
    """Frames, (width, height), rate, frame times, audio codecs and audio duration in seconds."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        times = [float(f.time) for f in container.decode(video=0)]
        size, rate = (stream.codec_context.width, stream.codec_context.height), stream.average_rate
        audio = [s.codec_context.name for s in container.streams.audio]
    seconds = 0.0
    if audio:
        with av.open(str(path)) as container:
            seconds = sum(f.samples / f.sample_rate for f in container.decode(audio=0))
    return len(times), size, rate, times, audio, seconds


def stylize(*args) -> int:
    return cli.main(["stylize", *map(str, args)])


@pytest.fixture(scope="module")
def style_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("style") / "style.png"
    sample("ihc.png", 96).save(path)
    return path


def test_a_clip_keeps_its_frame_count_rate_timestamps_and_audio(tmp_path, style_file):
    source, target = tmp_path / "in.mp4", tmp_path / "out.mp4"
    make_clip(source, panned(4))
    assert stylize(source, "-s", style_file, "-o", target, *FAST) == 0
    frames, size, rate, times, audio, seconds = facts(target)
    expected = facts(source)
    assert (frames, size, rate, audio) == (4, (64, 48), Fraction(12), ["aac"]) == expected[:3] + (expected[4],)
    assert times == pytest.approx(expected[3], abs=1e-3)
    assert seconds == pytest.approx(expected[5], abs=0.05)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mp4", "out.mp4"]  # the work folder is gone


def test_frame_steps_is_each_later_frame_s_schedule(tmp_path, style_file, runs):
    source = tmp_path / "in.mp4"
    make_clip(source, panned(3), audio=False)
    assert stylize(source, "-s", style_file, "-o", tmp_path / "out.mp4", *FAST, "--frame-steps", "3") == 0
    assert [(options.steps, options.scales) for options in runs[1:]] == [(3, 1), (3, 1)]
    assert runs[0].steps != 3


def test_part_of_a_clip_starts_at_zero_with_the_audio_it_spans(tmp_path, style_file):
    source, target = tmp_path / "in.mp4", tmp_path / "part.mkv"
    make_clip(source, panned(6))
    assert stylize(source, "-s", style_file, "-o", target, "--frames", "2:4", *FAST) == 0
    frames, _, _, times, audio, seconds = facts(target)
    assert frames == 2 and times == pytest.approx([0, 1 / 12], abs=1e-3) and audio == ["aac"]
    assert 0.1 < seconds < 0.3  # two frames' worth (AAC frames are 64 ms)


def test_a_sideways_phone_video_is_painted_upright(tmp_path, style_file):
    source, target = tmp_path / "portrait.mp4", tmp_path / "out.mp4"
    make_clip(source, panned(2), audio=False, rotation=90)
    assert stylize(source, "-s", style_file, "-o", target, *FAST) == 0
    with av.open(str(target)) as container:
        frame = next(container.decode(video=0))
        assert (frame.width, frame.height, frame.rotation) == (48, 64, 0)


def test_a_folder_with_video_writes_pngs_of_the_same_names(tmp_path, style_file):
    folder, out = tmp_path / "frames", tmp_path / "out"
    folder.mkdir()
    for i, pixels in enumerate(panned(3)):
        Image.fromarray(pixels).save(folder / f"shot_{i:02d}.jpg")
    assert stylize(folder, "--video", "-s", style_file, "-o", out, *FAST) == 0
    assert sorted(p.name for p in out.iterdir()) == ["shot_00.png", "shot_01.png", "shot_02.png"]
    assert Image.open(out / "shot_01.png").size == (64, 48)


def warping_error(a: Image.Image, b: Image.Image) -> float:
    """Mean |b − a moved by the known pan| over the pixels both frames show."""
    a, b = (np.asarray(p, np.float32) / 255 for p in (a, b))
    return float(np.abs(b[:, PAN:] - a[:, :-PAN]).mean())


def paint(engine: Engine, frames: list[np.ndarray], options: Options, tmp_path: Path, steps: int = 3) -> list:
    store = FrameStore(lambda i: tmp_path / f"{options.temporal_weight}_{i}.png")
    clip = [Frame(i, Image.fromarray(p)) for i, p in enumerate(frames)]
    return list(paint_clip(engine, clip, [sample("ihc.png", 64)], options, ClipSettings(frame_steps=steps), store))


def test_the_temporal_term_holds_the_next_frame_to_the_warped_previous_one(engine, tmp_path):
    options = Options(size=64, steps=10, device="cpu", precision="fp32")
    errors = []
    for weight in (0.0, 10 * options.temporal_weight):  # firm, so that 10 steps show it plainly
        (_, first, _), (_, second, link) = paint(engine, panned(2), options.replace(temporal_weight=weight), tmp_path, 10)
        assert link is not None and link.reliable > 0.8
        assert second.records[-1].temporal > 0 or weight == 0
        errors.append(warping_error(first.image, second.image))
    assert errors[1] < 0.6 * errors[0]  # the same outputs (same errors) if the term did nothing


def test_a_scene_cut_restarts_the_chain_with_a_still_schedule(engine, tmp_path):
    frames = panned(2) + panned(2, "coffee.png")
    options = Options(size=64, steps=4, device="cpu", precision="fp32")
    painted = paint(engine, frames, options, tmp_path, steps=1)
    assert [link is None for _, _, link in painted] == [True, False, True, False]
    assert [len(result.records) for _, result, _ in painted] == [4, 1, 4, 1]
    assert painted[2][1].records[-1].temporal == 0


def test_shots_are_found_before_painting_where_the_flow_breaks():
    frames = [Frame(i, Image.fromarray(p)) for i, p in enumerate(panned(3) + panned(2, "coffee.png") + panned(1))]
    assert shot_starts(frames) == [0, 3, 5]


def test_resume_after_a_kill_paints_only_the_missing_frames(tmp_path, style_file, monkeypatch, capsys):
    source, target = tmp_path / "in.mp4", tmp_path / "out.mp4"
    make_clip(source, panned(4), audio=False)
    calls = []
    original = Engine.run

    def killed_at_the_third(self, *args, **kwargs):
        calls.append(args[0].size)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Engine, "run", killed_at_the_third)
    assert stylize(source, "-s", style_file, "-o", target, *FAST) == 130
    assert "--resume" in capsys.readouterr().err and not target.exists()
    work = tmp_path / "out.mp4.frames"
    kept = {p.name: p.stat().st_mtime_ns for p in work.glob("*.png")}
    assert sorted(kept) == ["frame_000000.png", "frame_000001.png"]
    calls.clear()
    assert stylize(source, "-s", style_file, "-o", target, "--resume", *FAST) == 0
    assert len(calls) == 2 and facts(target)[0] == 4 and not work.exists()


def test_resume_refuses_frames_painted_with_other_settings(tmp_path, style_file, monkeypatch, capsys):
    source, target = tmp_path / "in.mp4", tmp_path / "out.mp4"
    make_clip(source, panned(2), audio=False)
    monkeypatch.setattr(Engine, "run", lambda *a, **k: (_ for _ in ()).throw(KeyboardInterrupt))
    assert stylize(source, "-s", style_file, "-o", target, *FAST) == 130
    assert stylize(source, "-s", style_file, "-o", target, "--resume", "--style-weight", "9", *FAST) == 2
    assert "other settings" in capsys.readouterr().err
    assert stylize(source, "-s", style_file, "-o", target, *FAST) == 2
    assert "--resume continues it" in capsys.readouterr().err


def test_a_mask_folder_keeps_each_frame_where_its_mask_is_black(tmp_path, style_file):
    folder, masks, out = tmp_path / "frames", tmp_path / "masks", tmp_path / "out"
    folder.mkdir()
    masks.mkdir()
    frames = panned(2)
    for i, pixels in enumerate(frames):
        Image.fromarray(pixels).save(folder / f"{i}.png")
        mask = np.zeros((48, 64), np.uint8)
        mask[:, 32 + 8 * i :] = 255
        Image.fromarray(mask).save(masks / f"{i}.png")
    assert stylize(folder, "--video", "--mask", masks, "-s", style_file, "-o", out, *FAST) == 0
    for i, pixels in enumerate(frames):
        change = np.abs(np.asarray(Image.open(out / f"{i}.png"), np.int16) - pixels)
        assert change[:, :32].max() <= 1  # black: the photo as it is
        assert change[:, 48:].mean() > 1 and change[:, 40 + 8 * i :].max() > 10  # white: painted


def test_face_boxes_are_smoothed_and_held_over_missed_frames(monkeypatch):
    detections = iter([[(10, 10, 20, 20)], [(14, 10, 20, 20)], [], [(10, 10, 20, 20)]])
    monkeypatch.setattr(faces, "detect_faces", lambda image: next(detections))
    track = faces.FaceTrack()
    picture = Image.new("RGB", (64, 48))
    boxes = [track.update(picture) for _ in range(4)]
    assert boxes[0] == [(10, 10, 20, 20)]
    assert 10 < boxes[1][0][0] < 14  # moved part of the way
    assert boxes[2] == boxes[1]  # a missed frame keeps the face
    assert len(boxes[3]) == 1


def bad_inputs(tmp_path: Path) -> dict[str, Path]:
    paths = {"text": tmp_path / "notes.mp4", "sound": tmp_path / "sound.mp4", "empty": tmp_path / "empty",
             "broken": tmp_path / "broken", "mixed": tmp_path / "mixed", "clip": tmp_path / "clip.mp4"}
    paths["text"].write_text("not a video")
    with av.open(str(paths["sound"]), "w") as container:
        sound = container.add_stream("aac", rate=16000)
        chunk = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="flt", layout="mono")
        chunk.sample_rate, chunk.pts = 16000, 0
        container.mux(sound.encode(chunk))
        container.mux(sound.encode())
    for name in ("empty", "broken", "mixed"):
        paths[name].mkdir()
    Image.fromarray(panned(1)[0]).save(paths["broken"] / "0.png")
    (paths["broken"] / "1.png").write_bytes(b"\x89PNG not really")
    Image.fromarray(panned(1)[0]).save(paths["mixed"] / "0.png")
    Image.new("RGB", (30, 30)).save(paths["mixed"] / "1.png")
    make_clip(paths["clip"], panned(2), audio=False)
    return paths


@pytest.mark.parametrize("case, extra, needle", [
    ("text", [], "cannot read video"),
    ("sound", [], "has no video stream"),
    ("empty", ["--video"], "no pictures in"),
    ("broken", ["--video"], "1.png"),
    ("mixed", ["--video"], "must share one size"),
    ("clip", ["--frames", "5:9"], "has no frames in --frames 5:9"),
    ("clip", ["--frames", "3"], "--frames takes START:END"),
    ("clip", ["--temporal-frames", "2,4"], "include 1"),
    ("clip", ["-o", "OUT/out.png"], "written as .mp4, .mkv or .mov"),
])  # fmt: skip
def test_bad_inputs_fail_cleanly_with_one_line(tmp_path, style_file, capsys, case, extra, needle):
    paths = bad_inputs(tmp_path)
    before = sorted(p.name for p in tmp_path.rglob("*"))
    output = ["-o", str(tmp_path / ("out" if paths[case].is_dir() else "out.mp4"))]
    extra = [e.replace("OUT", str(tmp_path)) for e in extra]
    assert stylize(paths[case], "-s", style_file, *(extra if "-o" in extra else output + extra), *FAST) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("brushwork: error:") and needle in err and len(err.splitlines()) == 1, err
    assert sorted(p.name for p in tmp_path.rglob("*")) == before  # nothing written


MEGAMIND = Path("/usr/share/doc/opencv-doc/examples/data/Megamind.avi")


@pytest.mark.skipif(not MEGAMIND.is_file(), reason="opencv-doc is not installed (apt-get install opencv-doc)")
def test_part_of_megamind_avi_with_packed_b_frames_and_ac3_audio(tmp_path, style_file):
    target = tmp_path / "mega.mp4"
    assert stylize(MEGAMIND, "-s", style_file, "-o", target, "--frames", "100:103", *FAST) == 0
    frames, size, rate, times, audio, _ = facts(target)
    assert frames == 3 and max(size) == 64 and rate == Fraction(2997, 125) and audio == ["ac3"]
    assert times == pytest.approx([0, 125 / 2997, 250 / 2997], abs=2e-3)
