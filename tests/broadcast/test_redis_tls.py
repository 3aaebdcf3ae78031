"""The Redis broadcast transport over TLS, against a real redis-server that serves only TLS.

The server's certificate comes from a throwaway CA and names ``localhost`` only; the server
requires a client certificate. The TLS options travel in the URL's query string and must reach
both of the transport's connections: the pub/sub one (``listen``/``wait_subscribed``) and the
publishing one (``publish``).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
from _broadcast_util import Collector, eventually

from redis_support import RedisServer, TlsFiles, make_ca, make_tls_files
from telefunc.broadcast.redis import RedisBroadcast
from telefunc.errors import BroadcastTransportError


@pytest.fixture
def tls_files(tmp_path: Path) -> TlsFiles:
    return make_tls_files(tmp_path / "tls")


@pytest.fixture
def tls_server(tmp_path: Path, tls_files: TlsFiles) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path, tls=tls_files)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def tls_url(
    server: RedisServer, tls: TlsFiles, *, host: str = "localhost", ca: Path | None = None
) -> str:
    return (
        f"rediss://{host}:{server.port}?ssl_ca_certs={ca or tls.ca}"
        f"&ssl_certfile={tls.client_cert}&ssl_keyfile={tls.client_key}"
    )


@pytest.fixture
async def transports() -> AsyncIterator[Callable[[str], RedisBroadcast]]:
    made: list[RedisBroadcast] = []

    def make(url: str) -> RedisBroadcast:
        transport = RedisBroadcast(url, connect_timeout=2.0, command_timeout=2.0)
        made.append(transport)
        return transport

    yield make
    for transport in made:
        await transport.aclose()


async def assert_both_connections_work(make: Callable[[str], RedisBroadcast], url: str) -> None:
    pub, sub = make(url), make(url)
    got = Collector()
    sub.listen("k", got)
    async with asyncio.timeout(15):
        await sub.wait_subscribed("k")  # the pub/sub connection is up and subscribed
    receipt = await pub.publish("k", "over tls")  # so is the publishing one
    await got.wait_for(1)
    assert got.items == [("over tls", receipt.seq, receipt.timestamp)]
    assert receipt.meta["delivered"] == 1


async def assert_both_connections_refused(
    make: Callable[[str], RedisBroadcast],
    url: str,
    reason: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    transport = make(url)
    with pytest.raises(BroadcastTransportError) as info:
        await transport.publish("k", "x")
    assert url in str(info.value)
    assert reason in str(info.value)
    transport.listen("k", lambda *_: None)
    await eventually(
        lambda: any(
            "cannot reach Redis" in r.getMessage() and reason in r.getMessage()
            for r in caplog.records
        ),
        what="the pub/sub connection's TLS failure",
    )
    assert not transport.is_subscribed("k")


async def test_a_private_ca_and_client_certificate_secure_both_connections(
    tls_server: RedisServer,
    tls_files: TlsFiles,
    transports: Callable[[str], RedisBroadcast],
) -> None:
    await assert_both_connections_work(transports, tls_url(tls_server, tls_files))


async def test_a_server_certificate_from_another_ca_is_refused_by_both_connections(
    tls_server: RedisServer,
    tls_files: TlsFiles,
    tmp_path: Path,
    transports: Callable[[str], RedisBroadcast],
    caplog: pytest.LogCaptureFixture,
) -> None:
    other_ca, _ = make_ca(tmp_path, "other-ca")
    url = tls_url(tls_server, tls_files, ca=other_ca)
    await assert_both_connections_refused(transports, url, "certificate verify failed", caplog)


async def test_the_hostname_check_applies_to_both_connections_and_can_be_turned_off(
    tls_server: RedisServer,
    tls_files: TlsFiles,
    transports: Callable[[str], RedisBroadcast],
    caplog: pytest.LogCaptureFixture,
) -> None:
    # The certificate names localhost, not 127.0.0.1: checked by default...
    url = tls_url(tls_server, tls_files, host="127.0.0.1")
    await assert_both_connections_refused(transports, url, "IP address mismatch", caplog)
    # ...and accepted once the URL turns the check off (the CA is still verified).
    await assert_both_connections_work(transports, url + "&ssl_check_hostname=false")
