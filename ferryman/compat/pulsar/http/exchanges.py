"""Which :class:`HttpResponse` stands for which exchange of one pulsar-style call.

ferryman's handlers receive a :class:`~ferryman.Request` before sending and a
:class:`~ferryman.Response` after; pulsar's receive one ``HttpResponse`` per exchange
throughout. A call may hold several exchanges (redirects, an auth flow's second try), so the
faces are looked up by the ferryman objects of each one.
"""

from __future__ import annotations

import inspect
from typing import Any

from ferryman.client.hooks import Handler
from ferryman.compat.pulsar.http.messages import HttpRequest, HttpResponse
from ferryman.http import Request, Response

__all__ = ["Exchanges"]


class Exchanges:
    """The :class:`HttpResponse` of each exchange of one call (its redirects, an auth
    retry), so that every event of an exchange sees the same object."""

    def __init__(self, version: str, wait_continue: bool, stream: bool) -> None:
        self._version = version
        self._wait_continue = wait_continue
        self._stream = stream
        # The latest face of each request, and the face of each response. The objects are
        # kept with their faces: their id() cannot be reused meanwhile. (An auth flow may send
        # one Request object twice: each sending is an exchange with a face of its own.)
        self._by_request: dict[int, tuple[Request, HttpResponse]] = {}
        self._by_response: dict[int, tuple[Response, HttpResponse]] = {}

    def face(self, target: Request | Response) -> HttpResponse:
        if isinstance(target, Response):
            known = self._by_response.get(id(target))
            if known is not None:
                return known[1]
            request = target.request
            assert request is not None
        else:
            request = target
        latest = self._by_request.get(id(request))
        face = None if latest is None else latest[1]
        if face is None or face._response is not None:
            face = HttpResponse(
                HttpRequest(
                    request,
                    version=self._version,
                    wait_continue=self._wait_continue,
                    stream=self._stream,
                )
            )
            self._by_request[id(request)] = (request, face)
        if isinstance(target, Response):
            face._bind(target)
            self._by_response[id(target)] = (target, face)
        return face

    def hook(self, name: str, handlers: tuple[Handler, ...]) -> Handler:
        """One ferryman handler calling pulsar's ``handlers`` with the exchange's face."""
        collect = name == "data_processed"

        async def fire(target: Request | Response, **keywords: Any) -> None:
            face = self.face(target)
            if collect and keywords.get("data") is not None:
                face._received(keywords["data"])
            for handler in handlers:
                result = handler(face, **keywords)
                if inspect.isawaitable(result):
                    await result

        return fire

    def removing(self, names: list[str], then: Handler | None) -> Handler:
        """A ``pre_request`` hook that drops the headers a request set to ``None``."""

        async def drop(request: Request, **keywords: Any) -> None:
            for name in names:
                request.headers.pop(name, None)
            if then is not None:
                await then(request, **keywords)

        return drop

    def final(self, response: Response) -> HttpResponse:
        face = self.face(response)
        face.request.history = [self.face(earlier) for earlier in response.history]
        return face
