"""Request targets an endpoint refuses: those whose dot segments climb above its root.

An endpoint with ``url: http://backend/v1`` exposes ``/v1`` and what is below it, nothing else.
The proxy sends the client's target byte for byte (``/a/../b`` goes out as ``/a/../b``), and
the upstream resolves the dot segments itself (RFC 3986 section 5.2.4) after decoding what it
decodes: ``/../internal/x`` under ``/v1`` is ``/internal/x`` on the upstream. So a target is
refused (400) when its dot segments would climb above the root, as the upstream may read it:

* ``%2e`` (any case) is a dot, as is ``.``, in any mix (``.%2E``);
* ``/``, ``%2f``, ``%5c`` and ``\\`` separate segments (an upstream may decode the escapes, and
  one on Windows splits at backslashes);
* empty segments do not count (``/a//../..`` climbs: upstreams that merge slashes, nginx's
  default, read ``/a/../..``);
* a segment's path parameters (``..;jsessionid=1``) do not count either (Tomcat, Jetty and
  Spring drop them before they resolve dot segments).

A target that stays inside its root passes unchanged: being stricter there would change the
bytes an upstream gets, which ferryman promises it does not. nginx answers the same targets 400.

The check runs per request on the fast path, so the common target leaves after one or two
``memchr`` (:func:`may_escape`): a target with neither ``..`` nor ``%`` has no dot segment to
climb.
"""

from __future__ import annotations

from typing import Final

from ferryman.proxy.errors import error_body
from ferryman.proxy.rewrite import Rewrite
from ferryman.server.protocol import origin_form

__all__ = [
    "ESCAPE_BODY",
    "ESCAPE_MESSAGE",
    "RefusedTarget",
    "escapes_root",
    "may_escape",
    "target_escapes",
]

ESCAPE_MESSAGE: Final = "the request target's dot segments climb above the endpoint's root"
#: The 400 answer's JSON body, built once (both proxy paths send these bytes).
ESCAPE_BODY: Final = error_body(400, ESCAPE_MESSAGE)


class RefusedTarget(ValueError):
    """The general path's way to say "400, this target climbs above the root"."""

    def __init__(self, message: str = ESCAPE_MESSAGE) -> None:
        super().__init__(message)
        self.message = message


#: The bytes a dot segment needs, as numbers: ``number in data`` is one ``memchr``, where
#: ``b"." in data`` first has CPython try the needle as an integer, raise, and clear the error.
_DOT: Final = 0x2E
_PERCENT: Final = 0x25


def may_escape(target: bytes) -> bool:
    """False when ``target`` cannot have a dot segment (no ``..``, no ``%``): most targets.
    Compiled with the hot path (setup.py): the relay asks it for every request."""
    if _PERCENT in target:
        return True
    return _DOT in target and target.find(b"..") >= 0


def _path(target: bytes) -> bytes:
    """The path of an origin-form target: before ``?``. A ``#`` has no place in a request
    target (RFC 9112 section 3.2) and upstreams differ on it, so the path goes on past it:
    ``/v1/#/../../x`` climbs for an upstream that takes the ``#`` as a character."""
    end = target.find(b"?")
    return target if end < 0 else target[:end]


def escapes_root(target: bytes) -> bool:
    """Whether ``target``'s path climbs above its root through dot segments, raw or
    percent-encoded, with ``%2f``, ``%5c`` and ``\\`` taken as separators too (see the module
    documentation for the reading)."""
    if not may_escape(target):
        return False
    path = _path(origin_form(target))
    if not may_escape(path):
        return False
    path = path.lower().replace(b"%2e", b".")
    path = path.replace(b"%2f", b"/").replace(b"%5c", b"/").replace(b"\\", b"/")
    depth = 0
    for segment in path.split(b"/"):
        parameters = segment.find(b";")
        if parameters >= 0:
            segment = segment[:parameters]
        if segment == b"..":
            if depth == 0:
                return True
            depth -= 1
        elif segment and segment != b".":
            depth += 1
    return False


def target_escapes(target: bytes, rewrite: Rewrite | None = None, mount: bytes = b"") -> bool:
    """Whether an endpoint refuses ``target``: it climbs above the root as the client sent it,
    below the endpoint's ``mount`` (its path prefix on a shared port), or once ``rewrite``
    changed its prefix (``/v1/../x`` rewritten from ``/v1`` to ``/`` is ``/../x``).

    The base path of the upstream URL needs no check of its own: it is put in front of a target
    that does not climb above its root, so the result stays below the base path.
    """
    if not may_escape(target):
        return False
    target = origin_form(target)  # (what the rewrite and the upstream get)
    if escapes_root(target):
        return True
    if mount and target.startswith(mount):
        rest = target[len(mount) :]
        if rest[:1] == b"/" and escapes_root(rest):
            return True
    return rewrite is not None and escapes_root(rewrite.apply(target))
