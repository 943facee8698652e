"""Who may enter, and when: the relay's hooks for rate limits and outbound budgets.

Applications (``ferryman.apps.ratelimit``) decide whether a request may go on; the relay only
asks, through two slots that stay ``None`` when nothing is configured, so an endpoint without
limits pays one attribute read per request and nothing more:

* ``EndpointRelay.admission`` (an :class:`Admission`) is asked in ``on_request``, for every
  request of the endpoint whatever path then serves it (the fast relay, the relay with filter
  events, the general path), after the request was found well-formed. It answers now (go on,
  or a 429 it wrote itself), or later: it then calls ``EndpointRelay.admitted`` once it is
  decided (a shared store's answer came back). No task is created for that: the decision
  comes back through a callback.
* ``EndpointRelay.budgets`` (one :class:`Budget` or ``None`` per upstream, in the order of
  ``pools``) is asked by ``Relay.start``, each time the relay is about to take a connection to
  an upstream, so that the requests an API receives stay under its own limit whatever
  endpoint sent them. A budget may hold the request back (a timer of the event loop calls
  ``UpstreamPool.acquire`` when its turn comes) or refuse it (a 429).

The :class:`RelayAdmissions` service is how an application hands those objects to the server,
which builds the relays after every application is bound: it fills the slots as it builds each
endpoint's relay (:meth:`RelayAdmissions.attach`).
"""

from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING, Protocol

from ferryman.http.models import Response
from ferryman.server.exchange import ServerExchange, response_head

if TYPE_CHECKING:
    from ferryman.proxy.relay import EndpointRelay, Relay
    from ferryman.proxy.transactions import Transaction

__all__ = [
    "Admission",
    "Budget",
    "RelayAdmissions",
    "limited_body",
    "limited_response",
    "send_limited",
]


class Admission(Protocol):
    """Decides whether an endpoint's request may go on (see the module documentation)."""

    def admit(
        self, relay: EndpointRelay, exchange: ServerExchange, transaction: Transaction | None
    ) -> bool:
        """True: go on now. False: answered already, or ``relay.admitted(exchange,
        transaction)`` is called once decided (never from inside this call)."""


class Budget(Protocol):
    """An upstream's outbound budget (see the module documentation)."""

    def take(self, relay: Relay) -> bool:
        """True: the request may take its connection now. False: it waits (the budget calls
        ``relay.pool.acquire`` when its turn comes) or was refused (answered with a 429)."""


class RelayAdmissions:
    """Endpoint name -> its :class:`Admission`, upstream origin -> its :class:`Budget`, as
    applications register them on bind or bound; the server attaches them to the relays."""

    __slots__ = ("budgets", "endpoints")

    def __init__(self) -> None:
        self.endpoints: dict[str, Admission] = {}
        #: By origin (``scheme://host:port``, as ``UpstreamPool.origin`` says it).
        self.budgets: dict[str, Budget] = {}

    def attach(self, relay: EndpointRelay) -> None:
        """Fill ``relay``'s slots with what was registered for its endpoint and upstreams."""
        relay.admission = self.endpoints.get(relay.name)
        budgets = tuple(self.budgets.get(pool.origin) for pool in relay.pools)
        relay.budgets = budgets if any(budget is not None for budget in budgets) else None

    def __repr__(self) -> str:
        return f"<RelayAdmissions {list(self.endpoints)!r} {list(self.budgets)!r}>"


def limited_body(message: str, retry_after: float) -> bytes:
    """The JSON body of a 429: the proxy's error shape, and the seconds to wait."""
    return json.dumps(
        {"status": 429, "message": message, "retry_after": retry_seconds(retry_after)}
    ).encode("utf-8")


def retry_seconds(retry_after: float) -> int:
    """``Retry-After`` takes whole seconds (RFC 9110 section 10.2.3): rounded up, at least 1,
    so that a client that waits as told finds a token."""
    return max(1, math.ceil(retry_after))


def limited_response(message: str, retry_after: float) -> Response:
    """The 429 as a response model: what ``proxy.filter.response`` listeners see."""
    return Response(
        429,
        headers=[
            (b"Content-Type", b"application/json"),
            (b"Retry-After", b"%d" % retry_seconds(retry_after)),
        ],
        content=limited_body(message, retry_after),
    )


def send_limited(
    exchange: ServerExchange,
    message: str,
    retry_after: float,
    *,
    endpoint: EndpointRelay | None = None,
    relay: Relay | None = None,
) -> None:
    """Answer 429 with ``Retry-After`` and a JSON body, without the upstream. The connection
    stays open when the request was read whole (as for the relay's other refusals).

    ``proxy.filter.response`` sees the 429 first, and may replace it, as it sees the relay's
    other error answers: a ``relay`` whose request went through the filters (an upstream's
    budget, refused in ``Relay.start``) answers through them, with its own event (and the
    endpoint middleware's ways out); a request the ``endpoint`` refused before the filters
    (its rate limit) gets a new event that only ``proxy.filter.response`` is dispatched with.
    """
    if exchange.finished:
        return
    if exchange.started:
        exchange.abort()
        return
    if relay is not None:
        filters = relay.endpoint.filters
        if relay.filter_event is not None and filters is not None:
            filters.finish_with(relay, limited_response(message, retry_after))
            return
        endpoint = relay.endpoint
    filters = None if endpoint is None else endpoint.filters
    if filters is not None and filters.answer_first(
        exchange, limited_response(message, retry_after)
    ):
        return
    body = limited_body(message, retry_after)
    keep_alive = exchange.body_complete and exchange.keep_alive and not exchange.upgrade
    headers = [
        (b"Content-Type", b"application/json"),
        (b"Content-Length", b"%d" % len(body)),
        (b"Retry-After", b"%d" % retry_seconds(retry_after)),
    ]
    if not keep_alive:
        headers.append((b"Connection", b"close"))
    elif exchange.http_version == "1.0":
        headers.append((b"Connection", b"keep-alive"))
    exchange.status = 429
    exchange.write(response_head(429, None, headers) + body)
    exchange.finish(keep_alive=keep_alive)
