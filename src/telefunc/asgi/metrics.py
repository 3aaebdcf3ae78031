"""Prometheus metrics of a telefunc server (needs the ``metrics`` extra: ``prometheus-client``).

:class:`TelefuncCollector` turns the counters of :class:`telefunc.server.observe.Stats` and the
live state of every :class:`~telefunc.server.hub.ChannelHub` into metric families **when
scraped**; nothing on the request path touches ``prometheus_client``. Serve them

* on their own bind, off unless asked: ``telefunc serve ROOT --metrics 127.0.0.1:9464``
  (:func:`serve_metrics`), or
* inside the app: ``TelefuncApp(root, metrics=True)`` answers ``GET /_telefunc/metrics``
  (``metrics="/path"`` picks another path) — reachable by whoever reaches the app, so put it
  behind your proxy's access rules.

Every label has a bounded set of values: telefunction (registry keys, else ``unknown``), status,
transport (``ws``/``sse``, ``memory``/``redis``), reason and kind (fixed vocabularies).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest, start_http_server
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from telefunc.server import observe

__all__ = ["CONTENT_TYPE", "TelefuncCollector", "metrics_registry", "render", "serve_metrics"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
#: Protocol-violation kinds that are a client running past a ``config.limits`` bound.
OVERFLOW_KINDS = frozenset({"ping-flood", "pending-overflow", "window-overrun", "record-too-large"})


def _counter(name: str, doc: str, labels: list[str], values: dict[Any, int]) -> Metric:
    family = CounterMetricFamily(name, doc, labels=labels)
    for key, value in sorted(dict(values).items()):
        family.add_metric([str(k) for k in (key if isinstance(key, tuple) else (key,))], value)
    return family


def _gauge(name: str, doc: str, value: float) -> Metric:
    return GaugeMetricFamily(name, doc, value=value)


class TelefuncCollector(Collector):
    """Reads :class:`~telefunc.server.observe.Stats` and the live hubs at each scrape."""

    def __init__(self, stats: observe.Stats) -> None:
        self.stats = stats

    def collect(self) -> Iterator[Metric]:
        s = self.stats
        yield _counter(
            "telefunc_calls",
            "Telefunction calls by telefunction (file:name, 'unknown' when not registered) "
            "and HTTP status.",
            ["telefunction", "status"],
            s.calls,
        )
        histogram = HistogramMetricFamily(
            "telefunc_call_duration_seconds",
            "Seconds from a call's request body to its response (streaming bodies not included).",
            labels=["telefunction"],
        )
        for name, (buckets, total) in sorted(dict(s.call_latency).items()):
            cumulative, running = [], 0
            for bound, count in zip((*observe.LATENCY_BUCKETS, float("inf")), buckets, strict=True):
                running += count
                cumulative.append(("+Inf" if bound == float("inf") else repr(bound), running))
            histogram.add_metric([name], cumulative, total[0])
        yield histogram
        open_conns = GaugeMetricFamily(
            "telefunc_connections", "Open channel connections by transport.", labels=["transport"]
        )
        for transport in ("ws", "sse"):
            open_conns.add_metric([transport], s.connections_open.get(transport, 0))
        yield open_conns
        yield _counter(
            "telefunc_connections_opened",
            "Channel connections accepted, by transport.",
            ["transport"],
            s.connections_opened,
        )
        hubs = list(observe.hubs())
        channels = sum(len(h.mux.channels) for h in hubs)
        yield _gauge("telefunc_channels", "Open channels (registered, not finished).", channels)
        yield CounterMetricFamily(
            "telefunc_channels_opened", "Channels registered.", value=s.channels_opened
        )
        yield _gauge(
            "telefunc_sessions", "Channel sessions (clients) the server keeps.", _sessions(hubs)
        )
        yield _gauge(
            "telefunc_broadcast_subscriptions",
            "Broadcast listeners held on the broadcast transport.",
            s.broadcast_subscriptions,
        )
        yield _gauge(
            "telefunc_channel_buffer_bytes",
            "Bytes channels hold for their clients (replay and pre-attach buffers).",
            sum(core.buffered_bytes for h in hubs for core in list(h.mux.channels.values())),
        )
        for direction, messages, nbytes in (
            ("in", s.in_messages, s.in_bytes),
            ("out", s.out_messages, s.out_bytes),
        ):
            yield _counter(
                f"telefunc_messages_{direction}",
                f"Channel frames {'received' if direction == 'in' else 'sent'}, by transport.",
                ["transport"],
                messages,
            )
            yield _counter(
                f"telefunc_bytes_{direction}",
                f"Bytes of channel frames {'received' if direction == 'in' else 'sent'}.",
                ["transport"],
                nbytes,
            )
        yield CounterMetricFamily(
            "telefunc_replayed_frames",
            "Frames replayed to clients that reconnected (seq > their lastSeq).",
            value=sum(h.mux.replayed_frames for h in hubs),
        )
        yield CounterMetricFamily(
            "telefunc_reconnects",
            "Clients that came back on a new connection to a known session.",
            value=sum(h.mux.reconnects for h in hubs),
        )
        yield _counter(
            "telefunc_drops",
            "Connections or channel claims dropped by the server, by reason.",
            ["reason"],
            {
                "slow-consumer": sum(_slow_consumer_drops(h) for h in hubs),
                "channel-refused": sum(h.mux.refused_attaches for h in hubs),
            },
        )
        overflows = dict(s.limits_hit)
        for kind, count in dict(s.protocol_violations).items():
            if kind in OVERFLOW_KINDS:
                overflows[kind] = overflows.get(kind, 0) + count
        yield _counter(
            "telefunc_overflows",
            "Sends evicted from a full channel buffer and clients refused past a config.limits "
            "bound, by reason.",
            ["reason"],
            overflows,
        )
        yield _counter(
            "telefunc_protocol_violations",
            "Connections closed for breaking the channel protocol, by kind.",
            ["kind"],
            s.protocol_violations,
        )
        yield _counter(
            "telefunc_broadcast_publishes",
            "Broadcast publishes handed to the transport (memory, redis).",
            ["transport"],
            s.broadcast_publishes,
        )
        yield _counter(
            "telefunc_broadcast_deliveries",
            "Broadcast messages delivered to subscribed channels, by transport.",
            ["transport"],
            s.broadcast_deliveries,
        )
        yield CounterMetricFamily(
            "telefunc_redis_gaps",
            "Sequence gaps the Redis broadcast transport saw (messages possibly lost).",
            value=s.redis_gaps,
        )


def _sessions(hubs: list[Any]) -> int:
    return sum(len(h.mux.sessions) for h in hubs)


def _slow_consumer_drops(hub: Any) -> int:
    # Counted by the core's outgoing-memory limit (``ServerMux.stats``) where it exists.
    stats = getattr(hub.mux, "stats", None)
    return int(getattr(stats, "slow_consumer_drops", 0))


_registry: CollectorRegistry | None = None


def metrics_registry() -> CollectorRegistry:
    """The process's registry holding :class:`TelefuncCollector` (enables the counters)."""
    global _registry
    if _registry is None:
        registry = CollectorRegistry(auto_describe=False)
        registry.register(TelefuncCollector(observe.enable_stats()))
        _registry = registry
    return _registry


def render() -> bytes:
    """The metrics page in the Prometheus text format."""
    return generate_latest(metrics_registry())


def serve_metrics(bind: str) -> tuple[str, int]:
    """Serve ``/metrics`` on ``HOST:PORT`` from a background thread; returns the bound address."""
    host, sep, port_text = bind.rpartition(":")
    if not sep or not port_text.isdigit():
        raise ValueError(f"--metrics wants HOST:PORT, got {bind!r}")
    host = host.strip("[]") or "127.0.0.1"
    server, _thread = start_http_server(int(port_text), host, registry=metrics_registry())
    address = server.server_address
    return str(address[0]), int(address[1])
