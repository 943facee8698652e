"""The JSON API over the stored transactions: a plain ASGI application, mounted at ``/api``.

No web framework: a handful of routes, each a coroutine that takes the request's path
parameters and query and returns ``(status, body)``. :class:`StorageAPI` is an ordinary ASGI
callable, so whoever serves it (the dashboard adds basic auth) wraps it like any other.

=======================================  ===================================================
``GET /api/transactions``                a page, newest first (filters: see ``openapi.py``)
``GET /api/transactions.har``            the same filters, as a HAR 1.2 file
``GET /api/transactions/stream``         server-sent events: each finished transaction
``GET /api/transactions/{id}``           one in full: heads, bodies, timings
``PUT|DELETE .../{id}/favourite``        mark or unmark (favourites outlive the retention)
``POST /api/transactions/{id}/replay``   send it again through its endpoint
``GET /api/facets``                      counts by endpoint, method, status class, tag
``GET /api/stats``                       per-minute series, percentiles, slow/failing routes
``GET /api/system``                      endpoints, upstreams, settings (secrets masked), size
``GET /api/openapi.json``                the OpenAPI 3 document of all this
=======================================  ===================================================
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Final
from urllib.parse import parse_qs

from ferryman.apps.storage import queries
from ferryman.apps.storage.openapi import openapi_document
from ferryman.apps.storage.present import detail, har_document, har_entry, live_summary, summary
from ferryman.apps.storage.recorder import Storage
from ferryman.apps.storage.replay import Replayer, ReplayError
from ferryman.server.controllers import Receive, Scope, Send

__all__ = ["PREFIX", "StorageAPI"]

logger = logging.getLogger("ferryman.storage")

PREFIX: Final = "/api"
#: Seconds between the stream's keep-alive comments (proxies close silent connections).
KEEPALIVE: Final = 15.0

Result = tuple[int, Any]
Handler = Callable[..., Awaitable[Result]]


class HTTPError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class StorageAPI:
    """The ASGI application; ``system`` is what ``GET /api/system`` shows (built on bound)."""

    def __init__(
        self,
        storage: Storage,
        replayer: Replayer | None = None,
        system: Callable[[], Mapping[str, Any]] | None = None,
        prefix: str = PREFIX,
    ) -> None:
        self.storage = storage
        self.replayer = replayer
        self.system = system or dict
        self.prefix = prefix.rstrip("/")
        identifier = r"(?P<id>[0-9a-f]{1,64})"
        self.routes: list[tuple[str, re.Pattern[str], Handler]] = [
            ("GET", re.compile(r"/transactions"), self.list_page),
            ("GET", re.compile(r"/transactions\.har"), self.har),
            ("GET", re.compile(rf"/transactions/{identifier}"), self.get),
            ("PUT", re.compile(rf"/transactions/{identifier}/favourite"), self.favourite),
            ("DELETE", re.compile(rf"/transactions/{identifier}/favourite"), self.unfavourite),
            ("POST", re.compile(rf"/transactions/{identifier}/replay"), self.replay),
            ("GET", re.compile(r"/facets"), self.facets),
            ("GET", re.compile(r"/stats"), self.stats),
            ("GET", re.compile(r"/system"), self.system_info),
            ("GET", re.compile(r"/openapi\.json"), self.openapi),
        ]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return  # lifespan and websockets: nothing to do here
        path: str = scope["path"]
        if not path.startswith(self.prefix):
            await _send_json(send, 404, _error(404, "not found"))
            return
        path = path[len(self.prefix) :].rstrip("/") or "/"
        method: str = scope["method"]
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
        if path == "/transactions/stream" and method == "GET":
            await self.stream(scope, receive, send)
            return
        allowed = []
        for route_method, pattern, handler in self.routes:
            match = pattern.fullmatch(path)
            if match is None:
                continue
            if route_method != method:
                allowed.append(route_method)
                continue
            try:
                status, body = await handler(query, scope, **match.groupdict())
            except HTTPError as exc:
                status, body = exc.status, _error(exc.status, exc.message)
            except queries.FilterError as exc:
                status, body = 400, _error(400, str(exc))
            except Exception as exc:
                logger.warning("storage API: %s %s failed: %r", method, path, exc)
                status, body = 503, _error(503, "the transaction database cannot be read now")
            headers = []
            if handler == self.har and status == 200:
                headers.append((b"content-disposition", b'attachment; filename="ferryman.har"'))
            await _send_json(send, status, body, headers)
            return
        if allowed:
            await _send_json(
                send,
                405,
                _error(405, f"use {', '.join(allowed)}"),
                [(b"allow", ", ".join(allowed).encode())],
            )
            return
        await _send_json(send, 404, _error(404, "not found"))

    # -- routes ---------------------------------------------------------------------------------

    async def list_page(self, query: dict[str, list[str]], scope: Scope) -> Result:
        filters = queries.Filters.from_query(query)
        limit = _int(query, "limit", 50)
        rows, following = await queries.list_transactions(
            self.storage.engine, filters, limit=limit, cursor=_last(query, "cursor")
        )
        return 200, {"items": [summary(row) for row in rows], "next": following}

    async def har(self, query: dict[str, list[str]], scope: Scope) -> Result:
        filters = queries.Filters.from_query(query)
        limit = _int(query, "limit", 1000)
        rows, _ = await queries.list_transactions(
            self.storage.engine, filters, limit=limit, cursor=_last(query, "cursor")
        )
        contents = await queries.get_many(self.storage.engine, rows)
        return 200, har_document([har_entry(row, contents) for row in reversed(rows)])

    async def get(self, query: dict[str, list[str]], scope: Scope, id: str) -> Result:
        row = await queries.get_transaction(self.storage.engine, id)
        if row is None:
            raise HTTPError(404, f"no transaction {id}")
        return 200, detail(row)

    async def favourite(self, query: dict[str, list[str]], scope: Scope, id: str) -> Result:
        return await self._set_favourite(id, True)

    async def unfavourite(self, query: dict[str, list[str]], scope: Scope, id: str) -> Result:
        return await self._set_favourite(id, False)

    async def _set_favourite(self, id: str, favourite: bool) -> Result:
        if not await queries.set_favourite(self.storage.engine, id, favourite):
            raise HTTPError(404, f"no transaction {id}")
        return 200, {"id": id, "favourite": favourite}

    async def replay(self, query: dict[str, list[str]], scope: Scope, id: str) -> Result:
        if self.replayer is None:
            raise HTTPError(501, "replay is not available here")
        row = await queries.get_transaction(self.storage.engine, id)
        if row is None:
            raise HTTPError(404, f"no transaction {id}")
        try:
            return 200, await self.replayer.replay(row, scope)
        except ReplayError as exc:
            raise HTTPError(exc.status, str(exc)) from None

    async def facets(self, query: dict[str, list[str]], scope: Scope) -> Result:
        filters = queries.Filters.from_query(query)
        return 200, await queries.facets(self.storage.engine, filters)

    async def stats(self, query: dict[str, list[str]], scope: Scope) -> Result:
        filters = queries.Filters.from_query(query)
        if filters.since is None:
            import time

            filters.since = time.time() - 3600
        bucket = _int(query, "bucket", 60)
        if bucket < 1:
            raise queries.FilterError("bucket: must be at least 1 second")
        return 200, await queries.stats(self.storage.engine, filters, bucket=float(bucket))

    async def system_info(self, query: dict[str, list[str]], scope: Scope) -> Result:
        storage = self.storage
        return 200, {
            **self.system(),
            "storage": {
                "available": storage.available,
                "recorded": storage.recorded,
                "dropped": storage.dropped,
                "queue_depth": storage.queue_depth,
                "size": await queries.storage_size(storage.engine, storage.settings.url),
            },
        }

    async def openapi(self, query: dict[str, list[str]], scope: Scope) -> Result:
        return 200, openapi_document(self.prefix)

    # -- the live stream --------------------------------------------------------------------

    async def stream(self, scope: Scope, receive: Receive, send: Send) -> None:
        broadcaster = self.storage.stream
        if len(broadcaster.subscribers) >= self.storage.settings.max_subscribers:
            await _send_json(send, 503, _error(503, "too many live subscribers"))
            return
        subscription = broadcaster.subscribe()
        disconnected = asyncio.Event()

        async def watch() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass
            disconnected.set()
            subscription.wakeup.set()

        watcher = asyncio.create_task(watch())
        try:
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [
                        (b"content-type", b"text/event-stream; charset=utf-8"),
                        (b"cache-control", b"no-store"),
                        (b"x-accel-buffering", b"no"),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": b": ok\n\n", "more_body": True})
            while not disconnected.is_set() and not subscription.closed:
                batch = await subscription.next(KEEPALIVE)
                chunks = []
                if subscription.missed:
                    chunks.append(f"event: missed\ndata: {subscription.missed}\n\n")
                    subscription.missed = 0
                for transaction in batch:
                    data = json.dumps(live_summary(transaction), separators=(",", ":"))
                    chunks.append(f"id: {transaction.id}\nevent: transaction\ndata: {data}\n\n")
                if not batch and not chunks:
                    chunks.append(": keep-alive\n\n")
                if disconnected.is_set():
                    break
                await send(
                    {
                        "type": "http.response.body",
                        "body": "".join(chunks).encode(),
                        "more_body": True,
                    }
                )
            with contextlib.suppress(Exception):
                await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            broadcaster.unsubscribe(subscription)
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await watcher


def _error(status: int, message: str) -> dict[str, Any]:
    return {"status": status, "message": message}


def _last(query: dict[str, list[str]], name: str) -> str | None:
    values = query.get(name)
    return values[-1] if values else None


def _int(query: dict[str, list[str]], name: str, default: int) -> int:
    value = _last(query, name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise queries.FilterError(f"{name}: {value!r} is not a whole number") from None


async def _send_json(
    send: Send, status: int, body: Any, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    data = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(data)).encode()),
                (b"cache-control", b"no-store"),
                *(headers or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": data})
