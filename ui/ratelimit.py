"""Back-off for wrong passwords, per client address and per account.

Per process, in memory, on purpose: the counters only have to slow a guesser down, and
a restart or a second replica at most doubles the tries an attacker gets (each replica
still applies the same doubling). Sessions, which must agree across replicas, live in
the database instead (``memory.signin``).

Rule: ``max_failures`` wrong passwords are free; after that each further try must wait
``base`` seconds, doubling per failure, at most ``cap``. Counters are forgotten after
``2 × cap`` without a failure; a correct password clears that account's counter (not
the address's, so one's own account cannot be used to reset the guessing budget).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable

__all__ = ["LoginLimiter"]


class LoginLimiter:
    """Failure counters keyed by strings such as ``addr:10.0.0.7`` or ``user:alice``."""

    def __init__(self, max_failures: int = 5, *, base: float = 1.0, cap: float = 900.0,
                 max_keys: int = 10_000, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_failures, self.base, self.cap = max_failures, base, cap
        self.max_keys, self.clock = max_keys, clock
        self._entries: OrderedDict[str, tuple[int, float]] = OrderedDict()  # key → (failures, last)
        self._lock = threading.Lock()

    def _live(self, key: str, now: float) -> tuple[int, float]:
        failures, last = self._entries.get(key, (0, now))
        if now - last > 2 * self.cap:
            self._entries.pop(key, None)
            return 0, now
        return failures, last

    def retry_after(self, *keys: str) -> float:
        """Seconds until any of ``keys`` may try again (0: now)."""
        now = self.clock()
        wait = 0.0
        with self._lock:
            for key in keys:
                failures, last = self._live(key, now)
                if failures >= self.max_failures:
                    delay = min(self.cap, self.base * 2 ** (failures - self.max_failures))
                    wait = max(wait, last + delay - now)
        return max(wait, 0.0)

    def failed(self, *keys: str) -> None:
        now = self.clock()
        with self._lock:
            for key in keys:
                failures, _last = self._live(key, now)
                self._entries[key] = (failures + 1, now)
                self._entries.move_to_end(key)
            while len(self._entries) > self.max_keys:  # a flood of names cannot eat memory
                self._entries.popitem(last=False)

    def succeeded(self, key: str) -> None:
        with self._lock:
            self._entries.pop(key, None)

    def reset(self) -> None:
        with self._lock:
            self._entries.clear()
