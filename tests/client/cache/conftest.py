"""Fixtures for the client cache tests: the scripted origin, a fresh path per test, Redis."""

from __future__ import annotations

import itertools
import socket
from collections.abc import AsyncIterator, Iterator

import pytest

from ferryman.client.cache import RedisStore
from tests.servers.cache_origin import CacheOrigin

_paths = itertools.count()
REDIS_URL = "redis://127.0.0.1:6379/0"


@pytest.fixture(scope="module")
def origin() -> Iterator[CacheOrigin]:
    server = CacheOrigin().start()
    yield server
    server.stop()


@pytest.fixture
def path() -> str:
    """A path no other test used: what one test stores, another cannot hit."""
    return f"/resource-{next(_paths)}-{id(object())}"


def redis_available() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=0.5):
            return True
    except OSError:
        return False


@pytest.fixture
async def redis_store() -> AsyncIterator[RedisStore]:
    """A store on the Redis at 127.0.0.1:6379, under a prefix of its own (cleared after)."""
    if not redis_available():
        pytest.fail(
            "these tests need Redis on 127.0.0.1:6379 (the machine starts one; `redis-server "
            "--daemonize yes --port 6379` starts it again)"
        )
    prefix = f"ferryman-test:{id(object())}:"
    store = RedisStore(REDIS_URL, prefix=prefix, timeout=2.0)
    yield store
    client = store._redis()
    keys = [key async for key in client.scan_iter(match=prefix + "*")]
    if keys:
        await client.delete(*keys)
    await store.aclose()


@pytest.fixture
def refused_redis_url() -> str:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"redis://127.0.0.1:{port}/0"
