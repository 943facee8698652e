"""Reading the header fields HTTP caching depends on: Cache-Control directives, HTTP dates,
delta-seconds, and the field lists of ``Vary``, ``Connection`` and qualified directives.

Everything works on raw header pairs (``(name, value)`` bytes, names in any case), the form
both the client's responses and the relay's header lines come in, so neither builds a
:class:`~ferryman.http.headers.Headers` for this. Malformed values are read the way RFC 9111
asks a cache to read them: an invalid ``max-age`` makes a response stale, an invalid
``Expires`` means "already expired", an unparsable ``Date`` is ignored.
"""

from __future__ import annotations

import email.utils
from collections.abc import Iterable, Sequence
from typing import Final

__all__ = [
    "MAX_DELTA",
    "Directives",
    "delta_seconds",
    "field_names",
    "header_values",
    "http_date",
    "joined_value",
    "parse_cache_control",
]

#: RFC 9111 section 1.2.2: a delta-seconds too large to represent is read as 2^31.
MAX_DELTA: Final = 2**31
_MAX_DELTA_DIGITS: Final = len(str(MAX_DELTA))
#: Directive name (lowercase) -> its argument (unquoted), ``None`` when it has none.
Directives = dict[bytes, bytes | None]


def header_values(headers: Sequence[tuple[bytes, bytes]], lowercase_name: bytes) -> list[bytes]:
    """Every value of one field, in order (names compared case-insensitively)."""
    return [value for name, value in headers if name.lower() == lowercase_name]


def joined_value(headers: Sequence[tuple[bytes, bytes]], lowercase_name: bytes) -> bytes | None:
    """A field's values as one comma-separated list (``None``: the field is absent)."""
    values = header_values(headers, lowercase_name)
    if not values:
        return None
    return b", ".join(value.strip() for value in values)


def _split_list(value: bytes) -> list[bytes]:
    """Split a comma-separated field value, keeping commas inside quoted strings."""
    parts: list[bytes] = []
    current = bytearray()
    quoted = False
    escaped = False
    for byte in value:
        char = bytes((byte,))
        if escaped:
            current += char
            escaped = False
        elif quoted and char == b"\\":
            current += char
            escaped = True
        elif char == b'"':
            current += char
            quoted = not quoted
        elif char == b"," and not quoted:
            parts.append(bytes(current).strip())
            current.clear()
        else:
            current += char
    parts.append(bytes(current).strip())
    return [part for part in parts if part]


def _unquote(value: bytes) -> bytes:
    if len(value) >= 2 and value[:1] == b'"' and value[-1:] == b'"':
        inner = value[1:-1]
        out = bytearray()
        escaped = False
        for byte in inner:
            if not escaped and byte == 0x5C:  # backslash
                escaped = True
                continue
            escaped = False
            out.append(byte)
        return bytes(out)
    return value


def parse_cache_control(values: Iterable[bytes]) -> Directives:
    """The directives of every ``Cache-Control`` value, names lowercased, arguments unquoted.

    A directive given twice keeps its first occurrence (RFC 9111 section 4.2.1 allows using
    the first; a later ``max-age`` cannot extend what an earlier one said)."""
    directives: Directives = {}
    for value in values:
        for part in _split_list(value):
            name, equals, argument = part.partition(b"=")
            name = name.strip().lower()
            if not name or name in directives:
                continue
            directives[name] = _unquote(argument.strip()) if equals else None
    return directives


def delta_seconds(argument: bytes | None) -> int | None:
    """A directive's delta-seconds (``max-age=60`` -> 60); ``None`` when absent or invalid."""
    if argument is None or not argument or not argument.isdigit():
        return None
    # Compared as text first: the origin (or a client) decides how many digits come, and
    # Python refuses to convert a number of more than 4,300 digits (a ValueError).
    digits = argument.lstrip(b"0")
    if len(digits) > _MAX_DELTA_DIGITS:
        return MAX_DELTA
    seconds = int(digits or b"0")
    return MAX_DELTA if seconds > MAX_DELTA else seconds


def http_date(value: bytes | None) -> float | None:
    """An HTTP date (IMF-fixdate, RFC 850 or asctime) as a POSIX timestamp; ``None`` if invalid."""
    if value is None:
        return None
    try:
        parsed = email.utils.parsedate_to_datetime(value.decode("latin-1"))
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    try:
        return parsed.timestamp()
    except (OverflowError, OSError, ValueError):
        return None


def field_names(value: bytes | None) -> list[bytes]:
    """The lowercase field names of a list (``Vary``, ``Connection``, ``private="a, b"``)."""
    if not value:
        return []
    return [name.strip().lower() for name in value.split(b",") if name.strip()]
