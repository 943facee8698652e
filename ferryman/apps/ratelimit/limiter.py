"""The relay's side of rate limiting: an endpoint's inbound limit and an upstream's budget.

:class:`EndpointLimiter` is the endpoint relay's ``admission`` (:mod:`ferryman.proxy.admission`):
it finds the request's key, asks its bucket, and lets the request go, answers 429 from the
relay (the upstream never hears of it), or, with Redis, lets it wait for the answer with the
client's body unread meanwhile. :class:`UpstreamBudget` is a relay's ``budgets`` entry: the
requests bound for one upstream, from every endpoint, stay under its rate; a request over it
waits for its turn (a timer of the event loop, no task) when its turn comes within
``max_wait`` and fewer than ``max_waiters`` wait already, else gets a 429 at once.

Requests the general path serves (a ``http_client.filter.*`` listener, ``request_options``)
never reach ``Relay.start``: the endpoint's limiter charges them to the budget of the
endpoint's first budgeted upstream instead, before handing them on (exact for an endpoint
with one upstream; with several, the endpoint's balancer picks the upstream afterwards). So
on the general path a request is charged once, whatever answers it: a cache hit and each of
its retries are not charged apart, as they are on the relay.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable
from typing import TYPE_CHECKING

from ferryman.apps.ratelimit.buckets import Decision, MemoryBuckets
from ferryman.apps.ratelimit.settings import BudgetSettings, EndpointLimitSettings, LimitKey
from ferryman.apps.ratelimit.shared import SharedBuckets
from ferryman.proxy.admission import send_limited
from ferryman.proxy.errors import error_body
from ferryman.server.exchange import ServerExchange

if TYPE_CHECKING:
    from ferryman.proxy.relay import EndpointRelay, Relay
    from ferryman.proxy.transactions import Transaction

__all__ = ["EndpointLimiter", "LimitCounters", "UpstreamBudget", "client_address"]

#: The most characters of a header's value a 429's message and the access log show.
_SHOWN: int = 64


class LimitCounters:
    """What the metrics read: per endpoint and per upstream, plain numbers."""

    __slots__ = ("budget_refused", "budget_waited", "limited")

    def __init__(self) -> None:
        #: Requests refused by an endpoint's inbound limit, by endpoint.
        self.limited: dict[str, int] = {}
        #: Requests that waited for / were refused by an upstream's budget, by origin.
        self.budget_waited: dict[str, int] = {}
        self.budget_refused: dict[str, int] = {}


def client_address(relay: EndpointRelay, exchange: ServerExchange) -> str:
    """The client's address: the connection's peer, or, when the peer is one of the endpoint's
    ``trusted_proxies``, the last address in ``X-Forwarded-For`` that is not (the one a
    trusted proxy saw; anything before it the client may have made up)."""
    client = exchange.protocol.client
    peer = "unknown" if client is None else client[0]
    rules = relay.request_rules
    if not rules.trusted_proxies or not rules.trusts(peer):
        return peer
    hops: list[str] = []
    for name, value in exchange.headers:
        if name.lower() == b"x-forwarded-for":
            hops += (hop.strip() for hop in value.decode("latin-1").split(","))
    for hop in reversed(hops):
        if hop and not rules.trusts(hop):
            return hop
    return peer


class EndpointLimiter:
    """One endpoint's inbound limit (and the general path's budget): an ``Admission``."""

    __slots__ = (
        "budget",
        "counters",
        "endpoint",
        "key",
        "limit",
        "memory",
        "shared",
    )

    def __init__(
        self,
        endpoint: str,
        limit: EndpointLimitSettings | None,
        counters: LimitCounters,
        shared: SharedBuckets | None = None,
        budget: UpstreamBudget | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.limit = limit
        self.key: LimitKey | None = None if limit is None else limit.limit_key
        self.memory = MemoryBuckets(limit.max_keys if limit is not None else 1)
        self.shared = shared
        self.counters = counters
        #: The budget requests on the general path are charged to (``None``: none).
        self.budget = budget

    def admit(
        self, relay: EndpointRelay, exchange: ServerExchange, transaction: Transaction | None
    ) -> bool:
        limit = self.limit
        if limit is None:
            return self._general_budget(relay, exchange, transaction)
        found = self._key(relay, exchange)
        if found is None:
            self._refuse_repeated(exchange, transaction)
            return False
        key, shown = found
        shared = self.shared
        if shared is None:
            decision = self.memory.decide(key, limit.interval, limit.capacity)
            if decision.allowed:
                return self._general_budget(relay, exchange, transaction)
            self._refuse(relay, exchange, transaction, shown, decision.wait)
            return False
        paused = not exchange.body_complete
        if paused:
            exchange.pause_reading()  # (no body piles up while Redis decides)

        def decided(decision: Decision | None) -> None:
            if exchange.finished:
                return  # the client left meanwhile
            if paused:
                exchange.resume_reading()
            if decision is not None and not decision.allowed:
                self._refuse(relay, exchange, transaction, shown, decision.wait)
            elif self._general_budget(relay, exchange, transaction):
                relay.admitted(exchange, transaction)

        if shared.submit(key, limit.interval, limit.capacity, 0.0, decided):
            return False
        if paused:
            exchange.resume_reading()
        return self._general_budget(relay, exchange, transaction)  # (failed open)

    def _key(self, relay: EndpointRelay, exchange: ServerExchange) -> tuple[str, str] | None:
        """The bucket's key, and the words a 429 uses for it; ``None`` when the key's header
        comes more than once."""
        key = self.key
        assert key is not None
        if key.header is not None:
            value = None
            for name, field_value in exchange.headers:
                if name.lower() == key.header:
                    if value is not None:
                        # A new value first and the real key after would be a fresh bucket
                        # for every request, while the upstream may read the other one.
                        return None
                    value = field_value
            if value is not None:
                digest = hashlib.blake2b(value, digest_size=16).hexdigest()
                header = key.header.decode("ascii")
                if key.kind == "api_key":
                    shown = f"the API key in {header}"
                else:
                    shown = f"{header} {value[:_SHOWN].decode('latin-1')!r}"
                return f"{self.endpoint}|{key.kind}|{digest}", shown
        # (no such header: the client's address, so that nobody escapes by leaving it out)
        address = client_address(relay, exchange)
        return f"{self.endpoint}|client|{address}", f"the client {address}"

    def _refuse_repeated(self, exchange: ServerExchange, transaction: Transaction | None) -> None:
        key = self.key
        assert key is not None and key.header is not None
        message = (
            f"the header {key.header.decode('ascii')} came more than once: the rate limit of "
            f"the endpoint {self.endpoint!r} is keyed by its one value"
        )
        if transaction is not None:
            transaction.error = message
        exchange.send_error(400, error_body(400, message))

    def _refuse(
        self,
        relay: EndpointRelay,
        exchange: ServerExchange,
        transaction: Transaction | None,
        shown: str,
        retry_after: float,
    ) -> None:
        counters = self.counters.limited
        counters[self.endpoint] = counters.get(self.endpoint, 0) + 1
        message = f"rate limit of the endpoint {self.endpoint!r} exceeded by {shown}"
        if transaction is not None:
            transaction.error = message
        send_limited(exchange, message, retry_after, endpoint=relay)

    def _general_budget(
        self, relay: EndpointRelay, exchange: ServerExchange, transaction: Transaction | None
    ) -> bool:
        """Charge a request the general path serves to the budget (the relay's own requests
        are charged by ``Relay.start``, each to the upstream it goes to)."""
        budget = self.budget
        if budget is None or not _general_path(relay, exchange):
            return True
        paused = not exchange.body_complete
        if paused:
            exchange.pause_reading()

        def go() -> None:
            if paused:
                exchange.resume_reading()
            relay.admitted(exchange, transaction)

        if budget.reserve(exchange, transaction, go, endpoint=relay):
            if paused:
                exchange.resume_reading()
            return True
        return False


def _general_path(relay: EndpointRelay, exchange: ServerExchange) -> bool:
    """Whether ``relay.admitted`` hands this request to the general path (as it decides)."""
    use_fast = relay.use_fast
    if use_fast is None or use_fast():
        return False
    filters = relay.filters
    return filters is None or exchange.upgrade or not filters.active()


class UpstreamBudget:
    """One upstream's outbound budget, shared by every endpoint relaying there: a ``Budget``."""

    __slots__ = ("counters", "memory", "origin", "settings", "shared", "waiting")

    def __init__(
        self,
        settings: BudgetSettings,
        counters: LimitCounters,
        shared: SharedBuckets | None = None,
    ) -> None:
        self.settings = settings
        self.origin = settings.origin
        self.memory = MemoryBuckets(1)
        self.shared = shared
        self.counters = counters
        #: Requests waiting for their turn (or for Redis to say when it is).
        self.waiting = 0

    def take(self, relay: Relay) -> bool:
        """``Relay.start``'s question: may the relay take its connection now?"""

        def go() -> None:
            if not relay.cancelled:
                relay.pool.acquire(relay, relay.endpoint.connect_timeout)

        return self.reserve(relay.exchange, relay.transaction, go, relay)

    def reserve(
        self,
        exchange: ServerExchange,
        transaction: Transaction | None,
        go: Callable[[], None],
        relay: Relay | None = None,
        *,
        endpoint: EndpointRelay | None = None,
    ) -> bool:
        """True: the request may go now. False: ``go`` is called when its turn comes (unless
        the client left), or it was refused with a 429."""
        settings = self.settings
        if self.waiting >= settings.max_waiters:
            self._refuse(exchange, transaction, relay, settings.interval, "too many wait", endpoint)
            return False
        shared = self.shared
        if shared is not None:
            self.waiting += 1

            def decided(decision: Decision | None) -> None:
                if decision is None or (decision.allowed and decision.wait <= 0):
                    self.waiting -= 1
                    if not exchange.finished:
                        go()
                elif decision.allowed:
                    self._wait(exchange, go, decision.wait, counted=True)
                else:
                    self.waiting -= 1
                    self._refuse(exchange, transaction, relay, decision.wait, "", endpoint)

            key = f"budget|{self.origin}"
            if shared.submit(key, settings.interval, settings.capacity, settings.max_wait, decided):
                return False
            self.waiting -= 1
            return True  # (failed open)
        decision = self.memory.decide(
            self.origin, settings.interval, settings.capacity, settings.max_wait
        )
        if not decision.allowed:
            self._refuse(exchange, transaction, relay, decision.wait, "", endpoint)
            return False
        if decision.wait <= 0:
            return True
        self._wait(exchange, go, decision.wait, counted=False)
        return False

    def _wait(
        self, exchange: ServerExchange, go: Callable[[], None], wait: float, counted: bool
    ) -> None:
        waited = self.counters.budget_waited
        waited[self.origin] = waited.get(self.origin, 0) + 1
        if not counted:
            self.waiting += 1

        def turn() -> None:
            self.waiting -= 1
            if not exchange.finished:
                go()

        asyncio.get_running_loop().call_later(wait, turn)

    def _refuse(
        self,
        exchange: ServerExchange,
        transaction: Transaction | None,
        relay: Relay | None,
        retry_after: float,
        why: str = "",
        endpoint: EndpointRelay | None = None,
    ) -> None:
        refused = self.counters.budget_refused
        refused[self.origin] = refused.get(self.origin, 0) + 1
        settings = self.settings
        reason = (
            f"{settings.max_waiters} requests wait already"
            if why
            else f"no turn within {settings.max_wait:g} s"
        )
        message = (
            f"the outbound rate limit of the upstream {self.origin} is used up "
            f"({settings.requests:g} per {settings.per:g} s; {reason})"
        )
        if relay is not None:
            relay.finished = True
        if transaction is not None:
            transaction.error = message
        send_limited(exchange, message, retry_after, endpoint=endpoint, relay=relay)
