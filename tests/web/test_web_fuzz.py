"""Bad input, fuzzed with Hypothesis: mutated PNG, JPEG, GIF, TIFF, WebP and BMP files,
garbage, huge declared dimensions, wrong content types, truncated multipart bodies and
oversized fields. The image reader must return a picture or refuse with a 4xx; the upload
endpoints must answer a 4xx JSON error or queue the job; never a 500, a hang or a crash.
A decompression bomb must be refused before a pixel of it is decoded.

CI runs a few hundred cases (seconds); `benchmarks/fuzz.py` runs the same checks on many
thousands. The checks return what happened, for the benchmark's tally.
"""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path
from typing import Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image, ImageFile

pytest.importorskip("fastapi", reason="the web extra is not installed")
from fastapi import HTTPException  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402
from starlette.datastructures import Headers, UploadFile  # noqa: E402

from brushwork.web.app import create_app  # noqa: E402
from brushwork.web.uploads import Limits, read_image  # noqa: E402

LIMITS = Limits(max_upload_mb=0.25, max_input_pixels=512 * 512, max_styles=2, max_video_mb=0.5)
CI = settings(max_examples=300, deadline=None, database=None, suppress_health_check=list(HealthCheck))
CONTENT_TYPES = ["image/png", "image/jpeg", "image/gif", "application/octet-stream", "text/plain", "",
                 "application/x-msdownload", "image/svg+xml", "multipart/form-data", "../../etc/passwd"]


def encoded(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def seed_files() -> list[bytes]:
    """Small valid files of every accepted format, in the modes and variants a decoder treats
    differently (palette, alpha, 16-bit, CMYK, progressive, animated, multi-page, compressed)."""
    rgb = Image.effect_noise((24, 16), 60).convert("RGB")
    frames = [rgb, rgb.rotate(90, expand=False)]
    return [
        encoded(rgb, "PNG"), encoded(rgb.convert("P"), "PNG"), encoded(rgb.convert("RGBA"), "PNG"),
        encoded(rgb.convert("L").convert("I;16"), "PNG"), encoded(rgb, "PNG", optimize=True),
        encoded(rgb, "JPEG"), encoded(rgb, "JPEG", progressive=True), encoded(rgb.convert("CMYK"), "JPEG"),
        encoded(rgb.convert("L"), "JPEG", quality=20),
        encoded(rgb.convert("P"), "GIF"), encoded(frames[0], "GIF", save_all=True, append_images=frames[1:]),
        encoded(rgb, "TIFF"), encoded(rgb, "TIFF", compression="tiff_deflate"), encoded(rgb.convert("1"), "TIFF"),
        encoded(frames[0], "TIFF", save_all=True, append_images=frames[1:]), encoded(rgb.convert("F"), "TIFF"),
        encoded(rgb, "WEBP"), encoded(rgb.convert("RGBA"), "WEBP", lossless=True),
        encoded(rgb, "BMP"), encoded(rgb.convert("P"), "BMP"),
    ]


SEEDS = seed_files()


def with_size(data: bytes, width: int, height: int) -> bytes:
    """The file claiming another size in its header (the CRC kept right where there is one),
    as a bomb does: a few bytes that declare a huge picture."""
    out = bytearray(data)
    if data.startswith(b"\x89PNG"):
        out[16:24] = struct.pack(">II", width, height)
        out[29:33] = struct.pack(">I", zlib.crc32(bytes(out[12:29])))
    elif data[:3] == b"GIF":
        out[6:10] = struct.pack("<HH", width & 0xFFFF, height & 0xFFFF)
        frame = data.find(b"\x2c")
        if frame > 0:
            out[frame + 5:frame + 9] = struct.pack("<HH", width & 0xFFFF, height & 0xFFFF)
    elif data[:2] == b"BM":
        out[18:26] = struct.pack("<ii", width & 0x7FFFFFFF, height & 0x7FFFFFFF)
    elif data[:2] == b"\xff\xd8":
        for marker in (b"\xff\xc0", b"\xff\xc2"):
            at = data.find(marker)
            if at > 0:
                out[at + 5:at + 9] = struct.pack(">HH", height & 0xFFFF, width & 0xFFFF)
    elif data[:4] == b"II*\0":
        tiff_size(out, width, height)
    elif data[:4] == b"RIFF" and (at := data.find(b"\x9d\x01\x2a")) > 0:  # a lossy WebP's VP8 frame header
        out[at + 3:at + 7] = struct.pack("<HH", width & 0x3FFF, height & 0x3FFF)
    return bytes(out)


def tiff_size(out: bytearray, width: int, height: int) -> None:
    """ImageWidth and ImageLength in the first IFD of a little-endian TIFF (if a mutation left
    one where the header says)."""
    try:
        (ifd,) = struct.unpack_from("<I", out, 4)
        (count,) = struct.unpack_from("<H", out, ifd)
        for entry in range(ifd + 2, ifd + 2 + 12 * count, 12):
            tag, kind = struct.unpack_from("<HH", out, entry)
            if tag in (256, 257):
                value = (width if tag == 256 else height) & (0xFFFFFFFF if kind == 4 else 0xFFFF)
                out[entry + 8:entry + 12] = struct.pack("<I" if kind == 4 else "<HH", value, *([] if kind == 4 else [0]))
    except struct.error:
        return


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    """A seed file with a few byte-level mutations, or garbage."""
    if draw(st.integers(0, 9)) == 0:
        return draw(st.binary(max_size=2048))
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(0, 4))):
        op = draw(st.sampled_from(["flip", "set", "insert", "delete", "truncate", "size", "repeat"]))
        at = draw(st.integers(0, max(0, len(data) - 1)))
        if op == "flip" and data:
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif op == "set" and data:
            data[at] = draw(st.sampled_from([0x00, 0xFF, 0x7F, 0x80, draw(st.integers(0, 255))]))
        elif op == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=64))
        elif op == "delete":
            del data[at:at + draw(st.integers(1, 64))]
        elif op == "truncate":
            del data[at:]
        elif op == "repeat":
            data[at:at] = data[at:at + draw(st.integers(1, 256))] * draw(st.integers(2, 16))
        else:
            side = draw(st.sampled_from([0, 1, 65535, 100_000, 2**31 - 1, draw(st.integers(0, 2**32 - 1))]))
            data = bytearray(with_size(bytes(data), side, draw(st.sampled_from([0, 1, 65535, side]))))
    return bytes(data)


def upload(data: bytes, name: str = "picture.png", content_type: str = "image/png") -> UploadFile:
    return UploadFile(io.BytesIO(data), filename=name, headers=Headers({"content-type": content_type}))


def check_reader(data: bytes, name: str = "picture.png", content_type: str = "image/png") -> str:
    """One file through the image reader: 'decoded', or the 4xx it was refused with."""
    try:
        image, shown = read_image(upload(data, name, content_type), "content", LIMITS)
        assert image.mode == "RGB" and image.width * image.height <= LIMITS.max_input_pixels
        assert "/" not in shown and "\\" not in shown
        outcome = "decoded"
    except HTTPException as e:
        assert 400 <= e.status_code < 500 and e.detail, e
        outcome = str(e.status_code)
    return outcome


def new_client(folder: Path) -> TestClient:
    """An app with small caps and no worker (jobs stay queued)."""
    app = create_app(folder, max_upload_mb=LIMITS.max_upload_mb,
                     max_input_pixels=LIMITS.max_input_pixels, max_styles=LIMITS.max_styles, max_video_mb=LIMITS.max_video_mb)
    return TestClient(app, base_url="http://127.0.0.1:8000")


text = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=40)
FIELDS = ["content", "styles", "mask", "style_masks", "photo", "model", "preset", "size", "steps", "style_weight",
          "preserve_color", "vary", "strength", "colour", ""]


ENDPOINT_FIELDS = {  # what each endpoint needs: its file fields, and text fields that make a valid request
    "/api/jobs": (("content", "styles"), {"size": b"32", "steps": b"1"}),
    "/api/compare": (("content", "styles"), {"size": b"32", "vary": b"steps=1,2"}),
    "/api/fast": (("photo",), {"model": b"starry-night", "size": b"32", "strength": b"0.5"}),
}


@st.composite
def part(draw: st.DrawFn, field: str, file: bool) -> bytes:
    """One part of a multipart body: a mutated picture, or a text value."""
    if file:
        head = (f'Content-Disposition: form-data; name="{field}"; filename="{draw(text)}"\r\n'
                f"Content-Type: {draw(st.sampled_from(CONTENT_TYPES))}\r\n")
        body = draw(st.sampled_from(SEEDS) | mutated())
    else:
        head = f'Content-Disposition: form-data; name="{field}"\r\n'
        body = draw(st.sampled_from([b"32", b"1", b"-1", b"nan", b"0.5", b"true", b"gatys", b"starry-night",
                                     b"size=32,48", b"steps=1,2", b"x" * 70_000]) | st.binary(max_size=64))
    return head.encode("utf-8", "surrogateescape") + b"\r\n" + body


@st.composite
def multipart(draw: st.DrawFn) -> tuple[str, bytes, str]:
    """(endpoint, body, content type): half the time the endpoint's own fields with mutated
    pictures and odd values, else random fields; odd names and types, maybe cut short or
    mislabelled."""
    path = draw(st.sampled_from(list(ENDPOINT_FIELDS)))
    file_fields, text_fields = ENDPOINT_FIELDS[path]
    boundary = draw(st.sampled_from(["fuzzboundary", "x", "-" * 70, "a b"]))
    if draw(st.booleans()):
        parts = [draw(part(field, True)) for field in file_fields]
        parts += [f'Content-Disposition: form-data; name="{k}"\r\n\r\n'.encode() + v for k, v in text_fields.items()
                  if draw(st.integers(0, 4))]
        parts += [draw(part(draw(st.sampled_from(FIELDS)), draw(st.booleans()))) for _ in range(draw(st.integers(0, 1)))]
    else:
        parts = [draw(part(draw(st.sampled_from(FIELDS) | text), draw(st.booleans())))
                 for _ in range(draw(st.integers(0, 5)))]
    data = b"".join(f"--{boundary}\r\n".encode() + item + b"\r\n" for item in parts) + f"--{boundary}--\r\n".encode()
    if draw(st.integers(0, 3)) == 0:
        data = data[: draw(st.integers(0, len(data)))]
    content_type = draw(st.sampled_from([f"multipart/form-data; boundary={boundary}"] * 4 + [
        "multipart/form-data", "application/x-www-form-urlencoded", "application/json", "text/plain",
        f"multipart/mixed; boundary={boundary}", ""]))
    return path, data, content_type


def check_upload(client: TestClient, path: str, body: bytes, content_type: str) -> str:
    """One request to an upload endpoint: the status it got, which must be a 4xx with a JSON
    error or a 201 with a queued job (or the picture, from fast mode)."""
    headers = {"content-type": content_type} if content_type else {}
    response = client.post(path, content=body, headers=headers)
    assert response.status_code < 500, (response.status_code, response.text)
    if response.status_code >= 400:
        assert isinstance(response.json()["error"], str) and response.json()["error"]
    elif path == "/api/fast":
        assert response.headers["content-type"] == "image/png"
    else:
        assert response.status_code == 201 and response.json()["status"] == "queued"
    return str(response.status_code)


def seeds_decode() -> None:
    """The seeds themselves are fine pictures, so the mutations start from the real thing."""
    for data in SEEDS:
        assert check_reader(data) == "decoded", data[:16]


def test_the_seeds_are_pictures_the_reader_takes():
    seeds_decode()


@CI
@given(data=mutated(), name=text, content_type=st.sampled_from(CONTENT_TYPES))
def test_the_image_reader_decodes_or_refuses(data, name, content_type):
    check_reader(data, name, content_type)


@pytest.fixture(scope="module")
def client(tmp_path_factory) -> TestClient:
    return new_client(tmp_path_factory.mktemp("fuzz"))


@settings(CI, max_examples=100)
@given(request=multipart())
def test_the_upload_endpoints_answer_4xx_or_queue(client, request):
    check_upload(client, *request)


BOMBS: dict[str, Callable[[], bytes]] = {
    "png": lambda: with_size(SEEDS[0], 100_000, 100_000),
    "png-short-idat": lambda: with_size(SEEDS[0], 30_000, 30_000)[:200],
    "gif": lambda: with_size(SEEDS[9], 65535, 65535),
    "bmp": lambda: with_size(SEEDS[18], 60_000, 60_000),
    "jpeg": lambda: with_size(SEEDS[5], 65000, 65000),
    "tiff": lambda: with_size(SEEDS[12], 60_000, 60_000),
    "webp": lambda: with_size(SEEDS[16], 16383, 16383),
}


@pytest.mark.parametrize("kind", BOMBS)
def test_a_decompression_bomb_is_refused_before_decoding(kind, monkeypatch):
    bomb = BOMBS[kind]()
    assert len(bomb) < LIMITS.max_bytes  # small on the wire: the pixels are the bomb
    decoded = []
    monkeypatch.setattr(ImageFile.ImageFile, "load", lambda self: decoded.append(self) or pytest.fail("decoded"))
    with pytest.raises(HTTPException) as refused:
        read_image(upload(bomb), "content", LIMITS)
    assert refused.value.status_code == 413 and "pixels" in refused.value.detail and not decoded


def test_a_body_without_a_length_is_cut_off_at_the_cap(client):
    """A chunked upload declares no Content-Length; the cap counts the bytes as they stream in."""
    def chunks():
        for _ in range(64):
            yield b"--b\r\nContent-Disposition: form-data; name=\"content\"; filename=\"a.png\"\r\n\r\n" + b"x" * 65536

    response = client.post("/api/jobs", content=chunks(), headers={"content-type": "multipart/form-data; boundary=b"})
    assert response.status_code == 413 and "over the upload limit" in response.json()["error"]
