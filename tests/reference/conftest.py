"""Servers for the reference documents' examples, beside the session-wide ones in
``tests/conftest.py``."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.servers.ws_echo import WsEchoServer


@pytest.fixture(scope="module")
def ws_server() -> Iterator[WsEchoServer]:
    server = WsEchoServer().start()
    yield server
    server.stop()


@pytest.fixture
def trusted_test_ca(ca_bundle: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """The test CA as ``SSL_CERT_FILE``: the examples' "public" https hosts are the test
    servers, whose certificates it signed (``localhost``, ``127.0.0.1``, ``example.test``)."""
    monkeypatch.setenv("SSL_CERT_FILE", ca_bundle)
    return ca_bundle
