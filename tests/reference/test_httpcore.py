"""The code examples of ``../shared/reference/httpcore-extensions.md``, run on ferryman.

Each example is copied as the document gives it, its section named above it; only the import
(``import ferryman.compat.httpcore as httpcore``) and the hosts change: the public hosts are
the test servers on 127.0.0.1 (the TLS one's certificate names ``localhost``, ``127.0.0.1``
and ``example.test``, its CA is trusted through ``SSL_CERT_FILE``). Each test then asserts what
the document says the example does. The two pseudo-code blocks at the top are not Python.
"""

from __future__ import annotations

import base64
import json
import os
from typing import Any

import pytest
import wsproto

import ferryman.compat.httpcore as httpcore
from tests.servers.edge import EdgeServer
from tests.servers.ws_echo import WsEchoServer

pytestmark = pytest.mark.usefixtures("trusted_test_ca")

# What the trace example prints, in order (the document's output, names only).
DOCUMENTED_TRACE = [
    "connection.connect_tcp.started",
    "connection.connect_tcp.complete",
    "connection.start_tls.started",
    "connection.start_tls.complete",
    "http11.send_request_headers.started",
    "http11.send_request_headers.complete",
    "http11.send_request_body.started",
    "http11.send_request_body.complete",
    "http11.receive_response_headers.started",
    "http11.receive_response_headers.complete",
    "http11.receive_response_body.started",
    "http11.receive_response_body.complete",
    "http11.response_closed.started",
    "http11.response_closed.complete",
]


def printed(capsys: pytest.CaptureFixture[str]) -> list[str]:
    return capsys.readouterr().out.splitlines()


# -- Extensions: "Several extensions are supported both on the request ... And on the response"


def test_a_request_extension_sets_the_connect_timeout(tls_edge: EdgeServer) -> None:
    r = httpcore.request(
        "GET",
        f"https://localhost:{tls_edge.port}",
        extensions={"timeout": {"connect": 5.0}},
    )
    assert r.status == 200
    # The extension reached the connection: its trace shows the connect timeout it used.
    seen: list[tuple[str, dict[str, Any]]] = []
    httpcore.request(
        "GET",
        f"https://localhost:{tls_edge.port}",
        extensions={"timeout": {"connect": 5.0}, "trace": lambda *event: seen.append(event)},
    )
    assert ("connection.connect_tcp.started", "timeout") in [(n, k) for n, i in seen for k in i]
    assert dict(seen)["connection.connect_tcp.started"]["timeout"] == 5.0


@pytest.mark.parametrize(
    ("path", "version"),
    [("/echo", b"HTTP/1.1"), ("/until-close", b"HTTP/1.0"), ("/http09", b"HTTP/0.9")],
)
def test_the_http_version_extension_is_what_the_server_answered(
    edge: EdgeServer, capsys: pytest.CaptureFixture[str], path: str, version: bytes
) -> None:
    r = httpcore.request("GET", f"{edge.url}{path}")
    print(r.extensions["http_version"])
    # When using HTTP/1.1 on the client side, the server HTTP response
    # could feasibly be one of b"HTTP/0.9", b"HTTP/1.0", or b"HTTP/1.1".
    assert printed(capsys) == [repr(version)]
    assert r.status == 200 and r.content


# -- Request Extensions / "timeout"


def test_timeout_extension_with_connect_and_pool(tls_edge: EdgeServer) -> None:
    # Timeout if a connection takes more than 5 seconds to established, or if
    # we are blocked waiting on the connection pool for more than 10 seconds.
    r = httpcore.request(
        "GET",
        f"https://localhost:{tls_edge.port}",
        extensions={"timeout": {"connect": 5.0, "pool": 10.0}},
    )
    assert r.status == 200


def test_a_timeout_extension_that_runs_out_raises_its_own_exception(edge: EdgeServer) -> None:
    # (Beyond the example: the timeouts are enforced, each with its exception class.)
    with pytest.raises(httpcore.ReadTimeout):
        httpcore.request(
            "GET", f"{edge.url}/slow-head?delay=0.5", extensions={"timeout": {"read": 0.1}}
        )


# -- Request Extensions / "trace"


def test_trace_prints_every_phase_of_the_exchange(
    tls_edge: EdgeServer, capsys: pytest.CaptureFixture[str]
) -> None:
    def log(event_name: str, info: dict[str, Any]) -> None:
        print(event_name, info)

    r = httpcore.request("GET", f"https://localhost:{tls_edge.port}/", extensions={"trace": log})
    lines = printed(capsys)
    assert [line.split(" ", 1)[0] for line in lines] == DOCUMENTED_TRACE
    info = dict(line.split(" ", 1) for line in lines)
    assert info["connection.connect_tcp.started"] == str(
        {"host": "localhost", "port": tls_edge.port, "local_address": None, "timeout": None}
    )
    assert "'server_hostname': 'localhost'" in info["connection.start_tls.started"]
    assert info["http11.receive_response_headers.complete"].startswith(
        "{'return_value': (b'HTTP/1.1', 200, b'OK', [(b'Content-Type', b'application/json')"
    )
    assert info["http11.response_closed.started"] == "{}"
    assert r.status == 200


def test_every_event_type_the_document_lists_is_emitted(tls_edge: EdgeServer) -> None:
    # The list names the HTTP/1.1 head phase "http11.receive_response"; httpcore (and the
    # example's output above) emit it as "http11.receive_response_headers": each listed type
    # is the start of an emitted name, as "{event_type}.{event_name}.started" reads.
    listed = [
        "connection.connect_tcp",
        "connection.start_tls",
        "http11.send_request_headers",
        "http11.send_request_body",
        "http11.receive_response",
        "http11.receive_response_body",
        "http11.response_closed",
    ]
    names: list[str] = []
    httpcore.request(
        "GET",
        f"https://localhost:{tls_edge.port}/",
        extensions={"trace": lambda name, info: names.append(name)},
    )
    for event_type in listed:
        for outcome in ("started", "complete"):
            assert any(name.startswith(event_type) and name.endswith(outcome) for name in names), (
                event_type
            )


async def test_the_async_variant_takes_an_async_trace_handler(tls_edge: EdgeServer) -> None:
    # "Note that when using the async variant of httpcore the handler function passed to
    # "trace" must be an async def ... function."
    names: list[str] = []

    async def log(event_name: str, info: dict[str, Any]) -> None:
        names.append(event_name)

    async with httpcore.AsyncConnectionPool(ssl_context=httpcore.default_ssl_context()) as pool:
        r = await pool.request(
            "GET", f"https://localhost:{tls_edge.port}/", extensions={"trace": log}
        )
    assert r.status == 200
    assert names == DOCUMENTED_TRACE


def test_a_connection_made_over_a_unix_socket_is_traced_as_such(tmp_path: Any) -> None:
    # The list's "connection.connect_unix_socket", with a pool given ``uds``.
    import socket
    import threading

    path = str(tmp_path / "s")
    server = socket.socket(socket.AF_UNIX)
    server.bind(path)
    server.listen(1)

    def answer() -> None:
        conn, _ = server.accept()
        conn.recv(65536)
        conn.sendall(b"HTTP/1.1 204 No Content\r\n\r\n")
        conn.close()

    thread = threading.Thread(target=answer, daemon=True)
    thread.start()
    names: list[str] = []
    with httpcore.ConnectionPool(uds=path) as pool:
        r = pool.request(
            "GET", "http://localhost/", extensions={"trace": lambda n, i: names.append(n)}
        )
    thread.join(5)
    server.close()
    assert r.status == 204
    assert names[:2] == [
        "connection.connect_unix_socket.started",
        "connection.connect_unix_socket.complete",
    ]


# -- Request Extensions / "sni_hostname" and "target"


def test_sni_hostname_names_the_server_at_an_ip_address(tls_edge: EdgeServer) -> None:
    headers = {"Host": "example.test"}
    extensions = {"sni_hostname": "example.test"}
    response = httpcore.request(
        "GET",
        f"https://127.0.0.1:{tls_edge.port}",
        headers=headers,
        extensions=extensions,
    )
    # The certificate was checked against (and the server asked for) the SNI name.
    assert response.status == 200
    assert tls_edge.server_names[-1] == "example.test"
    assert ["Host", "example.test"] in json.loads(response.content)["headers"]


def test_target_sends_connect_with_the_hostname_as_the_target(
    edge: EdgeServer, tls_edge: EdgeServer
) -> None:
    headers = {"Host": "example.test"}  # (from the "sni_hostname" example above)
    extensions = {"target": f"127.0.0.1:{tls_edge.port}".encode()}
    response = httpcore.request(
        "CONNECT",
        edge.url,
        headers=headers,
        extensions=extensions,
    )
    assert response.status == 200
    assert edge.requests[-1] == ("CONNECT", f"127.0.0.1:{tls_edge.port}")


def test_target_sends_a_server_wide_options_star(edge: EdgeServer) -> None:
    # "Server-wide OPTIONS * requests" (the third use the section lists).
    response = httpcore.request("OPTIONS", edge.url, extensions={"target": b"*"})
    assert response.status == 200
    assert edge.requests[-1] == ("OPTIONS", "*")


# -- Response Extensions / "network_stream"


def test_connect_request_then_tls_through_the_tunnel(
    edge: EdgeServer, tls_edge: EdgeServer, capsys: pytest.CaptureFixture[str]
) -> None:
    # Formulate a CONNECT request...
    #
    # This will establish a connection to 127.0.0.1:8080, and then send the following...
    #
    # CONNECT http://www.example.com HTTP/1.1
    url = edge.url
    # (The document's line reads {"target: "http://www.example.com"}, a syntax error; the
    # test proxy tunnels to an authority, host:port.)
    extensions = {"target": f"127.0.0.1:{tls_edge.port}"}
    with httpcore.stream("CONNECT", url, extensions=extensions) as response:
        network_stream = response.extensions["network_stream"]

        # Upgrade to an SSL stream...
        network_stream = network_stream.start_tls(
            ssl_context=httpcore.default_ssl_context(),
            hostname=b"example.test",
        )

        # Manually send an HTTP request over the network stream, and read the response...
        #
        # For a more complete example see the httpcore `TunnelHTTPConnection` implementation.
        network_stream.write(b"GET / HTTP/1.1\r\nHost: example.com\r\n\r\n")
        data = network_stream.read()
        print(data)
    assert response.status == 200
    assert data.startswith(b"HTTP/1.1 200 OK\r\n")
    assert repr(data) in printed(capsys)
    assert tls_edge.server_names[-1] == "example.test"  # TLS was with the target, end to end


def test_upgrade_request_to_a_websocket_with_wsproto(
    ws_server: WsEchoServer, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"http://127.0.0.1:{ws_server.port}/"
    headers = {
        b"Connection": b"Upgrade",
        b"Upgrade": b"WebSocket",
        b"Sec-WebSocket-Key": base64.b64encode(os.urandom(16)),
        b"Sec-WebSocket-Version": b"13",
    }
    with httpcore.stream("GET", url, headers=headers) as response:
        if response.status != 101:
            raise Exception("Failed to upgrade to websockets", response)

        # Get the raw network stream.
        network_steam = response.extensions["network_stream"]

        # Write a WebSocket text frame to the stream.
        ws_connection = wsproto.Connection(wsproto.ConnectionType.CLIENT)
        message = wsproto.events.TextMessage("hello, world!")
        outgoing_data = ws_connection.send(message)
        network_steam.write(outgoing_data)

        # Wait for a response.
        incoming_data = network_steam.read(max_bytes=4096)
        ws_connection.receive_data(incoming_data)
        for event in ws_connection.events():
            if isinstance(event, wsproto.events.TextMessage):
                print("Got data:", event.data)

        # Write a WebSocket close to the stream.
        message = wsproto.events.CloseConnection(code=1000)
        outgoing_data = ws_connection.send(message)
        network_steam.write(outgoing_data)
    assert printed(capsys) == ["Got data: hello, world!"]
    assert ws_server.closes.get(timeout=5) == ("/", 1000, "")


def test_extra_network_information_after_the_response(
    tls_edge: EdgeServer, capsys: pytest.CaptureFixture[str]
) -> None:
    response = httpcore.request("GET", f"https://localhost:{tls_edge.port}")
    network_stream = response.extensions["network_stream"]

    client_addr = network_stream.get_extra_info("client_addr")
    server_addr = network_stream.get_extra_info("server_addr")
    print("Client address", client_addr)
    print("Server address", server_addr)
    assert server_addr == ("127.0.0.1", tls_edge.port)
    assert client_addr[0] == "127.0.0.1" and client_addr[1] not in (0, tls_edge.port)
    assert printed(capsys) == [f"Client address {client_addr}", f"Server address {server_addr}"]


def test_the_ssl_object_while_the_connection_is_open(
    tls_edge: EdgeServer, capsys: pytest.CaptureFixture[str]
) -> None:
    with httpcore.stream("GET", f"https://localhost:{tls_edge.port}") as response:
        network_stream = response.extensions["network_stream"]
        ssl_object = network_stream.get_extra_info("ssl_object")
        print("TLS version", ssl_object.version())
    assert printed(capsys) in (["TLS version TLSv1.3"], ["TLS version TLSv1.2"])


# -- What the face adds or refuses


def test_start_tls_refuses_two_different_hostnames(edge: EdgeServer, tls_edge: EdgeServer) -> None:
    extensions = {"target": f"127.0.0.1:{tls_edge.port}"}
    with httpcore.stream("CONNECT", edge.url, extensions=extensions) as response:
        network_stream = response.extensions["network_stream"]
        with pytest.raises(TypeError, match="both server_hostname and hostname"):
            network_stream.start_tls(
                httpcore.default_ssl_context(), "localhost", hostname="example.test"
            )


def test_a_pool_refuses_http09_unless_asked(edge: EdgeServer) -> None:
    # The module-level functions take an HTTP/0.9 answer (a fresh connection per call); a
    # pool, whose connections are kept, does so only with http09=True.
    with httpcore.ConnectionPool() as pool, pytest.raises(httpcore.RemoteProtocolError):
        pool.request("GET", f"{edge.url}/http09")
    with httpcore.ConnectionPool(http09=True) as pool:
        assert pool.request("GET", f"{edge.url}/http09").extensions["http_version"] == (b"HTTP/0.9")


def test_the_response_body_streams_with_iter_stream(edge: EdgeServer) -> None:
    with httpcore.stream("GET", f"{edge.url}/chunked?n=3") as response:
        body = b"".join(response.iter_stream())
    assert body == b"chunk0;chunk1;chunk2;"
