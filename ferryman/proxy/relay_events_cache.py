"""The endpoint's HTTP cache on the relay with events: ``proxy.filter.*`` listeners, middleware.

An endpoint with a ``proxy.filter.request`` or ``proxy.filter.response`` listener or a
middleware is relayed with its events (:mod:`ferryman.proxy.relay_events`,
:mod:`ferryman.proxy.relay_middleware`) and keeps its cache (issue 23: features are built on
the event path, at relay speed): the same :class:`~ferryman.proxy.relay_cache.RelayCache` as the
plain relay's and the general path's (one store, one key, one policy, one set of counts), where
the general path has it (:mod:`ferryman.proxy.general_cache`), so that a client cannot tell
which way served it:

* after ``proxy.filter.request`` and the middleware's way in (``Relay.proceed``), before the
  upstream call: a listener or middleware that answers leaves nothing to look up or store;
* the request the cache reads is the client's as the request listeners left it: its Host and
  target (a URL a listener set) make the key, its fields (``Cache-Control``,
  ``Authorization``, the ``Vary`` ones) the decisions; the validators go with the request
  sent upstream. A request whose upstream URL or method a middleware changed is relayed
  uncached (the key would name another resource), as one whose method a listener changed;
* an answer from the cache (a hit, a stale answer, a 304 merged, the 504 of
  ``only-if-cached``) goes through the ways out and ``proxy.filter.response`` like any
  answer: they see it, ``X-Cache`` among its fields, and may change it for this client;
* what is stored is the upstream's answer as it came (with ``X-Cache: MISS``), not what the
  ways out and response listeners made of it (they run again on every hit); an answer they
  replaced altogether stores nothing.

None of this runs for an endpoint without events: the plain relay's cache is
:meth:`RelayCache.on_request <ferryman.proxy.relay_cache.RelayCache.on_request>`.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Final

from ferryman.http.caching import (
    CONDITIONAL_FIELDS,
    REVALIDATE,
    USE,
    USE_STALE,
    CacheEntry,
    CacheRequest,
    conditional_headers,
)
from ferryman.proxy.errors import error_body, error_response
from ferryman.proxy.general_cache import not_modified_response, stored_response
from ferryman.proxy.relay_cache import CacheFill, RelayCache

if TYPE_CHECKING:
    from ferryman.proxy.relay import Relay

__all__ = ["answer", "look_up"]

_GET: Final = b"GET"
_HEAD: Final = b"HEAD"
_SAFE: Final = frozenset({b"GET", b"HEAD", b"OPTIONS", b"TRACE"})
_NOT_CACHED: Final = "the answer is not in the cache"

Fields = list[tuple[bytes, bytes]]


def look_up(relay: Relay, cache: RelayCache, fields: Fields, target: bytes) -> None:
    """The cache for ``relay``'s request, which the events let go (``fields``: its header
    fields as the listeners left them; ``target``: the client's, or a listener's, in origin
    form): answered from the store, or sent on (``relay.forward``) with a fill that stores
    the answer or validates a stale one, now or once an asynchronous store answered."""
    exchange = relay.exchange
    method = exchange.method
    host = next((value for name, value in fields if name.lower() == b"host"), b"")
    key = cache.key_of(host, target)
    if method != _GET and method != _HEAD:
        if method not in _SAFE:
            relay.cache_fill = CacheFill(cache, key, None, [], None)  # (what it invalidates)
        cache.counts.bypass += 1
        relay.forward()
        return
    seen = cache.policy.request(method, fields)
    if seen is None:
        cache.counts.bypass += 1
        relay.forward()
        return
    store = cache.store
    if store.immediate:
        _decide(relay, cache, seen, key, target, store.get_now(key))
        return

    def looked_up(variants: list[CacheEntry] | None) -> None:
        _decide(relay, cache, seen, key, target, variants)

    if not cache.fetch(exchange, key, looked_up):
        relay.forward()


def _decide(
    relay: Relay,
    cache: RelayCache,
    seen: CacheRequest,
    key: str,
    target: bytes,
    variants: list[CacheEntry] | None,
) -> None:
    now = time.time()
    found = cache.policy.lookup(seen, variants, now) if variants else None
    stale = None
    if found is not None:
        action = found.action
        if action == USE:
            if seen.conditional and cache.policy.not_modified(seen, found.entry):
                if not (relay.exchange.started or relay.exchange.finished):
                    response = not_modified_response(cache, found.entry, now, relay.transaction)
                    filters = relay.endpoint.filters
                    assert filters is not None
                    filters.finish_with(relay, response)
                return
            answer(relay, cache, found.entry, b"HIT", now)
            return
        if action in (USE_STALE, REVALIDATE):
            if action == REVALIDATE:
                _revalidate_later(relay, cache, seen, key, target, found.entry)
            answer(relay, cache, found.entry, b"STALE", now)
            return
        stale = found.entry
    if b"only-if-cached" in seen.directives:
        cache.counts.miss += 1
        if relay.transaction is not None:
            relay.transaction.cache = "MISS"
        filters = relay.endpoint.filters
        assert filters is not None
        filters.finish_with(relay, error_response(504, _NOT_CACHED), error_body(504, _NOT_CACHED))
        return
    fill = CacheFill(cache, key, seen, variants or [], stale)
    if (
        stale is not None
        and stale.has_validators
        and seen.method == _GET
        and not any(name.lower() in CONDITIONAL_FIELDS for name, _ in seen.headers)
    ):
        fill.validating = True
        event = relay.filter_event
        if event is None or event.upstream_target is None:
            # (the relay builds the head from the exchange's fields; a head the events'
            # code builds gets them from the fill: Relay.attach)
            relay.exchange.headers.extend(conditional_headers(stale))
    relay.cache_fill = fill
    relay.forward()


def answer(relay: Relay, cache: RelayCache, entry: CacheEntry, status: bytes, now: float) -> bool:
    """Answer from ``entry`` through the ways out and response listeners, as the general
    path's cache answers (:func:`~ferryman.proxy.general_cache.stored_response`). False when
    an answer has begun already."""
    exchange = relay.exchange
    if exchange.started or exchange.finished:
        return False
    method = _HEAD if relay.head_only else _GET
    response = stored_response(cache, entry, status, now, method, relay.transaction)
    filters = relay.endpoint.filters
    assert filters is not None
    filters.finish_with(relay, response)
    return True


def _revalidate_later(
    relay: Relay, cache: RelayCache, seen: CacheRequest, key: str, target: bytes, entry: CacheEntry
) -> None:
    """stale-while-revalidate: the origin is asked in the background for the target as it
    goes upstream (the endpoint's rewrite, the chosen upstream's base path)."""
    revalidator = cache.revalidator
    if revalidator is None:
        return
    pool = relay.pool
    rewrite = relay.endpoint.rewrite
    if rewrite is not None:
        target = rewrite.apply(target)
    url = pool.origin + (pool.base_path + target).decode("latin-1")
    cache.revalidate_in_background(revalidator, url, list(seen.headers), seen, key, entry)
