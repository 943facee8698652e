"""The client's HTTP cache: :class:`HttpCache` (the rules and the store) and the transport
layer that applies it (:class:`CachingTransport`).

The layer wraps the client's transport *outside* the filterable one, so a hit is answered
before ``http_client.filter.*`` is dispatched, as HARP documents for its cache: listeners see
only what goes to the network (misses, validations). Off unless asked for
(``AsyncClient(cache=True)`` or ``cache=HttpCache(...)``): a private cache then, for one user,
which may keep ``private`` answers; the proxy's is shared (``HttpCache(shared=True)``).

What each response says about the cache is ``response.extensions["cache_status"]``: ``HIT``
(fresh, from the store; a 304 when the request's own ``If-None-Match`` or
``If-Modified-Since`` is satisfied by it), ``STALE`` (served stale: stale-while-revalidate,
max-stale or stale-if-error), ``REVALIDATED`` (the origin's 304 confirmed the stored one),
``MISS``. Hits carry ``Age``.

A body is stored once read to its end, whole and at most ``max_object_size`` bytes; a larger
one streams on unstored (nothing past the limit is held). Background validations
(stale-while-revalidate) run as tasks, one per key at a time, at most
``max_background`` at once; past that, the stale answer is served without one.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Final

from ferryman.client.cache.stores import CacheStore, MemoryStore
from ferryman.client.filtering import AsyncTransport
from ferryman.exceptions import TransportError
from ferryman.http.caching import (
    CONDITIONAL_FIELDS,
    REVALIDATE,
    USE,
    USE_STALE,
    CacheEntry,
    CachePolicy,
    CacheRequest,
    conditional_headers,
    related_locations,
)
from ferryman.http.headers import Headers
from ferryman.http.request import Request
from ferryman.http.response import Response
from ferryman.http.streams import EMPTY_STREAM, AsyncByteStream
from ferryman.http.url import URL

__all__ = ["DEFAULT_MAX_OBJECT_SIZE", "CachingTransport", "HttpCache", "StoredBody"]

logger = logging.getLogger("ferryman.cache")

#: The largest body stored by default; larger ones stream through unstored.
DEFAULT_MAX_OBJECT_SIZE: Final = 8 * 1024 * 1024
#: Saves a whole body with the entry it belongs to.
_Store = Callable[[bytes], Awaitable[None]]


class HttpCache:
    """What a client caches with: the store (a :class:`MemoryStore` unless given), the
    policy (``shared``, ``ttl`` replacing the origin's freshness, ``heuristic`` freshness,
    ``store_validated``: answers with only a validator stored and revalidated on each use,
    ``methods`` answered: GET and HEAD) and the largest body stored."""

    def __init__(
        self,
        store: CacheStore | None = None,
        *,
        shared: bool = False,
        ttl: float | None = None,
        heuristic: bool = False,
        store_validated: bool = False,
        methods: frozenset[str] = frozenset({"GET", "HEAD"}),
        max_object_size: int = DEFAULT_MAX_OBJECT_SIZE,
        max_background: int = 64,
    ) -> None:
        self.store = MemoryStore() if store is None else store
        self.policy = CachePolicy(
            shared=shared,
            ttl=ttl,
            heuristic=heuristic,
            store_validated=store_validated,
            methods=frozenset(method.upper().encode("ascii") for method in methods),
        )
        self.max_object_size = max_object_size
        self.max_background = max_background
        self._background: dict[str, asyncio.Task[None]] = {}

    @staticmethod
    def key(url: URL) -> str:
        """A request's primary cache key: its URL without the fragment."""
        text = str(url)
        return text.split("#", 1)[0]

    async def aclose(self) -> None:
        for task in list(self._background.values()):
            task.cancel()
        await self.store.aclose()

    def __repr__(self) -> str:
        kind = "shared" if self.policy.shared else "private"
        return f"<HttpCache {kind} {self.store!r}>"


class CachingTransport:
    """Answers from ``cache`` what it may, sends the rest through ``transport``."""

    def __init__(self, transport: AsyncTransport, cache: HttpCache) -> None:
        self.transport = transport
        self.cache = cache

    async def handle_async_request(self, request: Request) -> Response:
        cache = self.cache
        method = request.method.encode("ascii")
        raw_headers = request.headers.raw
        seen = cache.policy.request(method, raw_headers)
        if seen is None:
            response = await self.transport.handle_async_request(request)
            if cache.policy.invalidates(method, response.status_code):
                await self._invalidate(request.url, response)
            return response
        key = cache.key(request.url)
        variants = await cache.store.get(key) or []
        now = time.time()
        found = cache.policy.lookup(seen, variants, now) if variants else None
        if found is not None:
            if found.action == USE:
                if seen.conditional and cache.policy.not_modified(seen, found.entry):
                    return _not_modified(cache.policy, found.entry, request, now)
                return _from_entry(found.entry, request, "HIT", now)
            if found.action == USE_STALE:
                return _from_entry(found.entry, request, "STALE", now)
            if found.action == REVALIDATE:
                self._revalidate_later(key, request, seen, found.entry, variants)
                return _from_entry(found.entry, request, "STALE", now)
        if b"only-if-cached" in seen.directives:
            return Response(
                504,
                json={"status": 504, "message": "not in the cache"},
                request=request,
                extensions={"cache_status": "MISS"},
            )
        stale = None if found is None else found.entry
        return await self._fetch(key, request, seen, variants, stale)

    async def _fetch(
        self,
        key: str,
        request: Request,
        seen: CacheRequest,
        variants: list[CacheEntry],
        stale: CacheEntry | None,
    ) -> Response:
        """Ask the origin: conditionally when a stored response can be validated (and the
        request carries no conditions of its own), then store, merge or fall back on it."""
        cache = self.cache
        policy = cache.policy
        sent = request
        validating = (
            stale is not None
            and stale.has_validators
            and seen.method == b"GET"
            and not any(name.lower() in CONDITIONAL_FIELDS for name, _ in seen.headers)
        )
        if validating:
            assert stale is not None
            sent = _with_fields(request, conditional_headers(stale))
        request_time = time.time()
        try:
            response = await self.transport.handle_async_request(sent)
        except TransportError:
            if stale is not None and policy.usable_on_error(stale, seen, time.time()):
                return _from_entry(stale, request, "STALE", time.time())
            raise
        response_time = time.time()
        status = response.status_code
        if validating and status == 304:
            assert stale is not None
            await response.aclose()
            fresh = policy.freshen(
                stale, seen, 304, response.headers.raw, request_time, response_time
            )
            if fresh is None:
                return await self._fetch(key, request, seen, variants, None)
            await cache.store.put(key, _replace(variants, stale, fresh))
            return _from_entry(fresh, request, "REVALIDATED", response_time)
        if (
            status >= 500
            and stale is not None
            and policy.usable_on_error(stale, seen, response_time)
        ):
            await response.aclose()
            return _from_entry(stale, request, "STALE", response_time)
        response.extensions["cache_status"] = "MISS"
        if seen.method != b"GET":
            return response
        entry = policy.store(
            seen,
            status,
            response.extensions.get("reason_phrase", b"") or b"",
            response.headers.raw,
            request_time,
            response_time,
        )
        if entry is None:
            return response
        length = response.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > cache.max_object_size:
            return response
        stream = response.stream
        if isinstance(stream, AsyncByteStream):
            response.stream = _StoringStream(
                stream, cache.max_object_size, self._storer(key, variants, entry)
            )
        return response

    def _storer(self, key: str, variants: list[CacheEntry], entry: CacheEntry) -> _Store:
        store = self.cache.store

        async def save(body: bytes) -> None:
            entry.body = body
            kept = [old for old in variants if old.vary != entry.vary]
            await store.put(key, [*kept, entry])

        return save

    def _revalidate_later(
        self,
        key: str,
        request: Request,
        seen: CacheRequest,
        entry: CacheEntry,
        variants: list[CacheEntry],
    ) -> None:
        background = self.cache._background
        if key in background or len(background) >= self.cache.max_background:
            return

        async def revalidate() -> None:
            try:
                response = await self._fetch(key, request, seen, variants, entry)
                await response.aread()  # (a stored miss is saved once read to its end)
            except Exception as exc:  # a background validation has nobody to tell but the log
                logger.info("cache: background validation of %s failed: %s", key, exc)
            finally:
                background.pop(key, None)

        background[key] = asyncio.get_running_loop().create_task(revalidate())

    async def _invalidate(self, url: URL, response: Response) -> None:
        """RFC 9111 section 4.4: the target, and same-origin Location/Content-Location."""
        store = self.cache.store
        await store.delete(self.cache.key(url))
        for location in related_locations(response.headers.raw):
            try:
                target = url.join(location.decode("latin-1"))
            except ValueError:
                continue
            if target.origin == url.origin:
                await store.delete(self.cache.key(target))

    async def aclose(self) -> None:
        await self.transport.aclose()
        await self.cache.aclose()

    def __getattr__(self, name: str) -> object:
        # Pool introspection (``connections``...) passes through to the wrapped transport.
        return getattr(self.transport, name)


def _from_entry(entry: CacheEntry, request: Request, status: str, now: float) -> Response:
    """A stored response as the client's: its fields, ``Age``, its length, its body (none
    for HEAD, whose Content-Length still says what a GET would get)."""
    body = entry.body
    raw = [
        *entry.headers,
        (b"Age", b"%d" % int(entry.age(now))),
        (b"Content-Length", b"%d" % len(body)),
    ]
    head = request.method == "HEAD"
    response = Response(
        entry.status,
        headers=Headers.from_raw(raw),
        stream=EMPTY_STREAM if head or not body else StoredBody(body),
        extensions={
            "cache_status": status,
            "http_version": b"HTTP/1.1",
            "reason_phrase": entry.reason,
        },
        request=request,
    )
    return response


def _not_modified(policy: CachePolicy, entry: CacheEntry, request: Request, now: float) -> Response:
    """The 304 for a conditional request that the fresh ``entry`` satisfies (RFC 9111 section
    4.3.2): what the origin would have answered, without asking it."""
    raw = [*policy.not_modified_fields(entry), (b"Age", b"%d" % int(entry.age(now)))]
    return Response(
        304,
        headers=Headers.from_raw(raw),
        stream=EMPTY_STREAM,
        extensions={"cache_status": "HIT", "http_version": b"HTTP/1.1"},
        request=request,
    )


def _with_fields(request: Request, fields: list[tuple[bytes, bytes]]) -> Request:
    headers = request.headers.copy()
    for name, value in fields:
        headers[name.decode("ascii")] = value.decode("latin-1")
    return Request(
        request.method,
        request.url,
        headers=headers,
        stream=request.stream,
        extensions=request.extensions,
    )


def _replace(variants: list[CacheEntry], old: CacheEntry, new: CacheEntry) -> list[CacheEntry]:
    return (
        [new if entry is old else entry for entry in variants]
        if old in variants
        else [
            *variants,
            new,
        ]
    )


class StoredBody(AsyncByteStream):
    """A stored body: already whole, so ``read_if_complete`` answers without a coroutine (and
    a server sends it without a coroutine per chunk: the proxy's general path uses it too)."""

    __slots__ = ("_body",)

    def __init__(self, body: bytes) -> None:
        self._body = body

    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield self._body

    async def aread(self) -> bytes:
        return self._body

    def read_if_complete(self) -> bytes | None:
        return self._body


class _StoringStream(AsyncByteStream):
    """The origin's body on its way to the caller, copied until ``limit`` bytes; stored when
    it ends whole within the limit (an error, a close before the end or the limit: not)."""

    __slots__ = ("_done", "_inner", "_limit", "_parts", "_save", "_size")

    def __init__(self, inner: AsyncByteStream, limit: int, save: _Store) -> None:
        self._inner = inner
        self._limit = limit
        self._save = save
        self._parts: list[bytes] | None = []
        self._size = 0
        self._done = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._inner:
            parts = self._parts
            if parts is not None:
                self._size += len(chunk)
                if self._size > self._limit:
                    self._parts = None  # too large: streams on, unstored and unheld
                else:
                    parts.append(bytes(chunk))
            yield chunk
        parts = self._parts
        self._parts = None
        if parts is not None and not self._done:
            self._done = True
            await self._save(b"".join(parts))

    async def aclose(self) -> None:
        self._parts = None
        await self._inner.aclose()
