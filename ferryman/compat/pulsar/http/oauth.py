"""pulsar's ``OAuth1`` and ``OAuth2`` constructors (``pulsar.apps.http.oauth``) over ferryman's
OAuth schemes.

pulsar handed ``client_id`` and ``**kw`` to an oauthlib client (``oauthlib.oauth1.Client``,
``oauthlib.oauth2.WebApplicationClient``); the same keywords are taken here and given to
ferryman's own signing (OAuth1: HMAC-SHA1/256/512, PLAINTEXT) and bearer tokens (OAuth2), so
oauthlib is not needed. A ``client=`` already built (oauthlib's, or anything with its
``sign()``/``add_token()``) signs every request itself, as under pulsar. Keywords ferryman has
no equivalent for (RSA signatures, the signature in the body or the query) are refused when
the object is built, not ignored.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import Any

from ferryman.client.auth import Auth
from ferryman.client.auth import OAuth1 as _OAuth1
from ferryman.client.auth import OAuth2 as _OAuth2
from ferryman.exceptions import ResponseNotRead
from ferryman.http import URL, Request, Response

__all__ = ["OAuth1", "OAuth2"]

# oauthlib's OAuth1 Client keywords, as ferryman's OAuth1 names them.
_OAUTH1_KEYWORDS = {
    "client_secret": "client_secret",
    "resource_owner_key": "token",
    "resource_owner_secret": "token_secret",
    "callback_uri": "callback",
    "signature_method": "signature_method",
    "verifier": "verifier",
    "realm": "realm",
}


class OAuth1(Auth):
    """``OAuth1(client_id, client_secret=..., resource_owner_key=...,
    resource_owner_secret=..., ...)``, or ``OAuth1(client=oauthlib_client)``."""

    def __init__(self, client_id: str | None = None, client: Any = None, **kw: Any) -> None:
        if client is not None:
            self._flow: Auth = _SignedBy(client.sign)
            return
        if client_id is None:
            raise TypeError("OAuth1 needs a client_id (the consumer key) or a client")
        options: dict[str, Any] = {}
        for name, value in kw.items():
            if name == "signature_type" and str(value).upper() in ("AUTH_HEADER", "HEADER"):
                continue  # (ferryman signs in the Authorization header, oauthlib's default)
            if name == "nonce" and value is not None:
                options["nonce_factory"] = lambda nonce=str(value): nonce
            elif name == "timestamp" and value is not None:
                options["clock"] = lambda timestamp=float(value): timestamp
            elif name in _OAUTH1_KEYWORDS:
                if value is not None:
                    options[_OAUTH1_KEYWORDS[name]] = value
            else:
                raise TypeError(
                    f"OAuth1({name}=...) is not supported by ferryman's OAuth1 (it signs with "
                    "HMAC-SHA1/256/512 or PLAINTEXT in the Authorization header)"
                )
        secret = options.pop("client_secret", "")
        self._flow = _OAuth1(client_id, secret, **options)

    def auth_flow(self, request: Request) -> Generator[Request, Response, None]:
        return self._flow.auth_flow(request)


class OAuth2(Auth):
    """``OAuth2(client_id, access_token=...)`` (or ``token={"access_token": ...}``), or
    ``OAuth2(client=oauthlib_client)``: a bearer token in the Authorization header."""

    def __init__(self, client_id: str | None = None, client: Any = None, **kw: Any) -> None:
        if client is not None:
            self._flow: Auth = _SignedBy(client.add_token)
            return
        token = kw.pop("token", None) or {}
        access_token = kw.pop("access_token", None) or token.get("access_token")
        token_type = kw.pop("token_type", None) or token.get("token_type") or "Bearer"
        for name in ("scope", "state", "redirect_url", "code", "refresh_token"):
            kw.pop(name, None)  # (what the client knows of the token's grant, not sent)
        if kw:
            raise TypeError(
                f"OAuth2({', '.join(sorted(kw))}=...) is not supported by ferryman's OAuth2 "
                "(a bearer token in the Authorization header)"
            )
        if not access_token:
            raise ValueError("OAuth2 needs an access_token (or token={'access_token': ...})")
        self.client_id = client_id
        self._flow = _OAuth2(access_token, token_type=str(token_type).capitalize())

    def auth_flow(self, request: Request) -> Generator[Request, Response, None]:
        return self._flow.auth_flow(request)


class _SignedBy(Auth):
    """A request signed by an oauthlib-style client: ``sign(uri, method, body, headers)``
    returns the URL, headers and body to send."""

    def __init__(self, sign: Callable[..., tuple[str, dict[str, str], Any]]) -> None:
        self._sign = sign

    def auth_flow(self, request: Request) -> Generator[Request, Response, None]:
        try:
            body: str | None = request.content.decode("utf-8") or None
        except ResponseNotRead:
            body = None  # a streamed body is not signed (oauthlib signs form bodies only)
        uri, headers, _ = self._sign(
            str(request.url), request.method, body, dict(request.headers.items())
        )
        if uri != str(request.url):
            request.url = URL(uri)
        for name, value in headers.items():
            if request.headers.get(name) != value:
                request.headers[name] = value
        yield request
