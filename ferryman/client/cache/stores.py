"""Where stored responses live: :class:`MemoryStore` (an LRU bounded in bytes, the default)
and the interface every store has (:class:`CacheStore`).

A key holds every variant of one resource (the responses ``Vary`` tells apart), so a lookup
is one read. A store is asked in two ways: ``get_now``/``put_now`` without waiting, when
``immediate`` (the proxy's relay answers a hit from its callbacks, with no coroutine), and the
``async`` methods, which every store has. Stores never raise for their own failures: a store
that cannot answer answers "nothing stored" (see :mod:`.redis_store`).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Sequence
from typing import Final

from ferryman.http.caching import CacheEntry

__all__ = ["DEFAULT_MAX_BYTES", "MAX_VARIANTS", "CacheStore", "MemoryStore"]

#: A memory store's default bound: the bytes of every body and head it holds.
DEFAULT_MAX_BYTES: Final = 64 * 1024 * 1024
#: Variants kept under one key (the oldest goes): a ``Vary`` on a field clients fill with
#: anything (User-Agent) must not grow one key without bound.
MAX_VARIANTS: Final = 8


class CacheStore:
    """The interface; subclasses override the ``*_now`` methods (``immediate`` stores) or the
    ``async`` ones. Keys are strings the caller builds (a URL, an endpoint and a target)."""

    #: ``get_now``/``put_now``/``delete_now`` answer without I/O.
    immediate: bool = False

    def get_now(self, key: str) -> list[CacheEntry] | None:
        raise NotImplementedError(f"{type(self).__name__} answers asynchronously only")

    def put_now(self, key: str, entries: Sequence[CacheEntry]) -> None:
        raise NotImplementedError(f"{type(self).__name__} answers asynchronously only")

    def delete_now(self, key: str) -> None:
        raise NotImplementedError(f"{type(self).__name__} answers asynchronously only")

    def holds_nothing(self) -> bool:
        """Whether the store is known to hold no entry at all now, so that a lookup would
        miss (a shared store, which others fill, never knows)."""
        return False

    async def get(self, key: str) -> list[CacheEntry] | None:
        """The variants stored under ``key`` (``None``: nothing, or the store is down)."""
        return self.get_now(key)

    async def put(self, key: str, entries: Sequence[CacheEntry]) -> None:
        """Store ``entries`` as every variant of ``key`` (replacing what was there)."""
        self.put_now(key, entries)

    async def delete(self, key: str) -> None:
        self.delete_now(key)

    async def aclose(self) -> None:
        """Release connections (a network store); the memory store has none."""


class MemoryStore(CacheStore):
    """This process's store: least recently used keys go first once the bodies and heads
    held pass ``max_bytes``; an entry past every rule's use (``keep_until``) goes when met."""

    immediate = True

    def __init__(self, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        if max_bytes <= 0:
            raise ValueError("max_bytes must be positive")
        self.max_bytes = max_bytes
        self.size = 0
        self._items: OrderedDict[str, tuple[list[CacheEntry], int, float]] = OrderedDict()

    def get_now(self, key: str) -> list[CacheEntry] | None:
        item = self._items.get(key)
        if item is None:
            return None
        entries, size, keep_until = item
        if keep_until < time.time():
            del self._items[key]
            self.size -= size
            return None
        self._items.move_to_end(key)
        return entries

    def put_now(self, key: str, entries: Sequence[CacheEntry]) -> None:
        kept = list(entries[-MAX_VARIANTS:])
        size = sum(entry.size() for entry in kept) + len(key)
        self.delete_now(key)
        if not kept or size > self.max_bytes:
            return
        items = self._items
        while self.size + size > self.max_bytes and items:
            _, (_, dropped, _) = items.popitem(last=False)
            self.size -= dropped
        items[key] = (kept, size, max(entry.keep_until() for entry in kept))
        self.size += size

    def delete_now(self, key: str) -> None:
        item = self._items.pop(key, None)
        if item is not None:
            self.size -= item[1]

    def holds_nothing(self) -> bool:
        return not self._items

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"<MemoryStore {len(self._items)} keys, {self.size}/{self.max_bytes} bytes>"
