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

import asyncio
import base64
import hashlib
import hmac
import inspect
import itertools
import re
import secrets
import threading
import time
from collections.abc import (
    AsyncGenerator,
    Awaitable,
    Callable,
    Generator,
    Iterable,
    Iterator,
    Sequence,
)
from dataclasses import dataclass, field, replace
from typing import Final
from urllib.parse import parse_qsl, quote
from urllib.request import parse_http_list

from ferryman.exceptions import StreamConsumedError, StreamError
from ferryman.http import AsyncByteStream, ByteStream, Request, Response, SyncByteStream

__all__ = [
    "Auth",
    "AuthTypes",
    "BasicAuth",
    "DigestAuth",
    "FunctionAuth",
    "OAuth1",
    "OAuth2",
    "oauth1_base_string",
    "to_auth",
]


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


def _quoted(value: str) -> str:
    """An RFC 9110 quoted-string, with ``\\`` and ``"`` escaped."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


# -- WWW-Authenticate parsing -------------------------------------------------------------------

_TOKEN_CHARS: Final = r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
_PARAM_START = re.compile(_TOKEN_CHARS + r"\s*=")
_SCHEME_START = re.compile(f"({_TOKEN_CHARS})(?:\\s+|$)")


def _unquote(value: str) -> str:
    """Strip the quotes ``parse_http_list`` left; it has already resolved the ``\\`` escapes."""
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1]
    return value


def _parse_challenges(field_values: Iterable[str]) -> list[tuple[str, dict[str, str]]]:
    """Split ``WWW-Authenticate`` values into ``(scheme, {param: value})`` challenges.

    One field may hold several challenges (``Basic realm="a", Digest nonce="b"``), and commas
    also separate parameters, so a list item starts a new challenge when it opens with a token
    that is not followed by ``=``. ``parse_http_list`` keeps quoted commas inside their item.
    """
    challenges: list[tuple[str, dict[str, str]]] = []
    for field_value in field_values:
        for raw_item in parse_http_list(field_value):
            item = raw_item.strip()
            if not item:
                continue
            if _PARAM_START.match(item) is None:
                start = _SCHEME_START.match(item)
                if start is None:
                    continue  # Not a token: nothing a client could act on.
                challenges.append((start.group(1), {}))
                item = item[start.end() :]
                if not item:
                    continue
            if challenges:
                name, _, value = item.partition("=")
                challenges[-1][1][name.strip().lower()] = _unquote(value)
    return challenges


# -- Digest ---------------------------------------------------------------------------------------


def _hexdigest(name: str) -> Callable[[bytes], str]:
    def digest(data: bytes) -> str:
        return hashlib.new(name, data).hexdigest()

    return digest


# Strongest last: when a server offers several challenges (RFC 7616 section 3.7), the strongest
# one this Python can compute is answered. SHA and SHA-512 are not registered by RFC 7616 but
# servers (httpbin, some appliances) use them, as requests and httpx accept.
_DIGEST_HASHES: Final[dict[str, Callable[[bytes], str]]] = {
    "MD5": _hexdigest("md5"),
    "SHA": _hexdigest("sha1"),
    "SHA-256": _hexdigest("sha256"),
    **(
        {"SHA-512-256": _hexdigest("sha512_256")}
        if "sha512_256" in hashlib.algorithms_available
        else {}
    ),
    "SHA-512": _hexdigest("sha512"),
}
_DIGEST_STRENGTH: Final = {name: rank for rank, name in enumerate(_DIGEST_HASHES)}


@dataclass(slots=True)
class _DigestChallenge:
    """A ``Digest`` challenge this client can answer, with the nonce count of its nonce."""

    algorithm: str  # Echoed as the server spelled it.
    realm: str
    nonce: str
    opaque: str | None
    qop: str | None
    stale: bool
    userhash: bool
    # next() on itertools.count is atomic: threads sharing the auth never reuse a count.
    nonce_counter: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    @property
    def base_algorithm(self) -> str:
        return self.algorithm.upper().removesuffix("-SESS")

    @property
    def sess(self) -> bool:
        return self.algorithm.upper().endswith("-SESS")


def _digest_challenge(params: dict[str, str]) -> _DigestChallenge | None:
    nonce = params.get("nonce")
    algorithm = params.get("algorithm", "MD5")
    if nonce is None or algorithm.upper().removesuffix("-SESS") not in _DIGEST_HASHES:
        return None
    qop = None
    if "qop" in params:
        offered = {item.strip().lower() for item in params["qop"].split(",")}
        # "auth" needs no body hash, so it is preferred whenever the server offers it.
        qop = "auth" if "auth" in offered else "auth-int" if "auth-int" in offered else None
        if qop is None:
            return None  # Only qop values this client does not know: it cannot answer.
    return _DigestChallenge(
        algorithm,
        params.get("realm", ""),
        nonce,
        params.get("opaque"),
        qop,
        params.get("stale", "").lower() == "true",
        params.get("userhash", "").lower() == "true",
    )


def _strongest_digest_challenge(response: Response) -> _DigestChallenge | None:
    if response.status_code != 401:
        return None
    best: _DigestChallenge | None = None
    for scheme, params in _parse_challenges(response.headers.get_list("www-authenticate")):
        if scheme.lower() != "digest":
            continue
        challenge = _digest_challenge(params)
        if challenge is not None and (
            best is None
            or _DIGEST_STRENGTH[challenge.base_algorithm] > _DIGEST_STRENGTH[best.base_algorithm]
        ):
            best = challenge
    return best


# RFC 8187 attr-char, for ``username*``.
_ATTR_CHAR_SAFE: Final = "!#$&+^`|"


def _carry_cookies(request: Request, response: Response) -> None:
    """Send back on the retry the cookies the 401 set: servers that tie the challenge to a
    session cookie (httpbin's stale-nonce endpoints) need them. Only the
    ``name=value`` part matters here (RFC 6265 5.2): the retry goes to the very same URL."""
    set_cookies = response.headers.get_list("set-cookie")
    if not set_cookies:
        return
    cookies: dict[str, str] = {}
    for line in request.headers.get_list("cookie"):
        for pair in line.split(";"):
            name, _, value = pair.strip().partition("=")
            if name:
                cookies[name] = value
    for line in set_cookies:
        name, equals, value = line.partition(";")[0].partition("=")
        if equals and name.strip():
            cookies[name.strip()] = value.strip()
    request.headers["Cookie"] = "; ".join(f"{name}={value}" for name, value in cookies.items())


class DigestAuth(Auth):
    """RFC 7616 Digest: the first request goes without credentials; a 401 challenge is answered
    and remembered, so later requests through the same object authenticate up front with an
    incremented nonce count. A ``stale=true`` challenge is retried once with its new nonce."""

    def __init__(
        self,
        username: str | bytes,
        password: str | bytes,
        *,
        cnonce_factory: Callable[[], str] | None = None,
    ) -> None:
        self._username = _to_bytes(username)
        self._password = _to_bytes(password)
        self._cnonce_factory = cnonce_factory or (lambda: secrets.token_hex(16))
        self._challenge: _DigestChallenge | None = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._username!r}, [secure])"

    def auth_flow(self, request: Request) -> Generator[Request, Response, None]:
        sent = self._challenge
        if sent is not None:
            request.headers["Authorization"] = self._authorization(request, sent)
        response = yield request
        answered = stale_retried = False
        while True:
            challenge = _strongest_digest_challenge(response)
            if challenge is None:
                if sent is not None:
                    self._follow_next_nonce(response, sent)
                return
            if answered:
                # Fresh credentials were refused: only a stale nonce deserves one more try.
                if stale_retried or not challenge.stale:
                    return
                stale_retried = True
            answered = True
            self._challenge = sent = challenge
            _require_replayable(request, "DigestAuth")
            _carry_cookies(request, response)
            request.headers["Authorization"] = self._authorization(request, challenge)
            response = yield request

    def _follow_next_nonce(self, response: Response, sent: _DigestChallenge) -> None:
        info = response.headers.get("authentication-info")
        if info is None:
            return
        for item in parse_http_list(info):
            name, _, value = item.partition("=")
            if name.strip().lower() == "nextnonce" and self._challenge is sent:
                renewed = replace(sent, nonce=_unquote(value), stale=False)
                renewed.nonce_counter = itertools.count(1)
                self._challenge = renewed

    def _authorization(self, request: Request, challenge: _DigestChallenge) -> str:
        digest = _DIGEST_HASHES[challenge.base_algorithm]
        realm = challenge.realm.encode("utf-8")
        nonce = challenge.nonce.encode("utf-8")
        uri = request.url.raw_path
        cnonce = self._cnonce_factory()
        nc = f"{next(challenge.nonce_counter):08x}"
        ha1 = digest(b":".join((self._username, realm, self._password)))
        if challenge.sess:
            ha1 = digest(b":".join((ha1.encode(), nonce, cnonce.encode())))
        a2 = [request.method.encode("ascii"), uri]
        if challenge.qop == "auth-int":
            if not isinstance(request.stream, ByteStream):
                raise StreamError(
                    "Digest qop=auth-int hashes the request body, which is a stream here; "
                    "pass the body as bytes."
                )
            a2.append(digest(request.stream.content).encode())
        ha2 = digest(b":".join(a2))
        if challenge.qop is None:
            secret = f"{ha1}:{challenge.nonce}:{ha2}"
        else:
            secret = f"{ha1}:{challenge.nonce}:{nc}:{cnonce}:{challenge.qop}:{ha2}"
        fields = [self._username_field(challenge, digest, realm)]
        fields.append(f"realm={_quoted(challenge.realm)}")
        fields.append(f"nonce={_quoted(challenge.nonce)}")
        fields.append(f"uri={_quoted(uri.decode('ascii'))}")
        fields.append(f"response={_quoted(digest(secret.encode('utf-8')))}")
        fields.append(f"algorithm={challenge.algorithm}")
        if challenge.opaque is not None:
            fields.append(f"opaque={_quoted(challenge.opaque)}")
        if challenge.qop is not None:
            fields.append(f"qop={challenge.qop}, nc={nc}, cnonce={_quoted(cnonce)}")
        elif challenge.sess:
            fields.append(f"cnonce={_quoted(cnonce)}")
        if challenge.userhash:
            fields.append("userhash=true")
        return "Digest " + ", ".join(fields)

    def _username_field(
        self, challenge: _DigestChallenge, digest: Callable[[bytes], str], realm: bytes
    ) -> str:
        if challenge.userhash:
            return f'username="{digest(self._username + b":" + realm)}"'
        user = self._username
        if all(0x20 <= byte < 0x7F for byte in user):
            return f"username={_quoted(user.decode('ascii'))}"
        # RFC 7616 3.4.4: a name a quoted-string cannot carry goes in RFC 8187 form.
        return f"username*=UTF-8''{quote(user, safe=_ATTR_CHAR_SAFE)}"


# -- OAuth2 ---------------------------------------------------------------------------------------

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
