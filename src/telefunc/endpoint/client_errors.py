"""One rate-limited log line per kind of client misbehaviour, never a traceback.

Anything a client sends may be hostile, so what it triggers must not flood the log: each *kind*
(``"malformed-body"``, ``"origin-refused"``, ``"protocol-violation"``, ...) logs at most one
line per :data:`INTERVAL` seconds on the ``telefunc.client_errors`` logger, and the next line
says how many were suppressed meanwhile. Kinds are a small fixed vocabulary chosen by the code,
never a client-supplied string, so the table of kinds stays bounded.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

__all__ = ["INTERVAL", "ClientErrorLog", "log_client_error"]

logger = logging.getLogger("telefunc.client_errors")

#: Seconds between two lines of the same kind.
INTERVAL = 10.0


class ClientErrorLog:
    """Rate limiter for client-triggered log lines, per kind (injectable clock for tests)."""

    __slots__ = ("_clock", "_interval", "_logger", "_state")

    def __init__(
        self,
        *,
        interval: float = INTERVAL,
        clock: Callable[[], float] = time.monotonic,
        log: logging.Logger = logger,
    ) -> None:
        self._interval = interval
        self._clock = clock
        self._logger = log
        #: kind -> [time of the last line, lines suppressed since]
        self._state: dict[str, list[float]] = {}

    def __call__(self, kind: str, message: str, *args: object) -> bool:
        """Log ``message % args`` at WARNING unless ``kind`` logged within the interval.

        Returns whether a line was written. ``message`` must not contain client payloads
        beyond short, already-truncated descriptions.
        """
        now = self._clock()
        state = self._state.get(kind)
        if state is not None and now - state[0] < self._interval:
            state[1] += 1
            return False
        suppressed = int(state[1]) if state is not None else 0
        self._state[kind] = [now, 0]
        suffix = f" ({suppressed} more suppressed)" if suppressed else ""
        self._logger.warning("[%s] " + message + suffix, kind, *args)
        return True


#: The process-wide limiter every adapter uses.
log_client_error = ClientErrorLog()
