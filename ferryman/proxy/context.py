"""The proxy context: what a handler is configured with, and what one request carries through it.

As in aiorp, one object plays both parts::

    ctx = ProxyContext(url="https://api.example.org", state={"tier": "gold"})
    handler = HTTPProxyHandler(context=ctx)

    @handler.client_edge
    def tag(ctx: ProxyContext):
        ctx.upstream_request.headers["X-Tier"] = ctx.state["tier"]
        yield
        ctx.response.headers["X-Served-By"] = ctx.endpoint

The configured context holds the upstream URL(s), the initial ``state`` and the session (the
http client that calls the upstream). For every request the handler derives a *per-request*
context from it (:meth:`ProxyContext.for_request`) that also carries the inbound ``request``,
the ``upstream_request`` being prepared, the ``response`` (``None`` until there is one) and the
``endpoint`` name; that per-request context is what middlewares and proxy events see, so
concurrent requests never share one.

``state`` starts as a *shallow* copy of the configured state for every request (as aiorp does):
assigning ``ctx.state[key]`` never leaks into another request, while the values themselves are
shared. That is deliberate: state may hold shared services (a client, a rate limiter, a lock)
that a deep copy would duplicate or fail on. Put per-request mutable values under new keys, or
copy them before changing them in place.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from ferryman.client.session import AsyncClient
from ferryman.events import EventDispatcher
from ferryman.http.models import Request, Response
from ferryman.http.url import URL

__all__ = ["ProxyContext", "SessionFactory", "default_session"]

#: Builds the http client a context sends upstream requests with; called once, lazily.
SessionFactory = Callable[[], AsyncClient]

#: Connections kept per upstream origin. A proxy funnels many clients into few origins, so the
#: per-origin limit of a general-purpose client (10) would queue requests behind each other.
PROXY_POOL_SIZE = 512


def default_session(dispatcher: EventDispatcher | None = None) -> AsyncClient:
    """An http client suited to relaying: nothing added, nothing changed, nothing remembered.

    No decompression (the body goes out with the ``Content-Encoding`` it came with), no cookie
    jar (cookies belong to the proxy's clients, not to the proxy), no proxy settings from the
    environment (a reverse proxy talks to its upstreams directly), and a large pool per origin.
    With ``dispatcher``, the http client filter events fire for every upstream call.
    """
    return AsyncClient(
        decompress=False,
        store_cookies=False,
        trust_env=False,
        pool_size=PROXY_POOL_SIZE,
        max_connections=None,
        dispatcher=dispatcher,
    )


class ProxyContext:
    """Where a handler sends requests, with what, and (per request) the transaction so far.

    ``url`` is one upstream base URL or a list of them (round robin, see
    :class:`~ferryman.proxy.handler.HTTPProxyHandler`); ``session_factory`` builds the http
    client on first use (default: :func:`default_session`); ``dispatcher`` is the one the
    default session sends its filter events to (the handler fills it in when it has one).
    """

    __slots__ = (
        "_owns_session",
        "_prepared",
        "_root",
        "_session",
        "dispatcher",
        "endpoint",
        "request",
        "response",
        "session_factory",
        "state",
        "upstream_request",
        "urls",
    )

    #: The inbound request, as the client sent it (a per-request context only).
    request: Request | None
    #: The request that will go upstream: change its headers or URL on the way in.
    upstream_request: Request | None
    #: The answer so far; setting it before the upstream call answers without making it.
    response: Response | None
    #: The endpoint (handler) name this request came through.
    endpoint: str

    def __init__(
        self,
        url: URL | str | Sequence[URL | str],
        *,
        state: dict[str, Any] | None = None,
        session_factory: SessionFactory | None = None,
        dispatcher: EventDispatcher | None = None,
    ) -> None:
        urls = [url] if isinstance(url, URL | str) else list(url)
        if not urls:
            raise ValueError("a proxy context needs at least one upstream URL")
        parsed = tuple(u if isinstance(u, URL) else URL(u) for u in urls)
        for upstream in parsed:
            if upstream.scheme not in ("http", "https") or not upstream.host:
                raise ValueError(f"upstream URLs are absolute http(s) URLs, got {str(upstream)!r}")
            if upstream.query or upstream.fragment:
                raise ValueError(f"an upstream URL has no query or fragment: {str(upstream)!r}")
        self.urls: tuple[URL, ...] = parsed
        self.state: dict[str, Any] = {} if state is None else state
        self.session_factory = session_factory
        self.dispatcher = dispatcher
        self.request = None
        self.upstream_request = None
        self.response = None
        self.endpoint = ""
        self._root: ProxyContext | None = None
        # (URL, upstream index, raw target, the client's target) as prepared; how _forward
        # tells if a middleware changed the URL, where a retry on the next upstream starts
        # from, and the cache's key (the client's target, before the endpoint's rewrite).
        self._prepared: tuple[URL, int, bytes, bytes] | None = None
        self._session: AsyncClient | None = None
        self._owns_session = True

    @property
    def url(self) -> URL:
        """The (first) upstream base URL."""
        return self.urls[0]

    # -- the session ----------------------------------------------------------------------------

    @property
    def session(self) -> AsyncClient:
        """The http client upstream requests go through, built on first use and then shared
        by every request of the context (a per-request context uses its configured one's)."""
        root = self._root or self
        session = root._session
        if session is None or session.is_closed:
            if root.session_factory is None:
                session = default_session(root.dispatcher)
            else:
                session = root.session_factory()
            root._session = session
            root._owns_session = True
        return session

    def attach_session(self, session: AsyncClient) -> None:
        """Send through ``session``, an http client owned elsewhere (the system's).

        The context does not close it, and ``session_factory`` stays ``None``: the session
        counts as the default one (see ``HTTPProxyHandler.is_plain``), so only attach a client
        built like :func:`default_session`.
        """
        root = self._root or self
        root._session = session
        root._owns_session = False

    async def aclose(self) -> None:
        """Close the session if this context built it; an attached one is left open."""
        root = self._root or self
        session, root._session = root._session, None
        if session is not None and root._owns_session:
            await session.aclose()

    # -- per request ------------------------------------------------------------------------------

    def for_request(self, request: Request, endpoint: str = "") -> ProxyContext:
        """A context for one request: the same configuration and session, its own state."""
        root = self._root or self
        ctx = ProxyContext.__new__(ProxyContext)
        ctx.urls = root.urls
        ctx.state = dict(root.state)
        ctx.session_factory = root.session_factory
        ctx.dispatcher = root.dispatcher
        ctx.request = request
        ctx.upstream_request = None
        ctx.response = None
        ctx.endpoint = endpoint
        ctx._root = root
        ctx._prepared = None
        ctx._session = None
        ctx._owns_session = False
        return ctx

    @property
    def is_request_context(self) -> bool:
        """Whether this context belongs to one request (rather than being a handler's)."""
        return self._root is not None

    def __repr__(self) -> str:
        urls = ", ".join(str(url) for url in self.urls)
        if self._root is None:
            return f"<ProxyContext [{urls}]>"
        return f"<ProxyContext [{urls}] endpoint={self.endpoint!r} request={self.request!r}>"
