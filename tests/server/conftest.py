"""Fixtures for the kernel tests: uvicorn serving an app of the test's choosing, a client."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator

import pytest

import ferryman
from ferryman.server.controllers import ASGIApplication
from tests.server.helpers import UvicornApp


@pytest.fixture
def serve() -> Iterator[Callable[[ASGIApplication], UvicornApp]]:
    """Start uvicorn for an app; every server started is stopped when the test ends."""
    servers: list[UvicornApp] = []

    def start(app: ASGIApplication) -> UvicornApp:
        server = UvicornApp(app).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
async def client() -> AsyncIterator[ferryman.AsyncClient]:
    async with ferryman.AsyncClient(trust_env=False) as client:
        yield client
