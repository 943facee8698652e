"""OAuth: bearer tokens with refresh (OAuth 2, RFC 6750) and signed requests (OAuth 1, RFC 5849)."""

from __future__ import annotations

import asyncio
import base64
import hmac
import inspect
import secrets
import threading
import time
from collections.abc import (
    AsyncGenerator,
    Awaitable,
    Callable,
    Generator,
    Sequence,
)
from typing import Final
from urllib.parse import parse_qsl, quote

from ferryman.client.auth.base import Auth, _require_replayable
from ferryman.client.auth.digest import _quoted
from ferryman.http import AsyncByteStream, ByteStream, Request, Response, SyncByteStream

__all__ = ["OAuth1", "OAuth2", "TokenRefresher", "oauth1_base_string"]

TokenRefresher = Callable[[], str | Awaitable[str]]


class OAuth2(Auth):
    """A bearer token, fetched through ``refresh()`` when there is none yet or the server
    answers 401; concurrent requests that hit the 401 together share one refresh.

    ``refresh`` may be a coroutine function; under the async client a plain function runs in a
    worker thread, since fetching a token usually means a blocking HTTP call.
    """

    def __init__(
        self,
        token: str | None = None,
        *,
        refresh: TokenRefresher | None = None,
        token_type: str = "Bearer",
    ) -> None:
        if token is None and refresh is None:
            raise ValueError("OAuth2 needs a token, a refresh callback, or both")
        self._token = token
        self._refresh = refresh
        self._token_type = token_type
        self._async_lock = asyncio.Lock()
        self._sync_lock = threading.Lock()

    @property
    def token(self) -> str | None:
        return self._token

    def __repr__(self) -> str:
        return f"{type(self).__name__}(token_type={self._token_type!r})"

    def _authorize(self, request: Request, token: str) -> None:
        request.headers["Authorization"] = f"{self._token_type} {token}"

    def _is_rejection(self, response: Response) -> bool:
        return response.status_code == 401 and self._refresh is not None

    def auth_flow(self, request: Request) -> Generator[Request, Response, None]:
        token = self._token
        if token is None:
            token = self._sync_refreshed(rejected=None)
        self._authorize(request, token)
        response = yield request
        if self._is_rejection(response):
            self._authorize(request, self._sync_refreshed(rejected=token))
            _require_replayable(request, "OAuth2")
            yield request

    async def async_auth_flow(self, request: Request) -> AsyncGenerator[Request, Response]:
        token = self._token
        if token is None:
            token = await self._async_refreshed(rejected=None)
        self._authorize(request, token)
        response = yield request
        if self._is_rejection(response):
            self._authorize(request, await self._async_refreshed(rejected=token))
            _require_replayable(request, "OAuth2")
            yield request

    def _sync_refreshed(self, rejected: str | None) -> str:
        with self._sync_lock:
            current = self._token
            if current is not None and current != rejected:
                return current  # Another request refreshed while this one waited.
            assert self._refresh is not None
            result = self._refresh()
            if inspect.isawaitable(result):
                if inspect.iscoroutine(result):
                    result.close()
                raise TypeError("an async OAuth2 refresh callback needs the async client")
            self._token = result
            return result

    async def _async_refreshed(self, rejected: str | None) -> str:
        async with self._async_lock:
            current = self._token
            if current is not None and current != rejected:
                return current
            refresh = self._refresh
            assert refresh is not None
            result: str | Awaitable[str]
            if inspect.iscoroutinefunction(refresh):
                result = refresh()
            else:
                # A plain function may block on its own token request: keep it off the loop.
                result = await asyncio.to_thread(refresh)
            token = await result if inspect.isawaitable(result) else result
            self._token = token
            return token


# -- OAuth1 ---------------------------------------------------------------------------------------

_OAUTH1_HMACS: Final = {"HMAC-SHA1": "sha1", "HMAC-SHA256": "sha256", "HMAC-SHA512": "sha512"}
_FORM: Final = "application/x-www-form-urlencoded"


def _oauth_escape(value: str | bytes) -> str:
    """RFC 5849 3.6: every octet but ALPHA, DIGIT, ``-._~`` as uppercase ``%XX``."""
    return quote(value, safe="")


def _form_pairs(encoded: str) -> list[tuple[str, str]]:
    """Decode ``a=1&b+c=%FF`` to escaped pairs, byte for byte: latin-1 maps each decoded octet
    to one character, so re-encoding never depends on the text being UTF-8."""
    return [
        (_oauth_escape(name.encode("latin-1")), _oauth_escape(value.encode("latin-1")))
        for name, value in parse_qsl(encoded, keep_blank_values=True, encoding="latin-1")
    ]


def _is_form(request: Request) -> bool:
    content_type = request.headers.get("content-type")
    return content_type is not None and content_type.partition(";")[0].strip().lower() == _FORM


def oauth1_base_string(request: Request, oauth_params: Sequence[tuple[str, str]]) -> str:
    """The RFC 5849 3.4.1 signature base string; public because comparing it with the
    server's is how a signature mismatch is debugged. ``oauth_params`` are unescaped."""
    url = request.url
    path = url.raw_path.partition(b"?")[0].decode("ascii")
    base_uri = f"{url.scheme}://{url.host_header.decode('ascii')}{path}"
    params = _form_pairs(url.query.decode("ascii"))
    params.extend((_oauth_escape(name), _oauth_escape(value)) for name, value in oauth_params)
    if _is_form(request) and isinstance(request.stream, ByteStream):
        params.extend(_form_pairs(request.stream.content.decode("latin-1")))
    normalized = "&".join(f"{name}={value}" for name, value in sorted(params))
    method = request.method.upper()
    return "&".join(_oauth_escape(part) for part in (method, base_uri, normalized))


class OAuth1(Auth):
    """RFC 5849 request signing (HMAC-SHA1, HMAC-SHA256/512, PLAINTEXT) in an
    ``Authorization: OAuth`` header.

    A form body is part of the signature. When it comes as a stream, the flow reads it into
    memory itself (and frames it with ``Content-Length``); any other body is left alone, which
    is why ``requires_request_body`` stays False. ``nonce_factory`` and ``clock`` exist so
    that tests can reproduce published signatures.
    """

    def __init__(
        self,
        client_key: str,
        client_secret: str,
        *,
        token: str | None = None,
        token_secret: str | None = None,
        signature_method: str = "HMAC-SHA1",
        realm: str | None = None,
        callback: str | None = None,
        verifier: str | None = None,
        include_version: bool = True,
        nonce_factory: Callable[[], str] | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        if signature_method != "PLAINTEXT" and signature_method not in _OAUTH1_HMACS:
            raise ValueError(
                f"unsupported OAuth1 signature method {signature_method!r}; "
                f"use PLAINTEXT or one of {', '.join(_OAUTH1_HMACS)}"
            )
        self._signature_method = signature_method
        self._key = f"{_oauth_escape(client_secret)}&{_oauth_escape(token_secret or '')}"
        self._realm = realm
        optional = {
            "oauth_token": token,
            "oauth_callback": callback,
            "oauth_verifier": verifier,
            # Optional in RFC 5849, but servers written for OAuth Core 1.0 expect it.
            "oauth_version": "1.0" if include_version else None,
        }
        self._fixed_params = [
            ("oauth_consumer_key", client_key),
            ("oauth_signature_method", signature_method),
            *((name, value) for name, value in optional.items() if value is not None),
        ]
        self._nonce_factory = nonce_factory or (lambda: secrets.token_hex(16))
        self._clock = clock or time.time

    def __repr__(self) -> str:
        return f"{type(self).__name__}(signature_method={self._signature_method!r})"

    def auth_flow(self, request: Request) -> Generator[Request, Response, None]:
        stream = request.stream
        if _is_form(request) and not isinstance(stream, ByteStream):
            if not isinstance(stream, SyncByteStream):
                raise TypeError("OAuth1 must read this async form body: use the async client")
            _fix_body(request, stream.read())
        self._sign(request)
        yield request

    async def async_auth_flow(self, request: Request) -> AsyncGenerator[Request, Response]:
        stream = request.stream
        if _is_form(request) and not isinstance(stream, ByteStream):
            body = await stream.aread() if isinstance(stream, AsyncByteStream) else stream.read()
            _fix_body(request, body)
        self._sign(request)
        yield request

    def _sign(self, request: Request) -> None:
        oauth_params = [
            *self._fixed_params,
            ("oauth_timestamp", str(int(self._clock()))),
            ("oauth_nonce", self._nonce_factory()),
        ]
        if self._signature_method == "PLAINTEXT":
            signature = self._key
        else:
            base_string = oauth1_base_string(request, oauth_params)
            mac = hmac.new(
                self._key.encode("ascii"),
                base_string.encode("ascii"),
                _OAUTH1_HMACS[self._signature_method],
            )
            signature = base64.b64encode(mac.digest()).decode("ascii")
        oauth_params.append(("oauth_signature", signature))
        fields = [] if self._realm is None else [f"realm={_quoted(self._realm)}"]
        fields.extend(f'{_oauth_escape(n)}="{_oauth_escape(v)}"' for n, v in oauth_params)
        request.headers["Authorization"] = "OAuth " + ", ".join(fields)


def _fix_body(request: Request, body: bytes) -> None:
    """Replace a consumed stream by its bytes; fixed bytes are framed by length, never chunked."""
    request.stream = ByteStream(body)
    if "transfer-encoding" in request.headers:
        del request.headers["Transfer-Encoding"]
    request.headers["Content-Length"] = str(len(body))
