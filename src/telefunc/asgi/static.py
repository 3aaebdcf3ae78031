"""Static files from the app's ``public/`` folder (``index.html`` for folders)."""

from __future__ import annotations

import mimetypes
import os
from pathlib import Path
from urllib.parse import unquote

from telefunc.asgi.http import Send, send_response

__all__ = ["StaticFiles"]

CHUNK = 64 * 1024


class StaticFiles:
    """Serves GET/HEAD requests from one folder; never outside it."""

    __slots__ = ("directory",)

    def __init__(self, directory: Path) -> None:
        self.directory = directory.resolve()

    def resolve(self, url_path: str) -> Path | None:
        """The file a URL path names, or ``None`` (missing, escaping the folder, or a name the
        file system cannot hold: a NUL byte, one too long, ...)."""
        relative = unquote(url_path).lstrip("/")
        try:
            candidate = (self.directory / relative).resolve()
            if candidate != self.directory and self.directory not in candidate.parents:
                return None
            if candidate.is_dir():
                candidate = candidate / "index.html"
            return candidate if candidate.is_file() else None
        except (OSError, ValueError):  # ValueError: embedded NUL, unencodable characters
            return None

    async def serve(self, method: str, url_path: str, send: Send) -> bool:
        """Answer the request if it names a file; returns whether it did."""
        if method not in ("GET", "HEAD"):
            return False
        path = self.resolve(url_path)
        if path is None:
            return False
        content_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        if content_type.startswith("text/") or content_type == "application/javascript":
            content_type += "; charset=utf-8"
        size = os.path.getsize(path)
        headers = [
            (b"content-type", content_type.encode()),
            (b"content-length", str(size).encode()),
            (b"cache-control", b"no-cache"),
        ]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        if method == "HEAD":
            await send({"type": "http.response.body", "body": b""})
            return True
        with path.open("rb") as f:
            while chunk := f.read(CHUNK):
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
        return True


async def not_found(send: Send) -> None:
    """The plain 404 answer."""
    await send_response(send, 404, b"Not Found")
