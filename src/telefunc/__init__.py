"""Telefunc for Python: remote functions, channels and broadcast over the telefunc@0.2.23 protocol.

Telefunctions are plain functions in ``*.telefunc.py`` files, called from the browser (with the
official ``telefunc`` npm client) or from Python (:mod:`telefunc.client`). A telefunction can
return a :class:`Channel` (an ordered, acknowledged, resumable stream to one client) or a
:class:`BroadcastChannel` (keyed publish/subscribe).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from telefunc.config import config
from telefunc.errors import (
    Abort,
    ChannelClosedError,
    ChannelOverflowError,
    ChannelRemoteError,
    NetworkError,
    ShieldValidationError,
    TelefuncError,
    UsageError,
)
from telefunc.server.bugs import Bug, on_bug
from telefunc.server.context import get_context
from telefunc.server.files import UploadedFile
from telefunc.wire.serializer import UNDEFINED

if TYPE_CHECKING:
    from telefunc.server.broadcast import Broadcast, BroadcastChannel
    from telefunc.server.channel import Channel
    from telefunc.server.download import BlobDownload, FileDownload, download
    from telefunc.server.streaming import ByteStream

__all__ = [
    "UNDEFINED",
    "Abort",
    "BlobDownload",
    "Broadcast",
    "BroadcastChannel",
    "Bug",
    "ByteStream",
    "Channel",
    "ChannelClosedError",
    "ChannelOverflowError",
    "ChannelRemoteError",
    "FileDownload",
    "NetworkError",
    "ShieldValidationError",
    "TelefuncError",
    "UploadedFile",
    "UsageError",
    "config",
    "download",
    "get_context",
    "on_bug",
]

__version__ = "0.1.0"

_LAZY = {
    "Channel": "telefunc.server.channel",
    "BroadcastChannel": "telefunc.server.broadcast",
    "Broadcast": "telefunc.server.broadcast",
    "ByteStream": "telefunc.server.streaming",
    "download": "telefunc.server.download",
    "FileDownload": "telefunc.server.download",
    "BlobDownload": "telefunc.server.download",
}


def __getattr__(name: str) -> Any:
    # Channel classes import the wire core; loading them on first use keeps `import telefunc`
    # cheap for plain-RPC apps and for the Cloudflare worker's cold start.
    module_name = _LAZY.get(name)
    if module_name is None:
        raise AttributeError(f"module 'telefunc' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module_name), name)
    globals()[name] = value
    return value
