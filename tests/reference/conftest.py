"""What the reference documents' examples need beside the servers of ``tests/conftest.py``."""

from __future__ import annotations

import pytest


@pytest.fixture
def trusted_test_ca(ca_bundle: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """The test CA as ``SSL_CERT_FILE``: the examples' "public" https hosts are the test
    servers, whose certificates it signed (``localhost``, ``127.0.0.1``, ``example.test``)."""
    monkeypatch.setenv("SSL_CERT_FILE", ca_bundle)
    return ca_bundle
