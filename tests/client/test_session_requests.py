"""AsyncClient requests against httpbin: verbs, session defaults, params, bodies and files."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

import ferryman
from tests.servers.edge import EdgeServer
from tests.servers.httpbin_server import HttpbinServer
from tests.servers.uvicorn_server import UvicornServer


@pytest.fixture
async def client() -> AsyncIterator[ferryman.AsyncClient]:
    async with ferryman.AsyncClient(trust_env=False) as client:
        yield client


@pytest.mark.parametrize("verb", ["get", "options", "head", "post", "put", "patch", "delete"])
async def test_every_verb_reaches_the_server_with_its_method(
    client: ferryman.AsyncClient, httpbin: HttpbinServer, verb: str
) -> None:
    response = await getattr(client, verb)(f"{httpbin.url}/anything")
    assert response.status_code == 200
    if verb not in ("head", "options"):
        assert response.json()["method"] == verb.upper()
    response = await client.request(verb.upper(), f"{httpbin.url}/anything")
    assert response.status_code == 200


async def test_default_headers_name_ferryman_and_what_it_decodes(
    client: ferryman.AsyncClient, httpbin: HttpbinServer
) -> None:
    headers = (await client.get(f"{httpbin.url}/headers")).json()["headers"]
    assert headers["User-Agent"] == f"ferryman/{ferryman.__version__}"
    assert headers["Accept-Encoding"] == "gzip, deflate, br, zstd"
    assert headers["Accept"] == "*/*"


async def test_session_headers_are_overridden_per_request(httpbin: HttpbinServer) -> None:
    async with ferryman.AsyncClient(
        headers={"X-Team": "payments", "User-Agent": "mine/1"}, trust_env=False
    ) as client:
        seen = (await client.get(f"{httpbin.url}/headers")).json()["headers"]
        assert seen["X-Team"] == "payments"
        assert seen["User-Agent"] == "mine/1"
        seen = (
            await client.get(f"{httpbin.url}/headers", headers={"X-Team": "search", "X-New": "1"})
        ).json()["headers"]
        assert seen["X-Team"] == "search"
        assert seen["X-New"] == "1"


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"page": 2, "key": "foo"}, {"page": "2", "key": "foo"}),
        (
            {"key1": "value1", "key2": ["value2", "value3"]},
            {"key1": "value1", "key2": ["value2", "value3"]},
        ),
        ([("a", "1"), ("a", "2"), ("b", "x y")], {"a": ["1", "2"], "b": "x y"}),
        ((("t", "tuple"),), {"t": "tuple"}),
    ],
)
async def test_params(
    client: ferryman.AsyncClient, httpbin: HttpbinServer, params: Any, expected: dict[str, Any]
) -> None:
    response = await client.get(f"{httpbin.url}/get", params=params)
    assert response.json()["args"] == expected
    assert str(response.url).startswith(f"{httpbin.url}/get?")


async def test_session_params_merge_with_request_params(httpbin: HttpbinServer) -> None:
    async with ferryman.AsyncClient(params={"api_key": "k"}, trust_env=False) as client:
        response = await client.get(f"{httpbin.url}/get", params={"q": "ferry"})
        assert response.json()["args"] == {"api_key": "k", "q": "ferry"}


async def test_form_data(client: ferryman.AsyncClient, httpbin: HttpbinServer) -> None:
    body = (
        await client.post(f"{httpbin.url}/post", data={"entry1": "bla", "entry2": "doo"})
    ).json()
    assert body["form"] == {"entry1": "bla", "entry2": "doo"}
    assert body["headers"]["Content-Type"] == "application/x-www-form-urlencoded"


@pytest.mark.parametrize("data", [b"raw bytes \x00\xff", "some text é"])
async def test_bytes_and_str_data(
    client: ferryman.AsyncClient, httpbin: HttpbinServer, data: bytes | str
) -> None:
    body = (await client.post(f"{httpbin.url}/post", data=data)).json()
    expected = data if isinstance(data, bytes) else data.encode()
    assert body["headers"]["Content-Length"] == str(len(expected))
    if isinstance(data, str):
        assert body["data"] == data


async def test_json_body(client: ferryman.AsyncClient, httpbin: HttpbinServer) -> None:
    payload = {"entry1": "bla", "nested": [1, 2, {"ü": None}]}
    body = (await client.post(f"{httpbin.url}/post", json=payload)).json()
    assert body["json"] == payload
    assert body["headers"]["Content-Type"] == "application/json"


# Werkzeug (httpbin's server) refuses chunked request bodies: streamed bodies go to uvicorn.


async def test_sync_generator_body_is_sent_chunked(
    client: ferryman.AsyncClient, uvicorn_server: UvicornServer
) -> None:
    response = await client.post(f"{uvicorn_server.url}/echo", data=(b"blabla" for _ in range(10)))
    body = response.json()
    assert body["body"] == "blabla" * 10
    assert ["transfer-encoding", "chunked"] in body["headers"]


async def test_async_generator_body(
    client: ferryman.AsyncClient, uvicorn_server: UvicornServer
) -> None:
    async def parts() -> AsyncIterator[bytes]:
        for i in range(3):
            await asyncio.sleep(0)
            yield b"part%d;" % i

    body = (await client.post(f"{uvicorn_server.url}/echo", data=parts())).json()
    assert body["body"] == "part0;part1;part2;"


async def test_generator_mixing_bytes_and_awaitables(
    client: ferryman.AsyncClient, uvicorn_server: UvicornServer
) -> None:
    def stream() -> Iterator[Any]:
        future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        asyncio.get_running_loop().call_later(0.05, future.set_result, b"two")
        yield b"one"
        yield future
        yield b"three"

    body = (await client.post(f"{uvicorn_server.url}/echo", data=stream())).json()
    assert body["body"] == "onetwothree"


async def test_files_multipart(
    client: ferryman.AsyncClient, httpbin: HttpbinServer, tmp_path: Path
) -> None:
    report = tmp_path / "report.csv"
    report.write_bytes(b"a,b\n1,2\n")
    with report.open("rb") as handle:
        body = (
            await client.post(
                f"{httpbin.url}/post",
                data={"note": "quarterly"},
                files={"file": handle, "extra": ("notes.txt", b"hello", "text/plain")},
            )
        ).json()
    assert body["files"] == {"file": "a,b\n1,2\n", "extra": "hello"}
    assert body["form"] == {"note": "quarterly"}
    assert body["headers"]["Content-Type"].startswith("multipart/form-data; boundary=")
    assert body["headers"]["Content-Length"]  # a file on disk has a known size


async def test_big_file_is_streamed_from_disk(
    client: ferryman.AsyncClient, httpbin: HttpbinServer, tmp_path: Path
) -> None:
    big = tmp_path / "big.bin"
    chunk = bytes(range(256)) * 4096  # 1 MiB
    with big.open("wb") as out:
        for _ in range(8):
            out.write(chunk)

    reads: list[int] = []

    class Recording:
        """A file object that records how much each read asked for."""

        def __init__(self, path: Path) -> None:
            self._file = path.open("rb")
            self.name = path.name

        def read(self, size: int = -1) -> bytes:
            reads.append(size)
            return self._file.read(size)

        def __getattr__(self, name: str) -> Any:
            return getattr(self._file, name)

    recording = Recording(big)
    try:
        response = await client.post(f"{httpbin.url}/post", files={"big": recording})
    finally:
        recording._file.close()
    assert response.status_code == 200
    assert len(response.json()["files"]["big"]) > 0
    assert reads and all(0 < size <= 1 << 20 for size in reads)  # never read whole


async def test_content_and_json_together_is_refused(client: ferryman.AsyncClient) -> None:
    with pytest.raises((TypeError, ValueError)):
        await client.post("http://127.0.0.1:9/", content=b"x", json={"a": 1})


async def test_request_timeout_overrides_session(httpbin: HttpbinServer) -> None:
    async with ferryman.AsyncClient(timeout=30, trust_env=False) as client:
        with pytest.raises(ferryman.ReadTimeout):
            await client.get(f"{httpbin.url}/delay/2", timeout=0.2)
        assert (await client.get(f"{httpbin.url}/get", timeout=None)).status_code == 200
    async with ferryman.AsyncClient(timeout=0.2, trust_env=False) as client:
        with pytest.raises(ferryman.ReadTimeout):
            await client.get(f"{httpbin.url}/delay/2")
        response = await client.get(f"{httpbin.url}/delay/1", timeout=ferryman.Timeout(5))
        assert response.status_code == 200


async def test_pool_size_limits_connections_per_host(httpbin: HttpbinServer) -> None:
    async with ferryman.AsyncClient(pool_size=2, trust_env=False) as client:
        responses = await asyncio.gather(
            *(client.get(f"{httpbin.url}/delay/0.2") for _ in range(6))
        )
        assert all(r.status_code == 200 for r in responses)
        assert len(client.transport.connections) <= 2  # type: ignore[attr-defined]


async def test_base_url(httpbin: HttpbinServer) -> None:
    async with ferryman.AsyncClient(base_url=f"{httpbin.url}/anything/v1", trust_env=False) as c:
        response = await c.get("users", params={"id": 3})
        assert response.json()["url"].endswith("/anything/v1/users?id=3")


async def test_body_json_is_compact_utf8(
    client: ferryman.AsyncClient, httpbin: HttpbinServer
) -> None:
    response = await client.post(f"{httpbin.url}/anything", json={"name": "Zoë"})
    sent = response.json()["data"]
    assert sent == json.dumps({"name": "Zoë"}, separators=(",", ":"), ensure_ascii=False)


@pytest.mark.parametrize("content", [b"hello, chunks", b"", b"x" * 300_000])
async def test_an_in_memory_body_with_the_callers_chunked_header_goes_in_chunks(
    edge: EdgeServer, content: bytes
) -> None:
    # It used to go out unframed: the server waited for a chunk size forever.
    async with ferryman.AsyncClient() as client:
        response = await asyncio.wait_for(
            client.post(
                f"{edge.url}/echo", content=content, headers={"Transfer-Encoding": "chunked"}
            ),
            10,
        )
        echoed = response.json()
        assert echoed["body"].encode("latin-1") == content
        sent = {name.lower(): value for name, value in echoed["headers"]}
        assert sent["transfer-encoding"] == "chunked"
        assert "content-length" not in sent
        # The connection is still in step: the next request on it is answered.
        again = await asyncio.wait_for(client.get(f"{edge.url}/echo"), 10)
        assert again.status_code == 200
