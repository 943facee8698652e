"""Basic auth in front of everything the kernel's port serves besides traffic: the pages,
``/api``, ``/metrics`` (through :meth:`ferryman.proxy.ProxyEndpoints.guard`).

Credentials are compared in constant time: the user name and the password are each hashed
with SHA-256 and compared with :func:`hmac.compare_digest`, both always, so neither a wrong
name nor a wrong length answers sooner. With a ``password_hash`` (PBKDF2, deliberately slow:
~0.3 s), each check runs in a thread, one at a time, so guessing costs the guesser and never
stalls the proxy's event loop; an ``Authorization`` header that passed is remembered (its
SHA-256, a few of them) so a signed-in browser does not pay that for every request.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import json
from collections import OrderedDict
from typing import Final

from ferryman.apps.dashboard.passwords import parse_hash, verify
from ferryman.apps.dashboard.settings import AuthSettings
from ferryman.http.models import Request, Response
from ferryman.proxy.resolver import EndpointTarget
from ferryman.server.controllers import ASGIApp, ASGIApplication, Receive, Scope, Send

__all__ = ["BasicAuth"]

#: Authorization headers that passed, remembered (as SHA-256) to spare the PBKDF2.
REMEMBERED: Final = 16
#: Longest Authorization header looked at (a basic credential is far shorter).
MAX_HEADER: Final = 4096


def _digest(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


class BasicAuth:
    def __init__(self, settings: AuthSettings) -> None:
        self.challenge = f'Basic realm="{settings.realm}", charset="UTF-8"'.encode()
        self._user = _digest(settings.username.encode())
        secret = settings.secret()
        self._password = None if secret is None else _digest(secret.encode())
        self._hash = (
            None
            if settings.password_hash is None
            else parse_hash(settings.password_hash.get_secret_value())
        )
        self._passed: OrderedDict[bytes, None] = OrderedDict()
        self._slow = asyncio.Semaphore(1)

    async def check(self, authorization: bytes | None) -> bool:
        """Whether an ``Authorization`` header value carries the configured credentials."""
        if not authorization or len(authorization) > MAX_HEADER:
            return False
        scheme, _, encoded = authorization.strip().partition(b" ")
        if scheme.lower() != b"basic":
            return False
        try:
            decoded = base64.b64decode(encoded.strip(), validate=True)
        except (binascii.Error, ValueError):
            return False
        user, colon, password = decoded.partition(b":")
        if not colon:
            return False
        key = _digest(authorization)
        if key in self._passed:
            self._passed.move_to_end(key)
            return True
        user_ok = hmac.compare_digest(_digest(user), self._user)
        if self._password is not None:
            password_ok = hmac.compare_digest(_digest(password), self._password)
        else:
            assert self._hash is not None
            try:
                text = password.decode()
            except UnicodeDecodeError:
                text = password.decode("latin-1")
            async with self._slow:
                password_ok = await asyncio.to_thread(verify, text, self._hash)
        if user_ok and password_ok:
            self._passed[key] = None
            while len(self._passed) > REMEMBERED:
                self._passed.popitem(last=False)
            return True
        return False

    # -- in front of mounted apps ---------------------------------------------------------------

    def guard(self, target: EndpointTarget) -> EndpointTarget:
        """For ``ProxyEndpoints.guard``: an ASGI app or a controller, behind the check."""
        if isinstance(target, ASGIApp):
            return ASGIApp(self.asgi(target.app))
        if callable(target) and not hasattr(target, "handle"):
            controller = target

            async def guarded(request: Request) -> object:
                if await self.check(_header(request)):
                    return await controller(request)
                return self._refusal()

            return guarded
        return target

    def asgi(self, app: ASGIApplication) -> ASGIApplication:
        async def guarded(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] not in ("http", "websocket"):
                await app(scope, receive, send)
                return
            authorization = None
            for name, value in scope.get("headers", ()):
                if name.lower() == b"authorization":
                    authorization = bytes(value)
                    break
            if await self.check(authorization):
                await app(scope, receive, send)
                return
            if scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 1008})
                return
            body = json.dumps({"status": 401, "message": "Unauthorized"}).encode()
            await send(
                {
                    "type": "http.response.start",
                    "status": 401,
                    "headers": [
                        (b"content-type", b"application/json"),
                        (b"content-length", str(len(body)).encode()),
                        (b"www-authenticate", self.challenge),
                        (b"cache-control", b"no-store"),
                        (b"x-content-type-options", b"nosniff"),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": body})

        return guarded

    def _refusal(self) -> Response:
        response = Response(401, json={"status": 401, "message": "Unauthorized"})
        response.headers["WWW-Authenticate"] = self.challenge.decode()
        response.headers["Cache-Control"] = "no-store"
        return response


def _header(request: Request) -> bytes | None:
    value = request.headers.get("authorization")
    return None if value is None else value.encode("latin-1", "replace")
