"""The code examples of ``../shared/reference/pulsar-http-client.txt``, run on ferryman.

Each example is copied as the document gives it, its section named above it; only the imports
(``pulsar.apps`` becomes ``ferryman.compat.pulsar``) and the hosts change: the public hosts are
the test servers on 127.0.0.1 (httpbin, the edge-case server, the TLS ones whose CA is trusted
through ``SSL_CERT_FILE``, the WebSocket server). Examples the document writes without
``await`` run in plain test functions, where pulsar's client runs synchronously (its loop is
not running); examples written in a coroutine run in async tests. Each test then asserts what
the document says the example does.
"""

from __future__ import annotations

import asyncio
import base64
import gzip
import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trustme
from oauthlib import common as oauthlib_common
from oauthlib import oauth1 as oauthlib_oauth1
from oauthlib.oauth1.rfc5849 import signature as oauth1_signature

import ferryman
from ferryman.compat.pulsar import http, ws
from ferryman.compat.pulsar.http import HTTPBasicAuth, HttpClient, HTTPDigestAuth
from ferryman.compat.pulsar.http.oauth import OAuth1, OAuth2
from tests.servers.edge import EdgeServer
from tests.servers.httpbin_server import HttpbinServer
from tests.servers.ws_echo import WsEchoServer


@pytest.fixture
def sessions() -> Iterator[HttpClient]:
    sessions = http.HttpClient()
    yield sessions
    sessions.close()


def sent_headers(response: Any) -> dict[str, str]:
    """What httpbin saw of the request headers."""
    return response.json()["headers"]  # type: ignore[no-any-return]


# -- Getting Started


async def test_getting_started_in_a_coroutine(httpbin: HttpbinServer) -> None:
    sessions = http.HttpClient()

    async def mycoroutine() -> str:
        ...
        response = await sessions.get(f"{httpbin.url}/html")
        return response.text()

    text = await mycoroutine()
    assert "Herman Melville" in text
    await sessions.close()


async def test_the_response_holds_the_request_and_the_result(
    httpbin: HttpbinServer, capsys: pytest.CaptureFixture[str]
) -> None:
    sessions = http.HttpClient()
    response = await sessions.get(f"{httpbin.url}/get")
    request = response.request
    print(request.headers)
    assert response.status_code == 200
    print(response.headers)
    lines = capsys.readouterr().out.splitlines()
    # The request's headers, one "Name: value" per line, pulsar's four among them.
    assert "Connection: Keep-Alive" in lines
    assert f"User-Agent: {sessions.client_version}" in lines
    assert "Accept-Encoding: deflate" in lines and "Accept-Encoding: gzip" in lines
    assert "Accept: */*" in lines
    # "The request attribute of HttpResponse is an instance of the original HttpRequest."
    assert isinstance(request, http.HttpRequest)
    assert request.method == "GET" and request.url == f"{httpbin.url}/get"
    assert sent_headers(response)["Connection"] == "Keep-Alive"
    await sessions.close()


# -- Passing Parameters In URLs


def test_params_are_added_to_the_url(sessions: HttpClient, httpbin: HttpbinServer) -> None:
    response = sessions.get(f"{httpbin.url}/get", params={"page": 2, "key": "foo"})
    assert response.url == f"{httpbin.url}/get?page=2&key=foo"
    assert response.json()["args"] == {"page": "2", "key": "foo"}


def test_a_list_of_values_repeats_the_parameter(
    sessions: HttpClient, httpbin: HttpbinServer
) -> None:
    params = {"key1": "value1", "key2": ["value2", "value3"]}
    response = sessions.get(f"{httpbin.url}/get", params=params)
    assert response.url == f"{httpbin.url}/get?key1=value1&key2=value2&key2=value3"


# -- Post data


def test_simple_data_is_a_form(sessions: HttpClient, httpbin: HttpbinServer) -> None:
    response = sessions.post(f"{httpbin.url}/post", data={"entry1": "bla", "entry2": "doo"})
    assert response.json()["form"] == {"entry1": "bla", "entry2": "doo"}


def test_json_data(sessions: HttpClient, httpbin: HttpbinServer) -> None:
    response = sessions.post(f"{httpbin.url}/post", json={"entry1": "bla", "entry2": "doo"})
    assert response.json()["json"] == {"entry1": "bla", "entry2": "doo"}
    assert sent_headers(response)["Content-Type"] == "application/json"


def test_files_are_multipart_encoded(
    sessions: HttpClient, httpbin: HttpbinServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    Path("report.xls").write_bytes(b"quarter,total\nq3,42\n")
    files = {"file": open("report.xls", "rb")}  # noqa: SIM115 (as the document writes it)
    response = sessions.post(f"{httpbin.url}/post", files=files)
    files["file"].close()
    assert response.json()["files"] == {"file": "quarter,total\nq3,42\n"}
    assert sent_headers(response)["Content-Type"].startswith("multipart/form-data; boundary=")


# (Streamed bodies go to the edge server: httpbin's WSGI server reads no chunked body.)


def test_streaming_data_from_a_generator(sessions: HttpClient, edge: EdgeServer) -> None:
    response = sessions.post(f"{edge.url}/echo", data=(b"blabla" for _ in range(10)))
    assert response.json()["body"] == "blabla" * 10
    assert ["Transfer-Encoding", "chunked"] in response.json()["headers"]


def test_streaming_data_mixing_bytes_and_futures(sessions: HttpClient, edge: EdgeServer) -> None:
    def stream() -> Iterator[Any]:
        fut = asyncio.Future()  # type: ignore[var-annotated]
        asyncio.get_event_loop().call_later(1, fut.set_result, b"two")
        yield b"one"
        yield fut
        yield b"three"

    response = sessions.post(f"{edge.url}/echo", data=stream())
    assert response.json()["body"] == "onetwothree"


# -- Authentication


def test_basic_auth_as_a_tuple_and_as_a_class(sessions: HttpClient, httpbin: HttpbinServer) -> None:
    url = f"{httpbin.url}/basic-auth/username/password"
    response = sessions.get(url, auth=("username", "password"))
    assert response.json() == {"authenticated": True, "user": "username"}

    response = sessions.get(url, auth=HTTPBasicAuth("username", "password"))
    assert response.json() == {"authenticated": True, "user": "username"}
    token = base64.b64encode(b"username:password").decode()
    assert response.request.get_header("Authorization") == f"Basic {token}"
    assert sessions.get(url, auth=HTTPBasicAuth("username", "wrong")).status_code == 401


def test_digest_auth(sessions: HttpClient, httpbin: HttpbinServer) -> None:
    url = f"{httpbin.url}/digest-auth/auth/username/password"
    response = sessions.get(url, auth=HTTPDigestAuth("username", "password"))
    assert response.status_code == 200
    assert response.json() == {"authenticated": True, "user": "username"}
    assert response.request.get_header("Authorization").startswith("Digest ")


# -- TLS/SSL


def test_tls_out_of_the_box(
    sessions: HttpClient, tls_edge: EdgeServer, trusted_test_ca: str
) -> None:
    response = sessions.get(f"https://localhost:{tls_edge.port}/timeline.json")
    assert response.status_code == 200
    assert response.json()["target"] == "/timeline.json"


def test_verify_is_true_by_default_and_can_be_turned_off(tls_edge: EdgeServer) -> None:
    sessions = HttpClient()
    assert sessions.verify is True
    sessions = HttpClient(verify=False)
    assert sessions.verify is False
    # Not trusted: verification fails unless turned off.
    assert sessions.get(f"https://localhost:{tls_edge.port}/").status_code == 200
    sessions.close()
    with pytest.raises(ferryman.ConnectError, match="certificate"):
        HttpClient().get(f"https://localhost:{tls_edge.port}/")


def test_verify_per_request_and_with_a_ca_bundle(
    sessions: HttpClient, tls_edge: EdgeServer, ca_bundle: str
) -> None:
    with pytest.raises(ferryman.ConnectError, match="certificate"):
        sessions.get(f"https://localhost:{tls_edge.port}/")
    assert sessions.get(f"https://localhost:{tls_edge.port}", verify=False).status_code == 200
    response = sessions.get(f"https://localhost:{tls_edge.port}", verify=ca_bundle)
    assert response.status_code == 200


def test_client_side_certificates(
    sessions: HttpClient, mtls_edge: EdgeServer, ca: trustme.CA, ca_bundle: str, tmp_path: Path
) -> None:
    client_cert = ca.issue_cert("pulsar-client@example.test")
    cert_path, key_path = tmp_path / "client.cert", tmp_path / "client.key"
    cert_path.write_bytes(b"".join(blob.bytes() for blob in client_cert.cert_chain_pems))
    key_path.write_bytes(client_cert.private_key_pem.bytes())
    url = f"https://localhost:{mtls_edge.port}/echo"
    response = sessions.get(url, cert=(str(cert_path), str(key_path)), verify=ca_bundle)
    assert response.json()["client_cert"]  # the server saw the certificate

    both = tmp_path / "client.pem"
    both.write_bytes(client_cert.private_key_and_cert_chain_pem.bytes())
    s = HttpClient(cert=str(both), verify=ca_bundle)
    assert s.cert == str(both)
    assert s.get(url).json()["client_cert"]
    s.close()


# -- Streaming / The raw stream


async def test_the_raw_stream_is_iterated_once(edge: EdgeServer) -> None:
    sessions = http.HttpClient()
    chunks: list[bytes] = []

    async def body_coroutine(url: str) -> None:
        # wait for response headers
        response = await sessions.get(url, stream=True)
        #
        async for data in response.raw:
            # data is a chunk of bytes
            chunks.append(data)
        with pytest.raises(http.StreamConsumedError):
            async for _data in response.raw:
                pass

    await body_coroutine(f"{edge.url}/chunked?n=4")
    assert b"".join(chunks) == b"chunk0;chunk1;chunk2;chunk3;"
    await sessions.close()


async def test_the_raw_stream_read_at_once(edge: EdgeServer) -> None:
    sessions = http.HttpClient()
    response = await sessions.get(f"{edge.url}/chunked?n=3", stream=True)
    assert await response.raw.read() == b"chunk0;chunk1;chunk2;"
    await sessions.close()


# -- Streaming / Data processed hook


def test_data_processed_hook_receives_the_body_as_it_comes(
    sessions: HttpClient, edge: EdgeServer
) -> None:
    received: list[bytes] = []

    def new_data(response: Any, **kw: Any) -> None:
        if response.status_code == 200:
            data = response.recv_body()
            # do something with this data
            received.append(data)

    response = sessions.get(f"{edge.url}/big?size=3000000", data_processed=new_data)
    assert len(received) > 1  # in pieces, as they came
    assert b"".join(received) == response.content
    assert response.recv_body() == b""  # each byte once: it was flushed


# -- WebSocket


async def test_a_websocket_handler_echoes_what_the_server_sends(ws_server: WsEchoServer) -> None:
    class Echo(ws.WS):
        def on_message(self, websocket: Any, message: Any) -> None:
            websocket.write(message)

    sessions = http.HttpClient()
    # (named ws_: ``ws`` is the imported module the handler class needs)
    ws_ = await sessions.get(f"{ws_server.url}/greet?greeting=hi", websocket_handler=Echo())
    assert await asyncio.to_thread(ws_server.replies.get, timeout=5) == "hi"
    await asyncio.wait_for(ws_.wait_closed(), 5)
    assert ws_.close_code == 1000
    await sessions.close()


# -- Client Options / Pool size


async def test_pool_size_bounds_the_connections_to_a_host(edge: EdgeServer) -> None:
    sessions = http.HttpClient(pool_size=2)
    assert sessions.pool_size == 2
    before = edge.connections
    responses = await asyncio.gather(
        *(sessions.get(f"{edge.url}/slow-head?delay=0.2") for _ in range(5))
    )
    assert [r.status_code for r in responses] == [200] * 5
    assert edge.connections - before == 2
    assert list(sessions.connection_pools) == [f"http://127.0.0.1:{edge.port}"]
    await sessions.close()
    assert sessions.connection_pools == {}


# -- Client Options / Redirects


async def test_redirects_are_followed_and_kept_in_history(httpbin: HttpbinServer) -> None:
    sessions = http.HttpClient()
    url = f"{httpbin.url}/redirect-to?url=/get&status_code=301"
    response = await sessions.get(url)
    assert response.status_code == 200  # 200
    assert repr(response.history) == "[<Response [301]>]"  # [<Response [301]>]

    response = await sessions.get(url, allow_redirects=False)
    assert response.status_code == 301  # 301
    assert response.history == []  # []

    # "for all verbs except HEAD"
    assert (await sessions.head(url)).status_code == 301
    await sessions.close()


# -- Client Options / Decompression


async def test_decompress_false_leaves_the_body_compressed(httpbin: HttpbinServer) -> None:
    sessions = http.HttpClient()
    response = await sessions.get(f"{httpbin.url}/gzip", decompress=False)
    assert response.status_code == 200  # 200
    with pytest.raises(UnicodeDecodeError, match="can't decode byte 0x8b in position 1"):
        response.text()
    assert json.loads(gzip.decompress(response.content))["gzipped"] is True
    # Decompression is automatic otherwise.
    assert (await sessions.get(f"{httpbin.url}/gzip")).json()["gzipped"] is True
    await sessions.close()


async def test_decompress_false_at_session_level(httpbin: HttpbinServer) -> None:
    sessions = HttpClient(decompress=False)
    response = await sessions.get(f"{httpbin.url}/gzip")
    assert response.status_code == 200  # 200
    with pytest.raises(UnicodeDecodeError, match="can't decode byte 0x8b in position 1"):
        response.text()
    await sessions.close()


# -- Client Options / Synchronous Mode


def test_synchronous_mode_on_a_new_thread(httpbin: HttpbinServer) -> None:
    results: list[Any] = []

    def in_a_thread() -> None:
        sessions = HttpClient(loop=asyncio.new_event_loop())
        results.append(sessions.get(f"{httpbin.url}/get").status_code)
        sessions.close()

    thread = threading.Thread(target=in_a_thread)
    thread.start()
    thread.join(10)
    assert results == [200]


def test_synchronous_mode_when_the_loop_did_not_start(httpbin: HttpbinServer) -> None:
    sessions = HttpClient()
    response = sessions.get(f"{httpbin.url}/get")
    assert isinstance(response, http.HttpResponse) and response.status_code == 200
    sessions.close()
    # Closed, it still works (pulsar's close() only closed the connections).
    assert sessions.get(f"{httpbin.url}/get").status_code == 200
    sessions.close()


# -- Events / One time events


def test_on_headers_at_session_level_and_at_request_level(
    sessions: HttpClient, httpbin: HttpbinServer, capsys: pytest.CaptureFixture[str]
) -> None:
    def myheader_handler(response: Any, exc: Any = None) -> None:
        if not exc:
            print("got headers!")

    sessions.event("on_headers").bind(myheader_handler)
    sessions.get(f"{httpbin.url}/get")
    assert capsys.readouterr().out == "got headers!\n"

    sessions.event("on_headers").unbind(myheader_handler)
    sessions.get(f"{httpbin.url}/get", on_headers=myheader_handler)
    assert capsys.readouterr().out == "got headers!\n"


def test_one_time_events_receive_the_response(sessions: HttpClient, httpbin: HttpbinServer) -> None:
    seen: list[tuple[str, Any, Any]] = []

    def pre(response: Any, exc: Any = None) -> None:
        # "pre_request, fired before the request is sent ... receive the response argument."
        seen.append(("pre_request", response, response.status_code))
        response.request.add_header("X-Added", "before sending")
        response.request.remove_header("Accept")

    def headers(response: Any, exc: Any = None) -> None:
        seen.append(("on_headers", response, response.status_code))

    def post(response: Any, exc: Any = None) -> None:
        seen.append(("post_request", response, len(response.content)))

    response = sessions.get(
        f"{httpbin.url}/headers", pre_request=pre, on_headers=headers, post_request=post
    )
    assert [(name, value) for name, _, value in seen] == [
        ("pre_request", None),
        ("on_headers", 200),
        ("post_request", len(response.content)),
    ]
    assert all(face is response for _, face, _ in seen)  # one object, as pulsar's
    assert sent_headers(response)["X-Added"] == "before sending"
    assert "Accept" not in sent_headers(response)


# -- Events / Many time events


def test_data_received_is_raw_and_data_processed_decoded(
    sessions: HttpClient, httpbin: HttpbinServer
) -> None:
    received: list[bytes] = []
    processed: list[bytes] = []

    def on_received(response: Any, data: Any = None) -> None:
        received.append(data)

    def on_processed(response: Any, data: Any = None) -> None:
        processed.append(data)

    response = sessions.get(
        f"{httpbin.url}/gzip", data_received=on_received, data_processed=on_processed
    )
    assert gzip.decompress(b"".join(received)) == b"".join(processed) == response.content


# -- API: HttpClient


def test_the_clients_attributes(httpbin: HttpbinServer) -> None:
    sessions = HttpClient(proxies={"http": "http://127.0.0.1:9"}, keep_alive=3)
    assert sessions.pool_size == 10
    assert sessions.proxies == {"http": "http://127.0.0.1:9"}
    assert sessions.DEFAULT_HTTP_HEADERS == (
        ("Connection", "Keep-Alive"),
        ("Accept", "*/*"),
        ("Accept-Encoding", "deflate"),
        ("Accept-Encoding", "gzip"),
    )
    assert sessions.headers["user-agent"] == sessions.client_version
    assert sessions.timeout is None and sessions.max_redirects == 10
    assert sessions.version == "HTTP/1.1" and sessions.store_cookies is True
    assert sessions.connection_pools == {}
    # the proxy (nothing listens there) is used: ...
    with pytest.raises(ferryman.ConnectError):
        sessions.get(f"{httpbin.url}/get")
    # ... unless pulsar's "no" list names the host.
    direct = HttpClient(proxies={"http": "http://127.0.0.1:9", "no": "127.0.0.1"})
    assert direct.get(f"{httpbin.url}/get").status_code == 200
    direct.close()
    sessions.close()


def test_headers_given_to_the_client_replace_or_remove_defaults(httpbin: HttpbinServer) -> None:
    sessions = HttpClient(headers={"Accept": "application/json", "Connection": None})
    response = sessions.get(f"{httpbin.url}/headers", headers={"X-Request": "1"})
    assert sent_headers(response)["Accept"] == "application/json"
    assert sent_headers(response)["X-Request"] == "1"
    response = sessions.get(f"{httpbin.url}/headers", headers={"Accept-Encoding": None})
    assert "Accept-Encoding" not in sent_headers(response)
    sessions.close()


def test_timeout_none_is_no_bound_and_a_number_bounds_the_request(edge: EdgeServer) -> None:
    sessions = HttpClient()
    assert sessions.get(f"{edge.url}/slow-head?delay=0.3").status_code == 200
    with pytest.raises(asyncio.TimeoutError):
        sessions.get(f"{edge.url}/slow-head?delay=1", timeout=0.2)
    sessions.close()
    bounded = HttpClient(timeout=0.2)
    with pytest.raises(asyncio.TimeoutError):
        bounded.get(f"{edge.url}/slow-head?delay=1")
    bounded.close()


def test_close_connections_sends_connection_close(httpbin: HttpbinServer) -> None:
    sessions = HttpClient(close_connections=True)
    for _ in range(2):
        assert sent_headers(sessions.get(f"{httpbin.url}/headers"))["Connection"] == "close"
        assert sessions.connection_pools == {}  # none kept
    sessions.close()


def test_what_ferryman_cannot_honour_is_refused_when_asked() -> None:
    with pytest.raises(ValueError, match=r"HTTP/1\.1"):
        HttpClient(version="HTTP/1.0")
    with pytest.raises(TypeError, match="parser"):
        HttpClient(parser=object())
    with pytest.raises(TypeError, match="frame_parser"):
        HttpClient(frame_parser=object())


def test_a_client_in_one_loop_refuses_another(httpbin: HttpbinServer) -> None:
    sessions = HttpClient()

    async def first() -> int:
        return (await sessions.get(f"{httpbin.url}/get")).status_code  # type: ignore[no-any-return]

    loop = asyncio.new_event_loop()
    assert loop.run_until_complete(first()) == 200

    async def elsewhere() -> None:
        sessions.get(f"{httpbin.url}/get")

    other = asyncio.new_event_loop()
    with pytest.raises(RuntimeError, match="another event loop"):
        other.run_until_complete(elsewhere())
    other.close()
    sessions.close()  # (from plain code: on its loop, synchronously)
    loop.close()


# -- API: HttpRequest


def test_request_helpers_and_encode(sessions: HttpClient, edge: EdgeServer) -> None:
    response = sessions.post(f"{edge.url}/echo?x=1", data=b"payload")
    request = response.request
    assert request.has_header("content-length") and not request.has_header("X-Nope")
    assert request.get_header("Content-Length") == "7"
    assert request.get_header("X-Nope", "default") == "default"
    assert request.version == "HTTP/1.1" and request.method == "POST"
    head = request.encode()
    assert head.startswith(b"POST /echo?x=1 HTTP/1.1\r\nHost: 127.0.0.1:")
    assert head.endswith(b"\r\n\r\n") and b"Content-Length: 7\r\n" in head
    assert repr(request) == "POST /echo?x=1 HTTP/1.1"
    assert request.remove_header("Content-Length") == "7"
    assert not request.has_header("Content-Length")


def test_wait_continue_sends_the_body_after_the_100(sessions: HttpClient, edge: EdgeServer) -> None:
    response = sessions.post(f"{edge.url}/continue", data=b"x" * 1000, wait_continue=True)
    assert response.request.wait_continue is True
    assert response.request.get_header("Expect") == "100-continue"
    assert response.text() == "got 1000"
    refused = sessions.post(f"{edge.url}/continue?reject=1", data=b"x", wait_continue=True)
    assert refused.status_code == 417  # the server said no: the body never went


# -- API: HttpResponse


def test_response_text_json_decode_content_and_info(
    sessions: HttpClient, httpbin: HttpbinServer
) -> None:
    as_json = sessions.get(f"{httpbin.url}/json")
    assert as_json.decode_content() == as_json.json() == json.loads(as_json.content)
    as_text = sessions.get(f"{httpbin.url}/robots.txt")
    assert as_text.decode_content() == as_text.text() == as_text.content.decode()
    as_bytes = sessions.get(f"{httpbin.url}/image/png")
    assert as_bytes.decode_content() == as_bytes.content
    with_cookie = sessions.get(f"{httpbin.url}/cookies/set?flavour=oat", allow_redirects=False)
    assert with_cookie.info().get_all("set-cookie")[0].startswith("flavour=oat")
    assert with_cookie.info().get_all("x-none", []) == []
    assert with_cookie.cookies["flavour"] == "oat"


def test_raise_for_status(sessions: HttpClient, httpbin: HttpbinServer) -> None:
    with pytest.raises(http.HttpRequestException, match="404"):
        sessions.get(f"{httpbin.url}/status/404").raise_for_status()
    assert sessions.get(f"{httpbin.url}/status/200").raise_for_status() is None


# -- API: OAuth1 and OAuth2


def test_oauth1_as_documented_signs_requests(sessions: HttpClient, edge: EdgeServer) -> None:
    auth = OAuth1(
        "consumer-key",
        client_secret="consumer-secret",
        resource_owner_key="token",
        resource_owner_secret="token-secret",
    )
    response = sessions.get(f"{edge.url}/echo?a=1", auth=auth)
    header = response.request.get_header("Authorization")
    assert header.startswith("OAuth ")
    assert oauth1_verifies(f"{edge.url}/echo?a=1", header, "consumer-secret", "token-secret")
    assert not oauth1_verifies(f"{edge.url}/echo?a=1", header, "other-secret", "token-secret")


def test_oauth1_with_an_oauthlib_client(sessions: HttpClient, edge: EdgeServer) -> None:
    client = oauthlib_oauth1.Client("consumer-key", client_secret="consumer-secret")
    response = sessions.get(f"{edge.url}/echo", auth=OAuth1(client=client))
    header = response.request.get_header("Authorization")
    assert oauth1_verifies(f"{edge.url}/echo", header, "consumer-secret", None)


def oauth1_verifies(url: str, header: str, secret: str, token_secret: str | None) -> bool:
    """oauthlib's server side checks the signature of a request as it was sent."""
    signed = oauthlib_common.Request(url, "GET", None, {"Authorization": header})
    params = oauth1_signature.collect_parameters(
        uri_query=url.partition("?")[2], headers={"Authorization": header}
    )
    signed.params = params
    signed.signature = dict(
        oauth1_signature.collect_parameters(
            headers={"Authorization": header}, exclude_oauth_signature=False
        )
    )["oauth_signature"]
    return bool(oauth1_signature.verify_hmac_sha1(signed, secret, token_secret))


def test_oauth2_as_documented_sends_the_bearer_token(
    sessions: HttpClient, httpbin: HttpbinServer
) -> None:
    response = sessions.get(f"{httpbin.url}/bearer", auth=OAuth2("client-id", access_token="t0k"))
    assert response.json() == {"authenticated": True, "token": "t0k"}
    with pytest.raises(ValueError, match="access_token"):
        OAuth2("client-id")
    with pytest.raises(TypeError, match="rsa_key"):
        OAuth1("key", rsa_key="...")


def test_oauth2_with_an_oauthlib_client(
    sessions: HttpClient, httpbin: HttpbinServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from oauthlib.oauth2 import WebApplicationClient

    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")  # (httpbin is on http://)

    client = WebApplicationClient("client-id", access_token="t0k", token_type="Bearer")
    response = sessions.get(f"{httpbin.url}/bearer", auth=OAuth2(client=client))
    assert response.json() == {"authenticated": True, "token": "t0k"}


def test_environment_is_read_only_with_trust_env(
    httpbin: HttpbinServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    monkeypatch.setenv("NO_PROXY", "")
    with pytest.raises(ferryman.ConnectError):
        HttpClient().get(f"{httpbin.url}/get")
    assert HttpClient(trust_env=False).get(f"{httpbin.url}/get").status_code == 200
    assert os.environ["HTTP_PROXY"]
