"""HTTP/2 through AsyncClient and Client, against hypercorn (TLS, ALPN)."""

from __future__ import annotations

import asyncio

import ferryman
from tests.servers.hypercorn_server import HypercornServer


async def test_http2_is_negotiated_and_multiplexed(
    hypercorn: HypercornServer, ca_bundle: str
) -> None:
    async with ferryman.AsyncClient(http2=True, verify=ca_bundle, trust_env=False) as client:
        responses = await asyncio.gather(
            *(client.get(f"{hypercorn.url}/echo", params={"i": i}) for i in range(20))
        )
        assert {r.extensions["http_version"] for r in responses} == {b"HTTP/2"}
        assert {r.http_version for r in responses} == {"HTTP/2"}
        assert len({r.extensions["stream_id"] for r in responses}) == 20
        assert [r.json()["query"] for r in responses] == [f"i={i}" for i in range(20)]
        assert len(client.transport.connections) == 1  # type: ignore[attr-defined]
        posted = await client.post(f"{hypercorn.url}/echo", json={"a": 1})
        assert posted.json()["body_size"] == len(b'{"a":1}')


async def test_http2_per_request_and_http11_by_default(
    hypercorn: HypercornServer, ca_bundle: str
) -> None:
    async with ferryman.AsyncClient(verify=ca_bundle, trust_env=False) as client:
        plain = await client.get(f"{hypercorn.url}/echo")
        assert plain.extensions["http_version"] == b"HTTP/1.1"
        upgraded = await client.get(f"{hypercorn.url}/echo", http2=True)
        assert upgraded.extensions["http_version"] == b"HTTP/2"
        assert upgraded.json()["http_version"] == "2"


def test_http2_from_the_sync_client(hypercorn: HypercornServer, ca_bundle: str) -> None:
    with ferryman.Client(http2=True, verify=ca_bundle, trust_env=False) as client:
        response = client.get(f"{hypercorn.url}/bytes", params={"size": 300000}, stream=True)
        assert response.extensions["http_version"] == b"HTTP/2"
        assert sum(len(chunk) for chunk in response.iter_bytes()) == 300000
