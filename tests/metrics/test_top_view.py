"""`telefunc top` renders a recorded metrics page (tests/metrics/fixtures/metrics_page.txt)."""

from __future__ import annotations

import re
from pathlib import Path

from rich.console import Console

from telefunc.cli import main
from telefunc.top import parse_page, render_view

PAGE = (Path(__file__).parent / "fixtures" / "metrics_page.txt").read_text()


def rendered(text: str, before_text: str | None = None, seconds: float = 10.0) -> str:
    console = Console(record=True, width=100, force_terminal=False)
    before = parse_page(before_text, 0.0) if before_text is not None else None
    console.print(render_view(parse_page(text, seconds), before, "http://127.0.0.1:9464"))
    return console.export_text()


def row(text: str, label: str) -> list[str]:
    line = next(line for line in text.splitlines() if f" {label} " in line)
    return [cell.strip() for cell in re.split(r"[│|]", line) if cell.strip()]


def test_the_view_shows_connections_channels_calls_and_drops() -> None:
    text = rendered(PAGE)
    assert "telefunc top - http://127.0.0.1:9464" in text
    assert row(text, "connections ws") == ["connections ws", "2"]
    assert row(text, "connections sse") == ["connections sse", "1"]
    assert row(text, "channels") == ["channels", "3"]
    assert row(text, "sessions") == ["sessions", "3"]
    # calls, errors, rate (no previous scrape: "-"), mean latency in ms
    add = row(text, "/calc.telefunc.py:add")
    assert add[:4] == ["/calc.telefunc.py:add", "41", "1", "-"]
    assert float(add[4]) > 0
    assert row(text, "/calc.telefunc.py:refuse")[:3] == ["/calc.telefunc.py:refuse", "3", "3"]
    assert row(text, "text-message")[:3] == ["violation", "text-message", "2"]
    assert row(text, "ping-flood")[:3] == ["overflow", "ping-flood", "1"]


def test_rates_come_from_two_scrapes() -> None:
    earlier = PAGE.replace(
        'telefunc_calls_total{status="200",telefunction="/calc.telefunc.py:add"} 40.0',
        'telefunc_calls_total{status="200",telefunction="/calc.telefunc.py:add"} 20.0',
    )
    assert earlier != PAGE
    text = rendered(PAGE, earlier, seconds=10.0)
    assert row(text, "/calc.telefunc.py:add")[3] == "2.0"  # 20 more calls in 10 s
    assert row(text, "calls")[1] == "2.0"


def test_top_reports_an_unreachable_endpoint(capsys: object) -> None:
    assert main(["top", "http://127.0.0.1:1", "--once"]) == 2
