"""Path rewriting: whole segments, the rest byte for byte."""

from __future__ import annotations

import pytest

from ferryman.proxy.rewrite import Rewrite


@pytest.mark.parametrize(
    ("rfrom", "rto", "target", "expected"),
    [
        ("/api", "/", b"/api/a%2Fb?q=1", b"/a%2Fb?q=1"),
        ("/api", "/", b"/api", b"/"),
        ("/api", "/", b"/api/", b"/"),
        ("/api", "/", b"/api?q=1", b"/?q=1"),
        ("/api", "/", b"/apis/x", b"/apis/x"),
        ("/api", "/", b"/ap", b"/ap"),
        ("/api", "/", b"/other/api/x", b"/other/api/x"),
        ("/api", "/v2", b"/api/users", b"/v2/users"),
        ("/api", "/v2", b"/api", b"/v2"),
        ("/api", "/v2", b"/api?x=%20", b"/v2?x=%20"),
        ("/api/", "/v2/", b"/api/users", b"/v2/users"),
        ("/a/b", "/c", b"/a/b/c/d", b"/c/c/d"),
        ("/a/b", "/c", b"/a/bc", b"/a/bc"),
        ("/", "/prefix", b"/x", b"/prefix/x"),
        ("/caf%C3%A9", "/cafe", b"/caf%C3%A9/menu", b"/cafe/menu"),
    ],
)
def test_rewrite(rfrom: str, rto: str, target: bytes, expected: bytes) -> None:
    assert Rewrite(rfrom, rto).apply(target) == expected


@pytest.mark.parametrize(("rfrom", "rto"), [("api", "/"), ("/api", "v2"), ("", "/")])
def test_paths_must_start_with_a_slash(rfrom: str, rto: str) -> None:
    with pytest.raises(ValueError, match="start with '/'"):
        Rewrite(rfrom, rto)


def test_equality_hash_and_repr() -> None:
    assert Rewrite("/a", "/b") == Rewrite("/a", "/b")
    assert Rewrite("/a", "/b") != Rewrite("/a", "/c")
    assert len({Rewrite("/a", "/b"), Rewrite("/a", "/b")}) == 1
    assert repr(Rewrite("/a", "/b")) == "Rewrite(rfrom='/a', rto='/b')"
