"""A strict HTTP/1.1 message reader for the fuzz target: what a proxy sends must pass it.

A proxy may accept lenient input (a bare LF, an obs-fold line, Content-Length beside
Transfer-Encoding), but what it sends on must be unambiguous, so that the next hop cannot read
it differently (RFC 9112: a sender does not generate obs-fold or bare CR, sends Content-Length
only without Transfer-Encoding, and one framing only). This reader refuses anything else, and is
its own code (neither httptools, which ferryman uses, nor h11), so a shared parser bug cannot
hide on both sides of the proxy.

It is sans-I/O: :func:`parse` takes the bytes received so far and returns a whole message and
how many bytes it took, or None when more are needed; it raises :class:`Malformed`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["Malformed", "Message", "parse"]

_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_REQUEST_LINE = re.compile(rb"([!#$%&'*+\-.^_`|~0-9A-Za-z]+) ([!-~]+) HTTP/1\.([01])")
_STATUS_LINE = re.compile(rb"HTTP/1\.([01]) ([0-9]{3})(?: ([\t -~\x80-\xff]*))?")
_VALUE = re.compile(rb"[\t -~\x80-\xff]*")
_CHUNK_SIZE = re.compile(rb"([0-9A-Fa-f]{1,16})((?:;[\t -~]*)?)")
#: More than any head or body a fuzz example makes: a message still growing past it is a loop.
LIMIT = 4 * 1024 * 1024


class Malformed(Exception):
    """The bytes are not one well-framed HTTP/1.1 message."""


@dataclass
class Message:
    #: Request: method, target; response: status, reason.
    first: bytes
    second: bytes
    version: bytes
    headers: list[tuple[bytes, bytes]]
    body: bytes = b""
    trailers: tuple[tuple[bytes, bytes], ...] = ()
    #: Response framing: the body ended with the connection.
    close_delimited: bool = False

    @property
    def status(self) -> int:
        return int(self.first)

    def header(self, name: bytes) -> bytes | None:
        values = self.all(name)
        return b", ".join(values) if values else None

    def all(self, name: bytes) -> list[bytes]:
        return [value for key, value in self.headers if key.lower() == name.lower()]


def _lines(block: bytes) -> list[bytes]:
    """CRLF-separated lines; a bare CR or bare LF anywhere is malformed."""
    if b"\r" in block.replace(b"\r\n", b"") or b"\n" in block.replace(b"\r\n", b""):
        raise Malformed(f"bare CR or LF in {block[:120]!r}")
    return block.split(b"\r\n")


def _fields(lines: list[bytes]) -> list[tuple[bytes, bytes]]:
    fields = []
    for line in lines:
        name, colon, value = line.partition(b":")
        if not colon or not _TOKEN.fullmatch(name):
            raise Malformed(f"not a header field: {line[:120]!r}")  # obs-fold, space in name
        value = value.strip(b" \t")
        if not _VALUE.fullmatch(value):
            raise Malformed(f"control character in {line[:120]!r}")
        fields.append((name, value))
    return fields


def _framing(message: Message) -> int | None:
    """The Content-Length, or None for chunked; malformed when ambiguous."""
    codings = message.all(b"transfer-encoding")
    lengths = message.all(b"content-length")
    if codings:
        if lengths:
            raise Malformed("Content-Length beside Transfer-Encoding")
        if len(codings) != 1 or codings[0].lower() != b"chunked":
            raise Malformed(f"Transfer-Encoding {codings!r}")
        return None
    if lengths:
        values = {value for part in lengths for value in part.split(b",")}
        if len(values) != 1 or not next(iter(values)).strip().isdigit():
            raise Malformed(f"Content-Length {lengths!r}")
        return int(next(iter(values)).strip())
    return -1


def _chunked(data: bytes, start: int) -> tuple[bytes, tuple[tuple[bytes, bytes], ...], int] | None:
    parts: list[bytes] = []
    at = start
    while True:
        end = data.find(b"\r\n", at)
        if end < 0:
            if len(data) - at > 4096:
                raise Malformed("chunk-size line without end")
            return None
        match = _CHUNK_SIZE.fullmatch(data[at:end])
        if match is None:
            raise Malformed(f"chunk-size line {data[at:end][:80]!r}")
        size = int(match[1], 16)
        at = end + 2
        if size == 0:
            trailer_end = data.find(b"\r\n", at)
            if trailer_end == at:
                return b"".join(parts), (), at + 2
            block_end = data.find(b"\r\n\r\n", at)
            if block_end < 0:
                return None
            trailers = tuple(_fields(_lines(data[at:block_end])))
            return b"".join(parts), trailers, block_end + 4
        if len(data) < at + size + 2:
            return None
        if data[at + size : at + size + 2] != b"\r\n":
            raise Malformed("chunk data not followed by CRLF")
        parts.append(data[at : at + size])
        at += size + 2


def parse(
    data: bytes, *, request: bool, head_request: bool = False, eof: bool = False
) -> tuple[Message, int] | None:
    """One message from the start of ``data``; None if incomplete (and not ``eof``)."""
    end = data.find(b"\r\n\r\n")
    if end < 0:
        if eof and data:
            raise Malformed(f"the connection ended inside a head: {data[:120]!r}")
        if len(data) > LIMIT:
            raise Malformed("a head without end")
        return None
    lines = _lines(data[:end])
    pattern = _REQUEST_LINE if request else _STATUS_LINE
    start = pattern.fullmatch(lines[0])
    if start is None:
        raise Malformed(f"start line {lines[0][:120]!r}")
    if request:
        message = Message(start[1], start[2], start[3], _fields(lines[1:]))
    else:
        message = Message(start[2], start[3] or b"", start[1], _fields(lines[1:]))
    at = end + 4
    length = _framing(message)
    if not request and (head_request or message.status < 200 or message.status in (204, 304)):
        return message, at  # no body, whatever the headers say
    if request and length == -1:
        length = 0
    if length is None:
        found = _chunked(data, at)
        if found is None:
            if eof:
                raise Malformed("the connection ended inside a chunked body")
            return None
        message.body, message.trailers, taken = found
        return message, taken
    if length < 0:  # a response without framing: ends with the connection
        if not eof:
            return None
        message.body, message.close_delimited = data[at:], True
        return message, len(data)
    if len(data) < at + length:
        if eof:
            raise Malformed(f"the connection ended {at + length - len(data)} bytes short")
        return None
    message.body = data[at : at + length]
    return message, at + length
