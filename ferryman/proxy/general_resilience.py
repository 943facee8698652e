"""The endpoint's balancer, breakers and retries on the general path.

The fast relay's :class:`~ferryman.proxy.relay_resilience.EndpointResilience` is the one
source of an endpoint's upstream state: the server hands the same object to the endpoint's
:class:`~ferryman.proxy.handler.HTTPProxyHandler`, and :func:`send_resilient` makes the
handler's upstream calls with it. So one breaker per upstream counts the failures of both
paths, an upstream the relay found failing is skipped here too (and the other way round),
the ``proxy.upstream.state`` events, the per-upstream retry counts and the shared breaker
states (:mod:`ferryman.apps.resilience`) cover every request.

Which upstream: the handler's round robin choice while it is up and its breaker closed and
the balancer would pick as plainly (equal weights, no fallback, round robin), else the
balancer's (weights, ``fallback`` role only when no default is up, ``least_outstanding``);
none up: 503 (:func:`~ferryman.proxy.errors.no_upstream_available`), no upstream tried.

A request goes again, as on the relay, only while nothing of an answer reached the client,
within the retry settings' ``attempts`` and ``deadline``, on another upstream when one is up:

* a connection that could not be opened (refused, unreachable, its TLS handshake failed, timed
  out): whatever the method, as nothing was sent; at once, to an upstream not tried yet;
* a ``retry.statuses`` answer (its ``Retry-After`` honoured, dropped past an hour) and, when
  ``retry.on`` lists them, a timeout or an upstream that closed or broke the protocol before
  one byte of its answer came (the http client says: ``TransportError.answer_began``): only an
  idempotent method, or any with ``retry.unsafe_methods``, and only a body read whole before
  the call (``request_buffer``), which goes again unchanged; after the backoff (exponential,
  full jitter). The wait is an ``asyncio.sleep`` in the request's task: a client that leaves
  cancels it.

As on the relay, the ``deadline`` bounds every try, from the first one's start: a later try
whose answer's head has not come when it runs out is cut off (``errors.RetryDeadline``: the
relay's 504 and words), uncounted by the breaker.

Once the answer's head came and was kept, nothing goes again: a body that breaks off is
counted by the breaker (:func:`body_failed`) and the client's connection cut.

Differences from the relay a user could see: ``least_outstanding`` weighs the upstreams by
the relay's requests in flight (its pools' busy connections); a general-path request goes
through the http client's pool and is not counted there. A request whose body streams
(``request_buffer: 0``) is still sent again after a refused connection (nothing of it was
read), as this path always did.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from typing import Final

from ferryman.exceptions import (
    ConnectError,
    ConnectTimeout,
    PoolTimeout,
    TimeoutException,
    TransportError,
)
from ferryman.http.models import Response
from ferryman.proxy.balancer import Upstream
from ferryman.proxy.breaker import CLOSED
from ferryman.proxy.errors import RetryDeadline
from ferryman.proxy.relay_resilience import (
    IDEMPOTENT_METHODS,
    MAX_RETRY_AFTER,
    EndpointResilience,
    retry_after,
)

__all__ = ["Outcome", "body_failed", "first_upstream", "send_resilient"]

#: Sends the upstream request to the upstream of this index (the caller points it there).
Send = Callable[[int], Awaitable[Response]]
#: ``(the answer or the last failure, the index of the upstream that gave it, the try's probe
#: ticket for that upstream's breaker: its body's failure is counted with it)``.
Outcome = tuple["Response | TransportError", int, int]
_RETRY_AFTER: Final = b"retry-after"


def first_upstream(resilience: EndpointResilience, index: int) -> int | None:
    """The upstream a request tries first (``index``: the handler's round robin choice), as
    :meth:`EndpointResilience.pick` chooses it for the relay; ``None`` when none is up."""
    balancer = resilience.balancer
    if resilience.plain:
        usual = balancer.upstreams[index]
        breaker = usual.breaker
        if usual.healthy and (breaker is None or breaker.state == CLOSED):
            return index
    chosen = balancer.pick()
    return None if chosen is None else chosen.index


async def send_resilient(
    resilience: EndpointResilience,
    send: Send,
    first: int,
    method: str,
    replayable: bool,
) -> Outcome:
    """Send through the upstream ``first`` (just chosen by :func:`first_upstream`), and again
    elsewhere as the module says; each outcome fed to that upstream's breaker, with the try's
    probe ticket (a half-open breaker hears only its probes)."""
    balancer = resilience.balancer
    settings = resilience.retry
    loop = asyncio.get_running_loop()
    idempotent = method.encode("ascii") in IDEMPOTENT_METHODS or settings.unsafe_methods
    index = first
    tried = 1
    tried_mask = 1 << index
    probe = _ticket(balancer.upstreams[index])
    deadline = loop.time() + settings.deadline  # (every try ends within it, as on the relay)
    while True:
        upstream = balancer.upstreams[index]
        breaker = upstream.breaker
        try:
            if tried == 1:
                response = await send(index)
            else:
                response = await _within(send(index), deadline - loop.time(), settings.deadline)
        except RetryDeadline as exc:
            return exc, index, probe  # (cut short by the deadline: the breaker counts nothing)
        except (ConnectError, ConnectTimeout) as exc:
            what = "connect timeout" if isinstance(exc, ConnectTimeout) else "connect error"
            _count(resilience, index, "connect", what, probe)
            fresh_only = True
            wait = None
            may = "connect" in resilience.retry_on
            failure: Response | TransportError = exc
        except PoolTimeout as exc:
            return exc, index, probe  # (the http client's own pool: not the upstream's failure)
        except TransportError as exc:
            kind = "timeout" if isinstance(exc, TimeoutException) else "broken"
            _count(resilience, index, kind, "timeout" if kind == "timeout" else str(exc), probe)
            fresh_only = False
            wait = None
            may = (
                kind in resilience.retry_on
                and exc.answer_began is False
                and idempotent
                and replayable
            )
            failure = exc
        else:
            status = response.status_code
            if breaker is not None:
                if status >= 500 and status in resilience.failing_statuses:
                    breaker.failed(f"answered {status}", probe)
                else:
                    breaker.succeeded(probe)
            if status < 500 or status not in resilience.retry_statuses:
                return response, index, probe
            wait = _retry_after(response)
            if wait is not None and wait > MAX_RETRY_AFTER:
                return response, index, probe
            fresh_only = False
            may = idempotent and replayable
            failure = response
        if not may or tried > settings.attempts:
            return failure, index, probe
        now = loop.time()
        delay = random.uniform(0, min(settings.max_backoff, settings.backoff * 2 ** (tried - 1)))
        if wait is not None:
            delay = max(delay, wait)
        if now + delay >= deadline:
            return failure, index, probe
        chosen = balancer.pick(tried_mask, untried_only=fresh_only)
        if chosen is None:
            return failure, index, probe
        if isinstance(failure, Response):
            await failure.aclose()  # (dropped: the request goes again)
        chosen.retries += 1
        tried += 1
        tried_mask |= 1 << chosen.index
        index = chosen.index
        probe = _ticket(chosen)
        if not fresh_only:
            await asyncio.sleep(delay)


async def _within(call: Awaitable[Response], remaining: float, deadline: float) -> Response:
    """A later try's answer head, if it comes within what remains of the retry deadline."""
    try:
        return await asyncio.wait_for(call, max(remaining, 0.0))
    except TimeoutError:
        raise RetryDeadline(deadline) from None


def body_failed(resilience: EndpointResilience, index: int, timed_out: bool, probe: int) -> None:
    """The answer's body broke off (or stalled): counted as the relay counts it (``probe``:
    the try's ticket), never sent again (the client has its head)."""
    if timed_out:
        _count(resilience, index, "timeout", "timeout", probe)
    else:
        _count(resilience, index, "broken", "broke off", probe)


def _count(resilience: EndpointResilience, index: int, kind: str, what: str, probe: int) -> None:
    breaker = resilience.breakers[index]
    if breaker is not None and kind in resilience.breaker_counts:
        breaker.failed(what, probe)


def _ticket(upstream: Upstream) -> int:
    breaker = upstream.breaker
    return 0 if breaker is None else breaker.probe_ticket()


def _retry_after(response: Response) -> float | None:
    for name, value in response.headers.raw:
        if name.lower() == _RETRY_AFTER:
            return retry_after(b"Retry-After: " + value + b"\r\n")
    return None
