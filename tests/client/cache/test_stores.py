"""The memory store's bound holds for what Python really holds, whatever fills it."""

from __future__ import annotations

import gc
import time
import tracemalloc

import pytest

from ferryman.client.cache import MemoryStore
from ferryman.http.caching import CachePolicy

#: What the store may hold beyond ``max_bytes`` in Python's own bookkeeping (measured ~1.1).
SLACK = 1.3


@pytest.mark.parametrize(("fields", "body"), [(1, 1), (4, 1), (16, 1)])
def test_many_distinct_keys_stay_within_max_bytes(fields: int, body: int) -> None:
    # A client asking for many distinct targets of an API whose answers are small and
    # cacheable fills the store with entries whose objects outweigh their bytes: the store
    # held 3.6 times its bound when it counted the bytes alone.
    policy = CachePolicy()
    request = policy.request(b"GET", [(b"Host", b"proxy.test")])
    assert request is not None
    headers = [(b"Cache-Control", b"max-age=60")]
    headers += [(b"X-Field-%d" % i, b"a value of some length") for i in range(fields - 1)]
    store = MemoryStore(1 << 19)
    gc.collect()
    tracemalloc.start()
    try:
        for index in range(3_000):
            now = time.time()
            entry = policy.store(request, 200, b"OK", list(headers), now, now)
            assert entry is not None
            entry.body = b"x" * body
            entry.header_lines()  # (built by the relay's first hit, and kept)
            store.put_now(f"api\x00proxy.test\x00/item/{index}", [entry])
        del entry
        gc.collect()
        held, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert 0 < len(store) < 3_000  # (full: the least recently used went)
    assert held <= SLACK * store.max_bytes
