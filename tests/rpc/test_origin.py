"""Cross-site protection of the call endpoint, over real HTTP (uvicorn), and its decision rules.

The attacks are the ones a foreign page can make a visitor's browser send: a form POST
(text/plain, urlencoded, multipart) or a no-cors ``fetch`` carrying the visitor's cookie, from
``Origin: https://evil.example`` or a sandboxed ``Origin: null``, without ``x-telefunc-request``.
Each must get 403 *and* leave the telefunction unrun.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from telefunc import config, get_context
from telefunc.asgi import TelefuncApp
from telefunc.endpoint.client_errors import ClientErrorLog
from telefunc.server import origin as origin_module
from telefunc.server.origin import check_origin, normalize_origin
from telefunc.server.registry import Registry

EVIL = "https://evil.example"
TRANSFER = json.dumps({"file": "/bank.telefunc.py", "name": "transfer", "args": [1000]})


class Bank:
    """A telefunction with a side effect: every transfer that ran, with the caller's cookie."""

    def __init__(self) -> None:
        self.transfers: list[tuple[str | None, int]] = []
        registry = Registry()
        registry.add("/bank.telefunc.py", self.transfer, name="transfer")
        self.app = TelefuncApp(
            registry=registry, context=lambda request: {"user": request.cookies.get("session")}
        )

    async def transfer(self, amount: int) -> str:
        self.transfers.append((get_context().get("user"), amount))
        return "done"


@pytest.fixture
def restore_origins() -> Iterator[None]:
    saved = config.allowed_origins
    yield
    config.allowed_origins = saved


@pytest.fixture
def bank(live_server: Any, restore_origins: None) -> Iterator[tuple[Bank, str]]:
    bank = Bank()
    server = live_server(bank.app)
    yield bank, server.origin


def post(origin: str, content: str | bytes, headers: dict[str, str]) -> httpx.Response:
    with httpx.Client(base_url=origin, timeout=20) as client:
        return client.post(
            "/_telefunc", content=content, headers={"cookie": "session=victim", **headers}
        )


ATTACKS = {
    "text/plain form": {
        "origin": EVIL,
        "content-type": "text/plain",
        "sec-fetch-site": "cross-site",
    },
    "urlencoded form": {"origin": EVIL, "content-type": "application/x-www-form-urlencoded"},
    "multipart form": {"origin": EVIL, "content-type": "multipart/form-data; boundary=x"},
    "Origin: null": {"origin": "null", "content-type": "text/plain"},
    "foreign Origin with the telefunc header": {
        "origin": EVIL,
        "content-type": "text/plain",
        "x-telefunc-request": "txt",
    },
    "Sec-Fetch-Site: cross-site, no Origin": {
        "sec-fetch-site": "cross-site",
        "content-type": "text/plain",
    },
    "same host, other scheme and port": {
        "origin": "https://127.0.0.1",
        "content-type": "text/plain",
    },
    "two Origin headers": {},  # sent below: a foreign one and the server's own
}


@pytest.mark.parametrize("attack", sorted(ATTACKS))
def test_a_cross_site_post_is_refused_and_runs_nothing(bank: tuple[Bank, str], attack: str) -> None:
    app, origin = bank
    headers = dict(ATTACKS[attack])
    if attack == "two Origin headers":
        raw = httpx.Headers([("origin", EVIL), ("origin", origin), ("cookie", "session=victim")])
        with httpx.Client(base_url=origin, timeout=20) as client:
            r = client.post("/_telefunc", content=TRANSFER, headers=raw)
    else:
        r = post(origin, TRANSFER, headers)
    assert r.status_code == 403
    assert "cross-site" in r.text
    assert app.transfers == []


def test_same_origin_no_origin_and_allowed_origins_run(bank: tuple[Bank, str]) -> None:
    app, origin = bank
    same = post(origin, TRANSFER, {"origin": origin, "sec-fetch-site": "same-origin"})
    assert (same.status_code, same.text) == (200, '{"ret":"done"}')
    # Non-browser clients (the Python client, curl, Node) send no Origin at all.
    bare = post(origin, TRANSFER, {"content-type": "text/plain"})
    assert bare.status_code == 200
    # A foreign front end (a dev server on another port) once allowed, even though the browser
    # calls the request cross-site; entries compare case-insensitively and without default port.
    config.allowed_origins = ["HTTP://localhost:5173", "https://front.example:443"]
    vite = post(
        origin, TRANSFER, {"origin": "http://localhost:5173", "sec-fetch-site": "same-site"}
    )
    front = post(
        origin, TRANSFER, {"origin": "https://front.example", "sec-fetch-site": "cross-site"}
    )
    assert (vite.status_code, front.status_code) == (200, 200)
    assert post(origin, TRANSFER, {"origin": EVIL}).status_code == 403
    assert app.transfers == [("victim", 1000)] * 4


def test_behind_a_trusted_tls_proxy_the_own_origin_is_https(bank: tuple[Bank, str]) -> None:
    # uvicorn trusts X-Forwarded-Proto from 127.0.0.1 (FORWARDED_ALLOW_IPS): the page's
    # https:// origin is then this server's own.
    app, origin = bank
    public = origin.replace("http://", "https://")
    behind = post(origin, TRANSFER, {"origin": public, "x-forwarded-proto": "https"})
    direct = post(origin, TRANSFER, {"origin": public})
    assert (behind.status_code, direct.status_code) == (200, 403)
    assert len(app.transfers) == 1


def test_static_files_are_not_checked(live_server: Any, apps_dir: Any) -> None:
    server = live_server(apps_dir / "basic")
    with httpx.Client(base_url=server.origin, timeout=20) as client:
        page = client.get("/", headers={"origin": EVIL, "sec-fetch-site": "cross-site"})
    assert page.status_code == 200


def test_many_refusals_log_one_line_naming_the_settings(
    bank: tuple[Bank, str], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    _, origin = bank
    # A limiter of its own (the process-wide one may have logged for an earlier test); its
    # clock stands still, so every refusal after the first falls in the same interval.
    monkeypatch.setattr(origin_module, "log_client_error", ClientErrorLog(clock=lambda: 0.0))
    with caplog.at_level(logging.WARNING, logger="telefunc.client_errors"):
        statuses = {
            post(origin, TRANSFER, {"origin": "http://localhost:5173"}).status_code
            for _ in range(20)
        }
    assert statuses == {403}
    lines = [r.getMessage() for r in caplog.records if r.name == "telefunc.client_errors"]
    assert len(lines) == 1, lines
    assert "config.allowed_origins = ['http://localhost:5173']" in lines[0]
    assert "telefunc serve --allow-origin http://localhost:5173" in lines[0]
    assert "origin-refused" in lines[0]


# ── the decision itself (server/origin.py, shared by every adapter) ─────────────────────


def decide(
    origins: list[str],
    *,
    scheme: str = "http",
    host: str | None = "app.example:8000",
    site: str | None = None,
    allowed: tuple[str, ...] = (),
) -> bool:
    """Whether the request is allowed."""
    refusal = check_origin(
        scheme=scheme, host=host, origins=origins, sec_fetch_site=site, allowed=allowed
    )
    return refusal is None


@pytest.mark.parametrize(
    ("origins", "kwargs", "allowed"),
    [
        ([], {}, True),
        (["http://app.example:8000"], {}, True),
        (["HTTP://App.Example:8000"], {}, True),
        (["https://app.example"], {"scheme": "https", "host": "app.example:443"}, True),
        (["https://app.example:443"], {"scheme": "https", "host": "app.example"}, True),
        (["http://app.example:8000"], {"scheme": "ws"}, True),
        (["https://app.example"], {"scheme": "wss", "host": "app.example"}, True),
        (["http://[::1]:8000"], {"host": "[::1]:8000"}, True),
        (["http://app.example:8000"], {"site": "same-origin"}, True),
        (["http://app.example"], {}, False),  # another port
        (["https://app.example:8000"], {}, False),  # another scheme
        (["http://sub.app.example:8000"], {"site": "same-site"}, False),
        (["http://app.example:8000"], {"host": None}, False),
        (["null"], {}, False),
        (["app.example:8000"], {}, False),
        (["http://app.example:8000/path"], {}, False),
        (["http://app.example:8000", "http://app.example:8000"], {}, False),
        ([], {"site": "cross-site"}, False),
        ([], {"site": "same-site"}, True),
        (["http://app.example:8000"], {"site": "cross-site"}, False),
        (["http://front.example"], {"allowed": ("http://front.example",)}, True),
        (
            ["http://front.example"],
            {"allowed": ("http://front.example",), "site": "cross-site"},
            True,
        ),
        (["http://front.example:81"], {"allowed": ("http://front.example",)}, False),
        (["null"], {"allowed": ("http://front.example",)}, False),
    ],
)
def test_check_origin(origins: list[str], kwargs: dict[str, Any], allowed: bool) -> None:
    assert decide(origins, **kwargs) is allowed


def test_normalize_origin_rejects_what_is_not_a_host() -> None:
    assert normalize_origin("https", "A.example:443") == "https://a.example"
    assert normalize_origin("wss", "a.example:8443") == "https://a.example:8443"
    for host in ("", "a.example/x", "user@a.example", "a.example:http", "[::1", "a.example:123456"):
        assert normalize_origin("http", host) is None, host
    assert normalize_origin("ftp", "a.example") is None


async def _asgi_call(app: TelefuncApp, headers: list[tuple[bytes, bytes]]) -> tuple[int, bytes]:
    """One call straight through the ASGI interface, with the raw header list given."""
    body = TRANSFER.encode()
    sent: list[dict[str, Any]] = []
    received = False

    async def receive() -> dict[str, Any]:
        nonlocal received
        if received:
            return {"type": "http.disconnect"}
        received = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/_telefunc",
        "scheme": "http",
        "query_string": b"",
        "headers": [(b"host", b"bank.example"), *headers],
    }
    await app(scope, receive, send)
    return sent[0]["status"], b"".join(m.get("body", b"") for m in sent[1:])


@pytest.mark.parametrize(
    "headers",
    [
        [(b"Origin", EVIL.encode())],  # a server that passes header names as sent
        [(b"origin", EVIL.encode())],
        [(b"origin", b"http://bank.example"), (b"ORIGIN", EVIL.encode())],  # two: refused
        [(b"Sec-Fetch-Site", b"cross-site")],
    ],
)
async def test_the_call_endpoint_reads_origin_headers_in_any_case(
    headers: list[tuple[bytes, bytes]], restore_origins: None
) -> None:
    bank = Bank()
    status, body = await _asgi_call(bank.app, headers)
    assert (status, body) == (403, origin_module.FORBIDDEN_BODY)
    assert bank.transfers == []


async def test_a_same_origin_call_runs_through_the_asgi_interface(restore_origins: None) -> None:
    bank = Bank()
    headers = [(b"Origin", b"http://bank.example"), (b"Cookie", b"session=alice")]
    status, body = await _asgi_call(bank.app, headers)
    assert (status, body) == (200, b'{"ret":"done"}')
    assert bank.transfers == [("alice", 1000)]
