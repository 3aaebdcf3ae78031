"""Replay buffers for sent data frames, sans-I/O (time is passed in as float seconds).

A sender keeps every sequenced frame it put on a wire until it is too old or the budget is spent,
so that after a reconnect it can re-send the frames the peer reports it never got
(``seq > lastSeq``). Text and binary frames live in separate *lanes*, each with its own byte
budget: a large binary can never evict text.

A frame larger than its lane's whole budget is stored as a *gap marker*: :meth:`get_after` returns
only a contiguous run and stops at the first gap, so the peer never receives a sequence with a hole
(the channel is then unrecoverable past that point, which is what the reference implementation
does too).
"""

from __future__ import annotations

from collections import deque

__all__ = ["ReplayBuffer", "ReplayLane"]


class ReplayLane:
    """One FIFO lane of ``(seq, frame | None, time)`` entries, bounded by bytes and age.

    The entries lie flat in one deque, three items each: a tuple per entry would be one more
    object for the garbage collector per frame sent (a fan-out to N subscribers keeps N of them,
    each collection of the young generation then walks them all).
    """

    __slots__ = ("_items", "_oldest", "bytes", "max_age", "max_bytes")

    def __init__(self, max_bytes: int, max_age: float) -> None:
        # Created on the first push and dropped again once empty: an idle channel (most of
        # them, e.g. broadcast subscribers between publishes) would otherwise pay ~700 bytes
        # per lane for an empty deque.
        self._items: deque[int | bytes | float | None] | None = None
        #: Insertion time of the oldest entry (meaningful while there are entries): a push
        #: checks it without touching that entry.
        self._oldest = 0.0
        self.max_bytes = max_bytes
        self.max_age = max_age
        #: Bytes currently held (gap markers count 0).
        self.bytes = 0

    def __len__(self) -> int:
        return len(self._items) // 3 if self._items is not None else 0

    @property
    def oldest_time(self) -> float | None:
        """Insertion time of the oldest entry, or ``None`` when empty."""
        return self._oldest if self._items else None

    def push(self, seq: int, frame: bytes, now: float) -> bool:
        """Store ``frame``; returns ``False`` if it was too large and became a gap marker."""
        stored = len(frame) <= self.max_bytes
        items = self._items
        if items is None:
            items = self._items = deque()
            self._oldest = now
        items.append(seq)
        if stored:
            items.append(frame)
            self.bytes += len(frame)
        else:
            items.append(None)
        items.append(now)
        if self.bytes > self.max_bytes or self._oldest < now - self.max_age:
            self._evict(now)  # only when something is due: this runs once per frame sent
        return stored

    def evict(self, now: float) -> None:
        """Drop entries older than ``max_age``."""
        self._evict(now)

    def _evict(self, now: float) -> None:
        items = self._items
        if items is None:
            return
        cutoff = now - self.max_age
        while items:
            if items[2] >= cutoff and self.bytes <= self.max_bytes:  # type: ignore[operator]
                break
            items.popleft()
            frame = items.popleft()
            items.popleft()
            if frame is not None:
                self.bytes -= len(frame)  # type: ignore[arg-type]
        if items:
            self._oldest = items[2]  # type: ignore[assignment]
        else:
            self._items = None
            self._oldest = 0.0

    def get_after(self, after_seq: int) -> list[tuple[int, bytes]]:
        """The contiguous run of ``(seq, frame)`` with ``seq > after_seq``, up to the first gap."""
        out: list[tuple[int, bytes]] = []
        items = self._items
        if items is None:
            return out
        flat = list(items)
        for i in range(0, len(flat), 3):
            seq, frame = flat[i], flat[i + 1]
            if seq <= after_seq:  # type: ignore[operator]
                continue
            if frame is None:
                break
            out.append((seq, frame))  # type: ignore[arg-type]
        return out

    def clear(self) -> None:
        """Forget everything."""
        self._items = None
        self._oldest = 0.0
        self.bytes = 0


class ReplayBuffer:
    """Text and binary :class:`ReplayLane`\\ s sharing one sequence space.

    ``max_age`` is the server's ``2*ping_interval + reconnect_timeout + 1s`` (frames older than
    that can never be asked for again) or the client's ``reconnect_timeout``.
    """

    __slots__ = ("binary", "text")

    def __init__(self, max_bytes: int, max_bytes_binary: int, max_age: float) -> None:
        self.text = ReplayLane(max_bytes, max_age)
        self.binary = ReplayLane(max_bytes_binary, max_age)

    def push(self, seq: int, frame: bytes, now: float, *, binary: bool = False) -> bool:
        """Store a sent frame in its lane; ``False`` means it became a gap marker."""
        return (self.binary if binary else self.text).push(seq, frame, now)

    def get_after(self, after_seq: int) -> list[bytes]:
        """Frames with ``seq > after_seq`` from both lanes, merged in seq order."""
        t = self.text.get_after(after_seq)
        b = self.binary.get_after(after_seq)
        if not b:
            return [f for _, f in t]
        if not t:
            return [f for _, f in b]
        merged = sorted(t + b, key=lambda e: e[0])
        return [f for _, f in merged]

    def evict(self, now: float) -> None:
        """Drop expired entries from both lanes."""
        self.text.evict(now)
        self.binary.evict(now)

    def next_expiry(self) -> float | None:
        """When the oldest entry expires (``None`` if empty): when to call :meth:`evict`."""
        times = [t for t in (self.text.oldest_time, self.binary.oldest_time) if t is not None]
        return min(times) + self.text.max_age if times else None

    def __len__(self) -> int:
        return len(self.text) + len(self.binary)

    @property
    def bytes(self) -> int:
        """Bytes held in both lanes."""
        return self.text.bytes + self.binary.bytes

    def clear(self) -> None:
        """Forget everything."""
        self.text.clear()
        self.binary.clear()
