"""``multipart/form-data`` request bodies (RFC 7578) built lazily from form fields and files.

Nothing is read before the body is sent, and files are read in ``CHUNK_SIZE`` pieces, so a
multi-gigabyte upload costs one chunk of memory. The total length is worked out from file sizes
without reading them, so most uploads go out with a ``Content-Length`` (which some servers and
most presigned-upload endpoints require) and only unsized sources (pipes, sockets) fall back to
chunked framing.
"""

from __future__ import annotations

import io
import mimetypes
import os
import re
import stat
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from typing import Any, Protocol, TypeAlias

from ferryman.exceptions import LocalProtocolError, StreamConsumedError
from ferryman.http.headers import Headers
from ferryman.http.params import primitive_value_to_str
from ferryman.http.streams import AsyncByteStream, SyncByteStream

__all__ = [
    "CHUNK_SIZE",
    "BinaryReadable",
    "FileContent",
    "FileSource",
    "FileTypes",
    "FilesType",
    "MultipartEncoder",
]

CHUNK_SIZE = 64 * 1024
"""How much of a file is read at a time: large enough for few system calls, small enough that
many concurrent uploads stay cheap."""


class BinaryReadable(Protocol):
    """What a file content needs: ``read(size)`` returning bytes (a file opened ``"rb"``,
    ``io.BytesIO``, a socket file, a custom wrapper)."""

    def read(self, size: int, /) -> bytes: ...


FileContent: TypeAlias = BinaryReadable | bytes | str
FileTypes: TypeAlias = (
    FileContent
    | tuple[str | None, FileContent]
    | tuple[str | None, FileContent, str | None]
    | tuple[str | None, FileContent, str | None, Mapping[str, str]]
)
FilesType: TypeAlias = Mapping[str, FileTypes] | Sequence[tuple[str, FileTypes]]

# RFC 2046 5.1.1: bcharsnospace, plus space anywhere but at the end; 1 to 70 characters.
_BOUNDARY = re.compile(rb"[0-9A-Za-z'()+_,\-./:=? ]{0,69}[0-9A-Za-z'()+_,\-./:=?]")
_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# Below this size, fixed pieces are joined so that a small form goes out as one chunk.
_JOIN_BELOW = CHUNK_SIZE


def _quote(value: str) -> bytes:
    """A field name or filename as the HTML standard's form encoder writes it (UTF-8, with
    ``"``, CR and LF percent-encoded), so that it can neither end its quoted string nor the
    header line; backslashes are left alone, as browsers do."""
    return value.encode("utf-8").replace(b'"', b"%22").replace(b"\r", b"%0D").replace(b"\n", b"%0A")


class FileSource:
    """A binary file object to be copied into a body: where it starts and, if knowable, its
    size, measured without reading it. ``label`` names it in error messages."""

    __slots__ = ("file", "label", "size", "start")

    def __init__(self, file: Any, label: str) -> None:
        mode = getattr(file, "mode", "b")
        if isinstance(file, io.TextIOBase) or (isinstance(mode, str) and "b" not in mode):
            raise TypeError(
                f"{label} is open in text mode; a request body is bytes, "
                "so open it in binary mode ('rb')"
            )
        self.label = label
        self.file = file
        self.start: int | None = None
        self.size: int | None = None
        try:
            if file.seekable():
                self.start = file.tell()
        except (AttributeError, OSError, ValueError):
            pass
        self.size = self._measure()

    def _measure(self) -> int | None:
        start = self.start
        if start is None:
            return None
        # fstat only for objects that read the descriptor's bytes as they are: a GzipFile or a
        # custom wrapper also has fileno(), but the bytes it returns are not the file's.
        if isinstance(self.file, io.FileIO | io.BufferedReader | io.BufferedRandom):
            try:
                status = os.fstat(self.file.fileno())
            except (OSError, ValueError):
                pass
            else:
                if stat.S_ISREG(status.st_mode):
                    return max(status.st_size - start, 0)
        try:
            end: int = self.file.seek(0, os.SEEK_END)
            self.file.seek(start)
        except (OSError, ValueError):
            return None
        return max(end - start, 0)

    def chunks(self) -> Iterator[bytes]:
        file = self.file
        if self.start is not None:
            file.seek(self.start)
        remaining = self.size
        while remaining is None or remaining > 0:
            chunk = file.read(CHUNK_SIZE if remaining is None else min(CHUNK_SIZE, remaining))
            if not isinstance(chunk, bytes):
                if isinstance(chunk, str):
                    raise TypeError(f"{self.label} returned str; open it in binary mode ('rb')")
                chunk = bytes(chunk)
            if not chunk:
                if remaining is not None:
                    # The announced Content-Length can no longer be met: fail rather than let
                    # the server wait for bytes that will never come.
                    raise LocalProtocolError(
                        f"{self.label} ended {remaining} bytes short of the {self.size} "
                        "bytes measured: it changed while being sent"
                    )
                return
            if remaining is not None:
                remaining -= len(chunk)
            yield chunk


def _as_file_content(field: str, content: object) -> bytes | FileSource:
    if isinstance(content, bytes):
        return content
    if isinstance(content, bytearray | memoryview):
        return bytes(content)
    if isinstance(content, str):
        return content.encode("utf-8")
    if hasattr(content, "read"):
        return FileSource(content, f"the file for field {field!r}")
    raise TypeError(
        f"the content of file field {field!r} must be a binary file object, bytes or str, "
        f"not {type(content).__name__}"
    )


def _default_filename(field: str, content: object) -> str:
    name = getattr(content, "name", None)
    if isinstance(name, str) and name and not (name.startswith("<") and name.endswith(">")):
        return os.path.basename(name)
    return field


def _pairs(items: Mapping[str, Any] | Sequence[tuple[str, Any]] | None) -> list[tuple[str, Any]]:
    if items is None:
        return []
    if isinstance(items, Mapping):
        return list(items.items())
    return list(items)


def _data_values(name: str, value: Any) -> list[bytes]:
    if isinstance(value, list | tuple):
        return [item for element in value for item in _data_values(name, element)]
    if isinstance(value, bytes):
        return [value]
    try:
        return [primitive_value_to_str(value).encode("utf-8")]
    except TypeError:
        raise TypeError(
            f"form field {name!r} must be str, bytes, int, float, bool, None or a list of "
            f"those, not {type(value).__name__}"
        ) from None


class MultipartEncoder(SyncByteStream, AsyncByteStream):
    """A ``multipart/form-data`` body, readable by the sync and the async transport alike.

    Replayable (for redirects and retries) when every content is bytes, str or a seekable file:
    each pass seeks files back to where they were when the encoder was built. With a
    non-seekable file, a second pass raises ``StreamConsumedError``. Files are not closed: the
    caller opened them and decides when they are done.

    The async face reads files with plain blocking ``read`` calls of ``CHUNK_SIZE`` bytes, as
    a local disk answers those in microseconds; a file on a slow network mount would stall the
    event loop for the duration of each read.
    """

    __slots__ = ("_boundary", "_length", "_passes", "_plan", "_replayable")

    def __init__(
        self,
        data: Mapping[str, Any] | Sequence[tuple[str, Any]] | None = None,
        files: FilesType | None = None,
        boundary: bytes | None = None,
    ) -> None:
        if boundary is None:
            boundary = os.urandom(16).hex().encode("ascii")
        elif _BOUNDARY.fullmatch(boundary) is None:
            raise ValueError(
                f"invalid multipart boundary {boundary!r}: RFC 2046 allows 1 to 70 letters, "
                "digits and '()+_,-./:=? characters, not ending with a space"
            )
        self._boundary = boundary
        parts: list[tuple[bytes, bytes | FileSource]] = []  # (header block, content)
        for name, value in _pairs(data):
            if not isinstance(name, str):
                raise TypeError(f"form field names must be str, not {type(name).__name__}")
            head = _disposition(name, None) + b"\r\n"
            parts.extend((head, item) for item in _data_values(name, value))
        parts.extend(_file_part(name, value) for name, value in _pairs(files))
        pieces: list[bytes | FileSource] = []
        for index, (head, content) in enumerate(parts):
            pieces += [b"\r\n--" if index else b"--", boundary, b"\r\n", head, content]
        pieces += [b"\r\n--" if parts else b"--", boundary, b"--\r\n"]
        self._plan = _join_small(pieces)
        self._replayable = all(
            isinstance(piece, bytes) or piece.start is not None for piece in self._plan
        )
        self._length: int | None = 0
        for piece in self._plan:
            size = len(piece) if isinstance(piece, bytes) else piece.size
            if size is None:
                self._length = None
                break
            self._length += size
        self._passes = 0

    @property
    def boundary(self) -> bytes:
        return self._boundary

    @property
    def content_type(self) -> str:
        boundary = self._boundary.decode("ascii")
        if _TOKEN.fullmatch(self._boundary) is None:
            boundary = f'"{boundary}"'  # ':', '?', '=', '(' ... are not token characters
        return f"multipart/form-data; boundary={boundary}"

    @property
    def length(self) -> int | None:
        """The body's size in bytes, or ``None`` when a file's size cannot be known in advance
        (the body is then sent chunked)."""
        return self._length

    def __len__(self) -> int:
        if self._length is None:
            raise TypeError("the multipart body's length is unknown: a file has no known size")
        return self._length

    def __bool__(self) -> bool:
        return True  # never empty, and bool() must not raise when the length is unknown

    def _chunks(self) -> Iterator[bytes]:
        if self._passes and not self._replayable:
            raise StreamConsumedError(
                "the multipart body was already sent and a file in it cannot be rewound"
            )
        self._passes += 1
        for piece in self._plan:
            if isinstance(piece, bytes):
                yield piece
            else:
                yield from piece.chunks()

    def __iter__(self) -> Iterator[bytes]:
        return self._chunks()

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for chunk in self._chunks():
            yield chunk

    def __repr__(self) -> str:
        return f"<MultipartEncoder [{self.content_type}, length={self._length}]>"


def _disposition(name: str, filename: str | None) -> bytes:
    line = b'Content-Disposition: form-data; name="' + _quote(name) + b'"'
    if filename is not None:
        line += b'; filename="' + _quote(filename) + b'"'
    return line + b"\r\n"


def _file_part(name: str, value: Any) -> tuple[bytes, bytes | FileSource]:
    """The part's header block (ending with the blank line) and its content."""
    if not isinstance(name, str):
        raise TypeError(f"file field names must be str, not {type(name).__name__}")
    filename: str | None
    content_type: str | None = None
    extra: Mapping[str, str] | None = None
    if isinstance(value, tuple):
        if not 2 <= len(value) <= 4:
            raise TypeError(
                f"file field {name!r}: expected (filename, content[, content_type[, headers]]), "
                f"got a tuple of {len(value)}"
            )
        filename, content = value[0], value[1]
        if len(value) > 2:
            content_type = value[2]
        if len(value) > 3:
            extra = value[3]
    else:
        content = value
        filename = _default_filename(name, content)
    fields = list(extra.items()) if extra else []
    if not any(key.lower() == "content-type" for key, _ in fields):
        if content_type is None:
            guessed = mimetypes.guess_type(filename)[0] if filename else None
            content_type = guessed or "application/octet-stream"
        fields.insert(0, ("Content-Type", content_type))
    head = _disposition(name, filename)
    # Through Headers: names and values are checked, so no CR or LF can break the part open.
    for key, header_value in Headers(fields).raw:
        head += key + b": " + header_value + b"\r\n"
    return head + b"\r\n", _as_file_content(name, content)


def _join_small(pieces: list[bytes | FileSource]) -> list[bytes | FileSource]:
    """Merge runs of small fixed pieces so the transport writes few, larger chunks; a large
    ``bytes`` content stays on its own rather than being copied into a bigger one."""
    plan: list[bytes | FileSource] = []
    run: list[bytes] = []
    for piece in pieces:
        if isinstance(piece, bytes) and len(piece) < _JOIN_BELOW:
            run.append(piece)
            continue
        if run:
            plan.append(b"".join(run))
            run = []
        if not isinstance(piece, bytes) or piece:
            plan.append(piece)
    if run:
        plan.append(b"".join(run))
    return plan
