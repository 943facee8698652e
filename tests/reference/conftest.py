"""What the reference documents' examples need beside the servers of ``tests/conftest.py``:
the proxy tests' fixtures (uvicorn serving an ASGI app in the test's loop, a client, a port
where nothing listens, the scripted upstream that records each connection) and the test CA
trusted as the examples' "public" hosts."""

from __future__ import annotations

import pytest

from tests.proxy.conftest import client, refused_url, serve, upstream

__all__ = ["client", "refused_url", "serve", "trusted_test_ca", "upstream"]


@pytest.fixture
def trusted_test_ca(ca_bundle: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """The test CA as ``SSL_CERT_FILE``: the examples' "public" https hosts are the test
    servers, whose certificates it signed (``localhost``, ``127.0.0.1``, ``example.test``)."""
    monkeypatch.setenv("SSL_CERT_FILE", ca_bundle)
    return ca_bundle
