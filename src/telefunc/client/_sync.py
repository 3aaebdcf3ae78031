"""A small synchronous face for scripts: a private event loop in one background thread.

::

    with connect_sync("http://127.0.0.1:3000") as c:
        print(c.call("/calc.telefunc.py", "add", 1, 2))
        print(c.module("/calc.telefunc.py").add(3, 4))

Channels and streaming values returned by a call live on the background loop: drive them with
:meth:`SyncClient.run` (``c.run(ch.send, "hi")``, ``c.run(promise)``, ``c.run(counter, 1)``)
and iterate generators and byte streams with :meth:`SyncClient.iterate`
(``for n in c.iterate(c.call("/count.telefunc.py", "countdown", 3))``). ``close()`` (or
leaving the ``with`` block) closes the client, stops the loop and joins the thread.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterable, Awaitable, Callable, Coroutine, Iterator, Mapping
from concurrent.futures import Future
from types import TracebackType
from typing import Any, TypeVar, cast

from telefunc.client._client import Client
from telefunc.errors import UsageError

__all__ = ["SyncClient", "SyncModuleProxy", "connect_sync"]

T = TypeVar("T")


def connect_sync(url: str, **options: Any) -> SyncClient:
    """Open a :class:`SyncClient`; ``options`` are :class:`~telefunc.client.Client`'s."""
    return SyncClient(url, **options)


class SyncClient:
    """A blocking :class:`~telefunc.client.Client` running on a private loop in one thread."""

    def __init__(self, url: str, **options: Any) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="telefunc-sync-client", daemon=True
        )
        self._thread.start()
        self._closed = False
        try:
            self._client: Client = self._submit(self._make_client(url, options)).result()
        except BaseException:
            self._stop()
            raise

    @staticmethod
    async def _make_client(url: str, options: dict[str, Any]) -> Client:
        # Built on the loop: the client's HTTP pool and channel tasks belong to it.
        return Client(url, **options)

    def _submit(self, coro: Coroutine[Any, Any, T]) -> Future[T]:
        return asyncio.run_coroutine_threadsafe(coro, self._loop)

    @property
    def client(self) -> Client:
        """The underlying asyncio client (use it only through :meth:`run`)."""
        return self._client

    def run(
        self,
        target: Callable[..., Awaitable[T]] | Awaitable[T],
        *args: Any,
        timeout: float | None = None,
    ) -> T:
        """Run ``target(*args)`` (or await ``target``) on the client's loop; return the result.

        Pass channel methods uncalled, ``c.run(ch.send, "hi")``: they must run on the loop.
        """
        if self._closed:
            raise UsageError("this SyncClient is closed")

        async def wrap() -> T:
            if callable(target):
                return await target(*args)
            return await target

        return self._submit(wrap()).result(timeout)

    def iterate(self, source: AsyncIterable[T], timeout: float | None = None) -> Iterator[T]:
        """Iterate, blocking, over an async iterable a call returned (a generator, a stream).

        Each item is awaited on the client's loop (``timeout`` bounds each wait). Leaving the
        loop early (``break``, an exception) closes the remote value, so the server's
        generator stops and its ``finally`` runs.
        """
        iterator = source.__aiter__()

        async def step() -> tuple[bool, T | None]:
            try:
                return True, await iterator.__anext__()
            except StopAsyncIteration:
                return False, None

        finished = False
        try:
            while True:
                more, item = self.run(step(), timeout=timeout)
                if not more:
                    finished = True
                    return
                yield cast(T, item)
        finally:
            aclose = getattr(iterator, "aclose", None)
            if not finished and aclose is not None and not self._closed:
                self.run(aclose, timeout=10.0)

    def call(
        self,
        file: str,
        name: str,
        *args: Any,
        stream_transport: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Any:
        """Call a telefunction and wait for its result (see :meth:`Client.call`; function
        arguments run on the client's loop thread)."""
        return self.run(
            self._client.call(file, name, *args, stream_transport=stream_transport, headers=headers)
        )

    def module(self, file: str) -> SyncModuleProxy:
        """A proxy whose attributes call the telefunctions of ``file``, blocking."""
        return SyncModuleProxy(self, file)

    def close(self) -> None:
        """Close the client, stop the loop and join its thread (idempotent)."""
        if self._closed:
            return
        self._closed = True
        try:
            self._submit(self._client.aclose()).result(10.0)
        finally:
            self._stop()

    def _stop(self) -> None:
        loop = self._loop

        async def drain() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await loop.shutdown_asyncgens()
            # DNS lookups run in the loop's default executor: join its threads too.
            await loop.shutdown_default_executor()

        try:
            asyncio.run_coroutine_threadsafe(drain(), loop).result(10.0)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            self._thread.join(10.0)
            loop.close()

    def __enter__(self) -> SyncClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class SyncModuleProxy:
    """The telefunctions of one file as blocking methods (see :meth:`SyncClient.module`)."""

    def __init__(self, client: SyncClient, file: str) -> None:
        self._client = client
        self._file = file

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        client, file = self._client, self._file

        def call(*args: Any) -> Any:
            return client.call(file, name, *args)

        call.__name__ = name
        return call
