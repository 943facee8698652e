"""Route globs (``"GET /users/*"``) and what a request's path is matched as.

A route is an optional method (a token, or ``*`` for any) and a path glob in ``fnmatch``'s
words: ``*`` matches anything, ``/`` included (``/users/*`` matches ``/users/1/posts``), ``?``
one character, ``[abc]`` one of a set. ``"/users/*"`` alone is any method.

The path matched is the request's, percent-decoded and with its dot segments removed (RFC 3986
section 5.2.4), so that a rule guarding ``/admin/*`` is not walked around with
``/%61dmin/x`` or ``/public/../admin/x``, which an upstream may well read as ``/admin/x``.
The query is not part of it.
"""

from __future__ import annotations

import fnmatch
import re
from typing import Final

__all__ = ["Route", "normalized_path"]

_METHOD: Final = re.compile(r"^(\*|[!#$%&'*+.^_`|~0-9A-Za-z-]+)$")


class Route:
    """One parsed route glob; :meth:`matches` a method and a (normalized) path."""

    __slots__ = ("_pattern", "glob", "method", "path")

    def __init__(self, glob: str) -> None:
        self.glob = glob
        words = glob.split()
        if len(words) == 1:
            method, path = "*", words[0]
        elif len(words) == 2:
            method, path = words
        else:
            raise ValueError(
                f"{glob!r} is not a route: it is 'METHOD /path/glob' or '/path/glob' "
                "(any method), e.g. 'GET /users/*'"
            )
        if not _METHOD.match(method):
            raise ValueError(f"{glob!r}: {method!r} is not a method (or '*' for any)")
        if not path.startswith("/"):
            raise ValueError(f"{glob!r}: the path glob must start with '/', got {path!r}")
        if path.count("[") != path.count("]"):
            raise ValueError(f"{glob!r}: a '[' or ']' has no partner in {path!r}")
        self.method = method.upper()
        self.path = path
        self._pattern = re.compile(fnmatch.translate(path))

    def matches(self, method: str, path: str) -> bool:
        return (self.method == "*" or self.method == method) and (
            self._pattern.match(path) is not None
        )

    def __repr__(self) -> str:
        return f"<Route {self.glob!r}>"


def normalized_path(path: str) -> str:
    """``path`` (already percent-decoded) without ``.`` and ``..`` segments."""
    if "." not in path:
        return path or "/"
    output: list[str] = []
    segments = path.split("/")
    for index, segment in enumerate(segments):
        last = index == len(segments) - 1
        if segment == ".":
            if last:
                output.append("")
        elif segment == "..":
            if len(output) > 1:
                output.pop()
            if last:
                output.append("")
        else:
            output.append(segment)
    joined = "/".join(output)
    return joined if joined.startswith("/") else "/" + joined
