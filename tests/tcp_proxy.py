"""A TCP proxy for fault injection between a client and a server on 127.0.0.1 (import as
``tcp_proxy``; tests/ is on ``sys.path`` through the rootdir conftest).

:class:`FaultyProxy` forwards every connection it accepts to ``127.0.0.1:target_port`` and can,
on demand, fail them the ways a network does:

- :meth:`FaultyProxy.cut` resets every live connection (both halves), mid-stream;
- :meth:`FaultyProxy.freeze` keeps the live connections open but stops forwarding on them (a
  silently dead network: no FIN, no RST);
- :meth:`FaultyProxy.refuse` closes the listening socket, so new connections are refused.

The counters ``accepted`` (connections accepted so far) and ``cuts`` (connections reset by
:meth:`~FaultyProxy.cut` so far) let a test check that a cut really happened and that the
client reconnected through the proxy afterwards. :meth:`FaultyProxy.cut_at_midway` is the
``on_line`` callback of ``node_runner.run_node_lines`` for the js/interop reconnect scenarios,
which print ``{"phase": "midway"}`` while both sides are streaming.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

__all__ = ["FaultyProxy"]


class FaultyProxy:
    """Forwards 127.0.0.1 TCP connections to ``target_port``; cuts, freezes or refuses them.

    Call :meth:`start` (it binds an ephemeral port, then ``port`` and ``origin`` are set) and
    :meth:`close` at the end.
    """

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        #: The live connections: (client-side writer, server-side writer).
        self.links: list[tuple[asyncio.StreamWriter, asyncio.StreamWriter]] = []
        #: Client-side writers of frozen connections: what arrives on them is swallowed.
        self.frozen: set[asyncio.StreamWriter] = set()
        self.server: asyncio.Server | None = None
        self._stopped: list[asyncio.Server] = []
        self.port = 0
        #: Connections accepted so far (a reconnect through the proxy increments it).
        self.accepted = 0
        #: Connections reset by :meth:`cut` so far.
        self.cuts = 0
        #: ``accepted`` when :meth:`cut_at_midway` cut; -1 until it has.
        self.accepted_before_cut = -1

    async def start(self) -> None:
        """Listen on an ephemeral 127.0.0.1 port (``port``)."""
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]

    @property
    def origin(self) -> str:
        """``http://127.0.0.1:<port>``: the proxy as an HTTP origin."""
        return f"http://127.0.0.1:{self.port}"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            # The target is down: the client sees a reset, as it would without the proxy.
            writer.transport.abort()
            return
        link = (writer, up_writer)
        self.links.append(link)

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(Exception):
                while data := await src.read(65536):
                    if writer in self.frozen:
                        continue  # swallowed: the peer never hears of it
                    dst.write(data)
                    await dst.drain()
            with contextlib.suppress(Exception):
                dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        if link in self.links:
            self.links.remove(link)

    def cut(self) -> int:
        """Abort every live connection (both halves), as a network failure would.

        Returns how many were cut (also added to ``cuts``).
        """
        links, self.links = self.links, []
        for client_side, server_side in links:
            client_side.transport.abort()
            server_side.transport.abort()
        self.cuts += len(links)
        return len(links)

    def cut_at_midway(self, line: dict[str, Any]) -> None:
        """Cut (:meth:`cut`) when a scenario prints its ``{"phase": "midway"}`` line, noting
        ``accepted_before_cut``: ``accepted > accepted_before_cut >= 1`` afterwards means the
        client was connected through the proxy and reconnected through it after the cut."""
        if line.get("phase") == "midway":
            self.accepted_before_cut = self.accepted
            self.cut()

    def freeze(self) -> None:
        """Black-hole the live connections (no FIN, no RST); later connections are unaffected."""
        for client_side, _ in self.links:
            self.frozen.add(client_side)

    async def refuse(self) -> None:
        """Stop accepting connections (the live ones are kept): new ones are refused."""
        if self.server is not None:
            # Closing the server closes its listening socket at once. Its wait_closed() is left
            # to close(): from Python 3.12 it also waits for the live connections to end.
            self.server.close()
            self._stopped.append(self.server)
            self.server = None

    async def close(self) -> None:
        """Stop accepting connections and cut every live one."""
        await self.refuse()
        self.cut()
        stopped, self._stopped = self._stopped, []
        for server in stopped:
            await server.wait_closed()
