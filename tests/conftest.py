"""Servers the tests talk to, all on 127.0.0.1 and started once per session."""

from __future__ import annotations

import os
import ssl
import sys
from collections.abc import Callable, Iterator

import pytest
import trustme
from hypothesis import HealthCheck, settings

from ferryman.system import applications
from tests.servers.edge import EdgeServer
from tests.servers.httpbin_server import HttpbinServer
from tests.servers.hypercorn_server import HypercornServer
from tests.servers.nginx_server import NginxServer, nginx_available
from tests.servers.slow_upstream import ScriptedUpstream
from tests.servers.uvicorn_server import UvicornServer
from tests.servers.ws_echo import WsEchoServer

# Property tests check behaviour, not speed: on a loaded CI machine, Hypothesis's timing checks
# (per-example deadline, slow input generation) would fail tests that are correct.
settings.register_profile("ferryman", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("ferryman")


@pytest.fixture(autouse=True)
def _import_path_restored(monkeypatch: pytest.MonkeyPatch) -> None:
    """``ferryman start``/``config`` run in this process (CliRunner) put the application
    directory first on ``sys.path`` (``--app-dir``, the current directory by default): the
    tests after them do not see it."""
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.setattr(applications, "_app_dir", applications._app_dir)


@pytest.fixture(scope="session")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="session")
def server_cert(ca: trustme.CA) -> trustme.LeafCert:
    return ca.issue_cert("localhost", "127.0.0.1", "example.test")


@pytest.fixture(scope="session")
def edge() -> Iterator[EdgeServer]:
    server = EdgeServer().start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def tls_edge(server_cert: trustme.LeafCert) -> Iterator[EdgeServer]:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_cert.configure_cert(context)
    context.set_alpn_protocols(["http/1.1"])
    server = EdgeServer(context).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def mtls_edge(ca: trustme.CA, server_cert: trustme.LeafCert) -> Iterator[EdgeServer]:
    """A TLS server that demands a client certificate signed by the test CA."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_cert.configure_cert(context)
    ca.configure_trust(context)
    context.verify_mode = ssl.CERT_REQUIRED
    server = EdgeServer(context).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def uvicorn_server() -> Iterator[UvicornServer]:
    server = UvicornServer().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def ws_server() -> Iterator[WsEchoServer]:
    """The WebSocket server, one per test module: ``closes`` and ``replies`` are its queues."""
    server = WsEchoServer().start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def httpbin() -> Iterator[HttpbinServer]:
    server = HttpbinServer().start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def ca_bundle(ca: trustme.CA) -> Iterator[str]:
    """The test CA as a file: pools built with ``verify=ca_bundle`` make their own context."""
    with ca.cert_pem.tempfile() as path:
        yield path


@pytest.fixture(scope="session")
def _server_pem(server_cert: trustme.LeafCert) -> Iterator[str]:
    with server_cert.private_key_and_cert_chain_pem.tempfile() as path:
        yield path


@pytest.fixture(scope="session")
def hypercorn(_server_pem: str) -> Iterator[HypercornServer]:
    server = HypercornServer(_server_pem, _server_pem).start()
    yield server
    server.stop()


@pytest.fixture
def start_nginx(
    upstream: ScriptedUpstream, _server_pem: str
) -> Iterator[Callable[..., NginxServer]]:
    """Starts nginx (HTTP/2 over TLS, the test CA's certificate) in front of the test module's
    scripted ``upstream``; ``start_nginx(keepalive_requests=50)``. Skips without nginx."""
    if not nginx_available():
        if os.environ.get("CI"):  # .ci/run installs it: a CI without it must not pass quietly
            pytest.fail("nginx is not installed (.ci/run installs Debian's nginx)")
        pytest.skip("nginx is not installed")
    started: list[NginxServer] = []

    def start(**options: int) -> NginxServer:
        server = NginxServer(upstream.port, _server_pem, _server_pem, **options)
        started.append(server)
        return server.start()

    upstream.reset()
    yield start
    for server in started:
        server.stop()


@pytest.fixture(scope="session", autouse=True)
def _data_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The storage's default SQLite file (``ferryman start`` records by default) goes to a
    temporary directory, never to the user's data directory; ``ferryman start`` processes the
    tests run inherit the variable."""
    path = str(tmp_path_factory.mktemp("ferryman-data"))
    previous = os.environ.get("FERRYMAN_DATA_DIR")
    os.environ["FERRYMAN_DATA_DIR"] = path
    yield path
    if previous is None:
        os.environ.pop("FERRYMAN_DATA_DIR", None)
    else:
        os.environ["FERRYMAN_DATA_DIR"] = previous
