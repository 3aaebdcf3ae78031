"""Telefunc placeholders: the ``!Telefunc…:`` strings that stand for values JSON cannot carry.

A placeholder is ``prefix + JSON metadata``, written as a resolved string (not ``!``-escaped).
The receiving side looks the prefix up in a table of its own handlers (:func:`revive`); this
module imports nothing of telefunc. Metadata: docs/protocol.md §4; streaming values:
docs/protocol.md §6.

===========================  ===============  ==================================================
prefix                       direction        stands for (metadata)
===========================  ===============  ==================================================
``!TelefuncFile:``           both             a ``File``: an upload of a ``bin`` request
                                              (``index``, ``name``, ``size``, ``type``,
                                              ``lastModified``) or one echoed in a result
``!TelefuncBlob:``           both             the same without a name
``!TelefuncFileDownload:``   server → client  a lazily read ``File`` (``download(...)``)
``!TelefuncBlobDownload:``   server → client  the same without a name
``!TelefuncStream:``         both             a ``ReadableStream`` of bytes
``!TelefuncGenerator:``      server → client  an async generator
``!TelefuncPromise:``        server → client  a promise (one value)
``!TelefuncChannel:``        server → client  a ``Channel`` (``channelId``, ``ack``)
``!TelefuncFunction:``       both             a function on an ack channel (``channelId``)
``!TelefuncBroadcast:``      server → client  a ``BroadcastChannel`` (``channelId``, ``key``)
===========================  ===============  ==================================================
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any, Final, TypeVar

__all__ = [
    "BINARY_INLINE",
    "BLOB_DOWNLOAD_PREFIX",
    "BLOB_PREFIX",
    "BROADCAST_PREFIX",
    "CHANNEL",
    "CHANNEL_PREFIX",
    "FILE_DOWNLOAD_PREFIX",
    "FILE_PREFIX",
    "FN_SHIELD_ERROR_KEY",
    "FUNCTION_PREFIX",
    "GENERATOR_PREFIX",
    "MARK",
    "PREFIXES",
    "PROMISE_PREFIX",
    "SSE_INLINE",
    "STREAM_PREFIX",
    "STREAM_TRANSPORTS",
    "encode",
    "encode_json",
    "revive",
    "split",
]

T = TypeVar("T")

#: Every placeholder starts with this.
MARK: Final = "!Telefunc"

FILE_PREFIX: Final = "!TelefuncFile:"
BLOB_PREFIX: Final = "!TelefuncBlob:"
FILE_DOWNLOAD_PREFIX: Final = "!TelefuncFileDownload:"
BLOB_DOWNLOAD_PREFIX: Final = "!TelefuncBlobDownload:"
STREAM_PREFIX: Final = "!TelefuncStream:"
GENERATOR_PREFIX: Final = "!TelefuncGenerator:"
PROMISE_PREFIX: Final = "!TelefuncPromise:"
CHANNEL_PREFIX: Final = "!TelefuncChannel:"
FUNCTION_PREFIX: Final = "!TelefuncFunction:"
BROADCAST_PREFIX: Final = "!TelefuncBroadcast:"

#: Every prefix, in the order of telefunc's ``wire-protocol/constants.js``.
PREFIXES: Final = (
    FILE_PREFIX,
    BLOB_PREFIX,
    FILE_DOWNLOAD_PREFIX,
    BLOB_DOWNLOAD_PREFIX,
    STREAM_PREFIX,
    GENERATOR_PREFIX,
    PROMISE_PREFIX,
    CHANNEL_PREFIX,
    FUNCTION_PREFIX,
    BROADCAST_PREFIX,
)
_KNOWN: Final = frozenset(PREFIXES)
_MARK_LENGTH: Final = len(MARK)

#: How the streaming values of a result travel: the ``stream.transport`` of the call envelope.
BINARY_INLINE: Final = "binary-inline"
SSE_INLINE: Final = "sse-inline"
CHANNEL: Final = "channel"
STREAM_TRANSPORTS: Final = (BINARY_INLINE, SSE_INLINE, CHANNEL)

#: The ack value of a function call whose arguments the callee's shield refused.
FN_SHIELD_ERROR_KEY: Final = "__telefunc_fn_shield_error"


def encode(prefix: str, meta: str) -> str:
    """The placeholder of ``prefix`` with the already encoded JSON ``meta``."""
    return prefix + meta


def encode_json(prefix: str, meta: Mapping[str, Any]) -> str:
    """The placeholder of ``prefix`` with ``meta`` as compact JSON (as ``JSON.stringify``)."""
    return prefix + json.dumps(meta, separators=(",", ":"))


def split(text: str) -> tuple[str, str] | None:
    """``(prefix, metadata JSON text)`` of a placeholder with a known prefix, else ``None``."""
    if not text.startswith(MARK):
        return None
    end = text.find(":", _MARK_LENGTH)  # no prefix has a colon before its last character
    if end < 0:
        return None
    prefix = text[: end + 1]
    if prefix not in _KNOWN:
        return None
    return prefix, text[end + 1 :]


def revive(table: Mapping[str, Callable[[str], T]], text: str) -> tuple[bool, T | None]:
    """A serializer reviver's answer for ``text``: ``(True, table[prefix](metadata))`` for a
    placeholder whose prefix is in ``table``, else ``(False, None)``."""
    found = split(text)
    if found is None:
        return False, None
    handler = table.get(found[0])
    if handler is None:
        return False, None
    return True, handler(found[1])
