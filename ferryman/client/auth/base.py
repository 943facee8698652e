"""Authentication as a conversation: an auth object turns one request into one or more, seeing
each response before deciding on the next (as httpx's ``Auth`` does).

A flow is a generator: it yields a request, is sent the response, and either yields a request
again (a Digest answer to a 401 challenge, an OAuth2 retry with a refreshed token) or stops; the
client returns the last response. Requests yielded a second time are sent again as they are, so
their body must be fixed bytes; a one-shot stream that has already gone out raises
:class:`~ferryman.exceptions.StreamConsumedError` instead of silently sending an empty body.

Everything a scheme can compute once (a Basic header, OAuth1's signing key) is computed in
``__init__``, so a request pays only for what its scheme really does per request.
"""

from __future__ import annotations

import base64
from collections.abc import (
    AsyncGenerator,
    Callable,
    Generator,
)

from ferryman.exceptions import StreamConsumedError
from ferryman.http import ByteStream, Request, Response

__all__ = ["Auth", "AuthTypes", "BasicAuth", "FunctionAuth", "to_auth"]


class Auth:
    """Base of every scheme; subclasses override ``auth_flow`` (and ``async_auth_flow`` when
    they must await something of their own, such as a token refresh)."""

    # The client reads a streamed request body into memory before starting the flow.
    requires_request_body: bool = False
    # The client reads each response body before sending the response back into the flow.
    requires_response_body: bool = False

    def auth_flow(self, request: Request) -> Generator[Request, Response, None]:
        yield request

    async def async_auth_flow(self, request: Request) -> AsyncGenerator[Request, Response]:
        """Drive the sync flow: most schemes only compute headers and never block."""
        flow = self.auth_flow(request)
        try:
            request = next(flow)
            while True:
                response = yield request
                try:
                    request = flow.send(response)
                except StopIteration:
                    return
        finally:
            flow.close()


class FunctionAuth(Auth):
    """Wraps ``fn(request) -> request`` for one-line custom schemes (an API key header...)."""

    def __init__(self, fn: Callable[[Request], Request]) -> None:
        self._fn = fn

    def auth_flow(self, request: Request) -> Generator[Request, Response, None]:
        yield self._fn(request)


class BasicAuth(Auth):
    """RFC 7617 Basic credentials, UTF-8 encoded (the charset RFC 7617 lets servers ask for)."""

    def __init__(self, username: str | bytes, password: str | bytes) -> None:
        user = _to_bytes(username)
        if b":" in user:
            # RFC 7617 section 2: the server splits at the first colon, so it could never match.
            raise ValueError("a Basic auth user-id cannot contain ':'")
        token = base64.b64encode(user + b":" + _to_bytes(password)).decode("ascii")
        self._header = f"Basic {token}"

    def auth_flow(self, request: Request) -> Generator[Request, Response, None]:
        request.headers["Authorization"] = self._header
        yield request

    def __repr__(self) -> str:
        return f"{type(self).__name__}([secure])"


AuthTypes = Auth | tuple[str | bytes, str | bytes] | Callable[[Request], Request]


def to_auth(value: AuthTypes | None) -> Auth | None:
    """Turn what users pass as ``auth=`` into an :class:`Auth`: a ``(user, password)`` tuple
    means Basic, a plain callable is a :class:`FunctionAuth`."""
    if value is None or isinstance(value, Auth):
        return value
    if isinstance(value, tuple):
        if len(value) != 2:
            raise TypeError("auth tuples must be (username, password)")
        return BasicAuth(value[0], value[1])
    if callable(value):
        return FunctionAuth(value)
    raise TypeError(
        "auth must be an Auth instance, a (username, password) tuple or a callable, "
        f"not {type(value).__name__}"
    )


def _to_bytes(value: str | bytes) -> bytes:
    return value.encode("utf-8") if isinstance(value, str) else value


def _require_replayable(request: Request, scheme: str) -> None:
    if not isinstance(request.stream, ByteStream):
        raise StreamConsumedError(
            f"{scheme} has to send the request again after the server's 401 answer, but its "
            "body was a one-shot stream and has already been sent; pass the body as bytes."
        )
