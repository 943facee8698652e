"""HTTP header fields: case-insensitive for lookups, byte-exact for the wire.

A proxy must forward ``X-Request-ID`` as ``X-Request-ID``, keep repeated fields (``Set-Cookie``)
apart and keep their order, so ``Headers`` stores the raw ``(name, value)`` byte pairs as they
were given and only lower-cases names for lookups. Values and names given by users are checked
once, on the way in, so that nothing built here can inject a header or split a request.
"""

from __future__ import annotations

import re
from collections.abc import (
    ItemsView,
    Iterable,
    Iterator,
    KeysView,
    Mapping,
    MutableMapping,
    Sequence,
    ValuesView,
)

from ferryman.exceptions import LocalProtocolError

__all__ = ["SENSITIVE_HEADERS", "Headers", "HeadersTypes"]

# Names whose values are credentials: ``repr()`` ends up in logs and tracebacks.
SENSITIVE_HEADERS: frozenset[bytes] = frozenset(
    {b"authorization", b"proxy-authorization", b"cookie", b"set-cookie", b"x-api-key"}
)

# RFC 9110 section 5.6.2: token = 1*tchar.
_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")


def _encode_name(name: object) -> bytes:
    if isinstance(name, str):
        if not name.isascii():
            raise LocalProtocolError(f"Invalid header name {name!r}: must be an ASCII token")
        raw = name.encode("ascii")
    elif isinstance(name, bytes | bytearray | memoryview):
        raw = bytes(name)
    else:
        raise TypeError(f"Header names must be str or bytes, not {type(name).__name__}")
    if _TOKEN.fullmatch(raw) is None:
        if not raw:
            raise LocalProtocolError("Invalid header name: the name is empty")
        raise LocalProtocolError(
            f"Invalid header name {name!r}: only RFC 9110 token characters are allowed"
        )
    return raw


def _encode_value(name: object, value: object, encoding: str | None) -> bytes:
    if isinstance(value, str):
        if encoding is not None:
            raw = value.encode(encoding)
        else:
            try:
                raw = value.encode("ascii")
            except UnicodeEncodeError:
                raw = value.encode("utf-8")
    elif isinstance(value, bytes | bytearray | memoryview):
        raw = bytes(value)
    else:
        raise TypeError(
            f"Header value for {name!r} must be str or bytes, not {type(value).__name__}"
        )
    # The value itself is left out of the message: it may be a credential.
    # find(), not ``in``: ``bytes in bytes`` raises and clears a TypeError inside each time.
    if raw.find(b"\r") >= 0 or raw.find(b"\n") >= 0 or raw.find(b"\x00") >= 0:
        raise LocalProtocolError(f"Invalid header value for {name!r}: contains CR, LF or NUL")
    return raw


def _lookup_key(key: object) -> bytes | None:
    if isinstance(key, str):
        return key.encode("utf-8").lower()
    if isinstance(key, bytes):
        return key.lower()
    return None


class Headers(MutableMapping[str, str]):
    """Case-insensitive, multi-valued, order-keeping header fields.

    The ``Mapping`` view merges repeated fields with ``", "`` (RFC 9110 section 5.3);
    ``get_list()``, ``multi_items()`` and ``raw`` keep them apart.
    """

    __slots__ = ("_detected", "_encoding", "_lower", "_raw")

    _raw: list[tuple[bytes, bytes]]
    # Lower-cased names, parallel to ``_raw``; None until the first lookup so that responses
    # that are only forwarded never pay for it.
    _lower: list[bytes] | None
    _encoding: str | None
    _detected: str | None

    def __init__(self, headers: HeadersTypes | None = None, encoding: str | None = None) -> None:
        self._encoding = encoding
        self._detected = None
        if headers is None:
            self._raw, self._lower = [], []
            return
        if isinstance(headers, Headers):
            self._raw = list(headers._raw)
            self._lower = list(headers._lowers())
            if encoding is None:
                self._encoding = headers._encoding
            return
        pairs: Iterable[object]
        given: object = headers  # Typed out, but a str would otherwise be iterated per char.
        if isinstance(given, str | bytes):
            raise TypeError("Headers cannot be built from a str or bytes; pass pairs or a mapping")
        pairs = headers.items() if isinstance(headers, Mapping) else headers
        raw: list[tuple[bytes, bytes]] = []
        lower: list[bytes] = []
        for pair in pairs:
            if not isinstance(pair, tuple | list) or len(pair) != 2:
                raise TypeError(f"Headers must be (name, value) pairs, got {pair!r}")
            name = _encode_name(pair[0])
            raw.append((name, _encode_value(pair[0], pair[1], encoding)))
            lower.append(name.lower())
        self._raw, self._lower = raw, lower

    @classmethod
    def from_raw(cls, raw: list[tuple[bytes, bytes]]) -> Headers:
        """Wrap header pairs from a parser without checking or copying them.

        For the transport's hot path: the list is trusted and *owned* by the new instance from
        now on (mutating the ``Headers`` mutates it), and names are lower-cased on first lookup.
        """
        headers = cls.__new__(cls)
        headers._raw = raw if type(raw) is list else list(raw)
        headers._lower = None
        headers._encoding = None
        headers._detected = None
        return headers

    def _lowers(self) -> list[bytes]:
        lower = self._lower
        if lower is None:
            lower = self._lower = [name.lower() for name, _ in self._raw]
        return lower

    # -- encoding --------------------------------------------------------------------------

    @property
    def encoding(self) -> str:
        """The codec for decoding to str: ascii, else utf-8, else iso-8859-1 (never fails)."""
        if self._encoding is not None:
            return self._encoding
        if self._detected is None:
            self._detected = self._detect_encoding()
        return self._detected

    @encoding.setter
    def encoding(self, value: str) -> None:
        self._encoding = value

    def _detect_encoding(self) -> str:
        if all(name.isascii() and value.isascii() for name, value in self._raw):
            return "ascii"
        try:
            for name, value in self._raw:
                name.decode("utf-8")
                value.decode("utf-8")
        except UnicodeDecodeError:
            return "iso-8859-1"
        return "utf-8"

    def _changed(self) -> None:
        self._detected = None

    def _decode(self, value: bytes) -> str:
        # ASCII decodes the same under all three candidate encodings, so the common case needs
        # no scan of the other fields.
        if self._encoding is None and value.isascii():
            return value.decode("ascii")
        return value.decode(self.encoding)

    # -- views -----------------------------------------------------------------------------

    @property
    def raw(self) -> list[tuple[bytes, bytes]]:
        """The fields as given (original case, original order), as a new list."""
        return list(self._raw)

    def multi_items(self) -> list[tuple[str, str]]:
        encoding = self.encoding
        return [
            (lower.decode(encoding), value.decode(encoding))
            for lower, (_, value) in zip(self._lowers(), self._raw, strict=True)
        ]

    def _merged(self) -> dict[str, str]:
        encoding = self.encoding
        merged: dict[str, str] = {}
        for lower, (_, raw_value) in zip(self._lowers(), self._raw, strict=True):
            key = lower.decode(encoding)
            value = raw_value.decode(encoding)
            merged[key] = f"{merged[key]}, {value}" if key in merged else value
        return merged

    def keys(self) -> KeysView[str]:
        encoding = self.encoding
        return dict.fromkeys(lower.decode(encoding) for lower in self._lowers()).keys()

    def values(self) -> ValuesView[str]:
        return self._merged().values()

    def items(self) -> ItemsView[str, str]:
        return self._merged().items()

    def _raw_values(self, key: object) -> list[bytes]:
        lookup = _lookup_key(key)
        if lookup is None:
            return []
        return [
            value
            for lower, (_, value) in zip(self._lowers(), self._raw, strict=True)
            if lower == lookup
        ]

    def get_list(self, key: str, split_commas: bool = False) -> list[str]:
        """All values of ``key``; ``split_commas`` also splits list-valued fields.

        Empty list elements are dropped, as RFC 9110 section 5.6.1 tells recipients to do.
        """
        values = [self._decode(value) for value in self._raw_values(key)]
        if not split_commas:
            return values
        return [item.strip() for value in values for item in value.split(",") if item.strip()]

    # -- Mapping ---------------------------------------------------------------------------

    def __getitem__(self, key: str) -> str:
        values = self._raw_values(key)
        if not values:
            raise KeyError(key)
        if len(values) == 1:
            return self._decode(values[0])
        return ", ".join([self._decode(value) for value in values])

    def __contains__(self, key: object) -> bool:
        lookup = _lookup_key(key)
        return lookup is not None and lookup in self._lowers()

    def __iter__(self) -> Iterator[str]:
        return iter(self.keys())

    def __len__(self) -> int:
        return len(set(self._lowers()))

    # -- MutableMapping --------------------------------------------------------------------

    def __setitem__(self, key: str, value: str) -> None:
        """Replace every field named ``key`` by one, where the first of them was."""
        name = _encode_name(key)
        raw_value = _encode_value(key, value, self._encoding)
        lookup = name.lower()
        lower = self._lowers()
        indexes = [index for index, item in enumerate(lower) if item == lookup]
        if not indexes:
            self._raw.append((name, raw_value))
            lower.append(lookup)
        else:
            self._raw[indexes[0]] = (name, raw_value)
            lower[indexes[0]] = lookup
            for index in reversed(indexes[1:]):
                del self._raw[index]
                del lower[index]
        self._changed()

    def __delitem__(self, key: str) -> None:
        lookup = _lookup_key(key)
        lower = self._lowers()
        keep = [index for index, item in enumerate(lower) if item != lookup]
        if len(keep) == len(lower):
            raise KeyError(key)
        self._raw[:] = [self._raw[index] for index in keep]
        lower[:] = [lower[index] for index in keep]
        self._changed()

    def add(self, key: str | bytes, value: str | bytes) -> None:
        """Append a field, keeping any existing ones of the same name (``Set-Cookie``...)."""
        name = _encode_name(key)
        self._raw.append((name, _encode_value(key, value, self._encoding)))
        if self._lower is not None:
            self._lower.append(name.lower())
        self._changed()

    def update(self, headers: HeadersTypes | None = None) -> None:  # type: ignore[override]
        """Let each name of ``headers`` replace all fields of that name, keeping positions.

        Unlike ``MutableMapping.update``, repeated fields in ``headers`` are all kept.
        """
        other = headers if isinstance(headers, Headers) else Headers(headers, self._encoding)
        incoming: dict[bytes, list[tuple[bytes, bytes]]] = {}
        for lookup, item in zip(other._lowers(), other._raw, strict=True):
            incoming.setdefault(lookup, []).append(item)
        if not incoming:
            return
        raw: list[tuple[bytes, bytes]] = []
        lower: list[bytes] = []
        placed: set[bytes] = set()
        for lookup, item in zip(self._lowers(), self._raw, strict=True):
            if lookup not in incoming:
                raw.append(item)
                lower.append(lookup)
            elif lookup not in placed:
                placed.add(lookup)
                raw.extend(incoming[lookup])
                lower.extend([lookup] * len(incoming[lookup]))
        for lookup, item in zip(other._lowers(), other._raw, strict=True):
            if lookup not in placed:
                raw.append(item)
                lower.append(lookup)
        self._raw[:] = raw
        self._lower = lower
        self._changed()

    def clear(self) -> None:
        self._raw.clear()
        self._lower = []
        self._changed()

    def copy(self) -> Headers:
        return Headers(self)

    def __copy__(self) -> Headers:
        # The default slot-by-slot copy would share the mutable field lists.
        return Headers(self)

    # -- comparison and display ------------------------------------------------------------

    def _comparable(self) -> list[tuple[bytes, bytes]]:
        return sorted(
            (lower, value) for lower, (_, value) in zip(self._lowers(), self._raw, strict=True)
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Headers):
            try:
                other = Headers(other, self._encoding)  # type: ignore[arg-type]
            except TypeError:
                return NotImplemented
            except LocalProtocolError:
                return False
        return self._comparable() == other._comparable()

    def __repr__(self) -> str:
        encoding = self.encoding
        items = [
            (
                name.decode(encoding),
                "[secure]" if lower in SENSITIVE_HEADERS else value.decode(encoding),
            )
            for lower, (name, value) in zip(self._lowers(), self._raw, strict=True)
        ]
        suffix = f", encoding={encoding!r}" if encoding != "ascii" else ""
        if len(set(self._lowers())) == len(items):
            return f"{type(self).__name__}({dict(items)!r}{suffix})"
        return f"{type(self).__name__}({items!r}{suffix})"


HeadersTypes = (
    Headers
    | Mapping[str, str | bytes]
    | Mapping[bytes, str | bytes]
    | Mapping[str | bytes, str | bytes]
    | Sequence[tuple[str | bytes, str | bytes]]
)


def parse_header_block(block: bytes) -> list[tuple[bytes, bytes]]:
    """Split a response head (status line, then ``Name: value`` lines joined by CRLF) into
    raw fields. Only for heads a strict parser (llhttp) has already validated: CRLF line ends,
    no obsolete line folding, no whitespace before the colon."""
    fields: list[tuple[bytes, bytes]] = []
    for line in block.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        fields.append((name, value.strip(b" \t")))
    return fields
