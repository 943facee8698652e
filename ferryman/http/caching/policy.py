"""RFC 9111 (and RFC 5861) as decisions on bytes: what may be stored, for how long, which
stored response may answer a request and how, what to ask the origin to validate one, how a
304 updates it, and what an unsafe request invalidates.

No I/O and no clock: callers pass the times. The client's cache layer and the proxy's relay
both drive a :class:`CachePolicy`; a shared cache (the proxy) and a private one (a client)
differ only in the ``shared`` flag, which switches ``s-maxage``, ``private``,
``proxy-revalidate``, the ``Authorization`` rule of section 3.5 and the refusal to store
``Set-Cookie`` (a shared cache would hand one user's cookie to every other).

An answer with a validator (``ETag``, ``Last-Modified``) and no explicit freshness is stored
when its status is heuristically cacheable (RFC 9111 section 3 allows it) and the policy says
``store_validated`` (or ``heuristic``): without heuristic freshness it is stale at once, so
each use validates it, and the origin's 304 then saves the body's transfer
(``REVALIDATED``); with it, ``Last-Modified`` gives it a heuristic lifetime. Off by default:
that would cost a store on every ordinary API answer, and a conditional request on every
later one, for a chance at a 304.

What is deliberately not done: ranges (a request with ``Range`` bypasses the cache, and a 206
is never stored), storing answers to methods other than GET (HEAD is answered from a stored
GET), heuristic freshness unless asked for, and storing a response that says nothing about
caching and carries no validator.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from email.utils import formatdate
from http import HTTPStatus
from typing import Final, NamedTuple

from ferryman.http.caching.directives import (
    Directives,
    delta_seconds,
    field_names,
    header_values,
    http_date,
    joined_value,
    parse_cache_control,
)
from ferryman.http.caching.entry import CacheEntry

__all__ = [
    "CONDITIONAL_FIELDS",
    "HEURISTIC_STATUSES",
    "REVALIDATE",
    "USE",
    "USE_STALE",
    "VALIDATE",
    "CachePolicy",
    "CacheRequest",
    "Lookup",
    "Validated",
    "conditional_headers",
    "related_locations",
    "selects",
]

#: Statuses a cache may store without explicit freshness (RFC 9110 section 15.1).
HEURISTIC_STATUSES: Final = frozenset({200, 203, 204, 300, 301, 308, 404, 405, 410, 414, 501})
#: Statuses never stored: partial content (no range support), a 304 (it updates, not replaces).
_NEVER_STORED: Final = frozenset({206, 304})
_KNOWN_STATUSES: Final = frozenset(int(status) for status in HTTPStatus)
#: Fields a cache neither stores nor forwards (RFC 9111 section 3.1), or that it writes itself.
_NOT_STORED: Final = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"te",
        b"transfer-encoding",
        b"upgrade",
        b"trailer",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"age",
        b"content-length",
    }
)
#: Fields a 304 must not change in the stored response (RFC 9111 section 3.2).
_NOT_UPDATED: Final = _NOT_STORED | {b"content-encoding", b"content-type", b"content-range"}
_HEURISTIC_FRACTION: Final = 0.1
_HEURISTIC_MAX: Final = 86400.0
#: Request fields that make a request conditional: a cache does not add its own validators
#: to a request that carries them (the client asked, the client gets the answer).
CONDITIONAL_FIELDS: Final = frozenset(
    {b"if-none-match", b"if-modified-since", b"if-match", b"if-range", b"if-unmodified-since"}
)
#: The request fields a cache reads (the framing ones: a request with content; the
#: conditional ones: a client's own validation).
_REQUEST_FIELDS: Final = frozenset(
    {
        b"cache-control",
        b"range",
        b"authorization",
        b"pragma",
        b"content-length",
        b"transfer-encoding",
        b"if-none-match",
        b"if-modified-since",
    }
)
#: Preconditions a cache does not evaluate itself: a request with one is not answered 304.
_OTHER_CONDITIONS: Final = frozenset({b"if-match", b"if-unmodified-since", b"if-range"})
#: What a 304 from the cache leaves out of the stored fields: the representation's own
#: metadata (RFC 9110 section 15.4.5), which describes a body the 304 does not carry.
_NOT_IN_304: Final = frozenset(
    {b"content-type", b"content-encoding", b"content-language", b"content-range"}
)
_ETAG: Final = re.compile(rb'(?:W/)?"[^"]*"')
#: Request methods that do not invalidate (RFC 9110 section 9.2.1: safe).
_SAFE_METHODS: Final = frozenset({b"GET", b"HEAD", b"OPTIONS", b"TRACE"})

# What a stored response may do for a request (Lookup.action).
#: Serve it: fresh, or stale within what the client allowed (max-stale).
USE: Final = 1
#: Serve it stale now and validate it in the background (stale-while-revalidate).
REVALIDATE: Final = 2
#: Serve it only after the origin says it is still good (a conditional request).
VALIDATE: Final = 3
#: Serve it stale: the client allowed it (max-stale); nothing is asked of the origin.
USE_STALE: Final = 4


class CacheRequest(NamedTuple):
    """What a request says to a cache, read once."""

    method: bytes
    headers: Sequence[tuple[bytes, bytes]]
    directives: Directives
    #: ``no-cache`` (or HTTP/1.0's ``Pragma: no-cache``): a stored answer must be validated.
    no_cache: bool
    authorized: bool
    #: The client's own ``If-None-Match`` or ``If-Modified-Since``: a fresh stored answer
    #: that satisfies it is answered 304 (:meth:`CachePolicy.not_modified`).
    conditional: bool = False


class Lookup(NamedTuple):
    """The stored response chosen for a request, and what may be done with it."""

    entry: CacheEntry
    action: int


def conditional_headers(entry: CacheEntry) -> list[tuple[bytes, bytes]]:
    """The fields that ask the origin whether ``entry`` is still good (RFC 9111 section 4.3.1):
    its ETag in ``If-None-Match``, its Last-Modified in ``If-Modified-Since``."""
    fields = []
    if entry.etag is not None:
        fields.append((b"If-None-Match", entry.etag))
    if entry.last_modified is not None:
        fields.append((b"If-Modified-Since", entry.last_modified))
    return fields


def _strip_fields(
    headers: Sequence[tuple[bytes, bytes]], dropped: frozenset[bytes]
) -> list[tuple[bytes, bytes]]:
    return [(name, value) for name, value in headers if name.lower() not in dropped]


class CachePolicy:
    """One cache's rules: shared or private, the methods it answers, an optional TTL that
    replaces the origin's freshness, heuristic freshness (off by default), and the longest
    any response is kept fresh (``max_lifetime``, a bound on what an origin can ask)."""

    __slots__ = ("heuristic", "max_lifetime", "methods", "shared", "store_validated", "ttl")

    def __init__(
        self,
        *,
        shared: bool = True,
        methods: frozenset[bytes] = frozenset({b"GET", b"HEAD"}),
        ttl: float | None = None,
        heuristic: bool = False,
        max_lifetime: float = 365 * 86400.0,
        store_validated: bool = False,
    ) -> None:
        unknown = methods - {b"GET", b"HEAD"}
        if unknown:
            raise ValueError(
                f"a cache answers GET and HEAD only, not {sorted(m.decode() for m in unknown)}"
            )
        self.shared = shared
        self.methods = methods
        self.ttl = ttl
        self.heuristic = heuristic
        self.max_lifetime = max_lifetime
        #: Store an answer that carries a validator and says nothing of its freshness (off
        #: by default, like nginx's proxy_cache: on, every such API answer is a store and
        #: every later request a conditional one, for the chance of a 304).
        self.store_validated = store_validated

    # -- requests -----------------------------------------------------------------------------

    def request(self, method: bytes, headers: Sequence[tuple[bytes, bytes]]) -> CacheRequest | None:
        """What ``method`` with ``headers`` says to the cache; ``None`` when the cache has
        nothing to do with it (another method, ``no-store``, a ``Range``, content: a GET
        with a body is keyed by its target alone, so an origin that reads the body would
        have its answer to one body served for every other, or stored for a plain GET)."""
        if method not in self.methods:
            return None
        # One pass over the fields (this runs for every GET a cache sees).
        cache_control: list[bytes] | None = None
        authorized = pragma_no_cache = conditional = False
        for name, value in headers:
            lower = name.lower()
            if lower in _REQUEST_FIELDS:
                if lower == b"cache-control":
                    if cache_control is None:
                        cache_control = [value]
                    else:
                        cache_control.append(value)
                elif lower == b"range":
                    return None
                elif lower == b"authorization":
                    authorized = True
                elif lower == b"transfer-encoding":
                    return None
                elif lower == b"content-length":
                    if value.strip(b" \t0"):
                        return None
                elif lower[:3] == b"if-":
                    conditional = True
                elif b"no-cache" in value.lower():  # (Pragma)
                    pragma_no_cache = True
        if cache_control is None:
            return CacheRequest(method, headers, {}, pragma_no_cache, authorized, conditional)
        directives = parse_cache_control(cache_control)
        if b"no-store" in directives:
            return None
        no_cache = b"no-cache" in directives
        return CacheRequest(method, headers, directives, no_cache, authorized, conditional)

    def lookup(
        self, request: CacheRequest, variants: Sequence[CacheEntry], now: float
    ) -> Lookup | None:
        """The newest stored response that matches the request's ``Vary`` fields, and what
        may be done with it; ``None``: none may be used (a miss)."""
        chosen: CacheEntry | None = None
        for entry in variants:
            if _vary_matches(entry, request.headers) and (
                chosen is None or entry.response_time > chosen.response_time
            ):
                chosen = entry
        if chosen is None:
            return None
        return Lookup(chosen, self._action(chosen, request, now))

    def _action(self, entry: CacheEntry, request: CacheRequest, now: float) -> int:
        age = entry.age(now)
        staleness = age - entry.lifetime
        directives = request.directives
        if entry.no_cache or request.no_cache:
            return VALIDATE
        max_age = delta_seconds(directives.get(b"max-age")) if b"max-age" in directives else None
        if b"max-age" in directives and (max_age is None or age > max_age):
            return VALIDATE
        min_fresh = delta_seconds(directives.get(b"min-fresh"))
        if min_fresh is not None and entry.lifetime - age < min_fresh:
            return VALIDATE
        if staleness < 0:
            return USE
        if entry.must_revalidate:
            return VALIDATE
        if b"max-stale" in directives:
            argument = directives[b"max-stale"]
            allowed = delta_seconds(argument)
            if argument is None or (allowed is not None and staleness <= allowed):
                return USE_STALE
        swr = entry.stale_while_revalidate
        if swr > 0 and staleness <= swr:  # (none given: no window, even at staleness 0)
            return REVALIDATE
        return VALIDATE

    @staticmethod
    def not_modified(request: CacheRequest, entry: CacheEntry) -> bool:
        """Whether the client's own conditional request is satisfied by ``entry`` (RFC 9111
        section 4.3.2), so that a 304 answers it: an ``If-None-Match`` listing its ETag
        (weak comparison) or ``*``; else an ``If-Modified-Since`` no earlier than its
        Last-Modified (its Date without one). A request with other preconditions
        (``If-Match``...) is not answered so."""
        if not request.conditional:
            return False
        headers = request.headers
        if any(name.lower() in _OTHER_CONDITIONS for name, _ in headers):
            return False
        if_none_match = joined_value(headers, b"if-none-match")
        if if_none_match is not None:
            if entry.etag is None:
                return False
            if if_none_match.strip() == b"*":
                return True
            stored = _weak(entry.etag)
            return any(_weak(tag) == stored for tag in _ETAG.findall(if_none_match))
        since = http_date(joined_value(headers, b"if-modified-since"))
        if since is None:
            return False  # (an invalid date is ignored: RFC 9110 section 13.1.3)
        modified = http_date(entry.last_modified or joined_value(entry.headers, b"date"))
        return modified is not None and modified <= since

    @staticmethod
    def not_modified_fields(entry: CacheEntry) -> list[tuple[bytes, bytes]]:
        """The stored fields a 304 for ``entry`` carries (its validators, Cache-Control,
        Date, Expires, Vary...; not the representation's own metadata)."""
        return _strip_fields(entry.headers, _NOT_IN_304)

    def usable_on_error(self, entry: CacheEntry, request: CacheRequest, now: float) -> bool:
        """Whether ``entry`` may answer when the origin failed (an error, a 5xx): RFC 5861's
        stale-if-error, the response's or the request's, never past must-revalidate."""
        staleness = entry.staleness(now)
        if staleness < 0 and not entry.no_cache:
            return True
        if entry.must_revalidate or entry.no_cache:
            return False
        window = entry.stale_if_error
        if b"stale-if-error" in request.directives:
            asked = delta_seconds(request.directives[b"stale-if-error"])
            window = max(window, asked or 0)
        return staleness <= window

    # -- responses ----------------------------------------------------------------------------

    def store(
        self,
        request: CacheRequest,
        status: int,
        reason: bytes,
        headers: Sequence[tuple[bytes, bytes]],
        request_time: float,
        response_time: float,
    ) -> CacheEntry | None:
        """The entry to store for this answer to a GET (its body still to come), or ``None``
        when RFC 9111 section 3 (and the reasons in the module documentation) forbid it."""
        if request.method != b"GET" or status in _NEVER_STORED or status not in _KNOWN_STATUSES:
            return None
        if status < 200:
            return None
        directives = parse_cache_control(header_values(headers, b"cache-control"))
        if b"no-store" in directives:
            return None
        private = b"private" in directives
        dropped = _NOT_STORED
        if self.shared:
            if private:
                fields = field_names(directives[b"private"])
                if not fields:
                    return None
                dropped = dropped | frozenset(fields)  # qualified: stored without them
            if request.authorized and not (
                b"public" in directives
                or b"must-revalidate" in directives
                or b"s-maxage" in directives
            ):
                return None
            if any(name.lower() == b"set-cookie" for name, _ in headers):
                return None
        vary_names = field_names(joined_value(headers, b"vary"))
        if b"*" in vary_names:
            return None
        no_cache = b"no-cache" in directives
        if no_cache:
            fields = field_names(directives[b"no-cache"])
            if fields:
                no_cache = False  # qualified: usable without those fields
                dropped = dropped | frozenset(fields)
        for name in field_names(joined_value(headers, b"connection")):
            dropped = dropped | {name}
        date = http_date(joined_value(headers, b"date"))
        explicit, lifetime = self._lifetime(directives, headers, status, date, response_time)
        if self.ttl is not None and (explicit or status in HEURISTIC_STATUSES):
            lifetime = self.ttl
            explicit = True
        etag = joined_value(headers, b"etag")
        last_modified = joined_value(headers, b"last-modified")
        if not explicit:
            if (
                not (self.store_validated or self.heuristic)
                or status not in HEURISTIC_STATUSES
                or (etag is None and last_modified is None)
            ):
                return None
            lifetime = 0.0  # a validator alone: stale at once, each use validates it
        if lifetime <= 0 and not no_cache and etag is None and last_modified is None:
            return None  # stale at once and impossible to validate: no use to anybody
        if no_cache and etag is None and last_modified is None:
            return None
        age_value = delta_seconds(joined_value(headers, b"age")) or 0
        apparent = max(0.0, response_time - date) if date is not None else 0.0
        corrected = age_value + max(0.0, response_time - request_time)
        must_revalidate = b"must-revalidate" in directives or (
            self.shared and b"proxy-revalidate" in directives
        )
        return CacheEntry(
            status,
            reason,
            _strip_fields(headers, dropped),
            vary=tuple((name, _normalized(request.headers, name)) for name in vary_names),
            response_time=response_time,
            initial_age=max(apparent, corrected),
            lifetime=min(lifetime, self.max_lifetime),
            no_cache=no_cache,
            must_revalidate=must_revalidate,
            stale_while_revalidate=float(
                delta_seconds(directives.get(b"stale-while-revalidate")) or 0
            ),
            stale_if_error=float(delta_seconds(directives.get(b"stale-if-error")) or 0),
            etag=etag,
            last_modified=last_modified,
        )

    def _lifetime(
        self,
        directives: Directives,
        headers: Sequence[tuple[bytes, bytes]],
        status: int,
        date: float | None,
        response_time: float,
    ) -> tuple[bool, float]:
        """``(explicit, seconds)``: the freshness lifetime (RFC 9111 section 4.2.1)."""
        if self.shared and b"s-maxage" in directives:
            return True, float(delta_seconds(directives[b"s-maxage"]) or 0)
        if b"max-age" in directives:
            return True, float(delta_seconds(directives[b"max-age"]) or 0)
        expires_values = header_values(headers, b"expires")
        if expires_values:
            expires = http_date(expires_values[0]) if len(expires_values) == 1 else None
            if expires is None:
                return True, 0.0  # an invalid Expires (``0``) means already expired
            return True, max(0.0, expires - (response_time if date is None else date))
        if b"no-cache" in directives:
            return True, 0.0
        if b"public" in directives or (not self.shared and b"private" in directives):
            explicit = True
        else:
            explicit = False
        if self.heuristic and status in HEURISTIC_STATUSES:
            modified = http_date(joined_value(headers, b"last-modified"))
            if modified is not None:
                since = (response_time if date is None else date) - modified
                if since > 0:
                    return True, min(since * _HEURISTIC_FRACTION, _HEURISTIC_MAX)
        return explicit, 0.0

    def freshen(
        self,
        entry: CacheEntry,
        request: CacheRequest,
        status: int,
        headers: Sequence[tuple[bytes, bytes]],
        request_time: float,
        response_time: float,
    ) -> CacheEntry | None:
        """The stored response updated by the origin's 304 to its validation (RFC 9111
        section 4.3.4): the 304's fields replace the stored ones (but for the framing and the
        representation's own), the freshness is computed anew; ``None`` when the 304 does not
        speak of this response (another validator) or the update may not be stored."""
        if status != 304:
            return None
        etag = joined_value(headers, b"etag")
        if etag is not None and entry.etag is not None and _weak(etag) != _weak(entry.etag):
            return None
        merged = _merged(entry, headers, response_time)
        fresh = self.store(request, entry.status, entry.reason, merged, request_time, response_time)
        if fresh is None:
            return None
        fresh.vary = entry.vary  # (the variant it was selected as: the request may differ)
        fresh.body = entry.body
        return fresh

    def validated(
        self,
        entry: CacheEntry,
        request: CacheRequest,
        headers: Sequence[tuple[bytes, bytes]],
        request_time: float,
        response_time: float,
    ) -> Validated:
        """What the origin's 304 to the cache's own validation of ``entry`` (``headers``: the
        304's fields) lets it do for a client that asked unconditionally, to whom that 304
        must never go (RFC 9111 sections 4.3.3 and 4.3.4): answer with ``entry`` as the 304
        updated it, stored when it may be; or, when the 304 speaks of another response
        (:func:`selects`), nothing (the cache drops ``entry`` and asks again without its
        validators)."""
        if not selects(entry, headers):
            return Validated(None, False)
        fresh = self.freshen(entry, request, 304, headers, request_time, response_time)
        if fresh is not None:
            return Validated(fresh, True)
        # Valid, but its update may not be stored (``no-store``, ``private``, a cookie...):
        # it answers this request, once.
        merged = _merged(entry, headers, response_time)
        once = CacheEntry(
            entry.status, entry.reason, merged, response_time=response_time, body=entry.body
        )
        return Validated(once, False)

    @staticmethod
    def invalidates(method: bytes, status: int) -> bool:
        """Whether the answer to ``method`` makes the stored responses for its target (and its
        Location and Content-Location, when same-origin) invalid (RFC 9111 section 4.4)."""
        return method not in _SAFE_METHODS and 200 <= status < 400


def _weak(etag: bytes) -> bytes:
    """The weak comparison of RFC 9110 section 8.8.3.2: ``W/"x"`` equals ``"x"``."""
    etag = etag.strip()
    return etag[2:] if etag[:2] == b"W/" else etag


def _normalized(headers: Sequence[tuple[bytes, bytes]], name: bytes) -> bytes | None:
    """A request field's value as ``Vary`` compares it: the lines joined, the list's
    whitespace normalized (RFC 9111 section 4.1 allows this much)."""
    value = joined_value(headers, name)
    if value is None:
        return None
    return b",".join(part.strip() for part in value.split(b","))


def _vary_matches(entry: CacheEntry, headers: Sequence[tuple[bytes, bytes]]) -> bool:
    return all(_normalized(headers, name) == stored for name, stored in entry.vary)


def related_locations(headers: Sequence[tuple[bytes, bytes]]) -> list[bytes]:
    """The URI references an invalidating answer names besides its target (``Location``,
    ``Content-Location``): the caller invalidates those that resolve to the same origin."""
    return [value for name, value in headers if name.lower() in _LOCATIONS]


_LOCATIONS: Final = frozenset({b"location", b"content-location"})


class Validated(NamedTuple):
    """What a 304 to the cache's own validation allows (:meth:`CachePolicy.validated`)."""

    #: The stored response as the 304 updated it, to answer with; ``None``: the 304 is about
    #: another response, and the request goes again without the cache's validators.
    answer: CacheEntry | None
    #: Whether ``answer`` replaces the stored response (else the stored one is dropped: the
    #: origin's 304 forbids storing it as it now is).
    store: bool


def selects(entry: CacheEntry, headers: Sequence[tuple[bytes, bytes]]) -> bool:
    """Whether a 304 to a validation of ``entry`` alone speaks of ``entry`` (RFC 9111 section
    4.3.4): its ETag matches the stored one (weak comparison, as the validation asked), or,
    without an ETag, its Last-Modified is the stored one. A 304 with neither selects it: the
    origin answered 304 to ``entry``'s own validators, the only ones asked about (RFC 9110
    section 13.1), and names no other response (section 4.3.4 would select only a response
    without validators then; a cache never validates one, and the origin omitted a field it
    should have sent, RFC 9110 section 15.4.5)."""
    etag = joined_value(headers, b"etag")
    if etag is not None:
        return entry.etag is not None and _weak(etag) == _weak(entry.etag)
    modified = joined_value(headers, b"last-modified")
    if modified is not None:
        stored = entry.last_modified
        if stored is None:
            return False
        if modified.strip() == stored.strip():
            return True
        when = http_date(modified)
        return when is not None and when == http_date(stored)
    return True


def _merged(
    entry: CacheEntry, headers: Sequence[tuple[bytes, bytes]], response_time: float
) -> list[tuple[bytes, bytes]]:
    """``entry``'s fields updated by a 304's (RFC 9111 section 3.2): the 304's replace the
    stored ones of the same name, but for the framing and the representation's own."""
    updates = _strip_fields(headers, _NOT_UPDATED)
    replaced = {name.lower() for name, _ in updates}
    merged = [(n, v) for n, v in entry.headers if n.lower() not in replaced] + updates
    if b"date" not in replaced:
        # (the stored Date would make the freshened response look as old as the stored one)
        merged = [(n, v) for n, v in merged if n.lower() != b"date"]
        merged.append((b"Date", formatdate(response_time, usegmt=True).encode("ascii")))
    return merged
