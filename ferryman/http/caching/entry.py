"""A stored response (:class:`CacheEntry`): what came from the origin and the facts the
cache's decisions need, computed once when it is stored rather than on every hit.

The body is kept whole, as bytes, and the header fields as raw pairs without the ones a cache
must not store or forward (hop-by-hop fields, ``Age``, the framing): a hit is then the stored
bytes plus an ``Age``, for the client's responses and the relay's heads alike. Entries travel
to a shared store (Redis) in :func:`encode_entries`'s binary form, which is checked when read
back: a value that does not decode is a miss, never an error.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Sequence
from typing import Final

__all__ = ["CacheEntry", "decode_entries", "encode_entries"]

#: Versioned, so that a store written by another release is read as empty, not misread.
#: Python's own bytes for one stored field (two bytes objects, a tuple; its line built for
#: hits counts with the field's length, twice above) and for one entry with its store slot.
_FIELD_OVERHEAD: Final = 110
_ENTRY_OVERHEAD: Final = 800
_MAGIC: Final = b"FMC1"
_LENGTH: Final = struct.Struct(">I")


class CacheEntry:
    """One stored response to a GET, with its freshness facts (see :mod:`.policy`)."""

    __slots__ = (
        "_lines",
        "body",
        "etag",
        "headers",
        "initial_age",
        "last_modified",
        "lifetime",
        "must_revalidate",
        "no_cache",
        "reason",
        "response_time",
        "stale_if_error",
        "stale_while_revalidate",
        "status",
        "vary",
    )

    def __init__(
        self,
        status: int,
        reason: bytes,
        headers: list[tuple[bytes, bytes]],
        *,
        # (first: mypyc refuses a keyword-only argument without a default after one with)
        response_time: float,
        vary: tuple[tuple[bytes, bytes | None], ...] = (),
        initial_age: float = 0.0,
        lifetime: float = 0.0,
        no_cache: bool = False,
        must_revalidate: bool = False,
        stale_while_revalidate: float = 0.0,
        stale_if_error: float = 0.0,
        etag: bytes | None = None,
        last_modified: bytes | None = None,
        body: bytes = b"",
    ) -> None:
        self.status = status
        self.reason = reason
        #: The stored header fields, as the origin sent them, less hop-by-hop fields, ``Age``
        #: and the framing (``Content-Length``, ``Transfer-Encoding``).
        self.headers = headers
        #: The request fields ``Vary`` named, and their values when it was stored (``None``:
        #: absent), which a request must repeat to be served this response.
        self.vary = vary
        #: When the response was received (wall clock: a shared store crosses hosts).
        self.response_time = response_time
        #: Its age on arrival (RFC 9111 section 4.2.3's corrected_initial_age), in seconds.
        self.initial_age = initial_age
        #: How long it is fresh for, from its origin's Date (section 4.2.1), in seconds.
        self.lifetime = lifetime
        #: ``no-cache``: every use is validated first. ``must-revalidate`` (and, in a shared
        #: cache, ``proxy-revalidate``): never served stale.
        self.no_cache = no_cache
        self.must_revalidate = must_revalidate
        #: RFC 5861's windows past freshness, in seconds.
        self.stale_while_revalidate = stale_while_revalidate
        self.stale_if_error = stale_if_error
        self.etag = etag
        self.last_modified = last_modified
        self.body = body
        self._lines: bytes | None = None

    def age(self, now: float) -> float:
        """The current age (RFC 9111 section 4.2.3): the age on arrival plus time stored."""
        resident = now - self.response_time
        return self.initial_age + (resident if resident > 0 else 0.0)

    def staleness(self, now: float) -> float:
        """Seconds past its freshness lifetime (negative while fresh)."""
        return self.age(now) - self.lifetime

    def keep_until(self) -> float:
        """When no rule can use it any more, not even to validate: a store drops it then."""
        window = max(self.stale_while_revalidate, self.stale_if_error)
        if self.etag is not None or self.last_modified is not None:
            window = max(window, 86400.0)  # (validators keep a stale entry worth asking about)
        return self.response_time - self.initial_age + self.lifetime + window

    @property
    def has_validators(self) -> bool:
        return self.etag is not None or self.last_modified is not None

    def header_lines(self) -> bytes:
        """The stored fields as CRLF-terminated lines (built once: the relay's hits)."""
        lines = self._lines
        if lines is None:
            lines = self._lines = b"".join(
                name + b": " + value + b"\r\n" for name, value in self.headers
            )
        return lines

    def size(self) -> int:
        """Bytes it holds, roughly: what a store bounded in bytes counts. The objects count
        as well as their bytes (measured with tracemalloc): with small answers they are most
        of it, and a store filled by many distinct targets held several times its bound."""
        fields = sum(2 * (len(n) + len(v)) + _FIELD_OVERHEAD for n, v in self.headers)
        # (the request's values it varies on: a client chooses them, 8 KiB each)
        fields += sum(len(n) + len(v or b"") + _FIELD_OVERHEAD for n, v in self.vary)
        return len(self.body) + fields + _ENTRY_OVERHEAD

    def _meta(self) -> dict[str, object]:
        return {
            "s": self.status,
            "r": self.reason.decode("latin-1"),
            "h": [[n.decode("latin-1"), v.decode("latin-1")] for n, v in self.headers],
            "v": [
                [n.decode("latin-1"), None if v is None else v.decode("latin-1")]
                for n, v in self.vary
            ],
            "t": self.response_time,
            "a": self.initial_age,
            "l": self.lifetime,
            "nc": self.no_cache,
            "mr": self.must_revalidate,
            "swr": self.stale_while_revalidate,
            "sie": self.stale_if_error,
            "e": None if self.etag is None else self.etag.decode("latin-1"),
            "lm": None if self.last_modified is None else self.last_modified.decode("latin-1"),
            "b": len(self.body),
        }

    def __repr__(self) -> str:
        return f"<CacheEntry {self.status} {len(self.body)} bytes lifetime={self.lifetime}>"


def _text(value: object) -> bytes:
    if not isinstance(value, str):
        raise ValueError("not a string")
    return value.encode("latin-1")


def _entry(meta: dict[str, object], body: bytes) -> CacheEntry:
    headers = meta["h"]
    vary = meta["v"]
    if not isinstance(headers, list) or not isinstance(vary, list):
        raise ValueError("malformed entry")
    etag = meta["e"]
    last_modified = meta["lm"]
    status = meta["s"]
    if not isinstance(status, int):
        raise ValueError("malformed status")
    return CacheEntry(
        status,
        _text(meta["r"]),
        [(_text(name), _text(value)) for name, value in headers],
        vary=tuple((_text(name), None if value is None else _text(value)) for name, value in vary),
        response_time=float(meta["t"]),  # type: ignore[arg-type]
        initial_age=float(meta["a"]),  # type: ignore[arg-type]
        lifetime=float(meta["l"]),  # type: ignore[arg-type]
        no_cache=bool(meta["nc"]),
        must_revalidate=bool(meta["mr"]),
        stale_while_revalidate=float(meta["swr"]),  # type: ignore[arg-type]
        stale_if_error=float(meta["sie"]),  # type: ignore[arg-type]
        etag=None if etag is None else _text(etag),
        last_modified=None if last_modified is None else _text(last_modified),
        body=body,
    )


def encode_entries(entries: Sequence[CacheEntry]) -> bytes:
    """The variants stored under one key, as bytes: a JSON index, then the bodies as they are
    (no base64: a cached body costs its own size in the store)."""
    index = json.dumps([entry._meta() for entry in entries], separators=(",", ":")).encode()
    return b"".join([_MAGIC, _LENGTH.pack(len(index)), index, *(e.body for e in entries)])


def decode_entries(data: bytes) -> list[CacheEntry] | None:
    """What :func:`encode_entries` wrote; ``None`` for anything else (another version, a
    truncated or foreign value): the caller treats it as a miss."""
    if data[:4] != _MAGIC or len(data) < 8:
        return None
    try:
        (length,) = _LENGTH.unpack_from(data, 4)
        metas = json.loads(data[8 : 8 + length])
        if not isinstance(metas, list):
            return None
        entries = []
        offset = 8 + length
        for meta in metas:
            size = meta["b"]
            if not isinstance(size, int) or size < 0 or offset + size > len(data):
                return None
            entries.append(_entry(meta, data[offset : offset + size]))
            offset += size
        if offset != len(data):
            return None
        return entries
    except (ValueError, KeyError, TypeError, struct.error, UnicodeEncodeError):
        return None
