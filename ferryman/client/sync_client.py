"""``Client``: the session client for plain (non-async) code.

It runs an :class:`AsyncClient` on a private event loop in a daemon thread and waits for each
call, the way the sync connection pool does: one implementation of every behaviour (auth,
redirects, cookies, events), tested once.

Where it can be called from:

- plain code and any number of threads at once (calls are queued onto the private loop);
- the thread of a running event loop (inside a coroutine, a callback, a Jupyter cell): the call
  blocks that loop while it waits, as any blocking I/O would. Code that is async anyway should
  use ``AsyncClient``.

What the caller hands over runs on the private loop, while the caller's loop is blocked. So an
async body (an async generator, or a generator yielding awaitables) is refused there with a
RuntimeError: one that waits on the caller's loop (an ``asyncio.Queue`` fed by a task) would
wait forever, and no timeout covers waiting for a body's next chunk. Event handlers run on the
private loop's thread; they may be sync or async, but must not wait on the caller's loop either,
nor call the same ``Client`` synchronously (that would wait on itself: it raises RuntimeError).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import warnings
from collections.abc import AsyncIterable, Iterable, Iterator
from types import TracebackType
from typing import Any

from wsproto.extensions import Extension

from ferryman.client.hooks import EventHandlers
from ferryman.client.session import AsyncClient
from ferryman.client.transport.sync import LoopThread, SyncResponseStream
from ferryman.client.websocket import WebSocketConnection
from ferryman.events import EventDispatcher
from ferryman.http.cookies import Cookies
from ferryman.http.headers import Headers
from ferryman.http.request import Request
from ferryman.http.response import Response
from ferryman.http.streams import AsyncByteStream, SyncByteStream
from ferryman.http.url import URL

__all__ = ["Client", "SyncWebSocket"]


class Client:
    """The synchronous twin of :class:`AsyncClient`; takes the same options and has the same
    methods. Use it as ``with Client() as client:`` so its connections and thread close."""

    def __init__(self, **options: Any) -> None:
        self._portal = LoopThread()
        self._closed = False
        try:
            self._client: AsyncClient = self._portal.run(_make_client(options))
        except BaseException:
            self._portal.close()
            self._closed = True
            raise

    # -- what the session holds ---------------------------------------------------------------

    @property
    def headers(self) -> Headers:
        return self._client.headers

    @property
    def cookies(self) -> Cookies:
        return self._client.cookies

    @property
    def dispatcher(self) -> EventDispatcher | None:
        return self._client.dispatcher

    def event(self, name: str) -> EventHandlers:
        return self._client.event(name)

    def build_request(self, method: str, url: URL | str, **kwargs: Any) -> Request:
        return self._client.build_request(method, url, **kwargs)

    # -- verbs --------------------------------------------------------------------------------

    def get(self, url: URL | str, **kwargs: Any) -> Any:
        return self.request("GET", url, **kwargs)

    def options(self, url: URL | str, **kwargs: Any) -> Response:
        return self.request("OPTIONS", url, **kwargs)  # type: ignore[no-any-return]

    def head(self, url: URL | str, **kwargs: Any) -> Response:
        return self.request("HEAD", url, **kwargs)  # type: ignore[no-any-return]

    def post(self, url: URL | str, **kwargs: Any) -> Response:
        return self.request("POST", url, **kwargs)  # type: ignore[no-any-return]

    def put(self, url: URL | str, **kwargs: Any) -> Response:
        return self.request("PUT", url, **kwargs)  # type: ignore[no-any-return]

    def patch(self, url: URL | str, **kwargs: Any) -> Response:
        return self.request("PATCH", url, **kwargs)  # type: ignore[no-any-return]

    def delete(self, url: URL | str, **kwargs: Any) -> Response:
        return self.request("DELETE", url, **kwargs)  # type: ignore[no-any-return]

    def request(self, method: str, url: URL | str, **kwargs: Any) -> Any:
        if self._closed:
            raise RuntimeError("this client has been closed")
        if ("content" in kwargs or "data" in kwargs) and _in_running_loop():
            kwargs = _without_loop_bound_body(kwargs)
        result = self._portal.run(self._client.request(method, url, **kwargs))
        if isinstance(result, Response):
            self._to_sync(result)
            for previous in result.history:
                self._to_sync(previous)
        elif isinstance(result, WebSocketConnection):
            return SyncWebSocket(result, self._portal)
        return result

    def _to_sync(self, response: Response) -> None:
        """Let plain code read a body the async client left on the wire (``stream=True``)."""
        stream = response.stream
        if isinstance(stream, AsyncByteStream) and not isinstance(stream, SyncByteStream):
            response.stream = SyncResponseStream(stream, self._portal)

    # -- closing ------------------------------------------------------------------------------

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            try:
                self._portal.run(self._client.aclose())
            finally:
                self._portal.close()

    @property
    def is_closed(self) -> bool:
        return self._closed

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __del__(self) -> None:
        if not getattr(self, "_closed", True):
            warnings.warn(
                f"{self!r} was not closed; use `with Client()` or call client.close()",
                ResourceWarning,
                stacklevel=2,
            )
            # The collector may run this on any thread, even the client's own loop thread,
            # where a blocking close cannot run; the loop thread's finalizer still stops it.
            with contextlib.suppress(Exception):
                self.close()

    def __repr__(self) -> str:
        return f"<Client {'closed' if self._closed else 'open'}>"


class SyncWebSocket:
    """A WebSocket opened by :class:`Client`: the same calls as
    :class:`WebSocketConnection`, blocking. The handler's callbacks run on the client's loop
    thread; ``for message in ws`` reads messages when no handler takes them."""

    def __init__(self, connection: WebSocketConnection, portal: LoopThread) -> None:
        self.connection = connection
        self._portal = portal

    @property
    def closed(self) -> bool:
        return self.connection.closed

    @property
    def close_code(self) -> int | None:
        return self.connection.close_code

    @property
    def close_reason(self) -> str:
        return self.connection.close_reason

    @property
    def subprotocol(self) -> str | None:
        return self.connection.subprotocol

    @property
    def extensions(self) -> tuple[Extension, ...]:
        return self.connection.extensions

    def send(self, message: str | bytes) -> None:
        self._portal.run(self.connection.send(message))

    write = send

    def ping(self, data: bytes = b"") -> None:
        self._portal.run(self.connection.ping(data))

    def close(self, code: int = 1000, reason: str = "") -> None:
        self._portal.run(self.connection.close(code, reason))

    def wait_closed(self) -> None:
        self._portal.run(self.connection.wait_closed())

    def __iter__(self) -> Iterator[str | bytes]:
        while True:
            try:
                yield self._portal.run(_next_message(self.connection))
            except StopAsyncIteration:
                return

    def __enter__(self) -> SyncWebSocket:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


async def _next_message(connection: WebSocketConnection) -> str | bytes:
    return await connection.__anext__()


def _in_running_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


_ASYNC_BODY_IN_LOOP = (
    "ferryman.Client was called from a running event loop with {} as the request body. The "
    "body would run on the client's own loop while this call blocks yours, so anything it waits "
    "for from your loop (a queue, an event, a task) would never come. In async code, use "
    "ferryman.AsyncClient and await it; or send bytes, a file or a plain iterable."
)


def _without_loop_bound_body(kwargs: dict[str, Any]) -> dict[str, Any]:
    """The call's arguments once its body is known not to need the caller's (blocked) loop.

    An async iterable is refused at once. A plain iterator passed as ``data`` may yield
    awaitables (``AwaitingIteratorByteStream``), which nothing shows before it runs: it is
    wrapped so that the first awaitable raises the same error instead of running."""
    for name in ("content", "data"):
        body = kwargs.get(name)
        if isinstance(body, AsyncIterable) and not isinstance(body, SyncByteStream):
            raise RuntimeError(
                _ASYNC_BODY_IN_LOOP.format(f"an async iterable ({type(body).__name__})")
            )
    data = kwargs.get("data")
    if isinstance(data, Iterator) and not hasattr(data, "read"):
        kwargs = {**kwargs, "data": _refusing_awaitables(data)}
    return kwargs


def _refusing_awaitables(items: Iterable[Any]) -> Iterator[Any]:
    for item in items:
        if inspect.isawaitable(item):
            if inspect.iscoroutine(item):
                item.close()  # never awaited: closed so that no warning follows
            raise RuntimeError(_ASYNC_BODY_IN_LOOP.format("a generator yielding awaitables"))
        yield item


async def _make_client(options: dict[str, Any]) -> AsyncClient:
    # Built on the private loop: anything the client binds to a loop binds to that one.
    return AsyncClient(**options)
