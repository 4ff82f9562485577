"""Flood control for one connection: at most 20 frames a second, sustained (protocol.md)."""

from __future__ import annotations

import time
from collections.abc import Callable


class FloodGuard:
    """A token bucket: ``rate`` frames a second with bursts of ``burst``.

    A frame over the limit is refused; a client that keeps going (``close_after`` refusals
    within ``window`` seconds) is to be disconnected.
    """

    def __init__(
        self,
        *,
        rate: float = 20.0,
        burst: float = 20.0,
        close_after: int = 40,
        window: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rate, self.burst = rate, burst
        self.close_after, self.window = close_after, window
        self._clock = clock
        self._tokens = burst
        self._last = clock()
        self._refusals: list[float] = []

    def allow(self) -> bool:
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
        self._last = now
        if self._tokens >= 1:
            self._tokens -= 1
            return True
        self._refusals = [t for t in self._refusals if now - t < self.window]
        self._refusals.append(now)
        return False

    @property
    def should_close(self) -> bool:
        return len(self._refusals) >= self.close_after
