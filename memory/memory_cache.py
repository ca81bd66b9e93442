"""The bookkeeping of a process's per-user memory cache: which users it holds, at which
memory generation, how many bytes each costs, least recently used first.

Why bounded: a replica serves many users and every one it ever served stayed in RAM
(10,000 turns cost ~170 MB per replica, never freed). ``LASTMILE_MEMORY_CACHE_MB``
caps the estimate; the least recently used users go first, and an evicted user is
simply loaded again (from Chroma, at the current generation) on their next turn. The
user being served is never evicted, so a single user above the cap still works.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass

__all__ = ["ITEM_OVERHEAD_BYTES", "CacheLedger", "CachedUser"]

#: Bytes a cached item costs beyond its text and vector: the MemoryItem and its dict
#: entries, positions, BM25 tokens and the two built BM25 indexes. Measured with
#: tracemalloc by ``benchmarks/memory_cache.py`` (~1.6 KB at 10,000 turns), rounded up.
ITEM_OVERHEAD_BYTES = 2048


@dataclass
class CachedUser:
    generation: int  # the memory generation the cached state is at (0 without a source)
    nbytes: int = 0


class CacheLedger:
    """LRU order, generations and sizes of the cached users (thread-safe)."""

    def __init__(self, max_bytes: int | None = None) -> None:
        self.max_bytes = max_bytes
        self._users: OrderedDict[str, CachedUser] = OrderedDict()
        self._lock = threading.Lock()
        self.evictions = 0

    def get(self, user_id: str) -> CachedUser | None:
        with self._lock:
            entry = self._users.get(user_id)
            if entry is not None:
                self._users.move_to_end(user_id)
            return entry

    def put(self, user_id: str, generation: int, nbytes: int) -> list[str]:
        """Record a (re)loaded or updated user as most recently used; returns the users
        to evict (least recently used first) to fit the budget, never ``user_id``."""
        with self._lock:
            self._users[user_id] = CachedUser(generation, nbytes)
            self._users.move_to_end(user_id)
            if self.max_bytes is None:
                return []
            total = sum(u.nbytes for u in self._users.values())
            evict = []
            for other, entry in self._users.items():
                if total <= self.max_bytes:
                    break
                if other != user_id:
                    evict.append(other)
                    total -= entry.nbytes
            for other in evict:
                del self._users[other]
            self.evictions += len(evict)
            return evict

    def forget(self, user_id: str) -> None:
        with self._lock:
            self._users.pop(user_id, None)

    @property
    def users(self) -> list[str]:
        """Cached users, least recently used first."""
        with self._lock:
            return list(self._users)

    @property
    def total_bytes(self) -> int:
        with self._lock:
            return sum(u.nbytes for u in self._users.values())
