"""Cross-site protection: which browser origins may reach the telefunc endpoint (transport-free).

:func:`check_origin` runs before anything else for every call, SSE POST and WebSocket upgrade. It
allows a request without ``Origin`` (and without ``Sec-Fetch-Site: cross-site``), one whose
``Origin`` is the request's own (scheme as the server saw it, ``Host``), and one listed in
``config.allowed_origins``; anything else, ``Origin: null`` and several ``Origin`` headers
included, is refused and the adapter answers 403. :func:`log_refusal` writes one rate-limited
line naming the setting that would allow the origin. Why and how to configure it (proxies, dev
servers): the README's "Cross-site protection" section.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass

from telefunc.endpoint.client_errors import log_client_error

__all__ = [
    "FORBIDDEN_BODY",
    "OriginRefusal",
    "check_origin",
    "log_refusal",
    "request_origin",
]

#: Body of the 403 answer.
FORBIDDEN_BODY = b"Forbidden: cross-site request refused (origin not allowed)"

_DEFAULT_PORTS = {"http": "80", "https": "443"}
#: WebSocket schemes compare as their HTTP counterparts: a page's Origin is always http(s).
_HTTP_SCHEME = {"ws": "http", "wss": "https", "http": "http", "https": "https"}
#: Longest origin quoted in a log line (it is client-supplied).
_MAX_QUOTED = 200


@dataclass(frozen=True, slots=True)
class OriginRefusal:
    """Why a request was refused: the ``Origin`` it carried and the server's own origin."""

    #: The ``Origin`` header as sent (``""`` when absent), truncated for logging.
    origin: str
    #: The request's own origin (``scheme://host[:port]``), or ``None`` without a Host header.
    own_origin: str | None
    #: A short reason for the log line.
    reason: str


def normalize_origin(scheme: str, host: str) -> str | None:
    """``scheme://host[:port]`` lower-cased, the scheme's default port dropped; ``None`` if
    ``scheme`` is not http(s)/ws(s) or ``host`` is empty or malformed."""
    http_scheme = _HTTP_SCHEME.get(scheme.lower())
    host = host.strip().lower()
    if http_scheme is None or not host or any(c in host for c in "/\\@?# "):
        return None
    name, port = host, ""
    if host.startswith("["):  # IPv6 literal: [::1]:8080
        end = host.find("]")
        if end < 0:
            return None
        name, rest = host[: end + 1], host[end + 1 :]
        if rest:
            if not rest.startswith(":"):
                return None
            port = rest[1:]
    elif ":" in host:
        name, _, port = host.rpartition(":")
    if port and (not port.isdigit() or len(port) > 5):
        return None
    if port == _DEFAULT_PORTS[http_scheme]:
        port = ""
    return f"{http_scheme}://{name}:{port}" if port else f"{http_scheme}://{name}"


def request_origin(scheme: str, host: str | None) -> str | None:
    """The origin a request was sent to, from the server's scheme and the ``Host`` header."""
    return normalize_origin(scheme, host) if host else None


def _parse_origin_header(value: str) -> str | None:
    scheme, sep, rest = value.strip().partition("://")
    if not sep:
        return None
    return normalize_origin(scheme, rest)


def check_origin(
    *,
    scheme: str,
    host: str | None,
    origins: Sequence[str],
    sec_fetch_site: str | None,
    allowed: Collection[str],
) -> OriginRefusal | None:
    """``None`` when the request may proceed, else why it is refused (answer 403).

    :param scheme: the request's scheme as the server saw it (``http``/``https``/``ws``/``wss``).
    :param host: its ``Host`` header (or the authority of its URL), ``None`` when absent.
    :param origins: every ``Origin`` header value it carried (usually zero or one).
    :param sec_fetch_site: its ``Sec-Fetch-Site`` header, ``None`` when absent.
    :param allowed: ``config.allowed_origins`` (normalized ``scheme://host[:port]``).
    """
    cross_site = sec_fetch_site is not None and sec_fetch_site.strip().lower() == "cross-site"
    if not origins:
        if cross_site:
            own = request_origin(scheme, host)
            return OriginRefusal("", own, "Sec-Fetch-Site: cross-site without an Origin header")
        return None  # the common case (same-origin fetches, servers): nothing to normalize
    own = request_origin(scheme, host)
    quoted = ", ".join(origins)[:_MAX_QUOTED]
    if len(origins) > 1:
        return OriginRefusal(quoted, own, "several Origin headers")
    origin = _parse_origin_header(origins[0])
    if origin is None:  # "null", or not an origin at all
        return OriginRefusal(quoted, own, "an opaque or malformed Origin")
    if any(_parse_origin_header(entry) == origin for entry in allowed):
        return None
    if cross_site:
        return OriginRefusal(quoted, own, "Sec-Fetch-Site: cross-site")
    if origin == own:
        return None
    return OriginRefusal(quoted, own, "the Origin is neither this server's nor allowed")


def log_refusal(refusal: OriginRefusal) -> None:
    """One rate-limited line naming the origin and how to allow it."""
    suggestion = _parse_origin_header(refusal.origin) or "https://your-front-end.example"
    log_client_error(
        "origin-refused",
        "telefunc: refused a cross-site request (403) from Origin %r to %s: %s. If that page "
        "is yours, allow it with config.allowed_origins = [%r] or "
        "`telefunc serve --allow-origin %s`",
        refusal.origin or "(none)",
        refusal.own_origin or "a request without Host",
        refusal.reason,
        suggestion,
        suggestion,
    )
