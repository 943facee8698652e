"""Request bodies from content= / data= / files= / json=, checked by real servers reading them."""

from __future__ import annotations

import asyncio
import email.parser
import email.policy
import gc
import json
import os
import warnings
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import pytest
from hypothesis import given
from hypothesis import strategies as st

import ferryman
from ferryman.exceptions import StreamConsumedError
from ferryman.http import Request
from ferryman.http.content import AwaitingIteratorByteStream, FileByteStream, encode_request
from ferryman.http.multipart import MultipartEncoder
from ferryman.http.streams import (
    EMPTY_STREAM,
    AsyncByteStream,
    AsyncIteratorByteStream,
    ByteStream,
    SyncByteStream,
)
from tests.servers.httpbin_server import HttpbinServer
from tests.servers.slow_upstream import ScriptedUpstream
from tests.servers.uvicorn_server import UvicornServer

BodyParts = tuple[list[tuple[bytes, bytes]], SyncByteStream | AsyncByteStream, int | None]


async def _send(url: str, encoded: BodyParts) -> bytes:
    """POST a body as encode_request framed it: Content-Length when known, else chunked."""
    headers, stream, length = encoded
    headers = list(headers)
    if length is not None:
        headers.append((b"Content-Length", b"%d" % length))
    async with ferryman.AsyncConnectionPool() as pool:
        response = await pool.handle_async_request(
            Request("POST", url, headers=headers, stream=stream)
        )
        body = await response.aread()
    assert response.status_code == 200, body
    return body


async def _httpbin(httpbin: HttpbinServer, encoded: BodyParts) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(await _send(httpbin.url + "/post", encoded))
    return document


async def _echo(uvicorn_server: UvicornServer, encoded: BodyParts) -> tuple[bytes, dict[str, str]]:
    """What uvicorn received: the body bytes and the request headers."""
    echo = json.loads(await _send(uvicorn_server.url + "/echo", encoded))
    return echo["body"].encode("latin-1"), dict(echo["headers"])


async def _read_async(stream: SyncByteStream | AsyncByteStream) -> bytes:
    assert isinstance(stream, AsyncByteStream)
    return b"".join([chunk async for chunk in stream])


def _read_sync(stream: SyncByteStream | AsyncByteStream) -> bytes:
    assert isinstance(stream, SyncByteStream)
    return b"".join(stream)


# -- json ----------------------------------------------------------------------------------------


async def test_json_is_compact_utf8_and_reaches_the_server(httpbin: HttpbinServer) -> None:
    value = {"name": "Zoë", "tags": ["a", "b"], "n": 1.5, "ok": True, "none": None}
    headers, stream, length = encode_request(json=value)
    assert headers == [(b"Content-Type", b"application/json")]
    body = _read_sync(stream)
    assert body == '{"name":"Zoë","tags":["a","b"],"n":1.5,"ok":true,"none":null}'.encode()
    assert length == len(body)
    document = await _httpbin(httpbin, encode_request(json=value))
    assert document["json"] == value
    assert document["headers"]["Content-Type"] == "application/json"


JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner) | st.dictionaries(st.text(), inner),
    max_leaves=20,
)


# json=None means "no JSON body" (as in requests and httpx), so a top-level null is left out.
@given(value=JSON_VALUES.filter(lambda value: value is not None))
def test_any_json_value_round_trips(value: Any) -> None:
    _, stream, length = encode_request(json=value)
    body = _read_sync(stream)
    assert length == len(body)
    assert json.loads(body.decode("utf-8")) == value


@pytest.mark.parametrize("number", [float("nan"), float("inf"), float("-inf")])
def test_nan_and_infinity_are_not_json(number: float) -> None:
    with pytest.raises(ValueError):
        encode_request(json={"x": number})


# -- forms ---------------------------------------------------------------------------------------


async def test_a_form_reaches_the_server(httpbin: HttpbinServer) -> None:
    data = {"q": "a b&c=d", "tag": ["x", "y"], "flag": True, "count": 3, "empty": None}
    headers, stream, length = encode_request(data=data)
    assert headers == [(b"Content-Type", b"application/x-www-form-urlencoded")]
    expected = b"q=a+b%26c%3Dd&tag=x&tag=y&flag=true&count=3&empty="
    assert (_read_sync(stream), length) == (expected, len(expected))
    document = await _httpbin(httpbin, encode_request(data=data))
    assert document["form"] == {
        "q": "a b&c=d",
        "tag": ["x", "y"],
        "flag": "true",
        "count": "3",
        "empty": "",
    }


@given(pairs=st.lists(st.tuples(st.text(min_size=1), st.text())))
def test_form_pairs_round_trip_in_order(pairs: list[tuple[str, str]]) -> None:
    _, stream, length = encode_request(data=pairs)
    body = _read_sync(stream)
    assert length == len(body)
    # parse_qsl cannot tell a lone surrogate from its replacement; st.text() excludes them.
    assert parse_qsl(body.decode("ascii"), keep_blank_values=True) == pairs


def test_an_empty_form_is_an_empty_body() -> None:
    assert encode_request(data={}) == ([], EMPTY_STREAM, 0)


def test_nothing_at_all_is_an_empty_body() -> None:
    assert encode_request() == ([], EMPTY_STREAM, 0)


# -- raw bodies ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("data", "raw"), [(b"\x00raw\xff", b"\x00raw\xff"), ("é", "é".encode())])
async def test_bytes_and_str_data_are_sent_as_they_are(
    httpbin: HttpbinServer, data: bytes | str, raw: bytes
) -> None:
    headers, stream, length = encode_request(data=data)
    assert headers == []  # the caller declares what raw bytes are
    assert (_read_sync(stream), length) == (raw, len(raw))
    document = await _httpbin(httpbin, encode_request(data=data))
    assert document["headers"]["Content-Length"] == str(len(raw))


async def test_content_is_wrapped_as_the_streams_module_does(httpbin: HttpbinServer) -> None:
    headers, stream, length = encode_request(content=b"abc")
    assert headers == []
    assert isinstance(stream, ByteStream)
    assert length == 3
    document = await _httpbin(httpbin, encode_request(content="plain content"))
    assert document["data"] == "plain content"


async def test_a_binary_file_is_sent_with_its_length(
    httpbin: HttpbinServer, tmp_path: Path
) -> None:
    path = tmp_path / "upload.txt"
    path.write_bytes(b"file body " * 20_000)
    with path.open("rb") as upload:
        headers, stream, length = encode_request(data=upload)
        assert headers == []
        assert isinstance(stream, FileByteStream)
        assert length == path.stat().st_size
        document = await _httpbin(httpbin, (headers, stream, length))
        assert document["data"] == path.read_text()
        # Seekable: a retry or redirect can send it again.
        assert _read_sync(stream) == path.read_bytes()


@pytest.fixture(scope="module")
def upstream() -> Iterator[ScriptedUpstream]:
    """Records each request's framing: a Content-Length, or chunked."""
    server = ScriptedUpstream().start()
    yield server
    server.stop()


def _upload(tmp_path: Path) -> Path:
    # Binary, with line breaks: iterating the file would have cut it into lines.
    path = tmp_path / "upload.bin"
    path.write_bytes(bytes(range(256)) * 2000 + b"\n\r\nlast line")
    return path


async def test_content_given_a_file_sends_its_length_not_chunks(
    upstream: ScriptedUpstream, tmp_path: Path
) -> None:
    """content=open(path, "rb") is framed as data=file is, as httpx and requests frame it: S3
    presigned PUTs and many upload endpoints refuse a chunked body."""
    path = _upload(tmp_path)
    size = path.stat().st_size
    with path.open("rb") as upload:
        headers, stream, length = encode_request(content=upload)
        assert (headers, length) == ([], size)
        assert isinstance(stream, FileByteStream)
    async with ferryman.AsyncClient(trust_env=False) as client:
        with path.open("rb") as upload:
            echo = (await client.put(f"{upstream.url}/echo", content=upload)).json()
        with path.open("rb") as upload:
            upload.seek(1000)  # from where the file stands, as data= does
            rest = (await client.put(f"{upstream.url}/echo", content=upload)).json()
    assert echo["chunked"] is False
    assert dict(echo["headers"])["Content-Length"] == str(size)
    assert echo["body"].encode("latin-1") == path.read_bytes()
    assert dict(rest["headers"])["Content-Length"] == str(size - 1000)
    assert rest["body"].encode("latin-1") == path.read_bytes()[1000:]


def test_the_sync_client_and_a_bare_request_frame_a_file_the_same(
    upstream: ScriptedUpstream, tmp_path: Path
) -> None:
    path = _upload(tmp_path)
    size = str(path.stat().st_size)
    with ferryman.Client(trust_env=False) as client, path.open("rb") as upload:
        echo = client.post(f"{upstream.url}/echo", content=upload).json()
    assert (echo["chunked"], dict(echo["headers"])["Content-Length"]) == (False, size)
    with path.open("rb") as upload:
        request = Request("PUT", f"{upstream.url}/echo", content=upload)
        assert request.headers["content-length"] == size
        with ferryman.ConnectionPool() as pool:
            response = pool.handle_request(request)
            echo = json.loads(response.read())
    assert (echo["chunked"], echo["body"].encode("latin-1")) == (False, path.read_bytes())


async def test_a_file_of_unknown_size_still_goes_chunked(upstream: ScriptedUpstream) -> None:
    read_end, write_end = os.pipe()
    with open(write_end, "wb") as writer:
        writer.write(b"from a pipe\n" * 1000)
    async with ferryman.AsyncClient(trust_env=False) as client:
        with open(read_end, "rb") as pipe:
            echo = (await client.put(f"{upstream.url}/echo", content=pipe)).json()
    assert echo["chunked"] is True
    assert echo["body"] == "from a pipe\n" * 1000


# -- streamed bodies -----------------------------------------------------------------------------


async def test_a_generator_is_streamed_chunked(uvicorn_server: UvicornServer) -> None:
    def chunks() -> Iterator[bytes]:
        yield b"one,"
        yield b"two,"
        yield b"three"

    headers, stream, length = encode_request(data=chunks())
    assert (headers, length) == ([], None)
    body, received = await _echo(uvicorn_server, (headers, stream, length))
    assert body == b"one,two,three"
    assert received["transfer-encoding"] == "chunked"
    with pytest.raises(StreamConsumedError):
        _read_sync(stream)


async def test_an_async_generator_is_streamed_chunked(uvicorn_server: UvicornServer) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for word in (b"alpha ", b"beta ", b"gamma"):
            await asyncio.sleep(0)
            yield word

    encoded = encode_request(data=chunks())
    assert isinstance(encoded[1], AsyncIteratorByteStream)
    assert encoded[2] is None
    body, received = await _echo(uvicorn_server, encoded)
    assert body == b"alpha beta gamma"
    assert received["transfer-encoding"] == "chunked"


async def test_a_generator_may_yield_futures_and_coroutines(
    uvicorn_server: UvicornServer,
) -> None:
    loop = asyncio.get_running_loop()

    async def later(value: bytes) -> bytes:
        await asyncio.sleep(0)
        return value

    def chunks() -> Iterator[Any]:
        yield b"one "
        future: asyncio.Future[bytes] = loop.create_future()
        loop.call_soon(future.set_result, b"two ")
        yield future
        yield later(b"three ")
        yield "four"  # str chunks are UTF-8, as everywhere else

    encoded = encode_request(data=chunks())
    assert isinstance(encoded[1], AwaitingIteratorByteStream)
    body, _ = await _echo(uvicorn_server, encoded)
    assert body == b"one two three four"


def test_awaitables_cannot_be_sent_by_plain_code() -> None:
    async def later() -> bytes:
        return b"never"

    def chunks() -> Iterator[Any]:
        yield b"first"
        yield later()

    _, stream, _ = encode_request(data=chunks())
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # "coroutine was never awaited" would be an error
        with pytest.raises(TypeError, match="async client"):
            _read_sync(stream)
        gc.collect()


async def test_a_plain_iterable_reads_the_same_on_both_faces() -> None:
    _, first, _ = encode_request(data=iter([b"a", bytearray(b"b"), "c"]))
    _, second, _ = encode_request(data=iter([b"a", bytearray(b"b"), "c"]))
    assert _read_sync(first) == await _read_async(second) == b"abc"


def test_chunks_of_other_types_are_refused() -> None:
    _, stream, _ = encode_request(data=iter([b"ok", 42]))
    with pytest.raises(TypeError, match="bytes or str"):
        _read_sync(stream)


# -- multipart -----------------------------------------------------------------------------------


async def test_files_with_data_build_a_multipart_body(httpbin: HttpbinServer) -> None:
    data = {"field": "value", "many": ["1", "2"]}
    files = {"upload": ("a.txt", b"file content")}
    headers, stream, length = encode_request(data=data, files=files)
    assert isinstance(stream, MultipartEncoder)
    assert headers == [(b"Content-Type", stream.content_type.encode("ascii"))]
    body = _read_sync(stream)
    assert length == len(body)
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        b"Content-Type: " + headers[0][1] + b"\r\n\r\n" + body
    )
    assert [part.get_payload(decode=True) for part in message.iter_parts()] == [
        b"value",
        b"1",
        b"2",
        b"file content",
    ]
    document = await _httpbin(httpbin, encode_request(data=data, files=files))
    assert document["form"] == {"field": "value", "many": ["1", "2"]}
    assert document["files"] == {"upload": "file content"}


# -- misuse --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "arguments",
    [
        {"content": b"a", "json": {}},
        {"content": b"a", "data": {"a": "b"}},
        {"data": b"raw", "json": [1]},
        {"content": b"a", "data": b"b", "json": 1},
        {"files": {"f": b"x"}, "json": {}},
        {"files": {"f": b"x"}, "content": b"a"},
        {"files": {"f": b"x"}, "data": b"raw"},
    ],
)
def test_more_than_one_body_is_refused(arguments: dict[str, Any]) -> None:
    with pytest.raises(TypeError):
        encode_request(**arguments)


def test_unusable_data_is_refused() -> None:
    with pytest.raises(TypeError, match="data="):
        encode_request(data=42)  # type: ignore[arg-type]
