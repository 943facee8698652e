"""Response events (pre_request, on_headers, post_request, data_received, data_processed)."""

from __future__ import annotations

from typing import Any

import pytest

import ferryman
from tests.servers.asgi_app import sample_body
from tests.servers.edge import EdgeServer
from tests.servers.httpbin_server import HttpbinServer
from tests.servers.uvicorn_server import UvicornServer


async def test_one_time_events_at_session_level_fire_in_order(httpbin: HttpbinServer) -> None:
    seen: list[tuple[str, Any]] = []

    def pre(request: ferryman.Request, exc: BaseException | None = None) -> None:
        request.headers["X-Pre"] = "added"
        seen.append(("pre_request", request.method))

    async def headers(response: ferryman.Response, exc: BaseException | None = None) -> None:
        assert not exc
        seen.append(("on_headers", response.status_code))

    def post(response: ferryman.Response, exc: BaseException | None = None) -> None:
        seen.append(("post_request", len(response.content)))

    async with ferryman.AsyncClient(trust_env=False) as client:
        client.event("pre_request").bind(pre)
        client.event("on_headers").bind(headers)
        client.event("post_request").bind(post)
        response = await client.get(f"{httpbin.url}/headers")
    assert response.json()["headers"]["X-Pre"] == "added"
    assert seen == [
        ("pre_request", "GET"),
        ("on_headers", 200),
        ("post_request", len(response.content)),
    ]


async def test_post_request_fires_when_the_body_came_with_the_head(edge: EdgeServer) -> None:
    # The edge server writes head and body in one piece: the body is taken without waiting,
    # and post_request must still fire.
    seen: list[int] = []
    async with ferryman.AsyncClient(trust_env=False) as client:
        for _ in range(3):
            response = await client.get(
                f"{edge.url}/echo", post_request=lambda response: seen.append(len(response.content))
            )
    assert seen == [len(response.content)] * 3


async def test_request_level_handlers_add_to_session_ones(httpbin: HttpbinServer) -> None:
    calls: list[str] = []
    async with ferryman.AsyncClient(trust_env=False) as client:
        client.event("on_headers").bind(lambda response: calls.append("session"))
        await client.get(f"{httpbin.url}/get", on_headers=lambda response: calls.append("request"))
        await client.get(f"{httpbin.url}/get")
    assert calls == ["session", "request", "session"]


async def test_unknown_event_name_is_refused() -> None:
    async with ferryman.AsyncClient(trust_env=False) as client:
        with pytest.raises(ValueError, match="on_headers"):
            client.event("on_header")


async def test_events_fire_for_every_hop_of_a_redirect(httpbin: HttpbinServer) -> None:
    statuses: list[int] = []
    async with ferryman.AsyncClient(trust_env=False) as client:
        await client.get(
            f"{httpbin.url}/redirect/2", on_headers=lambda r: statuses.append(r.status_code)
        )
    assert statuses == [302, 302, 200]


async def test_post_request_sees_a_failure(httpbin: HttpbinServer) -> None:
    failures: list[BaseException | None] = []
    async with ferryman.AsyncClient(trust_env=False) as client:
        with pytest.raises(ferryman.ConnectError):
            await client.get(
                "http://127.0.0.1:9/", post_request=lambda r, exc=None: failures.append(exc)
            )
    assert len(failures) == 1
    assert isinstance(failures[0], ferryman.ConnectError)


async def test_data_received_is_raw_and_data_processed_is_decoded(
    uvicorn_server: UvicornServer,
) -> None:
    received: list[bytes] = []
    processed: list[bytes] = []
    async with ferryman.AsyncClient(trust_env=False) as client:
        response = await client.get(
            f"{uvicorn_server.url}/encoded?coding=gzip&lines=3000&pause=0.005",
            data_received=lambda r, data=None: received.append(data),
            data_processed=lambda r, data=None: processed.append(data),
        )
    assert b"".join(received)[:2] == b"\x1f\x8b"
    assert len(received) > 1
    assert b"".join(processed) == sample_body(3000) == response.content


async def test_data_processed_streams_a_body(httpbin: HttpbinServer) -> None:
    chunks: list[bytes] = []
    done: list[int] = []

    async def on_data(response: ferryman.Response, data: bytes | None = None) -> None:
        assert data is not None
        chunks.append(data)

    async with ferryman.AsyncClient(trust_env=False) as client:
        response = await client.get(
            f"{httpbin.url}/stream-bytes/40000",
            params={"chunk_size": 4000},
            stream=True,
            data_processed=on_data,
            post_request=lambda r, exc=None: done.append(r.status_code),
        )
        assert done == []  # not done until the stream is read
        await response.aread()
    assert sum(map(len, chunks)) == 40000
    assert done == [200]


async def test_a_failing_handler_fails_the_request(httpbin: HttpbinServer) -> None:
    def boom(response: ferryman.Response) -> None:
        raise RuntimeError("handler says no")

    async with ferryman.AsyncClient(trust_env=False) as client:
        with pytest.raises(RuntimeError, match="handler says no"):
            await client.get(f"{httpbin.url}/get", on_headers=boom)
        # The connection went back (closed), the client still works.
        assert (await client.get(f"{httpbin.url}/get")).status_code == 200


async def test_unbind(httpbin: HttpbinServer) -> None:
    calls: list[int] = []

    def handler(response: ferryman.Response) -> None:
        calls.append(1)

    async with ferryman.AsyncClient(trust_env=False) as client:
        client.event("on_headers").bind(handler)
        await client.get(f"{httpbin.url}/get")
        assert client.event("on_headers").unbind(handler)
        await client.get(f"{httpbin.url}/get")
    assert calls == [1]
