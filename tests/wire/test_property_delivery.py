"""Property: any schedule of drops and reconnects inside the window delivers every message exactly
once, in order, in both directions."""

from __future__ import annotations

import json

from client_model import ClientModel, Clock, make_channel
from hypothesis import given, settings
from hypothesis import strategies as st

from telefunc.config import ChannelSettings
from telefunc.wire.frames import Tag
from telefunc.wire.mux import ServerMux

ACTIONS = st.one_of(
    st.tuples(st.just("server_send"), st.integers(1, 5)),
    st.tuples(st.just("client_send"), st.integers(1, 5)),
    st.tuples(st.just("deliver_s2c"), st.integers(0, 8)),
    st.tuples(st.just("deliver_c2s"), st.integers(0, 8)),
    st.tuples(st.just("drop"), st.just(0)),
    st.tuples(st.just("reconnect"), st.just(0)),
    st.tuples(st.just("advance"), st.integers(0, 3)),
    st.tuples(st.just("duplicate"), st.integers(0, 5)),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(ACTIONS, max_size=60), st.integers(1, 3))
def test_drops_and_reconnects_deliver_exactly_once_in_order(
    actions: list[tuple[str, int]], n_channels: int
) -> None:
    clock = Clock()
    mux = ServerMux(ChannelSettings(reconnect_timeout=60.0, ping_interval=5.0))
    client = ClientModel(mux, clock)
    cores = []
    for i in range(n_channels):
        core, rec = make_channel(mux.settings, f"ch-{i}")
        mux.register(core, clock.now)
        client.add_channel(core.id, i)
        cores.append((core, rec))
    client.connect()
    client.deliver_c2s()  # first attach (before connect_ttl; the drops start afterwards)
    client.deliver_s2c()
    sent_s2c: list[list[str]] = [[] for _ in cores]
    sent_c2s: list[list[str]] = [[] for _ in cores]
    counter = 0
    down_since: float | None = None
    for step, (action, arg) in enumerate(actions):
        ix = step % n_channels
        if action == "server_send":
            for _ in range(arg):
                counter += 1
                text = f"s{counter}"
                cores[ix][0].send(Tag.TEXT, json.dumps(text).encode(), clock.now)
                sent_s2c[ix].append(text)
        elif action == "client_send":
            for _ in range(arg):
                counter += 1
                text = f"c{counter}"
                client.send(ix, Tag.TEXT, json.dumps(text).encode())
                sent_c2s[ix].append(text)
        elif action == "deliver_s2c":
            client.deliver_s2c(arg)
        elif action == "deliver_c2s":
            client.deliver_c2s(arg)
        elif action == "drop" and client.link is not None:
            client.drop()
            down_since = clock.now
        elif action == "reconnect":
            if client.link is not None:
                client.drop()
            client.connect()
            down_since = None
        elif action == "duplicate" and client.reconciled:
            # Frames re-sent on a racing wire: the server must drop what it already processed.
            ch = client.channels[ix]
            for frame in ch.replay.get_after(max(0, ch.out_seq - arg - 1)):
                client.send_raw(frame)
        elif action == "advance" and (down_since is None or clock.now + arg - down_since < 50):
            # Stay inside the reconnect window; a live client keeps pinging.
            client.ping()
            client.deliver_c2s()
            clock.advance(arg, mux)
    # Settle: reconnect, and pump both directions until quiet.
    if client.link is None or not client.reconciled:
        client.drop()
        client.connect()
    for _ in range(5):
        client.deliver_c2s()
        client.deliver_s2c()
    for ix, (core, rec) in enumerate(cores):
        assert not core.is_shutdown
        got_s2c = [json.loads(p) for p in client.texts(ix)]
        assert got_s2c == sent_s2c[ix]
        got_c2s = [json.loads(p) for p in rec.messages]
        assert got_c2s == sent_c2s[ix]
