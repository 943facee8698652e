"""The transport core for plain (non-async) code.

Rather than a second, socket-based implementation that would drift from the async one, the
sync pool runs the async pool on an event loop in a private daemon thread and waits for each
step. One implementation, one set of tests for the protocol logic; the price is a thread hop
per step, which plain code calling a network API can afford.

Because the loop is private, a sync pool works from any thread, including one that runs an
event loop of its own (it never touches that loop). Calling it from a coroutine still blocks
that coroutine's loop for the duration of the call, as any blocking I/O would.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import weakref
from collections.abc import AsyncIterator, Coroutine, Iterator
from types import TracebackType
from typing import Any, TypeVar

from ferryman.client.transport.network import AsyncNetworkStream
from ferryman.client.transport.pool import AsyncConnectionPool
from ferryman.http.models import Request, Response
from ferryman.http.streams import AsyncByteStream, SyncByteStream

__all__ = ["ConnectionPool", "LoopThread", "NetworkStream"]

T = TypeVar("T")


class LoopThread:
    """An event loop running in a daemon thread, to which coroutines are submitted."""

    def __init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="ferryman-sync-loop", daemon=True
        )
        self._thread.start()
        self._finalizer = weakref.finalize(self, _stop_loop, self._loop, self._thread)

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        if threading.current_thread() is self._thread:
            coro.close()
            raise RuntimeError(
                "a synchronous ferryman call was made from a callback running on its own "
                "loop thread; make that callback async or hand the work to another thread"
            )
        future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        try:
            return future.result()
        except BaseException:
            future.cancel()
            raise

    def close(self) -> None:
        self._finalizer()


def _stop_loop(loop: asyncio.AbstractEventLoop, thread: threading.Thread) -> None:
    if loop.is_closed():
        return
    loop.call_soon_threadsafe(loop.stop)
    thread.join(timeout=5)
    if not thread.is_alive():
        loop.close()


class _SyncStream(SyncByteStream):
    """A response body of the async pool, read from plain code."""

    __slots__ = ("_iterator", "_portal", "_stream")

    def __init__(self, stream: AsyncByteStream, portal: LoopThread) -> None:
        self._stream = stream
        self._portal = portal
        self._iterator: AsyncIterator[bytes] | None = None

    def __iter__(self) -> Iterator[bytes]:
        iterator = self._iterator = self._stream.__aiter__()
        while True:
            try:
                yield self._portal.run(_anext(iterator))
            except StopAsyncIteration:
                return

    def read(self) -> bytes:
        return self._portal.run(self._stream.aread())

    def close(self) -> None:
        iterator = self._iterator
        if iterator is not None and hasattr(iterator, "aclose"):
            with contextlib.suppress(RuntimeError):
                self._portal.run(iterator.aclose())
        self._portal.run(self._stream.aclose())


async def _anext(iterator: AsyncIterator[bytes]) -> bytes:
    return await iterator.__anext__()


class NetworkStream:
    """The ``network_stream`` extension for plain code: the same calls, blocking."""

    def __init__(self, stream: AsyncNetworkStream, portal: LoopThread) -> None:
        self._stream = stream
        self._portal = portal

    def read(self, max_bytes: int = 65536, timeout: float | None = None) -> bytes:
        return self._portal.run(self._stream.read(max_bytes, timeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._portal.run(self._stream.write(buffer, timeout))

    def close(self) -> None:
        self._portal.run(self._stream.aclose())

    def start_tls(
        self,
        ssl_context: Any,
        server_hostname: str | bytes | None = None,
        timeout: float | None = None,
    ) -> NetworkStream:
        self._portal.run(self._stream.start_tls(ssl_context, server_hostname, timeout))
        return self

    def get_extra_info(self, info: str) -> Any:
        return self._stream.get_extra_info(info)


class ConnectionPool:
    """The sync twin of :class:`AsyncConnectionPool`; takes the same options.

    A ``trace`` callback is a plain function here; it is called on the pool's loop thread.
    """

    def __init__(self, **options: Any) -> None:
        self._portal = LoopThread()
        self._pool: AsyncConnectionPool = self._portal.run(_make_pool(options))

    def handle_request(self, request: Request) -> Response:
        response = self._portal.run(self._pool.handle_async_request(request))
        stream = response.stream
        assert isinstance(stream, AsyncByteStream)
        extensions = dict(response.extensions)
        network_stream = extensions.get("network_stream")
        if isinstance(network_stream, AsyncNetworkStream):
            extensions["network_stream"] = NetworkStream(network_stream, self._portal)
        return Response(
            response.status_code,
            headers=response.headers,
            stream=_SyncStream(stream, self._portal),
            extensions=extensions,
            request=request,
        )

    @property
    def connections(self) -> list[Any]:
        return self._pool.connections

    def close(self) -> None:
        if self._portal is not None:
            self._portal.run(self._pool.aclose())
            self._portal.close()

    def __enter__(self) -> ConnectionPool:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


async def _make_pool(options: dict[str, Any]) -> AsyncConnectionPool:
    return AsyncConnectionPool(**options)


SyncResponseStream = _SyncStream
"""A response body of the async pool, read from plain code (used by the sync session client)."""
