"""The endpoint's HTTP cache on the general path: the relay's cache, consulted from the handler.

An endpoint whose requests take the general path (``request_options``, a ``core.*`` or
``http_client.filter.*`` listener) keeps its cache: :class:`GeneralCache` drives the *same*
:class:`~ferryman.proxy.relay_cache.RelayCache` as the fast relay (one store, one key scheme
— the endpoint, the client's ``Host`` and target —, one policy, one set of counts), so an
answer the relay stored is a hit here and the other way round, and the ``X-Cache``/``Age``
headers, the transaction's cache status (the access log's ``cache=``) and the metrics read
the same.

Where it sits: around the upstream call of :class:`~ferryman.proxy.handler.HTTPProxyHandler`,
after ``proxy.filter.request`` and the middleware's way in, *outside* the http client, so a
hit dispatches no ``http_client.filter.*`` event (issue 23; HARP's order): those listeners see
what goes to the network only (misses, validations). ``core.*`` and ``proxy.filter.*``
listeners and the middleware see every request, hits included.

What differs from the relay, and why:

* The request fields the cache reads (``Cache-Control``, ``Authorization``, ``Vary``'s) are the
  request's as the handler holds it after ``proxy.filter.request`` (a listener's changes count),
  the relay's the client's; the validators of a conditional request go upstream only.
* An upstream URL a middleware chose itself (``ctx.upstream_request.url`` replaced) is not the
  endpoint's: such a request is relayed uncached (the key would name the wrong resource).
* stale-while-revalidate asks the origin through the handler's own session and request options
  (a client certificate the endpoint needs goes along); the relay uses the system's client.
* A store that answers asynchronously (Redis) is awaited in the request's own task: no pause
  of the client's connection and no ``MAX_PENDING`` bound on lookups (each has the store's
  timeout).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Final

from ferryman.client.cache.layer import StoredBody
from ferryman.http.caching import (
    CONDITIONAL_FIELDS,
    REVALIDATE,
    USE,
    USE_STALE,
    CacheEntry,
    CacheRequest,
    conditional_headers,
)
from ferryman.http.headers import Headers
from ferryman.http.models import Request, Response
from ferryman.http.streams import EMPTY_STREAM, AsyncByteStream, ByteStream
from ferryman.proxy.errors import UNAVAILABLE, UpstreamError, error_response
from ferryman.proxy.relay_cache import RelayCache, Revalidator, invalidate_related
from ferryman.proxy.transactions import Transaction

__all__ = ["CACHE_ANSWER", "GeneralCache", "stored_response"]

_GET: Final = b"GET"
_HEAD: Final = b"HEAD"
_SAFE: Final = frozenset({b"GET", b"HEAD", b"OPTIONS", b"TRACE"})
_MISS: Final = (b"X-Cache", b"MISS")
#: The response extension that marks an answer the cache made (a stored one, a 504 for
#: ``only-if-cached``): its transaction's response was told already, no upstream sent it.
CACHE_ANSWER: Final = "ferryman.cache_answer"

#: The upstream call: its answer (head processed, body streaming) or why there is none.
UpstreamCall = Callable[[], Awaitable["Response | UpstreamError"]]


class GeneralCache:
    """One endpoint's :class:`RelayCache`, for the general path (see the module)."""

    __slots__ = ("cache",)

    def __init__(self, cache: RelayCache) -> None:
        self.cache = cache

    async def forward(
        self,
        request_headers: list[tuple[bytes, bytes]],
        host: bytes,
        target: bytes,
        upstream: Request,
        transaction: Transaction | None,
        call: UpstreamCall,
        revalidator: Revalidator | None,
    ) -> Response | UpstreamError:
        """Answer from the store when it may, else ``call()`` the upstream (conditionally when
        a stored answer can be validated) and store what may be stored as it streams by."""
        cache = self.cache
        method = upstream.method.encode("ascii")
        if method != _GET and method != _HEAD:
            cache.counts.bypass += 1
            result = await call()
            if (
                method not in _SAFE
                and isinstance(result, Response)
                and cache.policy.invalidates(method, result.status_code)
            ):
                invalidate_related(cache, cache.key_of(host, target), host, result.headers.raw)
            return result
        seen = cache.policy.request(method, request_headers)
        if seen is None:
            cache.counts.bypass += 1
            return await call()
        key = cache.key_of(host, target)
        store = cache.store
        variants = (store.get_now(key) if store.immediate else await store.get(key)) or []
        now = time.time()
        stale = None
        found = cache.policy.lookup(seen, variants, now) if variants else None
        if found is not None:
            action = found.action
            if action == USE:
                if seen.conditional and cache.policy.not_modified(seen, found.entry):
                    return not_modified_response(cache, found.entry, now, transaction)
                return self._serve(found.entry, b"HIT", now, method, transaction)
            if action in (USE_STALE, REVALIDATE):
                if action == REVALIDATE and revalidator is not None:
                    url = str(upstream.url)
                    cache.revalidate_in_background(
                        revalidator, url, request_headers, seen, key, found.entry
                    )
                return self._serve(found.entry, b"STALE", now, method, transaction)
            stale = found.entry
        if b"only-if-cached" in seen.directives:
            cache.counts.miss += 1
            if transaction is not None:
                transaction.cache = "MISS"
            answer = error_response(504, "the answer is not in the cache")
            answer.extensions[CACHE_ANSWER] = "MISS"
            return answer
        validating = (
            stale is not None
            and stale.has_validators
            and seen.method == _GET
            and not any(name.lower() in CONDITIONAL_FIELDS for name, _ in request_headers)
        )
        if validating:
            assert stale is not None
            for name, value in conditional_headers(stale):
                upstream.headers[name.decode("ascii")] = value.decode("latin-1")
        request_time = time.time()
        result = await call()
        if validating and isinstance(result, Response) and result.status_code == 304:
            assert stale is not None
            revalidated, variants = await self._validated(
                result, key, seen, variants, stale, request_time, transaction
            )
            if revalidated is not None:
                return revalidated
            # (a 304 about another answer: the stored one is gone, ask for the whole answer)
            for name, _ in conditional_headers(stale):
                upstream.headers.pop(name.decode("ascii"), None)
            stale = None
            request_time = time.time()
            result = await call()
        if isinstance(result, UpstreamError):
            # (as the relay: an upstream that failed, not "none available", lets
            # stale-if-error answer)
            if (
                stale is not None
                and result.kind != UNAVAILABLE
                and cache.policy.usable_on_error(stale, seen, time.time())
            ):
                return self._serve(stale, b"STALE", time.time(), method, transaction)
            return result
        return await self._relayed(result, key, seen, variants, stale, request_time, transaction)

    async def _relayed(
        self,
        response: Response,
        key: str,
        seen: CacheRequest,
        variants: list[CacheEntry],
        stale: CacheEntry | None,
        request_time: float,
        transaction: Transaction | None,
    ) -> Response:
        """The upstream's answer to a request the cache looked at (a 304 to its validation
        was taken already: ``_validated``): a stale answer on a 5xx, or the answer itself
        marked ``MISS`` (and stored as it streams)."""
        cache = self.cache
        policy = cache.policy
        status = response.status_code
        now = time.time()
        method = seen.method
        if stale is not None and status >= 500 and policy.usable_on_error(stale, seen, now):
            await response.aclose()
            return self._serve(stale, b"STALE", now, method, transaction)
        cache.counts.miss += 1
        if transaction is not None:
            transaction.cache = "MISS"
        raw = response.headers.raw
        if method == _GET and self._storable_at_a_glance(raw):
            reason = response.extensions.get("reason_phrase", b"") or b""
            entry = policy.store(seen, status, reason, raw, request_time, now)
            length = response.headers.get("content-length")
            small = length is None or not length.isdigit() or int(length) <= cache.max_object_size
            stream = response.stream
            if entry is not None and small:
                if isinstance(stream, AsyncByteStream) and not isinstance(stream, ByteStream):
                    response.stream = _StoringBody(stream, self, key, variants, entry)
                elif isinstance(stream, ByteStream):
                    self._store(key, variants, entry, stream.content)
        response.headers = Headers.from_raw([*raw, _MISS])
        return response

    async def _validated(
        self,
        response: Response,
        key: str,
        seen: CacheRequest,
        variants: list[CacheEntry],
        stale: CacheEntry,
        request_time: float,
        transaction: Transaction | None,
    ) -> tuple[Response | None, list[CacheEntry]]:
        """The origin's 304 to the cache's own validators, as the relay takes it
        (``CacheFill._validated``: never for the client, who asked unconditionally): the
        stored answer as the 304 updated it (``REVALIDATED``), or ``None`` when the 304 is
        about another answer; and the variants now stored."""
        await response.aclose()
        cache = self.cache
        now = time.time()
        fields = response.headers.raw
        outcome = cache.policy.validated(stale, seen, fields, request_time, now)
        kept = cache.keep_validated(key, variants, stale, outcome)
        if outcome.answer is None:
            return None, kept
        return self._serve(outcome.answer, b"REVALIDATED", now, seen.method, transaction), kept

    def _storable_at_a_glance(self, fields: list[tuple[bytes, bytes]]) -> bool:
        """As the relay decides before parsing (``CacheFill._storable_at_a_glance``): without
        ``Cache-Control`` or ``Expires`` (and no TTL of the endpoint's) nothing is stored."""
        if self.cache.policy.ttl is not None:
            return True
        return any(name.lower() in (b"cache-control", b"expires") for name, _ in fields)

    def _store(self, key: str, variants: list[CacheEntry], entry: CacheEntry, body: bytes) -> None:
        entry.body = body
        kept = [old for old in variants if old.vary != entry.vary]
        self.cache.put(key, [*kept, entry])

    def _serve(
        self,
        entry: CacheEntry,
        status: bytes,
        now: float,
        method: bytes,
        transaction: Transaction | None,
    ) -> Response:
        return stored_response(self.cache, entry, status, now, method, transaction)


def stored_response(
    cache: RelayCache,
    entry: CacheEntry,
    status: bytes,
    now: float,
    method: bytes,
    transaction: Transaction | None,
) -> Response:
    """A stored answer as the relay writes it (``RelayCache.serve``): its fields, ``Age``,
    ``X-Cache`` and its length (a HEAD's says what a GET would get, with no body), counted
    and told to the transaction; for the answers that listeners and middleware see (the
    general path's, and the relay's with events: :mod:`ferryman.proxy.relay_events_cache`)."""
    counts = cache.counts
    if status == b"HIT":
        counts.hit += 1
    elif status == b"STALE":
        counts.stale += 1
    else:
        counts.revalidated += 1
    added = [(b"Age", b"%d" % int(entry.age(now))), (b"X-Cache", status)]
    code = entry.status
    body = entry.body
    fields = [*entry.headers, *added]
    if code != 204 and code != 304:
        fields.append((b"Content-Length", b"%d" % len(body)))
    if transaction is not None:
        transaction.cache = status.decode("ascii")
        lines = entry.header_lines() + b"".join(n + b": " + v + b"\r\n" for n, v in added)
        transaction.dispatch_response(code, entry.reason, lines)
    if method == _HEAD or code == 204 or code == 304:
        stream: AsyncByteStream = EMPTY_STREAM
    else:
        stream = StoredBody(body)
    return Response(
        code,
        headers=Headers.from_raw(fields),
        stream=stream,
        extensions={
            CACHE_ANSWER: status.decode("ascii"),
            "cache_status": status.decode("ascii"),
            "reason_phrase": entry.reason,
        },
    )


def not_modified_response(
    cache: RelayCache, entry: CacheEntry, now: float, transaction: Transaction | None
) -> Response:
    """The 304 the relay writes for a client's own conditional request that the fresh
    ``entry`` satisfies (``RelayCache.not_modified``), as a response the listeners and the
    middleware see: the fields a 304 carries, ``Age`` and ``X-Cache: HIT``."""
    cache.counts.hit += 1
    fields = [
        *cache.policy.not_modified_fields(entry),
        (b"Age", b"%d" % int(entry.age(now))),
        (b"X-Cache", b"HIT"),
    ]
    if transaction is not None:
        transaction.cache = "HIT"
        lines = b"".join(name + b": " + value + b"\r\n" for name, value in fields)
        transaction.dispatch_response(304, b"Not Modified", lines)
    return Response(
        304,
        headers=Headers.from_raw(fields),
        stream=EMPTY_STREAM,
        extensions={CACHE_ANSWER: "HIT", "cache_status": "HIT", "reason_phrase": b"Not Modified"},
    )


class _StoringBody(AsyncByteStream):
    """The upstream's body on its way to the client, copied up to the endpoint's
    ``max_object_size`` and stored once it ended whole (a body that broke off, one the client
    left before its end, or a larger one: not stored; nothing past the limit is held)."""

    __slots__ = ("_cache", "_entry", "_inner", "_key", "_parts", "_size", "_variants")

    def __init__(
        self,
        inner: AsyncByteStream,
        cache: GeneralCache,
        key: str,
        variants: list[CacheEntry],
        entry: CacheEntry,
    ) -> None:
        self._inner = inner
        self._cache = cache
        self._key = key
        self._variants = variants
        self._entry: CacheEntry | None = entry
        self._parts: list[bytes] = []
        self._size = 0

    def _add(self, chunk: bytes) -> None:
        if self._entry is None:
            return
        self._size += len(chunk)
        if self._size > self._cache.cache.max_object_size:
            self._entry = None  # too large: it streams on, unstored and unheld
            self._parts = []
        else:
            self._parts.append(bytes(chunk))

    def _ended(self) -> None:
        entry, self._entry = self._entry, None
        if entry is not None:
            self._cache._store(self._key, self._variants, entry, b"".join(self._parts))
        self._parts = []

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._inner:
            self._add(chunk)
            yield chunk
        self._ended()

    async def aread(self) -> bytes:
        body = await self._inner.aread()
        self._add(body)
        self._ended()
        return body

    def read_if_complete(self) -> bytes | None:
        body = self._inner.read_if_complete()
        if body is not None:
            self._add(body)
            self._ended()
        return body

    async def aclose(self) -> None:
        self._entry = None  # (closed before its end: not stored)
        self._parts = []
        await self._inner.aclose()
