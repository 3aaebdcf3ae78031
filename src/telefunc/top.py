"""``telefunc top URL``: a refreshing terminal view of a server's metrics endpoint.

It scrapes ``URL`` (``telefunc serve --metrics`` or ``TelefuncApp(metrics=True)``), and shows
open connections and channels, per-second rates computed between two scrapes, calls per
telefunction with their mean latency, and what was dropped or refused and why. Needs ``rich`` and
``prometheus-client`` (the ``top`` extra). :func:`render_view` is pure, so a recorded metrics page
renders the same view in tests.
"""

from __future__ import annotations

import time
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass, field

from prometheus_client.parser import text_string_to_metric_families
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

__all__ = ["Snapshot", "parse_page", "render_view", "run_top"]

Labels = tuple[tuple[str, str], ...]


@dataclass
class Snapshot:
    """One scrape: every sample by (sample name, sorted labels), and when it was taken."""

    at: float
    samples: dict[tuple[str, Labels], float] = field(default_factory=dict)

    def total(self, name: str, **match: str) -> float:
        """The sum of ``name``'s samples whose labels include ``match``."""
        wanted = set(match.items())
        return sum(
            v for (n, labels), v in self.samples.items() if n == name and wanted <= set(labels)
        )

    def by(self, name: str, label: str) -> dict[str, float]:
        """``name``'s samples summed per value of ``label``."""
        out: dict[str, float] = {}
        for (n, labels), value in self.samples.items():
            if n == name:
                key = dict(labels).get(label, "")
                out[key] = out.get(key, 0.0) + value
        return out


def parse_page(text: str, at: float) -> Snapshot:
    """A :class:`Snapshot` of a Prometheus text-format page."""
    snap = Snapshot(at)
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            snap.samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return snap


def _rate(now: Snapshot, before: Snapshot | None, name: str, **match: str) -> str:
    if before is None or now.at <= before.at:
        return "-"
    delta = now.total(name, **match) - before.total(name, **match)
    return f"{max(delta, 0.0) / (now.at - before.at):,.1f}"


def _bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1024
    return f"{n:,.1f} GiB"


def _table(title: str, columns: Iterable[str], left: int = 1) -> Table:
    """A table whose first ``left`` columns are names (left) and the rest numbers (right)."""
    table = Table(title=title, title_justify="left", expand=False)
    for i, column in enumerate(columns):
        table.add_column(column, justify="left" if i < left else "right")
    return table


def render_view(now: Snapshot, before: Snapshot | None, url: str) -> Group:
    """The whole view: state, rates, calls, and drops (rates need ``before``)."""
    state = _table("Now", ("", "value"))
    conns = now.by("telefunc_connections", "transport")
    state.add_row("connections ws", f"{conns.get('ws', 0):,.0f}")
    state.add_row("connections sse", f"{conns.get('sse', 0):,.0f}")
    state.add_row("channels", f"{now.total('telefunc_channels'):,.0f}")
    state.add_row("sessions", f"{now.total('telefunc_sessions'):,.0f}")
    state.add_row(
        "broadcast subscriptions", f"{now.total('telefunc_broadcast_subscriptions'):,.0f}"
    )
    state.add_row("channel buffers", _bytes(now.total("telefunc_channel_buffer_bytes")))

    rates = _table("Rates", ("per second", "rate", "total"))
    for label, name in (
        ("calls", "telefunc_calls_total"),
        ("connections opened", "telefunc_connections_opened_total"),
        ("messages in", "telefunc_messages_in_total"),
        ("messages out", "telefunc_messages_out_total"),
        ("bytes in", "telefunc_bytes_in_total"),
        ("bytes out", "telefunc_bytes_out_total"),
        ("broadcast publishes", "telefunc_broadcast_publishes_total"),
        ("broadcast deliveries", "telefunc_broadcast_deliveries_total"),
        ("reconnects", "telefunc_reconnects_total"),
        ("replayed frames", "telefunc_replayed_frames_total"),
    ):
        rates.add_row(label, _rate(now, before, name), f"{now.total(name):,.0f}")

    calls = _table("Calls", ("telefunction", "calls", "errors", "per s", "mean ms"))
    per_function = now.by("telefunc_calls_total", "telefunction")
    for name in sorted(per_function, key=lambda n: -per_function[n])[:15]:
        ok = now.total("telefunc_calls_total", telefunction=name, status="200")
        count = now.total("telefunc_call_duration_seconds_count", telefunction=name)
        seconds = now.total("telefunc_call_duration_seconds_sum", telefunction=name)
        mean = f"{1000 * seconds / count:,.1f}" if count else "-"
        calls.add_row(
            name,
            f"{per_function[name]:,.0f}",
            f"{per_function[name] - ok:,.0f}",
            _rate(now, before, "telefunc_calls_total", telefunction=name),
            mean,
        )

    trouble = _table("Drops and refusals", ("what", "reason", "total", "per s"), left=2)
    for title, name, label in (
        ("dropped", "telefunc_drops_total", "reason"),
        ("overflow", "telefunc_overflows_total", "reason"),
        ("violation", "telefunc_protocol_violations_total", "kind"),
    ):
        for reason, value in sorted(now.by(name, label).items()):
            trouble.add_row(
                title, reason, f"{value:,.0f}", _rate(now, before, name, **{label: reason})
            )
    gaps = now.total("telefunc_redis_gaps_total")
    trouble.add_row(
        "redis gaps", "", f"{gaps:,.0f}", _rate(now, before, "telefunc_redis_gaps_total")
    )

    header = Text(f"telefunc top - {url}", style="bold")
    return Group(header, state, rates, calls, trouble)


def scrape(url: str, timeout: float = 5.0) -> Snapshot:
    """Fetch and parse the metrics page at ``url`` (``/metrics`` is added to a bare host)."""
    if url.rstrip("/").count("/") <= 2:  # http://host:port
        url = url.rstrip("/") + "/metrics"
    with urllib.request.urlopen(url, timeout=timeout) as response:
        text = response.read().decode("utf-8")
    return parse_page(text, time.monotonic())


def run_top(url: str, *, interval: float = 2.0, once: bool = False) -> int:
    """Show the view of ``url``, refreshed every ``interval`` seconds until Ctrl-C."""
    console = Console()
    before: Snapshot | None = None
    try:
        now = scrape(url)
    except OSError as exc:
        console.print(f"telefunc top: cannot read {url}: {exc}")
        return 2
    if once:
        console.print(render_view(now, None, url))
        return 0
    with Live(render_view(now, None, url), console=console, auto_refresh=False) as live:
        try:
            while True:
                time.sleep(interval)
                before, now = now, scrape(url)
                live.update(render_view(now, before, url), refresh=True)
        except KeyboardInterrupt:
            return 0
        except OSError as exc:
            console.print(f"telefunc top: {url}: {exc}")
            return 2
