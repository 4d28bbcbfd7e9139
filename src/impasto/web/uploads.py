"""Uploaded files: accepted by decoding them, stored as ``uploads/<id>.<ext of the detected format>``.

An image must decode with :func:`impasto.imaging.load_image` (which enforces the pixel limit before decoding a
pixel); a video must be recognised by its first bytes AND probe with :func:`impasto.media.probe_video`. The
extension comes from what was decoded, never from the name the user gave, and that name is kept only as metadata
(``uploads/<id>.json``), never used to build a path.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from ..errors import ImageError, ImpastoError
from ..imaging import load_image
from ..media import probe_video, write_text

DEFAULT_MAX_BYTES = 200 * 1024 * 1024
CHUNK = 1 << 20
NOT_READABLE = "the file is not an image or video impasto can read"

# PIL format name -> the extension the stored file gets
IMAGE_EXT = {"PNG": "png", "JPEG": "jpg", "MPO": "jpg", "WEBP": "webp", "GIF": "gif", "BMP": "bmp", "TIFF": "tif"}


class UploadError(ImpastoError):
    """A file that cannot be accepted; ``status`` is the HTTP status to answer with."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Upload:
    id: str
    kind: str  # "image" | "video"
    ext: str
    width: int
    height: int
    size: int
    filename: str  # the user's name for it: metadata only
    frames: int | None = None

    def public(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "kind": self.kind, "width": self.width, "height": self.height}
        out.update(size=self.size, filename=self.filename, format=self.ext)
        if self.frames is not None:
            out["frames"] = self.frames
        return out


def valid_upload_id(upload_id: str) -> bool:
    return len(upload_id) == 18 and upload_id.startswith("u_") and all(c in "0123456789abcdef" for c in upload_id[2:])


def _display_name(filename: str | None) -> str:
    """The user's file name for messages and metadata: its last component, printable, at most 100 characters."""
    name = (filename or "").replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(c for c in name if c.isprintable())[:100]
    return name or "upload"


def _sniff_video(head: bytes) -> str | None:
    """The container of a video file from its first bytes (the probe decodes it afterwards), or None."""
    if len(head) >= 12 and head[4:8] == b"ftyp":
        return "mov" if head[8:12] == b"qt  " else "mp4"
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return "webm" if b"webm" in head[:64] else "mkv"
    if head[:4] == b"RIFF" and head[8:12] == b"AVI ":
        return "avi"
    return None


class UploadStore:
    """The ``uploads/`` folder of the data dir."""

    def __init__(self, folder: Path, *, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.max_bytes = max_bytes

    def _meta_path(self, upload_id: str) -> Path:
        return self.folder / f"{upload_id}.json"

    def get(self, upload_id: str) -> Upload | None:
        if not valid_upload_id(upload_id):
            return None
        try:
            meta = json.loads(self._meta_path(upload_id).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return Upload(**meta)

    def path(self, upload: Upload) -> Path:
        return self.folder / f"{upload.id}.{upload.ext}"

    def thumbnail_path(self, upload: Upload) -> Path:
        return self.folder / f"{upload.id}.thumb.png"

    def save(self, stream: BinaryIO, filename: str | None) -> Upload:
        """Copy ``stream`` in (at most ``max_bytes``), decode it, and keep it under a new id."""
        upload_id = f"u_{secrets.token_hex(8)}"
        name = _display_name(filename)
        incoming = self.folder / f".incoming-{upload_id}.part"
        size = 0
        try:
            with open(incoming, "wb") as out:
                while chunk := stream.read(CHUNK):
                    size += len(chunk)
                    if size > self.max_bytes:
                        raise UploadError(
                            f"{name} is larger than the upload limit of {self.max_bytes // (1024 * 1024)} MB", 413
                        )
                    out.write(chunk)
            if size == 0:
                raise UploadError(f"{name} is empty; {NOT_READABLE}")
            upload = self._identify(incoming, upload_id, name, size)
            os.replace(incoming, self.path(upload))
        except BaseException:
            for p in self.folder.glob(f".incoming-{upload_id}*"):
                p.unlink(missing_ok=True)
            raise
        write_text(self._meta_path(upload_id), json.dumps(upload.__dict__))
        return upload

    def _identify(self, incoming: Path, upload_id: str, name: str, size: int) -> Upload:
        from PIL import Image, UnidentifiedImageError

        fmt: str | None = None
        frames = 1
        try:
            with Image.open(incoming) as im:  # the header only: load_image does the real decode below
                fmt = im.format
                frames = int(getattr(im, "n_frames", 1))
        except Image.DecompressionBombError:
            fmt = "?"  # an image, too large to open: load_image says so in its own words (the pixel limit)
        except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
            fmt = None
        except Exception:  # noqa: BLE001 - a malformed file can make a PIL plugin raise anything
            fmt = None
        if fmt is not None:
            try:
                img = load_image(incoming)
            except ImageError as exc:
                raise UploadError(str(exc).replace(str(incoming), name)) from None
            ext = IMAGE_EXT.get(fmt, "png")
            if fmt not in IMAGE_EXT:  # a format PIL reads but browsers may not: keep it as PNG
                img.save(incoming, format="PNG")
            if fmt == "GIF" and frames > 1:  # an animation is a video to impasto
                return Upload(upload_id, "video", "gif", img.width, img.height, size, name, frames)
            return Upload(upload_id, "image", ext, img.width, img.height, size, name)
        with open(incoming, "rb") as fh:
            head = fh.read(64)
        container = _sniff_video(head)
        if container is None:
            raise UploadError(f"{name}: {NOT_READABLE}")
        probe_as = incoming.with_name(f"{incoming.name}.{container}")
        shutil.move(incoming, probe_as)
        try:
            info = probe_video(probe_as)
        except ImpastoError:
            raise UploadError(f"{name}: {NOT_READABLE}") from None
        finally:
            if probe_as.exists():
                shutil.move(probe_as, incoming)
        return Upload(upload_id, "video", container, info.size[0], info.size[1], size, name, info.frames)

    def thumbnail(self, upload: Upload, side: int = 256) -> Path:
        """A PNG at most ``side`` px (made once): the image itself, or a video's first frame."""
        from PIL import Image

        from ..media import read_video, save_image

        thumb = self.thumbnail_path(upload)
        if thumb.is_file():
            return thumb
        src = self.path(upload)
        if upload.kind == "image":
            img = load_image(src, max_side=side)
        else:
            info = probe_video(src)
            frame = next(iter(read_video(info)), None)
            if frame is None:
                raise ImageError(f"{upload.filename} has no frames")
            img = Image.fromarray(frame)
            img.thumbnail((side, side))
        save_image(img, thumb)
        return thumb

    def delete(self, upload: Upload) -> None:
        for p in (self.path(upload), self.thumbnail_path(upload), self._meta_path(upload.id)):
            p.unlink(missing_ok=True)
