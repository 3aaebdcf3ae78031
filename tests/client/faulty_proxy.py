"""A TCP proxy for fault injection between a client and a server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import contextlib


class FaultyProxy:
    """Forwards 127.0.0.1 TCP connections to ``target_port``.

    :meth:`cut` resets every live connection (both halves), :meth:`freeze` stops forwarding on
    them without closing (a silently dead network), :meth:`refuse` closes the listening socket.
    """

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.links: list[tuple[asyncio.StreamWriter, asyncio.StreamWriter]] = []
        self.frozen: set[asyncio.StreamWriter] = set()
        self.server: asyncio.Server | None = None
        self.port = 0
        self.accepted = 0

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
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
        """Abort every live connection, as a network failure would; returns how many."""
        links, self.links = self.links, []
        for client_side, server_side in links:
            client_side.transport.abort()
            server_side.transport.abort()
        return len(links)

    def freeze(self) -> None:
        """Black-hole the live connections (no FIN, no RST)."""
        for client_side, _ in self.links:
            self.frozen.add(client_side)

    async def refuse(self) -> None:
        """Stop accepting connections."""
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()
            self.server = None

    async def close(self) -> None:
        await self.refuse()
        self.cut()
