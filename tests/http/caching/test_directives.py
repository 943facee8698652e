"""Reading Cache-Control, dates and delta-seconds as RFC 9111 asks a cache to."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ferryman.http.caching.directives import (
    MAX_DELTA,
    delta_seconds,
    field_names,
    http_date,
    joined_value,
    parse_cache_control,
)


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ([b"max-age=60"], {b"max-age": b"60"}),
        ([b"Max-Age=60, PUBLIC"], {b"max-age": b"60", b"public": None}),
        ([b"no-cache", b"max-age=5"], {b"no-cache": None, b"max-age": b"5"}),
        (
            [b'private="Set-Cookie, X-Token", max-age=3'],
            {b"private": b"Set-Cookie, X-Token", b"max-age": b"3"},
        ),
        ([b'max-age="10"'], {b"max-age": b"10"}),
        ([b"max-age=10, max-age=99999"], {b"max-age": b"10"}),  # the first counts
        ([b" , ,no-store,,"], {b"no-store": None}),
        ([b'ext="a\\"b, c"'], {b"ext": b'a"b, c'}),
        ([], {}),
    ],
)
def test_cache_control_directives(values: list[bytes], expected: dict[bytes, bytes | None]) -> None:
    assert parse_cache_control(values) == expected


@pytest.mark.parametrize(
    ("argument", "expected"),
    [
        (b"0", 0),
        (b"60", 60),
        (b"-1", None),
        (b"1.5", None),
        (b"", None),
        (None, None),
        (b"99999999999999999999", MAX_DELTA),
        (b"9" * 5000, MAX_DELTA),  # (more digits than int() converts)
        (b"0" * 5000 + b"42", 42),
        (b"2147483648", MAX_DELTA),
        (b"2147483647", MAX_DELTA - 1),
        ("\u00b2".encode("latin-1"), None),
    ],
)
def test_delta_seconds(argument: bytes | None, expected: int | None) -> None:
    assert delta_seconds(argument) == expected


@pytest.mark.parametrize(
    "value",
    [
        b"Sun, 06 Nov 1994 08:49:37 GMT",  # IMF-fixdate
        b"Sunday, 06-Nov-94 08:49:37 GMT",  # RFC 850
        b"Sun Nov  6 08:49:37 1994",  # asctime
    ],
)
def test_the_three_date_formats(value: bytes) -> None:
    assert http_date(value) == 784111777.0


@pytest.mark.parametrize("value", [b"0", b"-1", b"yesterday", b"", None, b"\xff\xfe"])
def test_invalid_dates_are_none(value: bytes | None) -> None:
    assert http_date(value) is None


def test_field_lists() -> None:
    assert field_names(b"Accept-Encoding, accept-language ,, X-A") == [
        b"accept-encoding",
        b"accept-language",
        b"x-a",
    ]
    assert field_names(None) == []
    headers = [(b"Vary", b"A"), (b"X", b"1"), (b"vary", b" B ")]
    assert joined_value(headers, b"vary") == b"A, B"
    assert joined_value(headers, b"absent") is None


@given(st.lists(st.binary(max_size=40), max_size=4))
def test_any_bytes_parse_without_raising(values: list[bytes]) -> None:
    directives = parse_cache_control(values)
    assert all(name == name.lower() for name in directives)
    for value in values:
        http_date(value)
