"""The exceptions telefunc raises, one small hierarchy shared by every layer.

Everything derives from :class:`TelefuncError`. The names mirror telefunc@0.2.23's JavaScript
exports (``Abort``, ``ShieldValidationError``, ``ChannelClosedError``, ``ChannelOverflowError``,
``NetworkError``) so code reads the same on both sides of the wire.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "Abort",
    "BodyTooLarge",
    "BroadcastTransportError",
    "ChannelClosedError",
    "ChannelOverflowError",
    "ChannelRemoteError",
    "IllegalTransitionError",
    "MalformedBody",
    "NetworkError",
    "ProtocolError",
    "RecordTooLarge",
    "RemoteCallError",
    "SerializationError",
    "ShieldValidationError",
    "StreamError",
    "TelefuncConnectionError",
    "TelefuncError",
    "TelefuncFileError",
    "UsageError",
]


class TelefuncError(Exception):
    """Base class of every exception telefunc raises on purpose."""


class UsageError(TelefuncError, ValueError):
    """The library was used wrongly: a bad option, a bad argument, a missing binding."""


class TelefuncFileError(UsageError):
    """A telefunc file could not be imported; the message names the file and the line."""


class Abort(TelefuncError):
    """Abort a telefunction call (or a channel) with a value the client receives.

    Raised inside a telefunction, the client's call rejects with an ``Abort`` error whose
    ``abortValue`` is ``value`` (HTTP 403 ``{"ret": value, "abort": true}``). Raised inside a
    channel listener, the channel is aborted with ``value``. On the client side, the same class
    is raised for an aborted call; ``value`` holds what the server sent.
    """

    def __init__(self, value: Any = None, message: str | None = None) -> None:
        self.value = value
        super().__init__(message if message is not None else f"Aborted: {value!r}")

    @property
    def abort_value(self) -> Any:
        """Alias of :attr:`value`, named as in the JavaScript API (``abortValue``)."""
        return self.value


def abort_message(value: Any) -> str:
    """The message of the error an abort with ``value`` gives the *other* side of a channel.

    The ABORT frame carries the value only, so both sides derive the message from it as the
    official client does: a string value is the message, so is an exception's text or a
    ``"message"`` string member; anything else is ``"Aborted"``.
    """
    if isinstance(value, str):
        return value
    if isinstance(value, BaseException):
        return str(value)
    if isinstance(value, dict) and isinstance(value.get("message"), str):
        return str(value["message"])
    return "Aborted"


class ShieldValidationError(TelefuncError, TypeError):
    """The arguments of a call do not match the telefunction's type hints (HTTP 422)."""


class SerializationError(TelefuncError, TypeError):
    """A value cannot be serialized (a function, an arbitrary object, a circular reference …).

    ``path`` is the location of the offending value as a tuple of keys/indices (Map and Set
    steps appear as descriptive strings), ``path_string`` its readable form such as
    ``"ret.user.callback"`` (empty for the root value), ``value`` the offending value.
    """

    def __init__(self, message: str, *, value: Any, path: tuple[Any, ...], path_string: str):
        super().__init__(message)
        self.value = value
        self.path = path
        self.path_string = path_string


class ChannelClosedError(TelefuncError):
    """The channel is closed (or aborted): nothing more can be sent on it."""


class ChannelOverflowError(TelefuncError):
    """A message was evicted from a full buffer before the peer could receive it."""


class ChannelRemoteError(TelefuncError):
    """The other side failed while handling this channel's traffic.

    An acknowledged send rejects with it when the peer's listener raised (ACK_RES status
    ERROR; the peer logs the details), and a client channel ends with it when the server
    reports an unhandled error on the channel (an ERROR frame).
    """


class StreamError(TelefuncError):
    """The peer reported a non-abort failure in band (an error frame of type ``bug``)."""


class NetworkError(TelefuncError):
    """The peer was away longer than ``reconnect_timeout``, or the connection could not be made."""


class BroadcastTransportError(NetworkError):
    """A broadcast transport could not publish: its broker is unreachable, timed out, or failed.

    The message names the broker (e.g. the Redis URL). When the connection broke *after* the
    request was sent, the message may or may not have been published; the text says so.
    """


class ProtocolError(TelefuncError):
    """The peer broke the wire protocol; the one connection it arrived on is closed."""


class MalformedBody(ProtocolError):
    """The request body breaks its framing (truncated, bad lengths, bad file metadata)."""


class BodyTooLarge(ProtocolError):
    """The request body is (or announces itself) larger than the configured limit."""


class RecordTooLarge(ProtocolError):
    """A length prefix announces a record over the reader's bound (checked before buffering)."""

    def __init__(self, size: int) -> None:
        super().__init__(f"length-prefixed record too large ({size} bytes)")
        #: The announced length.
        self.size = size


class IllegalTransitionError(TelefuncError, RuntimeError):
    """A state machine was asked for a move its transition table does not list.

    Raised by the sans-I/O cores (``ChannelCore``, ``ServerConnection``): it is a bug in telefunc,
    never something a peer can cause, since every frame is checked before it changes a phase.
    """


class TelefuncConnectionError(TelefuncError, ConnectionError):
    """A client could not reach the server (the fetch itself failed)."""


class RemoteCallError(TelefuncError):
    """A remote call failed with a status the client cannot map to another exception."""

    def __init__(self, status: int, body: str) -> None:
        self.status = status
        self.body = body
        super().__init__(f"Telefunc call failed with HTTP {status}: {body[:200]}")
