"""ferryman.Client: the same client from plain code, threads and a running loop's thread."""

from __future__ import annotations

import asyncio
import gc
import threading
import warnings
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

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


@pytest.mark.timeout(30)
def test_an_async_body_in_a_running_loop_raises_instead_of_hanging(
    uvicorn_server: UvicornServer,
) -> None:
    """The body would run on the client's loop while the call blocks the caller's: one that
    waits on the caller's loop (a queue fed by a task) hung forever, and no timeout fired."""
    url = f"{uvicorn_server.url}/echo"

    async def main() -> None:
        queue: asyncio.Queue[bytes | None] = asyncio.Queue()

        async def feed() -> None:
            for word in (b"alpha ", b"beta"):
                await queue.put(word)
            await queue.put(None)

        async def body() -> AsyncIterator[bytes]:
            while (item := await queue.get()) is not None:
                yield item

        def awaitables() -> Iterator[Any]:
            yield b"first "
            yield queue.get()

        feeder = asyncio.create_task(feed())
        with ferryman.Client(trust_env=False, timeout=2) as client:
            with pytest.raises(RuntimeError, match=r"running event loop.*AsyncClient"):
                client.post(url, content=body())
            with pytest.raises(RuntimeError, match="AsyncClient"):
                client.post(url, data=body())
            with pytest.raises(RuntimeError, match="yielding awaitables"):
                client.post(url, data=awaitables())
            # What needs no loop still goes, from the same place.
            assert client.post(url, content=b"bytes").json()["body"] == "bytes"
            assert client.post(url, data=iter([b"a", b"b"])).json()["body"] == "ab"
        # The async client runs the body on this loop, so the same body goes through.
        async with ferryman.AsyncClient(trust_env=False, timeout=2) as async_client:
            response = await async_client.post(url, content=body())
        assert response.json()["body"] == "alpha beta"
        await feeder

    asyncio.run(main())


def test_an_async_body_from_plain_code_still_goes(uvicorn_server: UvicornServer) -> None:
    async def body() -> AsyncIterator[bytes]:
        for word in (b"alpha ", b"beta"):
            await asyncio.sleep(0)
            yield word

    with ferryman.Client(trust_env=False) as client:
        response = client.post(f"{uvicorn_server.url}/echo", content=body())
    assert response.json()["body"] == "alpha beta"


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
