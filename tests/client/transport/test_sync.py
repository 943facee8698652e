"""The sync twin: same behaviour from plain code, from threads and beside a running loop."""

from __future__ import annotations

import asyncio
import json
import threading

import pytest

from ferryman import ConnectionPool, ReadTimeout, Request
from tests.servers.edge import EdgeServer, pattern


def test_sync_get_and_stream(edge: EdgeServer) -> None:
    names: list[str] = []
    with ConnectionPool() as pool:
        response = pool.handle_request(
            Request(
                "GET",
                edge.url + "/echo",
                extensions={"trace": lambda name, info: names.append(name)},
            )
        )
        assert json.loads(response.read())["method"] == "GET"
        streamed = pool.handle_request(Request("GET", edge.url + "/big?size=300000"))
        assert b"".join(streamed.iter_bytes()) == pattern(300000)
        assert len(pool.connections) == 1
    assert names[0] == "connection.connect_tcp.started"


def test_sync_upload_from_generator(edge: EdgeServer) -> None:
    with ConnectionPool() as pool:
        response = pool.handle_request(
            Request("POST", edge.url + "/echo", content=iter([b"a", b"b"]))
        )
        assert json.loads(response.read())["body"] == "ab"


def test_sync_timeout(edge: EdgeServer) -> None:
    with ConnectionPool() as pool, pytest.raises(ReadTimeout):
        pool.handle_request(
            Request("GET", edge.url + "/slow-head?delay=1", extensions={"timeout": {"read": 0.1}})
        )


def test_sync_pool_from_threads(edge: EdgeServer) -> None:
    results: list[int] = []
    with ConnectionPool() as pool:

        def worker() -> None:
            for _ in range(5):
                response = pool.handle_request(Request("GET", edge.url + "/echo"))
                response.read()
                results.append(response.status_code)

        threads = [threading.Thread(target=worker) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert results == [200] * 20


def test_sync_pool_inside_a_running_loop(edge: EdgeServer) -> None:
    async def main() -> int:
        with ConnectionPool() as pool:
            response = pool.handle_request(Request("GET", edge.url + "/echo"))
            response.read()
            return response.status_code

    assert asyncio.run(main()) == 200
