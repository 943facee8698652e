"""ferryman.Client: the same client from plain code, threads and a running loop's thread."""

from __future__ import annotations

import asyncio
import gc
import threading
import warnings
from concurrent.futures import ThreadPoolExecutor

import pytest

import ferryman
from tests.servers.httpbin_server import HttpbinServer
from tests.servers.uvicorn_server import UvicornServer


def test_plain_code(httpbin: HttpbinServer) -> None:
    with ferryman.Client(trust_env=False) as client:
        response = client.get(f"{httpbin.url}/get", params={"q": "1"})
        assert response.status_code == 200
        assert response.json()["args"] == {"q": "1"}
        assert client.post(f"{httpbin.url}/post", json={"a": 1}).json()["json"] == {"a": 1}
        assert client.put(f"{httpbin.url}/put", data={"k": "v"}).json()["form"] == {"k": "v"}
        assert client.patch(f"{httpbin.url}/patch").status_code == 200
        assert client.delete(f"{httpbin.url}/delete").status_code == 200
        assert client.head(f"{httpbin.url}/get").status_code == 200
        assert client.options(f"{httpbin.url}/get").status_code == 200
        redirected = client.get(f"{httpbin.url}/redirect/2")
        assert [r.status_code for r in redirected.history] == [302, 302]
        assert client.get(f"{httpbin.url}/gzip").json()["gzipped"] is True
        digest = client.get(
            f"{httpbin.url}/digest-auth/auth/u/p", auth=ferryman.DigestAuth("u", "p")
        )
        assert digest.status_code == 200
    assert client.is_closed


def test_streamed_body_from_plain_code(httpbin: HttpbinServer) -> None:
    with ferryman.Client(trust_env=False) as client:
        response = client.get(f"{httpbin.url}/stream/3", stream=True)
        lines = list(response.iter_lines())
        assert len(lines) == 3
        response = client.get(f"{httpbin.url}/bytes/3000", stream=True)
        assert len(b"".join(response.raw)) == 3000
        with pytest.raises(ferryman.StreamConsumedError):
            list(response.raw)
        response = client.get(f"{httpbin.url}/bytes/10", stream=True)
        assert len(response.raw.read()) == 10


def test_many_threads_share_one_client(httpbin: HttpbinServer) -> None:
    with ferryman.Client(trust_env=False) as client:

        def call(i: int) -> str:
            response = client.get(f"{httpbin.url}/get", params={"i": i})
            return response.json()["args"]["i"]

        with ThreadPoolExecutor(8) as pool:
            results = list(pool.map(call, range(40)))
    assert results == [str(i) for i in range(40)]


def test_inside_a_running_event_loop_thread(httpbin: HttpbinServer) -> None:
    async def main() -> int:
        # A blocking call from a coroutine: it stalls this loop while it waits, but the client
        # runs on its own loop, so it completes instead of deadlocking.
        with ferryman.Client(trust_env=False) as client:
            return client.get(f"{httpbin.url}/get").status_code

    assert asyncio.run(main()) == 200


def test_events_run_and_cookies_persist(httpbin: HttpbinServer) -> None:
    threads: list[str] = []
    with ferryman.Client(trust_env=False) as client:
        client.event("on_headers").bind(lambda r: threads.append(threading.current_thread().name))
        client.get(f"{httpbin.url}/cookies/set", params={"s": "1"})
        assert client.cookies["s"] == "1"
        assert client.get(f"{httpbin.url}/cookies").json() == {"cookies": {"s": "1"}}
    assert threads and all(name == "ferryman-sync-loop" for name in threads)


def test_a_handler_calling_the_same_client_fails_instead_of_hanging(
    httpbin: HttpbinServer,
) -> None:
    with ferryman.Client(trust_env=False) as client:

        def reenter(response: ferryman.Response) -> None:
            client.get(f"{httpbin.url}/get")

        with pytest.raises(RuntimeError, match="own loop thread"):
            client.get(f"{httpbin.url}/get", on_headers=reenter)


def test_a_leaked_client_warns(httpbin: HttpbinServer) -> None:
    client = ferryman.Client(trust_env=False)
    client.get(f"{httpbin.url}/get")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        del client
        gc.collect()
    assert any(issubclass(w.category, ResourceWarning) for w in caught)


async def test_a_leaked_async_client_warns(uvicorn_server: UvicornServer) -> None:
    client = ferryman.AsyncClient(trust_env=False)
    await client.get(f"{uvicorn_server.url}/echo")  # uvicorn keeps the connection open
    transport = client.transport
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        del client
        gc.collect()
    assert any(issubclass(w.category, ResourceWarning) for w in caught)
    await transport.aclose()
