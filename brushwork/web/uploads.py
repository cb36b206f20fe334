"""The pictures a job request carries, and the server's caps on them.

An upload is judged only by what Pillow decodes from its bytes (the name and declared type
count for nothing), after its size in bytes and then in pixels (from the header, before any
pixel is decoded) are checked, so that no upload can make the server decode a bomb.
"""

from __future__ import annotations

import io
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
from fastapi import HTTPException
from PIL import Image, UnidentifiedImageError
from starlette.datastructures import UploadFile
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .. import images, masks, videoio
from ..errors import BrushworkError

log = logging.getLogger("brushwork.web")

MB = 1024 * 1024
ACCEPTED_FORMATS = ("PNG", "JPEG", "WEBP", "GIF", "BMP", "TIFF")


@dataclass(frozen=True)
class Limits:
    """One server's caps on a request, chosen in `create_app` and shown by /api/config."""

    max_upload_mb: float  # per image
    max_input_pixels: int  # per image
    max_styles: int
    max_video_mb: float = 100  # per video
    max_video_frames: int = 300  # per video: a frame of the optimization takes seconds to minutes

    @property
    def max_video_bytes(self) -> int:
        return int(self.max_video_mb * MB)

    @property
    def max_bytes(self) -> int:
        return int(self.max_upload_mb * MB)

    @property
    def max_images(self) -> int:
        """Pictures in one request: the photo and its mask, each style and its region mask."""
        return 2 * (1 + self.max_styles)

    @property
    def max_request_bytes(self) -> int:
        """A whole request: every image at its cap, or a video and its styles, plus room for the
        form's text fields."""
        return max(self.max_bytes * self.max_images, self.max_video_bytes + self.max_bytes * self.max_styles) + MB


def display_name(filename: str | None) -> str:
    """The last part of a client's file name, printable and short: it is only ever shown."""
    name = re.split(r"[\\/]", filename or "")[-1]
    name = "".join(ch for ch in name if ch.isprintable())[:100]
    return name or "upload"


def read_capped(upload: UploadFile, what: str, max_bytes: int, max_mb: float) -> bytes:
    """An upload's bytes, reading at most one past the cap: 413 over it, 400 when empty."""
    data = upload.file.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise HTTPException(413, f"{what} is over the upload limit of {max_mb:.3g} MB")
    if not data:
        raise HTTPException(400, f"{what} is empty")
    return data


def read_image(upload: UploadFile, role: str, limits: Limits,
               convert: Callable[[Image.Image], Image.Image] = images.load_image) -> tuple[Image.Image, str]:
    """Decode one upload and `convert` it (to RGB by default), or refuse it with a message that says why."""
    name = display_name(upload.filename)
    data = read_capped(upload, f"the {role} image {name!r}", limits.max_bytes, limits.max_upload_mb)
    try:
        with Image.open(io.BytesIO(data), formats=ACCEPTED_FORMATS) as image:
            width, height = image.size  # known from the header, before decoding any pixel
            if width * height > limits.max_input_pixels:
                raise HTTPException(413, f"the {role} image {name!r} is {width}x{height} = {width * height:,} "
                                         f"pixels, over the limit of {limits.max_input_pixels:,}")
            image.load()
            return convert(image), name
    except UnidentifiedImageError:
        raise HTTPException(400, f"the {role} file {name!r} is not an image Brushwork reads "
                                 f"({', '.join(ACCEPTED_FORMATS)})") from None
    except Image.DecompressionBombError:
        raise HTTPException(413, f"the {role} image {name!r} has too many pixels") from None
    except (OSError, SyntaxError, ValueError, BrushworkError) as e:
        raise HTTPException(400, f"cannot decode the {role} image {name!r} (truncated or corrupt?): {e}") from None
    except HTTPException:
        raise
    except Exception as e:  # Pillow's decoders raise more kinds than they document on hostile input
        log.warning("upload %r: the decoder raised %s: %s", name, type(e).__name__, e)
        raise HTTPException(400, f"cannot decode the {role} image {name!r} (corrupt?)") from None


def read_styles(uploads: list[UploadFile], limits: Limits) -> tuple[list[Image.Image], list[str]]:
    """The style images of a request, decoded and checked, and the names the client gave them."""
    if len(uploads) > limits.max_styles:
        raise HTTPException(400, f"{len(uploads)} style images is over the limit of {limits.max_styles}")
    pictures = [read_image(upload, "style", limits) for upload in uploads]
    return [picture for picture, _ in pictures], [name for _, name in pictures]


@dataclass
class Video:
    """An uploaded video, checked: its bytes as sent, the suffix it is stored under, its
    first frame (the job's poster and content picture) and its frame count."""

    data: bytes
    suffix: str
    name: str
    poster: Image.Image
    frames: int


def is_video_name(filename: str | None) -> bool:
    """Whether the client calls this file a video (its suffix); PyAV has the last word."""
    return Path(display_name(filename)).suffix.lower() in videoio.VIDEO_SUFFIXES


def read_video(upload: UploadFile, role: str, limits: Limits) -> Video:
    """Read one video upload and check it with PyAV (a stream, a decodable first frame, the
    caps on bytes, pixels and frames), or refuse it with a message that says why."""
    name = display_name(upload.filename)
    data = read_capped(upload, f"the {role} video {name!r}", limits.max_video_bytes, limits.max_video_mb)
    try:
        poster, frames = probe_video(data, name, role, limits)
    except HTTPException:
        raise
    except Exception as e:  # FFmpeg's demuxers and decoders raise many kinds on hostile input
        raise HTTPException(400, f"the {role} file {name!r} is not a video Brushwork reads: {e}") from None
    return Video(data, Path(name).suffix.lower(), name, poster, frames)


def probe_video(data: bytes, name: str, role: str, limits: Limits) -> tuple[Image.Image, int]:
    """The first frame and the frame count (packets: nothing but the first frame is decoded)."""
    import av

    with av.open(io.BytesIO(data)) as container:
        if container.format.name == "image2" or container.format.name.endswith("_pipe"):
            raise HTTPException(400, f"the {role} file {name!r} is not a video: it holds a still picture "
                                     f"({container.format.name})")
        if not container.streams.video:
            raise HTTPException(400, f"the {role} file {name!r} has no video stream")
        stream = container.streams.video[0]
        width, height = stream.codec_context.width, stream.codec_context.height
        if width * height > limits.max_input_pixels:
            raise HTTPException(413, f"the {role} video {name!r} is {width}x{height} = {width * height:,} pixels "
                                     f"a frame, over the limit of {limits.max_input_pixels:,}")
        poster, frames = None, 0
        for packet in container.demux(stream):
            if packet.size:
                frames += 1
                if frames > limits.max_video_frames:
                    raise HTTPException(413, f"the {role} video {name!r} has over {limits.max_video_frames} "
                                             "frames, the limit of this server")
            if poster is None:
                decoded = packet.decode()
                poster = Image.fromarray(videoio.rgb(decoded[0], upright=True)) if decoded else None
        if poster is None and frames:  # a decoder that holds frames back gives them at the end
            decoded = stream.codec_context.decode(None)
            poster = Image.fromarray(videoio.rgb(decoded[0], upright=True)) if decoded else None
    if poster is None:
        raise HTTPException(400, f"the {role} video {name!r} has no frame Brushwork can decode")
    return poster, frames


def as_mask(image: Image.Image) -> Image.Image:
    """A picture as the engine reads a mask (masks.to_array: its luminance, transparent parts
    black), kept as 8-bit grayscale: white where the style paints, black where the photo stays."""
    return Image.fromarray(np.round(masks.to_array(image, "mask") * 255).astype(np.uint8), "L")


def read_mask(upload: UploadFile, role: str, limits: Limits) -> Image.Image:
    """A mask upload, checked like every picture."""
    return read_image(upload, role, limits, as_mask)[0]


class BodyLimit:
    """Refuse a request whose body is over the limit: at once if its Content-Length says so,
    else as soon as the bytes streamed in (a chunked upload declares no length) pass it, so
    that no upload fills the disk with the parser's temporary files."""

    def __init__(self, app: ASGIApp, max_bytes: int):
        self.app, self.max_bytes = app, max_bytes

    def too_large(self) -> str:
        return f"the request is over the upload limit of {self.max_bytes / MB:.3g} MB"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope["headers"]).get(b"content-length", b"0")
        if length.isdigit() and int(length) > self.max_bytes:
            await JSONResponse({"error": self.too_large()}, status_code=413)(scope, receive, send)
            return
        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.max_bytes:
                raise HTTPException(413, self.too_large())  # out of the form parser, to the JSON handler
            return message

        await self.app(scope, counted, send)
