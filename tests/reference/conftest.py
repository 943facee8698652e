"""The reference documents' examples talk to the same local servers as the proxy tests: uvicorn
serving an ASGI app in the test's loop, a client, a port where nothing listens, the scripted
upstream that records each connection."""

from tests.proxy.conftest import client, refused_url, serve, upstream

__all__ = ["client", "refused_url", "serve", "upstream"]
