"""The client-side :class:`Channel`: the other end of a server's ``Channel``.

It mirrors the server API with the directions flipped: :meth:`Channel.send` goes to the server's
listeners, :meth:`Channel.listen` receives what the server sends. Every protocol decision lives in
:class:`~telefunc.wire.client_mux.ClientChannelCore`; this class turns its synchronous events into
futures and listener calls and serializes values with the json-serializer codec. All methods must
be called on the event loop that runs the client.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Generic, TypedDict, TypeVar

from telefunc.endpoint.channel import ChannelEndpoint
from telefunc.errors import Abort, ChannelClosedError, UsageError, abort_message
from telefunc.wire.frames import Frame, Tag
from telefunc.wire.publish import decode_publish_binary, decode_publish_text
from telefunc.wire.serializer import parse, stringify

if TYPE_CHECKING:
    from telefunc.client._connection import Connection
    from telefunc.wire.client_mux import ClientChannelCore

__all__ = ["BroadcastChannel", "Channel", "PublishInfoDict"]

logger = logging.getLogger("telefunc.client")

ServerToClient = TypeVar("ServerToClient")
ClientToServer = TypeVar("ClientToServer")
T = TypeVar("T")

#: ACK_RES error text when a client listener raised (the details go to the client's log).
CLIENT_LISTENER_ERROR = "Internal client channel error — see client logs"


class Channel(
    ChannelEndpoint[ServerToClient, ClientToServer], Generic[ServerToClient, ClientToServer]
):
    """A channel a telefunction returned; created by the client when it revives the result.

    ``ack`` is the server's channel default: when true, :meth:`send` waits for the server
    listener's return value unless ``ack=False`` is passed. ``on_open`` fires once the server
    confirmed the channel; ``on_close`` gets ``None`` for a clean close, an
    :class:`~telefunc.errors.Abort` carrying the server's value after a server abort, or a
    :class:`~telefunc.errors.NetworkError` when the server could not be reached again. All
    methods must be called on the event loop that runs the client.
    """

    LISTENER_ERROR = CLIENT_LISTENER_ERROR
    PEER_ERROR = "Internal Server Error"

    _core: ClientChannelCore

    def __init__(self, connection: Connection, channel_id: str, ack: bool = False) -> None:
        super().__init__(channel_id, ack)
        self._connection = connection
        self._done: asyncio.Future[Exception | None] = asyncio.get_running_loop().create_future()
        self._core = connection.attach_channel(self)

    def __repr__(self) -> str:
        return f"<telefunc.client.Channel {self.id} {'closed' if self.is_closed else 'open'}>"

    @property
    def close_error(self) -> Exception | None:
        """Why the channel ended (``None``: cleanly, or not yet)."""
        return self._close_error

    async def wait_closed(self) -> Exception | None:
        """Wait until the channel has ended; returns its error (``None`` for a clean close)."""
        return await asyncio.shield(self._done)

    def _now(self) -> float:
        return self._connection.now()

    def abort(self, value: Any = None, message: str | None = None) -> None:
        """Abort now: ``on_close`` here gets ``Abort(value)`` with ``message`` (by default
        derived from the value, see :func:`telefunc.errors.abort_message`).

        As with the official client, the server is told with ``CLOSE(0)`` and neither the value
        nor the message travels: the server's ``on_close`` sees a clean close.
        """
        if self._core.is_closed:
            return
        self._core.abort_local(
            Abort(value, message if message is not None else abort_message(value))
        )

    def handle_shutdown(self, error: Exception | None) -> None:
        """The channel is finished: settle ``close()`` and :meth:`wait_closed`."""
        self._close_error = error
        super().handle_shutdown(error)
        if not self._done.done():
            self._done.set_result(error)


class PublishInfoDict(TypedDict):
    """Where a delivered publish sits in its key's order, as a dict (the JS client's object).

    The server side's listeners get the same fields as a
    :class:`telefunc.broadcast.PublishInfo` dataclass.
    """

    key: str
    seq: int
    #: Milliseconds since the epoch (JavaScript's ``Date.now()`` on the publishing server).
    timestamp: float


class BroadcastChannel(Channel[T, T], Generic[T]):
    """A broadcast channel a telefunction returned: publish to its :attr:`key`, subscribe to it.

    Every publish to the key (from any client, or from the server) reaches every subscriber in
    the key's order (``info["seq"]`` grows), the publisher included. ``send``/``listen`` and
    their binary forms are not available on a broadcast channel.
    """

    def __init__(self, connection: Connection, channel_id: str, key: str) -> None:
        self.key = key
        self._subscribers: list[Callable[[Any, PublishInfoDict], Any]] = []
        self._binary_subscribers: list[Callable[[bytes, PublishInfoDict], Any]] = []
        super().__init__(connection, channel_id, ack=False)

    def __repr__(self) -> str:
        state = "closed" if self.is_closed else "open"
        return f"<telefunc.client.BroadcastChannel {self.key!r} {self.id} {state}>"

    def send(self, data: T, ack: bool | None = None) -> asyncio.Future[Any]:
        """Not available: use :meth:`publish`."""
        raise UsageError("BroadcastChannel has no send(): use publish()")

    def send_binary(
        self, data: bytes | bytearray | memoryview, ack: bool = False
    ) -> asyncio.Future[Any]:
        """Not available: use :meth:`publish_binary`."""
        raise UsageError("BroadcastChannel has no send_binary(): use publish_binary()")

    def listen(self, callback: Callable[[T], Any]) -> Callable[[], None]:
        """Not available: use :meth:`subscribe`."""
        raise UsageError("BroadcastChannel has no listen(): use subscribe()")

    def listen_binary(self, callback: Callable[[bytes], Any]) -> Callable[[], None]:
        """Not available: use :meth:`subscribe_binary`."""
        raise UsageError("BroadcastChannel has no listen_binary(): use subscribe_binary()")

    def publish(self, data: T) -> asyncio.Future[Any]:
        """Publish ``data`` to the key; resolves with ``{key, seq, timestamp, meta}``."""
        if self._core.is_closed:
            raise ChannelClosedError("Channel is closed")
        return self._send_tag(Tag.PUBLISH_ACK_REQ, stringify(data).encode())

    def publish_binary(self, data: bytes | bytearray | memoryview) -> asyncio.Future[Any]:
        """Publish raw bytes to the key; resolves with the receipt."""
        if self._core.is_closed:
            raise ChannelClosedError("Channel is closed")
        return self._send_tag(Tag.PUBLISH_BINARY_ACK_REQ, bytes(data))

    def subscribe(self, callback: Callable[[T, PublishInfoDict], Any]) -> Callable[[], None]:
        """Call ``callback(data, info)`` for every publish to the key; returns an unsubscribe.

        The first subscriber makes the server start forwarding (BROADCAST_SUB); publishes made
        before that are not delivered.
        """
        return self._add_subscriber(self._subscribers, callback, binary=False)

    def subscribe_binary(
        self, callback: Callable[[bytes, PublishInfoDict], Any]
    ) -> Callable[[], None]:
        """Like :meth:`subscribe`, for binary publishes."""
        return self._add_subscriber(self._binary_subscribers, callback, binary=True)

    def _add_subscriber(
        self, subs: list[Any], callback: Any, *, binary: bool
    ) -> Callable[[], None]:
        flag = bytes((1 if binary else 0,))
        if not subs:
            self._core.send_ctrl(Tag.BROADCAST_SUB, flag)
        subs.append(callback)

        def unsubscribe() -> None:
            if callback in subs:
                subs.remove(callback)
                if not subs:
                    self._core.send_ctrl(Tag.BROADCAST_UNSUB, flag)

        return unsubscribe

    def handle_other_frame(self, frame: Frame) -> None:
        """PUBLISH / PUBLISH_BINARY deliveries."""
        try:
            if frame.tag == Tag.PUBLISH:
                body, seq, timestamp = decode_publish_text(frame.payload)
                data: Any = parse(body)
                subs: list[Any] = list(self._subscribers)
            elif frame.tag == Tag.PUBLISH_BINARY:
                data, seq, timestamp = decode_publish_binary(frame.payload)
                subs = list(self._binary_subscribers)
            else:
                return
        except ValueError:
            logger.exception("telefunc: could not decode a broadcast delivery")
            return
        info = PublishInfoDict(key=self.key, seq=seq, timestamp=_number(timestamp))
        for cb in subs:
            self._invoke(cb, data, info)


def _number(value: float) -> float:
    number = float(value)
    return int(number) if number.is_integer() else number
