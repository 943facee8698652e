"""What a response offers through AsyncClient: metadata, text and JSON, decompression, streams."""

from __future__ import annotations

import datetime
from collections.abc import AsyncIterator

import pytest

import ferryman
from tests.servers.asgi_app import TEXT_SAMPLES, sample_body
from tests.servers.httpbin_server import HttpbinServer
from tests.servers.uvicorn_server import UvicornServer


@pytest.fixture
async def client() -> AsyncIterator[ferryman.AsyncClient]:
    async with ferryman.AsyncClient(trust_env=False) as client:
        yield client


async def test_response_metadata(client: ferryman.AsyncClient, httpbin: HttpbinServer) -> None:
    response = await client.get(f"{httpbin.url}/get", params={"a": "1"})
    assert response.status_code == 200
    assert response.reason == "OK"
    assert response.headers["content-type"] == "application/json"
    assert str(response.url) == f"{httpbin.url}/get?a=1"
    assert response.request.method == "GET"
    assert response.history == []
    assert isinstance(response.elapsed, datetime.timedelta)
    assert response.elapsed.total_seconds() > 0
    assert response.extensions["http_version"] == b"HTTP/1.1"
    assert response.http_version == "HTTP/1.1"
    assert response.json()["args"] == {"a": "1"}
    assert response.content.startswith(b"{")
    assert response.encoding == "utf-8"  # JSON defaults to UTF-8 (RFC 8259)


async def test_raise_for_status(client: ferryman.AsyncClient, httpbin: HttpbinServer) -> None:
    ok = await client.get(f"{httpbin.url}/status/204")
    assert ok.raise_for_status() is ok
    response = await client.get(f"{httpbin.url}/status/418")
    with pytest.raises(ferryman.HTTPStatusError, match="418") as caught:
        response.raise_for_status()
    assert caught.value.response is response
    assert caught.value.request is response.request
    with pytest.raises(ferryman.HTTPStatusError, match="Server error '503"):
        (await client.get(f"{httpbin.url}/status/503")).raise_for_status()


async def test_links(client: ferryman.AsyncClient, httpbin: HttpbinServer) -> None:
    link = (
        '<https://api.example/items?page=2>; rel="next", '
        "<https://api.example/items?page=9>; rel=last"
    )
    response = await client.get(f"{httpbin.url}/response-headers", params={"Link": link})
    assert response.links["next"]["url"] == "https://api.example/items?page=2"
    assert response.links["last"]["url"] == "https://api.example/items?page=9"


async def test_response_cookies(client: ferryman.AsyncClient, httpbin: HttpbinServer) -> None:
    response = await client.get(
        f"{httpbin.url}/cookies/set", params={"flavour": "oat"}, allow_redirects=False
    )
    assert response.cookies["flavour"] == "oat"


@pytest.mark.parametrize("charset", ["cp1252", "shift_jis", "utf-8"])
async def test_text_uses_the_declared_charset(
    client: ferryman.AsyncClient, uvicorn_server: UvicornServer, charset: str
) -> None:
    response = await client.get(f"{uvicorn_server.url}/text?charset={charset}&declare=1")
    assert response.encoding == charset
    assert response.text == TEXT_SAMPLES[charset]


@pytest.mark.parametrize("charset", ["cp1252", "shift_jis", "utf-8"])
async def test_text_detects_an_undeclared_charset(
    client: ferryman.AsyncClient, uvicorn_server: UvicornServer, charset: str
) -> None:
    response = await client.get(f"{uvicorn_server.url}/text?charset={charset}")
    assert response.headers["content-type"] == "text/plain"
    assert response.text == TEXT_SAMPLES[charset]


async def test_default_encoding_is_used_when_the_server_names_none(
    uvicorn_server: UvicornServer,
) -> None:
    async with ferryman.AsyncClient(default_encoding="cp1252", trust_env=False) as client:
        response = await client.get(f"{uvicorn_server.url}/text?charset=cp1252")
        assert response.encoding == "cp1252"
        assert response.text == TEXT_SAMPLES["cp1252"]


@pytest.mark.parametrize("path", ["gzip", "deflate", "brotli"])
async def test_httpbin_compressed_bodies_are_decoded(
    client: ferryman.AsyncClient, httpbin: HttpbinServer, path: str
) -> None:
    response = await client.get(f"{httpbin.url}/{path}")
    assert response.json()[{"gzip": "gzipped", "deflate": "deflated", "brotli": "brotli"}[path]]


@pytest.mark.parametrize("coding", ["zstd", "gzip", "br", "deflate", "gzip, br"])
async def test_streamed_compressed_bodies_are_decoded(
    client: ferryman.AsyncClient, uvicorn_server: UvicornServer, coding: str
) -> None:
    url = f"{uvicorn_server.url}/encoded"
    response = await client.get(url, params={"coding": coding, "lines": 5000})
    assert response.content == sample_body(5000)
    # Streamed: chunks come out decoded as they arrive.
    response = await client.get(
        url, params={"coding": coding, "lines": 5000, "pause": 0.005}, stream=True
    )
    chunks = [chunk async for chunk in response.iter_bytes()]
    assert len(chunks) > 1
    assert b"".join(chunks) == sample_body(5000)


async def test_decompress_false_at_request_and_session_level(
    uvicorn_server: UvicornServer, httpbin: HttpbinServer
) -> None:
    url = f"{uvicorn_server.url}/encoded?coding=gzip&lines=10"
    async with ferryman.AsyncClient(trust_env=False) as client:
        raw = await client.get(url, decompress=False)
        assert raw.content[:2] == b"\x1f\x8b"
        assert (await client.get(url)).content == sample_body(10)
    async with ferryman.AsyncClient(decompress=False, trust_env=False) as client:
        response = await client.get(f"{httpbin.url}/gzip")
        assert response.content[:2] == b"\x1f\x8b"
        with pytest.raises(UnicodeDecodeError):
            response.content.decode("utf-8")
        assert (await client.get(url, decompress=True)).content == sample_body(10)


async def test_corrupt_compressed_body_is_a_decoding_error(
    client: ferryman.AsyncClient, httpbin: HttpbinServer
) -> None:
    with pytest.raises(ferryman.DecodingError):
        await client.get(f"{httpbin.url}/response-headers", params={"Content-Encoding": "gzip"})


async def test_stream_true_returns_after_headers_and_raw_reads_once(
    client: ferryman.AsyncClient, httpbin: HttpbinServer
) -> None:
    response = await client.get(f"{httpbin.url}/stream-bytes/50000", stream=True)
    assert response.status_code == 200
    with pytest.raises(ferryman.ResponseNotRead):
        response.content  # noqa: B018
    data = b"".join([chunk async for chunk in response.raw])
    assert len(data) == 50000
    with pytest.raises(ferryman.StreamConsumedError):
        async for _ in response.raw:
            pass
    response = await client.get(f"{httpbin.url}/bytes/1000", stream=True)
    assert len(await response.raw.read()) == 1000
    with pytest.raises(ferryman.StreamConsumedError):
        await response.raw.read()


async def test_iter_text_and_lines(client: ferryman.AsyncClient, httpbin: HttpbinServer) -> None:
    response = await client.get(f"{httpbin.url}/stream/4", stream=True)
    lines = [line async for line in response.iter_lines()]
    assert len(lines) == 4
    assert all(line.startswith("{") for line in lines)
    response = await client.get(
        f"{httpbin.url}/drip", params={"numbytes": 5, "duration": 0.2}, stream=True
    )
    text = "".join([part async for part in response.iter_text()])
    assert text == "*****"


async def test_streamed_response_releases_its_connection_when_closed(
    client: ferryman.AsyncClient, httpbin: HttpbinServer
) -> None:
    async with await client.get(f"{httpbin.url}/stream-bytes/100000", stream=True) as response:
        assert response.status_code == 200
    assert response.is_closed
    assert (await client.get(f"{httpbin.url}/get")).status_code == 200


async def test_session_stream_default(httpbin: HttpbinServer) -> None:
    async with ferryman.AsyncClient(stream=True, trust_env=False) as client:
        response = await client.get(f"{httpbin.url}/bytes/10")
        assert not response.is_closed
        assert len(await response.aread()) == 10
