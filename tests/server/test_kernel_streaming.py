"""The kernel streams bodies both ways: nothing is buffered, under uvicorn or called by hand."""

from __future__ import annotations

import asyncio
import hashlib
import threading
from collections.abc import AsyncIterator, Iterator

import ferryman
from ferryman.events import EventDispatcher
from ferryman.http import AsyncIteratorByteStream, Request, Response, SyncByteStream
from ferryman.server import ASGIKernel, PathPrefixResolver
from tests.server.helpers import ASGICall, Serve, call, http_scope

CHUNK = 64 * 1024
BIG = 50 * 1024 * 1024


def pattern(index: int) -> bytes:
    return index.to_bytes(4, "big") * (CHUNK // 4)


class Producer:
    """A controller streaming ``BIG`` bytes, counting what it has produced (from another thread)."""

    def __init__(self) -> None:
        self.produced = 0
        self._finished = False

    def finished(self) -> bool:
        return self._finished

    async def __call__(self, request: Request) -> Response:
        async def chunks() -> AsyncIterator[bytes]:
            for index in range(BIG // CHUNK):
                self.produced += CHUNK
                yield pattern(index)
            self._finished = True

        return Response(200, stream=AsyncIteratorByteStream(chunks()))


async def test_a_50_mib_body_streams_out_without_being_buffered(
    serve: Serve, client: ferryman.AsyncClient
) -> None:
    producer = Producer()
    server = serve(ASGIKernel(EventDispatcher(), PathPrefixResolver({"/big": producer})))
    expected = hashlib.sha256(b"".join(pattern(i) for i in range(BIG // CHUNK))).hexdigest()
    response = await client.get(f"{server.url}/big", stream=True)
    assert response.headers["transfer-encoding"] == "chunked"
    chunks = response.aiter_bytes()
    first = await anext(chunks)
    # The client holds back: a buffering kernel would have produced everything by now.
    assert first and not producer.finished() and producer.produced < BIG
    digest = hashlib.sha256(first)
    received = len(first)
    async for chunk in chunks:
        digest.update(chunk)
        received += len(chunk)
    assert received == BIG and producer.finished()
    assert digest.hexdigest() == expected


async def test_each_chunk_is_sent_as_it_is_produced() -> None:
    asgi = ASGICall()

    async def chunks() -> AsyncIterator[bytes]:
        for index in range(3):
            asgi.log.append(("produce", index))
            yield b"%d" % index

    async def controller(request: Request) -> Response:
        return Response(200, stream=AsyncIteratorByteStream(chunks()))

    kernel = ASGIKernel(EventDispatcher(), PathPrefixResolver({"/": controller}))
    await kernel(http_scope(), asgi.receive, asgi.send)
    steps = [
        (kind, item["body"] if kind == "send" and "body" in item else item)
        for kind, item in asgi.log
        if kind != "receive"
    ]
    assert steps == [
        ("send", {"type": "http.response.start", "status": 200, "headers": []}),
        ("produce", 0),
        ("send", b"0"),
        ("produce", 1),
        ("send", b"1"),
        ("produce", 2),
        ("send", b"2"),
        ("send", b""),
    ]
    assert [m.get("more_body") for m in asgi.sent[1:]] == [True, True, True, False]


async def test_a_streamed_request_body_reaches_the_controller_in_chunks(
    serve: Serve, client: ferryman.AsyncClient
) -> None:
    got_chunk = threading.Event()
    seen: list[int] = []

    async def count_chunks(request: Request) -> object:
        assert isinstance(request.stream, ferryman.http.AsyncByteStream)
        async for chunk in request.stream:
            seen.append(len(chunk))
            got_chunk.set()
        return {"chunks": len(seen), "size": sum(seen)}

    server = serve(ASGIKernel(EventDispatcher(), PathPrefixResolver({"/upload": count_chunks})))

    async def body() -> AsyncIterator[bytes]:
        for _ in range(3):
            yield b"x" * 1000
            # The next chunk is only sent once the controller has read this one: a kernel that
            # buffered the body before calling the controller would never get here.
            assert await asyncio.to_thread(got_chunk.wait, 10)
            got_chunk.clear()

    response = await client.post(f"{server.url}/upload", content=body())
    assert response.json() == {"chunks": 3, "size": 3000}
    assert seen == [1000, 1000, 1000]


async def test_the_request_body_is_read_only_when_the_controller_asks() -> None:
    asgi = ASGICall(
        [
            {"type": "http.request", "body": b"ab", "more_body": True},
            {"type": "http.request", "body": b"", "more_body": True},
            {"type": "http.request", "body": b"cd", "more_body": False},
        ]
    )

    async def echo(request: Request) -> Response:
        assert isinstance(request.stream, ferryman.http.AsyncByteStream)
        assert asgi.log == []  # nothing read before the controller iterates
        parts = []
        async for chunk in request.stream:
            asgi.log.append(("controller", chunk))
            parts.append(chunk)
        return Response(200, content=b"|".join(parts))

    kernel = ASGIKernel(EventDispatcher(), PathPrefixResolver({"/": echo}))
    await kernel(http_scope(method="POST"), asgi.receive, asgi.send)
    assert [kind for kind, _ in asgi.log[:5]] == [
        "receive",
        "controller",
        "receive",
        "receive",
        "controller",
    ]
    assert asgi.body == b"ab|cd"


async def test_head_requests_do_not_read_a_streamed_body() -> None:
    started: list[bool] = []

    async def chunks() -> AsyncIterator[bytes]:
        started.append(True)
        yield b"never read"

    async def controller(request: Request) -> Response:
        return Response(
            200, stream=AsyncIteratorByteStream(chunks()), headers={"Content-Length": "10"}
        )

    asgi = await call(
        ASGIKernel(EventDispatcher(), PathPrefixResolver({"/": controller})),
        http_scope(method="HEAD"),
    )
    assert asgi.headers[b"content-length"] == b"10"
    assert asgi.body == b"" and started == []


async def test_synchronous_streams_are_sent_too() -> None:
    class Lines(SyncByteStream):
        def __iter__(self) -> Iterator[bytes]:
            yield b"one\n"
            yield b"two\n"

    async def controller(request: Request) -> Response:
        return Response(200, stream=Lines())

    asgi = await call(
        ASGIKernel(EventDispatcher(), PathPrefixResolver({"/": controller})), http_scope()
    )
    assert [m.get("body") for m in asgi.sent[1:]] == [b"one\n", b"two\n", b""]
