"""The official telefunc@0.2.23 client (Node 20, WebSocket) against BroadcastChannel/Broadcast.

One server process with the in-memory transport; official clients in separate Node processes.
"""

from __future__ import annotations

import itertools
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

APPS = Path(__file__).resolve().parents[1] / "apps"
WS = {"TELEFUNC_TRANSPORTS": "ws"}


def test_two_clients_see_1000_publishes_from_three_publishers_in_one_order(
    live_server: Any, run_node: Any
) -> None:
    server = live_server(APPS / "broadcast")
    key = f"room-{uuid.uuid4()}"
    per_client, server_count = 333, 334
    total = 2 * per_client + server_count

    def node(who: str, lead: bool) -> dict[str, Any]:
        lines = run_node(
            "broadcast_pubsub.mjs",
            server.origin,
            key,
            who,
            str(per_client),
            "2",
            "1" if lead else "0",
            str(server_count),
            str(total),
            env=WS,
            timeout=120,
        )
        result: dict[str, Any] = next(line for line in lines if line.get("name") == "result")
        return result

    with ThreadPoolExecutor(2) as pool:
        futures = [pool.submit(node, "a", True), pool.submit(node, "b", False)]
        a, b = (f.result() for f in futures)

    # Both subscribers saw the same 1,000 messages in exactly the same order...
    assert len(a["received"]) == total
    assert a["received"] == b["received"]
    seqs = [entry[0] for entry in a["received"]]
    assert all(x < y for x, y in itertools.pairwise(seqs))  # strictly increasing
    got = {(who, i) for _, who, i, _ in a["received"]}
    expected = {(w, i) for w in ("a", "b") for i in range(per_client)}
    expected |= {("server", i) for i in range(server_count)}
    assert got == expected
    # ...and every publisher's order is kept within the merged stream.
    for who in ("a", "b", "server"):
        assert [i for _, w, i, _ in a["received"] if w == who] == sorted(
            i for _, w, i, _ in a["received"] if w == who
        )
    # The three publishers really were interleaved (concurrent), not one after the other.
    runs = sum(1 for x, y in zip(a["received"], a["received"][1:], strict=False) if x[1] != y[1])
    assert runs >= 3

    # Each receipt names the seq and timestamp the subscribers saw for that message.
    by_seq = {seq: (who, i, ts) for seq, who, i, ts in a["received"]}
    for result in (a, b):
        assert len(result["receipts"]) == per_client
        for seq, i, ts, receipt_key in result["receipts"]:
            assert receipt_key == key
            assert by_seq[seq] == (result["who"], i, ts)
    assert len(a["serverReceipts"]) == server_count
    for seq, i, ts in a["serverReceipts"]:
        assert by_seq[seq] == ("server", i, ts)


def test_binary_and_unsubscribe(live_server: Any, run_node: Any) -> None:
    server = live_server(APPS / "broadcast")
    lines = run_node("broadcast_misc.mjs", server.origin, str(uuid.uuid4()), env=WS)
    results = {line["name"]: line for line in lines}

    binary = results["binary"]
    # the client's own publishBinary, then 5 server publishBinary calls, in seq order
    assert binary["received"] == [
        [binary["ownReceipt"]["seq"], [9, 8, 7]],
        *[[seq, [i] * (i + 1)] for i, seq in enumerate(binary["serverSeqs"])],
    ]
    assert binary["ownReceipt"]["meta"]["transport"] == "in-memory"
    assert binary["textCallbacks"] == 0

    unsub = results["unsubscribe"]
    assert unsub["listenersBefore"] == 2 and unsub["listenersAfter"] == 1
    assert unsub["aGot"] == ["first"]  # nothing after the unsubscribe
    assert unsub["bGot"] == ["first", "second", "third"]
    assert unsub["aOutSeqAfterUnsub"] == unsub["aOutSeqAtEnd"]  # no frame was even sent to A
    assert unsub["listenersAtEnd"] == 0
