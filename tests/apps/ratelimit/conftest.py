"""A proxy built from a YAML configuration in the test's loop, and Redis when it is there."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from ferryman.proxy.application import build_kernel
from ferryman.proxy.server import ProxyServer
from ferryman.system import SystemBuilder, load_config
from tests.apps.conftest import stop

REDIS_URL = "redis://127.0.0.1:6379/0"

ServeConfig = Callable[[str], Awaitable[ProxyServer]]


@pytest.fixture
async def serve_config(tmp_path: Path) -> AsyncIterator[ServeConfig]:
    """``await serve_config(yaml)``: a started server for that configuration (ports 0)."""
    servers: list[ProxyServer] = []

    async def start(text: str) -> ProxyServer:
        path = tmp_path / f"ferryman-{len(servers)}.yml"
        path.write_text(text)
        config = load_config([path], env={})
        system = await SystemBuilder(config).build(build_kernel)
        server = ProxyServer(system, host="127.0.0.1")
        await server.start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        await stop(server)


@pytest.fixture
def redis_prefix() -> str:
    """A key prefix of this test's own in the shared Redis (other tests and sessions use it
    too: nothing is flushed). Without Redis the test skips, but fails in CI, which has it."""
    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=1):
            pass
    except OSError:
        if os.environ.get("CI"):
            pytest.fail("Redis is not listening on 127.0.0.1:6379")
        pytest.skip("Redis is not listening on 127.0.0.1:6379")
    return f"ferryman-test:{uuid.uuid4().hex}:"


@pytest.fixture
def dead_port() -> int:
    """A port on 127.0.0.1 where nothing listens (free a moment ago)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port
