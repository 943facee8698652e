"""RFC 9111's rules as CachePolicy applies them: storing, freshness, age, choosing a stored
response, validation and 304 merging, invalidation, and the shared cache's extra duties."""

from __future__ import annotations

import importlib
import re
from collections.abc import Sequence
from pathlib import Path

import pytest

from ferryman.http.caching import (
    REVALIDATE,
    USE,
    USE_STALE,
    VALIDATE,
    CacheEntry,
    CachePolicy,
    conditional_headers,
    decode_entries,
    encode_entries,
    related_locations,
)
from ferryman.http.caching.policy import CacheRequest

NOW = 1_700_000_000.0
DATE = b"Tue, 14 Nov 2023 22:13:20 GMT"  # NOW as an HTTP date

Fields = Sequence[tuple[bytes, bytes]]


def request(policy: CachePolicy, headers: Fields = (), method: bytes = b"GET") -> CacheRequest:
    seen = policy.request(method, list(headers))
    assert seen is not None
    return seen


def stored(
    policy: CachePolicy,
    headers: Fields,
    *,
    status: int = 200,
    request_headers: Fields = (),
    request_time: float = NOW,
    response_time: float = NOW,
) -> CacheEntry | None:
    return policy.store(
        request(policy, request_headers),
        status,
        b"OK",
        [(b"Date", DATE), *headers],
        request_time,
        response_time,
    )


shared = CachePolicy()
private = CachePolicy(shared=False)


# -- what may be stored -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "lifetime"),
    [
        ([(b"Cache-Control", b"max-age=60")], 60),
        ([(b"Cache-Control", b"public, max-age=60, s-maxage=5")], 5),
        ([(b"Expires", b"Tue, 14 Nov 2023 22:14:20 GMT")], 60),
        ([(b"Cache-Control", b"max-age=30"), (b"Expires", b"Tue, 14 Nov 2023 23:00:00 GMT")], 30),
    ],
)
def test_explicit_freshness(headers: Fields, lifetime: float) -> None:
    entry = stored(shared, headers)
    assert entry is not None and entry.lifetime == lifetime


def test_s_maxage_is_for_shared_caches_only() -> None:
    headers = [(b"Cache-Control", b"max-age=60, s-maxage=5")]
    entry = stored(private, headers)
    assert entry is not None and entry.lifetime == 60


@pytest.mark.parametrize(
    "headers",
    [
        [(b"Cache-Control", b"no-store, max-age=60")],
        [(b"Cache-Control", b"private, max-age=60")],
        [(b"Cache-Control", b"max-age=60"), (b"Vary", b"*")],
        [(b"Cache-Control", b"max-age=60"), (b"Set-Cookie", b"session=1")],
        [],  # nothing said about caching
        [(b"ETag", b'"x"')],  # a validator alone, but not a heuristically cacheable status
        [(b"Cache-Control", b"no-cache")],  # must validate and cannot be validated
        [(b"Cache-Control", b"max-age=0")],  # stale at once, no validator
        [(b"Expires", b"0")],  # invalid Expires: already expired, no validator
    ],
)
def test_not_stored_by_a_shared_cache(headers: Fields) -> None:
    status = 500 if headers == [(b"ETag", b'"x"')] else 200
    assert stored(shared, headers, status=status) is None


@pytest.mark.parametrize(
    "validator", [(b"ETag", b'"x"'), (b"Last-Modified", b"Tue, 14 Nov 2023 12:13:20 GMT")]
)
def test_a_validator_alone_is_stored_stale_so_that_each_use_validates_it(
    validator: tuple[bytes, bytes],
) -> None:
    assert stored(shared, [validator]) is None  # (by default: not worth a store each answer)
    shared_validated = CachePolicy(store_validated=True)
    entry = stored(shared_validated, [validator])
    assert entry is not None and entry.lifetime == 0
    assert conditional_headers(entry) == [
        ({b"etag": b"If-None-Match"}.get(validator[0].lower(), b"If-Modified-Since"), validator[1])
    ]
    request = shared_validated.request(b"GET", [])
    assert request is not None
    found = shared_validated.lookup(request, [entry], entry.response_time)
    assert found is not None and found.action == VALIDATE
    # Not when the request carried credentials (section 3.5), nor with a cookie.
    assert stored(shared_validated, [validator], request_headers=[(b"Authorization", b"x")]) is None
    assert stored(shared_validated, [validator, (b"Set-Cookie", b"a=1")]) is None


def test_a_private_cache_stores_private_answers_and_cookies() -> None:
    headers = [(b"Cache-Control", b"private, max-age=60"), (b"Set-Cookie", b"a=1")]
    entry = stored(private, headers)
    assert entry is not None and (b"Set-Cookie", b"a=1") in entry.headers


@pytest.mark.parametrize("status", [206, 304, 101, 299, 999])
def test_statuses_never_stored(status: int) -> None:
    assert stored(shared, [(b"Cache-Control", b"max-age=60")], status=status) is None


def test_explicit_freshness_lets_any_understood_status_be_stored() -> None:
    assert stored(shared, [(b"Cache-Control", b"max-age=60")], status=503) is not None


def test_only_gets_are_stored_and_head_is_answered() -> None:
    head = shared.request(b"HEAD", [])
    assert head is not None
    assert shared.store(head, 200, b"OK", [(b"Cache-Control", b"max-age=9")], NOW, NOW) is None
    assert shared.request(b"POST", []) is None
    with pytest.raises(ValueError, match="GET and HEAD only"):
        CachePolicy(methods=frozenset({b"POST"}))


@pytest.mark.parametrize(
    ("response", "allowed"),
    [
        (b"max-age=60", False),
        (b"public, max-age=60", True),
        (b"max-age=60, must-revalidate", True),
        (b"s-maxage=60", True),
    ],
)
def test_authorization_in_a_shared_cache(response: bytes, allowed: bool) -> None:
    """RFC 9111 section 3.5: an authorized request's answer is stored only when the origin
    said a shared cache may."""
    entry = stored(
        shared,
        [(b"Cache-Control", response)],
        request_headers=[(b"Authorization", b"Bearer t")],
    )
    assert (entry is not None) is allowed
    # A private cache is the user's own: Authorization is no reason not to store.
    assert stored(
        private, [(b"Cache-Control", b"max-age=60")], request_headers=[(b"Authorization", b"x")]
    )


def test_qualified_private_and_no_cache_store_without_those_fields() -> None:
    entry = stored(
        shared,
        [
            (b"Cache-Control", b'max-age=60, private="X-User", no-cache="X-Trace"'),
            (b"X-User", b"alice"),
            (b"X-Trace", b"1"),
            (b"X-Kept", b"yes"),
        ],
    )
    assert entry is not None and not entry.no_cache
    names = {name for name, _ in entry.headers}
    assert b"X-User" not in names and b"X-Trace" not in names and b"X-Kept" in names


def test_hop_by_hop_age_and_framing_are_not_stored() -> None:
    entry = stored(
        shared,
        [
            (b"Cache-Control", b"max-age=60"),
            (b"Connection", b"X-Hop"),
            (b"X-Hop", b"1"),
            (b"Keep-Alive", b"timeout=5"),
            (b"Age", b"3"),
            (b"Content-Length", b"10"),
            (b"Transfer-Encoding", b"chunked"),
            (b"Content-Type", b"text/plain"),
        ],
    )
    assert entry is not None
    assert [name for name, _ in entry.headers] == [b"Date", b"Cache-Control", b"Content-Type"]


def test_ttl_overrides_the_origins_freshness() -> None:
    policy = CachePolicy(ttl=300)
    assert stored(policy, [(b"Cache-Control", b"max-age=5")]).lifetime == 300  # type: ignore[union-attr]
    assert stored(policy, []).lifetime == 300  # type: ignore[union-attr]
    assert stored(policy, [(b"Cache-Control", b"no-store")]) is None
    assert stored(policy, [], status=500) is None  # (not heuristically cacheable)


def test_heuristic_freshness_is_off_by_default() -> None:
    headers = [(b"Last-Modified", b"Tue, 14 Nov 2023 12:13:20 GMT")]  # 10 h before Date
    assert stored(shared, headers) is None  # (nothing said of freshness: not stored)
    stale = stored(CachePolicy(store_validated=True), headers)
    assert stale is not None and stale.lifetime == 0  # (stored, but stale at once)
    entry = stored(CachePolicy(heuristic=True), headers)
    assert entry is not None and entry.lifetime == 3600  # 10% of 10 h


def test_max_lifetime_bounds_what_an_origin_asks() -> None:
    entry = stored(CachePolicy(max_lifetime=100), [(b"Cache-Control", b"max-age=99999999")])
    assert entry is not None and entry.lifetime == 100


# -- age --------------------------------------------------------------------------------------


def test_age_counts_the_origins_age_the_trip_and_the_time_stored() -> None:
    entry = stored(
        shared,
        [(b"Cache-Control", b"max-age=60"), (b"Age", b"10")],
        request_time=NOW - 2,
        response_time=NOW,
    )
    assert entry is not None
    assert entry.age(NOW) == 12  # Age + response delay
    assert entry.age(NOW + 30) == 42


def test_age_from_a_date_in_the_past() -> None:
    entry = stored(shared, [(b"Cache-Control", b"max-age=60")], response_time=NOW + 20)
    assert entry is not None and entry.age(NOW + 20) == 20


# -- choosing a stored response ---------------------------------------------------------------


def action(
    entry: CacheEntry | None, at: float, headers: Fields = (), policy: CachePolicy = shared
) -> int | None:
    assert entry is not None
    found = policy.lookup(request(policy, headers), [entry], at)
    return None if found is None else found.action


def test_fresh_then_stale() -> None:
    entry = stored(shared, [(b"Cache-Control", b"max-age=60"), (b"ETag", b'"a"')])
    assert action(entry, NOW + 59) == USE
    assert action(entry, NOW + 61) == VALIDATE


def test_stale_while_revalidate_window() -> None:
    entry = stored(shared, [(b"Cache-Control", b"max-age=10, stale-while-revalidate=30")])
    assert action(entry, NOW + 5) == USE
    assert action(entry, NOW + 35) == REVALIDATE
    assert action(entry, NOW + 41) == VALIDATE


@pytest.mark.parametrize("directive", [b"must-revalidate", b"proxy-revalidate"])
def test_must_revalidate_forbids_stale(directive: bytes) -> None:
    entry = stored(
        shared,
        [(b"Cache-Control", b"max-age=10, stale-while-revalidate=30, " + directive)],
    )
    assert action(entry, NOW + 15) == VALIDATE
    assert action(entry, NOW + 15, [(b"Cache-Control", b"max-stale")]) == VALIDATE


def test_no_cache_response_is_always_validated() -> None:
    entry = stored(shared, [(b"Cache-Control", b"no-cache, max-age=600"), (b"ETag", b'"a"')])
    assert action(entry, NOW) == VALIDATE


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ([(b"Cache-Control", b"no-cache")], VALIDATE),
        ([(b"Pragma", b"no-cache")], VALIDATE),
        ([(b"Pragma", b"no-cache"), (b"Cache-Control", b"max-age=100")], USE),
        ([(b"Cache-Control", b"max-age=5")], VALIDATE),  # the entry is 10 s old
        ([(b"Cache-Control", b"max-age=50")], USE),
        ([(b"Cache-Control", b"max-age=abc")], VALIDATE),
        ([(b"Cache-Control", b"min-fresh=55")], VALIDATE),  # 50 s of freshness left
        ([(b"Cache-Control", b"min-fresh=40")], USE),
    ],
)
def test_request_directives(headers: Fields, expected: int) -> None:
    entry = stored(shared, [(b"Cache-Control", b"max-age=60"), (b"ETag", b'"a"')])
    assert action(entry, NOW + 10, headers) == expected


def test_max_stale() -> None:
    entry = stored(shared, [(b"Cache-Control", b"max-age=10"), (b"ETag", b'"a"')])
    assert action(entry, NOW + 30, [(b"Cache-Control", b"max-stale=30")]) == USE_STALE
    assert action(entry, NOW + 30, [(b"Cache-Control", b"max-stale=5")]) == VALIDATE
    assert action(entry, NOW + 9999, [(b"Cache-Control", b"max-stale")]) == USE_STALE


def test_requests_the_cache_stays_out_of() -> None:
    assert shared.request(b"GET", [(b"Cache-Control", b"no-store")]) is None
    assert shared.request(b"GET", [(b"Range", b"bytes=0-1")]) is None
    assert shared.request(b"DELETE", []) is None


@pytest.mark.parametrize(
    "framing",
    [
        [(b"Content-Length", b"5")],
        [(b"Transfer-Encoding", b"chunked")],
        [(b"content-length", b"05")],
    ],
)
def test_a_request_with_content_is_not_for_the_cache(framing: Fields) -> None:
    # The key is the target: an answer to one body must not answer another, nor a plain GET.
    assert shared.request(b"GET", framing) is None
    assert CachePolicy(shared=False).request(b"GET", framing) is None


def test_an_empty_content_length_leaves_a_request_to_the_cache() -> None:
    assert shared.request(b"GET", [(b"Content-Length", b"0")]) is not None


def test_vary_selects_the_variant() -> None:
    policy = shared
    gzip_request = [(b"Accept-Encoding", b"gzip,  br")]
    headers = [(b"Cache-Control", b"max-age=60"), (b"Vary", b"Accept-Encoding")]
    gzip = stored(policy, headers, request_headers=gzip_request)
    plain = stored(policy, headers, request_headers=[], response_time=NOW + 1)
    assert gzip is not None and plain is not None
    variants = [gzip, plain]
    found = policy.lookup(request(policy, [(b"accept-encoding", b"gzip, br")]), variants, NOW)
    assert found is not None and found.entry is gzip
    found = policy.lookup(request(policy), variants, NOW)
    assert found is not None and found.entry is plain
    assert policy.lookup(request(policy, [(b"Accept-Encoding", b"zstd")]), variants, NOW) is None


def test_the_newest_matching_variant_wins() -> None:
    old = stored(shared, [(b"Cache-Control", b"max-age=60")])
    new = stored(shared, [(b"Cache-Control", b"max-age=60")], response_time=NOW + 5)
    assert old is not None and new is not None
    found = shared.lookup(request(shared), [old, new], NOW + 6)
    assert found is not None and found.entry is new


# -- stale-if-error ---------------------------------------------------------------------------


def test_stale_if_error() -> None:
    policy = shared
    entry = stored(policy, [(b"Cache-Control", b"max-age=10, stale-if-error=60")])
    assert entry is not None
    assert policy.usable_on_error(entry, request(policy), NOW + 5)
    assert policy.usable_on_error(entry, request(policy), NOW + 65)
    assert not policy.usable_on_error(entry, request(policy), NOW + 75)
    asked = request(policy, [(b"Cache-Control", b"stale-if-error=120")])
    assert policy.usable_on_error(entry, asked, NOW + 100)


def test_no_stale_on_error_past_must_revalidate() -> None:
    entry = stored(shared, [(b"Cache-Control", b"max-age=10, stale-if-error=60, must-revalidate")])
    assert entry is not None
    assert not shared.usable_on_error(entry, request(shared), NOW + 20)


def test_without_stale_if_error_a_stale_entry_is_not_served_on_error() -> None:
    entry = stored(shared, [(b"Cache-Control", b"max-age=10")])
    assert entry is not None
    assert not shared.usable_on_error(entry, request(shared), NOW + 11)


# -- validation -------------------------------------------------------------------------------


def test_conditional_headers() -> None:
    entry = stored(
        shared,
        [
            (b"Cache-Control", b"max-age=1"),
            (b"ETag", b'W/"v1"'),
            (b"Last-Modified", b"Tue, 14 Nov 2023 12:13:20 GMT"),
        ],
    )
    assert entry is not None
    assert conditional_headers(entry) == [
        (b"If-None-Match", b'W/"v1"'),
        (b"If-Modified-Since", b"Tue, 14 Nov 2023 12:13:20 GMT"),
    ]


def test_a_304_freshens_the_stored_response() -> None:
    entry = stored(
        shared,
        [
            (b"Cache-Control", b"max-age=10"),
            (b"ETag", b'"v1"'),
            (b"Content-Type", b"application/json"),
            (b"X-Version", b"1"),
        ],
    )
    assert entry is not None
    entry.body = b'{"a": 1}'
    later = NOW + 100
    fresh = shared.freshen(
        entry,
        request(shared),
        304,
        [
            (b"Cache-Control", b"max-age=50"),
            (b"ETag", b'W/"v1"'),
            (b"Content-Type", b"text/html"),  # a 304 does not change the representation
            (b"Content-Length", b"0"),
            (b"X-Version", b"2"),
        ],
        later,
        later,
    )
    assert fresh is not None
    assert fresh.body == b'{"a": 1}'
    assert fresh.lifetime == 50
    assert fresh.age(later) < 1
    fields = dict(fresh.headers)
    assert fields[b"X-Version"] == b"2" and fields[b"Content-Type"] == b"application/json"
    assert b"Content-Length" not in fields


def test_a_304_for_another_validator_is_not_merged() -> None:
    entry = stored(shared, [(b"Cache-Control", b"max-age=10"), (b"ETag", b'"v1"')])
    assert entry is not None
    assert shared.freshen(entry, request(shared), 304, [(b"ETag", b'"v2"')], NOW, NOW) is None
    assert shared.freshen(entry, request(shared), 200, [], NOW, NOW) is None


LAST_MODIFIED = b"Tue, 14 Nov 2023 12:13:20 GMT"


@pytest.mark.parametrize(
    ("fields", "selected"),
    [
        ([(b"ETag", b'"v1"')], True),
        ([(b"ETag", b'W/"v1"')], True),  # (weak comparison, as If-None-Match asked)
        ([(b"ETag", b'"v2"')], False),
        ([(b"ETag", b'"v2"'), (b"Last-Modified", LAST_MODIFIED)], False),  # (the ETag first)
        ([(b"Last-Modified", LAST_MODIFIED)], True),
        ([(b"Last-Modified", b"Tuesday, 14-Nov-23 12:13:20 GMT")], True),  # (the same date)
        ([(b"Last-Modified", b"Wed, 15 Nov 2023 12:13:20 GMT")], False),
        ([], True),  # (no validator: the 304 answered the stored one's, and names no other)
    ],
)
def test_which_304_selects_the_stored_response(fields: Fields, selected: bool) -> None:
    entry = stored(
        shared,
        [(b"Cache-Control", b"max-age=10"), (b"ETag", b'"v1"'), (b"Last-Modified", LAST_MODIFIED)],
    )
    assert entry is not None
    outcome = shared.validated(entry, request(shared), fields, NOW, NOW)
    assert (outcome.answer is not None) == selected
    assert outcome.store == selected


def test_a_304_with_only_last_modified_does_not_select_an_entry_without_one() -> None:
    entry = stored(shared, [(b"Cache-Control", b"max-age=10"), (b"ETag", b'"v1"')])
    assert entry is not None
    outcome = shared.validated(entry, request(shared), [(b"Last-Modified", DATE)], NOW, NOW)
    assert outcome.answer is None


@pytest.mark.parametrize(
    "update",
    [
        [(b"Cache-Control", b"no-store")],
        [(b"Cache-Control", b"private, max-age=10")],
        [(b"Set-Cookie", b"session=alice")],
    ],
)
def test_a_304_whose_update_may_not_be_stored_answers_once(update: Fields) -> None:
    entry = stored(
        shared, [(b"Cache-Control", b"max-age=10"), (b"ETag", b'"v1"'), (b"X-Version", b"1")]
    )
    assert entry is not None
    entry.body = b"stored body"
    later = NOW + 100
    fields = [(b"ETag", b'"v1"'), (b"X-Version", b"2"), *update]
    outcome = shared.validated(entry, request(shared), fields, later, later)
    assert outcome.answer is not None and not outcome.store
    assert outcome.answer.body == b"stored body" and outcome.answer.status == 200
    merged = dict(outcome.answer.headers)
    assert merged[b"X-Version"] == b"2" and merged[update[0][0]] == update[0][1]
    assert outcome.answer.age(later) < 1


# -- invalidation -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "status", "invalidates"),
    [
        (b"POST", 200, True),
        (b"PUT", 204, True),
        (b"DELETE", 302, True),
        (b"PATCH", 404, False),
        (b"POST", 500, False),
        (b"GET", 200, False),
        (b"OPTIONS", 200, False),
    ],
)
def test_unsafe_methods_invalidate(method: bytes, status: int, invalidates: bool) -> None:
    assert CachePolicy.invalidates(method, status) is invalidates


def test_related_locations() -> None:
    headers = [(b"Location", b"/a"), (b"content-location", b"/b"), (b"X", b"/c")]
    assert related_locations(headers) == [b"/a", b"/b"]


# -- the store's form -------------------------------------------------------------------------


def test_entries_survive_their_bytes() -> None:
    first = stored(
        shared,
        [(b"Cache-Control", b"max-age=60"), (b"Vary", b"Accept")],
        request_headers=[(b"Accept", b"a/b")],
    )
    second = stored(shared, [(b"Cache-Control", b"max-age=5, stale-if-error=9"), (b"ETag", b'"e"')])
    assert first is not None and second is not None
    first.body = bytes(range(256)) * 4
    second.body = b""
    decoded = decode_entries(encode_entries([first, second]))
    assert decoded is not None
    for original, copy in zip([first, second], decoded, strict=True):
        for name in ENTRY_FIELDS:
            assert getattr(copy, name) == getattr(original, name), name


#: What a CacheEntry is made of: every argument of its constructor, kept under its name (the
#: compiled class has no ``__slots__`` to read them from; the source's must match this list).
ENTRY_FIELDS = (
    "status",
    "reason",
    "headers",
    "response_time",
    "vary",
    "initial_age",
    "lifetime",
    "no_cache",
    "must_revalidate",
    "stale_while_revalidate",
    "stale_if_error",
    "etag",
    "last_modified",
    "body",
)


def test_the_field_list_is_the_whole_entry() -> None:
    package = importlib.import_module("ferryman.http.caching")
    source = (Path(package.__file__ or "").parent / "entry.py").read_text()
    slots = re.search(r"__slots__ = \(([^)]*)\)", source)
    assert slots is not None
    assert set(re.findall(r'"(\w+)"', slots[1])) - {"_lines"} == set(ENTRY_FIELDS)


@pytest.mark.parametrize(
    "data", [b"", b"FMC1", b"FMC2\x00\x00\x00\x02[]", b"FMC1\x00\x00\x00\x05[{}]]", b"garbage"]
)
def test_foreign_bytes_decode_to_nothing(data: bytes) -> None:
    assert decode_entries(data) is None


def test_truncated_bytes_decode_to_nothing() -> None:
    entry = stored(shared, [(b"Cache-Control", b"max-age=60")])
    assert entry is not None
    entry.body = b"0123456789"
    data = encode_entries([entry])
    assert decode_entries(data[:-1]) is None
    assert decode_entries(data + b"x") is None


@pytest.mark.parametrize(
    ("conditions", "expected"),
    [
        ([(b"If-None-Match", b'"v1"')], True),
        ([(b"If-None-Match", b'W/"v1"')], True),  # weak comparison
        ([(b"If-None-Match", b'"a,b", "v1"')], True),  # a comma inside a tag, then the match
        ([(b"If-None-Match", b"*")], True),
        ([(b"If-None-Match", b'"v2"')], False),
        ([(b"If-None-Match", b'"v2"'), (b"If-Modified-Since", DATE)], False),  # INM decides
        ([(b"If-Modified-Since", b"Tue, 14 Nov 2023 12:13:20 GMT")], True),  # = Last-Modified
        ([(b"If-Modified-Since", b"Tue, 14 Nov 2023 12:13:19 GMT")], False),  # before it
        ([(b"If-Modified-Since", b"yesterday")], False),  # invalid: ignored
        ([(b"If-None-Match", b'"v1"'), (b"If-Match", b'"v1"')], False),  # not the cache's
        ([], False),
    ],
)
def test_a_clients_conditional_request_against_a_stored_answer(
    conditions: Fields, expected: bool
) -> None:
    entry = stored(
        shared,
        [
            (b"Cache-Control", b"max-age=60"),
            (b"ETag", b'"v1"'),
            (b"Last-Modified", b"Tue, 14 Nov 2023 12:13:20 GMT"),
            (b"Content-Type", b"application/json"),
        ],
    )
    assert entry is not None
    asked = shared.request(b"GET", conditions)
    assert asked is not None
    assert shared.not_modified(asked, entry) is expected
    fields = {name.lower() for name, _ in shared.not_modified_fields(entry)}
    assert {b"etag", b"cache-control", b"last-modified", b"date"} <= fields
    assert b"content-type" not in fields


def test_if_modified_since_without_last_modified_compares_the_date() -> None:
    entry = stored(shared, [(b"Cache-Control", b"max-age=60")])
    assert entry is not None
    same = shared.request(b"GET", [(b"If-Modified-Since", DATE)])
    assert same is not None and shared.not_modified(same, entry)
