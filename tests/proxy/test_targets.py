"""Which request targets climb above an endpoint's root (both proxy paths refuse them)."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ferryman.proxy.rewrite import Rewrite
from ferryman.proxy.targets import (
    ESCAPE_BODY,
    ESCAPE_MESSAGE,
    escapes_root,
    may_escape,
    target_escapes,
)

#: Issue 20's vectors: with ``url: http://backend/v1`` they reached ``/internal/x``; nginx
#: answers each with 400.
ISSUE_VECTORS = [
    b"/../internal/x",
    b"/%2e%2e/internal/x",
    b"/..%2finternal/x",
    b"/%2E%2E/internal/x",
    b"/x/../../internal/x",
]
#: Those and their relatives.
ESCAPING = [
    *ISSUE_VECTORS,
    b"/.%2E/internal",
    b"/%2e./internal",
    b"/..",
    b"/../",
    b"/..?q=1",
    b"/a/b/../../../c",
    b"/a/%2E%2e/%2e%2E/x",
    b"/..%2Finternal",
    b"/..%5cinternal",
    b"/..\\internal",
    b"/a%2f..%2f..%2fx",
    b"/a//../../x",  # slashes merged, as nginx and many upstreams do
    b"/./../x",
    b"/..;jsessionid=1/x",  # Tomcat's path parameters
    b"/a/..;/..;/x",
    b"http://proxy.test/../x",  # absolute form: the path is what goes upstream
    b"/x#/../..",  # no fragment in a request target: an upstream may take the # as a name
    b"/#/../../x",
]

#: Targets that stay inside the root: relayed byte for byte.
STAYING = [
    b"/a/../b",
    b"/a/./b",
    b"/./a",
    b"/a/..",
    b"/..a/b",
    b"/a../b",
    b"/.../b",
    b"/a.b/c..d",
    b"/%2e",
    b"/a/%2e%2e",
    b"/x?path=/../../etc",
    b"/x?a#/../../..",  # (in the query: no path)
    b"/a/#/../../x",  # (the # a name: a/#/.. and .. stay inside)
    b"/%252e%252e/x",  # decoded once, it is "%2e%2e": a name, not a dot segment
    b"/caf%C3%A9/%7Euser?q=%20",
    b"/",
    b"*",
    b"proxy.test:443",
    b"http://proxy.test",
    b"http://proxy.test/a/../b?x=..",
]


@pytest.mark.parametrize("target", ESCAPING)
def test_targets_climbing_above_the_root_escape(target: bytes) -> None:
    assert escapes_root(target) and target_escapes(target)


@pytest.mark.parametrize("target", STAYING)
def test_targets_inside_the_root_stay(target: bytes) -> None:
    assert not escapes_root(target) and not target_escapes(target)


def test_ordinary_targets_are_told_apart_by_two_scans() -> None:
    assert not may_escape(b"/v1/users/42?fields=name,id&sort=asc")
    assert not may_escape(b"/index.html")
    assert may_escape(b"/a/../b") and may_escape(b"/a?q=%20")


def test_a_rewrite_can_make_a_target_climb() -> None:
    """``/v1/../x`` stays inside the root; rewritten from /v1 to / it is ``/../x``."""
    rewrite = Rewrite("/v1", "/")
    assert not target_escapes(b"/v1/../x")
    assert target_escapes(b"/v1/../x", rewrite)
    assert target_escapes(b"http://proxy.test/v1/../x", rewrite)
    assert not target_escapes(b"/v1/a/../x", rewrite)
    assert not target_escapes(b"/v2/../x", Rewrite("/v1", "/deeper/still"))


def test_a_target_may_not_climb_above_its_mount() -> None:
    """On a shared port, ``/maps/../admin`` would leave the endpoint mounted at /maps."""
    assert not target_escapes(b"/maps/../admin")
    assert target_escapes(b"/maps/../admin", mount=b"/maps")
    assert target_escapes(b"/maps/%2e%2e/admin", mount=b"/maps")
    assert not target_escapes(b"/maps/a/../b", mount=b"/maps")
    assert not target_escapes(b"/mapsx/../b", mount=b"/maps")


def test_the_answer_is_json() -> None:
    assert json.loads(ESCAPE_BODY) == {"status": 400, "message": ESCAPE_MESSAGE}


# -- the reading, against RFC 3986's remove_dot_segments ---------------------------------------

BASE = "/v1"


def remove_dot_segments(path: str) -> str:
    """RFC 3986 section 5.2.4, rule by rule, on a string buffer."""
    output = ""
    while path:
        if path.startswith("../"):
            path = path[3:]
        elif path.startswith(("./", "/./")):  # (A and B: both two characters)
            path = path[2:]
        elif path == "/.":
            path = "/"
        elif path.startswith("/../"):
            path = path[3:]
            output = output[: max(output.rfind("/"), 0)]
        elif path == "/..":
            path = "/"
            output = output[: max(output.rfind("/"), 0)]
        elif path in (".", ".."):
            path = ""
        else:
            start = 1 if path.startswith("/") else 0
            end = path.find("/", start)
            end = len(path) if end < 0 else end
            output += path[:end]
            path = path[end:]
    return output


def rfc_escapes(path: str) -> bool:
    """Resolved below the base path ``/v1``, does ``path`` end up outside it?"""
    resolved = remove_dot_segments(BASE + path)
    return not (resolved == BASE or resolved.startswith(BASE + "/"))


def as_upstream_reads(target: str) -> str:
    """What an upstream that decodes may make of a path: ``%2e`` a dot, ``%2f``, ``%5c`` and
    ``\\`` slashes, path parameters dropped from each segment."""
    decoded = target.lower().replace("%2e", ".")
    for separator in ("%2f", "%5c", "\\"):
        decoded = decoded.replace(separator, "/")
    return "/".join(segment.split(";", 1)[0] for segment in decoded.split("/"))


def merge_slashes(path: str) -> str:
    while "//" in path:
        path = path.replace("//", "/")
    return path


_SEGMENTS = st.sampled_from(
    [
        "a",
        "bc",
        ".",
        "..",
        "",
        "%2e",
        "%2E",
        ".%2e",
        "%2E.",
        "%2e%2e",
        "..;p=1",
        ".;x",
        "a.b",
        "...",
    ]
)
_SEPARATORS = st.sampled_from(["/", "/", "/", "%2f", "%2F", "%5c", "%5C", "\\"])


@given(st.lists(st.tuples(_SEPARATORS, _SEGMENTS), min_size=1, max_size=10))
def test_escaping_is_what_remove_dot_segments_says(parts: list[tuple[str, str]]) -> None:
    (_, first), *rest = parts
    target = "/" + first + "".join(separator + segment for separator, segment in rest)
    read = as_upstream_reads(target)
    escapes = escapes_root(target.encode("latin-1"))
    # Exactly RFC 3986 once slashes are merged (nginx's reading)...
    assert escapes == rfc_escapes(merge_slashes(read)), (target, read)
    # ...which refuses whatever the RFC's own reading, empty segments kept, refuses.
    if rfc_escapes(read):
        assert escapes
    # A query or a fragment changes nothing.
    assert escapes_root(target.encode("latin-1") + b"?x=/../../..#/..") == escapes
