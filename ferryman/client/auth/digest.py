"""HTTP Digest access authentication (RFC 7616), answering a server's 401 challenge."""

from __future__ import annotations

import hashlib
import itertools
import re
import secrets
from collections.abc import (
    Callable,
    Generator,
    Iterable,
    Iterator,
)
from dataclasses import dataclass, field, replace
from typing import Final
from urllib.parse import quote
from urllib.request import parse_http_list

from ferryman.client.auth.base import Auth, _require_replayable, _to_bytes
from ferryman.exceptions import StreamError
from ferryman.http import ByteStream, Request, Response

__all__ = ["DigestAuth"]


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
