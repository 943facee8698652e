"""The reverse proxy: endpoints that relay requests to upstream APIs, with events and middleware.

Embedding it::

    ctx = ProxyContext(url="https://api.example.org", state={"tier": "gold"})
    handler = HTTPProxyHandler(context=ctx, rewrite=Rewrite(rfrom="/api", rto="/"))

    @handler.client_edge
    def tag(ctx):
        ctx.upstream_request.headers["X-Tier"] = ctx.state["tier"]
        yield

``handler`` is an ASGI app, and ``handler.handle`` a kernel controller. In a system, the
``proxy`` application (:mod:`ferryman.proxy.application`) builds one handler per configured
endpoint.
"""

from ferryman.proxy import events
from ferryman.proxy.application import ProxyApplication, ProxyEndpoints, build_kernel
from ferryman.proxy.context import ProxyContext
from ferryman.proxy.errors import UpstreamError
from ferryman.proxy.events import (
    EVENT_FILTER_PROXY_REQUEST,
    EVENT_FILTER_PROXY_RESPONSE,
    ProxyFilterEvent,
)
from ferryman.proxy.handler import HTTPProxyHandler
from ferryman.proxy.middleware import MiddlewarePhase, ProxyMiddlewareDef
from ferryman.proxy.resolver import EndpointResolver
from ferryman.proxy.rewrite import Rewrite
from ferryman.proxy.settings import EndpointSettings, ProxySettings

#: What ``applications: [proxy]`` loads (``load_application`` reads this attribute).
application = ProxyApplication

__all__ = [
    "EVENT_FILTER_PROXY_REQUEST",
    "EVENT_FILTER_PROXY_RESPONSE",
    "EndpointResolver",
    "EndpointSettings",
    "HTTPProxyHandler",
    "MiddlewarePhase",
    "ProxyApplication",
    "ProxyContext",
    "ProxyEndpoints",
    "ProxyFilterEvent",
    "ProxyMiddlewareDef",
    "ProxySettings",
    "Rewrite",
    "UpstreamError",
    "application",
    "build_kernel",
    "events",
]
