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


@pytest.mark.parametrize(
    ("fields", "body", "varied"), [(1, 1, 0), (4, 1, 0), (16, 1, 0), (2, 1, 8000)]
)
def test_many_distinct_keys_stay_within_max_bytes(fields: int, body: int, varied: int) -> None:
    # A client asking for many distinct targets of an API whose answers are small and
    # cacheable fills the store with entries whose objects outweigh their bytes: the store
    # held 3.6 times its bound when it counted the bytes alone.
    # ``varied``: the answers vary on a request field the client filled (8 KB of User-Agent).
    policy = CachePolicy()
    headers = [(b"Cache-Control", b"max-age=60")]
    if varied:
        headers.append((b"Vary", b"User-Agent"))
    headers += [(b"X-Field-%d" % i, b"a value of some length") for i in range(fields - 1)]
    store = MemoryStore(1 << 19)
    gc.collect()
    tracemalloc.start()
    try:
        for index in range(3_000):
            agent = b"%d" % index + b"u" * varied  # (each request's own bytes)
            request = policy.request(b"GET", [(b"Host", b"proxy.test"), (b"User-Agent", agent)])
            assert request is not None
            now = time.time()
            entry = policy.store(request, 200, b"OK", list(headers), now, now)
            assert entry is not None
            entry.body = b"x" * body
            entry.header_lines()  # (built by the relay's first hit, and kept)
            store.put_now(f"api\x00proxy.test\x00/item/{index}", [entry])
        del entry, request, agent
        gc.collect()
        held, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert 0 < len(store) < 3_000  # (full: the least recently used went)
    assert held <= SLACK * store.max_bytes
