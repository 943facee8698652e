"""AsyncClient and Client facing servers that send too much or take too little: response heads
past the limits (``max_response_head_size``, ``max_response_headers``) and in-memory uploads a
server stops reading (the write timeout). Real servers on 127.0.0.1 (issue 21)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

import ferryman
from tests.servers.silent import SilentServer
from tests.servers.slow_upstream import ScriptedUpstream

FIFTY_MB = 50 * 1024 * 1024


@pytest.fixture(scope="module")
def upstream() -> Iterator[ScriptedUpstream]:
    server = ScriptedUpstream().start()
    yield server
    server.stop()


@pytest.fixture
def silent() -> Iterator[SilentServer]:
    server = SilentServer().start()
    yield server
    server.stop()


# -- response heads ------------------------------------------------------------------------------


async def test_the_client_refuses_an_endless_head_and_keeps_no_connection(
    upstream: ScriptedUpstream,
) -> None:
    before = upstream.connections
    async with ferryman.AsyncClient(timeout=30) as client:
        with pytest.raises(ferryman.RemoteProtocolError, match="larger than 65536 bytes"):
            await client.get(upstream.url + "/endless-head?kib=4000000")
        with pytest.raises(ferryman.RemoteProtocolError, match="more than 100 headers"):
            await client.get(upstream.url + "/many-headers?n=200000")
        response = await client.get(upstream.url + "/sized-head?size=65536&fields=100")
        assert response.content == b"ok"
    assert upstream.connections - before == 3


async def test_the_clients_head_limits_are_options(upstream: ScriptedUpstream) -> None:
    async with ferryman.AsyncClient(max_response_headers=None) as client:
        response = await client.get(upstream.url + "/many-headers?n=2000")
        assert len(response.headers.raw) == 2001
        with pytest.raises(ferryman.RemoteProtocolError, match="max_response_head_size"):
            await client.get(upstream.url + "/many-headers?n=20000")
    async with ferryman.AsyncClient(max_response_head_size=200_000) as client:
        response = await client.get(upstream.url + "/sized-head?size=200000")
        assert response.content == b"ok"


def test_the_sync_client_refuses_endless_interim_heads(upstream: ScriptedUpstream) -> None:
    with ferryman.Client(timeout=30) as client:
        with pytest.raises(ferryman.RemoteProtocolError, match="more than 100 headers"):
            client.get(upstream.url + "/many-interim?n=10000000")
        assert client.get(upstream.url + "/early-hints").content == b"final"


# -- the write timeout of in-memory bodies ----------------------------------------------------


@pytest.mark.parametrize("form", ["content", "json", "data"])
async def test_an_upload_the_server_stops_reading_times_out_on_the_write_timeout(
    silent: SilentServer, form: str
) -> None:
    """WriteTimeout after about the write timeout (1 s), as httpx gives, rather than a
    ReadTimeout after the read timeout (10 s)."""
    body: dict[str, Any] = {form: {"blob": "u" * FIFTY_MB}}
    if form == "content":
        body = {"content": b"u" * FIFTY_MB}
    async with ferryman.AsyncClient(timeout=ferryman.Timeout(10, write=1)) as client:
        started = time.monotonic()
        with pytest.raises(ferryman.WriteTimeout):
            await client.post(silent.url + "/upload", **body)
        assert time.monotonic() - started < 5


def test_the_sync_clients_upload_times_out_on_the_write_timeout(silent: SilentServer) -> None:
    with ferryman.Client(timeout=ferryman.Timeout(10, write=1)) as client:
        started = time.monotonic()
        with pytest.raises(ferryman.WriteTimeout):
            client.put(silent.url + "/upload", content=b"u" * FIFTY_MB)
        assert time.monotonic() - started < 5
