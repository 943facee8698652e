"""The ASGI bridge: requests built from scopes, request bodies read from ``receive``, responses
sent as ASGI messages."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import unquote

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ferryman.exceptions import InvalidURL, ReadError, StreamConsumedError
from ferryman.http import AsyncIteratorByteStream, Response
from ferryman.http.streams import EMPTY_STREAM
from ferryman.http.url import URL
from ferryman.server.asgi import ReceiveStream, request_from_scope, send_response
from ferryman.server.controllers import Message
from tests.server.helpers import ASGICall, http_scope

UNRESERVED = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~"
# Path characters a client may send unescaped, and escapes that must be kept byte for byte.
segments = st.lists(
    st.one_of(
        st.text(alphabet=UNRESERVED + "!$&'()*+,;=:@", min_size=1, max_size=8),
        st.sampled_from(["%2F", "%20", "%C3%A9", "%7e", "%25"]),
    ),
    max_size=6,
)
queries = st.lists(
    st.one_of(
        st.text(alphabet=UNRESERVED + "=&+:@/?", min_size=1, max_size=8),
        st.sampled_from(["%26", "%3D", "%E2%82%AC"]),
    ),
    max_size=5,
).map("".join)


def build(scope: dict[str, Any], urls: dict[tuple[object, ...], URL] | None = None) -> Any:
    return request_from_scope(scope, EMPTY_STREAM, {} if urls is None else urls)


@given(parts=segments, query=queries)
def test_the_url_keeps_the_target_exactly_as_received(parts: list[str], query: str) -> None:
    raw_path = ("/" + "/".join(parts)).encode()
    scope = http_scope(unquote(raw_path.decode()), query=query.encode(), raw_path=raw_path)
    url = build(scope).url
    assert url.raw_path == raw_path + (b"?" + query.encode() if query else b"")
    assert url.path == unquote(raw_path.decode())
    assert (url.scheme, url.host, url.port) == ("http", "127.0.0.1", 8000)


@given(path=st.text(min_size=0, max_size=20).map(lambda text: "/" + text))
def test_without_raw_path_the_decoded_path_is_escaped_back(path: str) -> None:
    scope = http_scope(path)
    del scope["raw_path"]
    assert build(scope).url.path == path


def test_the_site_comes_from_the_server_or_the_host_header() -> None:
    ipv6 = build(http_scope("/x", server=("::1", 8443), scheme="https")).url
    assert (str(ipv6), ipv6.host, ipv6.port) == ("https://[::1]:8443/x", "::1", 8443)
    urls: dict[tuple[object, ...], URL] = {}
    first = build(http_scope("/", server=None, headers=[(b"host", b"a.test")]), urls).url
    second = build(http_scope("/", server=None, headers=[(b"host", b"b.test:81")]), urls).url
    assert (str(first), str(second)) == ("http://a.test/", "http://b.test:81/")
    assert str(build(http_scope("/", server=None, headers=[])).url) == "http://localhost/"


def test_parsed_urls_are_cached_and_the_cache_is_bounded() -> None:
    urls: dict[tuple[object, ...], URL] = {}
    first = build(http_scope("/same", query=b"a=1"), urls)
    assert build(http_scope("/same", query=b"a=1"), urls).url is first.url
    assert build(http_scope("/same", query=b"a=2"), urls).url is not first.url
    for index in range(3000):
        build(http_scope(f"/{index}"), urls)
        assert len(urls) <= 1024


def test_a_target_that_is_not_a_url_is_refused() -> None:
    with pytest.raises(InvalidURL):
        build(http_scope("*", method="OPTIONS"))


def test_method_headers_and_scope_are_kept_as_received() -> None:
    headers = [(b"host", b"127.0.0.1:8000"), (b"x-b", b"2"), (b"X-A", b"1"), (b"x-b", b"3")]
    scope = http_scope("/", method="DELETE", headers=headers)
    request = build(scope)
    assert request.method == "DELETE"
    assert request.headers.raw == headers
    assert request.headers.get_list("x-b") == ["2", "3"]
    assert request.extensions["asgi_scope"] is scope
    request.headers["X-New"] = "1"
    assert len(scope["headers"]) == 4  # the request owns a copy


@pytest.mark.parametrize(
    ("http_version", "method", "received", "added"),
    [
        ("1.1", "POST", [], [(b"Content-Length", b"0")]),  # HTTP/1.1: no framing, empty body
        ("1.1", "POST", [(b"content-length", b"5")], []),
        ("1.1", "PUT", [(b"transfer-encoding", b"chunked")], []),
        ("1.1", "GET", [], []),
        ("2", "POST", [], [(b"Transfer-Encoding", b"chunked")]),  # HTTP/2: length unknown
        ("2", "POST", [(b"content-length", b"5")], []),
        ("2", "GET", [], []),
    ],
)
def test_framing_headers_only_make_the_received_framing_explicit(
    http_version: str,
    method: str,
    received: list[tuple[bytes, bytes]],
    added: list[tuple[bytes, bytes]],
) -> None:
    headers = [(b"host", b"h"), *received]
    request = build(http_scope("/", method=method, headers=headers, http_version=http_version))
    assert request.headers.raw == headers + added


def test_a_websocket_scope_is_a_get_on_a_ws_url() -> None:
    scope = http_scope("/chat", type="websocket", scheme="ws")
    del scope["method"]
    request = build(scope)
    assert (request.method, str(request.url)) == ("GET", "ws://127.0.0.1:8000/chat")


# -- request bodies ------------------------------------------------------------------------------


async def test_the_request_body_is_each_message_in_turn() -> None:
    asgi = ASGICall(
        [
            {"type": "http.request", "body": b"a", "more_body": True},
            {"type": "http.request", "more_body": True},
            {"type": "http.request", "body": b"b"},
        ]
    )
    stream = ReceiveStream(asgi.receive)
    assert [chunk async for chunk in stream] == [b"a", b"b"]
    with pytest.raises(StreamConsumedError):
        await stream.aread()
    assert repr(stream) == "<ReceiveStream>"
    assert await ReceiveStream(ASGICall().receive).aread() == b""


async def test_a_disconnect_before_the_end_of_the_body_is_a_read_error() -> None:
    asgi = ASGICall([{"type": "http.request", "body": b"a", "more_body": True}])
    with pytest.raises(ReadError, match="disconnected"):
        await ReceiveStream(asgi.receive).aread()


# -- responses -------------------------------------------------------------------------------------


async def test_an_in_memory_body_is_one_message_with_lower_case_names() -> None:
    asgi = ASGICall()
    await send_response(Response(201, content=b"done", headers={"X-Trace": "t1"}), asgi.send)
    assert asgi.sent == [
        {
            "type": "http.response.start",
            "status": 201,
            "headers": [(b"x-trace", b"t1"), (b"content-length", b"4")],
        },
        {"type": "http.response.body", "body": b"done"},
    ]


async def test_a_read_response_is_sent_from_its_content() -> None:
    async def parts() -> AsyncIterator[bytes]:
        yield b"al"
        yield b"ready"

    response = Response(200, stream=AsyncIteratorByteStream(parts()))
    assert await response.aread() == b"already"
    asgi = ASGICall()
    await send_response(response, asgi.send)
    assert asgi.body == b"already"
    assert asgi.sent[-1] == {"type": "http.response.body", "body": b"", "more_body": False}


async def test_the_body_stream_is_closed_when_sending_fails() -> None:
    closed: list[bool] = []

    async def parts() -> AsyncIterator[bytes]:
        try:
            while True:
                yield b"x"
        finally:
            closed.append(True)

    async def send(message: Message) -> None:
        if message.get("body"):
            raise ConnectionResetError("client gone")

    with pytest.raises(ConnectionResetError):
        await send_response(Response(200, stream=AsyncIteratorByteStream(parts())), send)
    assert closed == [True]
