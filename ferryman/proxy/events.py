"""The proxy's filter events: what the system (storage, cache, policies) hooks into per transaction.

HARP's proxy events, with the http client filter events' semantics
(:mod:`ferryman.client.filtering`):

* ``EVENT_FILTER_PROXY_REQUEST`` (:class:`ProxyFilterEvent`): a request reached an endpoint and
  is about to be relayed. Listeners may change or replace ``event.request`` (what goes
  upstream is derived from it afterwards), or answer it by setting ``event.response``: then
  neither the middlewares nor the upstream call run.
* ``EVENT_FILTER_PROXY_RESPONSE``: dispatched with the *same* event instance, ``response`` set,
  just before the answer goes back to the kernel; listeners may replace ``event.response``.

Because both dispatches share the instance, ``event.stop_propagation()`` in any listener skips
all further filtering, for both events. The handler builds the event only when the dispatcher
has a listener for one of the two names. See :mod:`ferryman.proxy.handler` for where they fire
among the core events, the middlewares and the http client events.
"""

from __future__ import annotations

from typing import Final

from ferryman.events import Event
from ferryman.http.models import Request, Response
from ferryman.proxy.context import ProxyContext

__all__ = ["EVENT_FILTER_PROXY_REQUEST", "EVENT_FILTER_PROXY_RESPONSE", "ProxyFilterEvent"]

EVENT_FILTER_PROXY_REQUEST: Final = "proxy.filter.request"
EVENT_FILTER_PROXY_RESPONSE: Final = "proxy.filter.response"


class ProxyFilterEvent(Event):
    """One proxied transaction under filtering: the endpoint, the client's request, the
    per-request context, and the response once there is one."""

    __slots__ = ("context", "endpoint", "request", "response")

    def __init__(
        self,
        endpoint: str,
        request: Request,
        context: ProxyContext | None = None,
        response: Response | None = None,
    ) -> None:
        super().__init__()
        self.endpoint = endpoint
        self.request = request
        self.context = context
        self.response = response

    def __repr__(self) -> str:
        return f"<ProxyFilterEvent {self.endpoint!r} {self.request!r} -> {self.response!r}>"
