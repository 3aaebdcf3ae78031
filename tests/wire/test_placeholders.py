"""telefunc.wire.placeholders: every ``!Telefunc…:`` prefix in one table, and each kind
encoded by one side and revived by the other (our server and our client, both directions)."""

from __future__ import annotations

import re
from typing import Any

import pytest

from telefunc.client import (
    BroadcastChannel,
    Channel,
    Client,
    File,
    RemoteFile,
    RemoteFunction,
    RemoteGenerator,
    RemotePromise,
    RemoteStream,
)
from telefunc.client._client import _REVIVERS
from telefunc.wire import placeholders
from telefunc.wire.placeholders import PREFIXES, STREAM_TRANSPORTS
from testpaths import APPS_DIR, IN_CI, JS_DIR

#: The prefixes docs/protocol.md §4 lists (telefunc@0.2.23).
SPEC_PREFIXES = {
    "!TelefuncFile:",
    "!TelefuncBlob:",
    "!TelefuncFileDownload:",
    "!TelefuncBlobDownload:",
    "!TelefuncStream:",
    "!TelefuncGenerator:",
    "!TelefuncPromise:",
    "!TelefuncChannel:",
    "!TelefuncFunction:",
    "!TelefuncBroadcast:",
}
NPM_CONSTANTS = JS_DIR / "node_modules" / "telefunc" / "dist" / "wire-protocol" / "constants.js"


def test_the_table_holds_every_prefix_of_the_spec_once() -> None:
    assert len(PREFIXES) == len(set(PREFIXES))
    assert set(PREFIXES) == SPEC_PREFIXES
    assert all(p.startswith(placeholders.MARK) and p.endswith(":") for p in PREFIXES)
    assert STREAM_TRANSPORTS == ("binary-inline", "sse-inline", "channel")


def _npm_constants() -> str:
    if not NPM_CONSTANTS.is_file():
        if IN_CI:
            pytest.fail(f"{NPM_CONSTANTS} is missing (npm ci in js/)")
        pytest.skip("js/node_modules is not installed")
    return NPM_CONSTANTS.read_text()


def test_the_table_matches_the_npm_package() -> None:
    text = _npm_constants()
    npm_prefixes = re.findall(r"export const SERIALIZER_PREFIX_\w+ = '([^']*)';", text)
    assert sorted(npm_prefixes) == sorted(PREFIXES)
    npm_transports = re.search(r"STREAM_TRANSPORT = \{([^}]*)\}", text)
    assert npm_transports is not None
    assert set(re.findall(r"'([^']*)'", npm_transports.group(1))) == set(STREAM_TRANSPORTS)
    key = re.search(r"export const FN_SHIELD_ERROR_KEY = '([^']*)';", text)
    assert key is not None and key.group(1) == placeholders.FN_SHIELD_ERROR_KEY


@pytest.mark.parametrize("prefix", PREFIXES)
def test_encode_split_and_revive_round_trip(prefix: str) -> None:
    meta = {"channelId": "c-1", "__index": 3, "name": "é/<a>"}
    text = placeholders.encode_json(prefix, meta)
    assert text == prefix + '{"channelId":"c-1","__index":3,"name":"\\u00e9/<a>"}'
    assert placeholders.split(text) == (prefix, text[len(prefix) :])
    assert placeholders.encode(prefix, "{}") == prefix + "{}"
    # A table of handlers, one per prefix: only the handler of this prefix answers.
    table = {p: (lambda meta_text, p=p: (p, meta_text)) for p in PREFIXES}
    assert placeholders.revive(table, text) == (True, (prefix, text[len(prefix) :]))
    others = {p: h for p, h in table.items() if p != prefix}
    assert placeholders.revive(others, text) == (False, None)


@pytest.mark.parametrize(
    "text",
    [
        "plain",
        "!Date:1970-01-01T00:00:00.000Z",
        "!Telefunc",
        "!TelefuncFile",
        "!TelefuncUnknown:{}",
        "!TelefuncFil:{}",
        "!TelefuncFileDownloadX:{}",
        "!!TelefuncFile:{}",
        "",
    ],
)
def test_split_refuses_what_is_not_a_known_placeholder(text: str) -> None:
    assert placeholders.split(text) is None
    assert placeholders.revive({p: str for p in PREFIXES}, text) == (False, None)


def test_the_client_revives_every_prefix() -> None:
    assert set(_REVIVERS) == set(PREFIXES)


# --------------------------------------------------------------------------------------------
# the real encoders and revivers, across a live server


EVERY = "/every.telefunc.py"


@pytest.fixture
def origin(live_server: Any) -> str:
    return str(live_server(APPS_DIR / "placeholders").origin)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("transport", STREAM_TRANSPORTS)
async def test_every_kind_the_server_sends_revives_on_the_client(
    origin: str, transport: str
) -> None:
    async with Client(origin, stream_transport=transport) as c:
        file = File(b"hello", name="a.txt", type="text/plain", last_modified=7)
        result = await c.call(EVERY, "every_kind", file)
        # Each kind arrived as its own object, in working order.
        assert isinstance(result["upload"], RemoteFile)
        assert (result["upload"].name, result["upload"].last_modified) == ("a.txt", 7)
        assert result["upload"].loaded == 5  # an echoed upload is read before the call returns
        assert await result["upload"].read() == b"hello"
        assert isinstance(result["file_download"], RemoteFile)
        assert result["file_download"].name == "x.txt"
        assert await result["file_download"].read() == b"xyz"
        assert isinstance(result["blob_download"], RemoteFile)
        assert result["blob_download"].name is None
        assert await result["blob_download"].read() == b"xyz"
        assert isinstance(result["stream"], RemoteStream)
        assert await result["stream"].read() == b"abc"
        assert isinstance(result["generator"], RemoteGenerator)
        assert [item async for item in result["generator"]] == [1]
        assert isinstance(result["promise"], RemotePromise)
        assert await result["promise"] == "resolved"
        assert type(result["channel"]) is Channel
        assert isinstance(result["function"], RemoteFunction)
        assert await result["function"](1) == 2
        assert isinstance(result["broadcast"], BroadcastChannel)
        assert result["broadcast"].key == "placeholders"

        blob = await c.call(EVERY, "every_kind", File(b"bytes", type="text/plain"))
        assert isinstance(blob["upload"], RemoteFile)
        assert (blob["upload"].name, blob["upload"].type) == (None, "text/plain")
        assert await blob["upload"].read() == b"bytes"


@pytest.mark.timeout(60)
async def test_every_kind_the_client_sends_revives_on_the_server(origin: str) -> None:
    async def chunks() -> Any:
        yield b"ab"
        yield b"c"

    async def plus_one(n: int) -> int:
        return n + 1

    async with Client(origin) as c:
        file = File(b"hello", name="a.txt", type="text/plain")
        blob = File(b"bytes", type="text/plain")
        result = await c.call(EVERY, "argument_kinds", file, blob, chunks(), plus_one)
    assert result == {
        "file": ["UploadedFile", "a.txt", b"hello"],
        "blob": ["UploadedFile", None, b"bytes"],
        "stream": b"abc",
        "fn": 42,
    }
