"""The rules module the rules tests' ``ferryman start`` imports (``rules.module: rulebook``,
``--app-dir`` this directory): plain functions, one of them ``async def``."""

from __future__ import annotations

import ferryman
from ferryman.client.filtering import HttpClientFilterEvent
from ferryman.proxy import ProxyFilterEvent


def tag_user(event: ProxyFilterEvent) -> None:
    """Changes the request going upstream."""
    event.request.headers["X-User-Rule"] = event.endpoint


def deny(event: ProxyFilterEvent) -> None:
    """Answers directly: the upstream is never called."""
    event.response = ferryman.Response(403, json={"error": "denied by a rule"})


def stamp(event: ProxyFilterEvent) -> None:
    """Changes the answer."""
    assert event.response is not None
    event.response.headers["X-Rule"] = "stamped"


async def sign(event: HttpClientFilterEvent) -> None:
    """An asynchronous function on the client's event."""
    event.request.headers["X-Signed"] = "yes"


NOT_A_FUNCTION = 42
