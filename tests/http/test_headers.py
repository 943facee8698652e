"""Tests for ferryman.http.headers.Headers."""

from __future__ import annotations

import copy
import pickle
from collections.abc import MutableMapping

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ferryman.exceptions import LocalProtocolError, ProtocolError
from ferryman.http.headers import Headers

# -- construction ----------------------------------------------------------------------------


def test_from_mapping_keeps_case_and_order() -> None:
    headers = Headers({"Content-Type": "text/plain", "X-Request-ID": "abc"})
    assert headers.raw == [(b"Content-Type", b"text/plain"), (b"X-Request-ID", b"abc")]
    assert headers.multi_items() == [("content-type", "text/plain"), ("x-request-id", "abc")]


def test_from_pairs_of_str_bytes_and_mixed() -> None:
    headers = Headers([("A", "1"), (b"B", b"2"), ("C", b"3"), (b"a", "4")])
    assert headers.raw == [(b"A", b"1"), (b"B", b"2"), (b"C", b"3"), (b"a", b"4")]
    assert headers.get_list("a") == ["1", "4"]


def test_from_headers_copies() -> None:
    original = Headers([("A", "1")], encoding="latin-1")
    clone = Headers(original)
    clone.add("B", "2")
    assert original.raw == [(b"A", b"1")]
    assert clone.raw == [(b"A", b"1"), (b"B", b"2")]
    assert clone.encoding == "latin-1"


def test_empty() -> None:
    headers = Headers()
    assert headers.raw == []
    assert len(headers) == 0
    assert not headers
    assert Headers(None) == Headers([])


def test_is_a_mutable_mapping() -> None:
    assert isinstance(Headers(), MutableMapping)


def test_raw_is_a_copy() -> None:
    headers = Headers([("A", "1")])
    headers.raw.append((b"B", b"2"))
    assert headers.raw == [(b"A", b"1")]


# -- validation ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    ["a\r\nX-Injected: 1", "a\nb", "a\rb", "a\x00b", b"a\r\nb", b"\n"],
)
def test_values_with_cr_lf_nul_are_refused(value: str | bytes) -> None:
    with pytest.raises(LocalProtocolError, match="'X-Name'") as info:
        Headers([("X-Name", value)])
    assert "Injected" not in str(info.value)  # Values may be secrets: never echoed.


@pytest.mark.parametrize(
    "name",
    ["", "Bad Name", "Bad:Name", "X-A\r\nX-B", "Nul\x00", "(x)", "ä", b"x y", b"", "a/b", "a\tb"],
)
def test_names_outside_rfc9110_token_are_refused(name: str | bytes) -> None:
    with pytest.raises(LocalProtocolError, match="Invalid header name"):
        Headers([(name, "v")])


def test_all_token_characters_are_accepted() -> None:
    name = "!#$%&'*+-.^_`|~09azAZ"
    assert Headers([(name, "v")])[name] == "v"


def test_local_protocol_error_is_a_protocol_error() -> None:
    with pytest.raises(ProtocolError):
        Headers({"a b": "c"})


@pytest.mark.parametrize(
    "bad",
    ["Host: a", b"Host: a", [("a", "b", "c")], ["ab"], [("a", 1)], [(1, "a")], 3],
)
def test_unsupported_input_types_raise_type_error(bad: object) -> None:
    with pytest.raises(TypeError):
        Headers(bad)  # type: ignore[arg-type]


def test_mutators_validate_too() -> None:
    headers = Headers()
    with pytest.raises(LocalProtocolError):
        headers["X"] = "a\r\nb"
    with pytest.raises(LocalProtocolError):
        headers.add("X Y", "v")
    with pytest.raises(LocalProtocolError):
        headers.update({"X": "\n"})
    with pytest.raises(TypeError):
        headers["Content-Length"] = 5  # type: ignore[assignment]
    assert headers.raw == []


def test_other_control_characters_and_obs_text_are_kept() -> None:
    headers = Headers([("X", b"\tv\xe9\x01")])
    assert headers.raw == [(b"X", b"\tv\xe9\x01")]


# -- lookups ---------------------------------------------------------------------------------


def test_lookups_are_case_insensitive() -> None:
    headers = Headers({"Content-Type": "text/html"})
    assert headers["content-type"] == "text/html"
    assert headers["CONTENT-TYPE"] == "text/html"
    assert headers.get("Content-type") == "text/html"
    assert headers.get("missing") is None
    assert headers.get("missing", "default") == "default"
    assert "CoNtEnT-TyPe" in headers
    assert b"content-type" in headers  # type: ignore[comparison-overlap]
    assert "other" not in headers
    assert 42 not in headers  # type: ignore[comparison-overlap]
    with pytest.raises(KeyError):
        headers["missing"]


def test_repeated_fields() -> None:
    headers = Headers([("Set-Cookie", "a=1"), ("Vary", "Accept"), ("set-cookie", "b=2")])
    assert headers["set-cookie"] == "a=1, b=2"
    assert headers.get_list("Set-Cookie") == ["a=1", "b=2"]
    assert list(headers.keys()) == ["set-cookie", "vary"]
    assert list(headers.values()) == ["a=1, b=2", "Accept"]
    assert list(headers.items()) == [("set-cookie", "a=1, b=2"), ("vary", "Accept")]
    assert list(headers) == ["set-cookie", "vary"]
    assert len(headers) == 2
    assert headers.multi_items() == [
        ("set-cookie", "a=1"),
        ("vary", "Accept"),
        ("set-cookie", "b=2"),
    ]


def test_get_list_split_commas() -> None:
    headers = Headers([("Accept", "a, b"), ("accept", "c,, d ,"), ("Other", "x")])
    assert headers.get_list("accept") == ["a, b", "c,, d ,"]
    assert headers.get_list("accept", split_commas=True) == ["a", "b", "c", "d"]
    assert headers.get_list("missing", split_commas=True) == []


# -- mutation --------------------------------------------------------------------------------


def test_setitem_replaces_all_values_at_the_first_position() -> None:
    headers = Headers([("A", "1"), ("X", "x1"), ("B", "2"), ("x", "x2"), ("X", "x3"), ("D", "4")])
    headers["x"] = "new"
    assert headers.raw == [(b"A", b"1"), (b"x", b"new"), (b"B", b"2"), (b"D", b"4")]
    headers["C"] = "3"
    assert headers.raw[-1] == (b"C", b"3")
    assert headers["c"] == "3"


def test_delitem_removes_all_values() -> None:
    headers = Headers([("A", "1"), ("X", "x1"), ("x", "x2")])
    del headers["X"]
    assert headers.raw == [(b"A", b"1")]
    assert "x" not in headers
    with pytest.raises(KeyError):
        del headers["X"]


def test_add_appends() -> None:
    headers = Headers([("Set-Cookie", "a=1")])
    headers.add("Set-Cookie", "b=2")
    headers.add(b"Via", b"1.1 ferryman")
    assert headers.raw == [
        (b"Set-Cookie", b"a=1"),
        (b"Set-Cookie", b"b=2"),
        (b"Via", b"1.1 ferryman"),
    ]


def test_update_replaces_names_in_place_and_keeps_repeats() -> None:
    headers = Headers([("A", "1"), ("Cookie", "c1"), ("B", "2"), ("cookie", "c2")])
    headers.update(Headers([("New", "n1"), ("COOKIE", "x"), ("new", "n2"), ("cookie", "y")]))
    assert headers.raw == [
        (b"A", b"1"),
        (b"COOKIE", b"x"),
        (b"cookie", b"y"),
        (b"B", b"2"),
        (b"New", b"n1"),
        (b"new", b"n2"),
    ]
    headers.update({"a": "one"})
    assert headers.raw[0] == (b"a", b"one")
    headers.update(None)
    assert len(headers.raw) == 6


def test_setdefault_pop_clear() -> None:
    headers = Headers({"A": "1"})
    assert headers.setdefault("a", "other") == "1"
    assert headers.setdefault("B", "2") == "2"
    assert headers.raw == [(b"A", b"1"), (b"B", b"2")]
    assert headers.pop("b") == "2"
    assert headers.pop("b", None) is None
    headers.clear()
    assert headers.raw == []
    assert "a" not in headers


def test_copy_is_independent() -> None:
    headers = Headers({"A": "1"})
    for clone in (headers.copy(), copy.copy(headers)):
        clone["A"] = "2"
        assert headers["a"] == "1"
        assert clone["a"] == "2"


def test_pickle_round_trip() -> None:
    headers = Headers([("A", "1"), ("a", "2")], encoding="utf-8")
    restored = pickle.loads(pickle.dumps(headers))
    assert restored.raw == headers.raw
    assert restored.encoding == "utf-8"
    assert restored.get_list("A") == ["1", "2"]


# -- encoding --------------------------------------------------------------------------------


def test_encoding_detection() -> None:
    assert Headers({"A": "plain"}).encoding == "ascii"
    utf8 = Headers({"A": "café"})
    assert utf8.raw == [(b"A", "café".encode())]
    assert utf8.encoding == "utf-8"
    assert utf8["a"] == "café"
    latin = Headers([(b"A", b"caf\xe9")])
    assert latin.encoding == "iso-8859-1"
    assert latin["a"] == "café"


def test_encoding_is_redetected_after_changes() -> None:
    headers = Headers({"A": "plain"})
    assert headers.encoding == "ascii"
    headers.add("B", b"caf\xc3\xa9")
    assert headers.encoding == "utf-8"
    assert headers.multi_items() == [("a", "plain"), ("b", "café")]


def test_encoding_is_settable_and_used_for_str_values() -> None:
    headers = Headers({"A": "café"}, encoding="latin-1")
    assert headers.raw == [(b"A", b"caf\xe9")]
    assert headers["a"] == "café"
    raw = Headers([(b"A", "café".encode())])
    raw.encoding = "iso-8859-1"
    assert raw["a"] == "cafÃ©"


# -- from_raw --------------------------------------------------------------------------------


def test_from_raw_wraps_the_list_without_copying_or_lowering() -> None:
    raw = [(b"Content-Type", b"text/plain"), (b"Set-Cookie", b"a"), (b"set-cookie", b"b")]
    headers = Headers.from_raw(raw)
    assert headers._raw is raw
    lower_before_lookup = headers._lower
    assert lower_before_lookup is None
    assert headers.raw == raw
    assert headers["content-type"] == "text/plain"
    assert headers._lower == [b"content-type", b"set-cookie", b"set-cookie"]
    assert headers.get_list("SET-COOKIE") == ["a", "b"]


def test_from_raw_stays_consistent_under_mutation() -> None:
    headers = Headers.from_raw([(b"A", b"1")])
    headers.add("B", "2")  # before the lower-case names exist
    assert headers["b"] == "2"
    headers.add("C", "3")  # after
    headers["a"] = "x"
    del headers["B"]
    assert headers.raw == [(b"a", b"x"), (b"C", b"3")]
    assert list(headers) == ["a", "c"]


def test_from_raw_accepts_tuples() -> None:
    headers = Headers.from_raw(((b"A", b"1"),))  # type: ignore[arg-type]
    headers.add("B", "2")
    assert headers.raw == [(b"A", b"1"), (b"B", b"2")]


def test_from_raw_equals_validated_headers() -> None:
    assert Headers.from_raw([(b"Host", b"a")]) == Headers({"host": "a"})


# -- equality --------------------------------------------------------------------------------


def test_equality_ignores_order_and_name_case_but_not_value_case() -> None:
    a = Headers([("A", "1"), ("B", "2"), ("a", "3")])
    assert a == Headers([("b", "2"), ("a", "1"), ("A", "3")])
    assert a == [("B", "2"), ("A", "1"), ("a", "3")]
    assert a != Headers([("A", "1"), ("B", "2")])
    assert Headers({"A": "x"}) != Headers({"A": "X"})
    assert Headers({"A": "1"}) == {"a": "1"}
    assert Headers({"A": "1"}) != {"a": "1", "b": "2"}
    assert Headers({"A": "1"}) != {"bad name": "1"}
    assert Headers({"A": "1"}) != 1
    assert Headers({"A": "1"}) != "A: 1"


def test_headers_are_not_hashable() -> None:
    with pytest.raises(TypeError):
        hash(Headers())


# -- repr ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["Authorization", "proxy-authorization", "COOKIE", "Set-Cookie", "X-Api-Key"]
)
def test_repr_redacts_credentials(name: str) -> None:
    headers = Headers([("Host", "a"), (name, "s3cret")])
    assert repr(headers) == f"Headers({{'Host': 'a', '{name}': '[secure]'}})"
    assert "s3cret" not in repr(headers)
    assert headers[name] == "s3cret"


def test_repr_of_repeated_fields_and_non_ascii() -> None:
    headers = Headers([("A", "1"), ("a", "2")])
    assert repr(headers) == "Headers([('A', '1'), ('a', '2')])"
    assert repr(Headers({"A": "é"})) == "Headers({'A': 'é'}, encoding='utf-8')"


# -- property-based --------------------------------------------------------------------------

_TCHAR = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
_names = st.text(alphabet=_TCHAR, min_size=1, max_size=12)
_values = st.text(
    st.characters(exclude_characters="\r\n\x00", exclude_categories=["Cs"]), max_size=20
)
_pairs = st.lists(st.tuples(_names, _values), max_size=10)


@given(_pairs)
def test_round_trip(pairs: list[tuple[str, str]]) -> None:
    headers = Headers(pairs)
    assert headers.raw == [(name.encode(), value.encode()) for name, value in pairs]
    assert headers.multi_items() == [(name.lower(), value) for name, value in pairs]
    assert Headers(headers) == headers
    assert Headers.from_raw(headers.raw) == headers
    assert Headers(headers.raw).raw == headers.raw


@given(_pairs, _names)
def test_lookups_ignore_case(pairs: list[tuple[str, str]], name: str) -> None:
    headers = Headers(pairs)
    expected = [value for key, value in pairs if key.lower() == name.lower()]
    for variant in (name, name.lower(), name.upper(), name.swapcase()):
        assert headers.get_list(variant) == expected
        assert (variant in headers) == bool(expected)
        assert headers.get(variant) == (", ".join(expected) if expected else None)
    assert len(headers) == len({key.lower() for key, _ in pairs})


@given(st.data(), _pairs)
def test_equality_ignores_order(data: st.DataObject, pairs: list[tuple[str, str]]) -> None:
    shuffled = data.draw(st.permutations(pairs))
    assert Headers(pairs) == Headers(shuffled)
    assert Headers(pairs) == Headers([(name.swapcase(), value) for name, value in shuffled])


@given(_pairs, _names, _values)
def test_setitem_then_getitem(pairs: list[tuple[str, str]], name: str, value: str) -> None:
    headers = Headers(pairs)
    headers[name.swapcase()] = value
    assert headers[name] == value
    assert headers.get_list(name) == [value]
    del headers[name]
    assert name not in headers


@given(_values, _values, st.sampled_from(["\r", "\n", "\x00", "\r\n"]))
def test_any_value_with_a_line_break_or_nul_is_refused(before: str, after: str, bad: str) -> None:
    with pytest.raises(LocalProtocolError):
        Headers({"X": before + bad + after})
    with pytest.raises(LocalProtocolError):
        Headers({"X": (before + bad + after).encode()})
