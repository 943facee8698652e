"""The HTTP cache on the fast relay: hits answered from stored bytes, misses stored as they
stream through, validation, stale answers, invalidation (RFC 9111 by :mod:`ferryman.http.caching`).

An endpoint's :class:`RelayCache` sees each request before a :class:`~ferryman.proxy.relay.Relay`
exists. A hit is written to the client as the stored head, an ``Age``, ``X-Cache`` and the
body, in one write, without touching the upstream pool. A miss gets a :class:`CacheFill`,
which the relay calls at four points (the answer's head, its body pieces, its end, a failure):
the head decides whether the answer may be stored (a few bytes searched first, so an answer
that says nothing about caching costs next to nothing), the pieces are copied up to
``max_object_size`` (past it the copy is dropped and the answer streams on), and the end
stores it. A stale stored answer with validators makes the request conditional; the
origin's 304 is merged and the stored body served (``REVALIDATED``); a client's own
conditional request that a fresh stored answer satisfies gets a 304 (``HIT``). A 5xx or a failed
upstream call serves a stored answer that stale-if-error allows (``STALE``).
stale-while-revalidate serves the stale answer at once and asks the origin through the
system's http client in the background (a 304 freshens it, anything else drops it, for the
next request to store through the relay).

With a store that answers asynchronously (Redis), the client's connection is paused while
the lookup runs (one task per lookup, at most ``MAX_PENDING`` at once: past that, requests go
upstream uncached); writes run as tasks too, bounded the same way. Unsafe methods invalidate
the target (and a same-origin ``Location``/``Content-Location``) when they succeed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Final

from ferryman.client.cache.stores import CacheStore
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
from ferryman.http.caching.policy import Validated
from ferryman.proxy.errors import error_body
from ferryman.proxy.transactions import Transaction, parse_header_block
from ferryman.server.protocol import ServerExchange, origin_form, status_line

if TYPE_CHECKING:
    from ferryman.proxy.relay import EndpointRelay, Relay

__all__ = ["CacheCounts", "CacheFill", "RelayCache", "RelayCaches", "invalidate_related"]

logger = logging.getLogger("ferryman.cache")

#: Asynchronous lookups (and, separately, writes) in flight per endpoint; past it, requests
#: go upstream uncached and answers are not stored, rather than tasks piling up.
MAX_PENDING: Final = 1024
_GET: Final = b"GET"
_HEAD: Final = b"HEAD"
_SAFE: Final = frozenset({b"GET", b"HEAD", b"OPTIONS", b"TRACE"})
#: A 304 merged in the background updates these only: the relayed head's other fields went
#: through the endpoint's header rules, which the http client's answer did not.
_FRESHNESS_FIELDS: Final = frozenset(
    {b"cache-control", b"expires", b"date", b"etag", b"last-modified", b"age", b"vary"}
)
_MISS_LINE: Final = b"X-Cache: MISS\r\n"
#: Request fields that change what a cache does with a request even when it holds nothing:
#: ``only-if-cached`` (a 504 at once), ``no-store`` and ``Range`` (not for the cache).
_ASKING_FIELDS: Final = frozenset({b"cache-control", b"pragma", b"range"})

#: Sends a GET for a background validation: ``(url, headers) -> (status, headers)``.
Fields = list[tuple[bytes, bytes]]
Revalidator = Callable[[str, Fields], Awaitable[tuple[int, Fields]]]


class CacheCounts:
    """Requests by cache status, and what the store could not do (the metrics read them)."""

    __slots__ = ("bypass", "hit", "miss", "revalidated", "skipped", "stale", "stored")

    def __init__(self) -> None:
        self.hit = self.miss = self.stale = self.revalidated = self.bypass = 0
        #: Answers stored, and lookups or writes skipped (too many in flight).
        self.stored = self.skipped = 0


class RelayCache:
    """One endpoint's cache on the relay (see the module documentation)."""

    __slots__ = (
        "_background",
        "_prefix",
        "_tasks",
        "counts",
        "max_object_size",
        "name",
        "policy",
        "probe",
        "revalidator",
        "store",
    )

    def __init__(
        self,
        name: str,
        store: CacheStore,
        policy: CachePolicy,
        max_object_size: int,
        revalidator: Revalidator | None = None,
    ) -> None:
        self.name = name
        self.store = store
        self.policy = policy
        self.max_object_size = max_object_size
        #: How stale-while-revalidate asks the origin (``None``: it is not asked).
        self.revalidator = revalidator
        self.counts = CacheCounts()
        self._prefix = name.encode("latin-1") + b"\x00"
        self._tasks: set[asyncio.Task[Any]] = set()
        self._background: set[str] = set()
        #: While the store holds nothing, a GET needs no key and no lookup: it is a miss, and
        #: its answer alone says whether it may be stored (the probe, one object shared by
        #: those requests; an API whose answers are never cacheable stays on this path).
        self.probe = CacheFill(self, "", None, [], None, probing=True)

    # -- requests -----------------------------------------------------------------------------

    def key(self, exchange: ServerExchange) -> str:
        """Endpoint, the client's Host (the relayed Location URLs name it) and target, as
        the upstream gets it: the target in origin form, the host in lower case (RFC 3986
        section 3.2.2), so that the forms of one URI are one key, and an unsafe request in
        any of them invalidates what another stored."""
        host = b""
        for name, value in exchange.headers:
            if name.lower() == b"host":
                host = value
                break
        target = exchange.target
        if target[:1] != b"/":
            target = origin_form(target)
        return self.key_of(host, target)

    def key_of(self, host: bytes, target: bytes) -> str:
        """:meth:`key` from its parts (``target`` in origin form): the general path's requests
        are models, not exchanges (:mod:`ferryman.proxy.general_cache`), and share the relay's
        entries through it."""
        return (self._prefix + host.lower() + b"\x00" + target).decode("latin-1")

    def on_request(
        self, endpoint: EndpointRelay, exchange: ServerExchange, transaction: Transaction | None
    ) -> None:
        method = exchange.method
        if method != _GET and method != _HEAD:
            fill = None
            if method not in _SAFE and not exchange.upgrade:
                fill = CacheFill(self, self.key(exchange), None, [], None)
            self.counts.bypass += 1
            endpoint.relay(exchange, transaction, fill)
            return
        store = self.store
        if store.holds_nothing() and not _asks_the_cache(exchange.headers):
            endpoint.relay(exchange, transaction, self.probe)  # (most requests: nothing stored)
            return
        seen = self.policy.request(method, exchange.headers)
        if seen is None:
            self.counts.bypass += 1
            endpoint.relay(exchange, transaction, None)
            return
        key = self.key(exchange)
        if store.immediate:
            self._decide(endpoint, exchange, transaction, seen, key, store.get_now(key))
            return

        def looked_up(variants: list[CacheEntry] | None) -> None:
            self._decide(endpoint, exchange, transaction, seen, key, variants)

        if not self.fetch(exchange, key, looked_up):
            endpoint.relay(exchange, transaction, None)

    def fetch(
        self,
        exchange: ServerExchange,
        key: str,
        then: Callable[[list[CacheEntry] | None], None],
    ) -> bool:
        """Look ``key`` up in a store that answers later: the client's connection paused
        meanwhile, ``then(variants)`` called once it answered (``None``: it failed), unless
        the client left. False, and nothing done, when ``MAX_PENDING`` lookups are in flight
        already (the request then goes upstream uncached)."""
        if len(self._tasks) >= MAX_PENDING:
            self.counts.skipped += 1
            return False
        exchange.pause_reading()  # (the relay resumes reading the body when it wants it)
        task = asyncio.get_running_loop().create_task(self.store.get(key))
        self._tasks.add(task)

        def looked_up(done: asyncio.Task[list[CacheEntry] | None]) -> None:
            self._tasks.discard(done)
            variants = None if done.cancelled() or done.exception() else done.result()
            if exchange.finished or exchange.protocol.transport is None:
                return  # (the client left meanwhile)
            exchange.resume_reading()
            then(variants)

        task.add_done_callback(looked_up)
        return True

    def _decide(
        self,
        endpoint: EndpointRelay,
        exchange: ServerExchange,
        transaction: Transaction | None,
        seen: CacheRequest,
        key: str,
        variants: list[CacheEntry] | None,
    ) -> None:
        found = None
        if variants:
            now = time.time()
            found = self.policy.lookup(seen, variants, now)
        stale = None
        if found is not None:
            action = found.action
            if action == USE:
                if seen.conditional and self.policy.not_modified(seen, found.entry):
                    self.not_modified(exchange, found.entry, now, transaction)
                    return
                self.serve(exchange, found.entry, b"HIT", now, transaction)
                return
            if action in (USE_STALE, REVALIDATE):
                self.serve(exchange, found.entry, b"STALE", now, transaction)
                if action == REVALIDATE:
                    self._revalidate_later(endpoint, exchange, seen, key, found.entry)
                return
            stale = found.entry
        if b"only-if-cached" in seen.directives:
            self.counts.miss += 1
            if transaction is not None:
                transaction.cache = "MISS"
            exchange.send_error(504, error_body(504, "the answer is not in the cache"))
            return
        fill = CacheFill(self, key, seen, variants or [], stale)
        if (
            stale is not None
            and stale.has_validators
            and seen.method == _GET
            and not any(name.lower() in CONDITIONAL_FIELDS for name, _ in exchange.headers)
        ):
            exchange.headers.extend(conditional_headers(stale))
            fill.validating = True
        endpoint.relay(exchange, transaction, fill)

    def serve(
        self,
        exchange: ServerExchange,
        entry: CacheEntry,
        status: bytes,
        now: float,
        transaction: Transaction | None,
    ) -> bool:
        """Answer from ``entry``: its head, ``Age``, ``X-Cache``, and its body (none for HEAD
        or a status without one). False when an answer has already begun."""
        if exchange.started or exchange.finished:
            return False
        code = entry.status
        body = entry.body
        lines = entry.header_lines() + b"Age: %d\r\nX-Cache: %s\r\n" % (int(entry.age(now)), status)
        if code != 204 and code != 304:
            lines += b"Content-Length: %d\r\n" % len(body)
        framing = b""
        if not exchange.keep_alive:
            framing = b"Connection: close\r\n"
        elif exchange.http_version == "1.0":
            framing = b"Connection: keep-alive\r\n"
        head = status_line(code, entry.reason or None) + lines + framing + b"\r\n"
        if exchange.method == _HEAD or code == 204 or code == 304:
            body = b""
        counts = self.counts
        if status == b"HIT":
            counts.hit += 1
        elif status == b"STALE":
            counts.stale += 1
        else:
            counts.revalidated += 1
        exchange.status = code
        if transaction is not None:
            transaction.cache = status.decode("ascii")
            transaction.dispatch_response(code, entry.reason, lines)
            if body:
                transaction.add_response_body(body)
        exchange.write(head + body if len(body) < 65536 else head)
        if len(body) >= 65536:
            exchange.write(body)
        exchange.finish(keep_alive=True)
        return True

    def not_modified(
        self,
        exchange: ServerExchange,
        entry: CacheEntry,
        now: float,
        transaction: Transaction | None,
    ) -> None:
        """The client's own conditional request matched the fresh ``entry`` (RFC 9111
        section 4.3.2): a 304 with the fields a 304 carries, ``Age`` and ``X-Cache: HIT``."""
        fields = self.policy.not_modified_fields(entry)
        lines = b"".join(name + b": " + value + b"\r\n" for name, value in fields)
        lines += b"Age: %d\r\nX-Cache: HIT\r\n" % int(entry.age(now))
        framing = b""
        if not exchange.keep_alive:
            framing = b"Connection: close\r\n"
        elif exchange.http_version == "1.0":
            framing = b"Connection: keep-alive\r\n"
        self.counts.hit += 1
        exchange.status = 304
        if transaction is not None:
            transaction.cache = "HIT"
            transaction.dispatch_response(304, b"Not Modified", lines)
        exchange.write(status_line(304, None) + lines + framing + b"\r\n")
        exchange.finish(keep_alive=True)

    def answer(self, relay: Relay, entry: CacheEntry, status: bytes, now: float) -> bool:
        """Answer ``relay``'s request from ``entry`` (a 304 merged, a stale answer): written
        at once (:meth:`serve`), or, with events, handed to the ways out and response
        listeners like any answer (``relay_events_cache``). False when an answer has begun."""
        filters = relay.endpoint.filters
        if relay.filter_event is None or filters is None:
            return self.serve(relay.exchange, entry, status, now, relay.transaction)
        return filters.cache_answer(relay, self, entry, status, now)

    # -- the store ----------------------------------------------------------------------------

    def put(self, key: str, entries: list[CacheEntry]) -> None:
        store = self.store
        self.counts.stored += 1
        if store.immediate:
            store.put_now(key, entries)
        else:
            self._spawn(store.put(key, entries))

    def keep_validated(
        self, key: str, variants: list[CacheEntry], stale: CacheEntry, outcome: Validated
    ) -> list[CacheEntry]:
        """Store what the origin's 304 to the validation of ``stale`` allows: the updated
        answer in its place, or (the 304 forbids storing it, or is about another answer)
        the variants without it. The variants now stored."""
        answer = outcome.answer
        if answer is not None and outcome.store:
            kept = _replace(variants, stale, answer)
            self.put(key, kept)
            return kept
        kept = [entry for entry in variants if entry is not stale]
        if kept:
            self.put(key, kept)
        else:
            self.invalidate(key)
        return kept

    def invalidate(self, key: str) -> None:
        store = self.store
        if store.immediate:
            store.delete_now(key)
        else:
            self._spawn(store.delete(key))

    def _spawn(self, work: Awaitable[Any]) -> None:
        if len(self._tasks) >= MAX_PENDING:
            self.counts.skipped += 1
            if asyncio.iscoroutine(work):
                work.close()
            return
        task = asyncio.get_running_loop().create_task(_run(work))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _revalidate_later(
        self,
        endpoint: EndpointRelay,
        exchange: ServerExchange,
        seen: CacheRequest,
        key: str,
        entry: CacheEntry,
    ) -> None:
        revalidator = self.revalidator
        if revalidator is None or key in self._background or len(self._tasks) >= MAX_PENDING:
            return
        pool = endpoint.pools[0]
        target = exchange.target if exchange.target[:1] == b"/" else origin_form(exchange.target)
        if endpoint.rewrite is not None:
            target = endpoint.rewrite.apply(target)
        url = pool.origin + (pool.base_path + target).decode("latin-1")
        self.revalidate_in_background(revalidator, url, exchange.headers, seen, key, entry)

    def revalidate_in_background(
        self,
        revalidator: Revalidator,
        url: str,
        request_headers: Fields,
        seen: CacheRequest,
        key: str,
        entry: CacheEntry,
    ) -> None:
        """stale-while-revalidate: ask ``url`` (with the request's fields that ``entry``
        varies on, and its validators) in a task; a 304 freshens the entry, anything else
        drops it. One at a time per key, at most ``MAX_PENDING`` tasks."""
        if key in self._background or len(self._tasks) >= MAX_PENDING:
            return
        varied = {name for name, _ in entry.vary}
        headers = [(n, v) for n, v in request_headers if n.lower() in varied]
        if entry.has_validators:
            headers += conditional_headers(entry)
        self._background.add(key)

        async def revalidate() -> None:
            try:
                request_time = time.time()
                status, fields = await revalidator(url, headers)
                now = time.time()
                fresh = None
                if status == 304:
                    updates = [(n, v) for n, v in fields if n.lower() in _FRESHNESS_FIELDS]
                    fresh = self.policy.freshen(entry, seen, 304, updates, request_time, now)
                if fresh is None:
                    self.invalidate(key)  # (the next request stores the new one, relayed)
                else:
                    variants = await self._variants(key)
                    kept = [old for old in variants if old.vary != fresh.vary]
                    self.put(key, [*kept, fresh])
            finally:
                self._background.discard(key)

        self._spawn(revalidate())

    async def _variants(self, key: str) -> list[CacheEntry]:
        store = self.store
        found = store.get_now(key) if store.immediate else await store.get(key)
        return found or []

    async def aclose(self) -> None:
        for task in list(self._tasks):
            task.cancel()


async def _run(work: Awaitable[Any]) -> None:
    try:
        await work
    except Exception as exc:  # (a store reports its own failures; this is anything else)
        logger.warning("cache: %s", exc)


class CacheFill:
    """What a :class:`RelayCache` does with one relayed answer: see the module documentation."""

    __slots__ = (
        "cache",
        "entry",
        "key",
        "parts",
        "probing",
        "request_time",
        "seen",
        "size",
        "stale",
        "validating",
        "variants",
    )

    def __init__(
        self,
        cache: RelayCache,
        key: str,
        seen: CacheRequest | None,
        variants: list[CacheEntry],
        stale: CacheEntry | None,
        *,
        probing: bool = False,
    ) -> None:
        self.cache = cache
        self.key = key
        #: The endpoint's shared :attr:`RelayCache.probe`: it decides from the answer's head
        #: alone, and hands a storable answer to a fill of the request's own.
        self.probing = probing
        #: ``None``: an unsafe request, watched for what it invalidates.
        self.seen = seen
        self.variants = variants
        #: A stored answer that validation, stale-if-error or a 304 may still use.
        self.stale = stale
        self.validating = False
        #: When the request went (only a validation needs it: a miss's age on arrival is
        #: taken from its response time, which undercounts it by one round trip at most).
        self.request_time = time.time() if stale is not None else 0.0
        #: The entry being filled and its body's pieces (``None``: nothing is being stored).
        self.entry: CacheEntry | None = None
        self.parts: list[bytes] | None = None
        self.size = 0

    def on_response(self, relay: Relay, status: int, reason: bytes, lines: bytes) -> bytes | None:
        """The answer's head: the lines to relay (with ``X-Cache``), or ``None`` when the
        cache answered the client instead (a 304 merged, a stale answer on a 5xx)."""
        cache = self.cache
        if self.probing:
            return self._probed(relay, status, reason, lines)
        seen = self.seen
        if seen is None:
            if cache.policy.invalidates(relay.exchange.method, status):
                self._invalidate(relay, lines)
            return lines
        stale = self.stale
        transaction = relay.transaction
        if stale is None and not (seen.method == _GET and self._storable_at_a_glance(lines)):
            cache.counts.miss += 1  # (most answers: nothing to store, nothing to fall back on)
            if transaction is not None:
                transaction.cache = "MISS"
            return lines + _MISS_LINE
        now = time.time()
        if stale is not None:
            if status == 304 and self.validating:
                if self._validated(relay, stale, seen, lines, now):
                    return None
            elif (
                status >= 500
                and cache.policy.usable_on_error(stale, seen, now)
                and cache.answer(relay, stale, b"STALE", now)
            ):
                return None
        cache.counts.miss += 1
        if transaction is not None:
            transaction.cache = "MISS"
        if seen.method == _GET and self._storable_at_a_glance(lines):
            entry = cache.policy.store(
                seen, status, reason, parse_header_block(lines), self.request_time or now, now
            )
            if entry is not None:
                length = relay.connection.content_length if relay.connection else None
                if length is None or length <= cache.max_object_size:
                    self.entry = entry
                    self.parts = []
        return lines + _MISS_LINE

    def _validated(
        self, relay: Relay, stale: CacheEntry, seen: CacheRequest, lines: bytes, now: float
    ) -> bool:
        """The origin's 304 to the cache's own validators: the client asked unconditionally
        and never gets it (RFC 9111 sections 4.3.3, 4.3.4). The stored answer as the 304
        updated it answers (``REVALIDATED``; stored again unless the 304 forbids it, then
        dropped); a 304 about another answer drops the stored one and the request goes again
        without the validators (a fill of its own in ``relay.cache_fill`` says so to the
        relay). True when one of those is under way."""
        cache = self.cache
        fields = parse_header_block(lines)
        outcome = cache.policy.validated(stale, seen, fields, self.request_time, now)
        self.variants = cache.keep_validated(self.key, self.variants, stale, outcome)
        answer = outcome.answer
        if answer is not None:
            return cache.answer(relay, answer, b"REVALIDATED", now)
        exchange = relay.exchange
        if exchange.started or exchange.finished:
            return False
        exchange.headers[:] = [
            (name, value)
            for name, value in exchange.headers
            if name.lower() not in CONDITIONAL_FIELDS  # (all the cache's: the client sent none)
        ]
        relay.cache_fill = CacheFill(cache, self.key, seen, self.variants, None)
        return True

    def _probed(self, relay: Relay, status: int, reason: bytes, lines: bytes) -> bytes | None:
        """The probe's answer: a miss, and an answer that may be stored handed to a fill of
        its own request (the probe itself is shared, and never changes)."""
        cache = self.cache
        exchange = relay.exchange
        if exchange.method == _GET and self._storable_at_a_glance(lines):
            seen = cache.policy.request(exchange.method, exchange.headers)
            if seen is None:  # (not for the cache after all)
                cache.counts.bypass += 1
                relay.cache_fill = None
                return lines
            fill = CacheFill(cache, cache.key(exchange), seen, [], None)
            relay.cache_fill = fill
            return fill.on_response(relay, status, reason, lines)
        cache.counts.miss += 1
        transaction = relay.transaction
        if transaction is not None:
            transaction.cache = "MISS"
        return lines + _MISS_LINE

    def _storable_at_a_glance(self, lines: bytes) -> bool:
        """Whether the head may allow storing at all: without ``Cache-Control``, ``Expires``
        or a validator (and no TTL of the endpoint's) it may not, and nothing is parsed."""
        policy = self.cache.policy
        if policy.ttl is not None:
            return True
        lower = lines.lower()
        if lower.find(b"cache-control:") >= 0 or lower.find(b"expires:") >= 0:
            return True
        return (policy.store_validated or policy.heuristic) and (
            lower.find(b"etag:") >= 0 or lower.find(b"last-modified:") >= 0
        )

    def add(self, data: bytes) -> None:
        parts = self.parts
        if parts is None:
            return
        self.size += len(data)
        if self.size > self.cache.max_object_size:
            self.parts = None  # too large: it streams on, unstored and unheld
            self.entry = None
        else:
            parts.append(bytes(data))

    def on_end(self) -> None:
        """The answer ended whole: store it."""
        entry = self.entry
        parts = self.parts
        if entry is None or parts is None:
            return
        self.entry = self.parts = None
        entry.body = b"".join(parts)
        kept = [old for old in self.variants if old.vary != entry.vary]
        self.cache.put(self.key, [*kept, entry])

    def on_error(self, relay: Relay) -> bool:
        """The upstream call failed before an answer: serve what stale-if-error allows."""
        stale = self.stale
        seen = self.seen
        self.entry = self.parts = None
        if stale is None or seen is None:
            return False
        now = time.time()
        if not self.cache.policy.usable_on_error(stale, seen, now):
            return False
        return self.cache.answer(relay, stale, b"STALE", now)

    def conditional(self, head: bytes) -> bytes:
        """A request head built by the events' code with the cache's validators in it (the
        relay's own head reads them from the exchange's fields)."""
        stale = self.stale
        if stale is None:
            return head
        fields = b"".join(
            name + b": " + value + b"\r\n" for name, value in conditional_headers(stale)
        )
        return head[:-2] + fields + b"\r\n"

    def _invalidate(self, relay: Relay, lines: bytes) -> None:
        exchange = relay.exchange
        if exchange.method == _GET:
            self.cache.invalidate(self.key)
            return
        host = next((v for n, v in exchange.headers if n.lower() == b"host"), None)
        invalidate_related(self.cache, self.key, host, parse_header_block(lines))


def invalidate_related(cache: RelayCache, key: str, host: bytes | None, fields: Fields) -> None:
    """An unsafe request succeeded (RFC 9111 section 4.4): its target's entries go, and those
    of a ``Location`` or ``Content-Location`` of its answer on the same origin (``host``)."""
    cache.invalidate(key)
    for location in related_locations(fields):
        target = _same_origin_target(location, host)
        if target is not None:
            cache.invalidate(cache.key_of(host or b"", target))


def _asks_the_cache(headers: list[tuple[bytes, bytes]]) -> bool:
    """Whether a request has a field that changes what the cache does with it."""
    return any(len(name) <= 13 and name.lower() in _ASKING_FIELDS for name, _ in headers)


def _same_origin_target(location: bytes, host: bytes | None) -> bytes | None:
    """A Location as a target of this endpoint: a path, or an absolute URL on our Host."""
    if location[:1] == b"/" and location[:2] != b"//":
        return location
    if host is None:
        return None
    lowered = location.lower()  # (scheme and host: in any case)
    for scheme in (b"http://", b"https://"):
        prefix = scheme + host.lower()
        if lowered.startswith(prefix):
            rest = location[len(prefix) :]
            if rest[:1] == b"/":
                return rest
            if not rest:
                return b"/"
    return None


def _replace(variants: list[CacheEntry], old: CacheEntry, new: CacheEntry) -> list[CacheEntry]:
    if old in variants:
        return [new if entry is old else entry for entry in variants]
    return [*variants, new]


class RelayCaches:
    """Endpoint name -> its :class:`RelayCache`: the cache application registers one, the
    proxy server gives each endpoint's relay its own (absent: the endpoint does not cache)."""

    __slots__ = ("caches", "stores")

    def __init__(self) -> None:
        self.caches: dict[str, RelayCache] = {}
        #: Every store the caches use (closed once each at shutdown).
        self.stores: list[CacheStore] = []

    def get(self, name: str) -> RelayCache | None:
        return self.caches.get(name)

    async def aclose(self) -> None:
        for cache in self.caches.values():
            await cache.aclose()
        for store in self.stores:
            await store.aclose()

    def __repr__(self) -> str:
        return f"<RelayCaches {list(self.caches)!r}>"
